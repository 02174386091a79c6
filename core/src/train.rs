//! The training loop of one stage (teacher, SF model or deployment student), written as a
//! step-wise state machine so the same code serves the CLI (a blocking loop), the desktop app
//! (a worker thread) and the browser (a few steps per frame): [`StageTrainer::step`] runs one
//! training batch, or the end-of-epoch validation, and reports a [`TrainEvent`].
//!
//! Every read of a device value is asynchronous (`into_data_async`), so the loop never blocks
//! the browser's thread. Extra loss terms (MMANet's MAD and MAR) plug in through
//! [`LossTerm`](crate::task::LossTerm).

use crate::config::{SelectBy, StageConfig};
use crate::diagnostics::{BatchDiagnostics, ProbeBatch, fully_initialized, probe_batch};
use crate::dropout::{DropoutMode, ModalityDropout};
use crate::error::{CoreError, Result};
use crate::eval::read_f32;
use crate::mining::MiningEvent;
use crate::modality::{ModalitySet, all_combinations};
use crate::optim::{MomentumHandle, make_cycled_optimizer, make_optimizer};
use crate::report::TableMetric;
use crate::schedule::LrSchedule;
use crate::task::{LossContext, LossTerm, Task};
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use burn::store::ModuleRecord;
use burn::tensor::Bytes;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// What one call of [`StageTrainer::step`] did.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum TrainEvent {
    /// One training batch.
    Step(StepReport),
    /// An epoch ended (validation done).
    Epoch(EpochSummary),
    /// The stage is complete.
    Finished {
        /// Epoch of the selected (best) model.
        best_epoch: usize,
        /// Its validation score (mean accuracy over the stage's combinations).
        best_score: f64,
    },
}

/// One training batch's numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepReport {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Batch within the epoch (0-based).
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Learning rate of the step.
    pub lr: f64,
    /// SGD's momentum (Adam's β₁) of the step, when the schedule cycles it (one-cycle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    /// Loss terms (unweighted), `ce` first.
    pub losses: Vec<(String, f32)>,
    /// Weighted total loss.
    pub total: f32,
    /// Accuracy of the deployment head on this batch (pixel accuracy for segmentation).
    pub accuracy: f32,
    /// Terms that were NaN and left out of this step ([`LossTerm::dropped_when_nan`]; recorded
    /// as 0 in `losses`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dropped_terms: Vec<String>,
}

/// One epoch's summary.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochSummary {
    /// Epoch (0-based).
    pub epoch: usize,
    /// Learning rate (None: the epoch made no update, as epoch 0 of the official schedule).
    pub lr: Option<f64>,
    /// SGD's momentum (Adam's β₁) of the epoch, when the schedule cycles it (one-cycle).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub momentum: Option<f64>,
    /// Mean of each loss term over the epoch's batches.
    pub losses: Vec<(String, f32)>,
    /// Mean training-batch accuracy (pixel accuracy for segmentation).
    pub train_accuracy: f32,
    /// Validation score per combination of the stage, in paper order: accuracy, or mIoU for
    /// segmentation.
    pub val_accuracy: Vec<(ModalitySet, f64)>,
    /// Mean validation score over those combinations (the selection score).
    pub val_score: f64,
    /// What `val_accuracy` and `val_score` measure (accuracy, or mIoU for segmentation).
    #[serde(default = "accuracy_metric")]
    pub val_metric: TableMetric,
    /// Mean validation ACER over the combinations, when the stage selects by ACER.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub val_acer: Option<f64>,
    /// Whether this epoch's model is the best so far (and eligible).
    pub is_best: bool,
    /// What the loss terms reported this epoch (MAR mining rounds, the weak set), by term name.
    #[serde(default)]
    pub reports: Vec<(String, MiningEvent)>,
    /// Per regularizing term (MAR, SR), how many of the epoch's training samples the
    /// regularization network trained on as members of the weak set.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regularized_samples: Vec<(String, usize)>,
    /// What `gradient_diagnostics` measured on the epoch's first batch (in the first epoch:
    /// its first batch after every parameter was initialised; none if that did not happen).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diagnostics: Option<BatchDiagnostics>,
}

impl EpochSummary {
    /// The mining events of a stage's `history`, each with the epoch that reported it (what
    /// [`crate::mining::MiningTrace::from_events`] reads).
    pub fn mining_events(history: &[EpochSummary]) -> impl Iterator<Item = (usize, &MiningEvent)> {
        history
            .iter()
            .flat_map(|e| e.reports.iter().map(move |(_, event)| (e.epoch, event)))
    }
}

