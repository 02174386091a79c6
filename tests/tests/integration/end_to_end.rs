//! End to end on the bundled mfeat data: a short SF-MD run is well above chance on every
//! combination, checkpoints resume, a finished teacher is reused, `eval` needs trained models.

use burn::prelude::*;
use mmanet_core::config::ExperimentConfig;
use mmanet_core::experiment::{RunMode, SilentProgress, prepare_data, run_experiment};

const DEMO: &str = mmanet_core::configs::MFEAT_DEMO;

use mmanet_tests::{quick_demo_config as quick_config, train_on_cpu};

#[test]
fn short_sf_md_run_is_well_above_chance_on_every_combination() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    let dir = tempfile::tempdir().unwrap();
    let cfg = quick_config(dir.path(), 6);
    let (data, out) = train_on_cpu(&cfg);
    let device = Device::flex();
    let sfmd = out.reports.iter().find(|r| r.method == "SF-MD").unwrap();
    assert_eq!(sfmd.rows.len(), 7);
    for row in &sfmd.rows {
        // chance is 10 % on ten balanced classes
        assert!(
            row.accuracy > 0.4,
            "{}: accuracy {:.3}",
            row.label,
            row.accuracy
        );
        assert_eq!(row.samples, 400);
    }
    let full = sfmd.rows.last().unwrap();
    assert!(full.accuracy > 0.9, "all three views: {:.3}", full.accuracy);
    for f in [
        "results.md",
        "results.csv",
        "results.json",
        "reports.json",
        "teacher/model.bpk",
        "sf-md/checkpoint.bin",
    ] {
        assert!(out.run_dir.join(f).exists(), "{f} written");
    }
    let md = std::fs::read_to_string(out.run_dir.join("results.md")).unwrap();
    assert!(
        md.contains("pix+fou+mor") && md.contains("Average") && md.contains("SF-MD"),
        "{md}"
    );

    // A second run reuses both finished stages and gives the same numbers.
    let again = run_experiment(
        &cfg,
        &data,
        &device,
        false,
        RunMode::EvalOnly,
        &mut SilentProgress,
    )
    .unwrap();
    assert_eq!(again.reports, out.reports);

    // Changing the teacher's settings makes `eval` refuse (no matching trained teacher).
    let mut changed = cfg.clone();
    changed.teacher.lr *= 2.0;
    let err = run_experiment(
        &changed,
        &data,
        &device,
        false,
        RunMode::EvalOnly,
        &mut SilentProgress,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("teacher") && err.contains("mmanet train"),
        "{err}"
    );
}

