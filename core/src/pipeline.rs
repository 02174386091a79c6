//! The whole experiment: prepare the data, train (or reuse) the teacher, train each student
//! method, evaluate every combination on the test split, and write the results.
//!
//! [`run_experiment_in`] is the one implementation: asynchronous, writing into any
//! [`RunStore`] (the browser keeps runs in memory and awaits it between frames);
//! [`run_experiment`] runs it to completion on a run folder (native targets).
//!
//! Outputs go to `<output_dir>/<name>/` (or the same relative paths in a
//! [`crate::store::MemoryStore`]):
//! * `<stage>/checkpoint.bin` — progress + model + optimiser + best model, rewritten atomically
//!   after every epoch (`--resume` continues from it);
//! * `<stage>/model.bpk` + `<stage>/meta.json` — the selected model of a finished stage and what it
//!   was trained from (a finished teacher whose settings match is reused, not retrained);
//! * `results.md`, `results.csv`, `results.json` — the per-combination comparison table;
//!   `reports.json` — every method's full per-combination metrics.

use crate::checkpoint::StageCheckpoint;
use crate::config::{DataSource, ExperimentConfig, Method, StageConfig};
use crate::data::imagelist::{
    CefaProtocol, ImageListDataset, ImageSample, cefa_samples, parse_surf_list,
};
use crate::data::manifest::{ManifestFormat, load_csv_manifest, read_manifest};
use crate::data::split::Split;
use crate::data::{FeatureScaler, MultimodalSource, mfeat, synthetic};
use crate::dropout::DropoutMode;
use crate::error::{CoreError, Result};
use crate::eval::evaluate;
use crate::fsutil::write_atomic;
use crate::losses::mad::MadReduction;
use crate::mmanet::{MadTerm, MarTerm, MiningSplit};
use crate::modality::{ModalitySet, all_combinations};
use crate::model::MultimodalNet;
use crate::report::{ComparisonTable, EvalReport, TableMetric};
use crate::store::{FolderStore, RunStore};
use crate::train::{LossTerm, StageTrainer, TrainEvent, module_from_bytes, module_to_bytes_async};
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The copy of the experiment config every trained run folder holds.
pub const RUN_CONFIG_FILE: &str = "config.toml";

/// A dataset with its split, ready for training.
#[derive(Clone)]
pub struct PreparedData {
    /// The samples.
    pub source: Arc<dyn MultimodalSource>,
    /// Train / val / test indices.
    pub split: Split,
    /// Standardisation applied to each vector modality (fitted on the training split).
    pub scalers: Vec<Option<FeatureScaler>>,
}

/// Loads the data a config names and splits it.
pub fn prepare_data(cfg: &ExperimentConfig) -> Result<PreparedData> {
    let (mut ds, split) = match cfg.data.source {
        DataSource::Mfeat => {
            let ds = mfeat::load(cfg.data.pix_as_image)?;
            let split = cfg.data.split.apply(&ds.labels, "mfeat")?;
            (ds, split)
        }
        DataSource::Synthetic => {
            let scfg = cfg.data.synthetic.clone().unwrap_or_default();
            let ds = synthetic::generate(&scfg)?;
            let split = cfg.data.split.apply(&ds.labels, &ds.name)?;
            (ds, split)
        }
        DataSource::Manifest => {
            let path = cfg
                .data
                .manifest
                .as_ref()
                .ok_or_else(|| CoreError::config("data.manifest", "missing"))?;
            return prepare_manifest(path, cfg.data.standardize);
        }
    };
    let scalers = if cfg.data.standardize {
        ds.standardize_vectors(&split.train)
    } else {
        vec![None; ds.modalities.len()]
    };
    Ok(PreparedData {
        source: Arc::new(ds),
        split,
        scalers,
    })
}

