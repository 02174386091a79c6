//! Hand-written WGSL kernels for MAD (spec §1.6 and §2) on the wgpu backend, and CPU kernels
//! for Burn's `flex` backend: the convolution ([`cpu_conv`], [`conv2d`]; its 3×3 layers through a
//! direct AVX2 register tile, `cpu_conv3x3`), batch norm
//! ([`cpu_norm`], [`batch_norm`]), max pooling ([`cpu_pool`], [`max_pool2d`]) and MAD
//! ([`cpu_mad`]).
//!
//! The shaders live in the workspace's `shaders/` folder, the `mmanet-shaders` crate, which
//! embeds them as strings. They are plugged into Burn as a
//! backend extension ([`MadKernelOps`]): the `CubeBackend` implementation launches them
//! ([`wgsl`]), the `Fusion` wrapper is generated, and the `Autodiff` implementation below
//! registers a hand-written backward pass so the kernels take part in training like any other
//! op. When the student is tracked, the forward pass computes the loss and the student
//! gradient together (the gradient kernels run while the Gram rows are at hand) and the
//! backward pass only scales that gradient by the upstream gradient.
//!
//! Callers use the `Tensor`-level functions ([`entropy_weights`], [`relation_loss`]); they
//! return `None` when the tensors are not on a wgpu device, and the caller falls back to the
//! tensor-op path in [`crate::losses::mad`].

mod wgsl;

/// Output buffers zeroed on the thread pool, chunk by chunk (native targets).
#[cfg(not(target_family = "wasm"))]
mod cpu_buffer;

/// The CPU convolution with an im2col + GEMM backward pass (native targets).
#[cfg(not(target_family = "wasm"))]
pub mod cpu_conv;

/// The direct 3×3 "same" convolution with an AVX2 register tile (native targets).
#[cfg(not(target_family = "wasm"))]
mod cpu_conv3x3;

/// The f32 matrix product of the CPU kernels (native targets).
#[cfg(not(target_family = "wasm"))]
mod cpu_gemm;

/// The MAD relation loss and its gradient on the CPU (native targets).
#[cfg(not(target_family = "wasm"))]
pub mod cpu_mad;

/// Batch normalisation in two or three passes on the CPU (native targets).
#[cfg(not(target_family = "wasm"))]
pub mod cpu_norm;

/// Max pooling without a division per output on the CPU (native targets).
#[cfg(not(target_family = "wasm"))]
pub mod cpu_pool;

/// The SGD update in one pass over a parameter on the CPU (native targets).
#[cfg(not(target_family = "wasm"))]
pub mod cpu_sgd;

/// The hyper-parameters of one SGD step in the precision Burn's `Sgd` applies them (f32).
#[derive(Clone, Copy, Debug)]
pub struct SgdHyper {
    /// The L2 penalty λ (`None`: no weight decay).
    pub weight_decay: Option<f32>,
    /// The momentum μ (> 0).
    pub momentum: f32,
    /// Nesterov's update.
    pub nesterov: bool,
    /// The learning rate.
    pub lr: f32,
}

/// `bn` applied to `x`, as `BatchNorm::forward` computes it: on Burn's CPU backend (native) by
/// [`cpu_norm`], in fewer passes over the activation; elsewhere by Burn's own op.
pub fn batch_norm<const D: usize>(bn: &burn::nn::BatchNorm, x: Tensor<D>) -> Tensor<D> {
    #[cfg(not(target_family = "wasm"))]
    {
        cpu_norm::batch_norm(bn, x)
    }
    #[cfg(target_family = "wasm")]
    {
        bn.forward(x)
    }
}

/// `conv` applied to `x`, as `Conv2d::forward` computes it: on Burn's CPU backend (native) by
/// [`cpu_conv`], whose backward pass is faster there; elsewhere by Burn's own op.
pub fn conv2d(conv: &burn::nn::conv::Conv2d, x: Tensor<4>) -> Tensor<4> {
    #[cfg(not(target_family = "wasm"))]
    {
        cpu_conv::conv2d(conv, x)
    }
    #[cfg(target_family = "wasm")]
    {
        conv.forward(x)
    }
}

/// `pool` applied to `x`, as `MaxPool2d::forward` computes it: on Burn's CPU backend (native)
/// by [`cpu_pool`], without a division per output; elsewhere by Burn's own op.
pub fn max_pool2d(pool: &burn::nn::pool::MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    #[cfg(not(target_family = "wasm"))]
    {
        cpu_pool::max_pool2d(pool, x)
    }
    #[cfg(target_family = "wasm")]
    {
        pool.forward(x)
    }
}

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
use burn::tensor::DType;
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

