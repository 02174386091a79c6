//! Margin-aware distillation (MAD, spec §1.6) in plain tensor operations.
//!
//! * relation: `A = rownorm(F Fᵀ)` — the Gram matrix of the flattened features with each row
//!   divided by `max(‖row‖₂, 1e-12)` (the official SP-KD form, not cosine similarity);
//! * discrepancy: `D = (A_s − A_t)²`;
//! * weights: the entropy of the **teacher's** softmax, divided by its batch sum (no gradient);
//! * reduction: `official` Σ_ij D_ij·w_j (column weighting, what the released code computes),
//!   `paper` Σ_i w_i Σ_j D_ij (row weighting, what the prose says), or `sp` mean(D) (the SP
//!   ablation baseline, unweighted).
//!
//! The entropy is computed from `log_softmax`, so a probability that underflows to 0 contributes
//! `0 · (finite)` = 0 instead of the official code's `0 · log 0` = NaN, and the batch sum is
//! clamped so an all-confident teacher gives zero weights, not 0/0.

use crate::error::{CoreError, Result};
use crate::kernels;
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use serde::{Deserialize, Serialize};

/// Which implementation computes MAD (`--mad-impl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "snake_case")]
pub enum MadImpl {
    /// The kernels where there are some (WGSL on a wgpu device, the host kernel on the CPU
    /// device of a native build), tensor ops elsewhere (CUDA, the page's CPU fallback).
    #[default]
    Auto,
    /// The kernels ([`crate::kernels`]); an error where there are none.
    Kernel,
    /// Plain tensor ops on any backend.
    Ops,
}

impl MadImpl {
    /// Whether MAD on `device` runs the kernels; an error when `Kernel` is asked for where
    /// there are none.
    pub fn use_kernels(self, device: &Device) -> Result<bool> {
        let available = kernels::runs_mad_kernels(device);
        match self {
            MadImpl::Auto => Ok(available),
            MadImpl::Ops => Ok(false),
            MadImpl::Kernel if available => Ok(true),
            MadImpl::Kernel => Err(CoreError::Config {
                field: "mmanet.mad_impl".into(),
                message: "`kernel` needs a wgpu device or the CPU device of a native build \
                          (run with --device wgpu or cpu), or use `auto`/`ops`"
                    .into(),
            }),
        }
    }
}

/// How the discrepancy matrix is reduced to the MAD loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "snake_case")]
pub enum MadReduction {
    /// Σ_ij D_ij·w_j: the released code's column weighting.
    #[default]
    Official,
    /// Σ_i w_i·Σ_j D_ij: the paper's row weighting.
    Paper,
    /// mean_ij D_ij: the unweighted SP baseline.
    Sp,
}

/// Smallest row norm (torch `F.normalize` eps).
pub const NORM_EPS: f32 = 1e-12;
/// Smallest entropy batch sum before normalising.
pub const ENTROPY_SUM_EPS: f32 = 1e-12;

/// Gram matrix `F Fᵀ` of `[B, D]` features.
pub fn gram(features: Tensor<2>) -> Tensor<2> {
    features.clone().matmul(features.transpose())
}

/// Row-wise L2 normalisation with the `max(‖row‖, 1e-12)` guard, computed as
/// `sqrt(max(Σ x², 1e-24))` (the same value) so an all-zero row gets a zero gradient through the
/// norm instead of `0 · ∞` = NaN from the square root's derivative at 0.
pub fn row_normalize(m: Tensor<2>) -> Tensor<2> {
    let norm = m
        .clone()
        .square()
        .sum_dim(1)
        .clamp_min(NORM_EPS * NORM_EPS)
        .sqrt();
    m / norm
}

/// The relation matrix `rownorm(F Fᵀ)`.
pub fn relation(features: Tensor<2>) -> Tensor<2> {
    row_normalize(gram(features))
}

/// Softmax entropy of each row of `logits` (`[B, C]` → `[B]`), computed safely.
pub fn softmax_entropy(logits: Tensor<2>) -> Tensor<1> {
    let [b, _] = logits.dims();
    let logp = log_softmax(logits, 1);
    let p = logp.clone().exp();
    (p * logp).sum_dim(1).neg().reshape([b])
}

/// MAD sample weights: teacher entropy over its batch sum, detached.
pub fn teacher_weights(teacher_logits: Tensor<2>) -> Tensor<1> {
    let h = softmax_entropy(teacher_logits.detach());
    let total = h.clone().sum().clamp_min(ENTROPY_SUM_EPS);
    h / total
}

/// All intermediates of one MAD evaluation (for tests, plots and the kernel comparison).
#[derive(Clone, Debug)]
pub struct MadParts {
    /// Student relation `[B, B]`.
    pub rel_s: Tensor<2>,
    /// Teacher relation `[B, B]`.
    pub rel_t: Tensor<2>,
    /// Discrepancy `[B, B]`.
    pub disc: Tensor<2>,
    /// Teacher entropy `[B]`.
    pub entropy: Tensor<1>,
    /// Weights `[B]`.
    pub weights: Tensor<1>,
    /// The loss `[1]`.
    pub loss: Tensor<1>,
}

