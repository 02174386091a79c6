//! Headless tests of the app's UI logic (egui_kittest drives real frames of [`MmanetApp`]
//! without a window) and of the pure helpers behind the panels.

use super::predictor::explorer_models;
use super::session::{RunStatus, Session, StageLog};
use super::settings::Settings;
use super::training_job::JobEvent;
use super::{MmanetApp, Tab};
use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use mmanet_core::config::{ExperimentConfig, Method};
use mmanet_core::modality::ModalitySet;
use mmanet_core::report::{CombinationResult, ComparisonTable, EvalReport, TableMetric};
use mmanet_core::train::{EpochSummary, StepReport, TrainEvent};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An app on the CPU device: the tests never load a Vulkan driver (a driver still loading in a
/// probe thread when the test process exits can abort it).
fn app(tab: Tab, settings: Settings) -> MmanetApp {
    let settings = Settings {
        device: mmanet_core::device::DeviceChoice::Cpu,
        ..settings
    };
    MmanetApp::new(settings, tab, Arc::new(|| {}))
}

fn harness(app: MmanetApp) -> Harness<'static, MmanetApp> {
    Harness::builder()
        .with_size([1280.0, 800.0])
        .build_ui_state(|ui, app: &mut MmanetApp| app.frame(ui), app)
}

fn temp_output(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mmanet-gui-test-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn the_app_opens_with_mfeat_loaded() {
    let mut h = harness(app(Tab::Data, Settings::default()));
    h.run_steps(2);
    let summary = h.state().session.data_summary.clone().expect("data loaded");
    assert_eq!(summary.name, "mfeat");
    assert_eq!(
        summary
            .counts
            .iter()
            .map(|c| c.iter().sum::<u64>())
            .sum::<u64>(),
        2000
    );
    h.get_by_label_contains("samples per split and class");
    // every tab draws without panicking
    for tab in Tab::ALL {
        h.state_mut().tab = tab;
        h.run_steps(2);
    }
}

#[test]
fn start_pause_and_stop_drive_the_training_worker() {
    let settings = Settings {
        methods: vec![Method::SfMd],
        epochs: 40,
        warmup_epochs: 2,
        device: mmanet_core::device::DeviceChoice::Cpu,
        output_dir: temp_output("start"),
        ..Settings::default()
    };
    let mut h = harness(app(Tab::Training, settings));
    h.run_steps(2);
    assert_eq!(h.state().session.status, RunStatus::Idle);
    h.get_all_by_label_contains("Start")
        .next()
        .expect("a start button")
        .click();
    h.run_steps(2);
    assert_eq!(h.state().session.status, RunStatus::Running);
    // pause and resume with the keyboard shortcut
    h.key_press_modifiers(eframe::egui::Modifiers::COMMAND, eframe::egui::Key::P);
    h.run_steps(1);
    assert_eq!(h.state().session.status, RunStatus::Paused);
    // the worker holds: no training step arrives while paused
    let steps_seen = |h: &Harness<'static, MmanetApp>| -> usize {
        h.state().session.stages.iter().map(|s| s.steps.len()).sum()
    };
    std::thread::sleep(Duration::from_millis(100));
    h.run_steps(1);
    let before = steps_seen(&h);
    std::thread::sleep(Duration::from_millis(300));
    h.run_steps(1);
    assert_eq!(steps_seen(&h), before, "steps arrived while paused");
    h.get_all_by_label_contains("Resume")
        .next()
        .unwrap()
        .click();
    h.run_steps(1);
    assert_eq!(h.state().session.status, RunStatus::Running);
    // stop: the worker ends at its next step and reports the stage it was in
    h.get_all_by_label_contains("Stop").next().unwrap().click();
    h.run_steps(1);
    assert_eq!(h.state().session.status, RunStatus::Stopping);
    let deadline = Instant::now() + Duration::from_secs(120);
    while h.state().session.status.is_active() {
        assert!(Instant::now() < deadline, "the worker did not stop");
        std::thread::sleep(Duration::from_millis(20));
        h.run_steps(1);
    }
    // the message names the stage that was training
    let last_stage = h.state().session.stages.last().unwrap().name.clone();
    match &h.state().session.status {
        RunStatus::Stopped(why) => assert!(
            why.contains(&format!("stopped by the user during `{last_stage}`")),
            "{why}"
        ),
        other => panic!("expected a stopped run, got {other:?}"),
    }
    assert!(h.state().can_resume());
    // the desktop trains on its own thread, and says so (the page: its web worker)
    let status = serde_json::to_value(h.state().status_report()).expect("a JSON status");
    assert_eq!(status["runs_on"], "thread mmanet-training");
    let phases = status["timing"]["phases"]
        .as_array()
        .expect("the run's timing");
    assert!(
        phases.iter().any(|p| p["phase"] == "device")
            && phases.iter().any(|p| p["phase"] == "run_end"),
        "the device's choice and the run's end are not timed: {phases:?}"
    );
    let _ = std::fs::remove_dir_all(temp_output("start"));
}

