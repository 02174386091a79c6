//! MMANet's settings, the `[mmanet]` table of a config ([`MmanetConfig`]): the weights and the
//! schedule of MAD and MAR, the official-or-paper choice for each place where the released code
//! departs from the paper, and how the frozen teacher normalises.
//!
//! A leaf of the crate: the config reads it, the training terms ([`crate::mmanet`]) and the
//! tasks use it, and it imports nothing of theirs (only the enums of the losses it names).

use crate::error::{CoreError, Result};
use crate::losses::mad::{MadImpl, MadReduction};
use crate::losses::mar::{BankMode, CandidateRule, MarLossMode, MiningMode};
use serde::{Deserialize, Serialize};

/// How the frozen teacher's BatchNorm layers normalise while distilling.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, Default, Hash,
)]
#[serde(rename_all = "snake_case")]
pub enum TeacherNorm {
    /// As the released code of each task: running statistics for classification (the teacher
    /// is in eval mode), batch statistics for segmentation (the teacher is never put in eval
    /// mode there).
    #[default]
    Official,
    /// Running statistics (eval mode).
    Running,
    /// Batch statistics (train mode, under no gradient).
    Batch,
}

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
