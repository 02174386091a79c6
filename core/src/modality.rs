//! Modalities, modality sets (bit sets) and the ordered list of non-empty combinations.
//!
//! Nothing here is tied to three modalities: a [`ModalitySet`] holds up to 32 modalities and
//! [`all_combinations`] enumerates the `2^n − 1` non-empty subsets in the paper's order
//! (singles, then pairs, …, then the full set; within one size, lexicographic by modality index).
//! For three modalities (rgb, depth, ir) that is `R, D, I, RD, RI, DI, RDI`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Largest number of modalities a [`ModalitySet`] can hold.
pub const MAX_MODALITIES: usize = 32;

/// The most modalities a dataset may have: every one of their `2^n − 1` combinations is
/// evaluated, so the data loaders refuse more, with a message, before this limit's `assert!` in
/// [`all_combinations`] could be reached.
pub const MAX_DATA_MODALITIES: usize = 16;

/// A set of modality indices, stored as a bit set (bit `m` set = modality `m` present).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct ModalitySet(u32);

impl ModalitySet {
    /// The empty set.
    pub const EMPTY: ModalitySet = ModalitySet(0);

    /// Builds a set from its raw bits.
    pub fn from_bits(bits: u32) -> Self {
        ModalitySet(bits)
    }

    /// The raw bits.
    pub fn bits(self) -> u32 {
        self.0
    }

    /// All of the first `n` modalities.
    pub fn full(n: usize) -> Self {
        assert!(n <= MAX_MODALITIES, "at most {MAX_MODALITIES} modalities");
        if n == MAX_MODALITIES {
            ModalitySet(u32::MAX)
        } else {
            ModalitySet((1u32 << n) - 1)
        }
    }

    /// The set holding only modality `m`.
    pub fn single(m: usize) -> Self {
        assert!(m < MAX_MODALITIES, "modality index {m} out of range");
        ModalitySet(1 << m)
    }

    /// Builds a set from the indices it contains.
    pub fn from_indices(indices: impl IntoIterator<Item = usize>) -> Self {
        indices
            .into_iter()
            .fold(ModalitySet::EMPTY, |s, m| s.with(m))
    }

    /// Builds a set from a 0/1 mask vector such as `[1, 0, 1]` (index 0 first).
    pub fn from_mask(mask: &[bool]) -> Self {
        Self::from_indices(mask.iter().enumerate().filter(|(_, b)| **b).map(|(i, _)| i))
    }

    /// This set with modality `m` added.
    pub fn with(self, m: usize) -> Self {
        ModalitySet(self.0 | Self::single(m).0)
    }

    /// Whether modality `m` is present.
    pub fn contains(self, m: usize) -> bool {
        m < MAX_MODALITIES && self.0 & (1 << m) != 0
    }

    /// Whether every modality of `other` is in `self`.
    pub fn is_superset_of(self, other: ModalitySet) -> bool {
        self.0 & other.0 == other.0
    }

    /// Number of modalities present.
    pub fn len(self) -> usize {
        self.0.count_ones() as usize
    }

    /// Whether no modality is present.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Present modality indices, ascending.
    pub fn indices(self) -> impl Iterator<Item = usize> {
        (0..MAX_MODALITIES).filter(move |&m| self.contains(m))
    }

    /// The 0/1 mask over the first `n` modalities.
    pub fn mask(self, n: usize) -> Vec<bool> {
        (0..n).map(|m| self.contains(m)).collect()
    }

    /// The one-modality subsets of this set, in modality order.
    pub fn singles(self) -> Vec<ModalitySet> {
        self.indices().map(ModalitySet::single).collect()
    }

    /// A short label built from each present modality's first letter, upper-cased
    /// (`RDI`, `RD`, …); `names` are the modality names in index order.
    pub fn short_label(self, names: &[String]) -> String {
        self.indices()
            .map(|m| {
                names
                    .get(m)
                    .and_then(|n| n.chars().next())
                    .map(|c| c.to_ascii_uppercase())
                    .unwrap_or('?')
            })
            .collect()
    }

    /// A readable label joining the present modality names with `+` (`pix+fou`).
    pub fn long_label(self, names: &[String]) -> String {
        self.indices()
            .map(|m| names.get(m).cloned().unwrap_or_else(|| format!("m{m}")))
            .collect::<Vec<_>>()
            .join("+")
    }

    /// The mask written as a bit string in modality order (`101` for {0, 2} of 3).
    pub fn bit_string(self, n: usize) -> String {
        (0..n)
            .map(|m| if self.contains(m) { '1' } else { '0' })
            .collect()
    }
}

impl fmt::Debug for ModalitySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModalitySet{:?}", self.indices().collect::<Vec<_>>())
    }
}

/// Every non-empty combination of `n` modalities in the paper's order: by size, and within a
/// size lexicographically by modality index. For n = 3: `R, D, I, RD, RI, DI, RDI`.
pub fn all_combinations(n: usize) -> Vec<ModalitySet> {
    assert!(
        (1..=MAX_DATA_MODALITIES).contains(&n),
        "between 1 and {MAX_DATA_MODALITIES} modalities are supported, got {n}"
    );
    let mut out = Vec::with_capacity((1usize << n) - 1);
    for size in 1..=n {
        let mut idx: Vec<usize> = (0..size).collect();
        loop {
            out.push(ModalitySet::from_indices(idx.iter().copied()));
            // next combination in lexicographic order
            let mut i = size;
            let mut advanced = false;
            while i > 0 {
                i -= 1;
                if idx[i] < n - size + i {
                    idx[i] += 1;
                    for j in i + 1..size {
                        idx[j] = idx[j - 1] + 1;
                    }
                    advanced = true;
                    break;
                }
            }
            if !advanced {
                break;
            }
        }
    }
    out
}

/// A named modality of a dataset.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Modality {
    /// Index of the modality (its position in every mask and in the channel concatenation).
    pub index: usize,
    /// Human-readable name (`rgb`, `depth`, `pix`, …).
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_modalities_paper_order() {
        let bits: Vec<String> = all_combinations(3)
            .iter()
            .map(|c| c.bit_string(3))
            .collect();
        assert_eq!(bits, ["100", "010", "001", "110", "101", "011", "111"]);
    }

    #[test]
    fn singles_of_a_pair() {
        let s = ModalitySet::from_mask(&[true, false, true]);
        assert_eq!(
            s.singles(),
            vec![ModalitySet::single(0), ModalitySet::single(2)]
        );
        assert_eq!(s.len(), 2);
    }
}
