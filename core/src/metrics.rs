//! Evaluation metrics: accuracy, ISO/IEC 30107-3 APCER / BPCER / ACER, confusion matrix and mIoU.
//!
//! Naming follows ISO 30107-3: **APCER** is the share of *attack* presentations accepted as bona
//! fide, **BPCER** the share of *bona fide* presentations rejected. The official MMANet code calls
//! them the other way round on CASIA-SURF (spec §1.8); ACER, their mean, is the same either way.

use serde::{Deserialize, Serialize};

/// Binary presentation-attack-detection error rates.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PadRates {
    /// Attack presentations classified as bona fide / attack presentations.
    pub apcer: f64,
    /// Bona fide presentations classified as attack / bona fide presentations.
    pub bpcer: f64,
    /// (APCER + BPCER) / 2.
    pub acer: f64,
}

/// Fraction of `preds` equal to `labels` (0 for empty input).
pub fn accuracy(preds: &[usize], labels: &[usize]) -> f64 {
    assert_eq!(preds.len(), labels.len(), "one prediction per label");
    if labels.is_empty() {
        return 0.0;
    }
    let right = preds.iter().zip(labels).filter(|(p, l)| p == l).count();
    right as f64 / labels.len() as f64
}

/// APCER, BPCER and ACER for a two-class task whose bona-fide class is `bona_fide_label`
/// (1 on CASIA-SURF, 0 on CeFA). A class with no samples contributes an error rate of 0.
pub fn pad_rates(preds: &[usize], labels: &[usize], bona_fide_label: usize) -> PadRates {
    assert_eq!(preds.len(), labels.len(), "one prediction per label");
    let (mut attack, mut attack_wrong, mut bona, mut bona_wrong) = (0usize, 0usize, 0usize, 0usize);
    for (&p, &l) in preds.iter().zip(labels) {
        if l == bona_fide_label {
            bona += 1;
            bona_wrong += usize::from(p != l);
        } else {
            attack += 1;
            attack_wrong += usize::from(p != l);
        }
    }
    let rate = |wrong: usize, total: usize| {
        if total == 0 {
            0.0
        } else {
            wrong as f64 / total as f64
        }
    };
    let apcer = rate(attack_wrong, attack);
    let bpcer = rate(bona_wrong, bona);
    PadRates {
        apcer,
        bpcer,
        acer: (apcer + bpcer) / 2.0,
    }
}

/// Index of the largest value of each row of a row-major `rows × cols` matrix
/// (first maximum on ties, as torch/numpy argmax).
pub fn argmax_rows(values: &[f32], cols: usize) -> Vec<usize> {
    values
        .chunks(cols)
        .map(|row| {
            let mut best = 0;
            for (i, v) in row.iter().enumerate() {
                if *v > row[best] {
                    best = i;
                }
            }
            best
        })
        .collect()
}

/// Confusion matrix, rows = ground truth, columns = prediction.
pub fn confusion_matrix(preds: &[usize], labels: &[usize], classes: usize) -> Vec<Vec<u64>> {
    let mut m = vec![vec![0u64; classes]; classes];
    for (&p, &l) in preds.iter().zip(labels) {
        if p < classes && l < classes {
            m[l][p] += 1;
        }
    }
    m
}

/// Per-class IoU = TP / (TP + FP + FN) from a confusion matrix; a class with empty union gets 0
/// and still counts in the mean (ESANet's convention). Returns (per-class IoU, mIoU).
pub fn iou(confusion: &[Vec<u64>]) -> (Vec<f64>, f64) {
    let c = confusion.len();
    let per: Vec<f64> = (0..c)
        .map(|k| {
            let tp = confusion[k][k] as f64;
            let row: f64 = confusion[k].iter().sum::<u64>() as f64;
            let col: f64 = confusion.iter().map(|r| r[k]).sum::<u64>() as f64;
            let union = row + col - tp;
            if union > 0.0 { tp / union } else { 0.0 }
        })
        .collect();
    let mean = if c == 0 {
        0.0
    } else {
        per.iter().sum::<f64>() / c as f64
    };
    (per, mean)
}
