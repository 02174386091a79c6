//! Experiment configuration (TOML). Every field is documented; unknown keys are rejected.
//!
//! See `configs/*.toml` for complete, commented examples.

use crate::data::manifest::toml_error;
use crate::data::scenes::ScenesConfig;
use crate::data::split::SplitRule;
use crate::data::synthetic::SyntheticConfig;
use crate::dropout::DropoutMode;
use crate::error::{CoreError, Result};
use crate::mmanet_settings::MmanetConfig;
use crate::model::ModelConfig;
use crate::model::esanet::SegModelConfig;
use crate::schedule::{LrSchedule, ScheduleKind};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// A whole experiment: data, model, teacher and student training.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentConfig {
    /// Run name; outputs go to `<output_dir>/<name>/`.
    pub name: String,
    /// The task: `classification` (default) or `segmentation` (RGB-D semantic segmentation).
    #[serde(default)]
    pub task: TaskKind,
    /// Folder for runs (checkpoints, results). Relative paths are relative to the working dir.
    #[serde(default = "default_output_dir")]
    pub output_dir: PathBuf,
    /// Where the data comes from.
    pub data: DataConfig,
    /// The classification network.
    #[serde(default)]
    pub model: ModelConfig,
    /// The segmentation network (ESANet).
    #[serde(default)]
    pub seg_model: SegModelConfig,
    /// Teacher training (complete modalities).
    pub teacher: StageConfig,
    /// Student (deployment network) training.
    pub student: StageConfig,
    /// Student methods to train and compare, in table order
    /// (`sf`, `sf-md`, `sp`, `mad`, `sr`, `mmanet`).
    pub methods: Vec<Method>,
    /// MMANet settings (α, β, warm-up, mining and loss variants); defaults are the official ones.
    #[serde(default)]
    pub mmanet: MmanetConfig,
    /// Evaluation settings.
    #[serde(default)]
    pub eval: EvalConfig,
}

fn default_output_dir() -> PathBuf {
    PathBuf::from("runs")
}

/// Data source.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    /// `mfeat` (bundled), `synthetic` (generated anti-spoofing images) or `manifest`.
    pub source: DataSource,
    /// mfeat only: read the pixel view as a 1×15×16 image instead of a 240-vector.
    #[serde(default)]
    pub pix_as_image: bool,
    /// `manifest` only: path of the dataset manifest (TOML), relative to the config file.
    #[serde(default)]
    pub manifest: Option<PathBuf>,
    /// `synthetic` only: generator settings.
    #[serde(default)]
    pub synthetic: Option<SyntheticConfig>,
    /// `scenes` only: the synthetic RGB-D scene generator's settings.
    #[serde(default)]
    pub scenes: Option<ScenesConfig>,
    /// Segmentation: the task loss's class weights, `median_frequency` (NYUv2's) or `none`
    /// (Cityscapes'); by default the dataset's official choice.
    #[serde(default)]
    pub class_weighting: Option<ClassWeighting>,
    /// Split rule for mfeat and synthetic data (a manifest carries its own).
    #[serde(default)]
    pub split: SplitRule,
    /// Standardise vector modalities with training-split statistics.
    #[serde(default = "yes")]
    pub standardize: bool,
}

fn yes() -> bool {
    true
}

/// The paper's two tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default, Hash)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Classification (face anti-spoofing, multi-view data).
    #[default]
    Classification,
    /// RGB-D semantic segmentation.
    Segmentation,
}

impl TaskKind {
    /// Every task, in the order the docs and the app list them.
    pub const ALL: [TaskKind; 2] = [TaskKind::Classification, TaskKind::Segmentation];

    /// The name a config's `task` key takes (`classification`, `segmentation`).
    pub const fn name(self) -> &'static str {
        match self {
            TaskKind::Classification => "classification",
            TaskKind::Segmentation => "segmentation",
        }
    }
}

/// Class weights of the segmentation loss.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ClassWeighting {
    /// Median frequency over the training split (NYUv2).
    MedianFrequency,
    /// All ones (Cityscapes).
    None,
}

