//! The whole experiment, for either task: train (or reuse) the teacher, train each student
//! method, evaluate every combination on the test split, and write the results; and the
//! ablation, the same experiment over several seeds.
//!
//! [`run_task_experiment_in`] is the one implementation: generic over the [`Task`],
//! asynchronous, writing into any [`RunStore`] (the browser keeps runs in memory and awaits it
//! between frames). [`run_experiment_in`] / [`run_experiment`] are it for classification data,
//! [`run_task_experiment`] runs it to completion on a run folder (native targets).
//!
//! Outputs go to `<output_dir>/<name>/` (or the same relative paths in a
//! [`crate::store::MemoryStore`]):
//! * `<stage>/checkpoint.bin` — progress + model + optimiser + best model, rewritten atomically
//!   after every epoch (`--resume` continues from it);
//! * `<stage>/model.bpk` + `<stage>/meta.json` — the selected model of a finished stage and what it
//!   was trained from (a finished teacher whose settings match is reused, not retrained);
//! * `results.md`, `results.csv`, `results.json` — the per-combination comparison table
//!   (`results-miou.*` for segmentation; `results-acer.*`, `results-apcer.*` and
//!   `results-bpcer.*` for two-class data);
//!   `reports.json` — every method's full per-combination metrics;
//!   `<method>/mining.json` — MAR's mining rounds and weak set.

pub use crate::prepare::{
    LoadedData, PreparedData, TaskData, prepare_data, prepare_manifest, prepare_seg_data,
};
pub use crate::stage::{
    ProgressSink, RunContext, RunMode, SilentProgress, StageMeta, StageSpec, StepYield, block_on,
    run_stage,
};

use crate::config::{ExperimentConfig, Method, StageConfig, TaskKind};
use crate::dropout::DropoutMode;
use crate::error::{CoreError, Result};
use crate::fsutil::write_atomic;
use crate::losses::mad::MadReduction;
use crate::mining::{MiningRecord, MiningTrace};
use crate::mmanet::{MadTerm, MarTerm};
use crate::mmanet_settings::MiningSplit;
use crate::modality::{ModalitySet, all_combinations};
use crate::report::{ComparisonTable, EvalReport, comparison_tables, paired_tables};
use crate::store::{FolderStore, RunStore};
use crate::task::Task;
use crate::train::EpochSummary;
use burn::prelude::*;
use std::path::PathBuf;

/// The copy of the experiment config every trained run folder holds.
pub const RUN_CONFIG_FILE: &str = "config.toml";

/// Results of a whole experiment.
pub struct ExperimentOutcome {
    /// The comparison tables (mIoU for segmentation; accuracy; ACER for two-class data).
    pub tables: Vec<ComparisonTable>,
    /// Every method's per-combination report, teacher first.
    pub reports: Vec<EvalReport>,
    /// Per MAR method, its mining rounds and weak set.
    pub mining: Vec<MiningRecord>,
    /// Where the files went.
    pub run_dir: PathBuf,
}

/// Everything that determines a stage's model: the data, the network, the stage settings, and
/// `extra` (the method, and for distilled students the teacher's identity).
fn fingerprint(cfg: &ExperimentConfig, stage: &StageConfig, extra: &str) -> String {
    let model = match cfg.task {
        TaskKind::Classification => serde_json::json!(cfg.model),
        TaskKind::Segmentation => serde_json::json!({ "seg_model": cfg.seg_model }),
    };
    serde_json::json!({
        "data": cfg.data,
        "model": model,
        "stage": stage,
        "extra": extra,
    })
    .to_string()
}

