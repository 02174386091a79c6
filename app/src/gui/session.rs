//! What the app knows in this launch (not persisted): the loaded data, the progress of the
//! current run stage by stage, and the run shown in the mining, explorer and runs panels.

use super::run_timing::TimingReport;
use super::training_job::JobEvent;
use mmanet_core::config::TaskKind;
use mmanet_core::data::MultimodalSource;
use mmanet_core::data::rgbd::class_pixel_counts;
use mmanet_core::experiment::LoadedData;
use mmanet_core::mining::MiningTrace;
use mmanet_core::report::ComparisonTable;
use mmanet_core::runs::RunRecord;
use mmanet_core::train::{EpochSummary, StepReport, TrainEvent};
use std::path::PathBuf;

/// Where the current run is.
#[derive(Clone, Debug, PartialEq)]
pub enum RunStatus {
    /// Nothing running.
    Idle,
    /// Training.
    Running,
    /// Training, held before its next step.
    Paused,
    /// A stop was asked for; waiting for the current step to end.
    Stopping,
    /// Done; results in this folder.
    Finished(PathBuf),
    /// Stopped by the user (the last epoch's checkpoint is kept).
    Stopped(String),
    /// Ended with an error.
    Failed(String),
}

impl RunStatus {
    /// Whether a worker is still alive.
    pub fn is_active(&self) -> bool {
        matches!(
            self,
            RunStatus::Running | RunStatus::Paused | RunStatus::Stopping
        )
    }

    /// One line for the status bar.
    pub fn describe(&self) -> String {
        match self {
            RunStatus::Idle => "idle".into(),
            RunStatus::Running => "training".into(),
            RunStatus::Paused => "paused".into(),
            RunStatus::Stopping => "stopping after this step…".into(),
            RunStatus::Finished(dir) => format!("finished — results in {}", dir.display()),
            RunStatus::Stopped(why) => format!("stopped: {why}"),
            RunStatus::Failed(why) => format!("failed: {why}"),
        }
    }
}

/// One stage's progress (live) or record (loaded).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StageLog {
    /// `teacher`, `sf-md`, `mmanet`, `sf/101`, …
    pub name: String,
    /// Planned epochs.
    pub epochs: usize,
    /// Batches per epoch (0 for a loaded record).
    pub batches: usize,
    /// Epochs done before this launch (a resumed stage).
    pub resumed: usize,
    /// Every training step seen (empty for a loaded record).
    pub steps: Vec<StepReport>,
    /// Every epoch's summary.
    pub summaries: Vec<EpochSummary>,
    /// Selected epoch and its validation score, once finished.
    pub best: Option<(usize, f64)>,
}

impl StageLog {
    /// Fraction of the stage done, 0..=1.
    pub fn fraction(&self) -> f32 {
        if self.best.is_some() {
            return 1.0;
        }
        let total = (self.epochs * self.batches.max(1)) as f32;
        let done = match self.steps.last() {
            Some(s) => (s.epoch * s.batches + s.batch + 1) as f32,
            None => ((self.resumed + self.summaries.len()) * self.batches.max(1)) as f32,
        };
        (done / total.max(1.0)).min(1.0)
    }

    /// The mining this stage did, if it mined.
    pub fn mining(&self) -> Option<MiningTrace> {
        MiningTrace::from_events(EpochSummary::mining_events(&self.summaries))
    }
}

/// Counts and shapes of a loaded dataset.
#[derive(Clone, Debug, PartialEq)]
pub struct DataSummary {
    /// Dataset name.
    pub name: String,
    /// The task the data is for.
    pub task: TaskKind,
    /// `name [shape]` per modality.
    pub modalities: Vec<String>,
    /// Class names.
    pub classes: Vec<String>,
    /// Per split (train, val, test), per class: samples (classification) or labelled pixels
    /// (segmentation).
    pub counts: [Vec<u64>; 3],
    /// What `counts` counts: `samples` or `pixels`.
    pub unit: &'static str,
}

impl DataSummary {
    /// Counts `data`'s splits per class (samples; for segmentation, pixels of each label).
    pub fn of(data: &LoadedData) -> mmanet_core::Result<Self> {
        let split = data.split();
        let parts = [&split.train, &split.val, &split.test];
        let summary = match data {
            LoadedData::Classification(d) => {
                let src: &dyn MultimodalSource = d.source.as_ref();
                let count = |idx: &[usize]| {
                    let mut c = vec![0u64; src.num_classes()];
                    for &i in idx {
                        c[src.label(i)] += 1;
                    }
                    c
                };
                DataSummary {
                    name: src.name().to_string(),
                    task: TaskKind::Classification,
                    modalities: src
                        .modalities()
                        .iter()
                        .map(|m| format!("{} {:?}", m.name, m.kind.shape()))
                        .collect(),
                    classes: src.class_names(),
                    counts: parts.map(|p| count(p)),
                    unit: "samples",
                }
            }
            LoadedData::Segmentation(d) => {
                let src = d.source.source.as_ref();
                let [h, w] = src.eval_size();
                let mut counts: [Vec<u64>; 3] = Default::default();
                for (k, part) in parts.iter().enumerate() {
                    // index 0 is void, not a class
                    counts[k] = class_pixel_counts(src, part)?.pixels[1..].to_vec();
                }
                DataSummary {
                    name: src.name().to_string(),
                    task: TaskKind::Segmentation,
                    modalities: vec![format!("rgb [3, {h}, {w}]"), format!("depth [1, {h}, {w}]")],
                    classes: src.class_names(),
                    counts,
                    unit: "pixels",
                }
            }
        };
        Ok(summary)
    }
}

