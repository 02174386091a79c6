//! The experiment's entry points, for any [`ExperimentData`]: [`run_experiment_in`]
//! (asynchronous, into any store) and [`run_experiment`] (native; the run folder, blocking).

use super::outcome::ExperimentOutcome;
use super::progress::{ProgressSink, block_on};
use super::run::run_task;
use super::stage::RunMode;
use crate::config::ExperimentConfig;
use crate::error::Result;
use crate::prepare::{LoadedData, PreparedData, TaskData};
use crate::store::{FolderStore, RunStore};
use crate::task::Task;
use burn::prelude::*;

/// The future of one experiment run.
pub type ExperimentFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<ExperimentOutcome>> + 'a>>;

/// Data an experiment runs on: one task's ([`TaskData`]), classification data as prepared
/// ([`PreparedData`]), or data loaded for whichever task the config names ([`LoadedData`]).
pub trait ExperimentData {
    /// The experiment `cfg` describes on this data, for its task (see [`run_experiment_in`]).
    fn run_in<'a>(
        &'a self,
        cfg: &'a ExperimentConfig,
        device: &'a Device,
        store: &'a mut dyn RunStore,
        resume: bool,
        mode: RunMode,
        sink: &'a mut dyn ProgressSink,
    ) -> ExperimentFuture<'a>;
}

impl<T: Task> ExperimentData for TaskData<T> {
    fn run_in<'a>(
        &'a self,
        cfg: &'a ExperimentConfig,
        device: &'a Device,
        store: &'a mut dyn RunStore,
        resume: bool,
        mode: RunMode,
        sink: &'a mut dyn ProgressSink,
    ) -> ExperimentFuture<'a> {
        Box::pin(run_task(cfg, self, device, store, resume, mode, sink))
    }
}

impl ExperimentData for PreparedData {
    fn run_in<'a>(
        &'a self,
        cfg: &'a ExperimentConfig,
        device: &'a Device,
        store: &'a mut dyn RunStore,
        resume: bool,
        mode: RunMode,
        sink: &'a mut dyn ProgressSink,
    ) -> ExperimentFuture<'a> {
        let data = self.task_data();
        Box::pin(async move { run_task(cfg, &data, device, store, resume, mode, sink).await })
    }
}

impl ExperimentData for LoadedData {
    fn run_in<'a>(
        &'a self,
        cfg: &'a ExperimentConfig,
        device: &'a Device,
        store: &'a mut dyn RunStore,
        resume: bool,
        mode: RunMode,
        sink: &'a mut dyn ProgressSink,
    ) -> ExperimentFuture<'a> {
        match self {
            LoadedData::Classification(d) => d.run_in(cfg, device, store, resume, mode, sink),
            LoadedData::Segmentation(d) => d.run_in(cfg, device, store, resume, mode, sink),
        }
    }
}

/// Runs the experiment `cfg` describes on `data`: teacher, then each method; evaluates all on
/// the test split; writes every file into `store`. `device` should be a plain (non-autodiff)
/// device. Awaits [`ProgressSink::between_steps`] before every training step.
pub async fn run_experiment_in(
    cfg: &ExperimentConfig,
    data: &(impl ExperimentData + ?Sized),
    device: &Device,
    store: &mut dyn RunStore,
    resume: bool,
    mode: RunMode,
    sink: &mut dyn ProgressSink,
) -> Result<ExperimentOutcome> {
    data.run_in(cfg, device, store, resume, mode, sink).await
}

/// [`run_experiment_in`] on the run folder `<output_dir>/<name>`, locked while it runs
/// (native targets; blocks until done).
pub fn run_experiment(
    cfg: &ExperimentConfig,
    data: &(impl ExperimentData + ?Sized),
    device: &Device,
    resume: bool,
    mode: RunMode,
    sink: &mut dyn ProgressSink,
) -> Result<ExperimentOutcome> {
    let run_dir = cfg.output_dir.join(&cfg.name);
    let _lock = crate::fsutil::RunLock::acquire(&run_dir)?;
    let mut store = FolderStore::new(&run_dir);
    let mut outcome = block_on(data.run_in(cfg, device, &mut store, resume, mode, sink))?;
    outcome.run_dir = run_dir;
    Ok(outcome)
}