#[test]
fn interrupted_stage_resumes_to_the_same_model() {
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
    use mmanet_core::checkpoint::StageCheckpoint;
    use mmanet_core::experiment::block_on;
    use mmanet_core::model::MultimodalNet;
    use mmanet_core::task::Classification;
    use mmanet_core::train::{StageTrainer, TrainEvent};

    let dir = tempfile::tempdir().unwrap();
    let cfg = quick_config(dir.path(), 3);
    let data = prepare_data(&cfg).unwrap();
    let device = Device::flex();
    // Every trainer starts from the same initial weights (Burn's seed is global, and other tests
    // run in parallel threads, so each trainer loads one serialised initialisation).
    let train_dev = device.clone().autodiff();
    let init =
        MultimodalNet::new(data.source.modalities(), 10, &cfg.model, false, &train_dev).unwrap();
    let init_bytes = mmanet_core::train::module_to_bytes(&init).unwrap();
    let make = || {
        let fresh = MultimodalNet::new(data.source.modalities(), 10, &cfg.model, false, &train_dev)
            .unwrap();
        let net = mmanet_core::train::module_from_bytes(fresh, init_bytes.clone()).unwrap();
        StageTrainer::<Classification>::new(
            cfg.student.clone(),
            net,
            data.source.clone(),
            data.split.train.clone(),
            data.split.val.clone(),
            &device,
        )
        .unwrap()
    };
    let run_to_end = |t: &mut StageTrainer<Classification>, stop_after_epochs: Option<usize>| loop {
        match block_on(t.step()).unwrap() {
            TrainEvent::Finished { .. } => break,
            TrainEvent::Epoch(e) if Some(e.epoch + 1) == stop_after_epochs => break,
            _ => {}
        }
    };
    // uninterrupted
    let mut a = make();
    run_to_end(&mut a, None);
    // interrupted after one epoch, checkpoint written and read back, a fresh trainer continues
    let mut b = make();
    run_to_end(&mut b, Some(1));
    let (model, optimizer, progress) = b.checkpoint().unwrap();
    let path = dir.path().join("ck.bin");
    StageCheckpoint {
        progress,
        model,
        optimizer,
        best_model: b.best_model_bytes().map(|x| x.to_vec()),
    }
    .save(&path)
    .unwrap();
    drop(b);
    let ck = StageCheckpoint::load(&path).unwrap();
    let mut c = make();
    c.restore(ck.model, ck.optimizer, ck.progress, ck.best_model)
        .unwrap();
    run_to_end(&mut c, None);
    assert_eq!(c.progress().history.len(), 3);
    // Same weights: identical class probabilities on the validation split.
    let full = mmanet_core::modality::ModalitySet::full(3);
    let eval_dev = device.clone();
    let proba = |t: &StageTrainer<Classification>| {
        block_on(mmanet_core::eval::predict_proba(
            &t.model().valid(),
            data.source.as_ref(),
            &data.split.val,
            full,
            &eval_dev,
        ))
        .unwrap()
    };
    let (pa, pc) = (proba(&a), proba(&c));
    let max_diff = pa
        .iter()
        .flatten()
        .zip(pc.iter().flatten())
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max);
    assert!(
        max_diff <= 1e-6,
        "resumed training ends in other weights (max prob diff {max_diff})"
    );
    assert_eq!(a.progress().history, c.progress().history);

    // A truncated checkpoint is an error naming the file, not a panic.
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = StageCheckpoint::load(&path).unwrap_err().to_string();
    assert!(err.contains("ck.bin") && err.contains("truncated"), "{err}");
}

#[test]
fn config_errors_name_the_field() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    let bad = DEMO.replace("epochs = 30", "epochs = 0");
    let err = ExperimentConfig::from_toml(&bad, "c.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("teacher.epochs"), "{err}");
    let bad = DEMO.replace("[eval]", "[eval]\ncolour = 1");
    let err = ExperimentConfig::from_toml(&bad, "c.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("c.toml:") && err.contains("colour"), "{err}");
    let bad = DEMO.replace("source = \"mfeat\"", "source = \"manifest\"");
    let err = ExperimentConfig::from_toml(&bad, "c.toml")
        .unwrap_err()
        .to_string();
    assert!(err.contains("data.manifest"), "{err}");
}

#[test]
fn a_diverging_run_stops_with_a_clear_error() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = quick_config(dir.path(), 3);
    cfg.teacher.lr = 1e30; // guaranteed to blow up
    cfg.teacher.lr_warmup_epochs = 0;
    let data = prepare_data(&cfg).unwrap();
    let err = run_experiment(
        &cfg,
        &data,
        &Device::flex(),
        false,
        RunMode::Train,
        &mut SilentProgress,
    )
    .err()
    .expect("a non-finite loss is an error")
    .to_string();
    assert!(
        err.contains("training stopped") && err.contains("loss became"),
        "{err}"
    );
    assert!(err.contains("epoch"), "names where it happened: {err}");
}

