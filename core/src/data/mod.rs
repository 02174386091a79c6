//! Multimodal datasets: one tensor per modality (image `C×H×W` or feature vector) plus a label.
//!
//! * [`InMemoryDataset`] holds every sample in memory (multi-view CSV, mfeat, synthetic data);
//! * [`imagelist`] reads CASIA-SURF / CeFA image trees lazily, decoding on demand;
//! * [`split`] makes seeded, stratified train/val/test splits;
//! * [`Batch`] and [`make_batch`] turn sample indices into a dense batch for the model;
//! * [`rgbd`]: RGB-D segmentation scenes, their preprocessing and augmentation, and
//!   [`scenes`], a synthetic RGB-D scene generator, and [`rgbd_trees`], NYUv2 and Cityscapes;

pub mod csv;
pub mod imagelist;
pub mod manifest;
pub mod mfeat;
pub mod rgbd;
pub mod rgbd_trees;
pub mod scenes;
pub mod split;
pub mod synthetic;

use crate::error::{CoreError, Result};
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

/// The most classes a classification dataset may have (labels are class indices below it): a
/// label read from a file is checked against it before anything is sized by the class count.
pub const MAX_CLASSES: usize = 65_536;

/// The most memory a generated dataset may take (8 GiB): the generators check their settings
/// against it before allocating.
pub const MAX_GENERATED_BYTES: u64 = 8 << 30;

/// Checks that `samples` samples of `bytes_per_sample` bytes fit in [`MAX_GENERATED_BYTES`];
/// the error names `field`.
pub fn check_generated_size(field: &str, samples: usize, bytes_per_sample: u64) -> Result<()> {
    let total = (samples as u64).checked_mul(bytes_per_sample);
    match total {
        Some(t) if t <= MAX_GENERATED_BYTES => Ok(()),
        _ => Err(CoreError::config(
            field,
            format!(
                "{samples} samples of {bytes_per_sample} bytes would take more than the {} GiB a generated dataset may use; lower the samples or the size",
                MAX_GENERATED_BYTES >> 30
            ),
        )),
    }
}

/// The largest image side an image-list dataset may ask for.
pub const MAX_IMAGE_SIDE: usize = 4096;

/// The segmentation network's input-size rule, checked where scene sizes are read: at most
/// [`MAX_IMAGE_SIDE`] a side, and multiples of 32 (ESANet's decoder doubles 1/32 back up to
/// full size).
pub fn check_input_size(height: usize, width: usize, field: &str) -> Result<()> {
    if height > MAX_IMAGE_SIDE || width > MAX_IMAGE_SIDE {
        return Err(CoreError::config(
            field,
            format!("at most {} px a side, got {height}×{width}", MAX_IMAGE_SIDE),
        ));
    }
    if height == 0 || width == 0 || !height.is_multiple_of(32) || !width.is_multiple_of(32) {
        return Err(CoreError::config(
            field,
            format!(
                "the segmentation network needs a height and width divisible by 32, got {height}×{width}"
            ),
        ));
    }
    Ok(())
}

/// The shape of one modality's sample.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModalityKind {
    /// A flat feature vector of `dim` values.
    Vector {
        /// Number of features.
        dim: usize,
    },
    /// An image, `channels × height × width`, row-major.
    Image {
        /// Channels (3 for RGB, 1 for depth or IR, or 3 when replicated as the official code does).
        channels: usize,
        /// Height in pixels.
        height: usize,
        /// Width in pixels.
        width: usize,
    },
}

impl ModalityKind {
    /// Number of values in one sample of this modality.
    pub fn numel(&self) -> usize {
        match *self {
            ModalityKind::Vector { dim } => dim,
            ModalityKind::Image {
                channels,
                height,
                width,
            } => channels * height * width,
        }
    }

    /// The per-sample tensor shape (`[dim]` or `[C, H, W]`).
    pub fn shape(&self) -> Vec<usize> {
        match *self {
            ModalityKind::Vector { dim } => vec![dim],
            ModalityKind::Image {
                channels,
                height,
                width,
            } => vec![channels, height, width],
        }
    }
}

/// Name and shape of one modality.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModalitySpec {
    /// Name (`rgb`, `depth`, `ir`, `pix`, …).
    pub name: String,
    /// Shape of one sample.
    #[serde(flatten)]
    pub kind: ModalityKind,
}