/// MAD with every intermediate. `student` and `teacher` are `[B, D]` flattened features; the
/// teacher side and the weights carry no gradient.
pub fn mad_parts(
    student: Tensor<2>,
    teacher: Tensor<2>,
    teacher_logits: Tensor<2>,
    reduction: MadReduction,
) -> MadParts {
    let [b, _] = student.dims();
    let rel_s = relation(student);
    let rel_t = relation(teacher.detach());
    let disc = (rel_s.clone() - rel_t.clone()).square();
    let entropy = softmax_entropy(teacher_logits.clone().detach());
    let weights = teacher_weights(teacher_logits);
    let loss = match reduction {
        MadReduction::Official => (disc.clone() * weights.clone().reshape([1, b])).sum(),
        MadReduction::Paper => (disc.clone() * weights.clone().reshape([b, 1])).sum(),
        MadReduction::Sp => disc.clone().mean(),
    };
    MadParts {
        rel_s,
        rel_t,
        disc,
        entropy,
        weights,
        loss,
    }
}

/// The MAD loss `[1]`.
pub fn mad_loss(
    student: Tensor<2>,
    teacher: Tensor<2>,
    teacher_logits: Tensor<2>,
    reduction: MadReduction,
) -> Tensor<1> {
    mad_parts(student, teacher, teacher_logits, reduction).loss
}

/// The MAD loss `[1]` by the implementation `imp` picks for the tensors' device (the kernels
/// compute the same value as [`mad_loss`], whose reduction they share).
pub fn mad_loss_with(
    student: Tensor<2>,
    teacher: Tensor<2>,
    teacher_logits: Tensor<2>,
    reduction: MadReduction,
    imp: MadImpl,
) -> Result<Tensor<1>> {
    if !imp.use_kernels(&student.device())? {
        return Ok(mad_loss(student, teacher, teacher_logits, reduction));
    }
    mad_loss_kernels(student, teacher, teacher_logits, reduction).ok_or_else(no_kernels)
}

/// The MAD loss `[1]` by the kernels (WGSL on wgpu, the host kernel on the CPU); `None` where
/// there are none.
pub fn mad_loss_kernels(
    student: Tensor<2>,
    teacher: Tensor<2>,
    teacher_logits: Tensor<2>,
    reduction: MadReduction,
) -> Option<Tensor<1>> {
    let [b, _] = student.dims();
    let weights = match reduction {
        // mean_ij D_ij = Σ_i (1/B²)·Σ_j D_ij: the row-weighted kernel with uniform weights.
        MadReduction::Sp => Tensor::full([b], 1.0 / (b * b) as f32, &student.device()),
        _ => entropy_weights(teacher_logits),
    };
    let layout = kernels::RelationLayout {
        half: b,
        row_weighting: reduction != MadReduction::Official,
    };
    kernels::relation_loss(student, teacher, weights, layout)
}

/// Dense (segmentation) MAD by the implementation `imp` picks (see [`dense_mad_loss`]).
pub fn dense_mad_loss_with(
    student: Tensor<2>,
    teacher: Tensor<2>,
    teacher_map: Tensor<2>,
    imp: MadImpl,
) -> Result<Tensor<1>> {
    if !imp.use_kernels(&student.device())? {
        return Ok(dense_mad_loss(student, teacher, teacher_map));
    }
    let [n, _] = student.dims();
    let weights = entropy_weights(teacher_map);
    let layout = kernels::RelationLayout {
        half: n / 2,
        row_weighting: true,
    };
    kernels::relation_loss(student, teacher, weights, layout).ok_or_else(no_kernels)
}

/// The MAD weights by the entropy kernel on wgpu, by tensor ops elsewhere (the CPU kernel path
/// has no entropy kernel of its own: `[N, K]` is small next to the relation).
fn entropy_weights(teacher_logits: Tensor<2>) -> Tensor<1> {
    match kernels::entropy_weights(teacher_logits.clone()) {
        Some(w) => w,
        None => teacher_weights(teacher_logits),
    }
}

fn no_kernels() -> CoreError {
    CoreError::Backend(
        "the MAD kernels need f32 tensors on a wgpu device or on the CPU device of a native build"
            .into(),
    )
}

/// Dense (segmentation) MAD row sums (spec §2): `x` rows are pixels `[N, C]`; the columns are
/// split at ⌊N/2⌋, each block `G = X X[J]ᵀ` row-normalised on its own; returns the two blocks'
/// row sums of the squared discrepancy, `[2, N]`.
pub fn dense_block_row_sums(student: Tensor<2>, teacher: Tensor<2>) -> Tensor<2> {
    let [n, c] = student.dims();
    let half = n / 2;
    let teacher = teacher.detach();
    let mut sums = Vec::with_capacity(2);
    for cols in [0..half, half..n] {
        if cols.is_empty() {
            sums.push(Tensor::zeros([1, n], &student.device()));
            continue;
        }
        let len = cols.len();
        let block = |x: &Tensor<2>| {
            let part = x.clone().slice([cols.clone(), 0..c]);
            row_normalize(x.clone().matmul(part.transpose()))
        };
        let d = (block(&student) - block(&teacher)).square();
        debug_assert_eq!(d.dims(), [n, len]);
        sums.push(d.sum_dim(1).reshape([1, n]));
    }
    Tensor::cat(sums, 0)
}

/// Dense (segmentation) MAD: Σ_i w_i·(r_i over both column blocks), weights from the teacher's
/// per-pixel map `[N, K]` (row weighting, as the official segmentation code does).
pub fn dense_mad_loss(student: Tensor<2>, teacher: Tensor<2>, teacher_map: Tensor<2>) -> Tensor<1> {
    let [n, _] = student.dims();
    let r = dense_block_row_sums(student, teacher)
        .sum_dim(0)
        .reshape([n]);
    (r * teacher_weights(teacher_map)).sum()
}
