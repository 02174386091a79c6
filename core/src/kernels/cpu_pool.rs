//! 2-D max pooling for Burn's CPU backend (`flex`) without a division per output.
//!
//! `flex` computes every output of a max pool through its 3-D kernel, which works out each
//! window's valid range with six integer divisions and records an i64 index per output
//! (`perf`: about a seventh of the `small` training step, for the ResNet stem's 3×3 / 2 pool).
//! Here the valid kernel rows and columns are worked out once per output row and column, the
//! window is scanned in Burn's order with Burn's rule (the first maximum wins, a NaN always
//! wins), and no index is stored: the backward pass scans the window again from the input and
//! adds each output's gradient at its maximum, in output order, as Burn's backward does — so
//! the output and the input gradient are Burn's, bit for bit. The scan goes one kernel tap at a
//! time across a whole output row, with a select instead of a branch per value: one window at
//! a time, the loop-carried compare-and-branch made the stem's pool a fifth of the `small`
//! deployment forward pass (`perf`, issue 24).
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

use super::cpu_buffer::par_zeroed_chunks;
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
        // indices in a plane are kept as u32
        let fits = fits && h.checked_mul(w).is_some_and(|hw| hw <= u32::MAX as usize);
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

    /// The maximum of output `(oy, ox)`'s window in one input plane and its index in the
    /// plane, in Burn's order and by Burn's rule: the window is scanned row by row, a value
    /// replaces the maximum when it is larger or NaN ([`replaces`]), so the first maximum wins
    /// and NaN propagates.
    #[inline]
    fn window_max(
        &self,
        plane: &[f32],
        (oy, [ky0, ky1]): (usize, [usize; 2]),
        (ox, [kx0, kx1]): (usize, [usize; 2]),
    ) -> (usize, f32) {
        let [sy, sx] = self.stride;
        let [py, px] = self.padding;
        let mut best = f32::NEG_INFINITY;
        let mut at = usize::MAX;
        for ky in ky0..ky1 {
            let iy = oy * sy + ky - py;
            for kx in kx0..kx1 {
                let i = iy * self.w + ox * sx + kx - px;
                if at == usize::MAX || replaces(plane[i], best) {
                    best = plane[i];
                    at = i;
                }
            }
        }
        (at, best)
    }

    /// The outputs `ox` whose window lies wholly inside the input's columns: a range, since
    /// the padding is symmetric and smaller than the window.
    fn interior_cols(&self, cols: &[[usize; 2]]) -> core::ops::Range<usize> {
        let full = |c: &[usize; 2]| *c == [0, self.kernel[1]];
        let lo = cols.iter().position(full).unwrap_or(cols.len());
        let hi = lo + cols[lo..].iter().take_while(|c| full(c)).count();
        lo..hi
    }

    /// Each output's maximum (`best`) and its index in the plane (`at`, when given) for output
    /// row `oy`, in the order and by the rule of [`PoolGeometry::window_max`]. The outputs
    /// whose windows lie inside the input's columns (`interior`) are scanned one kernel tap
    /// at a time across the whole row, without a branch per value, so the compiler can
    /// vectorise them; the few at the edges one window at a time.
    #[inline]
    fn row_max(
        &self,
        plane: &[f32],
        row: (usize, [usize; 2]),
        cols: &[[usize; 2]],
        interior: &core::ops::Range<usize>,
        best: &mut [f32],
        mut at: Option<&mut [u32]>,
    ) {
        for ox in (0..interior.start).chain(interior.end..cols.len()) {
            let (i, v) = self.window_max(plane, row, (ox, cols[ox]));
            best[ox] = v;
            if let Some(at) = at.as_deref_mut() {
                at[ox] = i as u32;
            }
        }
        if interior.is_empty() {
            return;
        }
        let (oy, [ky0, ky1]) = row;
        let [sy, sx] = self.stride;
        let [py, px] = self.padding;
        let n = interior.len();
        let best = &mut best[interior.clone()];
        let mut at = at.map(|at| &mut at[interior.clone()]);
        let mut first = true;
        for ky in ky0..ky1 {
            let iy = oy * sy + ky - py;
            for kx in 0..self.kernel[1] {
                // every interior output reads inside the row at this tap
                let start = iy * self.w + interior.start * sx + kx - px;
                let src = &plane[start..start + (n - 1) * sx + 1];
                let tap_at = at.as_deref_mut();
                // a constant stride for the common cases, so that the loads vectorise
                match sx {
                    1 => tap_pass(src, 1, start, first, best, tap_at),
                    2 => tap_pass(src, 2, start, first, best, tap_at),
                    _ => tap_pass(src, sx, start, first, best, tap_at),
                }
                first = false;
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

/// Burn's rule for a max pool's window: `v` replaces the maximum so far when it is larger or NaN.
#[inline(always)]
fn replaces(v: f32, best: f32) -> bool {
    v > best || v.is_nan()
}

/// `if take { v } else { keep }` on 32-bit lanes, as bit operations: written as an `if`, the
/// compiler made a branch per value of the argmax lane and the loop no longer vectorised.
#[inline(always)]
fn select_bits(take: bool, v: u32, keep: u32) -> u32 {
    let mask = (take as u32).wrapping_neg();
    (v & mask) | (keep & !mask)
}

/// [`select_bits`] on f32 values.
#[inline(always)]
fn select(take: bool, v: f32, keep: f32) -> f32 {
    f32::from_bits(select_bits(take, v.to_bits(), keep.to_bits()))
}

/// One kernel tap across the interior of an output row: output `j` reads `src[j * stride]`
/// (its index in the plane `start + j * stride`), replacing `best[j]` (and `at[j]`) by Burn's
/// rule, or setting them when this is the window's first tap.
#[inline(always)]
fn tap_pass(
    src: &[f32],
    stride: usize,
    start: usize,
    first: bool,
    best: &mut [f32],
    at: Option<&mut [u32]>,
) {
    let n = best.len();
    assert!(
        n == 0 || src.len() > (n - 1) * stride,
        "a tap reads past its row"
    );
    // SAFETY: j < n, so j·stride ≤ (n − 1)·stride < src.len() (asserted above)
    let value = |j: usize| unsafe { *src.get_unchecked(j * stride) };
    // u32 lanes beside the f32 ones, so that one compare mask selects both
    let (start, stride32) = (start as u32, stride as u32);
    let index = |j: usize| start + j as u32 * stride32;
    match (first, at) {
        (true, None) => best.iter_mut().enumerate().for_each(|(j, b)| *b = value(j)),
        (true, Some(at)) => {
            for (j, (b, a)) in best.iter_mut().zip(&mut at[..n]).enumerate() {
                *b = value(j);
                *a = index(j);
            }
        }
        (false, None) => {
            for (j, b) in best.iter_mut().enumerate() {
                let v = value(j);
                *b = select(replaces(v, *b), v, *b);
            }
        }
        (false, Some(at)) => {
            for (j, (b, a)) in best.iter_mut().zip(&mut at[..n]).enumerate() {
                let v = value(j);
                let take = replaces(v, *b);
                *b = select(take, v, *b);
                *a = select_bits(take, index(j), *a);
            }
        }
    }
}

/// The pooled values, `[planes, Ho, Wo]`.
fn forward(g: PoolGeometry, x: &[f32]) -> Vec<f32> {
    let (rows, cols) = g.rows_and_cols();
    let interior = g.interior_cols(&cols);
    let (hw, out) = (g.h * g.w, g.ho * g.wo);
    par_zeroed_chunks(g.planes * out, out, |i, y_p| {
        let x_p = &x[i * hw..(i + 1) * hw];
        for (oy, (&r, y_row)) in rows.iter().zip(y_p.chunks_mut(g.wo)).enumerate() {
            g.row_max(x_p, (oy, r), &cols, &interior, y_row, None);
        }
    })
}

/// The input gradient, `[planes, H, W]`: each output's gradient added at its maximum, in
/// output order.
fn x_grad(g: PoolGeometry, x: &[f32], grad: &[f32]) -> Vec<f32> {
    let (rows, cols) = g.rows_and_cols();
    let interior = g.interior_cols(&cols);
    let (hw, out) = (g.h * g.w, g.ho * g.wo);
    par_zeroed_chunks(g.planes * hw, hw, |p, dx_p| {
        let (x_p, g_p) = (&x[p * hw..(p + 1) * hw], &grad[p * out..(p + 1) * out]);
        // one output row's maxima and their positions (two small buffers a plane)
        let (mut best, mut at) = (vec![0f32; g.wo], vec![0u32; g.wo]);
        for (oy, (&r, g_row)) in rows.iter().zip(g_p.chunks(g.wo)).enumerate() {
            g.row_max(x_p, (oy, r), &cols, &interior, &mut best, Some(&mut at));
            for (&i, &gv) in at.iter().zip(g_row) {
                dx_p[i as usize] += gv;
            }
        }
    })
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