/// Anything that yields multimodal samples by index.
pub trait MultimodalSource: Send + Sync {
    /// Dataset name, used in messages.
    fn name(&self) -> &str;
    /// The modalities, in index order.
    fn modalities(&self) -> &[ModalitySpec];
    /// Number of classes; labels are `0..num_classes`.
    fn num_classes(&self) -> usize;
    /// Number of samples.
    fn len(&self) -> usize;
    /// Whether there are no samples.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Label of sample `i`.
    fn label(&self, i: usize) -> usize;
    /// Writes modality `m` of sample `i` into `out` (length = that modality's `numel`). With
    /// `augment`, a training-time augmentation is drawn from that RNG; the same geometric
    /// transform must be applied to every modality of a sample, so sources that augment draw it
    /// once per sample in [`MultimodalSource::load_sample`].
    fn load_sample(
        &self,
        i: usize,
        augment: Option<&mut StdRng>,
        out: &mut [Vec<f32>],
    ) -> Result<()>;
    /// The modality names, in index order.
    fn modality_names(&self) -> Vec<String> {
        self.modalities().iter().map(|m| m.name.clone()).collect()
    }
    /// Class names for display (defaults to the label numbers).
    fn class_names(&self) -> Vec<String> {
        (0..self.num_classes()).map(|c| c.to_string()).collect()
    }
    /// Whether a new sample can be read from files with [`MultimodalSource::sample_from_files`].
    fn reads_sample_files(&self) -> bool {
        false
    }
    /// How image files become this dataset's evaluation inputs, for sources read from image
    /// files (`None` for in-memory data).
    fn image_preprocessing(&self) -> Option<imagelist::ImagePreprocessing> {
        None
    }
    /// Reads one sample that is not in the dataset from `paths`, one file per modality in index
    /// order, preprocessed as the dataset's evaluation samples are. Sources whose samples are
    /// not files refuse.
    fn sample_from_files(&self, paths: &[std::path::PathBuf]) -> Result<Vec<Vec<f32>>> {
        let _ = paths;
        Err(CoreError::data(
            self.name(),
            "this dataset's samples are not image files; pick one of its test samples",
        ))
    }
}

/// A dataset held entirely in memory.
#[derive(Clone, Debug, PartialEq)]
pub struct InMemoryDataset {
    /// Dataset name.
    pub name: String,
    /// Modalities in index order.
    pub modalities: Vec<ModalitySpec>,
    /// Number of classes.
    pub classes: usize,
    /// Optional class names (length = `classes`).
    pub class_names: Option<Vec<String>>,
    /// Per modality, all samples' values concatenated (sample-major).
    pub features: Vec<Vec<f32>>,
    /// One label per sample.
    pub labels: Vec<usize>,
}

impl InMemoryDataset {
    /// Checks that every modality holds `len × numel` values and every label is in range.
    pub fn validate(&self) -> Result<()> {
        let n = self.labels.len();
        if n == 0 {
            return Err(CoreError::data(&self.name, "the dataset has no samples"));
        }
        if self.modalities.is_empty() {
            return Err(CoreError::data(&self.name, "the dataset has no modalities"));
        }
        if self.modalities.len() > crate::modality::MAX_DATA_MODALITIES {
            return Err(CoreError::data(
                &self.name,
                format!(
                    "{} modalities; at most {} are supported (every combination is evaluated)",
                    self.modalities.len(),
                    crate::modality::MAX_DATA_MODALITIES
                ),
            ));
        }
        if self.classes == 0 || self.classes > MAX_CLASSES {
            return Err(CoreError::data(
                &self.name,
                format!("{} classes; 1..={MAX_CLASSES} are supported", self.classes),
            ));
        }
        if self.features.len() != self.modalities.len() {
            return Err(CoreError::data(
                &self.name,
                format!(
                    "{} modalities declared but {} feature blocks",
                    self.modalities.len(),
                    self.features.len()
                ),
            ));
        }
        for (spec, block) in self.modalities.iter().zip(&self.features) {
            if block.len() != n * spec.kind.numel() {
                return Err(CoreError::data(
                    &self.name,
                    format!(
                        "modality `{}` holds {} values, expected {} samples × {} = {}",
                        spec.name,
                        block.len(),
                        n,
                        spec.kind.numel(),
                        n * spec.kind.numel()
                    ),
                ));
            }
        }
        if let Some((i, l)) = self
            .labels
            .iter()
            .enumerate()
            .find(|(_, l)| **l >= self.classes)
        {
            return Err(CoreError::data(
                &self.name,
                format!("sample {i} has label {l}, outside 0..{}", self.classes),
            ));
        }
        Ok(())
    }

    /// Standardises every vector modality to zero mean and unit variance using the statistics
    /// of the samples in `fit_on` (the training split), and returns those statistics.
    pub fn standardize_vectors(&mut self, fit_on: &[usize]) -> Vec<Option<FeatureScaler>> {
        let mut scalers = Vec::with_capacity(self.modalities.len());
        for (spec, block) in self.modalities.iter().zip(self.features.iter_mut()) {
            if let ModalityKind::Vector { dim } = spec.kind {
                let scaler = FeatureScaler::fit(block, dim, fit_on);
                scaler.apply(block);
                scalers.push(Some(scaler));
            } else {
                scalers.push(None);
            }
        }
        scalers
    }
}

