//! Running one training stage (teacher, an SF model, or a student method) of any [`Task`]:
//! reuse a finished stage whose settings match, resume an interrupted one from its checkpoint,
//! or train it, writing an atomic checkpoint after every epoch and the selected model at the
//! end. Progress goes to a [`ProgressSink`] (the CLI's bars, the app's channel, the page).

use crate::checkpoint::StageCheckpoint;
use crate::config::{ExperimentConfig, StageConfig};
use crate::error::{CoreError, Result};
use crate::prepare::TaskData;
use crate::store::RunStore;
use crate::task::LossTerm;
use crate::task::Task;
use crate::train::{StageTrainer, TrainEvent, module_from_bytes, module_to_bytes_async};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Receives progress from a running experiment (the CLI draws progress bars from it).
pub trait ProgressSink {
    /// A stage starts (`teacher`, `sf-md`, `sf/101`, …).
    fn stage_started(
        &mut self,
        stage: &str,
        epochs: usize,
        batches_per_epoch: usize,
        resumed_epochs: usize,
    );
    /// A training event of the current stage.
    fn event(&mut self, stage: &str, event: &TrainEvent);
    /// A line of information.
    fn message(&mut self, text: &str);
    /// Asked before every training step: `true` stops the run with [`CoreError::Cancelled`]
    /// (the stage's last epoch checkpoint stays on disk, so `--resume` continues from it).
    fn cancelled(&mut self) -> bool {
        false
    }
    /// Awaited before every training step, before [`ProgressSink::cancelled`]: the browser's
    /// sink hands control back to the page here (and waits while paused). The default returns
    /// at once.
    fn between_steps(&mut self) -> StepYield<'_> {
        Box::pin(std::future::ready(()))
    }
}

/// What [`ProgressSink::between_steps`] returns.
pub type StepYield<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

/// A sink that ignores everything.
pub struct SilentProgress;

impl ProgressSink for SilentProgress {
    fn stage_started(&mut self, _: &str, _: usize, _: usize, _: usize) {}
    fn event(&mut self, _: &str, _: &TrainEvent) {}
    fn message(&mut self, _: &str) {}
}

/// What a finished stage was trained from; a stage whose fingerprint matches is reused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageMeta {
    /// JSON of everything that determines the model (data, model, stage settings).
    pub fingerprint: String,
    /// Selected epoch.
    pub best_epoch: usize,
    /// Its validation score.
    pub best_score: f64,
    /// Per-epoch history.
    pub history: Vec<crate::train::EpochSummary>,
}

/// One stage to train: its folder, settings, fingerprint and extra loss terms.
pub struct StageSpec<'a, T: Task> {
    /// Display name and folder name relative to the run folder (`teacher`, `sf-md`, `sf/110`).
    pub name: String,
    /// Settings.
    pub stage: &'a StageConfig,
    /// Identity of the stage's inputs.
    pub fingerprint: String,
    /// Train a regularization head next to the deployment trunk (SR, MMANet).
    pub with_reg_head: bool,
    /// Extra loss terms (MAD, MAR, …).
    pub terms: Vec<Box<dyn LossTerm<T>>>,
    /// Mine on the training split instead of the validation split.
    pub mine_on_training_split: bool,
}

impl<'a, T: Task> StageSpec<'a, T> {
    /// A plain stage (cross-entropy only).
    pub fn plain(name: impl Into<String>, stage: &'a StageConfig, fingerprint: String) -> Self {
        StageSpec {
            name: name.into(),
            stage,
            fingerprint,
            with_reg_head: false,
            terms: Vec::new(),
            mine_on_training_split: false,
        }
    }
}

/// Whether stages may be trained or must already be finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// Train what is missing (reuse what is finished and matches).
    Train,
    /// Only load finished stages; a missing one is an error.
    EvalOnly,
}

/// Runs a future to completion on this thread (native only: in a browser it would block the page).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    burn::tensor::read_sync(f)
}

/// What every stage of one experiment run shares.
pub struct RunContext<'a, T: Task> {
    /// The experiment.
    pub cfg: &'a ExperimentConfig,
    /// The data.
    pub data: &'a TaskData<T>,
    /// The (plain) compute device.
    pub device: &'a Device,
    /// Continue interrupted stages from their checkpoints.
    pub resume: bool,
    /// Train, or only load finished stages.
    pub mode: RunMode,
}