/// Data sources.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DataSource {
    /// The bundled UCI mfeat views pix, fou, mor.
    Mfeat,
    /// The synthetic anti-spoofing generator.
    Synthetic,
    /// The synthetic RGB-D scene generator (segmentation).
    Scenes,
    /// A user dataset described by a manifest.
    Manifest,
}

/// Optimiser choice.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OptimizerKind {
    /// SGD with (Nesterov) momentum and weight decay — the official optimiser.
    #[default]
    Sgd,
    /// Adam with weight decay.
    Adam,
}

/// Settings of one training stage (teacher or student).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    /// Number of epochs.
    pub epochs: usize,
    /// Mini-batch size.
    #[serde(default = "default_batch")]
    pub batch_size: usize,
    /// Drop the last incomplete training batch (official: true).
    #[serde(default = "yes")]
    pub drop_last: bool,
    /// Optimiser.
    #[serde(default)]
    pub optimizer: OptimizerKind,
    /// Base learning rate.
    pub lr: f64,
    /// SGD momentum (official 0.9).
    #[serde(default = "default_momentum")]
    pub momentum: f64,
    /// Nesterov momentum (official: on).
    #[serde(default = "yes")]
    pub nesterov: bool,
    /// L2 weight decay on all parameters (official 5e-4).
    #[serde(default = "default_wd")]
    pub weight_decay: f64,
    /// Schedule variant: `official` (epoch 0 skipped, lr 0 at epoch 1), `paper`, or
    /// `one_cycle` (the segmentation recipe; cycles the momentum too).
    #[serde(default)]
    pub schedule: ScheduleKind,
    /// Warm-up epochs of the learning rate (official 5).
    #[serde(default)]
    pub lr_warmup_epochs: usize,
    /// Epochs at which the learning rate is multiplied by `lr_gamma`.
    #[serde(default)]
    pub lr_milestones: Vec<usize>,
    /// Decay factor at each milestone.
    #[serde(default = "default_gamma")]
    pub lr_gamma: f64,
    /// Only epochs after this one may be selected as the best checkpoint (official: 30).
    #[serde(default)]
    pub select_after_epoch: usize,
    /// What picks the best checkpoint: the mean validation `accuracy` (mIoU for segmentation;
    /// the checkpoint the official test scripts load), or the lowest mean validation `acer`
    /// (two-class data; the official loop saves that one too).
    #[serde(default, skip_serializing_if = "SelectBy::is_default")]
    pub select_by: SelectBy,
    /// Modality dropout during training.
    pub dropout: DropoutMode,
    /// Seed of initialisation, shuffling and dropout.
    #[serde(default)]
    pub seed: u64,
    /// Measure, on the first batch of every epoch, what each loss term does to the deployment
    /// network (its gradient's norm and direction against the task loss's) and each term's
    /// value per modality combination, into the epoch history ([`crate::diagnostics`]). The
    /// trained model is the same with or without; it costs a few extra passes per epoch.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gradient_diagnostics: bool,
}

fn default_batch() -> usize {
    64
}
fn default_momentum() -> f64 {
    0.9
}
fn default_wd() -> f64 {
    5e-4
}
fn default_gamma() -> f64 {
    0.1
}

/// What selects a stage's best checkpoint (`select_by`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SelectBy {
    /// The highest mean validation accuracy (mIoU for segmentation).
    #[default]
    Accuracy,
    /// The lowest mean validation ACER (two-class classification only).
    Acer,
}

impl SelectBy {
    /// Whether this is the default (left out of fingerprints, so existing runs stay reusable).
    pub fn is_default(&self) -> bool {
        *self == SelectBy::Accuracy
    }
}

impl StageConfig {
    /// The learning-rate schedule of this stage.
    pub fn schedule(&self) -> LrSchedule {
        LrSchedule {
            kind: self.schedule,
            base_lr: self.lr,
            warmup_epochs: self.lr_warmup_epochs,
            milestones: self.lr_milestones.clone(),
            gamma: self.lr_gamma,
            total_epochs: self.epochs,
        }
    }

