//! Batch normalisation for Burn's CPU backend (`flex`) in two or three passes over the
//! activation.
//!
//! `flex` keeps burn-backend's default `batch_norm_train` and `batch_norm_train_backward`, which
//! build the statistics and the gradients out of tensor operations: a transposed copy of the
//! input (`swap_dims(0, 1)` made contiguous) for each reduction, then one pass and one fresh
//! buffer per element-wise operation — about ten passes forward and fifteen backward over every
//! activation of the network, after every convolution. Here:
//!
//! - training forward: the batch mean (pass 1), the biased variance around it (pass 2, the same
//!   two-pass form as Burn's), the normalised, scaled and shifted output (pass 3);
//! - backward: `Σ g` and `Σ g·(x − μ)` per channel (pass 1), the input gradient (pass 2);
//! - inference: one pass with the running statistics.
//!
//! Reductions run one channel per task, each over its samples in order (8 partial sums in f32
//! lanes per sample plane, added in f64), so results do not depend on the number of threads.
//! The op is a Burn backend extension ([`CpuNormOps`]) on `Flex` with a hand-written `Autodiff`
//! implementation, as [`super::cpu_conv`] is; [`batch_norm`] uses it for f32 tensors on the CPU
//! device and `BatchNorm::forward` everywhere else.

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, AutodiffBackend, Backend, Dispatch, backend_extension};
use burn::nn::BatchNorm;
use burn::prelude::*;
use burn::tensor::DType;
use burn_flex::{Flex, FlexTensor};
use rayon::prelude::*;

use super::cpu_buffer::par_zeroed_chunks;
use super::cpu_conv::runs_on_flex;

