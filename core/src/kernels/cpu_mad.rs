//! The MAD relation loss and its student gradient for Burn's CPU backend (`flex`), the same
//! computation as the WGSL kernels ([`super::MadKernelOps`]; the math is in
//! `shaders/mad_grad_rows.wgsl`) on the host, with gemm for the three matrix products.
//!
//! The tensor-op composition in [`crate::losses::mad`] runs about twenty ops and as many
//! buffers of `N × N` for the loss and again as many for its backward pass, including the
//! transposed copies of the features for `F Fᵀ`. Here: the student and teacher Gram matrices
//! (`S Sᵀ`, `T Tᵀ`) — whole, as sums over chunks of the feature columns, for a classification
//! batch; by blocks of rows for the dense relation of segmentation, whose `N × N` Gram is too
//! large to hold twice — their normalisation, the loss terms and `Ĝ = ∂L/∂Gˢ` row by row;
//! then `∂L/∂S = (Ĝ + Ĝᵀ) S` as one product. Chunks and blocks run in parallel and are added
//! in a fixed order that depends on the shapes only, so the result does not depend on the
//! number of threads.
//!
//! [`CpuMadOps`] is a Burn backend extension on `Flex` with an `Autodiff` implementation that
//! computes the loss and the gradient in one pass when the student is tracked (as the WGSL
//! kernels do), so the backward pass only scales the gradient.

use super::{RelationBackward, RelationLayout};
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::ops::{Backward, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Dispatch, backend_extension};
use burn::prelude::*;
use burn::tensor::DType;
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::cpu_conv::runs_on_flex;
use super::cpu_gemm::gemm_f32;

/// Rows of the batch per block: a sixteenth of the batch, 16 to 512 rows. It depends on the
/// batch size only (not on the thread count), so the loss's summation order is fixed; large
/// blocks keep the number of times gemm packs the whole `Fᵀ` small for the dense relation.
fn block_rows(n: usize) -> usize {
    (n / 16).clamp(16, 512)
}

/// Up to this many rows (a classification batch) the Gram matrices are computed whole, summed
/// over chunks of the feature columns ([`feature_chunk`]); above it (the dense relation of
/// segmentation) by blocks of rows, so no `N × N` Gram matrix is ever held whole.
const WHOLE_GRAM_MAX_ROWS: usize = 256;

/// Feature columns per chunk of the whole-Gram path: a sixteenth of `D`, 256 to 2,048, so a
/// `64 × 8,192` product splits into 16 independent pieces that fit in a core's L2 cache. It
/// depends on `D` only, so the chunks are summed in the same order on any thread count.
fn feature_chunk(d: usize) -> usize {
    d.div_ceil(16).clamp(256, 2048)
}

/// Smallest squared row norm (torch `F.normalize`'s eps, squared), as the kernels use it.
const EPS_SQ: f64 = 1e-24;

/// The MAD relation loss on the CPU as a Burn backend extension.
#[backend_extension(Flex, Autodiff)]
pub trait CpuMadOps: Backend {
    /// The MAD relation loss `[1]` of `[N, D]` student and teacher features and `[N]` weights.
    fn cpu_mad_relation_loss(
        student: FloatTensor<Self>,
        teacher: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        layout: RelationLayout,
    ) -> FloatTensor<Self>;

    /// The loss `[1]` and its gradient `[N, D]` with respect to the student (for an upstream
    /// gradient of 1).
    fn cpu_mad_relation_loss_and_grad(
        student: FloatTensor<Self>,
        teacher: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        layout: RelationLayout,
    ) -> (FloatTensor<Self>, FloatTensor<Self>);
}

/// The sizes and values of one relation loss.
struct Relation<'a> {
    n: usize,
    d: usize,
    student: &'a [f32],
    teacher: &'a [f32],
    weights: &'a [f32],
    layout: RelationLayout,
}