/// Loads a dataset manifest (CSV views or CASIA-SURF lists) and splits it.
pub fn prepare_manifest(path: &Path, standardize: bool) -> Result<PreparedData> {
    let manifest = read_manifest(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    match manifest.format {
        ManifestFormat::Csv => {
            let mut ds = load_csv_manifest(&manifest, base)?;
            let split = manifest
                .split
                .apply(&ds.labels, &path.display().to_string())?;
            let scalers = if standardize {
                ds.standardize_vectors(&split.train)
            } else {
                vec![None; ds.modalities.len()]
            };
            Ok(PreparedData {
                source: Arc::new(ds),
                split,
                scalers,
            })
        }
        ManifestFormat::CasiaSurf | ManifestFormat::Cefa => {
            let images = manifest
                .images
                .as_ref()
                .ok_or_else(|| CoreError::config("images", "missing [images] table"))?;
            let root = base.join(&images.root);
            let parts: Vec<Vec<ImageSample>> = if manifest.format == ManifestFormat::Cefa {
                let protocol = images
                    .cefa_protocol
                    .clone()
                    .unwrap_or_else(CefaProtocol::race_prot_rdi_4_5);
                [&protocol.train, &protocol.dev, &protocol.test]
                    .into_iter()
                    .map(|rule| cefa_samples(&root, rule))
                    .collect::<Result<_>>()?
            } else {
                [&images.train_list, &images.val_list, &images.test_list]
                    .into_iter()
                    .map(|list| {
                        let list = list.as_ref().ok_or_else(|| {
                            CoreError::config("images", "a casia-surf manifest names three lists")
                        })?;
                        let list_path = root.join(list);
                        let text = std::fs::read_to_string(&list_path)
                            .map_err(|e| CoreError::io(&list_path, e))?;
                        parse_surf_list(&text, &list_path.display().to_string(), &root)
                    })
                    .collect::<Result<_>>()?
            };
            let mut samples = Vec::new();
            let mut ranges = Vec::new();
            for part in parts {
                let start = samples.len();
                samples.extend(part);
                ranges.push((start..samples.len()).collect::<Vec<_>>());
            }
            // CASIA-SURF: label 1 = real; CeFA: label 0 = real (PAI 1), 1 = attack.
            let class_names = manifest.class_names.clone().unwrap_or_else(|| {
                if manifest.format == ManifestFormat::Cefa {
                    vec!["real".into(), "attack".into()]
                } else {
                    vec!["attack".into(), "real".into()]
                }
            });
            let ds = ImageListDataset::new(&manifest.name, samples, images, class_names)?;
            let mut ranges = ranges.into_iter();
            let split = Split {
                train: ranges.next().unwrap_or_default(),
                val: ranges.next().unwrap_or_default(),
                test: ranges.next().unwrap_or_default(),
            };
            Ok(PreparedData {
                source: Arc::new(ds),
                split,
                scalers: vec![None; 3],
            })
        }
    }
}

/// Receives progress from a running experiment (the CLI draws progress bars from it).
pub trait ProgressSink {
    /// A stage starts (`teacher`, `sf-md`, `sf/101`, …).
    fn stage_started(
        &mut self,
        stage: &str,
        epochs: usize,
        batches_per_epoch: usize,
        resumed_epochs: usize,
    );
    /// A training event of the current stage.
    fn event(&mut self, stage: &str, event: &TrainEvent);
    /// A line of information.
    fn message(&mut self, text: &str);
    /// Asked before every training step: `true` stops the run with [`CoreError::Cancelled`]
    /// (the stage's last epoch checkpoint stays on disk, so `--resume` continues from it).
    fn cancelled(&mut self) -> bool {
        false
    }
    /// Awaited before every training step, before [`ProgressSink::cancelled`]: the browser's
    /// sink hands control back to the page here (and waits while paused). The default returns
    /// at once.
    fn between_steps(&mut self) -> StepYield<'_> {
        Box::pin(std::future::ready(()))
    }
}

/// What [`ProgressSink::between_steps`] returns.
pub type StepYield<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

/// A sink that ignores everything.
pub struct SilentProgress;

impl ProgressSink for SilentProgress {
    fn stage_started(&mut self, _: &str, _: usize, _: usize, _: usize) {}
    fn event(&mut self, _: &str, _: &TrainEvent) {}
    fn message(&mut self, _: &str) {}
}