/// Batch normalisation on the CPU as a Burn backend extension.
#[backend_extension(Flex, Autodiff)]
pub trait CpuNormOps: Backend {
    /// Training-mode batch norm of `x` (`[N, C, …]`) with the batch's own statistics:
    /// the output, the batch mean `[C]` and the biased batch variance `[C]`.
    fn cpu_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// The gradients of [`CpuNormOps::cpu_batch_norm_train`] with respect to `x`, `gamma` and
    /// `beta`, given the statistics it returned and the output's gradient.
    fn cpu_batch_norm_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        output_grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// Inference-mode batch norm with given (running) statistics.
    fn cpu_batch_norm_eval(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self>;
}

/// `[N, C, rest…]` as (N, C, elements per sample plane).
fn planes(shape: &Shape) -> Option<(usize, usize, usize)> {
    if shape.num_dims() < 2 {
        return None;
    }
    let (n, c) = (shape[0], shape[1]);
    let plane = shape.iter().skip(2).product::<usize>();
    Some((n, c, plane))
}

/// `Σ f(v)` over a plane: eight f32 partial sums (vectorisable), added in f64.
#[inline]
fn lane_sum(values: &[f32], f: impl Fn(f32) -> f32) -> f64 {
    let mut lanes = [0f32; 8];
    let chunks = values.chunks_exact(8);
    let rest = chunks.remainder();
    for chunk in chunks {
        for (lane, v) in lanes.iter_mut().zip(chunk) {
            *lane += f(*v);
        }
    }
    let mut total: f64 = lanes.iter().map(|&v| f64::from(v)).sum();
    for v in rest {
        total += f64::from(f(*v));
    }
    total
}

/// `Σ f(g, x)` over a plane pair, as [`lane_sum`].
#[inline]
fn lane_sum2(g: &[f32], x: &[f32], f: impl Fn(f32, f32) -> f32) -> f64 {
    let mut lanes = [0f32; 8];
    let (gc, xc) = (g.chunks_exact(8), x.chunks_exact(8));
    let (g_rest, x_rest) = (gc.remainder(), xc.remainder());
    for (gs, xs) in gc.zip(xc) {
        for ((lane, a), b) in lanes.iter_mut().zip(gs).zip(xs) {
            *lane += f(*a, *b);
        }
    }
    let mut total: f64 = lanes.iter().map(|&v| f64::from(v)).sum();
    for (a, b) in g_rest.iter().zip(x_rest) {
        total += f64::from(f(*a, *b));
    }
    total
}

/// The plane of sample `b`, channel `ch`.
#[inline]
fn plane_of(x: &[f32], b: usize, ch: usize, c: usize, plane: usize) -> &[f32] {
    &x[(b * c + ch) * plane..(b * c + ch + 1) * plane]
}

/// Elements per task of the row-wise (`[N, C]`) passes: small enough to split a large
/// matrix over the pool, large enough that an MLP's batch is one task.
const ROW_TASK_ELEMENTS: usize = 1 << 16;

/// Rows of `c` values per task of the row-wise passes.
fn rows_per_task(c: usize) -> usize {
    (ROW_TASK_ELEMENTS / c.max(1)).max(1)
}

/// Per channel: mean and biased variance (two passes, as Burn's default).
fn statistics(x: &[f32], n: usize, c: usize, plane: usize) -> (Vec<f32>, Vec<f32>) {
    if plane == 1 {
        return row_statistics(x, n, c);
    }
    let count = (n * plane).max(1) as f64;
    (0..c)
        .into_par_iter()
        .map(|ch| {
            let sum: f64 = (0..n)
                .map(|b| lane_sum(plane_of(x, b, ch, c, plane), |v| v))
                .sum();
            let mean = (sum / count) as f32;
            let squares: f64 = (0..n)
                .map(|b| {
                    lane_sum(plane_of(x, b, ch, c, plane), |v| {
                        let d = v - mean;
                        d * d
                    })
                })
                .sum();
            (mean, (squares / count) as f32)
        })
        .unzip()
}

/// [`statistics`] of an `[N, C]` matrix, row after row (an MLP's batch norm: a strided walk
/// per channel would touch one value per cache line). Each channel's sums are added in sample
/// order in f64, as the per-plane path adds a 1-element plane, so the bits are the same.
fn row_statistics(x: &[f32], n: usize, c: usize) -> (Vec<f32>, Vec<f32>) {
    let count = n.max(1) as f64;
    let mut sums = vec![0f64; c];
    for row in x.chunks_exact(c.max(1)) {
        for (s, v) in sums.iter_mut().zip(row) {
            *s += f64::from(*v);
        }
    }
    let mean: Vec<f32> = sums.iter().map(|s| (s / count) as f32).collect();
    let mut squares = vec![0f64; c];
    for row in x.chunks_exact(c.max(1)) {
        for ((s, v), m) in squares.iter_mut().zip(row).zip(&mean) {
            let d = v - m;
            *s += f64::from(d * d);
        }
    }
    let variance = squares.iter().map(|s| (s / count) as f32).collect();
    (mean, variance)
}

/// `1 / sqrt(var + ε)` per channel.
fn inverse_std(variance: &[f32], epsilon: f64) -> Vec<f32> {
    variance
        .iter()
        .map(|&v| (1.0 / (f64::from(v) + epsilon).sqrt()) as f32)
        .collect()
}

/// `y = (x − μ) · γ/σ + β`, plane by plane.
fn normalise(
    x: &[f32],
    (c, plane): (usize, usize),
    gamma: &[f32],
    beta: &[f32],
    mean: &[f32],
    inv_std: &[f32],
) -> Vec<f32> {
    if plane == 1 {
        // `[N, C]`: whole rows per task, the per-channel factors in arrays the row zips over
        let scale: Vec<f32> = gamma.iter().zip(inv_std).map(|(g, s)| g * s).collect();
        let rows = rows_per_task(c) * c;
        return par_zeroed_chunks(x.len(), rows, |i, y_rows| {
            let x_rows = &x[i * rows..i * rows + y_rows.len()];
            for (y_row, x_row) in y_rows.chunks_exact_mut(c).zip(x_rows.chunks_exact(c)) {
                let factors = mean.iter().zip(&scale).zip(beta);
                for ((o, v), ((m, scale), shift)) in y_row.iter_mut().zip(x_row).zip(factors) {
                    *o = (v - m) * scale + shift;
                }
            }
        });
    }
    let plane = plane.max(1);
    par_zeroed_chunks(x.len(), plane, |i, y_p| {
        let ch = i % c;
        let (m, scale, shift) = (mean[ch], gamma[ch] * inv_std[ch], beta[ch]);
        let x_p = &x[i * plane..i * plane + y_p.len()];
        for (o, v) in y_p.iter_mut().zip(x_p) {
            *o = (v - m) * scale + shift;
        }
    })
}

fn f32_tensor(values: Vec<f32>, shape: Shape) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

/// The f32 values of a tensor made contiguous, or `None` (another dtype).
fn values(t: &FlexTensor) -> Option<Vec<f32>> {
    t.to_contiguous().as_slice::<f32>().map(<[f32]>::to_vec)
}

/// Whether this module handles these tensors: f32, rank ≥ 2, per-channel vectors of `C`.
fn handles(x: &FlexTensor, per_channel: &[&FlexTensor]) -> Option<(usize, usize, usize)> {
    let dims = planes(&x.layout().shape().clone())?;
    let ok = x.dtype() == DType::F32
        && per_channel.iter().all(|t| {
            t.dtype() == DType::F32
                && t.layout().shape().num_dims() == 1
                && t.layout().shape()[0] == dims.1
        });
    ok.then_some(dims)
}

impl CpuNormOps for Flex {
    fn cpu_batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let shape = x.layout().shape().clone();
        let Some((n, c, plane)) = handles(&x, &[&gamma, &beta]) else {
            let r = <Flex as ModuleOps<Flex>>::batch_norm_train(x, gamma, beta, epsilon);
            return (r.output, r.mean, r.variance);
        };
        let x = x.to_contiguous();
        let (Some(xv), Some(gv), Some(bv)) = (x.as_slice::<f32>(), values(&gamma), values(&beta))
        else {
            let r = <Flex as ModuleOps<Flex>>::batch_norm_train(x, gamma, beta, epsilon);
            return (r.output, r.mean, r.variance);
        };
        let (mean, variance) = statistics(xv, n, c, plane);
        let inv_std = inverse_std(&variance, epsilon);
        let y = normalise(xv, (c, plane), &gv, &bv, &mean, &inv_std);
        (
            f32_tensor(y, shape),
            f32_tensor(mean, Shape::new([c])),
            f32_tensor(variance, Shape::new([c])),
        )
    }

