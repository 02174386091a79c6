//! Where the app stands, as a serialisable report: the browser page's test hook
//! (`web/src/lib.rs`'s `status()`, read by `web/tests/browser.mjs`) sends it as JSON, and the
//! app's own tests read it the same way.

use super::Tab;
use super::predictor::{ModelOutput, ModelPrediction};
use mmanet_core::config::TaskKind;
use mmanet_core::data::rgbd::Label;
use mmanet_core::report::ComparisonTable;
use serde::Serialize;

/// The app's work per frame (eframe's `cpu_usage`: the update and the tessellation, not the
/// browser's drawing).
#[derive(Debug, Serialize)]
pub struct FrameCost {
    /// Frames measured.
    pub frames: usize,
    /// Median, in milliseconds.
    pub median: f32,
    /// Longest, in milliseconds.
    pub longest: f32,
}

impl FrameCost {
    /// The summary of `ms` (none when empty).
    pub fn of(ms: &[f32]) -> Option<Self> {
        let mut sorted = ms.to_vec();
        sorted.sort_by(f32::total_cmp);
        Some(FrameCost {
            frames: sorted.len(),
            median: *sorted.get(sorted.len() / 2)?,
            longest: *sorted.last()?,
        })
    }
}

/// The app's state ([`super::MmanetApp::status_report`]).
#[derive(Debug, Serialize)]
pub struct StatusReport<'a> {
    /// `idle`, `running`, `paused`, `stopping`, `finished`, `stopped` or `failed`.
    pub state: &'static str,
    /// The panel on show.
    pub tab: Tab,
    /// The status line's text.
    pub status: String,
    /// The current run's compute device.
    pub device: Option<&'a str>,
    /// Where the current run trains: `thread mmanet-training` on the desktop, `web worker
    /// mmanet-compute` in the page.
    pub runs_on: Option<&'a str>,
    /// Where the current run's time went, phase by phase.
    pub timing: Option<super::run_timing::TimingReport>,
    /// The app's own work per frame on its thread while the current run trained.
    pub ui_frame_ms: Option<FrameCost>,
    /// The same over the last frames drawn (up to 120), training or not.
    pub recent_frame_ms: Option<FrameCost>,
    /// In a browser, the page's own WebAssembly memory in MB (the compute worker's is in
    /// `timing`); none natively.
    pub page_memory_mb: Option<f64>,
    /// The loaded dataset's name.
    pub data: Option<&'a str>,
    /// Why the last data load failed.
    pub data_error: Option<&'a str>,
    /// The last notice shown (why a run could not start, …).
    pub notice: Option<&'a str>,
    /// Each stage of the current or shown run.
    pub stages: Vec<StageStatus<'a>>,
    /// The shown run's per-combination tables.
    pub tables: Option<&'a [ComparisonTable]>,
    /// The explorer's models and last answer.
    pub explorer: ExplorerStatus<'a>,
    /// Number of classes of the loaded data.
    pub classes: Option<usize>,
    /// The loaded data's task.
    pub task: Option<TaskKind>,
    /// Per split (train, val, test), per class: samples, or labelled pixels.
    pub class_counts: Option<&'a [Vec<u64>; 3]>,
    /// What `class_counts` counts: `samples` or `pixels`.
    pub count_unit: Option<&'static str>,
}

/// One stage's progress.
#[derive(Debug, Serialize)]
pub struct StageStatus<'a> {
    /// `teacher`, `sf-md`, `mmanet`, …
    pub name: &'a str,
    /// Planned epochs.
    pub epochs: usize,
    /// Epochs finished.
    pub epochs_done: usize,
    /// Training steps seen live (none for a loaded record).
    pub steps: usize,
    /// Selected epoch and its validation score, once finished.
    pub best: Option<(usize, f64)>,
    /// The weak set MAR mined (combination labels), once chosen.
    pub weak_set: Option<Vec<String>>,
}

/// The explorer: which bundle is open, which models answer, and the last answer.
#[derive(Debug, Serialize)]
pub struct ExplorerStatus<'a> {
    /// The open bundle's name.
    pub bundle: Option<&'a str>,
    /// The models' labels, or why they did not load.
    pub models: Option<ModelsStatus<'a>>,
    /// The last prediction.
    pub prediction: Option<PredictionStatus<'a>>,
}

/// The explorer's models: their labels, or `{ "error": … }`.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ModelsStatus<'a> {
    /// The loaded models' labels.
    Labels(&'a [String]),
    /// Why they did not load.
    Error {
        /// The reason.
        error: &'a str,
    },
}

/// One prediction of the explorer.
#[derive(Debug, Serialize)]
pub struct PredictionStatus<'a> {
    /// The sample's index.
    pub sample: usize,
    /// The combination asked for (`pix+fou`).
    pub modalities: String,
    /// Each model's answer (empty when the prediction failed).
    pub models: Vec<ModelAnswer<'a>>,
    /// Why the prediction failed.
    pub error: Option<&'a str>,
}

/// One model's answer: class probabilities, or a scene's scores and the classes its label map
/// shows.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ModelAnswer<'a> {
    /// Classification.
    Probabilities {
        /// The model's label.
        model: &'a str,
        /// Class probabilities.
        probs: &'a [f32],
    },
    /// Segmentation.
    Segmentation {
        /// The model's label.
        model: &'a str,
        /// The classes in the label map, ascending.
        classes_present: Vec<Label>,
        /// The scene's mIoU, when it has labels.
        miou: Option<f64>,
        /// The scene's pixel accuracy, when it has labels.
        pixel_accuracy: Option<f64>,
    },
}

impl<'a> ModelAnswer<'a> {
    /// The answer of one model's prediction.
    pub(super) fn of(p: &'a ModelPrediction) -> Self {
        match &p.output {
            ModelOutput::Probabilities(probs) => ModelAnswer::Probabilities {
                model: &p.label,
                probs,
            },
            ModelOutput::Segmentation(seg) => {
                let mut present = seg.map.classes.clone();
                present.sort_unstable();
                present.dedup();
                ModelAnswer::Segmentation {
                    model: &p.label,
                    classes_present: present,
                    miou: seg.scores.map(|s| s.miou),
                    pixel_accuracy: seg.scores.map(|s| s.pixel_accuracy),
                }
            }
        }
    }
}