/// The stage of a unified student method: SF-MD, or SF-MD plus MMANet's terms.
fn method_stage<'a, T: Task>(
    cfg: &'a ExperimentConfig,
    method: Method,
    teacher: &T::Net,
    n: usize,
    device: &Device,
) -> StageSpec<'a, T> {
    let m = &cfg.mmanet;
    let extra = if method.uses_teacher() {
        // the teacher's settings are part of a distilled student's identity
        format!(
            "{}|{}|{}",
            method.slug(),
            serde_json::to_string(m).unwrap_or_default(),
            fingerprint(cfg, &cfg.teacher, "teacher")
        )
    } else {
        method.slug().to_string()
    };
    let mut spec = StageSpec::plain(
        method.slug(),
        &cfg.student,
        fingerprint(cfg, &cfg.student, &extra),
    );
    spec.with_reg_head = method.uses_reg_head();
    spec.mine_on_training_split = m.mining_split == MiningSplit::Training;
    match method {
        Method::Sp => spec.terms.push(Box::new(MadTerm::<T>::new(
            teacher,
            m,
            MadReduction::Sp,
            device,
        ))),
        Method::Mad | Method::Sr | Method::Mmanet => spec
            .terms
            .push(Box::new(MadTerm::<T>::new(teacher, m, m.mad, device))),
        Method::Sf | Method::SfMd => {}
    }
    match method {
        Method::Sr => spec.terms.push(Box::new(MarTerm::<T>::singles(m, n))),
        Method::Mmanet => spec.terms.push(Box::new(MarTerm::<T>::mined(m, n))),
        _ => {}
    }
    spec
}

/// Runs the experiment a config describes on classification data in its run folder
/// `<output_dir>/<name>` (native targets; blocks until done): see [`run_task_experiment_in`].
pub fn run_experiment(
    cfg: &ExperimentConfig,
    data: &PreparedData,
    device: &Device,
    resume: bool,
    mode: RunMode,
    sink: &mut dyn ProgressSink,
) -> Result<ExperimentOutcome> {
    run_task_experiment(cfg, &data.task_data(), device, resume, mode, sink)
}

/// [`run_task_experiment_in`] on the run folder `<output_dir>/<name>` (native targets; blocks
/// until done).
pub fn run_task_experiment<T: Task>(
    cfg: &ExperimentConfig,
    data: &TaskData<T>,
    device: &Device,
    resume: bool,
    mode: RunMode,
    sink: &mut dyn ProgressSink,
) -> Result<ExperimentOutcome> {
    let run_dir = cfg.output_dir.join(&cfg.name);
    let _lock = crate::fsutil::RunLock::acquire(&run_dir)?;
    let mut store = FolderStore::new(&run_dir);
    let mut outcome = block_on(run_task_experiment_in(
        cfg, data, device, &mut store, resume, mode, sink,
    ))?;
    outcome.run_dir = run_dir;
    Ok(outcome)
}

/// [`run_task_experiment_in`] for classification data.
pub async fn run_experiment_in(
    cfg: &ExperimentConfig,
    data: &PreparedData,
    device: &Device,
    store: &mut dyn RunStore,
    resume: bool,
    mode: RunMode,
    sink: &mut dyn ProgressSink,
) -> Result<ExperimentOutcome> {
    run_task_experiment_in(cfg, &data.task_data(), device, store, resume, mode, sink).await
}

/// [`run_task_experiment_in`] for the task `data` is loaded for.
pub async fn run_loaded_experiment_in(
    cfg: &ExperimentConfig,
    data: &LoadedData,
    device: &Device,
    store: &mut dyn RunStore,
    resume: bool,
    mode: RunMode,
    sink: &mut dyn ProgressSink,
) -> Result<ExperimentOutcome> {
    match data {
        LoadedData::Classification(d) => {
            run_experiment_in(cfg, d, device, store, resume, mode, sink).await
        }
        LoadedData::Segmentation(d) => {
            run_task_experiment_in(cfg, d, device, store, resume, mode, sink).await
        }
    }
}

/// [`run_loaded_experiment_in`] on the run folder `<output_dir>/<name>` (native targets; blocks
/// until done).
pub fn run_loaded_experiment(
    cfg: &ExperimentConfig,
    data: &LoadedData,
    device: &Device,
    resume: bool,
    mode: RunMode,
    sink: &mut dyn ProgressSink,
) -> Result<ExperimentOutcome> {
    match data {
        LoadedData::Classification(d) => run_experiment(cfg, d, device, resume, mode, sink),
        LoadedData::Segmentation(d) => run_task_experiment(cfg, d, device, resume, mode, sink),
    }
}