    fn cpu_batch_norm_train_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        output_grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let shape = x.layout().shape().clone();
        let fallback = |x, gamma, mean, variance, output_grad| {
            let r = <Flex as ModuleOps<Flex>>::batch_norm_train_backward(
                x,
                gamma,
                mean,
                variance,
                epsilon,
                output_grad,
            );
            (r.x_grad, r.gamma_grad, r.beta_grad)
        };
        let same_shape = output_grad.layout().shape() == &shape;
        let Some((n, c, plane)) = handles(&x, &[&gamma, &mean, &variance]).filter(|_| same_shape)
        else {
            return fallback(x, gamma, mean, variance, output_grad);
        };
        let (x, g) = (x.to_contiguous(), output_grad.to_contiguous());
        let (Some(xv), Some(gv), Some(gamma_v), Some(mean_v), Some(var_v)) = (
            x.as_slice::<f32>(),
            g.as_slice::<f32>(),
            values(&gamma),
            values(&mean),
            values(&variance),
        ) else {
            return fallback(x, gamma, mean, variance, g);
        };
        let inv_std = inverse_std(&var_v, epsilon);
        if plane == 1 {
            let (dx, gamma_grad, beta_grad) =
                row_backward(xv, gv, &gamma_v, (&mean_v, &inv_std), (n, c));
            return (
                f32_tensor(dx, shape),
                f32_tensor(gamma_grad, Shape::new([c])),
                f32_tensor(beta_grad, Shape::new([c])),
            );
        }
        // Σ g and Σ g·x̂ per channel
        let (beta_grad, gamma_grad): (Vec<f64>, Vec<f64>) = (0..c)
            .into_par_iter()
            .map(|ch| {
                let m = mean_v[ch];
                let (mut sum_g, mut sum_gc) = (0f64, 0f64);
                for b in 0..n {
                    let (g_p, x_p) = (plane_of(gv, b, ch, c, plane), plane_of(xv, b, ch, c, plane));
                    sum_g += lane_sum(g_p, |v| v);
                    sum_gc += lane_sum2(g_p, x_p, |gi, xi| gi * (xi - m));
                }
                (sum_g, sum_gc * f64::from(inv_std[ch]))
            })
            .unzip();
        let count = (n * plane).max(1) as f64;
        let dx = par_zeroed_chunks(xv.len(), plane, |i, dx_p| {
            let (b, ch) = (i / c, i % c);
            let (m, s) = (mean_v[ch], inv_std[ch]);
            let mean_g = (beta_grad[ch] / count) as f32;
            let mean_gn = (gamma_grad[ch] / count) as f32;
            let scale = gamma_v[ch] * s;
            let (g_p, x_p) = (plane_of(gv, b, ch, c, plane), plane_of(xv, b, ch, c, plane));
            for ((d, gi), xi) in dx_p.iter_mut().zip(g_p).zip(x_p) {
                let normalised = (xi - m) * s;
                *d = scale * (gi - mean_g - normalised * mean_gn);
            }
        });
        let to_f32 = |v: Vec<f64>| v.into_iter().map(|s| s as f32).collect::<Vec<_>>();
        (
            f32_tensor(dx, shape),
            f32_tensor(to_f32(gamma_grad), Shape::new([c])),
            f32_tensor(to_f32(beta_grad), Shape::new([c])),
        )
    }

    fn cpu_batch_norm_eval(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
    ) -> FlexTensor {
        let shape = x.layout().shape().clone();
        let Some((_, c, plane)) = handles(&x, &[&gamma, &beta, &mean, &variance]) else {
            return <Flex as ModuleOps<Flex>>::batch_norm(x, gamma, beta, mean, variance, epsilon);
        };
        let x = x.to_contiguous();
        let (Some(xv), Some(gv), Some(bv), Some(mv), Some(vv)) = (
            x.as_slice::<f32>(),
            values(&gamma),
            values(&beta),
            values(&mean),
            values(&variance),
        ) else {
            return <Flex as ModuleOps<Flex>>::batch_norm(x, gamma, beta, mean, variance, epsilon);
        };
        let inv_std = inverse_std(&vv, epsilon);
        f32_tensor(normalise(xv, (c, plane), &gv, &bv, &mv, &inv_std), shape)
    }
}