/// Per-feature mean and standard deviation of a vector modality.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FeatureScaler {
    /// Per-feature mean.
    pub mean: Vec<f32>,
    /// Per-feature standard deviation (1 where the feature is constant).
    pub std: Vec<f32>,
}

impl FeatureScaler {
    /// Fits on the rows `rows` of a sample-major `block` of width `dim`.
    pub fn fit(block: &[f32], dim: usize, rows: &[usize]) -> Self {
        let n = rows.len().max(1) as f64;
        let mut mean = vec![0f64; dim];
        for &r in rows {
            for (m, v) in mean.iter_mut().zip(&block[r * dim..(r + 1) * dim]) {
                *m += *v as f64;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0f64; dim];
        for &r in rows {
            for ((s, v), m) in var
                .iter_mut()
                .zip(&block[r * dim..(r + 1) * dim])
                .zip(&mean)
            {
                *s += (*v as f64 - m).powi(2);
            }
        }
        let std = var
            .iter()
            .map(|s| {
                let sd = (s / n).sqrt();
                if sd > 1e-8 { sd as f32 } else { 1.0 }
            })
            .collect();
        FeatureScaler {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            std,
        }
    }

    /// Standardises every row of `block` in place.
    pub fn apply(&self, block: &mut [f32]) {
        let dim = self.mean.len();
        for row in block.chunks_mut(dim) {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
                *v = (*v - m) / s;
            }
        }
    }
}

impl MultimodalSource for InMemoryDataset {
    fn name(&self) -> &str {
        &self.name
    }
    fn modalities(&self) -> &[ModalitySpec] {
        &self.modalities
    }
    fn num_classes(&self) -> usize {
        self.classes
    }
    fn len(&self) -> usize {
        self.labels.len()
    }
    fn label(&self, i: usize) -> usize {
        self.labels[i]
    }
    fn load_sample(
        &self,
        i: usize,
        _augment: Option<&mut StdRng>,
        out: &mut [Vec<f32>],
    ) -> Result<()> {
        for ((spec, block), dst) in self.modalities.iter().zip(&self.features).zip(out) {
            let n = spec.kind.numel();
            dst.clear();
            dst.extend_from_slice(&block[i * n..(i + 1) * n]);
        }
        Ok(())
    }
    fn class_names(&self) -> Vec<String> {
        self.class_names
            .clone()
            .unwrap_or_else(|| (0..self.classes).map(|c| c.to_string()).collect())
    }
}

/// A batch in host memory: per modality, `batch × numel` values; plus labels.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// Per modality, the samples' values concatenated.
    pub inputs: Vec<Vec<f32>>,
    /// Per modality, the full tensor shape (`[B, dim]` or `[B, C, H, W]`).
    pub shapes: Vec<Vec<usize>>,
    /// One label per sample.
    pub labels: Vec<usize>,
    /// Dataset indices of the samples.
    pub indices: Vec<usize>,
}

/// Gathers the samples `indices` of `source` into one [`Batch`].
pub fn make_batch(
    source: &dyn MultimodalSource,
    indices: &[usize],
    mut augment: Option<&mut StdRng>,
) -> Result<Batch> {
    let specs = source.modalities();
    let mut inputs: Vec<Vec<f32>> = specs
        .iter()
        .map(|s| Vec::with_capacity(indices.len() * s.kind.numel()))
        .collect();
    let mut scratch: Vec<Vec<f32>> = specs.iter().map(|_| Vec::new()).collect();
    let mut labels = Vec::with_capacity(indices.len());
    for &i in indices {
        source.load_sample(i, augment.as_deref_mut(), &mut scratch)?;
        for ((dst, src), spec) in inputs.iter_mut().zip(&scratch).zip(specs) {
            if src.len() != spec.kind.numel() {
                return Err(CoreError::data(
                    source.name(),
                    format!(
                        "sample {i}, modality `{}`: {} values, expected {}",
                        spec.name,
                        src.len(),
                        spec.kind.numel()
                    ),
                ));
            }
            dst.extend_from_slice(src);
        }
        labels.push(source.label(i));
    }
    let shapes = specs
        .iter()
        .map(|s| {
            let mut shape = vec![indices.len()];
            shape.extend(s.kind.shape());
            shape
        })
        .collect();
    Ok(Batch {
        inputs,
        shapes,
        labels,
        indices: indices.to_vec(),
    })
}
