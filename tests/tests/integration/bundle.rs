//! The deployment bundle: exported from a trained run, written and read back as bytes, its
//! network gives the run's own predictions and the eval table's accuracy, with a modality
//! dropped as with all of them.

use burn::prelude::*;
use mmanet_core::bundle::Bundle;
use mmanet_core::config::{Method, TaskKind};
use mmanet_core::eval::predict_proba;
use mmanet_core::experiment::block_on;
use mmanet_core::modality::ModalitySet;
use mmanet_core::predict::inputs::{
    CsvInput, DatasetSamples, HeaderRule, LabelAt, SampleReader, read_csv_rows,
};
use mmanet_core::predict::output::{predictions_csv, predictions_json};
use mmanet_core::predict::{Classifier, load_data_for, tally};
use mmanet_core::prepare::LoadedData;
use mmanet_core::runs::load_stage_model;
use mmanet_core::store::FolderStore;
use mmanet_tests::{quick_demo_config, train_on_cpu};

#[test]
fn an_exported_bundle_predicts_as_the_run_and_scores_its_table() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
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

    // `mmanet predict`'s path: the dataset loaded raw, standardised with the bundle's own
    // statistics, each sample seeing what it has — the explorer's probabilities and the table's
    // accuracy, in one batch or many
    let classifier = Classifier::new(&read, &device).unwrap();
    let raw = load_data_for(&read.header, &cfg).unwrap();
    let LoadedData::Classification(raw) = raw else {
        panic!("mfeat is classification data")
    };
    assert!(raw.scalers.iter().all(Option::is_none), "loaded raw");
    let samples = DatasetSamples {
        source: raw.source.clone(),
        indices: test.clone(),
    };
    let mut calls = 0;
    let predict = |reader: &dyn SampleReader, batch: usize, calls: &mut usize| {
        block_on(
            classifier.predict(reader, Some(set), batch, &mut |done, total| {
                *calls += 1;
                assert!(done <= total);
            }),
        )
        .unwrap()
    };
    let one_batch = predict(&samples, test.len(), &mut calls);
    assert_eq!(calls, 1);
    let probabilities: Vec<Vec<f32>> = one_batch.iter().map(|p| p.probabilities.clone()).collect();
    assert_eq!(probabilities, from_run, "the explorer's probabilities");
    let tallies = tally(&one_batch);
    assert_eq!(tallies.len(), 1);
    assert_eq!(tallies[0].seen, set);
    assert_eq!(tallies[0].accuracy(), Some(row.accuracy));
    calls = 0;
    let batches = predict(&samples, 7, &mut calls);
    assert_eq!(calls, test.len().div_ceil(7));
    for (a, b) in batches.iter().zip(&one_batch) {
        assert_eq!(a.class, b.class);
        for (x, y) in a.probabilities.iter().zip(&b.probabilities) {
            assert!((x - y).abs() <= 1e-6, "{x} vs {y}");
        }
    }
    assert_eq!(tally(&batches)[0].accuracy(), Some(row.accuracy));

    // the same rows as CSV files: pix's rows empty, fou's and mor's with the label last
    let csv_of = |m: usize, with_values: bool| {
        let mut text = String::new();
        let mut values = vec![Vec::new(); 3];
        for &i in test {
            raw.source.load_sample(i, None, &mut values).unwrap();
            if with_values {
                let cells: Vec<String> = values[m].iter().map(|v| v.to_string()).collect();
                text += &format!("{},{}\n", cells.join(","), raw.source.label(i));
            } else {
                text += ",\n";
            }
        }
        text
    };
    let texts = [csv_of(0, false), csv_of(1, true), csv_of(2, true)];
    let inputs: Vec<CsvInput<'_>> = ["pix", "fou", "mor"]
        .iter()
        .zip(&texts)
        .map(|(name, text)| CsvInput {
            modality: name.to_string(),
            file: format!("{name}.csv"),
            text,
        })
        .collect();
    let rows = read_csv_rows(
        &read.header.modalities,
        10,
        &inputs,
        HeaderRule::Auto,
        LabelAt::Last,
    )
    .unwrap();
    let from_csv = block_on(classifier.predict(&rows, None, test.len(), &mut |_, _| {})).unwrap();
    for (a, b) in from_csv.iter().zip(&one_batch) {
        assert_eq!(
            (a.seen, a.class, &a.probabilities, a.label),
            (b.seen, b.class, &b.probabilities, b.label)
        );
    }
    // the files as `--out` writes them
    let csv = String::from_utf8(predictions_csv(&read.header, &from_csv).unwrap()).unwrap();
    assert!(
        csv.starts_with("id,seen,predicted,label,correct,p:digit 0,"),
        "{csv}"
    );
    assert!(
        csv.lines().nth(1).unwrap().starts_with("row 1,fou+mor,"),
        "{csv}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&predictions_json(&read.header, &from_csv).unwrap()).unwrap();
    assert_eq!(
        json["predictions"][0]["seen"],
        serde_json::json!(["fou", "mor"])
    );
    assert_eq!(json["predictions"].as_array().unwrap().len(), test.len());
    // `--modalities` naming only pix: every row lacks it, an error naming the first row
    let e = block_on(classifier.predict(
        &rows,
        Some(ModalitySet::from_indices([0])),
        8,
        &mut |_, _| {},
    ))
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("row 1") && e.contains("none of the modalities asked for (pix)"),
        "{e}"
    );

    // a classifier bundle does not segment; a stage the run lacks is named
    let e = read.segmenter(&device).unwrap_err().to_string();
    assert!(e.contains("classifier"), "{e}");
    let e = Bundle::from_run(&FolderStore::new(&out.run_dir), Method::Sf)
        .unwrap_err()
        .to_string();
    assert!(e.contains("`sf`") && e.contains("mmanet"), "{e}");
}

