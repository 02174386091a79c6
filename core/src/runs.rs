//! Reading a trained run folder back: the files [`crate::experiment::run_experiment`] writes (its
//! config, every method's per-combination report, each stage's per-epoch history and the
//! trained models); the MAR mining trace of a stage is [`crate::mining::MiningTrace`].
//!
//! `mmanet gui` uses this to show and compare runs trained earlier, from the CLI or the app.

use crate::config::{ExperimentConfig, Method};
use crate::error::{CoreError, Result};
use crate::experiment::{PreparedData, RUN_CONFIG_FILE, StageMeta};
use crate::model::MultimodalNet;
use crate::report::{ComparisonTable, EvalReport, comparison_tables};
use crate::store::{FolderStore, RunStore};
use crate::task::{Classification, Task};
use crate::train::module_from_bytes;
use burn::prelude::*;
use std::path::{Path, PathBuf};

/// A finished run read back from its folder.
#[derive(Clone, Debug)]
pub struct RunRecord {
    /// The run folder (`<output_dir>/<name>`).
    pub dir: PathBuf,
    /// The config it was trained with.
    pub config: ExperimentConfig,
    /// Every method's per-combination test report, teacher first.
    pub reports: Vec<EvalReport>,
    /// Each finished stage's record (`teacher`, then the unified methods), by stage name.
    pub stages: Vec<(String, StageMeta)>,
}

impl RunRecord {
    /// Reads `dir/config.toml`, `dir/reports.json` and every stage's `meta.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        Self::from_store(&FolderStore::new(dir))
    }

    /// Reads a run from `store` (a folder, or the browser's in-memory run).
    pub fn from_store(store: &dyn RunStore) -> Result<Self> {
        let cfg_path = store.location(RUN_CONFIG_FILE);
        let text = store.read_text(RUN_CONFIG_FILE)?;
        let config = ExperimentConfig::from_toml(&text, &cfg_path.display().to_string())?;
        let reports_path = store.location("reports.json");
        let text = store.read_text("reports.json")?;
        let reports: Vec<EvalReport> =
            serde_json::from_str(&text).map_err(|e| CoreError::Parse {
                file: reports_path.display().to_string(),
                line: e.line(),
                column: Some(e.column()),
                message: e.to_string(),
            })?;
        let mut stages = Vec::new();
        let names = std::iter::once("teacher").chain(
            config
                .methods
                .iter()
                .filter(|m| **m != Method::Sf)
                .map(|m| m.slug()),
        );
        for name in names {
            let meta_file = format!("{name}/meta.json");
            let meta_path = store.location(&meta_file);
            let Ok(text) = store.read_text(&meta_file) else {
                continue;
            };
            let meta: StageMeta = serde_json::from_str(&text).map_err(|e| CoreError::Parse {
                file: meta_path.display().to_string(),
                line: e.line(),
                column: Some(e.column()),
                message: e.to_string(),
            })?;
            stages.push((name.to_string(), meta));
        }
        Ok(RunRecord {
            dir: store.location(""),
            config,
            reports,
            stages,
        })
    }

    /// The run's comparison tables (mIoU for segmentation, accuracy, ACER where the reports
    /// carry it).
    pub fn tables(&self) -> Result<Vec<ComparisonTable>> {
        let per_method: Vec<(String, Vec<EvalReport>)> = self
            .reports
            .iter()
            .map(|r| (r.method.clone(), vec![r.clone()]))
            .collect();
        comparison_tables(&per_method)
    }
}

/// Run folders under `output_dir` (those holding a `config.toml` and a `reports.json`),
/// newest first. A missing `output_dir` has none.
pub fn list_runs(output_dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(output_dir) else {
        return Vec::new();
    };
    let mut runs: Vec<(std::time::SystemTime, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.join(RUN_CONFIG_FILE).is_file() && p.join("reports.json").is_file())
        .map(|p| {
            let modified = std::fs::metadata(p.join("reports.json"))
                .and_then(|m| m.modified())
                .unwrap_or(std::time::UNIX_EPOCH);
            (modified, p)
        })
        .collect();
    runs.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    runs.into_iter().map(|(_, p)| p).collect()
}

/// Loads the selected model of stage `stage` (`teacher`, `sf-md`, `mmanet`, `sf/101`, …) of the
/// run in `run_dir` onto `device`, as a deployment network (no regularization head).
pub fn load_stage_model(
    cfg: &ExperimentConfig,
    data: &PreparedData,
    device: &Device,
    run_dir: &Path,
    stage: &str,
) -> Result<MultimodalNet> {
    load_stage_model_from(cfg, data, device, &FolderStore::new(run_dir), stage)
}

/// [`load_stage_model`] from any [`RunStore`].
pub fn load_stage_model_from(
    cfg: &ExperimentConfig,
    data: &PreparedData,
    device: &Device,
    store: &dyn RunStore,
    stage: &str,
) -> Result<MultimodalNet> {
    load_task_stage_model::<Classification>(cfg, data.source.as_ref(), device, store, stage)
}

/// The selected model of stage `stage` of a run of task `T` in `store`, on `device`, as a
/// deployment network (no regularization head). The network is built as the run's config says
/// (ImageNet initialisation skipped: the file holds every weight).
pub fn load_task_stage_model<T: Task>(
    cfg: &ExperimentConfig,
    source: &T::Source,
    device: &Device,
    store: &dyn RunStore,
    stage: &str,
) -> Result<T::Net> {
    let file = format!("{stage}/model.bpk");
    let path = store.location(&file);
    let bytes = store.read(&file)?;
    let mut cfg = cfg.clone();
    cfg.seg_model.imagenet = None;
    let fresh = T::build_net(&cfg, source, false, device)?;
    module_from_bytes(fresh, bytes).map_err(|e| CoreError::Checkpoint {
        path,
        message: format!("does not fit this run's model: {e}"),
    })
}
