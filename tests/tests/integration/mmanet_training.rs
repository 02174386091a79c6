//! MMANet training end to end on mfeat: MAD and MAR switch on after the warm-up, MAR mines a
//! weak set from the configured candidates, the mining state survives a checkpoint, and the
//! saved deployment model has no regularization head.

use burn::prelude::*;
use mmanet_core::config::{ExperimentConfig, Method};
use mmanet_core::mining::RoundMeasure;
use mmanet_core::modality::ModalitySet;

const DEMO: &str = mmanet_core::configs::MFEAT_DEMO;

fn config(out: &std::path::Path) -> ExperimentConfig {
    let mut cfg = mmanet_tests::quick_demo_config(out, 6);
    cfg.methods = vec![Method::SfMd, Method::Sr, Method::Mmanet];
    cfg.mmanet.warmup_epochs = 3;
    cfg.mmanet.mining_epochs = vec![1, 2];
    cfg
}

#[test]
fn mad_and_mar_switch_on_after_warmup_and_mar_mines_a_weak_set() {
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path());
    cfg.validate().unwrap();
    let (data, out) = mmanet_tests::train_on_cpu(&cfg);
    let device = Device::flex();
    let methods: Vec<&str> = out.reports.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["Teacher", "SF-MD", "+SR", "MMANet"]);
    for r in &out.reports[1..] {
        for row in &r.rows {
            assert!(
                row.accuracy > 0.4,
                "{} {}: {:.3}",
                r.method,
                row.label,
                row.accuracy
            );
        }
    }

    // Loss terms per epoch: CE only up to the warm-up epoch, then CE + MAD + MAR.
    let meta: mmanet_core::experiment::StageMeta =
        serde_json::from_slice(&std::fs::read(out.run_dir.join("mmanet/meta.json")).unwrap())
            .unwrap();
    for e in &meta.history {
        let names: Vec<&str> = e.losses.iter().map(|(n, _)| n.as_str()).collect();
        if e.epoch <= 3 {
            assert_eq!(names, ["ce"], "epoch {}", e.epoch);
        } else {
            assert_eq!(names, ["ce", "mad", "mar"], "epoch {}", e.epoch);
            assert!(e.losses.iter().all(|(_, v)| v.is_finite() && *v >= 0.0));
        }
    }
    let sr: mmanet_core::experiment::StageMeta =
        serde_json::from_slice(&std::fs::read(out.run_dir.join("sr/meta.json")).unwrap()).unwrap();
    assert_eq!(
        sr.history
            .last()
            .unwrap()
            .losses
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>(),
        ["ce", "mad", "sr"]
    );

    // Mining: rounds after epochs 1 and 2, weak set fixed after epoch 3, among the pairs.
    let mining = &out.mining[0];
    assert_eq!(mining.method, "MMANet");
    let trace = &mining.trace;
    let epochs: Vec<usize> = trace.rounds.iter().map(|r| r.epoch).collect();
    assert_eq!(epochs, [1, 2]);
    assert_eq!(trace.chosen_after_epoch, Some(3));
    let round = &trace.rounds[1];
    assert_eq!(round.discrepancy.len(), 3, "three pair candidates");
    match &round.measure {
        RoundMeasure::Distributions(d) => assert_eq!(d.len(), 4, "pairs + full"),
        other => panic!("classification mines prediction distributions, got {other:?}"),
    }
    let names = data.source.modality_names();
    let weak = trace.weak_set_labels(&names).expect("a weak set");
    assert_eq!(
        weak.len(),
        3,
        "a pair and its two single modalities: {weak:?}"
    );
    assert_eq!(weak[0].split('+').count(), 2);
    assert!(out.run_dir.join("mmanet/mining.json").exists());

    // The saved deployment model has no regularization head: it loads into a plain network.
    let bytes = std::fs::read(out.run_dir.join("mmanet/model.bpk")).unwrap();
    let plain = mmanet_core::model::MultimodalNet::new(
        data.source.modalities(),
        10,
        &cfg.model,
        false,
        &device,
    )
    .unwrap();
    let loaded = mmanet_core::train::module_from_bytes(plain, bytes).unwrap();
    assert_eq!(loaded.num_reg_head_params(), 0);
}

#[test]
fn inconsistent_mmanet_settings_are_rejected() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    let mut cfg = ExperimentConfig::from_toml(DEMO, "mfeat-demo.toml").unwrap();
    cfg.mmanet.mining_epochs = vec![2, 9];
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("mmanet.mining_epochs"), "{err}");
    cfg.mmanet.mining_epochs = vec![2];
    cfg.mmanet.warmup_epochs = 40;
    let err = cfg.validate().unwrap_err().to_string();
    assert!(err.contains("mmanet.warmup_epochs"), "{err}");
    let bad = DEMO.replace("mad = \"official\"", "mad = \"cosine\"");
    let err = ExperimentConfig::from_toml(&bad, "c.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("c.toml:") && err.contains("cosine"), "{err}");
}

#[test]
fn mar_mining_state_survives_a_checkpoint() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    use mmanet_core::mmanet::MarTerm;
    use mmanet_core::mmanet_settings::MmanetConfig;
    use mmanet_core::task::Classification;
    use mmanet_core::task::{LossTerm, MiningEvidence};
    let cfg = MmanetConfig {
        warmup_epochs: 3,
        mining_epochs: vec![1, 2],
        ..MmanetConfig::default()
    };
    let mut a = MarTerm::<Classification>::mined(&cfg, 3);
    assert!(a.mining_request(0).is_empty());
    let combos = a.mining_request(1);
    assert_eq!(combos.len(), 4);
    // 4 samples, 2 classes: the third candidate (DI) disagrees most with the full combination
    let agree = vec![0.9f32, 0.1, 0.2, 0.8, 0.9, 0.1, 0.2, 0.8];
    let skewed = vec![0.9f32, 0.1, 0.9, 0.1, 0.9, 0.1, 0.9, 0.1];
    a.on_mining(
        1,
        MiningEvidence::Probabilities {
            rows: vec![agree.clone(), agree.clone(), skewed, agree],
            classes: 2,
        },
    );
    let saved = a.state().unwrap();
    let mut b = MarTerm::<Classification>::mined(&cfg, 3);
    b.restore_state(saved).unwrap();
    assert_eq!(a.bank(), b.bank());
    assert!(b.end_of_epoch(3).is_some());
    let weak = b.weak_set().unwrap().to_vec();
    let di = ModalitySet::from_mask(&[false, true, true]);
    assert_eq!(
        weak,
        vec![di, ModalitySet::single(1), ModalitySet::single(2)]
    );
}
