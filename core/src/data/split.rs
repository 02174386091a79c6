//! Seeded, stratified train/validation/test splits.

use crate::error::{CoreError, Result};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

/// Fractions of each class that go to each split, and the shuffle seed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitRule {
    /// Fraction of every class used for training.
    pub train: f64,
    /// Fraction of every class used for validation (model selection, mining).
    pub val: f64,
    /// Fraction of every class used for testing; the three must sum to 1.
    pub test: f64,
    /// Seed of the shuffle.
    pub seed: u64,
}

impl Default for SplitRule {
    fn default() -> Self {
        SplitRule {
            train: 0.6,
            val: 0.2,
            test: 0.2,
            seed: 0,
        }
    }
}

/// Sample indices of the three splits.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// Training indices.
    pub train: Vec<usize>,
    /// Validation indices.
    pub val: Vec<usize>,
    /// Test indices.
    pub test: Vec<usize>,
}

impl SplitRule {
    /// Checks the fractions.
    pub fn validate(&self) -> Result<()> {
        let parts = [self.train, self.val, self.test];
        if parts.iter().any(|p| !p.is_finite() || *p < 0.0) || self.train <= 0.0 {
            return Err(CoreError::config(
                "split",
                format!(
                    "fractions must be ≥ 0 with train > 0, got train {} val {} test {}",
                    self.train, self.val, self.test
                ),
            ));
        }
        let sum: f64 = parts.iter().sum();
        if (sum - 1.0).abs() > 1e-6 {
            return Err(CoreError::config(
                "split",
                format!("train + val + test must be 1, got {sum}"),
            ));
        }
        Ok(())
    }

    /// Splits `labels` class by class, so each split keeps the class proportions. Errors when a
    /// split with a non-zero fraction would be empty.
    pub fn apply(&self, labels: &[usize], context: &str) -> Result<Split> {
        self.validate()?;
        let classes = labels.iter().max().map_or(0, |m| m + 1);
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut split = Split {
            train: Vec::new(),
            val: Vec::new(),
            test: Vec::new(),
        };
        for c in 0..classes {
            let mut idx: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
            idx.shuffle(&mut rng);
            let n = idx.len();
            let n_val = (n as f64 * self.val).round() as usize;
            let n_test = ((n as f64 * self.test).round() as usize).min(n - n_val.min(n));
            let n_train = n - n_val.min(n) - n_test;
            split.train.extend_from_slice(&idx[..n_train]);
            split
                .val
                .extend_from_slice(&idx[n_train..n_train + n_val.min(n - n_train)]);
            split.test.extend_from_slice(&idx[n - n_test..]);
        }
        for (name, part, frac) in [
            ("train", &split.train, self.train),
            ("val", &split.val, self.val),
            ("test", &split.test, self.test),
        ] {
            if frac > 0.0 && part.is_empty() {
                return Err(CoreError::data(
                    context,
                    format!(
                        "the {name} split is empty ({} samples, fraction {frac})",
                        labels.len()
                    ),
                ));
            }
        }
        split.train.sort_unstable();
        split.val.sort_unstable();
        split.test.sort_unstable();
        Ok(split)
    }
}
