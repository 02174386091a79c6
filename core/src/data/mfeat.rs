//! The UCI Multiple Features data (mfeat), bundled in the crate so the demo needs no download.
//!
//! 2,000 handwritten digits (10 classes, 200 each) seen through three views: `pix` (240 pixel
//! averages, also readable as a 1×15×16 image), `fou` (76 Fourier coefficients) and `mor`
//! (6 morphological features, a deliberately weak view). Source: UCI Machine Learning
//! Repository, "Multiple Features", donated by Robert P.W. Duin; licence CC BY 4.0 — the
//! attribution travels with the files in `core/data/mfeat/README.md`.

use super::InMemoryDataset;
use super::csv::{CsvView, LabelColumn, LabelPosition, load_multiview};
use crate::error::Result;

/// `mfeat-pix.csv`: 240 pixel features + label.
pub const PIX_CSV: &str = include_str!("../../data/mfeat/mfeat-pix.csv");
/// `mfeat-fou.csv`: 76 Fourier features + label.
pub const FOU_CSV: &str = include_str!("../../data/mfeat/mfeat-fou.csv");
/// `mfeat-mor.csv`: 6 morphological features + label.
pub const MOR_CSV: &str = include_str!("../../data/mfeat/mfeat-mor.csv");
/// The attribution that must accompany any copy of the data.
pub const ATTRIBUTION: &str = include_str!("../../data/mfeat/README.md");

/// Loads the bundled mfeat views `pix`, `fou`, `mor` (in that modality order). With
/// `pix_as_image`, the pixel view is a `1×15×16` image instead of a 240-vector.
pub fn load(pix_as_image: bool) -> Result<InMemoryDataset> {
    let view = |name: &str, text| CsvView {
        name: name.to_string(),
        file: format!("mfeat-{name}.csv"),
        text,
        header: true,
        label: LabelColumn::Named(LabelPosition::Last),
        image_shape: None,
    };
    let mut pix = view("pix", PIX_CSV);
    if pix_as_image {
        pix.image_shape = Some([1, 15, 16]);
    }
    let mut ds = load_multiview(
        "mfeat",
        &[pix, view("fou", FOU_CSV), view("mor", MOR_CSV)],
        Some(10),
    )?;
    ds.class_names = Some((0..10).map(|d| format!("digit {d}")).collect());
    Ok(ds)
}
