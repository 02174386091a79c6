//! Metrics and the learning-rate schedule against the golden vectors.

use mmanet_core::metrics::{accuracy, confusion_matrix, iou, pad_rates};
use mmanet_core::schedule::{LrSchedule, ScheduleKind};
use mmanet_tests::{assert_close, flat_f64, golden};

fn usizes(v: &serde_json::Value) -> Vec<usize> {
    flat_f64(v).into_iter().map(|x| x as usize).collect()
}

#[test]
fn acer_matches_golden_with_iso_naming() {
    let g = golden("metrics.json");
    let labels = usizes(&g["acer"]["labels"]);
    let preds = usizes(&g["acer"]["preds"]);
    let want = flat_f64(&g["acer"]["result_[acc,APCER_code,NPCER_code,ACER]"]);
    let acc = accuracy(&preds, &labels);
    // label 1 = bona fide (CASIA-SURF): the code's "APCER" (errors on label 1) is ISO BPCER,
    // its "NPCER" (errors on label 0) is ISO APCER.
    let r = pad_rates(&preds, &labels, 1);
    assert_close("accuracy", &[acc], &want[0..1], 1e-12);
    assert_close("BPCER (code APCER)", &[r.bpcer], &want[1..2], 1e-12);
    assert_close("APCER (code NPCER)", &[r.apcer], &want[2..3], 1e-12);
    assert_close("ACER", &[r.acer], &want[3..4], 1e-12);
    // ACER does not depend on which class is called bona fide.
    let flipped = pad_rates(&preds, &labels, 0);
    assert_close("ACER flipped", &[flipped.acer], &want[3..4], 1e-12);
}

#[test]
fn miou_matches_golden() {
    let g = &golden("metrics.json")["miou"];
    let gt = usizes(&g["gt"]);
    let pred = usizes(&g["pred"]);
    let classes = g["n_classes"].as_u64().unwrap() as usize;
    let cm = confusion_matrix(&pred, &gt, classes);
    let cm_flat: Vec<f64> = cm.iter().flatten().map(|&v| v as f64).collect();
    assert_close(
        "confusion",
        &cm_flat,
        &flat_f64(&g["confusion_rows_gt_cols_pred"]),
        1e-12,
    );
    let (per, mean) = iou(&cm);
    assert_close("iou", &per, &flat_f64(&g["iou"]), 1e-12);
    assert_close("miou", &[mean], &[g["miou"].as_f64().unwrap()], 1e-12);
}

#[test]
fn official_lr_schedule_matches_golden() {
    let g = golden("lr_schedule_cls.json");
    let want = flat_f64(&g["lr_per_epoch"]);
    let sched = LrSchedule {
        kind: ScheduleKind::Official,
        base_lr: 1e-3,
        warmup_epochs: 5,
        milestones: vec![16, 33, 50],
        gamma: 0.1,
        total_epochs: 100,
    };
    assert_eq!(sched.lr_at(0), None, "epoch 0 makes no update");
    let got: Vec<f64> = (0..want.len())
        .map(|e| sched.lr_at(e).unwrap_or(0.0))
        .collect();
    for (e, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            (g - w).abs() <= 1e-12 * w.abs().max(1e-12),
            "epoch {e}: {g} vs {w}"
        );
    }
}

#[test]
fn paper_lr_schedule_warms_up_then_decays() {
    let sched = LrSchedule {
        kind: ScheduleKind::Paper,
        base_lr: 0.1,
        warmup_epochs: 2,
        milestones: vec![5],
        gamma: 0.1,
        total_epochs: 7,
    };
    let got: Vec<f64> = (0..7).map(|e| sched.lr_at(e).unwrap()).collect();
    let want = [0.05, 0.1, 0.1, 0.1, 0.1, 0.01, 0.01];
    for (g, w) in got.iter().zip(want) {
        assert!((g - w).abs() < 1e-12, "{got:?}");
    }
}

/// The official segmentation schedules (NYUv2: SGD lr 0.01; Cityscapes: Adam lr 1e-4), read
/// from the shipped configs as the trainer reads them: one-cycle lr and cycled momentum / β₁.
#[test]
fn one_cycle_schedule_of_the_segmentation_configs_matches_golden() {
    let g = golden("lr_schedule_seg.json");
    for (config, key) in [
        ("nyuv2.toml", "nyuv2_sgd_lr0.01"),
        ("cityscapes.toml", "cityscapes_adam_lr1e-4"),
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../configs")
            .join(config);
        let cfg = mmanet_core::config::ExperimentConfig::load(&path).unwrap();
        let sched = cfg.student.schedule();
        let lr = flat_f64(&g[key]);
        let momentum = flat_f64(&g[format!("{key}_momentum_or_beta1")]);
        assert_eq!(lr.len(), cfg.student.epochs, "{config}: 300 epochs");
        for e in 0..lr.len() {
            let got = sched.lr_at(e).unwrap();
            assert!(
                (got - lr[e]).abs() <= 1e-12 * lr[e].abs(),
                "{config} epoch {e}: lr {got} vs {}",
                lr[e]
            );
            let m = sched.momentum_at(e).unwrap();
            assert!(
                (m - momentum[e]).abs() <= 1e-12,
                "{config} epoch {e}: momentum {m} vs {}",
                momentum[e]
            );
        }
        assert_eq!(cfg.teacher.schedule().lr_at(0), sched.lr_at(0));
    }
}