/// Trains one stage (or reuses/resumes it) into `store` under `<stage name>/` and returns its
/// selected model and record.
pub async fn run_stage<T: Task>(
    spec: StageSpec<'_, T>,
    ctx: &RunContext<'_, T>,
    store: &mut dyn RunStore,
    sink: &mut dyn ProgressSink,
) -> Result<(T::Net, StageMeta)> {
    let RunContext {
        cfg,
        data,
        device,
        resume,
        mode,
    } = *ctx;
    let model_file = format!("{}/model.bpk", spec.name);
    let meta_file = format!("{}/meta.json", spec.name);
    let ckpt_file = format!("{}/checkpoint.bin", spec.name);
    // the checkpoint before the newest, kept so a corrupt newest one costs an epoch, not the run
    let prev_file = format!("{}/checkpoint.prev.bin", spec.name);
    let fingerprint_file = format!("{}/fingerprint.json", spec.name);
    let dir = store.location(&spec.name);
    let model_path = store.location(&model_file);
    device.seed(spec.stage.seed);
    // Built on the autodiff device: parameters must be tracked from the start.
    let build =
        |reg_head: bool| T::build_net(cfg, &data.source, reg_head, &device.clone().autodiff());
    let fresh = build(spec.with_reg_head)?;
    // Reuse a finished stage with the same fingerprint.
    if let (Ok(meta_text), Ok(bytes)) = (store.read_text(&meta_file), store.read(&model_file))
        && let Ok(meta) = serde_json::from_str::<StageMeta>(&meta_text)
    {
        if meta.fingerprint == spec.fingerprint {
            sink.message(&format!(
                "{}: reusing the finished model in {} (best epoch {}, val {:.2}%)",
                spec.name,
                dir.display(),
                meta.best_epoch,
                meta.best_score * 100.0
            ));
            return Ok((module_from_bytes(build(false)?, bytes)?, meta));
        }
        sink.message(&format!(
            "{}: the settings changed since {} was trained; training again",
            spec.name,
            model_path.display()
        ));
    }
    if mode == RunMode::EvalOnly {
        return Err(CoreError::Checkpoint {
            path: model_path,
            message: format!(
                "no finished `{}` model trained with these settings; run `mmanet train` with this config first",
                spec.name
            ),
        });
    }
    let mut trainer = StageTrainer::new(
        spec.stage.clone(),
        fresh,
        data.source.clone(),
        data.split.train.clone(),
        data.split.val.clone(),
        device,
    )?;
    trainer.set_eval_batch(cfg.eval.batch_size);
    trainer.set_bona_fide_label(cfg.eval.bona_fide_label);
    if spec.mine_on_training_split {
        trainer.mine_on_training_split();
    }
    for term in spec.terms {
        trainer.add_loss_term(term);
    }
    if store.exists(&ckpt_file) || store.exists(&prev_file) {
        let same =
            store.read_text(&fingerprint_file).ok().as_deref() == Some(spec.fingerprint.as_str());
        let ckpt_path = store.location(&ckpt_file);
        if resume && same {
            // the newest checkpoint; if it is missing or does not load, the one before it
            let mut failure: Option<CoreError> = None;
            for file in [&ckpt_file, &prev_file] {
                if !store.exists(file) {
                    continue;
                }
                let path = store.location(file);
                let restored = store
                    .read(file)
                    .and_then(|bytes| StageCheckpoint::from_bytes(&bytes, &path))
                    .and_then(|ck| {
                        let epochs = ck.progress.epochs_done;
                        trainer.restore(ck.model, ck.optimizer, ck.progress, ck.best_model)?;
                        Ok(epochs)
                    });
                match restored {
                    Ok(epochs) => {
                        if let Some(e) = &failure {
                            sink.message(&format!(
                                "{}: {e}; resuming from the previous checkpoint instead",
                                spec.name
                            ));
                        }
                        sink.message(&format!(
                            "{}: resuming after epoch {epochs} from {}",
                            spec.name,
                            path.display()
                        ));
                        failure = None;
                        break;
                    }
                    Err(e) => {
                        failure.get_or_insert(e);
                    }
                }
            }
            if let Some(e) = failure {
                return Err(e);
            }
        } else if resume {
            return Err(CoreError::Checkpoint {
                path: ckpt_path,
                message: "was written with different settings; delete the folder or rerun with the original config".into(),
            });
        } else {
            sink.message(&format!(
                "{}: an interrupted run is in {}; starting over (pass --resume to continue it)",
                spec.name,
                dir.display()
            ));
        }
    }
    store.write(&fingerprint_file, spec.fingerprint.as_bytes())?;
    sink.stage_started(
        &spec.name,
        spec.stage.epochs,
        trainer.batches_per_epoch(),
        trainer.progress().epochs_done,
    );
    loop {
        sink.between_steps().await;
        if sink.cancelled() {
            return Err(CoreError::Cancelled {
                stage: spec.name.clone(),
            });
        }
        let event = trainer.step().await?;
        sink.event(&spec.name, &event);
        match event {
            // In a browser, optimiser state can only be read synchronously, which WebGPU
            // forbids: a page's run keeps no epoch checkpoints (a stopped stage starts over).
            TrainEvent::Epoch(_) if cfg!(target_family = "wasm") => {}
            TrainEvent::Epoch(_) => {
                let (model, optimizer, progress) = trainer.checkpoint()?;
                let checkpoint = StageCheckpoint {
                    progress,
                    model,
                    optimizer,
                    best_model: trainer.best_model_bytes().map(<[u8]>::to_vec),
                };
                let bytes = checkpoint.to_bytes()?;
                if store.exists(&ckpt_file) {
                    store.rename(&ckpt_file, &prev_file)?;
                }
                store.write(&ckpt_file, &bytes)?;
            }
            TrainEvent::Finished { .. } => break,
            TrainEvent::Step(_) => {}
        }
    }
    // The deployment network: the regularization head is for training only.
    let best = T::deployment(trainer.best_model()?);
    store.write(&model_file, &module_to_bytes_async(&best).await?)?;
    let progress = trainer.progress();
    let meta = StageMeta {
        fingerprint: spec.fingerprint.clone(),
        best_epoch: progress.best_epoch.unwrap_or(0),
        best_score: progress.best_score,
        history: progress.history.clone(),
    };
    let meta_json = serde_json::to_vec_pretty(&meta)
        .map_err(|e| CoreError::Training(format!("cannot encode stage meta: {e}")))?;
    store.write(&meta_file, &meta_json)?;
    Ok((best, meta))
}
