//! Modality dropout (spec §1.1): which combination each sample of a batch sees.
//!
//! The official "average" mode makes **one categorical draw per sample**, uniform over the
//! non-empty combinations (not a Bernoulli per modality). The mask zeroes encoder *outputs*;
//! applying it is the model's job, this module only decides the combinations.

use crate::error::{CoreError, Result};
use crate::modality::{ModalitySet, all_combinations};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// How the per-sample combination is chosen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum DropoutMode {
    /// Every sample draws one of the `2^n − 1` non-empty combinations with equal probability
    /// (the official "average" mode, SF-MD and MMANet students).
    Uniform,
    /// Every sample draws from the listed combinations with the given (unnormalised) weights —
    /// e.g. the CeFA teacher's {R, D, I, RDI} at ¼ each ("unaverage").
    Weighted {
        /// Combinations as 0/1 masks in modality order, e.g. `[1, 0, 1]`.
        combinations: Vec<Vec<u8>>,
        /// One non-negative weight per combination.
        weights: Vec<f64>,
    },
    /// Every sample gets the same combination (evaluation, mining, SF, the teacher).
    Fixed {
        /// The combination as a 0/1 mask in modality order.
        combination: Vec<u8>,
    },
}

/// A ready-to-sample form of [`DropoutMode`] for `n` modalities.
#[derive(Clone, Debug, PartialEq)]
pub struct ModalityDropout {
    choices: Vec<ModalitySet>,
    /// Cumulative probabilities, same length as `choices`, last = 1.
    cumulative: Vec<f64>,
}

fn mask_to_set(mask: &[u8], n: usize, field: &str) -> Result<ModalitySet> {
    if mask.len() != n || mask.iter().any(|&b| b > 1) {
        return Err(CoreError::Config {
            field: field.to_string(),
            message: format!("expected a 0/1 mask of length {n}, got {mask:?}"),
        });
    }
    let set = ModalitySet::from_mask(&mask.iter().map(|&b| b == 1).collect::<Vec<_>>());
    if set.is_empty() {
        return Err(CoreError::Config {
            field: field.to_string(),
            message: "the empty combination cannot be sampled".into(),
        });
    }
    Ok(set)
}

impl ModalityDropout {
    /// Uniform over all non-empty combinations of `n` modalities.
    pub fn uniform(n: usize) -> Self {
        Self::from_weights(all_combinations(n), vec![1.0; (1 << n) - 1])
            .expect("uniform weights are valid")
    }

    /// Always the same combination.
    pub fn fixed(set: ModalitySet) -> Self {
        ModalityDropout {
            choices: vec![set],
            cumulative: vec![1.0],
        }
    }

    /// Draws from `choices` with probabilities proportional to `weights`.
    pub fn from_weights(choices: Vec<ModalitySet>, weights: Vec<f64>) -> Result<Self> {
        let bad = |message: String| CoreError::Config {
            field: "dropout.weights".into(),
            message,
        };
        if choices.is_empty() || choices.len() != weights.len() {
            return Err(bad(format!(
                "{} combinations but {} weights",
                choices.len(),
                weights.len()
            )));
        }
        if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
            return Err(bad(format!(
                "weights must be finite and ≥ 0, got {weights:?}"
            )));
        }
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            return Err(bad("weights sum to zero".into()));
        }
        let mut acc = 0.0;
        let mut cumulative: Vec<f64> = weights
            .iter()
            .map(|w| {
                acc += w / total;
                acc
            })
            .collect();
        *cumulative.last_mut().expect("non-empty") = 1.0;
        Ok(ModalityDropout {
            choices,
            cumulative,
        })
    }

    /// Builds the sampler for `n` modalities from a config value.
    pub fn from_mode(mode: &DropoutMode, n: usize) -> Result<Self> {
        match mode {
            DropoutMode::Uniform => Ok(Self::uniform(n)),
            DropoutMode::Fixed { combination } => Ok(Self::fixed(mask_to_set(
                combination,
                n,
                "dropout.combination",
            )?)),
            DropoutMode::Weighted {
                combinations,
                weights,
            } => {
                let sets = combinations
                    .iter()
                    .map(|c| mask_to_set(c, n, "dropout.combinations"))
                    .collect::<Result<Vec<_>>>()?;
                Self::from_weights(sets, weights.clone())
            }
        }
    }

    /// The combinations this sampler can produce, with their probabilities.
    pub fn probabilities(&self) -> Vec<(ModalitySet, f64)> {
        let mut prev = 0.0;
        self.choices
            .iter()
            .zip(&self.cumulative)
            .map(|(s, c)| {
                let p = c - prev;
                prev = *c;
                (*s, p)
            })
            .collect()
    }

    /// One combination.
    pub fn sample<R: Rng + ?Sized>(&self, rng: &mut R) -> ModalitySet {
        if self.choices.len() == 1 {
            return self.choices[0];
        }
        let u: f64 = rng.random();
        let i = self.cumulative.partition_point(|c| *c <= u);
        self.choices[i.min(self.choices.len() - 1)]
    }

    /// One combination per sample of a batch.
    pub fn sample_batch<R: Rng + ?Sized>(&self, rng: &mut R, batch: usize) -> Vec<ModalitySet> {
        (0..batch).map(|_| self.sample(rng)).collect()
    }
}