/// Changes the largest Gram block (tests use a small one to exercise the blocked path).
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

    /// The MAD relation loss `[1]` of `[N, D]` student and teacher features and `[N]` weights.
    #[fusion(dtype = student, shape = scalar_shape())]
    fn mad_relation_loss(
        student: FloatTensor<Self>,
        teacher: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        layout: RelationLayout,
    ) -> FloatTensor<Self>;

    /// The loss `[1]` and its gradient `[N, D]` with respect to the student (for an upstream
    /// gradient of 1), in one pass: the backward then only scales the gradient, and nothing
    /// of size `N × N` has to be kept between the two.
    #[fusion(meta = loss_and_grad_meta)]
    fn mad_relation_loss_and_grad(
        student: FloatTensor<Self>,
        teacher: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        layout: RelationLayout,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

/// `[N]` for an `[N, …]` input (the fusion shape of the entropy weights).
fn first_dim(shape: &Shape) -> Shape {
    Shape::new([shape[0]])
}

/// `[1]` (the fusion shape of the loss).
fn scalar_shape() -> Shape {
    Shape::new([1])
}

/// The fusion metadata of [`MadKernelOps::mad_relation_loss_and_grad`]: the loss and a
/// gradient shaped like the student.
fn loss_and_grad_meta(
    student: &TensorSpec,
    _teacher: &TensorSpec,
    _weights: &TensorSpec,
    _layout: &RelationLayout,
) -> (TensorSpec, TensorSpec) {
    (
        TensorSpec::new(scalar_shape(), student.dtype),
        student.clone(),
    )
}

/// The backward pass of the relation loss: one parent (the student); its state is the
/// student gradient for an upstream gradient of 1. Shared by the WGSL kernels and the CPU
/// kernel ([`cpu_mad`]): both compute that gradient in their forward pass.
#[derive(Debug)]
pub(crate) struct RelationBackward;

impl<B: Backend> Backward<B, 1> for RelationBackward {
    type State = FloatTensor<B>;

    fn backward(self, ops: Ops<Self::State, 1>, grads: &mut Gradients, _: &mut Checkpointer) {
        let [student_node] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        if let Some(node) = student_node {
            let unit_grad = ops.state;
            let scale = B::float_reshape(grad, Shape::new([1, 1]));
            grads.register::<B>(node.id, B::float_mul(unit_grad, scale));
        }
    }
}

impl<B: Backend + MadKernelOps, C: CheckpointStrategy> MadKernelOps for Autodiff<B, C> {
    fn mad_entropy_weights(logits: FloatTensor<Self>) -> FloatTensor<Self> {
        // The weights carry no gradient: compute on the inner backend, return a constant.
        Self::from_inner(B::mad_entropy_weights(Self::inner(logits)))
    }

    fn mad_relation_loss(
        student: FloatTensor<Self>,
        teacher: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        layout: RelationLayout,
    ) -> FloatTensor<Self> {
        let teacher = Self::inner(teacher);
        let weights = Self::inner(weights);
        match RelationBackward
            .prepare::<C>([student.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (loss, unit_grad) = B::mad_relation_loss_and_grad(
                    student.into_primitive(),
                    teacher,
                    weights,
                    layout,
                );
                prep.finish(unit_grad, loss)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::mad_relation_loss(
                student.into_primitive(),
                teacher,
                weights,
                layout,
            )),
        }
    }

    fn mad_relation_loss_and_grad(
        student: FloatTensor<Self>,
        teacher: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        layout: RelationLayout,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        // Both outputs are constants here (no second-order gradients).
        let (loss, grad) = B::mad_relation_loss_and_grad(
            Self::inner(student),
            Self::inner(teacher),
            Self::inner(weights),
            layout,
        );
        (Self::from_inner(loss), Self::from_inner(grad))
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

/// MAD sample weights from the teacher logits `[N, K]` by the entropy kernel; `None` off wgpu
/// or for a dtype other than f32 (the kernels are f32).
pub fn entropy_weights(teacher_logits: Tensor<2>) -> Option<Tensor<1>> {
    if !runs_wgsl(&teacher_logits.device()) || teacher_logits.dtype() != DType::F32 {
        return None;
    }
    let logits = teacher_logits.detach().into_dispatch();
    Some(Tensor::from_dispatch(
        <Dispatch as MadKernelOps>::mad_entropy_weights(logits),
    ))
}

/// Whether `device` runs a MAD relation kernel: the WGSL kernels on wgpu, [`cpu_mad`] on Burn's
/// CPU backend (native targets).
pub fn runs_mad_kernels(device: &Device) -> bool {
    #[cfg(not(target_family = "wasm"))]
    if cpu_conv::runs_on_flex(device) {
        return true;
    }
    runs_wgsl(device)
}

/// The MAD relation loss `[1]` by the relation kernels (differentiable in `student`): the WGSL
/// kernels on wgpu, [`cpu_mad`] on the CPU (native); `None` elsewhere or for a dtype other
/// than f32.
pub fn relation_loss(
    student: Tensor<2>,
    teacher: Tensor<2>,
    weights: Tensor<1>,
    layout: RelationLayout,
) -> Option<Tensor<1>> {
    #[cfg(not(target_family = "wasm"))]
    if cpu_conv::runs_on_flex(&student.device()) {
        return cpu_mad::relation_loss(student, teacher, weights, layout);
    }
    let f32_inputs = [&student, &teacher].iter().all(|t| t.dtype() == DType::F32)
        && weights.dtype() == DType::F32;
    if !runs_wgsl(&student.device()) || !f32_inputs {
        return None;
    }
    let loss = <Dispatch as MadKernelOps>::mad_relation_loss(
        student.into_dispatch(),
        teacher.detach().into_dispatch(),
        weights.detach().into_dispatch(),
        layout,
    );
    Some(Tensor::from_dispatch(loss))
}
