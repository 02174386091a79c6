//! MMANet's training terms, plugged into the [`StageTrainer`](crate::train::StageTrainer) as
//! [`LossTerm`]s: margin-aware distillation from the teacher ([`MadTerm`]) and the
//! regularization head trained on the mined weak combinations ([`MarTerm`]), plus the ablation
//! baselines SP (unweighted relation distillation) and SR (regularize every single modality).
//!
//! Schedule (spec §1.5, §4): both terms are off while `epoch ≤ warmup_epochs`; MAR mines after
//! each epoch of `mining_epochs` and fixes the weak set at the end of epoch `warmup_epochs`.
//! Total loss `L = CE + α·MAD + β·MAR`.
//!
//! Both terms are generic over the [`Task`]: the task says how the teacher's relations are
//! distilled and how the regularization network's loss reads the weak combinations; mining, the
//! memory bank, the warm-up and the checkpointed state are shared.

use crate::error::{CoreError, Result};
use crate::losses::mad::{MadImpl, MadReduction};
use crate::losses::mar::{
    BankMode, CandidateRule, MarLossMode, MemoryBank, MiningMode, candidates, label_histogram,
    mean_probabilities,
};
use crate::metrics::argmax_rows;
use crate::mining::{MiningEvent, RoundMeasure, WeakSetChoice};
use crate::modality::ModalitySet;
use crate::task::{FrozenTeacher, Task, TeacherNorm};
use crate::train::{LossContext, LossTerm, MiningEvidence};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// Which split MAR mines on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "snake_case")]
pub enum MiningSplit {
    /// The validation split (the released code).
    #[default]
    Validation,
    /// The training split (the paper).
    Training,
}

/// MMANet settings (the `[mmanet]` table). Defaults are the official anti-spoofing values.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MmanetConfig {
    /// α, the weight of MAD (official 30).
    #[serde(default = "default_alpha")]
    pub alpha: f64,
    /// β, the weight of MAR (official 0.5).
    #[serde(default = "default_beta")]
    pub beta: f64,
    /// MAD and MAR are off while `epoch ≤ warmup_epochs` (0-based; official 5).
    #[serde(default = "default_warmup")]
    pub warmup_epochs: usize,
    /// Epochs after which MAR mines (official 2, 3, 4); each must be ≤ `warmup_epochs`.
    #[serde(default = "default_mining_epochs")]
    pub mining_epochs: Vec<usize>,
    /// MAD reduction: `official` (column weighting) or `paper` (row weighting).
    #[serde(default)]
    pub mad: MadReduction,
    /// Prediction distribution: `official` (argmax histogram + extra softmax) or `paper`
    /// (mean softmax, plain KL).
    #[serde(default)]
    pub mining: MiningMode,
    /// Candidates: `official` (combinations of n − 1 modalities) or `paper` (all but the full).
    #[serde(default)]
    pub candidates: CandidateRule,
    /// Memory bank: `sum` (official) or `mean` (paper).
    #[serde(default)]
    pub bank: BankMode,
    /// MAR loss: `official` ((n_W/B)·Σ CE) or `paper` (masked CE / B).
    #[serde(default)]
    pub mar_loss: MarLossMode,
    /// Split MAR mines on: `validation` (official) or `training` (paper).
    #[serde(default)]
    pub mining_split: MiningSplit,
    /// How MAD is computed: `auto` (the WGSL kernels on wgpu, tensor ops elsewhere), `kernel`
    /// or `ops` (`--mad-impl`). An implementation choice, not part of a run's identity: it is
    /// left out of the serialized config, so switching it does not invalidate a checkpoint.
    #[serde(default, skip_serializing)]
    pub mad_impl: MadImpl,
    /// How the frozen teacher's BatchNorm layers normalise while distilling: `official`
    /// (running statistics for classification, batch statistics for segmentation, as each
    /// released loop), `running` or `batch`.
    #[serde(default)]
    pub teacher_norm: TeacherNorm,
}

fn default_alpha() -> f64 {
    30.0
}
fn default_beta() -> f64 {
    0.5
}
fn default_warmup() -> usize {
    5
}
fn default_mining_epochs() -> Vec<usize> {
    vec![2, 3, 4]
}

impl Default for MmanetConfig {
    fn default() -> Self {
        MmanetConfig {
            alpha: default_alpha(),
            beta: default_beta(),
            warmup_epochs: default_warmup(),
            mining_epochs: default_mining_epochs(),
            mad: MadReduction::default(),
            mining: MiningMode::default(),
            candidates: CandidateRule::default(),
            bank: BankMode::default(),
            mar_loss: MarLossMode::default(),
            mining_split: MiningSplit::default(),
            mad_impl: MadImpl::default(),
            teacher_norm: TeacherNorm::default(),
        }
    }
}

