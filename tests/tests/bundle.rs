//! The deployment bundle: exported from a trained run, written and read back as bytes, its
//! network gives the run's own predictions and the eval table's accuracy, with a modality
//! dropped as with all of them.

use burn::prelude::*;
use mmanet_core::bundle::Bundle;
use mmanet_core::config::{Method, TaskKind};
use mmanet_core::eval::predict_proba;
use mmanet_core::modality::ModalitySet;
use mmanet_core::pipeline::block_on;
use mmanet_core::runs::load_stage_model;
use mmanet_core::store::FolderStore;
use mmanet_tests::{quick_demo_config, train_on_cpu};

#[test]
fn an_exported_bundle_predicts_as_the_run_and_scores_its_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = quick_demo_config(dir.path(), 3);
    cfg.methods = vec![Method::SfMd, Method::Mmanet];
    cfg.mmanet.warmup_epochs = 1;
    cfg.mmanet.mining_epochs = vec![0, 1];
    cfg.validate().unwrap();
    let (data, out) = train_on_cpu(&cfg);

    let bundle = Bundle::from_run(&FolderStore::new(&out.run_dir), Method::Mmanet).unwrap();
    let h = &bundle.header;
    assert_eq!(h.task, TaskKind::Classification);
    assert_eq!((h.method.as_str(), h.stage.as_str()), ("MMANet", "mmanet"));
    assert_eq!(h.class_names, data.source.class_names());
    assert_eq!(h.modalities, data.source.modalities());
    assert_eq!(h.scalers, data.scalers);
    assert!(
        h.scalers.iter().any(Option::is_some),
        "mfeat's views are standardised"
    );
    assert_eq!(
        h.test_report.as_ref(),
        out.reports.iter().find(|r| r.method == "MMANet")
    );

    // through a file
    let path = dir.path().join("model.mmanet");
    std::fs::write(&path, bundle.to_bytes().unwrap()).unwrap();
    let read = Bundle::from_bytes(&std::fs::read(&path).unwrap(), "model.mmanet").unwrap();
    assert_eq!(read, bundle);

    let device = Device::flex();
    let net = read.classifier(&device).unwrap();
    let run_net = load_stage_model(&cfg, &data, &device, &out.run_dir, "mmanet").unwrap();
    let test = &data.split.test;
    // pix dropped: fou + mor
    let set = ModalitySet::from_indices([1, 2]);
    let from_bundle = block_on(predict_proba(
        &net,
        data.source.as_ref(),
        test,
        set,
        &device,
    ))
    .unwrap();
    let from_run = block_on(predict_proba(
        &run_net,
        data.source.as_ref(),
        test,
        set,
        &device,
    ))
    .unwrap();
    assert_eq!(from_bundle, from_run);
    // the eval table's accuracy for that combination, exactly
    let correct = from_bundle
        .iter()
        .zip(test)
        .filter(|&(p, &i)| {
            let best = p
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(k, _)| k);
            best == Some(data.source.label(i))
        })
        .count();
    let row = h
        .test_report
        .as_ref()
        .unwrap()
        .rows
        .iter()
        .find(|r| r.combination == set)
        .unwrap();
    assert_eq!(correct as f64 / test.len() as f64, row.accuracy);

    // a classifier bundle does not segment; a stage the run lacks is named
    let e = read.segmenter(&device).unwrap_err().to_string();
    assert!(e.contains("classifier"), "{e}");
    let e = Bundle::from_run(&FolderStore::new(&out.run_dir), Method::Sf)
        .unwrap_err()
        .to_string();
    assert!(e.contains("`sf`") && e.contains("mmanet"), "{e}");
}