impl Relation<'_> {
    /// Rows `rows` of `F Fᵀ` (`rows.len() × N`) for `f` = student or teacher features.
    fn gram_rows(&self, f: &[f32], rows: core::ops::Range<usize>, out: &mut [f32]) {
        let (n, d) = (self.n, self.d);
        // F_rows (r × D) · Fᵀ (D × N; F is N × D row-major)
        gemm_f32(
            rows.len(),
            n,
            d,
            out,
            false,
            &f[rows.start * d..],
            [d as isize, 1],
            f,
            [1, d as isize],
        );
    }

    /// The whole student and teacher Gram matrices (`N × N` each) for a small `N`: the
    /// products of [`feature_chunk`]-column slices in parallel, added in chunk order.
    fn whole_grams(&self) -> (Vec<f32>, Vec<f32>) {
        let (n, d) = (self.n, self.d);
        let chunk = feature_chunk(d);
        let chunks = d.div_ceil(chunk);
        let parts: Vec<Vec<f32>> = (0..2 * chunks)
            .into_par_iter()
            .map(|task| {
                let f = if task < chunks {
                    self.student
                } else {
                    self.teacher
                };
                let c0 = (task % chunks) * chunk;
                let width = chunk.min(d - c0);
                let mut g = vec![0f32; n * n];
                // F[:, c0..c0+width] · F[:, c0..c0+width]ᵀ
                gemm_f32(
                    n,
                    n,
                    width,
                    &mut g,
                    false,
                    &f[c0..],
                    [d as isize, 1],
                    &f[c0..],
                    [1, d as isize],
                );
                g
            })
            .collect();
        let sum = |parts: &[Vec<f32>]| {
            let mut total = vec![0f32; n * n];
            for p in parts {
                total.iter_mut().zip(p).for_each(|(t, v)| *t += v);
            }
            total
        };
        (sum(&parts[..chunks]), sum(&parts[chunks..]))
    }

    /// The loss terms of rows `rows` (their sum in f64) from those rows of the student and
    /// teacher Gram matrices, and, when `grad_rows` is given, those rows of `Ĝ = ∂L/∂Gˢ`
    /// written into it.
    fn rows_loss(
        &self,
        rows: core::ops::Range<usize>,
        gs: &[f32],
        gt: &[f32],
        grad_rows: Option<&mut [f32]>,
    ) -> f64 {
        let (n, h) = (self.n, self.layout.half.min(self.n));
        let mut grad_rows = grad_rows;
        let mut loss = 0f64;
        for (local, i) in rows.enumerate() {
            let gs_i = &gs[local * n..(local + 1) * n];
            let gt_i = &gt[local * n..(local + 1) * n];
            // the two column blocks' squared norms, student and teacher
            let sq = |g: &[f32]| g.iter().map(|&v| f64::from(v) * f64::from(v)).sum::<f64>();
            let sq_s = [sq(&gs_i[..h]), sq(&gs_i[h..])];
            let sq_t = [sq(&gt_i[..h]), sq(&gt_i[h..])];
            let norm = |s: f64| s.max(EPS_SQ).sqrt() as f32;
            let ns = [norm(sq_s[0]), norm(sq_s[1])];
            let nt = [norm(sq_t[0]), norm(sq_t[1])];
            let block_of = |j: usize| usize::from(j >= h);
            let weight = |j: usize| {
                if self.layout.row_weighting {
                    self.weights[i]
                } else {
                    self.weights[j]
                }
            };
            let mut c = [0f64; 2];
            let mut row_loss = 0f64;
            for j in 0..n {
                let b = block_of(j);
                let a = gs_i[j] / ns[b];
                let diff = a - gt_i[j] / nt[b];
                let w = weight(j);
                row_loss += f64::from(w * diff * diff);
                c[b] += f64::from(2.0 * w * diff * a);
            }
            loss += row_loss;
            if let Some(out) = grad_rows.as_deref_mut() {
                let out_i = &mut out[local * n..(local + 1) * n];
                let c = [c[0] as f32, c[1] as f32];
                for j in 0..n {
                    let b = block_of(j);
                    let a = gs_i[j] / ns[b];
                    let p = 2.0 * weight(j) * (a - gt_i[j] / nt[b]);
                    out_i[j] = if sq_s[b] < EPS_SQ {
                        // the clamped norm passes no gradient
                        p / ns[b]
                    } else {
                        (p - c[b] * a) / ns[b]
                    };
                }
            }
        }
        loss
    }

    /// The loss (the sum of its row blocks' terms in block order) and, when `g_hat` is given,
    /// `Ĝ = ∂L/∂Gˢ` (`N × N`) written into it.
    fn loss_terms(&self, g_hat: Option<&mut [f32]>) -> f64 {
        let n = self.n;
        let rows = block_rows(n);
        let blocks = n.div_ceil(rows);
        let range = |b: usize| b * rows..((b + 1) * rows).min(n);
        let whole = (n <= WHOLE_GRAM_MAX_ROWS).then(|| self.whole_grams());
        let block = |b: usize, out: Option<&mut [f32]>| match &whole {
            Some((gs, gt)) => {
                let r = range(b);
                let span = r.start * n..r.end * n;
                self.rows_loss(r, &gs[span.clone()], &gt[span], out)
            }
            None => {
                let r = range(b);
                let mut gs = vec![0f32; r.len() * n];
                let mut gt = vec![0f32; r.len() * n];
                self.gram_rows(self.student, r.clone(), &mut gs);
                self.gram_rows(self.teacher, r.clone(), &mut gt);
                self.rows_loss(r, &gs, &gt, out)
            }
        };
        let partials: Vec<f64> = match g_hat {
            Some(g_hat) => g_hat
                .par_chunks_mut((rows * n).max(1))
                .enumerate()
                .map(|(b, out)| block(b, Some(out)))
                .collect(),
            None => (0..blocks)
                .into_par_iter()
                .map(|b| block(b, None))
                .collect(),
        };
        partials.iter().sum::<f64>()
    }

    /// The loss alone.
    fn loss(&self) -> f32 {
        self.loss_terms(None) as f32
    }

    /// The loss and `∂L/∂S = (Ĝ + Ĝᵀ) S` (`N × D`): one product with the symmetrised `Ĝ`
    /// instead of one with `Ĝ` and one with `Ĝᵀ`.
    fn loss_and_grad(&self) -> (f32, Vec<f32>) {
        let (n, d) = (self.n, self.d);
        let mut g_hat = vec![0f32; n * n];
        let loss = self.loss_terms(Some(&mut g_hat)) as f32;
        let m = symmetrise(&g_hat, n);
        let s = self.student;
        let mut grad = vec![0f32; n * d];
        if n <= WHOLE_GRAM_MAX_ROWS {
            // by column chunks of S: M (N × N) · S[:, c0..c0+width], then into place
            let chunk = feature_chunk(d);
            let parts: Vec<Vec<f32>> = (0..d.div_ceil(chunk))
                .into_par_iter()
                .map(|c| {
                    let c0 = c * chunk;
                    let width = chunk.min(d - c0);
                    let mut out = vec![0f32; n * width];
                    gemm_f32(
                        n,
                        width,
                        n,
                        &mut out,
                        false,
                        &m,
                        [n as isize, 1],
                        &s[c0..],
                        [d as isize, 1],
                    );
                    out
                })
                .collect();
            for (c, part) in parts.iter().enumerate() {
                let c0 = c * chunk;
                let width = part.len() / n.max(1);
                for (row, src) in grad.chunks_mut(d).zip(part.chunks(width.max(1))) {
                    row[c0..c0 + width].copy_from_slice(src);
                }
            }
        } else {
            // by row blocks of the result: M[i0.., :] (r × N) · S (N × D)
            let rows = block_rows(n);
            grad.par_chunks_mut((rows * d).max(1))
                .enumerate()
                .for_each(|(b, out)| {
                    let i0 = b * rows;
                    let r = out.len() / d.max(1);
                    gemm_f32(
                        r,
                        d,
                        n,
                        out,
                        false,
                        &m[i0 * n..],
                        [n as isize, 1],
                        s,
                        [d as isize, 1],
                    );
                });
        }
        (loss, grad)
    }
}