/// The training backward pass of an `[N, C]` matrix, row after row (see [`row_statistics`]):
/// the input, gamma and beta gradients, with the same sums in the same order as the
/// per-plane path.
fn row_backward(
    x: &[f32],
    g: &[f32],
    gamma: &[f32],
    (mean, inv_std): (&[f32], &[f32]),
    (n, c): (usize, usize),
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mut sum_g, mut sum_gc) = (vec![0f64; c], vec![0f64; c]);
    for (g_row, x_row) in g.chunks_exact(c.max(1)).zip(x.chunks_exact(c.max(1))) {
        let sums = sum_g.iter_mut().zip(sum_gc.iter_mut());
        for (((sg, sgc), gi), (xi, m)) in sums.zip(g_row).zip(x_row.iter().zip(mean)) {
            *sg += f64::from(*gi);
            *sgc += f64::from(gi * (xi - m));
        }
    }
    let gamma_grad: Vec<f64> = sum_gc
        .iter()
        .zip(inv_std)
        .map(|(s, i)| s * f64::from(*i))
        .collect();
    let count = n.max(1) as f64;
    let mean_g: Vec<f32> = sum_g.iter().map(|s| (s / count) as f32).collect();
    let mean_gn: Vec<f32> = gamma_grad.iter().map(|s| (s / count) as f32).collect();
    let scale: Vec<f32> = gamma.iter().zip(inv_std).map(|(g, s)| g * s).collect();
    let rows = rows_per_task(c) * c;
    let dx = par_zeroed_chunks(x.len(), rows, |i, dx_rows| {
        let span = i * rows..i * rows + dx_rows.len();
        let (g_rows, x_rows) = (&g[span.clone()], &x[span]);
        let row_triples = dx_rows
            .chunks_exact_mut(c)
            .zip(g_rows.chunks_exact(c).zip(x_rows.chunks_exact(c)));
        for (dx_row, (g_row, x_row)) in row_triples {
            let factors = mean
                .iter()
                .zip(inv_std)
                .zip(mean_g.iter().zip(&mean_gn))
                .zip(&scale);
            let values = dx_row.iter_mut().zip(g_row.iter().zip(x_row));
            for ((d, (gi, xi)), (((m, s), (mg, mgn)), scale)) in values.zip(factors) {
                let normalised = (xi - m) * s;
                *d = scale * (gi - mg - normalised * mgn);
            }
        }
    });
    let to_f32 = |v: Vec<f64>| v.into_iter().map(|s| s as f32).collect::<Vec<_>>();
    (dx, to_f32(gamma_grad), to_f32(sum_g))
}

/// The backward pass: parents `x`, `gamma`, `beta`; the checkpointed input and scale, the
/// batch statistics and ε.
#[derive(Debug)]
struct CpuBatchNormBackward;

impl<B: Backend + CpuNormOps> Backward<B, 3> for CpuBatchNormBackward {
    type State = (NodeId, NodeId, FloatTensor<B>, FloatTensor<B>, f64);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let grad = grads.consume::<B>(&ops.node);
        let (x_state, gamma_state, mean, variance, epsilon) = ops.state;
        let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
        let gamma = checkpointer.retrieve_node_output::<FloatTensor<B>>(gamma_state);
        let (dx, dgamma, dbeta) =
            B::cpu_batch_norm_train_backward(x, gamma, mean, variance, epsilon, grad);
        for (node, g) in [(node_x, dx), (node_gamma, dgamma), (node_beta, dbeta)] {
            if let Some(node) = node {
                grads.register::<B>(node.id, g);
            }
        }
    }
}