fn accuracy_metric() -> TableMetric {
    TableMetric::Accuracy
}

/// Serializable progress of a stage (saved with checkpoints, used by `--resume`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainerProgress {
    /// Number of completed epochs.
    pub epochs_done: usize,
    /// Best eligible epoch so far.
    pub best_epoch: Option<usize>,
    /// Its score.
    pub best_score: f64,
    /// Summaries of the completed epochs.
    pub history: Vec<EpochSummary>,
    /// Saved state of each loss term, by name.
    #[serde(default)]
    pub term_states: Vec<(String, serde_json::Value)>,
}

/// A stage's optimiser: reading its momentum from `momentum` when the schedule cycles it.
fn stage_optimizer(cfg: &StageConfig, momentum: &Option<MomentumHandle>) -> ModuleOptimizer {
    match momentum {
        Some(handle) => make_cycled_optimizer(cfg, handle.clone()),
        None => make_optimizer(cfg),
    }
}

/// The combinations a stage is validated on: every combination its dropout can draw.
pub fn stage_combinations(dropout: &ModalityDropout, n_modalities: usize) -> Vec<ModalitySet> {
    let possible: Vec<ModalitySet> = dropout
        .probabilities()
        .into_iter()
        .filter(|(_, p)| *p > 0.0)
        .map(|(s, _)| s)
        .collect();
    all_combinations(n_modalities)
        .into_iter()
        .filter(|c| possible.contains(c))
        .collect()
}

/// Serialises a module to bytes (burnpack).
pub fn module_to_bytes<M: Module + Clone>(model: &M) -> Result<Vec<u8>> {
    model
        .clone()
        .into_record()
        .into_bytes()
        .map(|b| b.to_vec())
        .map_err(|e| CoreError::Backend(format!("cannot serialise the model: {e:?}")))
}

/// [`module_to_bytes`] without a blocking read, as a browser's WebGPU device requires: every
/// parameter is read back in one asynchronous transfer, placed on the CPU backend, and
/// serialised there (same bytes as [`module_to_bytes`]).
pub async fn module_to_bytes_async<M: Module + Clone>(model: &M) -> Result<Vec<u8>> {
    use burn::module::{ModuleMapper, ModuleVisitor, Param};

    /// Every float parameter (as saved), flattened, in visiting order.
    #[derive(Default)]
    struct Gather(Vec<Tensor<1>>);
    impl ModuleVisitor for Gather {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.push(param.transform_for_save().val().reshape([-1]));
        }
    }

    /// The same parameters, in the same order, rebuilt on the CPU from the values read.
    struct Place {
        values: Vec<f32>,
        offset: usize,
        device: Device,
    }
    impl ModuleMapper for Place {
        fn map_float<const D: usize>(&mut self, param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            let (id, tensor, _) = param.consume();
            let dims = tensor.dims();
            let n: usize = dims.iter().product();
            let end = (self.offset + n).min(self.values.len());
            let data = TensorData::new(self.values[self.offset..end].to_vec(), dims.to_vec());
            self.offset = end;
            Param::initialized(id, Tensor::from_data(data, &self.device))
        }
    }

    // the inner backend's module: an autodiff module cannot take CPU tensors
    let model = model.valid();
    let mut gather = Gather::default();
    model.visit(&mut gather);
    let sizes: usize = gather.0.iter().map(|t| t.dims()[0]).sum();
    let values = if gather.0.is_empty() {
        Vec::new()
    } else {
        read_f32(Tensor::cat(gather.0, 0)).await?
    };
    if values.len() != sizes {
        return Err(CoreError::Backend(format!(
            "cannot serialise the model: read {} parameter values, expected {sizes}",
            values.len()
        )));
    }
    let mut place = Place {
        values,
        offset: 0,
        device: Device::flex(),
    };
    let on_cpu = model.map(&mut place);
    module_to_bytes(&on_cpu)
}

/// Loads bytes from [`module_to_bytes`] into `fresh` (same architecture).
pub fn module_from_bytes<M: Module>(fresh: M, bytes: Vec<u8>) -> Result<M> {
    // Cast to the module's dtypes: a record we wrote already has them, and a corrupt one that
    // claims an integer dtype for a float parameter is converted instead of panicking in Burn.
    let record = ModuleRecord::from_bytes(Bytes::from_bytes_vec(bytes))
        .map_err(|e| CoreError::Backend(format!("cannot read the model record: {e:?}")))?
        .cast_to_module_dtype();
    fresh
        .try_load_record(record)
        .map_err(|e| CoreError::Backend(format!("the model record does not fit: {e:?}")))
}

