//! Running one training stage (teacher, an SF model, or a student method) of any [`Task`], in
//! the order [`run_stage`] takes it: reuse a finished stage whose fingerprint matches
//! ([`reuse`]), else resume an interrupted one from its checkpoint ([`resume`]), train it with an
//! atomic checkpoint after every epoch ([`train_loop`]), and save the selected model ([`save`]).
//! The files it keeps are listed in [`files`].

mod files;
mod resume;
mod reuse;
mod save;
mod train_loop;

use crate::config::{ExperimentConfig, StageConfig};
use crate::error::{CoreError, Result};
use crate::experiment::progress::ProgressSink;
use crate::experiment::stage_id::StageId;
use crate::prepare::TaskData;
use crate::store::RunStore;
use crate::task::{LossTerm, Task};
use crate::train::StageTrainer;
use burn::prelude::*;
use files::StageFiles;
use serde::{Deserialize, Serialize};

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

/// One stage to train: its identity, settings and extra loss terms.
pub struct StageSpec<'a, T: Task> {
    /// Name (also its folder in the run) and fingerprint.
    pub id: StageId,
    /// Settings.
    pub stage: &'a StageConfig,
    /// Train a regularization head next to the deployment trunk (SR, MMANet).
    pub with_reg_head: bool,
    /// Extra loss terms (MAD, MAR, …).
    pub terms: Vec<Box<dyn LossTerm<T>>>,
    /// Mine on the training split instead of the validation split.
    pub mine_on_training_split: bool,
}

impl<'a, T: Task> StageSpec<'a, T> {
    /// A plain stage (cross-entropy only).
    pub fn plain(id: StageId, stage: &'a StageConfig) -> Self {
        StageSpec {
            id,
            stage,
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
    let files = StageFiles::new(&spec.id.name);
    // Built on the autodiff device: parameters must be tracked from the start.
    let build =
        |reg_head: bool| T::build_net(cfg, &data.source, reg_head, &device.clone().autodiff());
    // seeded and built with no other thread's draw in between (crate::rng)
    let fresh = {
        let _rng = crate::rng::burn_rng();
        device.seed(spec.stage.seed);
        build(spec.with_reg_head)?
    };
    if let Some(done) = reuse::finished_stage(&spec.id, &files, store, sink, || build(false))? {
        return Ok(done);
    }
    if mode == RunMode::EvalOnly {
        return Err(CoreError::Checkpoint {
            path: store.location(&files.model),
            message: format!(
                "no finished `{}` model trained with these settings; run `mmanet train` with this config first",
                spec.id.name
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
    resume::resume_or_restart(&mut trainer, &spec.id, &files, resume, store, sink)?;
    store.write(&files.fingerprint, spec.id.fingerprint.as_bytes())?;
    sink.stage_started(
        &spec.id.name,
        spec.stage.epochs,
        trainer.batches_per_epoch(),
        trainer.progress().epochs_done,
    );
    train_loop::train_to_end(&mut trainer, &spec.id.name, &files, store, sink).await?;
    save::save_selected(&trainer, &spec.id, &files, store).await
}
