//! The loss-term seam: what an extra term of the training loss (MMANet's MAD and MAR, the SP
//! and SR baselines) sees of a step ([`LossContext`]), what it does ([`LossTerm`]), and what the
//! trainer measures for its mining ([`MiningEvidence`]). The trainer
//! ([`crate::train::StageTrainer`]) calls these; the terms ([`crate::mmanet`]) implement them;
//! neither imports the other.

use super::Task;
use crate::error::Result;
use crate::mining::MiningEvent;
use crate::modality::ModalitySet;
use burn::prelude::*;

/// Everything a loss term may look at during one training step.
pub struct LossContext<'a, T: Task> {
    /// The student's forward output.
    pub output: &'a T::Output,
    /// The batch inputs (for a teacher's forward pass).
    pub inputs: &'a T::Inputs,
    /// The batch targets (labels, label maps).
    pub targets: &'a T::Targets,
    /// Per-sample combinations drawn for this step.
    pub masks: &'a [ModalitySet],
    /// The current epoch (0-based).
    pub epoch: usize,
}

/// An extra term of the training loss (MAD, MAR, …), added as `weight × value`.
pub trait LossTerm<T: Task>: Send {
    /// Short name shown in progress and plots (`mad`, `mar`).
    fn name(&self) -> &str;
    /// The weight of this term in the total loss.
    fn weight(&self) -> f64;
    /// Whether a step whose value of this term is NaN drops the term (trains on the others, the
    /// term recorded as 0) instead of stopping the run — the official segmentation loop's
    /// guard on its distillation loss. Off by default: a NaN stops training with an error.
    fn dropped_when_nan(&self) -> bool {
        false
    }
    /// The term's value for this step, or `None` when it is off (e.g. during warm-up).
    fn compute(&mut self, ctx: &LossContext<'_, T>) -> Option<Tensor<1>>;
    /// How many of the step's samples (the batch of `ctx`) the regularization network trained
    /// on as members of the weak set: MAR's and SR's count, 0 for any other term. The trainer
    /// sums it per epoch into the history.
    fn regularized_samples(&self, _ctx: &LossContext<'_, T>) -> usize {
        0
    }
    /// Combinations whose predictions on the mining split the term needs after `epoch`
    /// (MAR's contrastive ranking); empty for none.
    fn mining_request(&self, _epoch: usize) -> Vec<ModalitySet> {
        Vec::new()
    }
    /// Receives what the trainer measured on the mining split for the combinations of
    /// [`LossTerm::mining_request`]; returns the round it recorded.
    fn on_mining(&mut self, _epoch: usize, _evidence: MiningEvidence) -> Option<MiningEvent> {
        None
    }
    /// Called at the end of every epoch (after any mining); may report the weak set.
    fn end_of_epoch(&mut self, _epoch: usize) -> Option<MiningEvent> {
        None
    }
    /// State to keep in checkpoints (a mining memory bank, …).
    fn state(&self) -> Option<serde_json::Value> {
        None
    }
    /// Restores [`LossTerm::state`].
    fn restore_state(&mut self, _state: serde_json::Value) -> Result<()> {
        Ok(())
    }
}

/// What the trainer measured on the mining split, per requested combination.
#[derive(Clone, Debug, PartialEq)]
pub enum MiningEvidence {
    /// Classification: each combination's class probabilities (`samples × classes`, row-major).
    Probabilities {
        /// One block per combination.
        rows: Vec<Vec<f32>>,
        /// Number of classes.
        classes: usize,
    },
    /// Segmentation: each combination's mIoU.
    Miou(Vec<f64>),
}
