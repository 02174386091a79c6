//! Training diagnostics (a stage's `gradient_diagnostics = true`): on one batch, what each loss
//! term does to the **deployment network** — the norm of its weighted gradient over the
//! network's parameters and the cosine between that gradient and the task loss's — and each
//! term's value when the whole batch is seen through one modality combination (for MAD: the
//! teacher–student relation discrepancy of that combination).
//!
//! The measurement runs on a copy of the network with its own BatchNorm running statistics
//! and one fresh forward pass per backward pass (Burn's graph is consumed by `backward`), and
//! only once every parameter has been initialised ([`fully_initialized`]: Burn draws a
//! parameter's initial values at its first use, so a copy made earlier would draw them in
//! another order), so the stage trains exactly as it would without it. The regularization network is left out of
//! the norms: it is dropped at deployment, and what a term does there does not reach the
//! deployed model except through the shared encoders.

use crate::error::Result;
use crate::eval::read_f32;
use crate::modality::ModalitySet;
use crate::task::{LossContext, LossTerm, Task};
use burn::module::{ModuleVisitor, Param};
use burn::optim::GradientsParams;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// One loss term's gradient on the deployment network, on one batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TermGradient {
    /// The term (`ce` for the task loss, `mad`, `mar`, …).
    pub term: String,
    /// L2 norm of the gradient of the **weighted** term (as it enters the total loss) over the
    /// deployment network's parameters.
    pub norm: f64,
    /// `norm` over the task loss's norm.
    pub ratio_to_task: f64,
    /// Cosine between this gradient and the task loss's (1 for the task loss itself; 0 when
    /// either is zero).
    pub cosine_to_task: f64,
}

/// One term's value (unweighted) with every sample of the batch seen through `combination`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TermValue {
    /// The term.
    pub term: String,
    /// The combination every sample was seen through.
    pub combination: ModalitySet,
    /// Its value.
    pub value: f64,
}

/// What the diagnostics measured on one batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchDiagnostics {
    /// Per active term (the task loss first), its gradient on the deployment network.
    pub gradients: Vec<TermGradient>,
    /// Per stage combination and active term (the task loss first), its value.
    pub values: Vec<TermValue>,
}

/// The inputs of one training batch, as the trainer drew them.
pub struct ProbeBatch<'a, T: Task> {
    /// Inputs on the training (autodiff) device.
    pub inputs: &'a T::Inputs,
    /// Targets.
    pub targets: &'a T::Targets,
    /// Per-sample combinations drawn for the step.
    pub masks: &'a [ModalitySet],
    /// Every modality the stage's combinations use.
    pub seen: ModalitySet,
    /// The epoch (terms in their warm-up are off).
    pub epoch: usize,
}