/// `select_by = "acer"` keeps the epoch with the lowest mean validation ACER (each epoch's is
/// in the history), `accuracy` the highest mean accuracy; ACER on ten classes is refused.
#[test]
fn checkpoints_are_selected_by_validation_acer_on_two_class_data() {
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
    use mmanet_core::config::SelectBy;
    use mmanet_core::data::{InMemoryDataset, MultimodalSource};
    use mmanet_core::experiment::block_on;
    use mmanet_core::model::MultimodalNet;
    use mmanet_core::task::Classification;
    use mmanet_core::train::{StageTrainer, TrainEvent};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let mut cfg = quick_config(dir.path(), 6);
    cfg.student.lr = 0.2; // a jumpy run, so the two rules can disagree
    let data = prepare_data(&cfg).unwrap();
    // mfeat as a two-class task: digits 0–4 (bona fide, label 1) against 5–9
    let mut values = vec![Vec::new(); 3];
    let mut two = InMemoryDataset {
        name: "mfeat 0-4 vs 5-9".into(),
        modalities: data.source.modalities().to_vec(),
        classes: 2,
        class_names: None,
        features: vec![Vec::new(); 3],
        labels: Vec::new(),
    };
    for i in 0..data.source.len() {
        data.source.load_sample(i, None, &mut values).unwrap();
        for (block, v) in two.features.iter_mut().zip(&values) {
            block.extend_from_slice(v);
        }
        two.labels.push(usize::from(data.source.label(i) < 5));
    }
    let source: Arc<dyn MultimodalSource> = Arc::new(two);
    let device = Device::flex();
    let train_dev = device.clone().autodiff();
    let trained = |select_by: SelectBy,
                   classes: usize|
     -> mmanet_core::Result<(usize, Vec<mmanet_core::train::EpochSummary>)> {
        let mut stage = cfg.student.clone();
        stage.select_by = select_by;
        let net = MultimodalNet::new(source.modalities(), classes, &cfg.model, false, &train_dev)
            .unwrap();
        let mut t = StageTrainer::<Classification>::new(
            stage,
            net,
            source.clone(),
            data.split.train.clone(),
            data.split.val.clone(),
            &device,
        )?;
        t.set_bona_fide_label(1);
        loop {
            if let TrainEvent::Finished { best_epoch, .. } = block_on(t.step()).unwrap() {
                return Ok((best_epoch, t.progress().history.clone()));
            }
        }
    };
    let (best, history) = trained(SelectBy::Acer, 2).unwrap();
    let acers: Vec<f64> = history.iter().map(|e| e.val_acer.unwrap()).collect();
    let lowest = acers.iter().copied().fold(f64::INFINITY, f64::min);
    assert_eq!(
        best,
        acers.iter().position(|&a| a == lowest).unwrap(),
        "{acers:?}"
    );
    assert!(history[best].is_best);
    let (best, history) = trained(SelectBy::Accuracy, 2).unwrap();
    assert!(history.iter().all(|e| e.val_acer.is_none()));
    let scores: Vec<f64> = history.iter().map(|e| e.val_score).collect();
    let highest = scores.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(best, scores.iter().position(|&s| s == highest).unwrap());
    let e = trained(SelectBy::Acer, 10).unwrap_err().to_string();
    assert!(e.contains("select_by") && e.contains("10 classes"), "{e}");
}