/// The pretrained model the app and the page ship (`app/assets/mfeat-mmanet.mmanet`) still
/// loads with this build and scores, on its dataset's test split, exactly the table it carries,
/// combination by combination.
#[test]
fn the_shipped_pretrained_bundle_reproduces_its_table() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../app/assets/mfeat-mmanet.mmanet"
    );
    let bundle = Bundle::from_bytes(&std::fs::read(path).unwrap(), path).unwrap();
    let h = &bundle.header;
    assert_eq!((h.method.as_str(), h.dataset.as_str()), ("MMANet", "mfeat"));
    let device = Device::flex();
    let classifier = Classifier::new(&bundle, &device).unwrap();
    let LoadedData::Classification(raw) = load_data_for(h, &h.config).unwrap() else {
        panic!("mfeat is classification data")
    };
    let samples = DatasetSamples {
        source: raw.source.clone(),
        indices: raw.split.test.clone(),
    };
    let report = h.test_report.as_ref().unwrap();
    assert_eq!(report.rows.len(), 7);
    for row in &report.rows {
        let predictions =
            block_on(classifier.predict(&samples, Some(row.combination), 64, &mut |_, _| {}))
                .unwrap();
        assert_eq!(
            tally(&predictions)[0].accuracy(),
            Some(row.accuracy),
            "{}",
            row.label
        );
    }
}

/// A bundle whose weights are not finite (a diverged run exported anyway) predicts nothing: the
/// first batch is refused with a clear message, not turned into arbitrary classes.
#[test]
fn a_bundle_with_non_finite_weights_is_refused_at_prediction() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../app/assets/mfeat-mmanet.mmanet"
    );
    let mut bundle = Bundle::from_bytes(&std::fs::read(path).unwrap(), path).unwrap();
    let device = Device::flex();
    let net = bundle.classifier(&device).unwrap();
    let poisoned = burn::module::Module::map(net, &mut mmanet_tests::PoisonWeights);
    bundle.weights = mmanet_core::train::module_to_bytes(&poisoned).unwrap();
    let classifier = Classifier::new(&bundle, &device).unwrap();
    let LoadedData::Classification(raw) =
        load_data_for(&bundle.header, &bundle.header.config).unwrap()
    else {
        panic!("mfeat is classification data")
    };
    let samples = DatasetSamples {
        source: raw.source.clone(),
        indices: raw.split.test[..8].to_vec(),
    };
    let e = block_on(classifier.predict(&samples, None, 64, &mut |_, _| {}))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a number"), "{e}");
}
