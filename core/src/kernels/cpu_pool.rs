//! 2-D max pooling for Burn's CPU backend (`flex`) without a division per output.
//!
//! `flex` computes every output of a max pool through its 3-D kernel, which works out each
//! window's valid range with six integer divisions and records an i64 index per output
//! (`perf`: about a seventh of the `small` training step, for the ResNet stem's 3×3 / 2 pool).
//! Here the valid kernel rows and columns are worked out once per output row and column, the
//! window is scanned in Burn's order with Burn's rule (the first maximum wins, a NaN always
//! wins), and no index is stored: the backward pass scans the window again from the input and
//! adds each output's gradient at its maximum, in output order, as Burn's backward does — so
//! the output and the input gradient are Burn's, bit for bit.
//!
//! The op is a Burn backend extension ([`CpuPoolOps`]) on `Flex` with a hand-written
//! `Autodiff` implementation, as [`super::cpu_conv`] is; [`max_pool2d`] uses it for f32 tensors
//! on the CPU device with symmetric padding, no dilation and floor rounding (every pool of the
//! networks here), and `MaxPool2d::forward` everywhere else.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Dispatch, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::prelude::*;
use burn::tensor::DType;
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::cpu_conv::runs_on_flex;

/// Max pooling on the CPU as a Burn backend extension.
#[backend_extension(Flex, Autodiff)]
pub trait CpuPoolOps: Backend {
    /// Max pooling of `x` (`[B, C, H, W]`) with `kernel`, `stride` and symmetric `padding`
    /// (no dilation, floor rounding): `[B, C, Ho, Wo]`.
    fn cpu_max_pool2d(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self>;

    /// The gradient of [`CpuPoolOps::cpu_max_pool2d`] with respect to `x`: each output's
    /// gradient added at its window's maximum.
    fn cpu_max_pool2d_x_grad(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        output_grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// The sizes of one pooling.
#[derive(Clone, Copy, Debug)]
struct PoolGeometry {
    /// Batch × channels.
    planes: usize,
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
}

/// For each output position along one axis: the kernel taps `start..end` that read inside
/// the input (Burn's `valid_range_maxpool` with dilation 1).
fn valid_taps(
    out: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    input: usize,
) -> Vec<[usize; 2]> {
    (0..out)
        .map(|o| {
            let start = pad.saturating_sub(o * stride).min(kernel);
            let end = (input + pad)
                .saturating_sub(o * stride)
                .min(kernel)
                .max(start);
            [start, end]
        })
        .collect()
}

impl PoolGeometry {
    /// The geometry of pooling `x` (`[B, C, H, W]`), when this module handles it: f32, the
    /// window fits the padded input, and the padding is smaller than the window (so no window
    /// is empty).
    fn of(
        x: &FlexTensor,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> Option<Self> {
        let shape = x.layout().shape();
        if x.dtype() != DType::F32 || shape.num_dims() != 4 {
            return None;
        }
        let (h, w) = (shape[2], shape[3]);
        let fits = (0..2).all(|i| {
            let size = [h, w][i];
            size > 0
                && kernel[i] > 0
                && stride[i] > 0
                && padding[i] < kernel[i]
                && size + 2 * padding[i] >= kernel[i]
        });
        fits.then(|| PoolGeometry {
            planes: shape[0] * shape[1],
            h,
            w,
            ho: (h + 2 * padding[0] - kernel[0]) / stride[0] + 1,
            wo: (w + 2 * padding[1] - kernel[1]) / stride[1] + 1,
            kernel,
            stride,
            padding,
        })
    }

    /// Calls `f(output index, input index, value)` with each output's maximum in one input
    /// plane, in output order. Burn's rule: the window is scanned row by row, a value replaces
    /// the maximum when it is larger or NaN, so the first maximum wins and NaN propagates.
    #[inline]
    fn for_each_max(
        &self,
        plane: &[f32],
        rows: &[[usize; 2]],
        cols: &[[usize; 2]],
        mut f: impl FnMut(usize, usize, f32),
    ) {
        let [sy, sx] = self.stride;
        let [py, px] = self.padding;
        for (oy, &[ky0, ky1]) in rows.iter().enumerate() {
            for (ox, &[kx0, kx1]) in cols.iter().enumerate() {
                let mut best = f32::NEG_INFINITY;
                let mut at = usize::MAX;
                for ky in ky0..ky1 {
                    let iy = oy * sy + ky - py;
                    let row = &plane[iy * self.w..(iy + 1) * self.w];
                    for kx in kx0..kx1 {
                        let ix = ox * sx + kx - px;
                        let v = row[ix];
                        if at == usize::MAX || v > best || v.is_nan() {
                            best = v;
                            at = iy * self.w + ix;
                        }
                    }
                }
                f(oy * self.wo + ox, at, best);
            }
        }
    }

    fn rows_and_cols(&self) -> (Vec<[usize; 2]>, Vec<[usize; 2]>) {
        (
            valid_taps(
                self.ho,
                self.kernel[0],
                self.stride[0],
                self.padding[0],
                self.h,
            ),
            valid_taps(
                self.wo,
                self.kernel[1],
                self.stride[1],
                self.padding[1],
                self.w,
            ),
        )
    }
}

/// The pooled values, `[planes, Ho, Wo]`.
fn forward(g: PoolGeometry, x: &[f32]) -> Vec<f32> {
    let (rows, cols) = g.rows_and_cols();
    let (hw, out) = (g.h * g.w, g.ho * g.wo);
    let mut y = vec![0f32; g.planes * out];
    y.par_chunks_mut(out.max(1))
        .zip(x.par_chunks(hw.max(1)))
        .for_each(|(y_p, x_p)| g.for_each_max(x_p, &rows, &cols, |o, _, v| y_p[o] = v));
    y
}

/// The input gradient, `[planes, H, W]`: each output's gradient added at its maximum.
fn x_grad(g: PoolGeometry, x: &[f32], grad: &[f32]) -> Vec<f32> {
    let (rows, cols) = g.rows_and_cols();
    let (hw, out) = (g.h * g.w, g.ho * g.wo);
    let mut dx = vec![0f32; g.planes * hw];
    dx.par_chunks_mut(hw.max(1))
        .zip(x.par_chunks(hw.max(1)))
        .zip(grad.par_chunks(out.max(1)))
        .for_each(|((dx_p, x_p), g_p)| {
            g.for_each_max(x_p, &rows, &cols, |o, at, _| dx_p[at] += g_p[o]);
        });
    dx
}

fn f32_tensor(values: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

impl CpuPoolOps for Flex {
    fn cpu_max_pool2d(
        x: FlexTensor,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FlexTensor {
        let x = x.to_contiguous();
        let shape = x.layout().shape().clone();
        match (
            PoolGeometry::of(&x, kernel, stride, padding),
            x.as_slice::<f32>(),
        ) {
            (Some(g), Some(xv)) => f32_tensor(forward(g, xv), [shape[0], shape[1], g.ho, g.wo]),
            _ => <Flex as burn::backend::ops::ModuleOps<Flex>>::max_pool2d(
                x,
                kernel,
                stride,
                padding,
                [1, 1],
                false,
            ),
        }
    }

    fn cpu_max_pool2d_x_grad(
        x: FlexTensor,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        output_grad: FlexTensor,
    ) -> FlexTensor {
        let (x, grad) = (x.to_contiguous(), output_grad.to_contiguous());
        let shape = x.layout().shape().clone();
        let g = PoolGeometry::of(&x, kernel, stride, padding)
            .filter(|g| grad.layout().shape().num_elements() == g.planes * g.ho * g.wo);
        match (g, x.as_slice::<f32>(), grad.as_slice::<f32>()) {
            (Some(g), Some(xv), Some(gv)) => {
                f32_tensor(x_grad(g, xv, gv), [shape[0], shape[1], shape[2], shape[3]])
            }
            _ => {
                // another dtype: Burn's own pooling with indices and its backward pass
                use burn::backend::ops::ModuleOps;
                let pooled = <Flex as ModuleOps<Flex>>::max_pool2d_with_indices(
                    x.clone(),
                    kernel,
                    stride,
                    padding,
                    [1, 1],
                    false,
                    burn::tensor::IntDType::I64,
                );
                <Flex as ModuleOps<Flex>>::max_pool2d_with_indices_backward(
                    x,
                    kernel,
                    stride,
                    padding,
                    [1, 1],
                    false,
                    grad,
                    pooled.indices,
                )
                .x_grad
            }
        }
    }
}

/// The backward pass: one parent (the input), its checkpointed value and the pooling.
#[derive(Debug)]
struct CpuMaxPoolBackward;

impl<B: Backend + CpuPoolOps> Backward<B, 1> for CpuMaxPoolBackward {
    type State = (NodeId, [[usize; 2]; 3]);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, [kernel, stride, padding]) = ops.state;
        if let Some(node) = node_x {
            let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
            let dx = B::cpu_max_pool2d_x_grad(x, kernel, stride, padding, grad);
            grads.register::<B>(node.id, dx);
        }
    }
}

impl<B: Backend + CpuPoolOps, C: CheckpointStrategy> CpuPoolOps for Autodiff<B, C> {
    fn cpu_max_pool2d(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
    ) -> FloatTensor<Self> {
        match CpuMaxPoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                prep.finish(
                    (x_state, [kernel, stride, padding]),
                    B::cpu_max_pool2d(x.into_primitive(), kernel, stride, padding),
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(B::cpu_max_pool2d(
                x.into_primitive(),
                kernel,
                stride,
                padding,
            )),
        }
    }

    fn cpu_max_pool2d_x_grad(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        stride: [usize; 2],
        padding: [usize; 2],
        output_grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        // a constant: no second-order gradients
        Self::from_inner(B::cpu_max_pool2d_x_grad(
            Self::inner(x),
            kernel,
            stride,
            padding,
            Self::inner(output_grad),
        ))
    }
}

/// `pool` applied to `x`: the CPU pooling above for f32 tensors on the CPU device when the
/// padding is symmetric, without dilation and with floor rounding; Burn's
/// `MaxPool2d::forward` otherwise. The same values either way (tested bit for bit).
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let padding = match pool.padding {
        PaddingConfig2d::Valid => [0, 0],
        PaddingConfig2d::Explicit(top, left, bottom, right) if top == bottom && left == right => {
            [top, left]
        }
        _ => return pool.forward(x),
    };
    if pool.dilation != [1, 1]
        || pool.ceil_mode
        || x.dtype() != DType::F32
        || !runs_on_flex(&x.device())
    {
        return pool.forward(x);
    }
    Tensor::<4>::from_dispatch(<Dispatch as CpuPoolOps>::cpu_max_pool2d(
        x.into_dispatch(),
        pool.kernel_size,
        pool.stride,
        padding,
    ))
}