/// A finished run on show: its record and tables.
#[derive(Clone, Debug)]
pub struct RunView {
    /// What was read from its folder.
    pub record: RunRecord,
    /// Accuracy (and ACER) per combination and method.
    pub tables: Vec<ComparisonTable>,
}

/// The live state of one launch.
pub struct Session {
    /// The loaded data, if any.
    pub data: Option<LoadedData>,
    /// Its summary.
    pub data_summary: Option<DataSummary>,
    /// Why the last data load failed.
    pub data_error: Option<String>,
    /// The current run's status.
    pub status: RunStatus,
    /// The compute device of the current run.
    pub device: Option<String>,
    /// Where the current run trains (the desktop's training thread, the page's web worker).
    pub runs_on: Option<String>,
    /// Where the current run's time went, as its worker last reported.
    pub timing: Option<TimingReport>,
    /// The app's own work on its thread per frame while the run trains, in milliseconds.
    pub ui_frame_ms: Vec<f32>,
    /// The same for the last frames drawn, training or not.
    pub recent_frame_ms: std::collections::VecDeque<f32>,
    /// Messages of the current run, oldest first.
    pub messages: Vec<String>,
    /// Stages of the current (or shown) run, in training order.
    pub stages: Vec<StageLog>,
    /// The run on show in the mining, explorer and runs panels.
    pub run: Option<RunView>,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            data: None,
            data_summary: None,
            data_error: None,
            status: RunStatus::Idle,
            device: None,
            runs_on: None,
            timing: None,
            ui_frame_ms: Vec::new(),
            recent_frame_ms: Default::default(),
            messages: Vec::new(),
            stages: Vec::new(),
            run: None,
        }
    }
}

impl Session {
    /// Replaces the data (kept out, with the error, when its labels cannot be counted).
    pub fn set_data(&mut self, data: LoadedData) -> mmanet_core::Result<()> {
        self.data_summary = Some(DataSummary::of(&data)?);
        self.data = Some(data);
        self.data_error = None;
        Ok(())
    }

    /// The task of the loaded data (classification without data).
    pub fn task(&self) -> TaskKind {
        self.data
            .as_ref()
            .map_or(TaskKind::Classification, LoadedData::task)
    }

    /// Clears the progress of the previous run before a new one.
    pub fn begin_run(&mut self) {
        self.status = RunStatus::Running;
        self.device = None;
        self.runs_on = None;
        self.timing = None;
        self.ui_frame_ms.clear();
        self.messages.clear();
        self.stages.clear();
    }

    /// Applies one event of the training worker. Returns the run folder when the run finished.
    pub fn apply(&mut self, event: JobEvent) -> Option<PathBuf> {
        match event {
            JobEvent::Device(d) => self.device = Some(d),
            JobEvent::RunsOn(r) => self.runs_on = Some(r),
            JobEvent::Timing(t) => self.timing = Some(t),
            JobEvent::Message(m) => self.messages.push(m),
            JobEvent::StageStarted {
                stage,
                epochs,
                batches,
                resumed,
            } => {
                self.stages.retain(|s| s.name != stage);
                self.stages.push(StageLog {
                    name: stage,
                    epochs,
                    batches,
                    resumed,
                    ..StageLog::default()
                });
            }
            JobEvent::Train { stage, event } => {
                if let Some(log) = self.stages.iter_mut().rev().find(|s| s.name == stage) {
                    match event {
                        TrainEvent::Step(s) => log.steps.push(s),
                        TrainEvent::Epoch(e) => log.summaries.push(e),
                        TrainEvent::Finished {
                            best_epoch,
                            best_score,
                        } => log.best = Some((best_epoch, best_score)),
                    }
                }
            }
            JobEvent::Finished(result) => {
                return match result {
                    Ok(dir) => {
                        self.status = RunStatus::Finished(dir.clone());
                        Some(dir)
                    }
                    Err(e) if e.starts_with("stopped by the user") => {
                        self.status = RunStatus::Stopped(e);
                        None
                    }
                    Err(e) => {
                        self.status = RunStatus::Failed(e);
                        None
                    }
                };
            }
        }
        None
    }

    /// Shows a finished run: its tables, and its stages' histories when no live log is kept.
    pub fn show_run(&mut self, record: RunRecord) -> mmanet_core::Result<()> {
        let tables = record.tables()?;
        let live = self
            .stages
            .iter()
            .any(|s| !s.steps.is_empty() && record.stages.iter().any(|(n, _)| *n == s.name));
        if !live {
            self.stages = record
                .stages
                .iter()
                .map(|(name, meta)| StageLog {
                    name: name.clone(),
                    epochs: meta.history.len(),
                    batches: 0,
                    resumed: 0,
                    steps: Vec::new(),
                    summaries: meta.history.clone(),
                    best: Some((meta.best_epoch, meta.best_score)),
                })
                .collect();
        }
        self.run = Some(RunView { record, tables });
        Ok(())
    }

    /// The loaded data's modality names (none without data).
    pub fn modality_names(&self) -> Vec<String> {
        self.data
            .as_ref()
            .map(LoadedData::modality_names)
            .unwrap_or_default()
    }

    /// The loaded data's class names (none without data).
    pub fn class_names(&self) -> Vec<String> {
        self.data_summary
            .as_ref()
            .map(|d| d.classes.clone())
            .unwrap_or_default()
    }

    /// The stage being trained now (the last one started and not finished).
    pub fn current_stage(&self) -> Option<&StageLog> {
        self.stages.last().filter(|s| s.best.is_none())
    }
}