/// What a finished stage was trained from; a stage whose fingerprint matches is reused.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StageMeta {
    /// JSON of everything that determines the model (data, model, stage settings).
    pub fingerprint: String,
    /// Selected epoch.
    pub best_epoch: usize,
    /// Its validation score.
    pub best_score: f64,
    /// Per-epoch history.
    pub history: Vec<crate::train::EpochSummary>,
}

/// One stage to train: its folder, settings, fingerprint and extra loss terms.
pub struct StageSpec<'a> {
    /// Display name and folder name relative to the run folder (`teacher`, `sf-md`, `sf/110`).
    pub name: String,
    /// Settings.
    pub stage: &'a StageConfig,
    /// Identity of the stage's inputs.
    pub fingerprint: String,
    /// Train a regularization head next to the deployment trunk (SR, MMANet).
    pub with_reg_head: bool,
    /// Extra loss terms (MAD, MAR, …).
    pub terms: Vec<Box<dyn LossTerm>>,
    /// Mine on the training split instead of the validation split.
    pub mine_on_training_split: bool,
}

impl<'a> StageSpec<'a> {
    /// A plain stage (cross-entropy only).
    pub fn plain(name: impl Into<String>, stage: &'a StageConfig, fingerprint: String) -> Self {
        StageSpec {
            name: name.into(),
            stage,
            fingerprint,
            with_reg_head: false,
            terms: Vec::new(),
            mine_on_training_split: false,
        }
    }
}

/// Whether stages may be trained or must already be finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RunMode {
    /// Train what is missing (reuse what is finished and matches).
    Train,
    /// Only load finished stages; a missing one is an error.
    EvalOnly,
}

/// Runs a future to completion on this thread (native only: in a browser it would block the page).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    burn::tensor::read_sync(f)
}

/// What every stage of one experiment run shares.
pub struct RunContext<'a> {
    /// The experiment.
    pub cfg: &'a ExperimentConfig,
    /// The data.
    pub data: &'a PreparedData,
    /// The (plain) compute device.
    pub device: &'a Device,
    /// Continue interrupted stages from their checkpoints.
    pub resume: bool,
    /// Train, or only load finished stages.
    pub mode: RunMode,
}

