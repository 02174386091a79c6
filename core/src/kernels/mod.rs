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
use core::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// How the relation is normalised and weighted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelationLayout {
    /// The first column of the second normalisation block: `N` for the classification relation
    /// (one block), `⌊N/2⌋` for the dense (segmentation) one.
    pub half: usize,
    /// Weight element `(i, j)` by `w_i` (paper, dense) instead of `w_j` (official).
    pub row_weighting: bool,
}

/// Default largest Gram block the kernels allocate, 64 MiB: half of WebGPU's default
/// `maxStorageBufferBindingSize`, so large batches (the dense relation over every pixel) run
/// in row blocks instead of failing to allocate.
pub const MAX_GRAM_BLOCK_BYTES: usize = 64 << 20;

static GRAM_BLOCK_BYTES: AtomicUsize = AtomicUsize::new(MAX_GRAM_BLOCK_BYTES);

/// Changes the largest Gram block (tests use a small one to exercise the blocked path). Set it
/// before any kernel runs: the backward pass of a loss must see the value its forward saw.
pub fn set_max_gram_block_bytes(bytes: usize) {
    GRAM_BLOCK_BYTES.store(bytes.max(1), Ordering::Relaxed);
}

/// Rows per Gram block for a batch of `n` rows (all `n` when the whole Gram fits).
pub fn gram_block_rows(n: usize) -> usize {
    let row_bytes = n.max(1) * core::mem::size_of::<f32>();
    (GRAM_BLOCK_BYTES.load(Ordering::Relaxed) / row_bytes).clamp(1, n.max(1))
}

/// The MAD kernels as a Burn backend extension.
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
        layout: RelationLayout,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// The gradient `[N, D]` of the MAD relation loss with respect to the student, scaled by
    /// the upstream gradient `grad` `[1]`, from the forward pass's Grams.
    #[fusion(dtype = student, shape = student)]
    fn mad_relation_grad(
        student: FloatTensor<Self>,
        teacher: FloatTensor<Self>,
        gram_s: FloatTensor<Self>,
        gram_t: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        layout: RelationLayout,
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
    _layout: &RelationLayout,
) -> (TensorSpec, TensorSpec, TensorSpec) {
    let n = student.shape[0];
    let dtype = student.dtype;
    // The Grams are kept only when they fit in one block (1×1 placeholders otherwise).
    let side = if gram_block_rows(n) >= n { n } else { 1 };
    let gram = TensorSpec::new(Shape::new([side, side]), dtype);
    (TensorSpec::new(Shape::new([1]), dtype), gram.clone(), gram)
}

/// The backward pass of [`MadKernelOps::mad_relation_forward`]: one parent (the student).
#[derive(Debug)]
struct RelationBackward;

/// What the backward pass keeps: the student, the teacher, the two Grams, the weights and the
/// layout.
type RelationState<B> = (
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    FloatTensor<B>,
    RelationLayout,
);

impl<B: Backend + MadKernelOps> Backward<B, 1> for RelationBackward {
    type State = RelationState<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [student_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (student, teacher, gram_s, gram_t, weights, layout) = ops.state;
        if let Some(node) = student_node {
            let ds = B::mad_relation_grad(student, teacher, gram_s, gram_t, weights, grad, layout);
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
        layout: RelationLayout,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        let teacher = Self::inner(teacher);
        let weights = Self::inner(weights);
        let s = student.primitive().clone();
        let (loss, gram_s, gram_t) =
            B::mad_relation_forward(s.clone(), teacher.clone(), weights.clone(), layout);
        let constants = (
            Self::from_inner(gram_s.clone()),
            Self::from_inner(gram_t.clone()),
        );
        let loss = match RelationBackward
            .prepare::<C>([student.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                prep.finish((s, teacher, gram_s, gram_t, weights, layout), loss)
            }
            OpsKind::UnTracked(prep) => prep.finish(loss),
        };
        (loss, constants.0, constants.1)
    }

    fn mad_relation_grad(
        student: FloatTensor<Self>,
        teacher: FloatTensor<Self>,
        gram_s: FloatTensor<Self>,
        gram_t: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        layout: RelationLayout,
    ) -> FloatTensor<Self> {
        // Second-order gradients are not supported: the result is a constant.
        Self::from_inner(B::mad_relation_grad(
            Self::inner(student),
            Self::inner(teacher),
            Self::inner(gram_s),
            Self::inner(gram_t),
            Self::inner(weights),
            Self::inner(grad),
            layout,
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
/// off wgpu.
pub fn relation_loss(
    student: Tensor<2>,
    teacher: Tensor<2>,
    weights: Tensor<1>,
    layout: RelationLayout,
) -> Option<Tensor<1>> {
    if !runs_wgsl(&student.device()) {
        return None;
    }
    let (loss, _gram_s, _gram_t) = <Dispatch as MadKernelOps>::mad_relation_forward(
        student.into_dispatch(),
        teacher.detach().into_dispatch(),
        weights.detach().into_dispatch(),
        layout,
    );
    Some(Tensor::from_dispatch(loss))
}