#[test]
fn toggling_a_modality_changes_the_prediction_request() {
    let mut h = harness(app(Tab::Explorer, Settings::default()));
    h.run_steps(2);
    let (sample, set) = h
        .state()
        .panels
        .explorer
        .requested
        .expect("a request for the sample on show");
    assert_eq!(set, ModalitySet::full(3));
    assert_eq!(
        sample,
        h.state().session.data.as_ref().unwrap().split().test[0]
    );
    h.get_by_role_and_label(eframe::egui::accesskit::Role::CheckBox, "fou")
        .click();
    h.run_steps(2);
    let (_, set) = h.state().panels.explorer.requested.unwrap();
    assert_eq!(set, ModalitySet::from_indices([0, 2]));
    // the next sample is asked for with the same switches
    h.get_all_by_label("▶").next().unwrap().click();
    h.run_steps(2);
    let (next, set) = h.state().panels.explorer.requested.unwrap();
    assert_eq!(
        next,
        h.state().session.data.as_ref().unwrap().split().test[1]
    );
    assert_eq!(set, ModalitySet::from_indices([0, 2]));
}

#[test]
fn a_bad_setting_is_reported_not_started() {
    let settings = Settings {
        epochs: 3,
        warmup_epochs: 5,
        ..Settings::default()
    };
    let mut h = harness(app(Tab::Training, settings));
    h.run_steps(1);
    // the device is named before training starts
    let deadline = Instant::now() + Duration::from_secs(10);
    while h.query_by_label_contains("device: cpu").is_none() {
        assert!(Instant::now() < deadline, "no device line");
        std::thread::sleep(Duration::from_millis(10));
        h.run_steps(1);
    }
    h.state_mut().start_training(false);
    h.run_steps(1);
    assert_eq!(h.state().session.status, RunStatus::Idle);
    let notice = h.state().notice.clone().expect("a notice");
    assert!(notice.contains("warmup"), "{notice}");
}

fn step(epoch: usize, batch: usize, ce: f32, mad: f32) -> StepReport {
    StepReport {
        epoch,
        batch,
        batches: 2,
        lr: 0.1,
        momentum: None,
        losses: vec![("ce".into(), ce), ("mad".into(), mad)],
        total: ce + mad,
        accuracy: 0.5,
        dropped_terms: Vec::new(),
    }
}

#[test]
fn session_follows_the_worker_events() {
    let mut s = Session::default();
    s.begin_run();
    s.apply(JobEvent::StageStarted {
        stage: "teacher".into(),
        epochs: 2,
        batches: 2,
        resumed: 0,
    });
    for (e, b) in [(0, 0), (0, 1), (1, 0)] {
        s.apply(JobEvent::Train {
            stage: "teacher".into(),
            event: TrainEvent::Step(step(e, b, 1.0, f32::NAN)),
        });
    }
    let stage = s.current_stage().unwrap();
    assert_eq!(stage.fraction(), 0.75);
    let loss = super::training_panel::loss_series(stage);
    assert_eq!(loss[0].0, "ce");
    assert_eq!(loss[0].1, vec![[0.5, 1.0], [1.0, 1.0], [1.5, 1.0]]);
    // a non-finite value is left out of the plot, not drawn
    assert_eq!(loss.len(), 1);
    s.apply(JobEvent::Train {
        stage: "teacher".into(),
        event: TrainEvent::Finished {
            best_epoch: 1,
            best_score: 0.9,
        },
    });
    assert!(s.current_stage().is_none());
    assert_eq!(
        s.apply(JobEvent::Finished(Err(
            "stopped by the user during `sf-md` (resume …)".into()
        ))),
        None
    );
    assert!(matches!(s.status, RunStatus::Stopped(_)));
    let dir = std::path::PathBuf::from("runs/x");
    assert_eq!(s.apply(JobEvent::Finished(Ok(dir.clone()))), Some(dir));
}

#[test]
fn validation_series_are_per_combination() {
    let names: Vec<String> = ["pix", "fou"].map(String::from).to_vec();
    let summary = |epoch, a: f64, b: f64| EpochSummary {
        epoch,
        lr: Some(0.1),
        momentum: None,
        losses: vec![("ce".into(), 1.0)],
        train_accuracy: 0.5,
        val_accuracy: vec![
            (ModalitySet::from_indices([0]), a),
            (ModalitySet::from_indices([0, 1]), b),
        ],
        val_score: (a + b) / 2.0,
        val_metric: mmanet_core::report::TableMetric::Accuracy,
        val_acer: None,
        is_best: false,
        reports: vec![],
        regularized_samples: vec![],
        diagnostics: None,
    };
    let log = StageLog {
        name: "sf-md".into(),
        epochs: 2,
        summaries: vec![summary(0, 0.5, 0.75), summary(1, 0.625, 0.875)],
        ..StageLog::default()
    };
    let series = super::training_panel::val_series(&log, &names);
    assert_eq!(series.len(), 2);
    assert_eq!(series[0].1, vec![[1.0, 50.0], [2.0, 62.5]]);
    assert_eq!(series[1].1, vec![[1.0, 75.0], [2.0, 87.5]]);
    // no steps: the loss and lr curves fall back to epoch means
    assert_eq!(
        super::training_panel::lr_series(&log),
        vec![[1.0, 0.1], [2.0, 0.1]]
    );
}