/// Trains one stage of task `T`, a step at a time.
pub struct StageTrainer<T: Task> {
    cfg: StageConfig,
    schedule: LrSchedule,
    dropout: ModalityDropout,
    /// Every modality some combination of the stage's dropout has.
    seen: ModalitySet,
    device: Device,
    model: T::Net,
    optim: ModuleOptimizer,
    /// The momentum the optimiser reads, when the schedule cycles it.
    momentum: Option<MomentumHandle>,
    source: Arc<T::Source>,
    train_idx: Vec<usize>,
    val_idx: Vec<usize>,
    mining_idx: Vec<usize>,
    extra: Vec<Box<dyn LossTerm<T>>>,
    val_combinations: Vec<ModalitySet>,
    eval_batch: usize,
    /// The bona-fide class, for ACER selection.
    bona_fide_label: usize,
    progress: TrainerProgress,
    best_model: Option<Vec<u8>>,
    // state of the current epoch
    order: Vec<usize>,
    batch_in_epoch: usize,
    rng: StdRng,
    sums: Vec<(String, f64)>,
    acc_sum: f64,
    steps: usize,
    regularized: Vec<(String, usize)>,
    diagnostics: Option<BatchDiagnostics>,
}

impl<T: Task> StageTrainer<T> {
    /// A trainer for `model` over the given training and validation indices of `source`.
    /// Build the model on `device.autodiff()`: Burn compares devices without their autodiff flag,
    /// so a model built on the plain device would not be tracked.
    pub fn new(
        cfg: StageConfig,
        model: T::Net,
        source: Arc<T::Source>,
        train_idx: Vec<usize>,
        val_idx: Vec<usize>,
        device: &Device,
    ) -> Result<Self> {
        let n = T::num_modalities(&model);
        let dropout = ModalityDropout::from_mode(&cfg.dropout, n)?;
        let batches = if cfg.drop_last {
            train_idx.len() / cfg.batch_size
        } else {
            train_idx.len().div_ceil(cfg.batch_size)
        };
        if batches == 0 {
            return Err(CoreError::data(
                T::source_name(&source),
                format!(
                    "the training split has {} samples, fewer than one batch of {} (set a smaller batch_size or drop_last = false)",
                    train_idx.len(),
                    cfg.batch_size
                ),
            ));
        }
        if val_idx.is_empty() {
            return Err(CoreError::data(
                T::source_name(&source),
                "the validation split is empty",
            ));
        }
        if cfg.select_by == SelectBy::Acer
            && (T::SCORE != TableMetric::Accuracy || T::num_classes(&model) != 2)
        {
            return Err(CoreError::config(
                "select_by",
                format!(
                    "`acer` selects checkpoints on two-class classification data; this stage is {} with {} classes (use \"accuracy\")",
                    T::NAME,
                    T::num_classes(&model)
                ),
            ));
        }
        let val_combinations = stage_combinations(&dropout, n);
        let seen = val_combinations
            .iter()
            .flat_map(|c| c.indices())
            .fold(ModalitySet::EMPTY, ModalitySet::with);
        let device = device.clone().autodiff();
        let model = model.fork(&device);
        let schedule = cfg.schedule();
        let momentum = schedule.momentum_at(0).map(MomentumHandle::new);
        Ok(StageTrainer {
            optim: stage_optimizer(&cfg, &momentum),
            momentum,
            schedule,
            rng: StdRng::seed_from_u64(0),
            cfg,
            dropout,
            seen,
            device,
            model,
            source,
            mining_idx: val_idx.clone(),
            train_idx,
            val_idx,
            extra: Vec::new(),
            val_combinations,
            eval_batch: 256,
            bona_fide_label: 1,
            progress: TrainerProgress::default(),
            best_model: None,
            order: Vec::new(),
            batch_in_epoch: 0,
            sums: Vec::new(),
            acc_sum: 0.0,
            steps: 0,
            regularized: Vec::new(),
            diagnostics: None,
        })
    }

    /// Adds a loss term (MAD, MAR, …).
    pub fn add_loss_term(&mut self, term: Box<dyn LossTerm<T>>) {
        self.extra.push(term);
    }

