//! A 2-D convolution for Burn's CPU backend (`flex`) whose backward pass is im2col + GEMM.
//!
//! Burn computes a convolution's weight gradient as another convolution (burn-backend's default
//! `conv2d_weight_backward`, which `flex` keeps): the input and the output gradient are both
//! transposed batch ↔ channels, and the output gradient becomes a Ho×Wo kernel, so `flex` runs an
//! im2col over the whole batch per input channel and a GEMM only kh·kw columns wide. Here the
//! weight gradient is the usual `dW = Σ_b G_b · col(x_b)ᵀ` (one im2col per sample, a GEMM of
//! C_out × C_in·kh·kw × Ho·Wo), the input gradient `dx_b = col2im(Wᵀ · G_b)`, and the forward
//! pass `y_b = W · col(x_b)` with the same im2col (`flex`'s forward first copies every input to
//! NHWC on one thread).
//!
//! The op is a Burn backend extension ([`CpuConvOps`]) on `Flex` with a hand-written `Autodiff`
//! implementation, as the MAD kernels are on wgpu. [`conv2d`] uses it for f32 tensors on the CPU
//! device and Burn's `Conv2d::forward` everywhere else (wgpu, CUDA, grouped convolutions).
//!
//! 3×3 layers with padding 1 on planes of 7×7 and up skip im2col (`cpu_conv3x3`): their
//! forward passes (stride 1 and 2) and stride-1 input gradients run in a direct AVX2 + FMA
//! register tile where the CPU has it, and their stride-1 weight gradients are nine products
//! over padded planes.
//!
//! Results do not depend on the number of threads: samples are split into a fixed number of
//! chunks whose partial weight gradients are summed in chunk order, and each sample's input
//! gradient is its own.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{
    Autodiff, AutodiffBackend, Backend, Dispatch, DispatchDevice, backend_extension,
};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::prelude::*;
use burn::tensor::DType;
use burn::tensor::ops::ConvOptions;
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::cpu_buffer::par_zeroed_chunks;
use super::cpu_conv3x3::{self, Conv3x3};
use super::cpu_gemm::gemm_f32;

/// The smallest plane (`H · W`) a 3×3 "same" convolution is computed directly on
/// ([`Geometry::direct_3x3_stride`]): 7×7, where the direct tile and im2col + gemm were level.
const MIN_DIRECT_PLANE: usize = 49;

/// Samples are split into at most this many chunks for the weight gradient, whatever the
/// thread count, so its sums are added in the same order on any machine setting.
const WEIGHT_GRAD_CHUNKS: usize = 8;

/// The CPU convolution as a Burn backend extension.
#[backend_extension(Flex, Autodiff)]
pub trait CpuConvOps: Backend {
    /// `conv2d` without bias: `[B, C_in, H, W]` × `[C_out, C_in, kh, kw]` → `[B, C_out, Ho, Wo]`.
    fn cpu_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;

    /// The gradient of [`CpuConvOps::cpu_conv2d`] with respect to the weight.
    fn cpu_conv2d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;

    /// The gradient of [`CpuConvOps::cpu_conv2d`] with respect to the input.
    fn cpu_conv2d_x_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
}

/// The sizes of one convolution.
#[derive(Clone, Copy, Debug)]
struct Geometry {
    batch: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
    stride: [usize; 2],
    pad: [usize; 2],
    dilation: [usize; 2],
    groups: usize,
}

impl Geometry {
    /// Rows of the im2col matrix: `C_in · kh · kw`.
    fn k(&self) -> usize {
        self.c_in * self.kh * self.kw
    }

    /// Rows of the im2col matrix that one group reads: `C_in / groups · kh · kw`.
    fn k_group(&self) -> usize {
        self.k() / self.groups
    }

    /// Output channels of one group.
    fn c_out_group(&self) -> usize {
        self.c_out / self.groups
    }

    /// One filter per input channel and one output channel per filter (ESANet's learned
    /// upsampling): computed directly, without im2col.
    fn is_depthwise(&self) -> bool {
        self.groups > 1 && self.groups == self.c_in && self.groups == self.c_out
    }

