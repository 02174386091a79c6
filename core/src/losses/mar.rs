//! Modality-aware regularization (MAR, spec §1.7): mining the weak combination by contrastive
//! ranking, and the regularization-head loss on the weak set.
//!
//! Mining (host-side, after each warm-up epoch): for each candidate combination, the class
//! distribution of the deployment head's predictions on the mining split —
//! `official`: the histogram of argmax labels, then KL(softmax(q_k) ‖ softmax(q_full)) (the
//! released code applies a second softmax); `paper`: the mean softmax, then KL(q_k ‖ q_full) —
//! accumulated in a memory bank (sum, as the code; or mean, same argmax). After warm-up the weak
//! combination is the bank's argmax (first maximum on ties) and the weak set is it plus its
//! single-modality members.
//!
//! Segmentation (spec §2) ranks by mIoU instead: the bank adds `(mIoU_full − mIoU_k)²` per round
//! ([`RoundMeasure::Miou`]); its candidates, RGB and Depth, are single modalities, so the weak set
//! is the one combination.

use crate::mining::{MiningRound, RoundMeasure};
use crate::modality::{ModalitySet, all_combinations};
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// How each candidate's prediction distribution and its distance to the full one are computed
/// (classification; segmentation always ranks by the squared mIoU gap).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "snake_case")]
pub enum MiningMode {
    /// Histogram of argmax labels, extra softmax before the KL (the released code).
    #[default]
    Official,
    /// Mean softmax probabilities, plain KL (the paper's description).
    Paper,
}

/// Which combinations are ranked.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "snake_case")]
pub enum CandidateRule {
    /// The combinations of n − 1 modalities (the released code: the three pairs).
    #[default]
    Official,
    /// Every combination except the full one.
    Paper,
}

/// How the memory bank accumulates the per-epoch discrepancies.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "snake_case")]
pub enum BankMode {
    /// Running sum (the released code).
    #[default]
    Sum,
    /// Mean over the mining rounds (the paper; same argmax).
    Mean,
}

/// How the regularization-head loss is reduced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "snake_case")]
pub enum MarLossMode {
    /// (n_W / B)·Σ_all CE per weak-set entry: the released code's broadcasting behaviour.
    #[default]
    Official,
    /// Σ_i [P_i = W_k]·CE_i / B per weak-set entry: the intended masking.
    Paper,
}

/// The candidate combinations for `n` modalities, in paper order.
pub fn candidates(n: usize, rule: CandidateRule) -> Vec<ModalitySet> {
    let full = ModalitySet::full(n);
    all_combinations(n)
        .into_iter()
        .filter(|c| *c != full)
        .filter(|c| rule == CandidateRule::Paper || c.len() + 1 == n)
        .collect()
}

/// Normalised histogram of predicted labels.
pub fn label_histogram(preds: &[usize], classes: usize) -> Vec<f64> {
    let mut h = vec![0f64; classes];
    for &p in preds {
        if p < classes {
            h[p] += 1.0;
        }
    }
    let n = preds.len().max(1) as f64;
    h.iter_mut().for_each(|v| *v /= n);
    h
}

/// Mean of probability rows (`rows × classes`, row-major).
pub fn mean_probabilities(probs: &[f32], classes: usize) -> Vec<f64> {
    let rows = (probs.len() / classes).max(1) as f64;
    let mut m = vec![0f64; classes];
    for row in probs.chunks(classes) {
        for (a, p) in m.iter_mut().zip(row) {
            *a += *p as f64;
        }
    }
    m.iter_mut().for_each(|v| *v /= rows);
    m
}

fn softmax(v: &[f64]) -> Vec<f64> {
    let max = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = v.iter().map(|x| (x - max).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|x| x / s).collect()
}

/// KL(softmax(q) ‖ softmax(r)) — the official mining discrepancy (torch
/// `kl_div(log_softmax(r), softmax(q), 'batchmean')` on one row).
pub fn kl_official(q: &[f64], r: &[f64]) -> f64 {
    let a = softmax(q);
    let b = softmax(r);
    a.iter()
        .zip(&b)
        .filter(|(x, _)| **x > 0.0)
        .map(|(x, y)| x * (x.ln() - y.ln()))
        .sum()
}

/// KL(q ‖ r) on distributions, with `r` clamped to 1e-12 so a class the full combination never
/// predicts gives a large finite value instead of infinity.
pub fn kl_plain(q: &[f64], r: &[f64]) -> f64 {
    q.iter()
        .zip(r)
        .filter(|(x, _)| **x > 0.0)
        .map(|(x, y)| x * (x.ln() - y.max(1e-12).ln()))
        .sum()
}

/// The memory bank over the warm-up epochs and the resulting weak set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemoryBank {
    /// Number of modalities.
    pub n_modalities: usize,
    /// Ranked combinations.
    pub candidates: Vec<ModalitySet>,
    /// Distribution mode.
    pub mode: MiningMode,
    /// Accumulation.
    pub bank_mode: BankMode,
    /// Σ of the discrepancies per candidate.
    pub sums: Vec<f64>,
    /// Every round so far.
    pub rounds: Vec<MiningRound>,
}