fn report(method: &str, acc: &[f64]) -> EvalReport {
    let names: Vec<String> = ["a", "b"].map(String::from).to_vec();
    EvalReport {
        method: method.into(),
        modalities: names.clone(),
        rows: mmanet_core::modality::all_combinations(2)
            .into_iter()
            .zip(acc)
            .map(|(c, &a)| CombinationResult {
                combination: c,
                label: c.long_label(&names),
                samples: 10,
                accuracy: a,
                pad: None,
                seg: None,
            })
            .collect(),
    }
}

#[test]
fn tables_mark_each_methods_best_and_worst_combination() {
    let t = ComparisonTable::build(
        TableMetric::Accuracy,
        &[
            ("SF-MD".into(), vec![report("SF-MD", &[0.5, 0.9, 0.8])]),
            ("MMANet".into(), vec![report("MMANet", &[0.7, 0.6, 0.95])]),
        ],
    )
    .unwrap();
    assert_eq!(super::draw::column_extremes(&t), vec![(1, 0), (2, 1)]);
    let rows = super::runs_panel::compare_rows(&t, &t, "MMANet");
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0].1, Some(70.0));
    assert_eq!(rows[0].1, rows[0].2);
    assert_eq!(
        super::runs_panel::compare_rows(&t, &t, "SF")[0],
        (t.rows[0].clone(), None, None)
    );
}

#[test]
fn the_explorer_shows_the_deployment_network_sf_md_and_the_teacher() {
    let mut cfg =
        ExperimentConfig::from_toml(mmanet_core::configs::MFEAT_DEMO, "mfeat-demo.toml").unwrap();
    cfg.methods = vec![Method::Sf, Method::SfMd, Method::Mad, Method::Mmanet];
    let labels: Vec<String> = explorer_models(&cfg).into_iter().map(|m| m.label).collect();
    assert_eq!(labels, ["MMANet", "SF-MD", "Teacher (all modalities)"]);
    cfg.methods = vec![Method::SfMd];
    let models = explorer_models(&cfg);
    assert_eq!(models.len(), 2);
    assert!(models[1].full_only && !models[0].full_only);
}

/// A CASIA-SURF-style image-list dataset in `dir`: 2 samples per split, 3 PNGs each.
fn write_image_list_dataset(dir: &std::path::Path) -> std::path::PathBuf {
    let png = |path: &std::path::Path, value: u8| {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_fn(20, 20, |x, y| {
            image::Rgb([value, (x * 9 % 256) as u8, (y * 11 % 256) as u8])
        })
        .save(path)
        .unwrap();
    };
    for split in ["train", "val", "test"] {
        let mut list = String::new();
        for i in 0..2 {
            let paths: Vec<String> = ["color", "depth", "ir"]
                .iter()
                .map(|m| format!("{split}/s{i}/{m}.png"))
                .collect();
            for p in &paths {
                png(&dir.join(p), 100 * i as u8);
            }
            list += &format!("{} {i}\n", paths.join(" "));
        }
        std::fs::write(dir.join(format!("{split}.txt")), list).unwrap();
    }
    let manifest = dir.join("manifest.toml");
    std::fs::write(
        &manifest,
        r#"name = "surf-fixture"
format = "casia-surf"
class_names = ["attack", "real"]

[images]
root = "."
train_list = "train.txt"
val_list = "val.txt"
test_list = "test.txt"
size = 16
train_resize = 20
channels = 3
max_rotation_deg = 30
"#,
    )
    .unwrap();
    manifest
}

#[test]
fn a_sample_read_from_files_takes_the_test_samples_place() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_image_list_dataset(dir.path());
    let settings = Settings {
        data: super::settings::DataChoice::Manifest,
        manifest: Some(manifest),
        ..Settings::default()
    };
    let mut h = harness(app(Tab::Explorer, settings));
    h.run_steps(2);
    assert_eq!(
        h.state()
            .session
            .data_summary
            .as_ref()
            .map(|s| s.name.as_str()),
        Some("surf-fixture"),
        "{:?}",
        h.state().session.data_error
    );
    h.get_by_label_contains("Load sample from files");
    let paths: Vec<_> = ["color", "depth", "ir"]
        .iter()
        .map(|m| dir.path().join(format!("val/s1/{m}.png")))
        .collect();
    h.state_mut().load_explorer_sample(&paths);
    h.run_steps(2);
    let loaded = super::predictor::LOADED_SAMPLE;
    assert_eq!(
        h.state().panels.explorer.requested,
        Some((loaded, ModalitySet::full(3)))
    );
    h.get_by_label_contains("sample read from color.png, depth.png, ir.png");
    // its values are the dataset's own preprocessing of those files
    let Some((_, super::LoadedSample::Vectors(values))) = h.state().panels.explorer.loaded.clone()
    else {
        panic!("no sample loaded")
    };
    let data = h.state().session.data.clone().unwrap();
    let data = data.classification().unwrap();
    assert_eq!(
        values.features,
        data.source.sample_from_files(&paths).unwrap()
    );
    // switching a modality off asks again for the loaded sample
    h.get_by_role_and_label(eframe::egui::accesskit::Role::CheckBox, "depth")
        .click();
    h.run_steps(2);
    assert_eq!(
        h.state().panels.explorer.requested,
        Some((loaded, ModalitySet::from_indices([0, 2])))
    );
    // a wrong number of files is reported, and the loaded sample stays
    h.state_mut().load_explorer_sample(&paths[..1]);
    let notice = h.state().notice.clone().unwrap_or_default();
    assert!(notice.contains("3 images"), "{notice}");
    assert!(h.state().panels.explorer.loaded.is_some());
    h.run_steps(2);
    // back to the test samples
    h.get_by_label("back to test samples").click();
    h.run_steps(2);
    let first_test = data.split.test[0];
    assert_eq!(
        h.state().panels.explorer.requested.map(|r| r.0),
        Some(first_test)
    );
}