    /// Calls `f(tap, out_range, in_row, in_start)` for every kernel tap `(ky, kx)` and output
    /// row `oy` that reads inside the input: the output columns `out_range` (as indices into the
    /// `Ho × Wo` plane) read input row `in_row` from column `in_start`, one stride apart.
    #[inline]
    fn for_each_row_segment(
        &self,
        mut f: impl FnMut(usize, core::ops::Range<usize>, usize, usize),
    ) {
        for ky in 0..self.kh {
            for kx in 0..self.kw {
                let (lo, hi, ix0) = self.valid_cols(kx);
                if lo == hi {
                    continue;
                }
                for oy in 0..self.ho {
                    if let Some(iy) = self.in_row(oy, ky) {
                        f(
                            ky * self.kw + kx,
                            oy * self.wo + lo..oy * self.wo + hi,
                            iy,
                            ix0,
                        );
                    }
                }
            }
        }
    }

    /// A 1×1 convolution with stride 1 and no padding: the im2col matrix of a sample is the
    /// sample itself (`C_in × H·W`), and col2im is the identity.
    fn is_pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.pad == [0, 0]
    }

    /// The stride (1 or 2) of a 3×3 convolution [`Conv3x3`] computes directly: padding 1, one
    /// group, no dilation, output planes of at least 7×7 values (on 4×4 planes the two padding
    /// columns each row carries along cost more than they save, so im2col + gemm stays).
    /// Stride 1 ("same"): the forward pass and input gradient run on the direct tile where the
    /// CPU has AVX2 and FMA, and [`cpu_conv3x3::add_weight_grad`] forms the weight gradient from
    /// padded planes (nine products, no im2col) on any CPU. Stride 2 (the first convolution of
    /// a ResNet stage, the small stem): the forward pass only; its backward passes keep im2col.
    fn direct_3x3_stride(&self) -> Option<usize> {
        let plain_3x3 = self.groups == 1
            && [self.kh, self.kw] == [3, 3]
            && self.dilation == [1, 1]
            && self.pad == [1, 1];
        if !plain_3x3 || self.ho * self.wo < MIN_DIRECT_PLANE {
            return None;
        }
        match self.stride {
            [1, 1] if [self.ho, self.wo] == [self.h, self.w] => Some(1),
            [2, 2] if [self.ho, self.wo] == [(self.h - 1) / 2 + 1, (self.w - 1) / 2 + 1] => Some(2),
            _ => None,
        }
    }

    /// Columns of the im2col matrix: `Ho · Wo`.
    fn l(&self) -> usize {
        self.ho * self.wo
    }

    /// For kernel row `ky`, the input row that output row `oy` reads (`None` in the padding).
    #[inline]
    fn in_row(&self, oy: usize, ky: usize) -> Option<usize> {
        (oy * self.stride[0] + ky * self.dilation[0])
            .checked_sub(self.pad[0])
            .filter(|&y| y < self.h)
    }

    /// For kernel column `kx`: the output columns `lo..hi` that read inside the input, and the
    /// input column output column `lo` reads (then one stride further per output column).
    #[inline]
    fn valid_cols(&self, kx: usize) -> (usize, usize, usize) {
        let (s, shift, pad) = (self.stride[1], kx * self.dilation[1], self.pad[1]);
        // ox·s + shift − pad ≥ 0  and  ≤ w − 1
        let lo = pad.saturating_sub(shift).div_ceil(s);
        let hi = if self.w + pad > shift {
            ((self.w - 1 + pad - shift) / s + 1).min(self.wo)
        } else {
            0
        };
        let lo = lo.min(hi);
        (lo, hi, (lo * s + shift).saturating_sub(pad))
    }

    /// The output rows `lo..hi` whose kernel row `ky` reads inside the input (a contiguous
    /// range: the input row grows with the output row).
    fn valid_rows(&self, ky: usize) -> (usize, usize) {
        let (s, shift, pad) = (self.stride[0], ky * self.dilation[0], self.pad[0]);
        let lo = pad.saturating_sub(shift).div_ceil(s);
        let hi = if self.h + pad > shift {
            ((self.h - 1 + pad - shift) / s + 1).min(self.ho)
        } else {
            0
        };
        (lo.min(hi), hi)
    }

    /// Whether one kernel tap's im2col row is the input plane shifted by a fixed offset (stride
    /// 1 both ways and as many output columns as input columns, as in a "same" 3×3
    /// convolution): then a tap's row is one contiguous copy, and only the columns that read
    /// into the padding (wrapped around to the neighbouring input row) are fixed up after.
    fn taps_are_shifts(&self) -> bool {
        self.stride == [1, 1] && self.wo == self.w
    }

    /// For a tap `(ky, kx)` of a shift convolution ([`Geometry::taps_are_shifts`]): the flat
    /// output range `j0..j1` of the rows that read inside the input, and the part `a..b` of it
    /// whose source `j + offset` lies inside the input plane.
    fn shift_range(&self, ky: usize, kx: usize) -> (usize, usize, usize, usize, isize) {
        let (oy_lo, oy_hi) = self.valid_rows(ky);
        let offset = (ky * self.dilation[0]) as isize * self.w as isize
            + (kx * self.dilation[1]) as isize
            - (self.pad[0] * self.w + self.pad[1]) as isize;
        let (j0, j1) = (oy_lo * self.wo, oy_hi * self.wo);
        let plane = (self.h * self.w) as isize;
        let a = (j0 as isize).max(-offset).min(j1 as isize) as usize;
        let b = (j1 as isize).min(plane - offset).max(a as isize) as usize;
        (j0, j1, a, b, offset)
    }

    /// `col[k, l]` (`[K, L]`, row-major) of one sample `x` (`[C_in, H, W]`).
    fn im2col(&self, x: &[f32], col: &mut [f32]) {
        let l = self.l();
        let (hw, wo) = (self.h * self.w, self.wo);
        let shifts = self.taps_are_shifts();
        for c in 0..self.c_in {
            let plane = &x[c * hw..(c + 1) * hw];
            for ky in 0..self.kh {
                let (oy_lo, oy_hi) = self.valid_rows(ky);
                for kx in 0..self.kw {
                    let (lo, hi, ix0) = self.valid_cols(kx);
                    let row = ((c * self.kh + ky) * self.kw + kx) * l;
                    let out = &mut col[row..row + l];
                    out[..oy_lo * wo].fill(0.0);
                    out[oy_hi * wo..].fill(0.0);
                    if lo == hi {
                        out[oy_lo * wo..oy_hi * wo].fill(0.0);
                        continue;
                    }
                    if shifts {
                        let (j0, j1, a, b, offset) = self.shift_range(ky, kx);
                        if a < b {
                            let from = (a as isize + offset) as usize;
                            out[a..b].copy_from_slice(&plane[from..from + (b - a)]);
                        }
                        out[j0..a].fill(0.0);
                        out[b..j1].fill(0.0);
                        // the columns that wrapped around to a neighbouring input row
                        if lo > 0 || hi < wo {
                            for oy in oy_lo..oy_hi {
                                out[oy * wo..oy * wo + lo].fill(0.0);
                                out[oy * wo + hi..(oy + 1) * wo].fill(0.0);
                            }
                        }
                        continue;
                    }
                    let s = self.stride[1];
                    let n = hi - lo;
                    for oy in oy_lo..oy_hi {
                        let iy = oy * self.stride[0] + ky * self.dilation[0] - self.pad[0];
                        let dst = &mut out[oy * wo..(oy + 1) * wo];
                        dst[..lo].fill(0.0);
                        dst[hi..].fill(0.0);
                        let src = &plane[iy * self.w + ix0..iy * self.w + ix0 + (n - 1) * s + 1];
                        gather_strided(&mut dst[lo..hi], src, s);
                    }
                }
            }
        }
    }

    /// Adds `col` (`[K, L]`) back onto one sample's input gradient `dx` (`[C_in, H, W]`).
    /// `col` is scratch: a shift convolution's columns that read into the padding are zeroed
    /// in it, so that each tap's row is added with one contiguous pass.
    fn col2im(&self, col: &mut [f32], dx: &mut [f32]) {
        let l = self.l();
        let (hw, wo) = (self.h * self.w, self.wo);
        let shifts = self.taps_are_shifts();
        for c in 0..self.c_in {
            let plane = &mut dx[c * hw..(c + 1) * hw];
            for ky in 0..self.kh {
                let (oy_lo, oy_hi) = self.valid_rows(ky);
                for kx in 0..self.kw {
                    let (lo, hi, ix0) = self.valid_cols(kx);
                    if lo == hi {
                        continue;
                    }
                    let row = ((c * self.kh + ky) * self.kw + kx) * l;
                    let src_rows = &mut col[row..row + l];
                    if shifts {
                        let (_, _, a, b, offset) = self.shift_range(ky, kx);
                        if lo > 0 || hi < wo {
                            for oy in oy_lo..oy_hi {
                                src_rows[oy * wo..oy * wo + lo].fill(0.0);
                                src_rows[oy * wo + hi..(oy + 1) * wo].fill(0.0);
                            }
                        }
                        if a < b {
                            let from = (a as isize + offset) as usize;
                            let dst = &mut plane[from..from + (b - a)];
                            for (d, v) in dst.iter_mut().zip(&src_rows[a..b]) {
                                *d += *v;
                            }
                        }
                        continue;
                    }
                    let s = self.stride[1];
                    let n = hi - lo;
                    for oy in oy_lo..oy_hi {
                        let iy = oy * self.stride[0] + ky * self.dilation[0] - self.pad[0];
                        let src = &src_rows[oy * wo + lo..oy * wo + hi];
                        let dst =
                            &mut plane[iy * self.w + ix0..iy * self.w + ix0 + (n - 1) * s + 1];
                        scatter_add_strided(dst, src, s);
                    }
                }
            }
        }
    }
}