    /// Uses the training split instead of the validation split for mining (the paper's choice;
    /// the released code mines on the validation split).
    pub fn mine_on_training_split(&mut self) {
        self.mining_idx = self.train_idx.clone();
    }

    /// Sets the batch size of validation passes.
    pub fn set_eval_batch(&mut self, batch: usize) {
        self.eval_batch = batch.max(1);
    }

    /// The bona-fide class for ACER (checkpoint selection with `select_by = "acer"`).
    pub fn set_bona_fide_label(&mut self, label: usize) {
        self.bona_fide_label = label;
    }

    /// The model being trained.
    pub fn model(&self) -> &T::Net {
        &self.model
    }

    /// The stage settings.
    pub fn config(&self) -> &StageConfig {
        &self.cfg
    }

    /// Progress so far.
    pub fn progress(&self) -> &TrainerProgress {
        &self.progress
    }

    /// Batches per epoch.
    pub fn batches_per_epoch(&self) -> usize {
        if self.cfg.drop_last {
            self.train_idx.len() / self.cfg.batch_size
        } else {
            self.train_idx.len().div_ceil(self.cfg.batch_size)
        }
    }

    /// Whether every epoch is done.
    pub fn is_finished(&self) -> bool {
        self.progress.epochs_done >= self.cfg.epochs
    }

    /// The selected (best-validation) model, or the current one if none was selected yet.
    pub fn best_model(&self) -> Result<T::Net> {
        match &self.best_model {
            Some(bytes) => module_from_bytes(self.model.clone(), bytes.clone()),
            None => Ok(self.model.clone()),
        }
    }

    /// Serialised best model, if one was selected.
    pub fn best_model_bytes(&self) -> Option<&[u8]> {
        self.best_model.as_deref()
    }

    /// Snapshot for a checkpoint: (current model, optimiser state, progress). Call between
    /// epochs (after an [`TrainEvent::Epoch`]).
    pub fn checkpoint(&self) -> Result<(Vec<u8>, Vec<u8>, TrainerProgress)> {
        let model = module_to_bytes(&self.model)?;
        let optim =
            self.optim.into_bytes().map(|b| b.to_vec()).map_err(|e| {
                CoreError::Backend(format!("cannot serialise the optimiser: {e:?}"))
            })?;
        let mut progress = self.progress.clone();
        progress.term_states = self
            .extra
            .iter()
            .filter_map(|t| t.state().map(|s| (t.name().to_string(), s)))
            .collect();
        Ok((model, optim, progress))
    }

    /// Restores a checkpoint written by [`StageTrainer::checkpoint`] (and the best model).
    pub fn restore(
        &mut self,
        model: Vec<u8>,
        optim: Vec<u8>,
        progress: TrainerProgress,
        best_model: Option<Vec<u8>>,
    ) -> Result<()> {
        self.model = module_from_bytes(self.model.clone(), model)?;
        self.optim = crate::optim::optimizer_from_bytes(
            stage_optimizer(&self.cfg, &self.momentum),
            Bytes::from_bytes_vec(optim),
            &self.device,
        )
        .map_err(|e| CoreError::Backend(format!("cannot read the optimiser state: {e:?}")))?;
        for (name, state) in &progress.term_states {
            if let Some(term) = self.extra.iter_mut().find(|t| t.name() == name) {
                term.restore_state(state.clone())?;
            }
        }
        self.progress = progress;
        self.best_model = best_model;
        self.order.clear();
        self.batch_in_epoch = 0;
        Ok(())
    }

    fn start_epoch(&mut self) -> Result<()> {
        let epoch = self.progress.epochs_done;
        if let (Some(m), Some(handle)) = (self.schedule.momentum_at(epoch), &self.momentum) {
            // this epoch's momentum / β₁; the optimiser's state carries over
            handle.set(m);
        }
        self.rng = StdRng::seed_from_u64(
            self.cfg
                .seed
                .wrapping_mul(0x9E37_79B9_7F4A_7C15)
                .wrapping_add(epoch as u64 + 1),
        );
        self.order = self.train_idx.clone();
        self.order.shuffle(&mut self.rng);
        self.batch_in_epoch = 0;
        self.sums.clear();
        self.acc_sum = 0.0;
        self.steps = 0;
        self.regularized.clear();
        self.diagnostics = None;
        Ok(())
    }

