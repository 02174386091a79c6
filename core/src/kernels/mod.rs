//! Hand-written WGSL kernels for MAD (spec §1.6 and §2) on the wgpu backend.
//!
//! The shaders live in the workspace's `shaders/` folder. They are plugged into Burn as a
//! backend extension ([`MadKernelOps`]): the `CubeBackend` implementation launches them
//! ([`wgsl`]), the `Fusion` wrapper is generated, and the `Autodiff` implementation below
//! registers a hand-written backward pass (the student gradient, also WGSL) so the kernels
//! take part in training like any other op.
//!
//! Callers use the `Tensor`-level functions ([`entropy_weights`], [`relation_loss`]); they
//! return `None` when the tensors are not on a wgpu device, and the caller falls back to the
//! tensor-op path in [`crate::losses::mad`].

mod wgsl;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::fusion::custom::TensorSpec;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, AutodiffBackend, Backend, Dispatch, DispatchDevice, backend_extension,
};
use burn::prelude::*;
use core::sync::atomic::{AtomicBool, Ordering};

/// The MAD kernels as a Burn backend extension. `half` is the first column of the second
/// normalisation block (`N` for the classification relation, `⌊N/2⌋` for the dense one);
/// `row_weighting` picks `w_i` (paper / dense) instead of `w_j` (official) as the weight of
/// element `(i, j)`.
#[backend_extension(Cube, Fusion, Autodiff)]
pub trait MadKernelOps: Backend {
    /// Teacher entropy weights: `[N, K]` logits → `[N]` entropies over their sum.
    #[fusion(dtype = logits, shape = first_dim(logits))]
    fn mad_entropy_weights(logits: FloatTensor<Self>) -> FloatTensor<Self>;

    /// The MAD relation forward pass for `[N, D]` student and teacher features and `[N]`
    /// weights: the loss `[1]` and the student and teacher Grams `[N, N]`, which feed
    /// [`Self::mad_relation_grad`].
    #[fusion(meta = relation_meta)]
    fn mad_relation_forward(
        student: FloatTensor<Self>,
        teacher: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        half: usize,
        row_weighting: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// The gradient `[N, D]` of the MAD relation loss with respect to the student, scaled by
    /// the upstream gradient `grad` `[1]`, from the forward pass's Grams.
    #[fusion(dtype = student, shape = student)]
    fn mad_relation_grad(
        student: FloatTensor<Self>,
        gram_s: FloatTensor<Self>,
        gram_t: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        half: usize,
        row_weighting: bool,
    ) -> FloatTensor<Self>;
}

/// `[N]` for an `[N, …]` input (the fusion shape of the entropy weights).
fn first_dim(shape: &Shape) -> Shape {
    Shape::new([shape[0]])
}

/// [`MadKernelOps::mad_relation_forward`]'s outputs: the loss, the student Gram, the teacher
/// Gram (the trait spells the tuple out: the extension macro reads it syntactically).
pub type RelationOutputs<B> = (FloatTensor<B>, FloatTensor<B>, FloatTensor<B>);

/// The fusion metadata of [`MadKernelOps::mad_relation_forward`]'s three outputs.
fn relation_meta(
    student: &TensorSpec,
    _teacher: &TensorSpec,
    _weights: &TensorSpec,
    _half: &usize,
    _row_weighting: &bool,
) -> (TensorSpec, TensorSpec, TensorSpec) {
    let n = student.shape[0];
    let dtype = student.dtype;
    let gram = TensorSpec::new(Shape::new([n, n]), dtype);
    (TensorSpec::new(Shape::new([1]), dtype), gram.clone(), gram)
}

/// The backward pass of [`MadKernelOps::mad_relation_forward`]: one parent (the student).
#[derive(Debug)]
struct RelationBackward;

/// What the backward pass keeps: the student, the two Grams, the weights, `half` and
/// `row_weighting`.
type RelationState<B> = (
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    usize,
    bool,
);

impl<B: Backend + MadKernelOps> Backward<B, 1> for RelationBackward {
    type State = RelationState<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [student_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (student, gram_s, gram_t, weights, half, row_weighting) = ops.state;
        if let Some(node) = student_node {
            let ds =
                B::mad_relation_grad(student, gram_s, gram_t, weights, grad, half, row_weighting);
            grads.register::<B>(node.id, ds);
        }
    }
}

impl<B: Backend + MadKernelOps, C: CheckpointStrategy> MadKernelOps for Autodiff<B, C> {
    fn mad_entropy_weights(logits: FloatTensor<Self>) -> FloatTensor<Self> {
        // The weights carry no gradient: compute on the inner backend, return a constant.
        Self::from_inner(B::mad_entropy_weights(Self::inner(logits)))
    }

