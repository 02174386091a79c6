//! A trained run folder reads back whole (config, reports, stage histories, mining, models), and
//! a run stopped through its progress sink ends with `Cancelled` and resumes.

use burn::prelude::*;
use mmanet_core::config::{ExperimentConfig, Method};
use mmanet_core::error::CoreError;
use mmanet_core::eval::evaluate;
use mmanet_core::experiment::{
    ProgressSink, RUN_CONFIG_FILE, RunMode, block_on, prepare_data, run_experiment,
};
use mmanet_core::modality::all_combinations;
use mmanet_core::runs::{RunRecord, list_runs, load_stage_model};
use mmanet_core::train::TrainEvent;
use mmanet_tests::{quick_demo_config, train_on_cpu};

fn mmanet_config(out: &std::path::Path) -> ExperimentConfig {
    let mut cfg = quick_demo_config(out, 3);
    cfg.methods = vec![Method::SfMd, Method::Mmanet];
    cfg.mmanet.warmup_epochs = 1;
    cfg.mmanet.mining_epochs = vec![0, 1];
    cfg.validate().unwrap();
    cfg
}

#[test]
fn a_run_folder_reads_back_whole() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    let dir = tempfile::tempdir().unwrap();
    let cfg = mmanet_config(dir.path());
    let (data, out) = train_on_cpu(&cfg);
    assert_eq!(list_runs(dir.path()), vec![out.run_dir.clone()]);

    let record = RunRecord::load(&out.run_dir).unwrap();
    // the config round-trips through the run folder's config.toml
    let mut expected = cfg.clone();
    expected.mmanet.mad_impl = Default::default();
    assert_eq!(record.config, expected);
    assert_eq!(record.reports, out.reports);
    let stages: Vec<&str> = record.stages.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(stages, ["teacher", "sf-md", "mmanet"]);
    assert_eq!(record.tables().unwrap(), out.tables);

    // MMANet's mining: one round per mining epoch, then the weak set after the warm-up
    let (_, meta) = &record.stages[2];
    let trace = mmanet_core::mining::MiningTrace::from_events(
        mmanet_core::train::EpochSummary::mining_events(&meta.history),
    )
    .expect("mined");
    assert_eq!(
        trace.rounds.iter().map(|r| r.epoch).collect::<Vec<_>>(),
        [0, 1]
    );
    assert_eq!(trace.candidates.len(), 3);
    assert_eq!(trace.chosen_after_epoch, Some(1));
    let weak = trace.weak_set.clone().expect("a weak set");
    let top = trace.final_bank.iter().cloned().fold(f64::MIN, f64::max);
    let k = trace.final_bank.iter().position(|v| *v == top).unwrap();
    assert_eq!(weak[0], trace.candidates[k]);
    assert_eq!(trace.rounds[1].bank, trace.final_bank);
    // the same trace as the CLI's mining record names
    let names = data.source.modality_names();
    // the CLI's record is the same trace (up to JSON's last-digit rounding of the values)
    let live = &out.mining[0].trace;
    assert_eq!(
        (&live.weak_set, &live.candidates, live.chosen_after_epoch),
        (&trace.weak_set, &trace.candidates, trace.chosen_after_epoch)
    );
    assert_eq!(live.rounds.len(), trace.rounds.len());
    let labels = out.mining[0].trace.weak_set_labels(&names).unwrap();
    assert_eq!(
        labels,
        weak.iter()
            .map(|s| s.long_label(&names))
            .collect::<Vec<_>>()
    );
    assert!(
        mmanet_core::mining::MiningTrace::from_events(
            mmanet_core::train::EpochSummary::mining_events(&record.stages[1].1.history)
        )
        .is_none()
    );

    // a loaded model scores exactly what the run reported
    let device = Device::flex();
    let model = load_stage_model(&cfg, &data, &device, &out.run_dir, "mmanet").unwrap();
    let report = block_on(evaluate(
        &model,
        data.source.as_ref(),
        &data.split.test,
        &all_combinations(3),
        cfg.eval.batch_size,
        &device,
        None,
        "MMANet",
    ))
    .unwrap();
    assert_eq!(report.rows, out.reports[2].rows);

    // a missing model names the file
    let err = load_stage_model(&cfg, &data, &device, &out.run_dir, "sr")
        .unwrap_err()
        .to_string();
    assert!(err.contains("sr/model.bpk"), "{err}");
    // a broken config names the file and line
    std::fs::write(out.run_dir.join(RUN_CONFIG_FILE), "name = \n").unwrap();
    let err = RunRecord::load(&out.run_dir).unwrap_err().to_string();
    assert!(err.contains("config.toml:1, column"), "{err}");
}

/// Stops after `steps` training steps.
struct StopAfter {
    steps: usize,
    seen: usize,
}

