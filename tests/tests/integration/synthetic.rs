//! The synthetic anti-spoofing generator: shapes, balance, determinism, and cue strength per
//! modality (a modality with strength 0 carries no live/spoof signal, one with strength 1 does).

use mmanet_core::data::ModalityKind;
use mmanet_core::data::synthetic::{SyntheticConfig, generate};

/// Distance between the live and spoof class-mean images of modality `m`, in units of the
/// pixel noise's standard error (so "no signal" is about 1 and does not grow with size).
fn class_separation(cfg: &SyntheticConfig, m: usize) -> f64 {
    let ds = generate(cfg).unwrap();
    let n = ds.modalities[m].kind.numel();
    let mut mean = [vec![0f64; n], vec![0f64; n]];
    let mut count = [0f64; 2];
    for (i, &l) in ds.labels.iter().enumerate() {
        count[l] += 1.0;
        for (a, v) in mean[l].iter_mut().zip(&ds.features[m][i * n..(i + 1) * n]) {
            *a += *v as f64;
        }
    }
    let d2: f64 = (0..n)
        .map(|k| (mean[1][k] / count[1] - mean[0][k] / count[0]).powi(2))
        .sum();
    let se2 = (cfg.noise as f64).powi(2) * (1.0 / count[0] + 1.0 / count[1]);
    (d2 / (n as f64 * se2)).sqrt()
}

#[test]
fn shapes_balance_and_determinism() {
    let cfg = SyntheticConfig {
        samples: 40,
        size: 16,
        ..SyntheticConfig::default()
    };
    let a = generate(&cfg).unwrap();
    let b = generate(&cfg).unwrap();
    assert_eq!(a, b, "same seed, same data");
    let kinds: Vec<_> = a
        .modalities
        .iter()
        .map(|m| (m.name.as_str(), m.kind.clone()))
        .collect();
    assert_eq!(
        kinds[0],
        (
            "rgb",
            ModalityKind::Image {
                channels: 3,
                height: 16,
                width: 16
            }
        )
    );
    assert_eq!(
        kinds[1],
        (
            "depth",
            ModalityKind::Image {
                channels: 1,
                height: 16,
                width: 16
            }
        )
    );
    assert_eq!(
        kinds[2],
        (
            "ir",
            ModalityKind::Image {
                channels: 1,
                height: 16,
                width: 16
            }
        )
    );
    assert_eq!(a.labels.iter().filter(|&&l| l == 1).count(), 20);
    let err = generate(&SyntheticConfig {
        depth_strength: 1.5,
        ..cfg
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("synthetic.depth_strength"), "{err}");
}

#[test]
fn cue_strength_controls_each_modality() {
    let base = SyntheticConfig {
        samples: 400,
        size: 16,
        ..SyntheticConfig::default()
    };
    for (m, name) in [(0, "rgb"), (1, "depth"), (2, "ir")] {
        let mut off = base.clone();
        let mut on = base.clone();
        match m {
            0 => (off.rgb_strength, on.rgb_strength) = (0.0, 1.0),
            1 => (off.depth_strength, on.depth_strength) = (0.0, 1.0),
            _ => (off.ir_strength, on.ir_strength) = (0.0, 1.0),
        }
        let (s_off, s_on) = (class_separation(&off, m), class_separation(&on, m));
        assert!(
            s_off < 2.0,
            "{name} with strength 0 still separates the classes: {s_off:.2}"
        );
        assert!(
            s_on > 3.0,
            "{name} with strength 1 barely separates: {s_on:.2} (strength 0: {s_off:.2})"
        );
    }
}