impl<B: Backend + CpuNormOps, C: CheckpointStrategy> CpuNormOps for Autodiff<B, C> {
    fn cpu_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        match CpuBatchNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let gamma_state = prep.checkpoint(&gamma);
                let (y, mean, variance) = B::cpu_batch_norm_train(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                );
                let state = (
                    x_state,
                    gamma_state,
                    mean.clone(),
                    variance.clone(),
                    epsilon,
                );
                let y = prep.finish(state, y);
                (y, Self::from_inner(mean), Self::from_inner(variance))
            }
            OpsKind::UnTracked(prep) => {
                let (y, mean, variance) = B::cpu_batch_norm_train(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                );
                (
                    prep.finish(y),
                    Self::from_inner(mean),
                    Self::from_inner(variance),
                )
            }
        }
    }

    fn cpu_batch_norm_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        output_grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // constants: no second-order gradients
        let (dx, dgamma, dbeta) = B::cpu_batch_norm_train_backward(
            Self::inner(x),
            Self::inner(gamma),
            Self::inner(mean),
            Self::inner(variance),
            epsilon,
            Self::inner(output_grad),
        );
        (
            Self::from_inner(dx),
            Self::from_inner(dgamma),
            Self::from_inner(dbeta),
        )
    }

    fn cpu_batch_norm_eval(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
    ) -> FloatTensor<Self> {
        if [&x, &gamma, &beta].iter().any(|t| t.is_tracked()) {
            // a gradient is wanted through the running statistics' normalisation (a frozen
            // layer inside a tracked graph): Burn's differentiable composition
            return <Self as ModuleOps<Self>>::batch_norm(x, gamma, beta, mean, variance, epsilon);
        }
        Self::from_inner(B::cpu_batch_norm_eval(
            Self::inner(x),
            Self::inner(gamma),
            Self::inner(beta),
            Self::inner(mean),
            Self::inner(variance),
            epsilon,
        ))
    }
}

/// `bn` applied to `x`, as `BatchNorm::forward` computes it (training mode on an autodiff
/// device with the layer's training flag on, updating the running statistics the same way;
/// inference mode otherwise): on Burn's CPU backend by [`CpuNormOps`] for f32, elsewhere by
/// Burn's own op. Same values either way (tested to 1e-5).
pub fn batch_norm<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    let f32_all = [x.dtype(), bn.gamma.val().dtype(), bn.beta.val().dtype()]
        .iter()
        .all(|d| *d == DType::F32);
    if D < 2 || !f32_all || !runs_on_flex(&device) {
        return bn.forward(x);
    }
    if device.is_autodiff() && bn.training.is_enabled() {
        let (y, mean, variance) = <Dispatch as CpuNormOps>::cpu_batch_norm_train(
            x.into_dispatch(),
            bn.gamma.val().into_dispatch(),
            bn.beta.val().into_dispatch(),
            bn.epsilon,
        );
        let (mean, variance) = (
            Tensor::<1>::from_dispatch(mean),
            Tensor::<1>::from_dispatch(variance),
        );
        // the running statistics, exactly as `BatchNorm::forward_train` updates them
        let running_mean = bn.running_mean.value_sync().to_device(&device);
        let running_var = bn.running_var.value_sync().to_device(&device);
        let running_mean = running_mean
            .mul_scalar(1.0 - bn.momentum)
            .add(mean.detach().mul_scalar(bn.momentum));
        let running_var = running_var
            .mul_scalar(1.0 - bn.momentum)
            .add(variance.detach().mul_scalar(bn.momentum));
        bn.running_mean.update(running_mean.detach());
        bn.running_var.update(running_var.detach());
        Tensor::from_dispatch(y)
    } else {
        let mean = bn.running_mean.value().to_device(&device);
        let variance = bn.running_var.value().to_device(&device);
        Tensor::from_dispatch(<Dispatch as CpuNormOps>::cpu_batch_norm_eval(
            x.into_dispatch(),
            bn.gamma.val().into_dispatch(),
            bn.beta.val().into_dispatch(),
            mean.into_dispatch(),
            variance.into_dispatch(),
            bn.epsilon,
        ))
    }
}