/// A warm-up that fits a student run of `epochs` epochs (at least 3): about half of it, with
/// at least one epoch after it for MAD and MAR.
pub fn warmup_for(epochs: usize) -> usize {
    (epochs / 2).min(epochs.saturating_sub(2)).max(1)
}

/// The mining epochs for a warm-up: the (up to) three epochs before it, as the official 2, 3, 4
/// before 5.
pub fn mining_epochs_before(warmup: usize) -> Vec<usize> {
    (warmup.saturating_sub(3)..warmup).collect()
}

impl MmanetConfig {
    /// Pulls the warm-up and its mining epochs inside a student run of `epochs` epochs when they
    /// do not fit ([`warmup_for`], [`mining_epochs_before`]); `true` when anything changed.
    /// Runs shorter than 3 epochs are left for [`MmanetConfig::validate`] to refuse.
    pub fn fit_warmup(&mut self, epochs: usize) -> bool {
        if epochs < 3 || self.warmup_epochs + 1 < epochs {
            return false;
        }
        self.warmup_epochs = warmup_for(epochs);
        self.mining_epochs = mining_epochs_before(self.warmup_epochs);
        true
    }

    /// Checks values against the number of epochs of the student stage.
    pub fn validate(&self, student_epochs: usize) -> Result<()> {
        for (field, v) in [("mmanet.alpha", self.alpha), ("mmanet.beta", self.beta)] {
            if !(v.is_finite() && v >= 0.0) {
                return Err(CoreError::config(field, format!("must be ≥ 0, got {v}")));
            }
        }
        if self.warmup_epochs + 1 >= student_epochs {
            return Err(CoreError::config(
                "mmanet.warmup_epochs",
                format!(
                    "{} leaves no epoch with MAD/MAR on (the student trains {student_epochs} epochs)",
                    self.warmup_epochs
                ),
            ));
        }
        if self.mining_epochs.is_empty() {
            return Err(CoreError::config(
                "mmanet.mining_epochs",
                "list at least one epoch",
            ));
        }
        if let Some(e) = self.mining_epochs.iter().find(|&&e| e > self.warmup_epochs) {
            return Err(CoreError::config(
                "mmanet.mining_epochs",
                format!(
                    "epoch {e} is after the warm-up ({}): the weak set is fixed by then",
                    self.warmup_epochs
                ),
            ));
        }
        Ok(())
    }
}

/// Margin-aware distillation from a frozen teacher (or the unweighted SP baseline).
pub struct MadTerm<T: Task> {
    teacher: FrozenTeacher<T>,
    reduction: MadReduction,
    imp: MadImpl,
    alpha: f64,
    warmup_epochs: usize,
    name: String,
}

impl<T: Task> MadTerm<T> {
    /// MAD with `reduction` (`Sp` gives the SP baseline), computed as `imp` says (check it
    /// against the device first with [`MadImpl::use_kernels`]). `teacher` is frozen for the
    /// training `device`, its BatchNorm layers normalising as `norm` says.
    pub fn new(
        teacher: &T::Net,
        cfg: &MmanetConfig,
        reduction: MadReduction,
        device: &Device,
    ) -> Self {
        MadTerm {
            teacher: FrozenTeacher::new(teacher, cfg.teacher_norm, device),
            reduction,
            imp: cfg.mad_impl,
            alpha: cfg.alpha,
            warmup_epochs: cfg.warmup_epochs,
            name: if reduction == MadReduction::Sp {
                "sp".into()
            } else {
                "mad".into()
            },
        }
    }
}

impl<T: Task> LossTerm<T> for MadTerm<T> {
    fn name(&self) -> &str {
        &self.name
    }
    fn weight(&self) -> f64 {
        self.alpha
    }
    fn compute(&mut self, ctx: &LossContext<'_, T>) -> Option<Tensor<1>> {
        if ctx.epoch <= self.warmup_epochs {
            return None;
        }
        Some(T::distill(&self.teacher, ctx, self.reduction, self.imp))
    }
}

/// Where the regularization head's weak set comes from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum WeakSource {
    /// Mined by contrastive ranking (MAR).
    Mined(MemoryBank),
    /// A fixed set: every single-modality combination (the SR baseline), or one given
    /// ([`MarTerm::fixed`]).
    Singles(Vec<ModalitySet>),
}

/// The regularization-head loss on the weak combinations (MAR, or SR).
pub struct MarTerm<T: Task> {
    cfg: MmanetConfig,
    n_modalities: usize,
    source: WeakSource,
    weak: Option<Vec<ModalitySet>>,
    name: String,
    task: std::marker::PhantomData<fn() -> T>,
}