    /// Runs one unit of work: a training batch, or the end-of-epoch validation.
    pub async fn step(&mut self) -> Result<TrainEvent> {
        if self.is_finished() {
            return Ok(TrainEvent::Finished {
                best_epoch: self.progress.best_epoch.unwrap_or(0),
                best_score: self.progress.best_score,
            });
        }
        let epoch = self.progress.epochs_done;
        if self.order.is_empty() && self.batch_in_epoch == 0 {
            self.start_epoch()?;
        }
        let batches = self.batches_per_epoch();
        let lr = self.schedule.lr_at(epoch);
        if self.batch_in_epoch < batches && lr.is_some() {
            let report = self.train_batch(epoch, lr.unwrap_or(0.0)).await?;
            return Ok(TrainEvent::Step(report));
        }
        let summary = self.end_epoch(epoch, lr).await?;
        Ok(TrainEvent::Epoch(summary))
    }

    /// Trains one batch exactly as a batch of epoch `epoch` would be (loss terms past their
    /// warm-up switch on), at the stage's base learning rate, with no validation: the
    /// training order restarts when its batches are used up. For `mmanet bench train`, which
    /// times full steps without running the epochs before them.
    pub async fn train_step_at(&mut self, epoch: usize) -> Result<StepReport> {
        if self.order.is_empty() || self.batch_in_epoch >= self.batches_per_epoch() {
            self.start_epoch()?;
        }
        let lr = self.cfg.lr;
        self.train_batch(epoch, lr).await
    }

    async fn train_batch(&mut self, epoch: usize, lr: f64) -> Result<StepReport> {
        let bs = self.cfg.batch_size;
        let start = self.batch_in_epoch * bs;
        let end = (start + bs).min(self.order.len());
        let idx: Vec<usize> = self.order[start..end].to_vec();
        let batches = self.batches_per_epoch();
        let (inputs, targets) = T::load_batch(
            &self.model,
            &self.source,
            &idx,
            Some(&mut self.rng),
            &self.device,
        )?;
        let sets = self.dropout.sample_batch(&mut self.rng, idx.len());
        // the epoch's first batch on which every parameter is initialised (the first batches
        // of a run draw them)
        if self.cfg.gradient_diagnostics
            && self.diagnostics.is_none()
            && fully_initialized(&self.model)
        {
            let batch = ProbeBatch::<T> {
                inputs: &inputs,
                targets: &targets,
                masks: &sets,
                seen: self.seen,
                epoch,
            };
            self.diagnostics = Some(
                probe_batch(&self.model, &batch, &mut self.extra, &self.val_combinations).await?,
            );
        }
        let output = T::forward_in_stage(&self.model, &inputs, &sets, self.seen);
        let ce = T::task_loss(&output, &targets);
        let mut names = vec!["ce".to_string()];
        let mut terms = vec![ce.clone()];
        // per extra term: its weight, and whether a NaN value drops it for the step
        let mut weighted = Vec::new();
        let mut total = ce.clone();
        let ctx = LossContext {
            output: &output,
            inputs: &inputs,
            targets: &targets,
            masks: &sets,
            epoch,
        };
        for term in &mut self.extra {
            if let Some(v) = term.compute(&ctx) {
                total = total + v.clone() * term.weight();
                names.push(term.name().to_string());
                weighted.push((term.weight(), term.dropped_when_nan()));
                terms.push(v);
                let n = term.regularized_samples(&ctx);
                if n > 0 {
                    match self.regularized.iter_mut().find(|(t, _)| t == term.name()) {
                        Some((_, count)) => *count += n,
                        None => self.regularized.push((term.name().to_string(), n)),
                    }
                }
            }
        }
        let correct = T::batch_score(&output, &targets);
        // one readback for every number of the step
        let mut readout = terms.clone();
        readout.push(total.clone());
        readout.push(correct);
        let mut values = read_f32(Tensor::cat(readout, 0).detach()).await?;
        let mut total_v = values[values.len() - 2];
        // the official segmentation guard: a NaN distillation loss is zero for this step
        let dropped: Vec<usize> = (1..terms.len())
            .filter(|&k| weighted[k - 1].1 && values[k].is_nan())
            .collect();
        if !dropped.is_empty() {
            total = ce;
            total_v = values[0];
            for (j, (term, &(weight, _))) in terms[1..].iter().zip(&weighted).enumerate() {
                if dropped.contains(&(j + 1)) {
                    values[j + 1] = 0.0;
                } else {
                    total = total + term.clone() * weight;
                    total_v += values[j + 1] * weight as f32;
                }
            }
        }
        let dropped_terms: Vec<String> = dropped.iter().map(|&k| names[k].clone()).collect();
        if !total_v.is_finite() {
            return Err(CoreError::Training(format!(
                "the loss became {total_v} at epoch {epoch}, batch {} (terms: {:?}); lower the learning rate or check the data for extreme values — the last checkpoint is kept",
                self.batch_in_epoch,
                names.iter().zip(&values).collect::<Vec<_>>()
            )));
        }
        let grads = GradientsParams::from_grads(total.backward(), &self.model);
        self.model = self.optim.step(lr, self.model.clone(), grads);
        let losses: Vec<(String, f32)> = names.into_iter().zip(values.iter().copied()).collect();
        for (name, v) in &losses {
            match self.sums.iter_mut().find(|(n, _)| n == name) {
                Some((_, s)) => *s += *v as f64,
                None => self.sums.push((name.clone(), *v as f64)),
            }
        }
        let accuracy = values[values.len() - 1];
        self.acc_sum += accuracy as f64;
        self.steps += 1;
        self.batch_in_epoch += 1;
        Ok(StepReport {
            epoch,
            batch: self.batch_in_epoch - 1,
            batches,
            lr,
            momentum: self.schedule.momentum_at(epoch),
            losses,
            total: total_v,
            accuracy,
            dropped_terms,
        })
    }