    fn validate(&self, field: &str) -> Result<()> {
        let bad = |f: &str, m: String| Err(CoreError::config(format!("{field}.{f}"), m));
        if self.epochs == 0 || self.epochs > MAX_EPOCHS {
            return bad(
                "epochs",
                format!("must be 1..={MAX_EPOCHS}, got {}", self.epochs),
            );
        }
        if self.batch_size == 0 || self.batch_size > MAX_BATCH {
            return bad(
                "batch_size",
                format!("must be 1..={MAX_BATCH}, got {}", self.batch_size),
            );
        }
        if self.lr_warmup_epochs > self.epochs {
            return bad(
                "lr_warmup_epochs",
                format!(
                    "{} is longer than the stage ({} epochs)",
                    self.lr_warmup_epochs, self.epochs
                ),
            );
        }
        if let Some(m) = self.lr_milestones.iter().find(|&&m| m >= self.epochs) {
            return bad(
                "lr_milestones",
                format!(
                    "milestone {m} is not inside the stage's {} epochs",
                    self.epochs
                ),
            );
        }
        if !(self.lr_gamma.is_finite() && self.lr_gamma > 0.0) {
            return bad("lr_gamma", format!("must be > 0, got {}", self.lr_gamma));
        }

        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad("lr", format!("must be > 0, got {}", self.lr));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return bad(
                "momentum",
                format!("must be in [0, 1), got {}", self.momentum),
            );
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad(
                "weight_decay",
                format!("must be ≥ 0, got {}", self.weight_decay),
            );
        }
        if self.select_after_epoch >= self.epochs {
            return bad(
                "select_after_epoch",
                format!(
                    "{} leaves no epoch to select from ({} epochs)",
                    self.select_after_epoch, self.epochs
                ),
            );
        }
        Ok(())
    }
}

/// Student methods (the columns of the paper's Table 6 ablation).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    /// Customised models: one per combination, trained and tested on that combination only.
    Sf,
    /// One unified model trained with modality dropout.
    SfMd,
    /// SF-MD + unweighted relation distillation from the teacher (α·mean D).
    Sp,
    /// SF-MD + margin-aware distillation (α·MAD).
    Mad,
    /// SF-MD + MAD + a regularization head on every single modality (β·SR).
    Sr,
    /// SF-MD + MAD + MAR: the full method.
    Mmanet,
}

impl Method {
    /// Display name as in the paper's tables.
    pub fn label(self) -> &'static str {
        match self {
            Method::Sf => "SF",
            Method::SfMd => "SF-MD",
            Method::Sp => "+SP",
            Method::Mad => "+MAD",
            Method::Sr => "+SR",
            Method::Mmanet => "MMANet",
        }
    }

    /// Folder name of the method's stage.
    pub fn slug(self) -> &'static str {
        match self {
            Method::Sf => "sf",
            Method::SfMd => "sf-md",
            Method::Sp => "sp",
            Method::Mad => "mad",
            Method::Sr => "sr",
            Method::Mmanet => "mmanet",
        }
    }

    /// Whether the method distils from the teacher.
    pub fn uses_teacher(self) -> bool {
        matches!(self, Method::Sp | Method::Mad | Method::Sr | Method::Mmanet)
    }

    /// Whether the method trains a regularization head.
    pub fn uses_reg_head(self) -> bool {
        matches!(self, Method::Sr | Method::Mmanet)
    }
}

/// Evaluation settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvalConfig {
    /// Bona-fide class for APCER/BPCER on two-class data (1 on CASIA-SURF and synthetic).
    #[serde(default = "one")]
    pub bona_fide_label: usize,
    /// Batch size of evaluation passes.
    #[serde(default = "default_eval_batch")]
    pub batch_size: usize,
}