/// Trains one stage (or reuses/resumes it) into `store` under `<stage name>/` and returns its
/// selected model and record.
pub async fn run_stage(
    spec: StageSpec<'_>,
    ctx: &RunContext<'_>,
    store: &mut dyn RunStore,
    sink: &mut dyn ProgressSink,
) -> Result<(MultimodalNet, StageMeta)> {
    let RunContext {
        cfg,
        data,
        device,
        resume,
        mode,
    } = *ctx;
    let model_file = format!("{}/model.bpk", spec.name);
    let meta_file = format!("{}/meta.json", spec.name);
    let ckpt_file = format!("{}/checkpoint.bin", spec.name);
    let fingerprint_file = format!("{}/fingerprint.json", spec.name);
    let dir = store.location(&spec.name);
    let model_path = store.location(&model_file);
    device.seed(spec.stage.seed);
    // Built on the autodiff device: parameters must be tracked from the start.
    let build = |reg_head: bool| {
        MultimodalNet::new(
            data.source.modalities(),
            data.source.num_classes(),
            &cfg.model,
            reg_head,
            &device.clone().autodiff(),
        )
    };
    let fresh = build(spec.with_reg_head)?;
    // Reuse a finished stage with the same fingerprint.
    if let (Ok(meta_text), Ok(bytes)) = (store.read_text(&meta_file), store.read(&model_file))
        && let Ok(meta) = serde_json::from_str::<StageMeta>(&meta_text)
    {
        if meta.fingerprint == spec.fingerprint {
            sink.message(&format!(
                "{}: reusing the finished model in {} (best epoch {}, val {:.2}%)",
                spec.name,
                dir.display(),
                meta.best_epoch,
                meta.best_score * 100.0
            ));
            return Ok((module_from_bytes(build(false)?, bytes)?, meta));
        }
        sink.message(&format!(
            "{}: the settings changed since {} was trained; training again",
            spec.name,
            model_path.display()
        ));
    }
    if mode == RunMode::EvalOnly {
        return Err(CoreError::Checkpoint {
            path: model_path,
            message: format!(
                "no finished `{}` model trained with these settings; run `mmanet train` with this config first",
                spec.name
            ),
        });
    }
    let mut trainer = StageTrainer::new(
        spec.stage.clone(),
        fresh,
        data.source.clone(),
        data.split.train.clone(),
        data.split.val.clone(),
        device,
    )?;
    trainer.set_eval_batch(cfg.eval.batch_size);
    if spec.mine_on_training_split {
        trainer.mine_on_training_split();
    }
    for term in spec.terms {
        trainer.add_loss_term(term);
    }
    if store.exists(&ckpt_file) {
        let same =
            store.read_text(&fingerprint_file).ok().as_deref() == Some(spec.fingerprint.as_str());
        let ckpt_path = store.location(&ckpt_file);
        if resume && same {
            let ck = StageCheckpoint::from_bytes(&store.read(&ckpt_file)?, &ckpt_path)?;
            sink.message(&format!(
                "{}: resuming after epoch {} from {}",
                spec.name,
                ck.progress.epochs_done,
                ckpt_path.display()
            ));
            trainer.restore(ck.model, ck.optimizer, ck.progress, ck.best_model)?;
        } else if resume {
            return Err(CoreError::Checkpoint {
                path: ckpt_path,
                message: "was written with different settings; delete the folder or rerun with the original config".into(),
            });
        } else {
            sink.message(&format!(
                "{}: an interrupted run is in {}; starting over (pass --resume to continue it)",
                spec.name,
                dir.display()
            ));
        }
    }
    store.write(&fingerprint_file, spec.fingerprint.as_bytes())?;
    sink.stage_started(
        &spec.name,
        spec.stage.epochs,
        trainer.batches_per_epoch(),
        trainer.progress().epochs_done,
    );
    loop {
        sink.between_steps().await;
        if sink.cancelled() {
            return Err(CoreError::Cancelled {
                stage: spec.name.clone(),
            });
        }
        let event = trainer.step().await?;
        sink.event(&spec.name, &event);
        match event {
            // In a browser, optimiser state can only be read synchronously, which WebGPU
            // forbids: a page's run keeps no epoch checkpoints (a stopped stage starts over).
            TrainEvent::Epoch(_) if cfg!(target_family = "wasm") => {}
            TrainEvent::Epoch(_) => {
                let (model, optimizer, progress) = trainer.checkpoint()?;
                let checkpoint = StageCheckpoint {
                    progress,
                    model,
                    optimizer,
                    best_model: trainer.best_model_bytes().map(<[u8]>::to_vec),
                };
                store.write(&ckpt_file, &checkpoint.to_bytes()?)?;
            }
            TrainEvent::Finished { .. } => break,
            TrainEvent::Step(_) => {}
        }
    }
    // The deployment network: the regularization head is for training only.
    let best = trainer.best_model()?.without_reg_head();
    store.write(&model_file, &module_to_bytes_async(&best).await?)?;
    let progress = trainer.progress();
    let meta = StageMeta {
        fingerprint: spec.fingerprint.clone(),
        best_epoch: progress.best_epoch.unwrap_or(0),
        best_score: progress.best_score,
        history: progress.history.clone(),
    };
    let meta_json = serde_json::to_vec_pretty(&meta)
        .map_err(|e| CoreError::Training(format!("cannot encode stage meta: {e}")))?;
    store.write(&meta_file, &meta_json)?;
    Ok((best, meta))
}

/// Results of a whole experiment.
pub struct ExperimentOutcome {
    /// The comparison table (accuracy; plus ACER for two-class data).
    pub tables: Vec<ComparisonTable>,
    /// Every method's per-combination report, teacher first.
    pub reports: Vec<EvalReport>,
    /// Per MAR/SR method, the loss terms' per-epoch reports (mining rounds, the weak set).
    pub mining: Vec<serde_json::Value>,
    /// Where the files went.
    pub run_dir: PathBuf,
}