/// `dst[i] = src[i · stride]`; `src` holds exactly `(dst.len() − 1) · stride + 1` values.
/// Strides 1 and 2 (every strided layer here) are written so that they vectorise.
#[inline]
fn gather_strided(dst: &mut [f32], src: &[f32], stride: usize) {
    let Some(last) = dst.len().checked_sub(1) else {
        return;
    };
    match stride {
        1 => dst.copy_from_slice(src),
        2 => {
            for (d, pair) in dst[..last].iter_mut().zip(src.chunks_exact(2)) {
                *d = pair[0];
            }
            dst[last] = src[last * 2];
        }
        _ => {
            for (d, v) in dst.iter_mut().zip(src.iter().step_by(stride)) {
                *d = *v;
            }
        }
    }
}

/// `dst[i · stride] += src[i]`; `dst` holds exactly `(src.len() − 1) · stride + 1` values.
#[inline]
fn scatter_add_strided(dst: &mut [f32], src: &[f32], stride: usize) {
    let Some(last) = src.len().checked_sub(1) else {
        return;
    };
    match stride {
        1 => {
            for (d, v) in dst.iter_mut().zip(src) {
                *d += *v;
            }
        }
        2 => {
            for (pair, v) in dst.chunks_exact_mut(2).zip(&src[..last]) {
                pair[0] += *v;
            }
            dst[last * 2] += src[last];
        }
        _ => {
            for (d, v) in dst.iter_mut().step_by(stride).zip(src) {
                *d += *v;
            }
        }
    }
}