/// `experiment ablation`: per-seed runs tabulated as mean ± std, and every method's paired
/// difference to SF-MD. The student methods of one seed share initialisation, batch order and
/// modality draws, so a method whose extra terms weigh nothing (+SP with α = 0, MMANet with
/// α = β = 0) trains exactly SF-MD's network: its paired differences are all zero. The paired
/// mean equals the difference of the means; its spread is the seeds' disagreement on the
/// difference, not the sum of both methods' spreads.
#[test]
fn ablation_pairs_methods_by_seed() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    use mmanet_core::config::Method;
    use mmanet_core::experiment::run_ablation;
    use mmanet_core::report::TableMetric;
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = quick_config(dir.path(), 3);
    cfg.methods = vec![Method::SfMd, Method::Sp, Method::Mmanet];
    cfg.mmanet.alpha = 0.0;
    cfg.mmanet.beta = 0.0;
    cfg.mmanet.warmup_epochs = 1;
    cfg.mmanet.mining_epochs = vec![0, 1];
    cfg.validate().unwrap();
    let data = prepare_data(&cfg).unwrap();
    let run = |cfg: &mmanet_core::config::ExperimentConfig| {
        run_ablation(cfg, &data, &Device::flex(), 2, false, &mut SilentProgress).unwrap()
    };
    let zero = run(&cfg);
    assert_eq!(zero.reports.len(), 2);
    let paired = &zero.paired[0];
    assert_eq!(paired.metric, TableMetric::Accuracy);
    assert_eq!(paired.difference_to.as_deref(), Some("SF-MD"));
    assert_eq!(paired.methods, ["+SP", "MMANet"]);
    for row in &paired.cells {
        for &(mean, std) in row {
            assert_eq!((mean, std), (0.0, 0.0), "weightless terms change nothing");
        }
    }
    let run_dir = dir.path().join(&cfg.name);
    for file in ["ablation.md", "ablation-paired.md", "ablation-paired.json"] {
        assert!(run_dir.join(file).is_file(), "{file}");
    }
    let md = std::fs::read_to_string(run_dir.join("ablation-paired.md")).unwrap();
    assert!(
        md.contains("minus SF-MD, paired") && md.contains("+0.00 ± 0.00"),
        "{md}"
    );

    // with MAD on, +SP differs; its paired mean is the difference of the means
    cfg.mmanet.alpha = 30.0;
    cfg.output_dir = dir.path().join("alpha");
    let on = run(&cfg);
    let table = &on.tables[0];
    let paired = &on.paired[0];
    let column = |name: &str| table.methods.iter().position(|m| m == name).unwrap();
    let (sf_md, sp) = (column("SF-MD"), column("+SP"));
    let mut differs = false;
    for (r, row) in paired.cells.iter().enumerate() {
        let expected = table.cells[r][sp].0 - table.cells[r][sf_md].0;
        assert!((row[0].0 - expected).abs() < 1e-9, "row {r}");
        differs |= row[0] != (0.0, 0.0);
    }
    assert!(differs, "MAD at α = 30 changes the student");
}

/// A loss term that is NaN: left out of the step (recorded as 0) when it says so — the official
/// segmentation loop's guard on its distillation loss — else the run stops with an error that
/// names the loss.
#[test]
fn a_nan_term_is_dropped_only_where_the_official_loop_drops_it() {
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
    use mmanet_core::experiment::block_on;
    use mmanet_core::model::MultimodalNet;
    use mmanet_core::task::{Classification, LossContext, LossTerm};
    use mmanet_core::train::StageTrainer;

    struct NanTerm {
        dropped: bool,
    }
    impl LossTerm<Classification> for NanTerm {
        fn name(&self) -> &str {
            "nan"
        }
        fn weight(&self) -> f64 {
            1.0
        }
        fn compute(&mut self, ctx: &LossContext<'_, Classification>) -> Option<Tensor<1>> {
            // on the graph: its gradient would make every weight NaN
            Some(ctx.output.logits.clone().sum().reshape([1]) * f32::NAN)
        }
        fn dropped_when_nan(&self) -> bool {
            self.dropped
        }
    }

    let dir = tempfile::tempdir().unwrap();
    let cfg = quick_config(dir.path(), 1);
    let data = prepare_data(&cfg).unwrap();
    let device = Device::flex();
    let train_dev = device.clone().autodiff();
    for dropped in [true, false] {
        let net = MultimodalNet::new(data.source.modalities(), 10, &cfg.model, false, &train_dev)
            .unwrap();
        let mut t = StageTrainer::<Classification>::new(
            cfg.student.clone(),
            net,
            data.source.clone(),
            data.split.train.clone(),
            data.split.val.clone(),
            &device,
        )
        .unwrap();
        t.add_loss_term(Box::new(NanTerm { dropped }));
        let step = block_on(t.train_step_at(0));
        if dropped {
            let s = step.unwrap();
            assert_eq!(s.dropped_terms, ["nan"]);
            assert_eq!(s.losses[1], ("nan".to_string(), 0.0));
            assert!(s.total.is_finite() && s.total == s.losses[0].1, "{s:?}");
            // the NaN's gradient never reached the weights: the next step's loss is finite
            let next = block_on(t.train_step_at(0)).unwrap();
            assert!(next.losses[0].1.is_finite(), "{next:?}");
        } else {
            let e = step.expect_err("stopped").to_string();
            assert!(e.contains("NaN"), "{e}");
        }
    }
}