fn fingerprint(cfg: &ExperimentConfig, stage: &StageConfig, extra: &str) -> String {
    serde_json::json!({
        "data": cfg.data,
        "model": cfg.model,
        "stage": stage,
        "extra": extra,
    })
    .to_string()
}

/// The stage of a unified student method: SF-MD, or SF-MD plus MMANet's terms.
fn method_stage<'a>(
    cfg: &'a ExperimentConfig,
    method: Method,
    teacher: &MultimodalNet,
    n: usize,
) -> StageSpec<'a> {
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
        Method::Sp => spec.terms.push(Box::new(MadTerm::new(
            teacher,
            MadReduction::Sp,
            m.mad_impl,
            m.alpha,
            m.warmup_epochs,
        ))),
        Method::Mad | Method::Sr | Method::Mmanet => spec.terms.push(Box::new(MadTerm::new(
            teacher,
            m.mad,
            m.mad_impl,
            m.alpha,
            m.warmup_epochs,
        ))),
        Method::Sf | Method::SfMd => {}
    }
    match method {
        Method::Sr => spec.terms.push(Box::new(MarTerm::singles(m, n))),
        Method::Mmanet => spec.terms.push(Box::new(MarTerm::mined(m, n))),
        _ => {}
    }
    spec
}

/// The loss terms' per-epoch reports of a finished stage (MAR mining rounds and weak set).
pub fn mining_reports(meta: &StageMeta) -> Vec<serde_json::Value> {
    meta.history
        .iter()
        .filter(|e| !e.reports.is_empty())
        .map(|e| {
            serde_json::json!({
                "epoch": e.epoch,
                "reports": e.reports.iter().map(|(n, v)| serde_json::json!({"term": n, "report": v})).collect::<Vec<_>>(),
            })
        })
        .collect()
}

/// Runs the experiment a config describes in its run folder `<output_dir>/<name>` (native
/// targets; blocks until done): see [`run_experiment_in`].
pub fn run_experiment(
    cfg: &ExperimentConfig,
    data: &PreparedData,
    device: &Device,
    resume: bool,
    mode: RunMode,
    sink: &mut dyn ProgressSink,
) -> Result<ExperimentOutcome> {
    let run_dir = cfg.output_dir.join(&cfg.name);
    let mut store = FolderStore::new(&run_dir);
    let mut outcome = block_on(run_experiment_in(
        cfg, data, device, &mut store, resume, mode, sink,
    ))?;
    outcome.run_dir = run_dir;
    Ok(outcome)
}