fn one() -> usize {
    1
}
fn default_eval_batch() -> usize {
    256
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig {
            bona_fide_label: 1,
            batch_size: 256,
        }
    }
}

/// The most epochs a stage may ask for.
pub const MAX_EPOCHS: usize = 100_000;
/// The largest batch a config may ask for (training or evaluation).
pub const MAX_BATCH: usize = 65_536;

/// Checks that `value` can name one folder inside the output folder: not empty, no path
/// separator, not `.` or `..`, no control characters, at most 200 bytes — so a run's files can
/// never be written outside the output folder.
pub fn check_folder_name(field: &str, value: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(CoreError::config(
            field,
            format!("`{value}` cannot name a run folder: {why}"),
        ))
    };
    if value.trim().is_empty() {
        return Err(CoreError::config(field, "must not be empty"));
    }
    if value.contains(['/', '\\']) {
        return bad("it contains a path separator");
    }
    if value == "." || value == ".." {
        return bad("it is a relative folder");
    }
    if value.chars().any(char::is_control) {
        return bad("it contains a control character");
    }
    if value.len() > 200 {
        return bad("it is longer than 200 bytes");
    }
    Ok(())
}

impl ExperimentConfig {
    /// Parses TOML text; `file` names it in errors (with line and column).
    pub fn from_toml(text: &str, file: &str) -> Result<Self> {
        let cfg: ExperimentConfig = toml::from_str(text).map_err(|e| toml_error(text, file, &e))?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Parses TOML text after applying `key.path=value` overrides (the value in TOML syntax,
    /// e.g. `mmanet.beta=2.0`, `methods=["sf-md","mmanet"]`, `data.split.seed=3`).
    pub fn from_toml_with_overrides(text: &str, file: &str, overrides: &[String]) -> Result<Self> {
        if overrides.is_empty() {
            return Self::from_toml(text, file);
        }
        let mut doc: toml::Table = toml::from_str(text).map_err(|e| toml_error(text, file, &e))?;
        for o in overrides {
            let (key, value) = o
                .split_once('=')
                .ok_or_else(|| CoreError::config(o.clone(), "an override is `key.path=value`"))?;
            let key = key.trim();
            let parsed: toml::Table = toml::from_str(&format!("v = {}", value.trim()))
                .or_else(|_| toml::from_str(&format!("v = {:?}", value.trim())))
                .map_err(|e| {
                    CoreError::config(key, format!("bad value `{value}`: {}", e.message()))
                })?;
            let value = parsed.get("v").cloned().expect("parsed a `v` key");
            let parts: Vec<&str> = key.split('.').collect();
            let mut table = &mut doc;
            for p in &parts[..parts.len() - 1] {
                table = table
                    .entry(p.to_string())
                    .or_insert_with(|| toml::Value::Table(toml::Table::new()))
                    .as_table_mut()
                    .ok_or_else(|| CoreError::config(key, format!("`{p}` is not a table")))?;
            }
            table.insert(parts[parts.len() - 1].to_string(), value);
        }
        let merged =
            toml::to_string(&doc).map_err(|e| CoreError::config("overrides", e.to_string()))?;
        let cfg: ExperimentConfig = toml::from_str(&merged).map_err(|e| {
            // A bad value from `--set` is reported under its key, not under a line of the
            // merged document the user never sees.
            let key = e.span().and_then(|span| dotted_key_at(&merged, span.start));
            match key.filter(|k| {
                overrides
                    .iter()
                    .any(|o| o.trim_start().starts_with(k.as_str()))
            }) {
                Some(k) => CoreError::config(k, format!("bad --set value: {}", e.message())),
                None => toml_error(&merged, &format!("{file} (with --set overrides)"), &e),
            }
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Reads and validates a config file. A relative `data.manifest` is resolved against the
    /// config file's folder.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with_overrides(path, &[])
    }

    /// [`ExperimentConfig::load`] with `key.path=value` overrides.
    pub fn load_with_overrides(path: &Path, overrides: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
        let mut cfg =
            Self::from_toml_with_overrides(&text, &path.display().to_string(), overrides)?;
        let base = path.parent().unwrap_or(Path::new("."));
        if let Some(m) = &cfg.data.manifest
            && m.is_relative()
        {
            cfg.data.manifest = Some(base.join(m));
        }
        if let Some(w) = &cfg.seg_model.imagenet
            && w.is_relative()
        {
            cfg.seg_model.imagenet = Some(base.join(w));
        }
        Ok(cfg)
    }

    /// Sets both stages to `epochs` epochs (a quick look at a preset), pulling each stage's
    /// selection start and learning-rate milestones inside the shorter run, then validates.
    pub fn set_epochs(&mut self, epochs: usize) -> Result<()> {
        if epochs == 0 {
            return Err(CoreError::config("epochs", "must be at least 1"));
        }
        for stage in [&mut self.teacher, &mut self.student] {
            stage.epochs = epochs;
            stage.select_after_epoch = stage.select_after_epoch.min(epochs - 1);
            stage.lr_warmup_epochs = stage.lr_warmup_epochs.min(epochs);
            stage.lr_milestones.retain(|m| *m < epochs);
        }
        self.validate()
    }

    /// Checks values and cross-field consistency.
    pub fn validate(&self) -> Result<()> {
        check_folder_name("name", &self.name)?;
        if self.eval.batch_size == 0 || self.eval.batch_size > MAX_BATCH {
            return Err(CoreError::config(
                "eval.batch_size",
                format!("must be 1..={MAX_BATCH}, got {}", self.eval.batch_size),
            ));
        }
        match self.data.source {
            DataSource::Manifest if self.data.manifest.is_none() => {
                return Err(CoreError::config(
                    "data.manifest",
                    "`source = \"manifest\"` needs `manifest = \"path/to/manifest.toml\"`",
                ));
            }
            DataSource::Synthetic if self.data.synthetic.is_none() => {
                return Err(CoreError::config(
                    "data.synthetic",
                    "`source = \"synthetic\"` needs a [data.synthetic] table",
                ));
            }
            _ => {}
        }
        let seg_source = match self.data.source {
            DataSource::Scenes => Some(true),
            DataSource::Mfeat | DataSource::Synthetic => Some(false),
            // a manifest's format says which task it is for; checked when it is read
            DataSource::Manifest => None,
        };
        if let Some(seg) = seg_source
            && seg != (self.task == TaskKind::Segmentation)
        {
            return Err(CoreError::config(
                "task",
                format!(
                    "`{:?}` data is for {}; set `task = \"{}\"`",
                    self.data.source,
                    if seg {
                        "segmentation"
                    } else {
                        "classification"
                    },
                    if seg {
                        "segmentation"
                    } else {
                        "classification"
                    },
                ),
            ));
        }
        if let Some(synthetic) = &self.data.synthetic {
            synthetic.validate()?;
        }
        if let Some(scenes) = &self.data.scenes {
            scenes.validate()?;
        }
        self.data.split.validate()?;
        self.model.validate()?;
        self.teacher.validate("teacher")?;
        self.student.validate("student")?;
        if self.methods.is_empty() {
            return Err(CoreError::config("methods", "list at least one method"));
        }
        if self.methods.iter().any(|m| m.uses_teacher()) {
            self.mmanet.validate(self.student.epochs)?;
        }
        Ok(())
    }
}

/// The dotted key (`table.key`) of the `key = value` line holding byte `offset` of a TOML
/// document written by `toml::to_string` (tables as `[a.b]` headers).
fn dotted_key_at(text: &str, offset: usize) -> Option<String> {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next()?;
    let key = line.split_once('=')?.0.trim();
    let table = text[..start].lines().rev().find_map(|l| {
        l.trim()
            .strip_prefix('[')?
            .strip_suffix(']')
            .map(str::to_string)
    });
    Some(match table {
        Some(t) => format!("{t}.{key}"),
        None => key.to_string(),
    })
}