/// What MAR keeps in checkpoints.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct MarState {
    source: WeakSource,
    weak: Option<Vec<ModalitySet>>,
}

impl<T: Task> MarTerm<T> {
    /// MAR: mines the weak combination among the configured candidates.
    pub fn mined(cfg: &MmanetConfig, n_modalities: usize) -> Self {
        let bank = MemoryBank::new(
            n_modalities,
            candidates(n_modalities, cfg.candidates),
            cfg.mining,
            cfg.bank,
        );
        MarTerm {
            cfg: cfg.clone(),
            n_modalities,
            source: WeakSource::Mined(bank),
            weak: None,
            name: "mar".into(),
            task: std::marker::PhantomData,
        }
    }

    /// SR: regularizes every single modality, no mining.
    pub fn singles(cfg: &MmanetConfig, n_modalities: usize) -> Self {
        let singles: Vec<ModalitySet> = (0..n_modalities).map(ModalitySet::single).collect();
        MarTerm {
            cfg: cfg.clone(),
            n_modalities,
            weak: Some(singles.clone()),
            source: WeakSource::Singles(singles),
            name: "sr".into(),
            task: std::marker::PhantomData,
        }
    }

    /// A regularization head on a given weak set, with no mining (e.g. the paper's mined
    /// rgb+ir, for `mmanet bench train`).
    pub fn fixed(cfg: &MmanetConfig, n_modalities: usize, weak: Vec<ModalitySet>) -> Self {
        MarTerm {
            cfg: cfg.clone(),
            n_modalities,
            weak: Some(weak.clone()),
            source: WeakSource::Singles(weak),
            name: "mar".into(),
            task: std::marker::PhantomData,
        }
    }

    /// The weak set, once known.
    pub fn weak_set(&self) -> Option<&[ModalitySet]> {
        self.weak.as_deref()
    }

    /// The memory bank (MAR only).
    pub fn bank(&self) -> Option<&MemoryBank> {
        match &self.source {
            WeakSource::Mined(b) => Some(b),
            WeakSource::Singles(_) => None,
        }
    }
}

impl<T: Task> LossTerm<T> for MarTerm<T> {
    fn name(&self) -> &str {
        &self.name
    }
    fn weight(&self) -> f64 {
        self.cfg.beta
    }
    fn compute(&mut self, ctx: &LossContext<'_, T>) -> Option<Tensor<1>> {
        if ctx.epoch <= self.cfg.warmup_epochs {
            return None;
        }
        let weak = self.weak.as_ref()?;
        T::regularization_loss(ctx, weak, self.cfg.mar_loss)
    }
    fn mining_request(&self, epoch: usize) -> Vec<ModalitySet> {
        match &self.source {
            WeakSource::Mined(bank) if self.cfg.mining_epochs.contains(&epoch) => {
                let mut c = bank.candidates.clone();
                c.push(ModalitySet::full(self.n_modalities));
                c
            }
            _ => Vec::new(),
        }
    }
    fn on_mining(&mut self, epoch: usize, evidence: MiningEvidence) -> Option<MiningEvent> {
        let WeakSource::Mined(bank) = &mut self.source else {
            return None;
        };
        let measure = match evidence {
            MiningEvidence::Probabilities { rows, classes } => RoundMeasure::Distributions(
                rows.iter()
                    .map(|p| match bank.mode {
                        MiningMode::Official => label_histogram(&argmax_rows(p, classes), classes),
                        MiningMode::Paper => mean_probabilities(p, classes),
                    })
                    .collect(),
            ),
            MiningEvidence::Miou(miou) => RoundMeasure::Miou(miou),
        };
        Some(MiningEvent::Round(bank.add_round(epoch, measure).clone()))
    }
    fn end_of_epoch(&mut self, epoch: usize) -> Option<MiningEvent> {
        if epoch != self.cfg.warmup_epochs {
            return None;
        }
        let WeakSource::Mined(bank) = &self.source else {
            return None;
        };
        self.weak = bank.weak_set();
        Some(MiningEvent::WeakSetChosen(WeakSetChoice {
            weak_set: self.weak.clone()?,
            bank: bank.values(),
            candidates: bank.candidates.clone(),
        }))
    }
    fn state(&self) -> Option<serde_json::Value> {
        serde_json::to_value(MarState {
            source: self.source.clone(),
            weak: self.weak.clone(),
        })
        .ok()
    }
    fn restore_state(&mut self, state: serde_json::Value) -> Result<()> {
        let s: MarState = serde_json::from_value(state)
            .map_err(|e| CoreError::Training(format!("cannot restore the MAR state: {e}")))?;
        self.source = s.source;
        self.weak = s.weak;
        Ok(())
    }
}
