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
use crate::losses::mar::{MemoryBank, MiningMode, candidates, label_histogram, mean_probabilities};
use crate::metrics::argmax_rows;
use crate::mining::{MiningEvent, RoundMeasure, WeakSetChoice};
use crate::mmanet_settings::MmanetConfig;
use crate::modality::ModalitySet;
use crate::task::{FrozenTeacher, LossContext, LossTerm, MiningEvidence, Task};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

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
    fn dropped_when_nan(&self) -> bool {
        T::OFFICIAL_MAD_NAN_GUARD
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
    fn regularized_samples(&self, ctx: &LossContext<'_, T>) -> usize {
        match &self.weak {
            Some(weak)
                if ctx.epoch > self.cfg.warmup_epochs && T::regularization_head_ran(ctx.output) =>
            {
                ctx.masks.iter().filter(|m| weak.contains(m)).count()
            }
            _ => 0,
        }
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