/// `Ĝ + Ĝᵀ` of an `N × N` matrix, by row blocks in parallel, read in 64 × 64 tiles so the
/// transposed reads stay in cache.
fn symmetrise(g: &[f32], n: usize) -> Vec<f32> {
    const TILE: usize = 64;
    let mut m = vec![0f32; n * n];
    m.par_chunks_mut((TILE * n).max(1))
        .enumerate()
        .for_each(|(b, out)| {
            let i0 = b * TILE;
            let r = out.len() / n.max(1);
            for j0 in (0..n).step_by(TILE) {
                let j1 = (j0 + TILE).min(n);
                for li in 0..r {
                    let i = i0 + li;
                    for j in j0..j1 {
                        out[li * n + j] = g[i * n + j] + g[j * n + i];
                    }
                }
            }
        });
    m
}

/// The f32 values of a contiguous copy, or `None` (another dtype).
fn values(t: FlexTensor) -> Option<(FlexTensor, Vec<usize>)> {
    let t = t.to_contiguous();
    let dims = t.layout().shape().iter().copied().collect();
    (t.dtype() == DType::F32).then_some((t, dims))
}

/// Runs `f` on the relation of these tensors (`[N, D]`, `[N, D]`, `[N]`, f32); `None` when they
/// are not that.
fn with_relation<R>(
    student: FlexTensor,
    teacher: FlexTensor,
    weights: FlexTensor,
    layout: RelationLayout,
    f: impl FnOnce(&Relation) -> R,
) -> Option<R> {
    let (s, sd) = values(student)?;
    let (t, td) = values(teacher)?;
    let (w, wd) = values(weights)?;
    if sd.len() != 2 || sd != td || wd != [sd[0]] {
        return None;
    }
    let relation = Relation {
        n: sd[0],
        d: sd[1],
        student: s.as_slice::<f32>()?,
        teacher: t.as_slice::<f32>()?,
        weights: w.as_slice::<f32>()?,
        layout,
    };
    Some(f(&relation))
}