impl MemoryBank {
    /// An empty bank over `candidates`.
    pub fn new(
        n_modalities: usize,
        candidates: Vec<ModalitySet>,
        mode: MiningMode,
        bank_mode: BankMode,
    ) -> Self {
        let n = candidates.len();
        MemoryBank {
            n_modalities,
            candidates,
            mode,
            bank_mode,
            sums: vec![0.0; n],
            rounds: Vec::new(),
        }
    }

    /// The bank values (sum or mean over rounds).
    pub fn values(&self) -> Vec<f64> {
        let r = self.rounds.len().max(1) as f64;
        match self.bank_mode {
            BankMode::Sum => self.sums.clone(),
            BankMode::Mean => self.sums.iter().map(|s| s / r).collect(),
        }
    }

    /// Adds one round: `measure` holds one value per candidate, then the full combination's
    /// last. The discrepancy is the KL of the distributions ([`MiningMode`]) or the squared
    /// mIoU gap.
    pub fn add_round(&mut self, epoch: usize, measure: RoundMeasure) -> &MiningRound {
        let k = self.candidates.len();
        let discrepancy: Vec<f64> = match &measure {
            RoundMeasure::Distributions(d) => {
                let full = d.last().cloned().unwrap_or_default();
                d[..k]
                    .iter()
                    .map(|q| match self.mode {
                        MiningMode::Official => kl_official(q, &full),
                        MiningMode::Paper => kl_plain(q, &full),
                    })
                    .collect()
            }
            RoundMeasure::Miou(m) => {
                let full = m.last().copied().unwrap_or_default();
                m[..k].iter().map(|v| (full - v).powi(2)).collect()
            }
        };
        for (s, d) in self.sums.iter_mut().zip(&discrepancy) {
            *s += d;
        }
        let mut combinations = self.candidates.clone();
        combinations.push(ModalitySet::full(self.n_modalities));
        self.rounds.push(MiningRound {
            epoch,
            combinations,
            measure,
            discrepancy,
            bank: Vec::new(),
        });
        let values = self.values();
        let round = self.rounds.last_mut().expect("just pushed");
        round.bank = values;
        round
    }

    /// Index of the weakest candidate (first maximum of the bank), if any round was added.
    pub fn argmax(&self) -> Option<usize> {
        if self.rounds.is_empty() || self.candidates.is_empty() {
            return None;
        }
        let v = self.values();
        let mut best = 0;
        for (i, x) in v.iter().enumerate() {
            if *x > v[best] {
                best = i;
            }
        }
        Some(best)
    }

    /// The weak set: the weakest candidate, then each of its single modalities (when it has
    /// more than one), in modality order.
    pub fn weak_set(&self) -> Option<Vec<ModalitySet>> {
        self.argmax().map(|i| weak_set_of(self.candidates[i]))
    }
}

/// `[k, then its one-modality subsets]` (just `[k]` for a single modality).
pub fn weak_set_of(k: ModalitySet) -> Vec<ModalitySet> {
    let mut w = vec![k];
    if k.len() > 1 {
        w.extend(k.singles());
    }
    w
}

/// Per weak-set entry k, the 0/1 mask `[P_i = W_k]` over the batch (`[K, B]` row-major).
pub fn weak_masks(masks: &[ModalitySet], weak: &[ModalitySet]) -> Vec<f32> {
    weak.iter()
        .flat_map(|w| masks.iter().map(move |p| if p == w { 1.0 } else { 0.0 }))
        .collect()
}

/// The MAR loss on the regularization head's per-sample CE `[B]` (one identical head per weak
/// entry, as the official network). Returns the per-entry terms `[K]`; the loss is their sum.
pub fn mar_terms(
    ce: Tensor<1>,
    masks: &[ModalitySet],
    weak: &[ModalitySet],
    mode: MarLossMode,
) -> Tensor<1> {
    let [b] = ce.dims();
    let k = weak.len();
    let device = ce.device();
    let m = Tensor::<2>::from_data(TensorData::new(weak_masks(masks, weak), [k, b]), &device);
    match mode {
        MarLossMode::Official => {
            // (Σ_i m_k,i)·(Σ_j ℓ_j)/B — the broadcasting outer product of the released code
            let n_k = m.sum_dim(1).reshape([k]);
            n_k * ce.sum() / b as f64
        }
        MarLossMode::Paper => (m * ce.reshape([1, b])).sum_dim(1).reshape([k]) / b as f64,
    }
}

/// The MAR loss `[1]`.
pub fn mar_loss(
    ce: Tensor<1>,
    masks: &[ModalitySet],
    weak: &[ModalitySet],
    mode: MarLossMode,
) -> Tensor<1> {
    mar_terms(ce, masks, weak, mode).sum()
}