/// Runs the experiment a config describes: teacher, then each method; evaluates all on the test
/// split; writes every file into `store`. `device` should be a plain (non-autodiff) device.
/// Awaits [`ProgressSink::between_steps`] before every training step.
pub async fn run_task_experiment_in<T: Task>(
    cfg: &ExperimentConfig,
    data: &TaskData<T>,
    device: &Device,
    store: &mut dyn RunStore,
    resume: bool,
    mode: RunMode,
    sink: &mut dyn ProgressSink,
) -> Result<ExperimentOutcome> {
    cfg.mmanet.mad_impl.use_kernels(device)?;
    T::check_settings(cfg, &data.source)?;
    let run_dir = store.location("");
    let test = &data.split.test;
    let eval_on = async |model: &T::Net, combos: &[ModalitySet], name: &str| {
        T::evaluate(
            &model.valid(),
            &data.source,
            test,
            combos,
            cfg.eval.batch_size,
            device,
            Some(cfg.eval.bona_fide_label),
            name,
        )
        .await
    };
    if mode == RunMode::Train {
        // The run folder describes itself: `mmanet gui` and the runs loader read this back.
        let text = toml::to_string(cfg)
            .map_err(|e| CoreError::config("config", format!("cannot encode: {e}")))?;
        store.write(RUN_CONFIG_FILE, text.as_bytes())?;
    }
    let mut reports = Vec::new();
    let ctx = RunContext {
        cfg,
        data,
        device,
        resume,
        mode,
    };

    let teacher_spec = StageSpec::plain(
        "teacher",
        &cfg.teacher,
        fingerprint(cfg, &cfg.teacher, "teacher"),
    );
    let (teacher, _) = run_stage(teacher_spec, &ctx, store, sink).await?;
    let n = T::num_modalities(&teacher);
    let combos = all_combinations(n);
    reports.push(eval_on(&teacher, &combos, TEACHER).await?);
    let mut mining = Vec::new();

    for &method in &cfg.methods {
        if method == Method::Sf {
            // one separately trained model per fixed combination
            let mut rows = Vec::with_capacity(combos.len());
            let mut modalities = Vec::new();
            for &c in &combos {
                let mut stage = cfg.student.clone();
                stage.dropout = DropoutMode::Fixed {
                    combination: c.mask(n).iter().map(|&b| u8::from(b)).collect(),
                };
                let bits = c.bit_string(n);
                let fp = fingerprint(cfg, &stage, &format!("sf/{bits}"));
                let spec = StageSpec::plain(format!("sf/{bits}"), &stage, fp);
                let (model, _) = run_stage(spec, &ctx, store, sink).await?;
                let report = eval_on(&model, &[c], method.label()).await?;
                modalities = report.modalities;
                rows.extend(report.rows);
            }
            reports.push(EvalReport {
                method: method.label().into(),
                modalities,
                rows,
            });
            continue;
        }
        let spec = method_stage::<T>(cfg, method, &teacher, n, device);
        let (model, meta) = run_stage(spec, &ctx, store, sink).await?;
        reports.push(eval_on(&model, &combos, method.label()).await?);
        if let Some(trace) = MiningTrace::from_events(EpochSummary::mining_events(&meta.history)) {
            let record = MiningRecord {
                method: method.label().to_string(),
                trace,
            };
            let bytes = serde_json::to_vec_pretty(&record)
                .map_err(|e| CoreError::Training(format!("cannot encode mining: {e}")))?;
            store.write(&format!("{}/mining.json", method.slug()), &bytes)?;
            mining.push(record);
        }
    }

    let per_method: Vec<(String, Vec<EvalReport>)> = reports
        .iter()
        .map(|r| (r.method.clone(), vec![r.clone()]))
        .collect();
    let tables = comparison_tables(&per_method)?;
    for t in &tables {
        t.write_all(store, &t.metric.file_stem("results"))?;
    }
    let json = serde_json::to_vec_pretty(&reports)
        .map_err(|e| CoreError::Training(format!("cannot encode reports: {e}")))?;
    store.write("reports.json", &json)?;
    Ok(ExperimentOutcome {
        tables,
        reports,
        mining,
        run_dir,
    })
}

/// The teacher's name in reports and tables.
pub const TEACHER: &str = "Teacher";