#[test]
fn mfeat_samples_cannot_be_read_from_files() {
    let mut h = harness(app(Tab::Explorer, Settings::default()));
    h.run_steps(2);
    h.state_mut()
        .load_explorer_sample(&[std::path::PathBuf::from("x.png")]);
    let notice = h.state().notice.clone().unwrap_or_default();
    assert!(notice.contains("pick one of its test samples"), "{notice}");
    assert!(h.state().panels.explorer.loaded.is_none());
}

#[test]
fn the_predictor_answers_for_test_samples_and_loaded_samples_alike() {
    use super::predictor::{LOADED_SAMPLE, Predictor, PredictorReply, PredictorRequest};
    use mmanet_core::experiment::{RunMode, SilentProgress, prepare_data, run_experiment};
    let dir = tempfile::tempdir().unwrap();
    let mut cfg =
        ExperimentConfig::from_toml(mmanet_core::configs::MFEAT_DEMO, "mfeat-demo.toml").unwrap();
    cfg.output_dir = dir.path().to_path_buf();
    cfg.methods = vec![Method::SfMd];
    cfg.set_epochs(1).unwrap();
    let data = prepare_data(&cfg).unwrap();
    let out = run_experiment(
        &cfg,
        &data,
        &burn::prelude::Device::flex(),
        false,
        RunMode::Train,
        &mut SilentProgress,
    )
    .unwrap();
    let predictor = Predictor::start(|| {}).unwrap();
    let wait = |predictor: &Predictor| -> PredictorReply {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(r) = predictor.poll().into_iter().last() {
                return r;
            }
            assert!(Instant::now() < deadline, "no reply");
            std::thread::sleep(Duration::from_millis(5));
        }
    };
    // before any model is loaded, a prediction says so
    predictor.send(PredictorRequest::Predict {
        sample: 0,
        set: ModalitySet::full(3),
    });
    match wait(&predictor) {
        PredictorReply::Prediction { result: Err(e), .. } => {
            assert!(e.contains("no trained models"))
        }
        other => panic!("{other:?}"),
    }
    predictor.send(PredictorRequest::Load {
        store: super::platform::open_run_store(&out.run_dir).unwrap(),
        cfg: Box::new(cfg.clone()),
        data: mmanet_core::experiment::LoadedData::Classification(data.clone()),
        models: explorer_models(&cfg),
    });
    assert_eq!(
        wait(&predictor),
        PredictorReply::Loaded(Ok(vec![
            "SF-MD".to_string(),
            "Teacher (all modalities)".to_string()
        ]))
    );
    let k = data.split.test[5];
    let set = ModalitySet::from_indices([1, 2]);
    predictor.send(PredictorRequest::Predict { sample: k, set });
    let PredictorReply::Prediction {
        sample,
        result: Ok(from_index),
        ..
    } = wait(&predictor)
    else {
        panic!("no prediction")
    };
    assert_eq!(sample, k);
    assert_eq!(from_index[0].set, set);
    assert_eq!(
        from_index[1].set,
        ModalitySet::full(3),
        "the teacher sees everything"
    );
    let sum: f32 = from_index[0].probs().unwrap().iter().sum();
    assert!((sum - 1.0).abs() < 1e-4, "{sum}");
    // the same sample handed over as values gives the same probabilities
    let mut values: Vec<Vec<f32>> = data
        .source
        .modalities()
        .iter()
        .map(|m| vec![0.0; m.kind.numel()])
        .collect();
    data.source.load_sample(k, None, &mut values).unwrap();
    let single = mmanet_core::data::InMemoryDataset {
        name: "one".into(),
        modalities: data.source.modalities().to_vec(),
        classes: data.source.num_classes(),
        class_names: None,
        features: values,
        labels: vec![0],
    };
    predictor.send(PredictorRequest::PredictLoaded {
        sample: Arc::new(single),
        set,
    });
    let PredictorReply::Prediction {
        sample,
        result: Ok(from_values),
        ..
    } = wait(&predictor)
    else {
        panic!("no prediction")
    };
    assert_eq!(sample, LOADED_SAMPLE);
    assert_eq!(from_values, from_index);
}