/// Measures [`BatchDiagnostics`] of `model` on `batch`, with the stage's `terms`, and each
/// term's value for every one of `combinations`. Call it only when `model` is
/// [`fully_initialized`].
pub async fn probe_batch<T: Task>(
    model: &T::Net,
    batch: &ProbeBatch<'_, T>,
    terms: &mut [Box<dyn LossTerm<T>>],
    combinations: &[ModalitySet],
) -> Result<BatchDiagnostics> {
    // same parameters, BatchNorm running statistics of its own
    let copy = model.valid().train();
    let deployed = T::deployment(copy.clone());

    // each weighted term's gradient on the deployment network, against the task loss's
    let mut task_gradient: Option<Tensor<1>> = None;
    let mut names = Vec::new();
    let mut scalars = Vec::new();
    for k in 0..=terms.len() {
        let output = T::forward_in_stage(&copy, batch.inputs, batch.masks, batch.seen);
        let value = if k == 0 {
            Some(T::task_loss(&output, batch.targets))
        } else {
            let ctx = LossContext {
                output: &output,
                inputs: batch.inputs,
                targets: batch.targets,
                masks: batch.masks,
                epoch: batch.epoch,
            };
            let term = &mut terms[k - 1];
            let weight = term.weight();
            term.compute(&ctx).map(|v| v * weight)
        };
        let Some(value) = value else { continue };
        // a term with no path to any parameter (MAR's constant when no sample has the weak
        // combination) pulls on nothing
        let flat = if value.is_tracked() {
            let grads = GradientsParams::from_grads(value.backward(), &copy);
            flatten_gradients(&deployed, Some(&grads))
        } else {
            flatten_gradients(&deployed, None)
        };
        let task = task_gradient.get_or_insert_with(|| flat.clone()).clone();
        names.push(if k == 0 {
            "ce".to_string()
        } else {
            terms[k - 1].name().to_string()
        });
        scalars.push(flat.clone().powi_scalar(2).sum());
        scalars.push((flat * task).sum());
    }
    let read = read_f32(Tensor::cat(scalars, 0)).await?;
    let task_norm = (read[0] as f64).sqrt();
    let gradients = names
        .into_iter()
        .zip(read.chunks(2))
        .map(|(term, pair)| {
            let norm = (pair[0] as f64).sqrt();
            let ratio_to_task = if task_norm > 0.0 {
                norm / task_norm
            } else {
                0.0
            };
            let cosine_to_task = if norm > 0.0 && task_norm > 0.0 {
                pair[1] as f64 / (norm * task_norm)
            } else {
                0.0
            };
            TermGradient {
                term,
                norm,
                ratio_to_task,
                cosine_to_task,
            }
        })
        .collect();

    // every term's value with the whole batch in one combination
    let mut keys = Vec::new();
    let mut values = Vec::new();
    for &combination in combinations {
        let fixed = vec![combination; batch.masks.len()];
        let output = T::forward_in_stage(&copy, batch.inputs, &fixed, batch.seen);
        keys.push(("ce".to_string(), combination));
        values.push(T::task_loss(&output, batch.targets).detach());
        let ctx = LossContext {
            output: &output,
            inputs: batch.inputs,
            targets: batch.targets,
            masks: &fixed,
            epoch: batch.epoch,
        };
        for term in terms.iter_mut() {
            if let Some(v) = term.compute(&ctx) {
                keys.push((term.name().to_string(), combination));
                values.push(v.detach());
            }
        }
    }
    let read = if values.is_empty() {
        Vec::new()
    } else {
        read_f32(Tensor::cat(values, 0)).await?
    };
    let values = keys
        .into_iter()
        .zip(read)
        .map(|((term, combination), value)| TermValue {
            term,
            combination,
            value: value as f64,
        })
        .collect();
    Ok(BatchDiagnostics { gradients, values })
}

/// Whether every parameter of `module` holds its values (Burn initialises a parameter lazily,
/// at its first use, drawing from the process-wide generator).
pub fn fully_initialized<M: Module>(module: &M) -> bool {
    struct Check(bool);
    impl ModuleVisitor for Check {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0 &= param.is_initialized();
        }
    }
    let mut check = Check(true);
    module.visit(&mut check);
    check.0
}

/// The gradients of every float parameter of `module` in `grads`, flattened into one vector in
/// visiting order, with zeros where a parameter got none (or `grads` is `None`; buffers such as
/// running statistics count as parameters without a gradient), so that vectors of different
/// terms line up element by element.
fn flatten_gradients<M: Module>(module: &M, grads: Option<&GradientsParams>) -> Tensor<1> {
    struct Gather<'a> {
        grads: Option<&'a GradientsParams>,
        parts: Vec<Tensor<1>>,
    }
    impl ModuleVisitor for Gather<'_> {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            let part = match self.grads.and_then(|g| g.get::<D>(param.id)) {
                Some(g) => g,
                None => param.val().without_autodiff().zeros_like(),
            };
            self.parts.push(part.reshape([-1]));
        }
    }
    let mut gather = Gather {
        grads,
        parts: Vec::new(),
    };
    module.visit(&mut gather);
    Tensor::cat(gather.parts, 0)
}
