//! The TOML *dataset manifest*: how users bring their own multimodal data.
//!
//! ```toml
//! name = "my-sensors"
//! format = "csv"            # one CSV per modality, rows aligned
//! classes = 10              # optional: otherwise largest label + 1
//!
//! [[modality]]
//! name = "pix"
//! file = "mfeat-pix.csv"    # relative to the manifest's folder
//! header = true             # skip the first line
//! label = "last"            # "first", "last", "none" or a 1-based column number
//! image_shape = [1, 15, 16] # optional: read rows as C×H×W images
//!
//! [[modality]]
//! name = "mor"
//! file = "mfeat-mor.csv"
//! label = "last"
//!
//! [split]                   # stratified, seeded
//! train = 0.6
//! val = 0.2
//! test = 0.2
//! seed = 0
//! ```
//!
//! Image datasets use `format = "casia-surf"` (list files) or `format = "cefa"` (the CeFA folder
//! layout, split by `images.cefa_protocol`, default `race_prot_rdi_4@5`); see
//! [`super::imagelist`]. RGB-D segmentation datasets use `format = "nyuv2"` or
//! `format = "cityscapes"` with an `[rgbd]` table (`root`, …); see [`super::rgbd_trees`]. A CASIA-SURF list file (`.txt`) opened where a manifest is expected
//! stands for the dataset in its folder, with the official list names and image settings
//! ([`surf_manifest_for_list`]).

use super::InMemoryDataset;
use super::csv::{CsvView, LabelColumn, load_multiview};
use super::imagelist::ImageListConfig;
use super::rgbd_trees::{RgbdLayout, RgbdTreeConfig};
use super::split::SplitRule;
use crate::error::{CoreError, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A parsed dataset manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Dataset name.
    pub name: String,
    /// Storage layout.
    #[serde(default)]
    pub format: ManifestFormat,
    /// Number of classes (optional for CSV: largest label + 1).
    #[serde(default)]
    pub classes: Option<usize>,
    /// Optional class names.
    #[serde(default)]
    pub class_names: Option<Vec<String>>,
    /// The modalities, in index order (CSV format).
    #[serde(default, rename = "modality")]
    pub modalities: Vec<CsvModality>,
    /// The split rule (CSV format; image lists bring their own splits).
    #[serde(default)]
    pub split: SplitRule,
    /// The image-list settings (`casia-surf` format).
    #[serde(default)]
    pub images: Option<ImageListConfig>,
    /// The RGB-D tree settings (`nyuv2` and `cityscapes` formats, segmentation).
    #[serde(default)]
    pub rgbd: Option<RgbdTreeConfig>,
}

/// Storage layouts a manifest can describe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ManifestFormat {
    /// One CSV per modality, rows aligned.
    #[default]
    Csv,
    /// CASIA-SURF list files: `rgb depth ir label` per line.
    CasiaSurf,
    /// The CeFA folder layout, split by a protocol.
    Cefa,
    /// NYUv2 as ESANet's prepare script writes it (segmentation).
    Nyuv2,
    /// Cityscapes as ESANet's prepare script writes it (segmentation).
    Cityscapes,
}

impl ManifestFormat {
    /// The RGB-D layout of a segmentation format (`None` for classification formats).
    pub fn rgbd_layout(self) -> Option<RgbdLayout> {
        match self {
            ManifestFormat::Nyuv2 => Some(RgbdLayout::Nyuv2),
            ManifestFormat::Cityscapes => Some(RgbdLayout::Cityscapes),
            _ => None,
        }
    }
}

/// One modality of a CSV manifest.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CsvModality {
    /// Modality name.
    pub name: String,
    /// CSV file, relative to the manifest's folder.
    pub file: PathBuf,
    /// Whether the first line is a header.
    #[serde(default)]
    pub header: bool,
    /// Where the label column is (`"first"`, `"last"`, `"none"` or a 1-based number).
    #[serde(default)]
    pub label: LabelColumn,
    /// Read rows as `C×H×W` images.
    #[serde(default)]
    pub image_shape: Option<[usize; 3]>,
}

/// Reads and parses a manifest file.
pub fn read_manifest(path: &Path) -> Result<Manifest> {
    if path
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("txt"))
    {
        return surf_manifest_for_list(path);
    }
    let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
    parse_manifest(&text, &path.display().to_string())
}

/// The official CASIA-SURF list files: train, validation, test.
pub const SURF_LISTS: [&str; 3] = [
    "train_list.txt",
    "val_private_list.txt",
    "test_private_list.txt",
];