#[test]
fn new_settings_never_train_on_the_previous_data() {
    let mut h = harness(app(Tab::Training, Settings::default()));
    h.run_steps(1);
    assert!(h.state().session.data.is_some(), "mfeat loaded");
    // the user points the data at a manifest that is not there, and presses Start
    h.state_mut().settings.data = super::settings::DataChoice::Manifest;
    h.state_mut().settings.manifest = Some("/no/such/manifest.toml".into());
    h.state_mut().start_training(false);
    h.run_steps(1);
    assert_eq!(h.state().session.status, RunStatus::Idle);
    let notice = h.state().notice.clone().unwrap_or_default();
    assert!(
        notice.contains("did not load") && notice.contains("/no/such/manifest.toml"),
        "{notice}"
    );
}

#[test]
fn a_browser_run_beyond_webgpu_limits_is_refused_with_the_setting_to_change() {
    use super::settings::{DataChoice, Preset};
    use mmanet_core::experiment::LoadedData;
    use mmanet_core::model::ImagePreset;
    let mut s = Settings::default();
    let cfg = s.experiment_config("fits").unwrap();
    let data = LoadedData::load(&cfg).unwrap();
    mmanet_core::limits::check_experiment_fits(&cfg, &data).unwrap();
    // the anti-spoofing benchmark as the app and the page offer it (1,200 samples of 32×32,
    // the full ladder of its config), and as the browser test trains it
    s.data = DataChoice::Synthetic;
    s.use_preset(Preset::SyntheticAntispoof);
    let mut cfg = s.experiment_config("antispoof").unwrap();
    assert_eq!(cfg.data.synthetic.as_ref().map(|d| d.samples), Some(1200));
    cfg.methods = Preset::SyntheticAntispoof.config().unwrap().methods;
    let data = LoadedData::load(&cfg).unwrap();
    mmanet_core::limits::check_experiment_fits(&cfg, &data).unwrap();

    s.synthetic.samples = 40;
    s.synthetic.size = 112;
    let mut cfg = s.experiment_config("too-wide").unwrap();
    cfg.model.image_preset = ImagePreset::Paper;
    cfg.teacher.batch_size = 256;
    cfg.student.batch_size = 256;
    let data = LoadedData::load(&cfg).unwrap();
    let err = mmanet_core::limits::check_experiment_fits(&cfg, &data)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("batch_size") && err.contains("WebGPU buffer binding"),
        "{err}"
    );
}

/// A tiny segmentation run (teacher, SF-MD, MMANet; 4 epochs, mining after epochs 0 and 1) in
/// `dir`, trained as the app would on 30 synthetic scenes of 32×64 pixels.
fn tiny_seg_run(dir: &std::path::Path) -> std::path::PathBuf {
    use super::settings::{DataChoice, Preset};
    use mmanet_core::data::scenes::ScenesConfig;
    use mmanet_core::experiment::{LoadedData, RunMode, SilentProgress, run_experiment};
    let mut settings = Settings {
        data: DataChoice::Scenes,
        ..Settings::default()
    };
    settings.use_preset(Preset::ScenesDemo);
    settings.scenes = ScenesConfig {
        scenes: 30,
        height: 32,
        width: 64,
        ..ScenesConfig::default()
    };
    settings.epochs = 4;
    settings.warmup_epochs = 2;
    settings.output_dir = dir.to_path_buf();
    let mut cfg = settings.experiment_config("seg").unwrap();
    cfg.seg_model.preset = mmanet_core::model::esanet::SegPreset::Tiny;
    cfg.teacher.select_after_epoch = 0;
    cfg.student.select_after_epoch = 0;
    let data = LoadedData::load(&cfg).unwrap();
    run_experiment(
        &cfg,
        &data,
        &burn::prelude::Device::flex(),
        false,
        RunMode::Train,
        &mut SilentProgress,
    )
    .unwrap()
    .run_dir
}

/// Runs frames until `done` holds (the workers answer on their own threads).
fn run_until(h: &mut Harness<'static, MmanetApp>, what: &str, done: impl Fn(&MmanetApp) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done(h.state()) {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
        h.run_steps(1);
    }
}

/// The segmentation answer on show, if any.
fn seg_answer(app: &MmanetApp) -> Option<(ModalitySet, Vec<super::predictor::ModelPrediction>)> {
    match &app.panels.explorer.prediction {
        Some(super::predictor::PredictorReply::Prediction {
            set,
            sample,
            result: Ok(models),
        }) if app.panels.explorer.requested == Some((*sample, *set)) => {
            Some((*set, models.clone()))
        }
        _ => None,
    }
}

/// Settings on `scenes` synthetic RGB-D scenes with the segmentation preset's recipe, as
/// choosing the scenes in the Data panel gives them.
fn scenes_settings(scenes: usize) -> Settings {
    use super::settings::{DataChoice, Preset};
    let mut settings = Settings {
        data: DataChoice::Scenes,
        ..Settings::default()
    };
    settings.use_preset(Preset::ScenesDemo);
    settings.scenes.scenes = scenes;
    settings
}