    fn mad_relation_forward(
        student: FloatTensor<Self>,
        teacher: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        half: usize,
        row_weighting: bool,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let teacher = Self::inner(teacher);
        let weights = Self::inner(weights);
        let s = student.primitive().clone();
        let (loss, gram, sumsq) =
            B::mad_relation_forward(s.clone(), teacher, weights.clone(), half, row_weighting);
        let constants = (
            Self::from_inner(gram.clone()),
            Self::from_inner(sumsq.clone()),
        );
        let loss = match RelationBackward
            .prepare::<C>([student.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish((s, gram, sumsq, weights, half, row_weighting), loss)
            }
            OpsKind::UnTracked(prep) => prep.finish(loss),
        };
        (loss, constants.0, constants.1)
    }

    fn mad_relation_grad(
        student: FloatTensor<Self>,
        gram_s: FloatTensor<Self>,
        gram_t: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        half: usize,
        row_weighting: bool,
    ) -> FloatTensor<Self> {
        // Second-order gradients are not supported: the result is a constant.
        Self::from_inner(B::mad_relation_grad(
            Self::inner(student),
            Self::inner(gram_s),
            Self::inner(gram_t),
            Self::inner(weights),
            Self::inner(grad),
            half,
            row_weighting,
        ))
    }
}

/// Set by [`poison_outputs`].
static POISON_OUTPUTS: AtomicBool = AtomicBool::new(false);

/// Fills every kernel output and scratch buffer with NaN before the kernels run (off by
/// default; the tests turn it on so an element a kernel fails to write shows up as NaN instead
/// of as whatever the recycled memory held).
pub fn poison_outputs(enabled: bool) {
    POISON_OUTPUTS.store(enabled, Ordering::Relaxed);
}

/// Whether `device` runs the WGSL kernels (a wgpu device, with or without autodiff).
pub fn runs_wgsl(device: &Device) -> bool {
    let inner = device.clone().without_autodiff();
    match inner.as_dispatch() {
        DispatchDevice::Cube(cube) => cube.runtime() == burn::cubecl::RuntimeId::Wgpu,
        _ => false,
    }
}

/// MAD sample weights from the teacher logits `[N, K]` by the entropy kernel; `None` off wgpu.
pub fn entropy_weights(teacher_logits: Tensor<2>) -> Option<Tensor<1>> {
    if !runs_wgsl(&teacher_logits.device()) {
        return None;
    }
    let logits = teacher_logits.detach().into_dispatch();
    Some(Tensor::from_dispatch(
        <Dispatch as MadKernelOps>::mad_entropy_weights(logits),
    ))
}

/// The MAD relation loss `[1]` by the relation kernels (differentiable in `student`); `None`
/// off wgpu. `half` and `row_weighting` as in [`MadKernelOps`].
pub fn relation_loss(
    student: Tensor<2>,
    teacher: Tensor<2>,
    weights: Tensor<1>,
    half: usize,
    row_weighting: bool,
) -> Option<Tensor<1>> {
    if !runs_wgsl(&student.device()) {
        return None;
    }
    let (loss, _gram_s, _gram_t) = <Dispatch as MadKernelOps>::mad_relation_forward(
        student.into_dispatch(),
        teacher.detach().into_dispatch(),
        weights.detach().into_dispatch(),
        half,
        row_weighting,
    );
    Some(Tensor::from_dispatch(loss))
}