/// Results of an ablation over several seeds.
pub struct AblationOutcome {
    /// Per metric, rows = combinations + average, columns = methods, mean ± std over seeds.
    pub tables: Vec<ComparisonTable>,
    /// Per metric, every other method's paired difference to SF-MD (same seed, same
    /// initialisation, batch order and modality draws), mean ± std over seeds; empty without
    /// SF-MD.
    pub paired: Vec<ComparisonTable>,
    /// Per seed, every method's report.
    pub reports: Vec<Vec<EvalReport>>,
    /// Per seed, the weak set each MAR method mined (as modality-name labels).
    pub weak_sets: Vec<Vec<(String, Vec<String>)>>,
    /// Where the files went.
    pub run_dir: PathBuf,
}

/// [`run_task_ablation`] on classification data.
pub fn run_ablation(
    cfg: &ExperimentConfig,
    data: &PreparedData,
    device: &Device,
    seeds: usize,
    resume: bool,
    sink: &mut dyn ProgressSink,
) -> Result<AblationOutcome> {
    run_task_ablation(cfg, &data.task_data(), device, seeds, resume, sink)
}

/// Runs the experiment once per seed (`seeds` runs; seed k adds k to the teacher's and the
/// student's seeds, the data split stays the same) and tabulates mean ± std per method.
/// Writes `ablation.{md,csv,json}` (plus `ablation-miou.*` for segmentation, `ablation-acer.*`,
/// `-apcer.*`, `-bpcer.*` for two-class data), the paired differences to SF-MD as
/// `ablation-paired*.{md,csv,json}`, and `ablation-mining.json` into `<output_dir>/<name>/`.
pub fn run_task_ablation<T: Task>(
    cfg: &ExperimentConfig,
    data: &TaskData<T>,
    device: &Device,
    seeds: usize,
    resume: bool,
    sink: &mut dyn ProgressSink,
) -> Result<AblationOutcome> {
    if seeds == 0 {
        return Err(CoreError::config("seeds", "run at least one seed"));
    }
    cfg.mmanet.mad_impl.use_kernels(device)?;
    let run_dir = cfg.output_dir.join(&cfg.name);
    let mut all_reports = Vec::with_capacity(seeds);
    let mut weak_sets = Vec::with_capacity(seeds);
    for k in 0..seeds {
        let mut c = cfg.clone();
        c.output_dir = run_dir.clone();
        c.name = format!("seed-{k}");
        c.teacher.seed = cfg.teacher.seed.wrapping_add(k as u64);
        c.student.seed = cfg.student.seed.wrapping_add(k as u64);
        sink.message(&format!("seed {} of {seeds}", k + 1));
        let out = run_task_experiment(&c, data, device, resume, RunMode::Train, sink)?;
        let names = out
            .reports
            .first()
            .map(|r| r.modalities.clone())
            .unwrap_or_default();
        weak_sets.push(
            out.mining
                .iter()
                .filter_map(|m| Some((m.method.clone(), m.trace.weak_set_labels(&names)?)))
                .collect(),
        );
        all_reports.push(out.reports);
    }
    let methods: Vec<String> = all_reports[0].iter().map(|r| r.method.clone()).collect();
    let per_method: Vec<(String, Vec<EvalReport>)> = methods
        .iter()
        .enumerate()
        .map(|(i, m)| {
            (
                m.clone(),
                all_reports.iter().map(|seed| seed[i].clone()).collect(),
            )
        })
        .collect();
    let tables = comparison_tables(&per_method)?;
    for t in &tables {
        t.write_all(
            &mut FolderStore::new(&run_dir),
            &t.metric.file_stem("ablation"),
        )?;
    }
    // the teacher sees every modality in training and has a seed of its own: not paired
    let students: Vec<(String, Vec<EvalReport>)> = per_method
        .iter()
        .filter(|(name, _)| name != TEACHER)
        .cloned()
        .collect();
    let paired = paired_tables(&students, crate::config::Method::SfMd.label())?;
    for t in &paired {
        t.write_all(
            &mut FolderStore::new(&run_dir),
            &t.metric.file_stem("ablation-paired"),
        )?;
    }
    let json = serde_json::to_vec_pretty(&serde_json::json!({ "weak_sets_per_seed": weak_sets }))
        .map_err(|e| CoreError::Training(format!("cannot encode mining: {e}")))?;
    write_atomic(&run_dir.join("ablation-mining.json"), &json)?;
    Ok(AblationOutcome {
        tables,
        paired,
        reports: all_reports,
        weak_sets,
        run_dir,
    })
}