    async fn end_epoch(&mut self, epoch: usize, lr: Option<f64>) -> Result<EpochSummary> {
        let eval_model = self.model.valid();
        let eval_device = self.device.clone().without_autodiff();
        let by_acer = self.cfg.select_by == SelectBy::Acer;
        let report = T::evaluate(
            &eval_model,
            &self.source,
            &self.val_idx,
            &self.val_combinations,
            self.eval_batch,
            &eval_device,
            by_acer.then_some(self.bona_fide_label),
            "val",
        )
        .await?;
        let val_accuracy: Vec<(ModalitySet, f64)> = report
            .rows
            .iter()
            .map(|r| (r.combination, r.seg.as_ref().map_or(r.accuracy, |s| s.miou)))
            .collect();
        let val_score = report.selection_score();
        let val_acer = if by_acer {
            Some(
                report
                    .mean_acer()
                    .ok_or_else(|| CoreError::config("select_by", "`acer` needs two-class data"))?,
            )
        } else {
            None
        };
        let eligible = epoch >= self.cfg.select_after_epoch;
        let better = match (val_acer, self.progress.best_epoch) {
            (_, None) => true,
            // the lowest ACER (ties: the earlier epoch, as with accuracy)
            (Some(acer), Some(best)) => self
                .progress
                .history
                .get(best)
                .and_then(|e| e.val_acer)
                .is_none_or(|b| acer < b),
            (None, Some(_)) => val_score > self.progress.best_score,
        };
        let is_best = eligible && better;
        if is_best {
            self.progress.best_epoch = Some(epoch);
            self.progress.best_score = val_score;
            self.best_model = Some(module_to_bytes_async(&self.model).await?);
        }
        let mut reports = Vec::new();
        for term in &mut self.extra {
            let combos = term.mining_request(epoch);
            if !combos.is_empty() {
                let evidence = T::mining_evidence(
                    &eval_model,
                    &self.source,
                    &self.mining_idx,
                    &combos,
                    self.eval_batch,
                    &eval_device,
                )
                .await?;
                if let Some(r) = term.on_mining(epoch, evidence) {
                    reports.push((term.name().to_string(), r));
                }
            }
            if let Some(r) = term.end_of_epoch(epoch) {
                reports.push((term.name().to_string(), r));
            }
        }
        let steps = self.steps.max(1) as f64;
        let summary = EpochSummary {
            epoch,
            lr,
            momentum: self.schedule.momentum_at(epoch),
            losses: self
                .sums
                .iter()
                .map(|(n, s)| (n.clone(), (s / steps) as f32))
                .collect(),
            train_accuracy: (self.acc_sum / steps) as f32,
            val_accuracy,
            val_score,
            val_metric: T::SCORE,
            val_acer,
            is_best,
            reports,
            regularized_samples: std::mem::take(&mut self.regularized),
            diagnostics: self.diagnostics.take(),
        };
        self.progress.history.push(summary.clone());
        self.progress.epochs_done += 1;
        self.order.clear();
        self.batch_in_epoch = 0;
        Ok(summary)
    }
}

/// Dropout mode that always shows the full set of modalities (the teacher).
pub fn full_modalities(n: usize) -> DropoutMode {
    DropoutMode::Fixed {
        combination: vec![1; n],
    }
}
