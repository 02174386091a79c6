//! Modality combinations and modality dropout.

use mmanet_core::dropout::{DropoutMode, ModalityDropout};
use mmanet_core::modality::{ModalitySet, all_combinations};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn bits(n: usize) -> Vec<String> {
    all_combinations(n)
        .iter()
        .map(|c| c.bit_string(n))
        .collect()
}

#[test]
fn order_and_count_for_two_three_four_modalities() {
    assert_eq!(bits(2), ["10", "01", "11"]);
    assert_eq!(bits(3), ["100", "010", "001", "110", "101", "011", "111"]);
    let four = bits(4);
    assert_eq!(four.len(), 15);
    assert_eq!(
        four,
        [
            "1000", "0100", "0010", "0001", "1100", "1010", "1001", "0110", "0101", "0011", "1110",
            "1101", "1011", "0111", "1111"
        ]
    );
    for n in 1..=8 {
        let all = all_combinations(n);
        assert_eq!(all.len(), (1 << n) - 1);
        // sizes never decrease and every set is distinct and non-empty
        assert!(all.windows(2).all(|w| w[0].len() <= w[1].len()));
        let mut sorted: Vec<u32> = all.iter().map(|s| s.bits()).collect();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len());
        assert!(all.iter().all(|s| !s.is_empty()));
        assert_eq!(*all.last().unwrap(), ModalitySet::full(n));
    }
}

#[test]
fn labels_follow_modality_names() {
    let names: Vec<String> = ["rgb", "depth", "ir"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let labels: Vec<String> = all_combinations(3)
        .iter()
        .map(|c| c.short_label(&names))
        .collect();
    assert_eq!(labels, ["R", "D", "I", "RD", "RI", "DI", "RDI"]);
    assert_eq!(
        ModalitySet::from_mask(&[true, false, true]).long_label(&names),
        "rgb+ir"
    );
}

#[test]
fn uniform_dropout_is_one_categorical_draw_per_sample() {
    let d = ModalityDropout::uniform(3);
    let mut rng = StdRng::seed_from_u64(7);
    let draws = 70_000;
    let mut counts = std::collections::HashMap::new();
    for s in d.sample_batch(&mut rng, draws) {
        assert!(!s.is_empty(), "the empty combination is never drawn");
        *counts.entry(s.bits()).or_insert(0usize) += 1;
    }
    assert_eq!(counts.len(), 7);
    for (bits, c) in counts {
        let f = c as f64 / draws as f64;
        // 1/7 each; 4 standard deviations of a binomial frequency ≈ 0.0053
        assert!(
            (f - 1.0 / 7.0).abs() < 0.0053,
            "combination {bits:03b}: frequency {f}"
        );
    }
    // A Bernoulli-per-modality scheme would give the full set 1/8 after rejecting the empty
    // set; the categorical draw gives exactly the uniform 1/7 checked above.
}

#[test]
fn weighted_dropout_follows_the_weights() {
    // The CeFA teacher's "unaverage" mode: R, D, I, RDI at 1/4 each, pairs never.
    let mode = DropoutMode::Weighted {
        combinations: vec![vec![1, 0, 0], vec![0, 1, 0], vec![0, 0, 1], vec![1, 1, 1]],
        weights: vec![1.0, 1.0, 1.0, 1.0],
    };
    let d = ModalityDropout::from_mode(&mode, 3).unwrap();
    let mut rng = StdRng::seed_from_u64(3);
    let draws = 40_000;
    let mut counts = [0usize; 8];
    for s in d.sample_batch(&mut rng, draws) {
        counts[s.bits() as usize] += 1;
    }
    for (bits, &c) in counts.iter().enumerate() {
        let f = c as f64 / draws as f64;
        let want = if [1, 2, 4, 7].contains(&bits) {
            0.25
        } else {
            0.0
        };
        assert!(
            (f - want).abs() < 0.01,
            "combination {bits:03b}: {f} vs {want}"
        );
    }
}

#[test]
fn fixed_dropout_and_bad_masks() {
    let d = ModalityDropout::from_mode(
        &DropoutMode::Fixed {
            combination: vec![0, 1, 1],
        },
        3,
    )
    .unwrap();
    let mut rng = StdRng::seed_from_u64(0);
    assert!(
        d.sample_batch(&mut rng, 100)
            .iter()
            .all(|s| s.bit_string(3) == "011")
    );
    let err = ModalityDropout::from_mode(
        &DropoutMode::Fixed {
            combination: vec![0, 0, 0],
        },
        3,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("empty combination"), "{err}");
    let err = ModalityDropout::from_mode(
        &DropoutMode::Fixed {
            combination: vec![1, 1],
        },
        3,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("length 3"), "{err}");
}