/// Scratch buffers up to this many floats (64 MiB) are kept per thread for the next im2col;
/// larger ones (full-resolution evaluation of a large image) are allocated for the call.
const MAX_KEPT_SCRATCH: usize = 16 << 20;

thread_local! {
    /// This thread's im2col buffer (reused across samples, layers and steps).
    static SCRATCH: core::cell::RefCell<Vec<f32>> = const { core::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` on `len` floats of scratch memory whose contents are unspecified (every caller
/// writes all of it before reading): this thread's kept buffer, or a fresh one when `len` is
/// above [`MAX_KEPT_SCRATCH`]. `f` must not re-enter (it runs no parallel work).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    if len > MAX_KEPT_SCRATCH {
        return f(&mut vec![0f32; len]);
    }
    SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len])
    })
}

/// `x_b`'s im2col matrix (`K × L`) handed to `f`: the sample itself for a pointwise
/// convolution, else built in this thread's scratch buffer.
fn with_col<R>(g: &Geometry, x_b: &[f32], f: impl FnOnce(&[f32]) -> R) -> R {
    if g.is_pointwise() {
        return f(x_b);
    }
    with_scratch(g.k() * g.l(), |col| {
        g.im2col(x_b, col);
        f(col)
    })
}

/// The geometry of `x` (`[B, C_in, H, W]`) convolved with `weight` into an output of
/// `out` = `[Ho, Wo]`, when this module handles it: f32 tensors (grouped or not).
fn geometry(
    tensors: &[&FlexTensor],
    x: &FlexTensor,
    weight: &FlexTensor,
    out: [usize; 2],
    options: &ConvOptions<2>,
) -> Option<Geometry> {
    let groups = options.groups;
    if tensors.iter().any(|t| t.dtype() != DType::F32) || groups == 0 {
        return None;
    }
    let xs = x.layout().shape();
    let ws = weight.layout().shape();
    if xs.num_dims() != 4
        || ws.num_dims() != 4
        || ws[1] * groups != xs[1]
        || !ws[0].is_multiple_of(groups)
    {
        return None;
    }
    Some(Geometry {
        batch: xs[0],
        c_in: xs[1],
        h: xs[2],
        w: xs[3],
        c_out: ws[0],
        kh: ws[2],
        kw: ws[3],
        ho: out[0],
        wo: out[1],
        stride: options.stride,
        pad: options.padding_begin(),
        dilation: options.dilation,
        groups,
    })
}

/// The geometry of a backward pass: the output size is the output gradient's.
fn backward_geometry(
    x: &FlexTensor,
    weight: &FlexTensor,
    output_grad: &FlexTensor,
    options: &ConvOptions<2>,
) -> Option<Geometry> {
    let gs = output_grad.layout().shape();
    if gs.num_dims() != 4 {
        return None;
    }
    geometry(
        &[x, weight, output_grad],
        x,
        weight,
        [gs[2], gs[3]],
        options,
    )
}

/// The geometry of the forward pass: the output size from the options.
fn forward_geometry(
    x: &FlexTensor,
    weight: &FlexTensor,
    options: &ConvOptions<2>,
) -> Option<Geometry> {
    let xs = x.layout().shape();
    let ws = weight.layout().shape();
    if xs.num_dims() != 4 || ws.num_dims() != 4 {
        return None;
    }
    let out = |i: usize, size: usize, k: usize| {
        let (begin, end) = options.padding[i];
        let span = options.dilation[i] * (k.max(1) - 1) + 1;
        (size + begin + end)
            .checked_sub(span)
            .map(|v| v / options.stride[i] + 1)
    };
    let out = [out(0, xs[2], ws[2])?, out(1, xs[3], ws[3])?];
    geometry(&[x, weight], x, weight, out, options)
}

fn f32_tensor(values: Vec<f32>, shape: [usize; 4]) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// `Σ a·b` in eight f32 lanes (vectorisable; a fixed order).
#[inline]
fn lane_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ac, bc) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut tail = 0f32;
    for (x, y) in ac.remainder().iter().zip(bc.remainder()) {
        tail += x * y;
    }
    for (xs, ys) in ac.zip(bc) {
        for ((lane, x), y) in lanes.iter_mut().zip(xs).zip(ys) {
            *lane += x * y;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// The depthwise forward pass: each output plane is its input plane's taps, weighted.
fn depthwise_forward(g: Geometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let (plane_in, plane_out, taps, s) = (g.h * g.w, g.l(), g.kh * g.kw, g.stride[1]);
    par_zeroed_chunks(g.batch * g.c_out * plane_out, plane_out, |i, y_p| {
        let w_c = &weight[(i % g.c_in) * taps..(i % g.c_in + 1) * taps];
        let x_p = &x[i * plane_in..(i + 1) * plane_in];
        g.for_each_row_segment(|tap, out, iy, ix0| {
            let (wv, src) = (w_c[tap], &x_p[iy * g.w + ix0..(iy + 1) * g.w]);
            if s == 1 {
                for (d, v) in y_p[out].iter_mut().zip(src) {
                    *d += wv * v;
                }
            } else {
                for (d, v) in y_p[out].iter_mut().zip(src.iter().step_by(s)) {
                    *d += wv * v;
                }
            }
        });
    })
}

/// The depthwise weight gradient: per channel and tap, `Σ_b Σ_(oy, ox) G · x` in a fixed order.
fn depthwise_weight_grad(g: Geometry, x: &[f32], grad: &[f32]) -> Vec<f32> {
    let (plane_in, plane_out, taps, s) = (g.h * g.w, g.l(), g.kh * g.kw, g.stride[1]);
    (0..g.c_in)
        .into_par_iter()
        .flat_map_iter(|c| {
            let mut dw = vec![0f64; taps];
            for b in 0..g.batch {
                let i = b * g.c_in + c;
                let x_p = &x[i * plane_in..(i + 1) * plane_in];
                let g_p = &grad[i * plane_out..(i + 1) * plane_out];
                g.for_each_row_segment(|tap, out, iy, ix0| {
                    let src = &x_p[iy * g.w + ix0..(iy + 1) * g.w];
                    let row = if s == 1 {
                        lane_dot(&g_p[out], src)
                    } else {
                        let src = src.iter().step_by(s);
                        g_p[out].iter().zip(src).map(|(a, b)| a * b).sum()
                    };
                    dw[tap] += f64::from(row);
                });
            }
            dw.into_iter().map(|v| v as f32)
        })
        .collect()
}

/// The depthwise input gradient: each output-gradient plane's taps, weighted, added back.
fn depthwise_x_grad(g: Geometry, weight: &[f32], grad: &[f32]) -> Vec<f32> {
    let (plane_in, plane_out, taps, s) = (g.h * g.w, g.l(), g.kh * g.kw, g.stride[1]);
    par_zeroed_chunks(g.batch * g.c_in * plane_in, plane_in, |i, dx_p| {
        let w_c = &weight[(i % g.c_in) * taps..(i % g.c_in + 1) * taps];
        let g_p = &grad[i * plane_out..(i + 1) * plane_out];
        g.for_each_row_segment(|tap, out, iy, ix0| {
            let (wv, dst) = (w_c[tap], &mut dx_p[iy * g.w + ix0..(iy + 1) * g.w]);
            if s == 1 {
                for (d, v) in dst.iter_mut().zip(&g_p[out]) {
                    *d += wv * v;
                }
            } else {
                for (d, v) in dst.iter_mut().step_by(s).zip(&g_p[out]) {
                    *d += wv * v;
                }
            }
        });
    })
}

/// `y_b = W · col(x_b)`, `[B, C_out, Ho, Wo]`.
fn forward(g: Geometry, x: &[f32], weight: &[f32]) -> Vec<f32> {
    if g.is_depthwise() {
        return depthwise_forward(g, x, weight);
    }
    let l = g.l();
    let x_len = g.c_in * g.h * g.w;
    let direct = g.direct_3x3_stride().map(|stride| {
        Conv3x3::new(g.c_in, g.c_out, [g.h, g.w], stride, |o, i, t| {
            weight[(o * g.c_in + i) * 9 + t]
        })
    });
    if let Some(Some(conv)) = direct {
        return par_zeroed_chunks(g.batch * g.c_out * l, g.c_out * l, |b, y_b| {
            with_scratch(conv.scratch_len(), |scratch| {
                conv.run(&x[b * x_len..(b + 1) * x_len], y_b, scratch);
            });
        });
    }
    par_zeroed_chunks(g.batch * g.c_out * l, g.c_out * l, |b, y_b| {
        with_col(&g, &x[b * x_len..(b + 1) * x_len], |col| {
            // per group: W_g (C_out/G × K/G) · col_g (K/G × L); col_g: a block of col's rows
            let (kg, cg) = (g.k_group(), g.c_out_group());
            for grp in 0..g.groups {
                gemm_f32(
                    cg,
                    l,
                    kg,
                    &mut y_b[grp * cg * l..],
                    false,
                    &weight[grp * cg * kg..],
                    [kg as isize, 1],
                    &col[grp * kg * l..],
                    [l as isize, 1],
                );
            }
        });
    })
}

/// `dW = Σ_b G_b · col(x_b)ᵀ` (per group), `[C_out, C_in / groups, kh, kw]`.
fn weight_grad(g: Geometry, x: &[f32], grad: &[f32]) -> Vec<f32> {
    if g.is_depthwise() {
        return depthwise_weight_grad(g, x, grad);
    }
    let l = g.l();
    let x_len = g.c_in * g.h * g.w;
    let g_len = g.c_out * l;
    let (kg, cg) = (g.k_group(), g.c_out_group());
    let chunk = g.batch.div_ceil(WEIGHT_GRAD_CHUNKS).max(1);
    let partials: Vec<Vec<f32>> = (0..g.batch.div_ceil(chunk))
        .into_par_iter()
        .map(|c| {
            let mut dw = vec![0f32; g.c_out * kg];
            for b in c * chunk..((c + 1) * chunk).min(g.batch) {
                let grad_b = &grad[b * g_len..(b + 1) * g_len];
                if g.direct_3x3_stride() == Some(1) {
                    let len = cpu_conv3x3::weight_grad_scratch_len(g.c_in, g.c_out, g.h, g.w);
                    with_scratch(len, |scratch| {
                        cpu_conv3x3::add_weight_grad(
                            g.c_in,
                            g.c_out,
                            g.h,
                            g.w,
                            &x[b * x_len..(b + 1) * x_len],
                            grad_b,
                            &mut dw,
                            scratch,
                        );
                    });
                    continue;
                }
                with_col(&g, &x[b * x_len..(b + 1) * x_len], |col| {
                    // per group: G_b,g (C_out/G × L) · col_gᵀ (L × K/G; col is K × L row-major)
                    for grp in 0..g.groups {
                        gemm_f32(
                            cg,
                            kg,
                            l,
                            &mut dw[grp * cg * kg..],
                            true,
                            &grad_b[grp * cg * l..],
                            [l as isize, 1],
                            &col[grp * kg * l..],
                            [1, l as isize],
                        );
                    }
                });
            }
            dw
        })
        .collect();
    let mut total = vec![0f32; g.c_out * kg];
    for p in partials {
        for (t, v) in total.iter_mut().zip(p) {
            *t += v;
        }
    }
    total
}

/// `dx_b = col2im(Wᵀ · G_b)`, `[B, C_in, H, W]`.
fn x_grad(g: Geometry, weight: &[f32], grad: &[f32]) -> Vec<f32> {
    if g.is_depthwise() {
        return depthwise_x_grad(g, weight, grad);
    }
    let (k, l) = (g.k(), g.l());
    let x_len = g.c_in * g.h * g.w;
    let g_len = g.c_out * l;
    // stride 1, padding 1: the input gradient is the output gradient convolved, "same", with
    // the kernel flipped and its channels swapped
    let direct = (g.direct_3x3_stride() == Some(1)).then(|| {
        Conv3x3::new(g.c_out, g.c_in, [g.h, g.w], 1, |i, o, t| {
            weight[(o * g.c_in + i) * 9 + 8 - t]
        })
    });
    if let Some(Some(conv)) = direct {
        return par_zeroed_chunks(g.batch * x_len, x_len, |b, dx_b| {
            with_scratch(conv.scratch_len(), |scratch| {
                conv.run(&grad[b * g_len..(b + 1) * g_len], dx_b, scratch);
            });
        });
    }
    par_zeroed_chunks(g.batch * x_len, x_len, |b, dx_b| {
        let grad_b = &grad[b * g_len..(b + 1) * g_len];
        // per group: W_gᵀ (K/G × C_out/G; W is C_out × K/G row-major) · G_b,g (C_out/G × L)
        let (kg, cg) = (g.k_group(), g.c_out_group());
        let col_grad = |col: &mut [f32]| {
            for grp in 0..g.groups {
                gemm_f32(
                    kg,
                    l,
                    cg,
                    &mut col[grp * kg * l..],
                    false,
                    &weight[grp * cg * kg..],
                    [1, kg as isize],
                    &grad_b[grp * cg * l..],
                    [l as isize, 1],
                );
            }
        };
        if g.is_pointwise() {
            // col2im is the identity: the product is the sample's gradient
            col_grad(dx_b);
        } else {
            with_scratch(k * l, |col| {
                col_grad(col);
                g.col2im(col, dx_b);
            });
        }
    })
}

impl CpuConvOps for Flex {
    fn cpu_conv2d(x: FlexTensor, weight: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        let Some(g) = forward_geometry(&x, &weight, &options) else {
            return <Flex as ModuleOps<Flex>>::conv2d(x, weight, None, options);
        };
        let (x, w) = (x.to_contiguous(), weight.to_contiguous());
        let (Some(xv), Some(wv)) = (x.as_slice::<f32>(), w.as_slice::<f32>()) else {
            return <Flex as ModuleOps<Flex>>::conv2d(x, w, None, options);
        };
        f32_tensor(forward(g, xv, wv), [g.batch, g.c_out, g.ho, g.wo])
    }

    fn cpu_conv2d_weight_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let Some(g) = backward_geometry(&x, &weight, &output_grad, &options) else {
            return <Flex as ModuleOps<Flex>>::conv2d_weight_backward(
                x,
                weight,
                output_grad,
                options,
            );
        };
        let (x, grad) = (x.to_contiguous(), output_grad.to_contiguous());
        let (Some(xv), Some(gv)) = (x.as_slice::<f32>(), grad.as_slice::<f32>()) else {
            return <Flex as ModuleOps<Flex>>::conv2d_weight_backward(x, weight, grad, options);
        };
        f32_tensor(
            weight_grad(g, xv, gv),
            [g.c_out, g.c_in / g.groups, g.kh, g.kw],
        )
    }

    fn cpu_conv2d_x_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        let Some(g) = backward_geometry(&x, &weight, &output_grad, &options) else {
            return <Flex as ModuleOps<Flex>>::conv2d_x_backward(x, weight, output_grad, options);
        };
        let (w, grad) = (weight.to_contiguous(), output_grad.to_contiguous());
        let (Some(wv), Some(gv)) = (w.as_slice::<f32>(), grad.as_slice::<f32>()) else {
            return <Flex as ModuleOps<Flex>>::conv2d_x_backward(x, w, grad, options);
        };
        f32_tensor(x_grad(g, wv, gv), [g.batch, g.c_in, g.h, g.w])
    }
}

/// The backward pass: two parents (input, weight), their checkpointed values and the options.
#[derive(Debug)]
struct CpuConvBackward;

impl<B: Backend + CpuConvOps> Backward<B, 2> for CpuConvBackward {
    type State = (NodeId, NodeId, ConvOptions<2>);

    fn backward(
        self,
        ops: Ops<Self::State, 2>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, weight_state, options) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight_state);
        if let Some(node) = node_x {
            let dx = B::cpu_conv2d_x_grad(x.clone(), weight.clone(), grad.clone(), options.clone());
            grads.register::<B>(node.id, dx);
        }
        if let Some(node) = node_weight {
            grads.register::<B>(node.id, B::cpu_conv2d_weight_grad(x, weight, grad, options));
        }
    }
}

impl<B: Backend + CpuConvOps, C: CheckpointStrategy> CpuConvOps for Autodiff<B, C> {
    fn cpu_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        match CpuConvBackward
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                prep.finish(
                    (x_state, weight_state, options.clone()),
                    B::cpu_conv2d(x.into_primitive(), weight.into_primitive(), options),
                )
            }
            OpsKind::UnTracked(prep) => prep.finish(B::cpu_conv2d(
                x.into_primitive(),
                weight.into_primitive(),
                options,
            )),
        }
    }

    fn cpu_conv2d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        // a constant: no second-order gradients
        Self::from_inner(B::cpu_conv2d_weight_grad(
            Self::inner(x),
            Self::inner(weight),
            Self::inner(output_grad),
            options,
        ))
    }

    fn cpu_conv2d_x_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        Self::from_inner(B::cpu_conv2d_x_grad(
            Self::inner(x),
            Self::inner(weight),
            Self::inner(output_grad),
            options,
        ))
    }
}

/// Whether `device` is Burn's CPU backend (with or without autodiff).
pub fn runs_on_flex(device: &Device) -> bool {
    matches!(
        device.clone().without_autodiff().as_dispatch(),
        DispatchDevice::Flex(_)
    )
}

/// The options `conv` applies (its padding `Valid` or `Explicit`; `None` for `Same`, which is
/// left to Burn's own op).
fn options_of(conv: &Conv2d) -> Option<ConvOptions<2>> {
    let padding = match conv.padding {
        PaddingConfig2d::Valid => [(0, 0), (0, 0)],
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)],
        PaddingConfig2d::Same => return None,
    };
    Some(ConvOptions::new_with_padding(
        conv.stride,
        padding,
        conv.dilation,
        conv.groups,
    ))
}

/// `conv` applied to `x`: the CPU convolution above for f32 convolutions (grouped or not) on
/// the CPU device, Burn's `Conv2d::forward` otherwise. Same values either way (tested to 1e-5).
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    let options = match options_of(conv) {
        Some(o) if x.dtype() == DType::F32 && runs_on_flex(&x.device()) => o,
        _ => return conv.forward(x),
    };
    let y = Tensor::<4>::from_dispatch(<Dispatch as CpuConvOps>::cpu_conv2d(
        x.into_dispatch(),
        conv.weight.val().into_dispatch(),
        options,
    ));
    match &conv.bias {
        Some(bias) => {
            let [c] = bias.val().dims();
            y + bias.val().reshape([1, c, 1, 1])
        }
        None => y,
    }
}