/// Runs the experiment a config describes: teacher, then each method; evaluates all on the test
/// split; writes every file into `store`. `device` should be a plain (non-autodiff) device.
/// Awaits [`ProgressSink::between_steps`] before every training step.
pub async fn run_experiment_in(
    cfg: &ExperimentConfig,
    data: &PreparedData,
    device: &Device,
    store: &mut dyn RunStore,
    resume: bool,
    mode: RunMode,
    sink: &mut dyn ProgressSink,
) -> Result<ExperimentOutcome> {
    cfg.mmanet.mad_impl.use_kernels(device)?;
    let run_dir = store.location("");
    let n = data.source.modalities().len();
    let combos = all_combinations(n);
    let bona_fide = (data.source.num_classes() == 2).then_some(cfg.eval.bona_fide_label);
    let test = &data.split.test;
    let eval_on = async |model: &MultimodalNet, combos: &[ModalitySet], name: &str| {
        evaluate(
            &model.valid(),
            data.source.as_ref(),
            test,
            combos,
            cfg.eval.batch_size,
            device,
            bona_fide,
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
    reports.push(eval_on(&teacher, &combos, "Teacher").await?);
    let mut mining = Vec::new();

    for &method in &cfg.methods {
        if method == Method::Sf {
            let mut rows = Vec::with_capacity(combos.len());
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
                rows.extend(report.rows);
            }
            reports.push(EvalReport {
                method: method.label().into(),
                modalities: data.source.modality_names(),
                rows,
            });
            continue;
        }
        let spec = method_stage(cfg, method, &teacher, n);
        let (model, meta) = run_stage(spec, &ctx, store, sink).await?;
        reports.push(eval_on(&model, &combos, method.label()).await?);
        let rounds = mining_reports(&meta);
        if !rounds.is_empty() {
            let record = serde_json::json!({ "method": method.label(), "epochs": rounds });
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
    let mut tables = vec![ComparisonTable::build(TableMetric::Accuracy, &per_method)?];
    if bona_fide.is_some() {
        tables.push(ComparisonTable::build(TableMetric::Acer, &per_method)?);
    }
    for t in &tables {
        let stem = match t.metric {
            TableMetric::Accuracy => "results",
            TableMetric::Acer => "results-acer",
        };
        t.write_all(store, stem)?;
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

/// Results of an ablation over several seeds.
pub struct AblationOutcome {
    /// Per metric, rows = combinations + average, columns = methods, mean ± std over seeds.
    pub tables: Vec<ComparisonTable>,
    /// Per seed, every method's report.
    pub reports: Vec<Vec<EvalReport>>,
    /// Per seed, the weak set each MAR method mined (as modality-name labels).
    pub weak_sets: Vec<Vec<(String, Vec<String>)>>,
    /// Where the files went.
    pub run_dir: PathBuf,
}

/// The weak set recorded in a method's mining reports, as modality-name labels.
pub fn weak_set_labels(mining: &serde_json::Value, names: &[String]) -> Option<Vec<String>> {
    let epochs = mining.get("epochs")?.as_array()?;
    epochs.iter().rev().find_map(|e| {
        e.get("reports")?.as_array()?.iter().find_map(|r| {
            let sets: Vec<ModalitySet> =
                serde_json::from_value(r.get("report")?.get("weak_set")?.clone()).ok()?;
            Some(sets.iter().map(|s| s.long_label(names)).collect())
        })
    })
}

/// Runs the experiment once per seed (`seeds` runs; seed k adds k to the teacher's and the
/// student's seeds, the data split stays the same) and tabulates mean ± std per method.
/// Writes `ablation.{md,csv,json}` (and `ablation-acer.*` for two-class data) and
/// `ablation-mining.json` into `<output_dir>/<name>/`.
pub fn run_ablation(
    cfg: &ExperimentConfig,
    data: &PreparedData,
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
    let names = data.source.modality_names();
    let mut all_reports = Vec::with_capacity(seeds);
    let mut weak_sets = Vec::with_capacity(seeds);
    for k in 0..seeds {
        let mut c = cfg.clone();
        c.output_dir = run_dir.clone();
        c.name = format!("seed-{k}");
        c.teacher.seed = cfg.teacher.seed.wrapping_add(k as u64);
        c.student.seed = cfg.student.seed.wrapping_add(k as u64);
        sink.message(&format!("seed {} of {seeds}", k + 1));
        let out = run_experiment(&c, data, device, resume, RunMode::Train, sink)?;
        weak_sets.push(
            out.mining
                .iter()
                .filter_map(|m| {
                    let method = m.get("method")?.as_str()?.to_string();
                    Some((method, weak_set_labels(m, &names)?))
                })
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
    let mut tables = vec![ComparisonTable::build(TableMetric::Accuracy, &per_method)?];
    if data.source.num_classes() == 2 {
        tables.push(ComparisonTable::build(TableMetric::Acer, &per_method)?);
    }
    for t in &tables {
        let stem = match t.metric {
            TableMetric::Accuracy => "ablation",
            TableMetric::Acer => "ablation-acer",
        };
        t.write_all(&mut FolderStore::new(&run_dir), stem)?;
    }
    let json = serde_json::to_vec_pretty(&serde_json::json!({ "weak_sets_per_seed": weak_sets }))
        .map_err(|e| CoreError::Training(format!("cannot encode mining: {e}")))?;
    write_atomic(&run_dir.join("ablation-mining.json"), &json)?;
    Ok(AblationOutcome {
        tables,
        reports: all_reports,
        weak_sets,
        run_dir,
    })
}