#[test]
fn segmentation_data_shows_pixel_counts_and_the_palette_legend() {
    use super::settings::{DataChoice, Preset};
    let settings = scenes_settings(30);
    // choosing the scenes brought the segmentation preset's recipe
    assert_eq!(settings.alpha, 4.0);
    assert_eq!(settings.epochs, 16);
    let mut h = harness(app(Tab::Data, settings));
    h.run_steps(3);
    let summary = h
        .state()
        .session
        .data_summary
        .clone()
        .expect("scenes loaded");
    assert_eq!(summary.task, mmanet_core::config::TaskKind::Segmentation);
    assert_eq!(summary.unit, "pixels");
    assert_eq!(summary.modalities, ["rgb [3, 64, 96]", "depth [1, 64, 96]"]);
    // every labelled pixel of the 30 scenes counted once (the one-pixel border is void)
    let total: u64 = summary.counts.iter().flatten().sum();
    assert_eq!(total, 30 * 62 * 94);
    h.get_by_label_contains("pixels per split and class");
    // the legend names every class beside its palette swatch (the counts' header names them too)
    for name in mmanet_core::data::scenes::SCENE_CLASSES {
        assert!(
            h.get_all_by_label(name).count() >= 2,
            "{name} is not in the legend"
        );
    }
    h.get_by_label("void");
    let first = h.state().session.data.as_ref().unwrap().split().train[0];
    h.get_by_label(&format!("scene {first}"));
    // a slider of the generator reloads the data: the depth cue at 0 keeps the counts
    h.state_mut().settings.scenes.depth_cue_percent = 0;
    h.state_mut().load_data();
    h.run_steps(2);
    assert!(h.state().session.data_error.is_none());
    // back to classification: the app's classification defaults return
    h.state_mut().settings.data = DataChoice::Mfeat;
    h.state_mut().settings.use_preset(Preset::MfeatDemo);
    assert_eq!(h.state().settings.alpha, Settings::default().alpha);
}