/// The manifest of a CASIA-SURF list file opened directly (a `.txt` given where a manifest is
/// expected): the list's folder is the dataset root and must hold the three official lists
/// ([`SURF_LISTS`]); the image settings are the official ones. Other list names need a manifest.
pub fn surf_manifest_for_list(list: &Path) -> Result<Manifest> {
    let folder = list.parent().unwrap_or(Path::new("."));
    let missing: Vec<&str> = SURF_LISTS
        .iter()
        .copied()
        .filter(|name| !folder.join(name).is_file())
        .collect();
    if !missing.is_empty() {
        return Err(CoreError::data(
            list.display().to_string(),
            format!(
                "a CASIA-SURF list opened directly needs the official lists beside it; {} holds no {} (write a manifest to name other lists)",
                folder.display(),
                missing.join(", ")
            ),
        ));
    }
    let text = format!(
        "name = \"casia-surf\"\nformat = \"casia-surf\"\n[images]\nroot = \".\"\ntrain_list = \"{}\"\nval_list = \"{}\"\ntest_list = \"{}\"\n",
        SURF_LISTS[0], SURF_LISTS[1], SURF_LISTS[2]
    );
    parse_manifest(&text, &list.display().to_string())
}

/// Parses manifest text; `file` names it in errors.
pub fn parse_manifest(text: &str, file: &str) -> Result<Manifest> {
    let manifest: Manifest = toml::from_str(text).map_err(|e| toml_error(text, file, &e))?;
    if let Some(k) = manifest.classes
        && (k == 0 || k > super::MAX_CLASSES)
    {
        return Err(CoreError::config(
            "classes",
            format!(
                "{file}: {k} classes; 1..={} are supported",
                super::MAX_CLASSES
            ),
        ));
    }
    if manifest.modalities.len() > crate::modality::MAX_DATA_MODALITIES {
        return Err(CoreError::config(
            "modality",
            format!(
                "{file}: {} modalities; at most {} are supported (every combination is evaluated)",
                manifest.modalities.len(),
                crate::modality::MAX_DATA_MODALITIES
            ),
        ));
    }
    if manifest.format == ManifestFormat::Csv && manifest.modalities.is_empty() {
        return Err(CoreError::config(
            "modality",
            format!("{file}: a CSV manifest needs at least one [[modality]] table"),
        ));
    }
    if manifest.format.rgbd_layout().is_some() {
        if manifest.rgbd.is_none() {
            return Err(CoreError::config(
                "rgbd",
                format!(
                    "{file}: an nyuv2 / cityscapes manifest needs an [rgbd] table with its `root`"
                ),
            ));
        }
    } else if manifest.format != ManifestFormat::Csv {
        let Some(images) = &manifest.images else {
            return Err(CoreError::config(
                "images",
                format!("{file}: an image manifest needs an [images] table"),
            ));
        };
        if manifest.format == ManifestFormat::CasiaSurf {
            for (field, v) in [
                ("images.train_list", &images.train_list),
                ("images.val_list", &images.val_list),
                ("images.test_list", &images.test_list),
            ] {
                if v.is_none() {
                    return Err(CoreError::config(
                        field,
                        format!("{file}: a casia-surf manifest names its three list files"),
                    ));
                }
            }
        }
    }
    Ok(manifest)
}

/// A TOML parse error as a [`CoreError::Parse`] naming `file`, line and column.
pub fn toml_error(text: &str, file: &str, e: &toml::de::Error) -> CoreError {
    let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
    CoreError::Parse {
        file: file.to_string(),
        line,
        column: Some(column),
        message: e.message().to_string(),
    }
}

/// 1-based line and column of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

/// Loads the CSV files a manifest names, relative to `base_dir`.
pub fn load_csv_manifest(manifest: &Manifest, base_dir: &Path) -> Result<InMemoryDataset> {
    let mut texts = Vec::with_capacity(manifest.modalities.len());
    for m in &manifest.modalities {
        let path = base_dir.join(&m.file);
        let text = std::fs::read_to_string(&path).map_err(|e| CoreError::io(&path, e))?;
        texts.push((path, text));
    }
    let views: Vec<CsvView<'_>> = manifest
        .modalities
        .iter()
        .zip(&texts)
        .map(|(m, (path, text))| CsvView {
            name: m.name.clone(),
            file: path.display().to_string(),
            text,
            header: m.header,
            label: m.label.clone(),
            image_shape: m.image_shape,
        })
        .collect();
    let mut ds = load_multiview(&manifest.name, &views, manifest.classes)?;
    if let Some(names) = &manifest.class_names {
        if names.len() != ds.classes {
            return Err(CoreError::config(
                "class_names",
                format!("{} names for {} classes", names.len(), ds.classes),
            ));
        }
        ds.class_names = Some(names.clone());
    }
    Ok(ds)
}