fn scalar(v: f32) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(vec![v], [1]))
}

impl CpuMadOps for Flex {
    fn cpu_mad_relation_loss(
        student: FlexTensor,
        teacher: FlexTensor,
        weights: FlexTensor,
        layout: RelationLayout,
    ) -> FlexTensor {
        let loss = with_relation(student, teacher, weights, layout, |r| r.loss());
        // the callers ([`relation_loss`]) check shapes and dtype first
        scalar(loss.unwrap_or(f32::NAN))
    }

    fn cpu_mad_relation_loss_and_grad(
        student: FlexTensor,
        teacher: FlexTensor,
        weights: FlexTensor,
        layout: RelationLayout,
    ) -> (FlexTensor, FlexTensor) {
        let dims: Vec<usize> = student.layout().shape().iter().copied().collect();
        let out = with_relation(student, teacher, weights, layout, |r| r.loss_and_grad());
        let (loss, grad) = out.unwrap_or_else(|| {
            let len = dims.iter().product();
            (f32::NAN, vec![f32::NAN; len])
        });
        (
            scalar(loss),
            FlexTensor::from_data(TensorData::new(grad, dims)),
        )
    }
}

impl<B: Backend + CpuMadOps, C: CheckpointStrategy> CpuMadOps for Autodiff<B, C> {
    fn cpu_mad_relation_loss(
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
                let (loss, unit_grad) = B::cpu_mad_relation_loss_and_grad(
                    student.into_primitive(),
                    teacher,
                    weights,
                    layout,
                );
                prep.finish(unit_grad, loss)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::cpu_mad_relation_loss(
                student.into_primitive(),
                teacher,
                weights,
                layout,
            )),
        }
    }

    fn cpu_mad_relation_loss_and_grad(
        student: FloatTensor<Self>,
        teacher: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        layout: RelationLayout,
    ) -> (FloatTensor<Self>, FloatTensor<Self>) {
        // constants: no second-order gradients
        let (loss, grad) = B::cpu_mad_relation_loss_and_grad(
            Self::inner(student),
            Self::inner(teacher),
            Self::inner(weights),
            layout,
        );
        (Self::from_inner(loss), Self::from_inner(grad))
    }
}

/// The MAD relation loss `[1]` on the CPU device (differentiable in `student`); `None` off
/// the CPU device, for a dtype other than f32, or for inconsistent shapes.
pub fn relation_loss(
    student: Tensor<2>,
    teacher: Tensor<2>,
    weights: Tensor<1>,
    layout: RelationLayout,
) -> Option<Tensor<1>> {
    let f32_inputs = [&student, &teacher].iter().all(|t| t.dtype() == DType::F32)
        && weights.dtype() == DType::F32;
    let [n, _] = student.dims();
    let shapes = student.dims() == teacher.dims() && weights.dims() == [n];
    if !runs_on_flex(&student.device()) || !f32_inputs || !shapes {
        return None;
    }
    let loss = <Dispatch as CpuMadOps>::cpu_mad_relation_loss(
        student.into_dispatch(),
        teacher.detach().into_dispatch(),
        weights.detach().into_dispatch(),
        layout,
    );
    Some(Tensor::from_dispatch(loss))
}
