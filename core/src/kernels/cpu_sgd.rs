//! The SGD update (weight decay, momentum, Nesterov) for Burn's CPU backend (`flex`) in one pass
//! over a parameter.
//!
//! Burn's `Sgd` composes the update from tensor ops: `p·λ + g`, `v·μ`, `+`, `v·μ`, `+`, `·lr`,
//! `p − …` — seven passes and as many fresh buffers per parameter and step, which for the small
//! networks (the mfeat MLPs: a step is about a millisecond) cost a tenth of the training time.
//! Here each element is read and written once, with the same f32 operations in the same order,
//! so the parameters and the velocity have the same bits as with Burn's `Sgd` (tested).
//! [`crate::optim`] uses it for f32 parameters on the CPU device and the tensor-op composition
//! everywhere else.

use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, backend_extension};
use burn::prelude::*;
use burn::tensor::DType;
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::SgdHyper;
use super::cpu_conv::runs_on_flex;

/// Elements per parallel task: below this a parameter is updated on the calling thread.
const TASK_ELEMENTS: usize = 1 << 15;

/// The one-pass SGD update as a Burn backend extension (no autodiff: the optimiser works on
/// the parameters' inner tensors).
#[backend_extension(Flex)]
pub trait CpuSgdOps: Backend {
    /// A step with a velocity from the previous step: the new parameter and velocity.
    fn cpu_sgd_momentum_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        velocity: FloatTensor<Self>,
        hyper: SgdHyper,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);

    /// The first step with momentum (the velocity starts as the decayed gradient): the new
    /// parameter and velocity.
    fn cpu_sgd_first_step(
        param: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        hyper: SgdHyper,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

/// `t` contiguous, as f32 (a copy when it is not already).
fn contiguous_f32(t: FlexTensor) -> FlexTensor {
    let t = if t.dtype() == DType::F32 {
        t
    } else {
        FlexTensor::from_data(t.into_data().convert::<f32>())
    };
    if t.layout().contiguous_offsets() == Some((0, t.layout().num_elements())) {
        t
    } else {
        t.to_contiguous()
    }
}

/// The update of one element, as Burn's `WeightDecay`, `Momentum` and `Sgd` compute it:
/// `g₁ = p·λ + g`, `v = g₁ + v_old·μ` (the first step: `v = g₁`), `g₂ = v·μ + g₁` (Nesterov; else
/// `v`), `p − g₂·lr`. Returns the new parameter and velocity.
#[inline(always)]
fn update(p: f32, g: f32, v_old: Option<f32>, h: &SgdHyper) -> (f32, f32) {
    let g1 = match h.weight_decay {
        Some(penalty) => p * penalty + g,
        None => g,
    };
    let v = match v_old {
        Some(v_old) => g1 + v_old * h.momentum,
        None => g1,
    };
    let g2 = if h.nesterov { v * h.momentum + g1 } else { v };
    (p - g2 * h.lr, v)
}

/// Runs `f` over matching chunks of `param`, `grad` and `velocity`, in parallel when large.
fn for_chunks(
    param: &mut [f32],
    grad: &[f32],
    velocity: &mut [f32],
    f: impl Fn(&mut [f32], &[f32], &mut [f32]) + Sync,
) {
    if param.len() <= TASK_ELEMENTS {
        f(param, grad, velocity);
        return;
    }
    param
        .par_chunks_mut(TASK_ELEMENTS)
        .zip(grad.par_chunks(TASK_ELEMENTS))
        .zip(velocity.par_chunks_mut(TASK_ELEMENTS))
        .for_each(|((p, g), v)| f(p, g, v));
}

impl CpuSgdOps for Flex {
    fn cpu_sgd_momentum_step(
        param: FlexTensor,
        grad: FlexTensor,
        velocity: FlexTensor,
        hyper: SgdHyper,
    ) -> (FlexTensor, FlexTensor) {
        let (mut param, grad, mut velocity) = (
            contiguous_f32(param),
            contiguous_f32(grad),
            contiguous_f32(velocity),
        );
        let n = param.layout().num_elements();
        // in place (a copy first only where another tensor shares the buffer)
        for_chunks(
            &mut param.storage_mut::<f32>()[..n],
            &grad.storage::<f32>()[..n],
            &mut velocity.storage_mut::<f32>()[..n],
            |p, g, v| {
                for ((p, g), v) in p.iter_mut().zip(g).zip(v.iter_mut()) {
                    (*p, *v) = update(*p, *g, Some(*v), &hyper);
                }
            },
        );
        (param, velocity)
    }

    fn cpu_sgd_first_step(
        param: FlexTensor,
        grad: FlexTensor,
        hyper: SgdHyper,
    ) -> (FlexTensor, FlexTensor) {
        let (mut param, grad) = (contiguous_f32(param), contiguous_f32(grad));
        let shape = param.layout().shape().clone();
        let n = shape.num_elements();
        let mut velocity = vec![0f32; n];
        let g = &grad.storage::<f32>()[..n];
        for_chunks(
            &mut param.storage_mut::<f32>()[..n],
            g,
            &mut velocity,
            |p, g, v| {
                for ((p, g), v) in p.iter_mut().zip(g).zip(v.iter_mut()) {
                    (*p, *v) = update(*p, *g, None, &hyper);
                }
            },
        );
        let velocity = FlexTensor::from_data(TensorData::new(velocity, shape));
        (param, velocity)
    }
}

/// Whether [`momentum_step`] handles these tensors: f32 on the CPU device, one shape.
pub fn handles<const D: usize>(param: &Tensor<D>, grad: &Tensor<D>) -> bool {
    runs_on_flex(&param.device())
        && param.dtype() == DType::F32
        && grad.dtype() == DType::F32
        && param.shape() == grad.shape()
}

/// One SGD step with momentum in one pass: the new parameter and velocity (`velocity` `None` on
/// the first step). Call only where [`handles`] says so.
pub fn momentum_step<const D: usize>(
    param: Tensor<D>,
    grad: Tensor<D>,
    velocity: Option<Tensor<D>>,
    hyper: SgdHyper,
) -> (Tensor<D>, Tensor<D>) {
    let (p, v) = match velocity {
        Some(v) => <Dispatch as CpuSgdOps>::cpu_sgd_momentum_step(
            param.into_dispatch(),
            grad.into_dispatch(),
            v.into_dispatch(),
            hyper,
        ),
        None => <Dispatch as CpuSgdOps>::cpu_sgd_first_step(
            param.into_dispatch(),
            grad.into_dispatch(),
            hyper,
        ),
    };
    (Tensor::from_dispatch(p), Tensor::from_dispatch(v))
}