impl ProgressSink for StopAfter {
    fn stage_started(&mut self, _: &str, _: usize, _: usize, _: usize) {}
    fn event(&mut self, _: &str, event: &TrainEvent) {
        if matches!(event, TrainEvent::Step(_)) {
            self.seen += 1;
        }
    }
    fn message(&mut self, _: &str) {}
    fn cancelled(&mut self) -> bool {
        self.seen >= self.steps
    }
}

#[test]
fn a_cancelled_run_stops_and_resumes() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = quick_demo_config(dir.path(), 2);
    cfg.methods = vec![Method::SfMd];
    let data = prepare_data(&cfg).unwrap();
    let device = Device::flex();
    // mfeat: 1200 training samples, batch 64, drop_last → 18 steps per epoch; stop in epoch 2
    let mut sink = StopAfter { steps: 25, seen: 0 };
    let err = run_experiment(&cfg, &data, &device, false, RunMode::Train, &mut sink)
        .err()
        .expect("stopped");
    match &err {
        CoreError::Cancelled { stage } => assert_eq!(stage, "teacher"),
        other => panic!("expected Cancelled, got {other}"),
    }
    assert_eq!(sink.seen, 25);
    assert!(err.to_string().contains("resume"), "{err}");
    let run_dir = dir.path().join(&cfg.name);
    assert!(run_dir.join("teacher/checkpoint.bin").exists());
    assert!(run_dir.join(RUN_CONFIG_FILE).exists());
    // resuming finishes the run
    let out = run_experiment(
        &cfg,
        &data,
        &device,
        true,
        RunMode::Train,
        &mut StopAfter {
            steps: usize::MAX,
            seen: 0,
        },
    )
    .unwrap();
    assert_eq!(out.reports.len(), 1 + cfg.methods.len());
}

/// Counts the awaits of `between_steps` and the training steps that follow them.
#[derive(Default)]
struct CountingSink {
    yields: usize,
    steps: usize,
}

impl ProgressSink for CountingSink {
    fn stage_started(&mut self, _: &str, _: usize, _: usize, _: usize) {}
    fn event(&mut self, _: &str, _: &TrainEvent) {
        self.steps += 1;
    }
    fn message(&mut self, _: &str) {}
    fn between_steps(&mut self) -> mmanet_core::experiment::StepYield<'_> {
        self.yields += 1;
        Box::pin(std::future::ready(()))
    }
}

#[test]
fn a_run_kept_in_memory_matches_the_run_folder_and_yields_before_every_step() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    use mmanet_core::experiment::run_experiment_in;
    use mmanet_core::runs::load_stage_model_from;
    use mmanet_core::store::{MemoryStore, RunStore};
    let dir = tempfile::tempdir().unwrap();
    let cfg = mmanet_config(dir.path());
    let (data, on_disk) = train_on_cpu(&cfg);

    let device = Device::flex();
    let mut store = MemoryStore::new("in-memory");
    let mut sink = CountingSink::default();
    let in_memory = block_on(run_experiment_in(
        &cfg,
        &data,
        &device,
        &mut store,
        false,
        RunMode::Train,
        &mut sink,
    ))
    .unwrap();
    // same seeds, same backend: the same results, and no file written outside the store
    assert_eq!(in_memory.reports, on_disk.reports);
    assert_eq!(in_memory.tables, on_disk.tables);
    assert_eq!(list_runs(dir.path()), vec![on_disk.run_dir.clone()]);
    assert!(sink.steps > 0);
    assert_eq!(sink.yields, sink.steps, "one yield before every step");
    // the store holds the same files as the folder
    let mut files: Vec<&str> = store.files().collect();
    files.sort_unstable();
    for f in &files {
        assert!(on_disk.run_dir.join(f).is_file(), "{f} only in memory");
    }
    assert!(files.contains(&"mmanet/model.bpk") && files.contains(&"reports.json"));
    // and reads back the same way
    let record = RunRecord::from_store(&store).unwrap();
    assert_eq!(record.reports, on_disk.reports);
    assert_eq!(record.dir, store.location(""));
    let model = load_stage_model_from(&cfg, &data, &device, &store, "mmanet").unwrap();
    let combos = all_combinations(data.source.modalities().len());
    let report = block_on(evaluate(
        &model,
        data.source.as_ref(),
        &data.split.test,
        &combos,
        cfg.eval.batch_size,
        &device,
        None,
        "MMANet",
    ))
    .unwrap();
    assert_eq!(report.rows, on_disk.reports[2].rows);
    let err = load_stage_model_from(&cfg, &data, &device, &store, "sr")
        .unwrap_err()
        .to_string();
    assert!(err.contains("memory:in-memory/sr/model.bpk"), "{err}");
}