#[test]
fn ticking_depth_off_changes_the_prediction_request_and_the_drawn_map() {
    let dir = temp_output("seg-explorer");
    let run = tiny_seg_run(&dir);
    let mut h = harness(app(Tab::Explorer, Settings::default()));
    h.state_mut().open_run(&run);
    run_until(&mut h, "the RGB-D label maps", |a| seg_answer(a).is_some());
    let (set, models) = seg_answer(h.state()).unwrap();
    assert_eq!(set, ModalitySet::full(2));
    let labels: Vec<&str> = models.iter().map(|m| m.label.as_str()).collect();
    assert_eq!(labels, ["MMANet", "SF-MD", "Teacher (all modalities)"]);
    let rgbd_map = models[0].segmentation().unwrap().map.clone();
    assert!(models[0].segmentation().unwrap().full.is_none());
    assert!(models[0].segmentation().unwrap().scores.is_some());
    h.run_steps(2);
    h.get_by_label("Ground truth");
    h.get_all_by_label_contains("scene mIoU")
        .next()
        .expect("scores");
    // depth off: the request changes, the deployment networks see RGB only, the teacher both
    h.get_by_role_and_label(eframe::egui::accesskit::Role::CheckBox, "depth")
        .click();
    h.run_steps(1);
    let only_rgb = ModalitySet::single(0);
    assert_eq!(
        h.state().panels.explorer.requested.map(|r| r.1),
        Some(only_rgb)
    );
    run_until(&mut h, "the RGB label maps", |a| {
        seg_answer(a).is_some_and(|(s, _)| s == only_rgb)
    });
    let (_, models) = seg_answer(h.state()).unwrap();
    assert_eq!(models[0].set, only_rgb);
    assert_eq!(models[2].set, ModalitySet::full(2), "the teacher sees both");
    let seg = models[0].segmentation().unwrap();
    assert_eq!(
        seg.full.as_ref(),
        Some(&rgbd_map),
        "the full-modality map for the error map"
    );
    assert_ne!(seg.map, rgbd_map, "the map did not change without depth");
    // the drawn maps are the new answer's
    h.run_steps(2);
    let key = format!(
        "pred-{}-R-map-0",
        h.state().panels.explorer.requested.unwrap().0
    );
    assert!(h.state().textures.has_named(&key), "{key} not drawn");
    assert!(
        !h.state().textures.has_named(&key.replace("-R-", "-RD-")),
        "the RGB-D maps were not dropped"
    );
    // the page's status hook reports per-model scene scores
    let status = serde_json::to_value(h.state().status_report()).expect("a JSON status");
    assert_eq!(status["task"], "segmentation");
    let first = &status["explorer"]["prediction"]["models"][0];
    assert!(first["miou"].as_f64().is_some(), "{status}");

    // a scene of one's own: an RGB PNG and a 16-bit depth PNG in mm, segmented without labels
    let sample = h.state().panels.explorer.requested.unwrap().0;
    let scene = match h.state().session.data.as_ref().unwrap() {
        mmanet_core::experiment::LoadedData::Segmentation(d) => {
            d.source.source.scene(sample).unwrap()
        }
        _ => panic!("segmentation data"),
    };
    let (w, hgt) = (scene.width as u32, scene.height as u32);
    let rgb_path = dir.join("own-rgb.png");
    let depth_path = dir.join("own-depth.png");
    image::RgbImage::from_raw(w, hgt, scene.rgb.clone())
        .unwrap()
        .save(&rgb_path)
        .unwrap();
    let depth: Vec<u16> = scene.depth.iter().map(|d| d.round() as u16).collect();
    image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_raw(w, hgt, depth)
        .unwrap()
        .save(&depth_path)
        .unwrap();
    h.state_mut()
        .load_explorer_sample(std::slice::from_ref(&rgb_path));
    let notice = h.state().notice.clone().unwrap_or_default();
    assert!(notice.contains("an RGB image and its depth"), "{notice}");
    h.state_mut().load_explorer_sample(&[rgb_path, depth_path]);
    assert!(h.state().panels.explorer.loaded.is_some());
    h.run_steps(1);
    let loaded = super::predictor::LOADED_SAMPLE;
    run_until(&mut h, "the maps of the loaded scene", |a| {
        matches!(a.panels.explorer.requested, Some((s, _)) if s == loaded)
            && seg_answer(a).is_some()
    });
    let (_, models) = seg_answer(h.state()).unwrap();
    let seg = models[0].segmentation().unwrap();
    assert_eq!((seg.map.height, seg.map.width), (scene.height, scene.width));
    assert!(seg.scores.is_none(), "no ground truth to score against");
    h.run_steps(2);
    h.get_by_label_contains("sample read from own-rgb.png, own-depth.png");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn an_nyuv2_manifest_opens_as_segmentation_data() {
    use super::settings::{DataChoice, Preset};
    // a two-scene-per-split NYUv2 tree in ESANet's layout
    let dir = temp_output("nyuv2");
    let (w, h) = (64u32, 32u32);
    for (split, names) in [("train", ["a", "b"]), ("test", ["c", "d"])] {
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{split}.txt")), names.join("\n")).unwrap();
        for (k, name) in names.iter().enumerate() {
            for sub in ["rgb", "depth", "labels_40"] {
                std::fs::create_dir_all(dir.join(split).join(sub)).unwrap();
            }
            image::RgbImage::from_pixel(w, h, image::Rgb([k as u8 * 40, 90, 30]))
                .save(dir.join(split).join("rgb").join(format!("{name}.png")))
                .unwrap();
            image::ImageBuffer::<image::Luma<u16>, Vec<u16>>::from_pixel(w, h, image::Luma([2000]))
                .save(dir.join(split).join("depth").join(format!("{name}.png")))
                .unwrap();
            image::GrayImage::from_fn(w, h, |x, _| image::Luma([1 + (x % 40) as u8]))
                .save(
                    dir.join(split)
                        .join("labels_40")
                        .join(format!("{name}.png")),
                )
                .unwrap();
        }
    }
    let manifest = dir.join("nyuv2-manifest.toml");
    std::fs::write(
        &manifest,
        "name = \"tiny-nyuv2\"\nformat = \"nyuv2\"\n\n[rgbd]\nroot = \".\"\ntrain_size = [32, 64]\neval_size = [32, 64]\n",
    )
    .unwrap();
    // as a drop on the window: the manifest is the data, and a segmentation preset comes with it
    let mut h = harness(app(Tab::Data, Settings::default()));
    h.run_steps(1);
    h.state_mut().settings.data = DataChoice::Manifest;
    h.state_mut().settings.manifest = Some(manifest);
    h.state_mut().load_data();
    h.run_steps(2);
    assert_eq!(h.state().session.data_error, None);
    let summary = h.state().session.data_summary.clone().unwrap();
    assert_eq!(summary.name, "tiny-nyuv2");
    assert_eq!(summary.task, mmanet_core::config::TaskKind::Segmentation);
    assert_eq!(summary.classes.len(), 40);
    assert_eq!(h.state().settings.preset, Preset::ScenesDemo);
    assert_eq!(h.state().settings.effective_preset().task(), summary.task);
    h.get_by_label_contains("pixels per split and class");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn the_mining_panel_shows_the_segmentation_rounds() {
    let dir = temp_output("seg-mining");
    let run = tiny_seg_run(&dir);
    let mut h = harness(app(Tab::Mining, Settings::default()));
    h.state_mut().open_run(&run);
    h.run_steps(3);
    let trace = h
        .state()
        .session
        .stages
        .iter()
        .find_map(|s| s.mining())
        .expect("MMANet mined");
    assert_eq!(trace.rounds.len(), 2);
    assert!(
        trace
            .rounds
            .iter()
            .all(|r| matches!(r.measure, mmanet_core::mining::RoundMeasure::Miou(_)))
    );
    h.get_by_label_contains("validation mIoU per combination");
    h.get_by_label_contains("Weak set chosen after epoch");
    // the training panel names the metric and plots the cycled momentum
    h.state_mut().tab = Tab::Training;
    h.state_mut().panels.training.plot_stage = Some("mmanet".into());
    h.run_steps(2);
    h.get_by_label_contains("validation mIoU per combination");
    h.get_by_label_contains("momentum");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn log_scale_ticks_read_as_the_values() {
    use super::training_panel::{format_log_tick, to_log10};
    assert_eq!(format_log_tick(0.0), "1");
    assert_eq!(format_log_tick(-1.0), "0.1");
    assert_eq!(format_log_tick(-5.0), "1e-5");
    assert_eq!(
        to_log10(vec![[1.0, 100.0], [2.0, 0.0], [3.0, 0.01]]),
        vec![[1.0, 2.0], [3.0, -2.0]]
    );
}

#[test]
fn the_pretrained_model_answers_in_the_explorer_before_any_training() {
    use mmanet_core::bundle::Bundle;
    use mmanet_core::experiment::block_on;
    use mmanet_core::predict::inputs::DatasetSamples;
    use mmanet_core::predict::{Classifier, load_data_for};
    let mut h = harness(app(Tab::Data, Settings::default()));
    h.run_steps(1);
    h.state_mut().tab = Tab::Explorer;
    h.run_steps(1);
    h.get_by_label("✨ Pretrained mfeat model").click();
    h.run_steps(1);
    assert_eq!(h.state().tab, Tab::Explorer);
    run_until(&mut h, "the bundle's first prediction", |app| {
        matches!(
            &app.panels.explorer.prediction,
            Some(super::predictor::PredictorReply::Prediction { result: Ok(_), sample, set })
                if app.panels.explorer.requested == Some((*sample, *set))
        )
    });
    assert_eq!(
        h.state().panels.explorer.models,
        Some(Ok(vec!["MMANet (bundle)".to_string()]))
    );
    let status = serde_json::to_value(h.state().status_report()).expect("a JSON status");
    assert_eq!(status["explorer"]["bundle"], "mfeat-mmanet.mmanet");
    assert_eq!(status["tab"], "Explorer");
    h.get_by_label_contains("as mfeat-mmanet.mmanet scored in its run");

    // pix off: the request and the answer follow, and the answer is `mmanet predict`'s
    h.get_by_role_and_label(eframe::egui::accesskit::Role::CheckBox, "pix")
        .click();
    let fou_mor = ModalitySet::from_indices([1, 2]);
    run_until(&mut h, "the answer without pix", |app| {
        matches!(
            &app.panels.explorer.prediction,
            Some(super::predictor::PredictorReply::Prediction { result: Ok(_), set, .. })
                if *set == fou_mor
        )
    });
    let Some(super::predictor::PredictorReply::Prediction {
        sample,
        result: Ok(models),
        ..
    }) = h.state().panels.explorer.prediction.clone()
    else {
        unreachable!()
    };
    let bundle = Bundle::from_bytes(super::PRETRAINED_MFEAT, "pretrained").unwrap();
    let device = mmanet_core::device::cpu_device().device;
    let classifier = Classifier::new(&bundle, &device).unwrap();
    let raw = load_data_for(&bundle.header, &bundle.header.config).unwrap();
    let mmanet_core::experiment::LoadedData::Classification(raw) = raw else {
        unreachable!()
    };
    let reader = DatasetSamples {
        source: raw.source.clone(),
        indices: vec![sample],
    };
    let cli = block_on(classifier.predict(&reader, Some(fou_mor), 1, &mut |_, _| {})).unwrap();
    assert_eq!(models[0].probs(), Some(cli[0].probabilities.as_slice()));
}

/// A file dropped on the window, read from disk.
#[derive(Debug)]
struct DroppedFromDisk(std::path::PathBuf);

impl eframe::egui::DroppedFile for DroppedFromDisk {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

#[test]
fn a_bundle_dropped_on_the_window_opens_in_the_explorer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("digits.mmanet");
    std::fs::write(&path, super::PRETRAINED_MFEAT).unwrap();
    let mut h = harness(app(Tab::Data, Settings::default()));
    h.run_steps(1);
    h.input_mut()
        .dropped_files
        .push(Arc::new(DroppedFromDisk(path)));
    h.run_steps(1);
    run_until(&mut h, "the dropped bundle's models", |app| {
        matches!(app.panels.explorer.models, Some(Ok(_)))
    });
    assert_eq!(h.state().tab, Tab::Explorer);
    assert_eq!(
        h.state()
            .panels
            .explorer
            .bundle
            .as_ref()
            .map(|(n, _)| n.as_str()),
        Some("digits.mmanet")
    );
    // a file that is not a bundle is a notice, not a crash
    let bad = dir.path().join("notes.mmanet");
    std::fs::write(&bad, "hello").unwrap();
    h.input_mut()
        .dropped_files
        .push(Arc::new(DroppedFromDisk(bad)));
    h.run_steps(2);
    let notice = h.state().notice.clone().unwrap_or_default();
    assert!(
        notice.contains("notes.mmanet") && notice.contains("not an mmanet bundle"),
        "{notice}"
    );
}

#[test]
fn the_scenes_preset_says_what_was_measured_and_leads_to_the_anti_spoofing_one() {
    use super::settings::{DataChoice, Preset};
    let settings = scenes_settings(30);
    let mut h = harness(app(Tab::Training, settings));
    h.run_steps(2);
    // the measured verdict is beside the preset, before anyone trains
    h.get_by_label_contains("within noise of SF-MD");
    h.get_by_label("Switch to configs/synthetic-antispoof.toml")
        .click();
    h.run_steps(3);
    let s = &h.state().settings;
    assert_eq!(s.preset, Preset::SyntheticAntispoof);
    // the other task's preset brought its data and the app's classification recipe
    assert_eq!(s.data, DataChoice::Synthetic);
    assert_eq!(s.alpha, Settings::default().alpha);
    assert_eq!(s.beta, Settings::default().beta);
    h.get_by_label_contains("lowers the average ACER");
    assert!(h.query_by_label_contains("Switch to").is_none());
}
