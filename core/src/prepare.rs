//! Assembling a task's data from a config: loading the dataset it names (mfeat, the synthetic
//! generators, a manifest, CASIA-SURF / CeFA lists, NYUv2 / Cityscapes trees) and splitting it.

use crate::config::{ClassWeighting, DataSource, ExperimentConfig, TaskKind};
use crate::data::imagelist::{
    CefaProtocol, ImageListDataset, ImageSample, cefa_samples, parse_surf_list,
};
use crate::data::manifest::{ManifestFormat, load_csv_manifest, read_manifest};
use crate::data::rgbd::{SegSource, class_pixel_counts, median_frequency_weights};
use crate::data::rgbd_trees::{RgbdLayout, RgbdTree};
use crate::data::scenes::SyntheticScenes;
use crate::data::split::Split;
use crate::data::{FeatureScaler, InMemoryDataset, MultimodalSource, mfeat, synthetic};
use crate::error::{CoreError, Result};
use crate::task::segmentation::{SegData, Segmentation};
use crate::task::{Classification, Task};
use std::path::Path;
use std::sync::Arc;

/// A task's dataset with its train / val / test split.
pub struct TaskData<T: Task> {
    /// The samples.
    pub source: Arc<T::Source>,
    /// Train / val / test indices.
    pub split: Split,
}

impl<T: Task> Clone for TaskData<T> {
    fn clone(&self) -> Self {
        TaskData {
            source: self.source.clone(),
            split: self.split.clone(),
        }
    }
}

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
    let (ds, split) = match cfg.data.source {
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
        DataSource::Scenes => {
            return Err(CoreError::config(
                "task",
                "`scenes` are segmentation data; set `task = \"segmentation\"`",
            ));
        }
        DataSource::Manifest => {
            let path = manifest_path(cfg)?;
            return prepare_manifest(path, cfg.data.standardize);
        }
    };
    Ok(prepared(ds, split, cfg.data.standardize))
}

/// In-memory data with its split, vector modalities standardised on the training split when
/// `standardize`.
fn prepared(mut ds: InMemoryDataset, split: Split, standardize: bool) -> PreparedData {
    let scalers = if standardize {
        ds.standardize_vectors(&split.train)
    } else {
        vec![None; ds.modalities.len()]
    };
    PreparedData {
        source: Arc::new(ds),
        split,
        scalers,
    }
}

/// Loads a dataset manifest (CSV views or CASIA-SURF lists) and splits it.
pub fn prepare_manifest(path: &Path, standardize: bool) -> Result<PreparedData> {
    let manifest = read_manifest(path)?;
    let base = path.parent().unwrap_or(Path::new("."));
    match manifest.format {
        ManifestFormat::Csv => {
            let ds = load_csv_manifest(&manifest, base)?;
            let split = manifest
                .split
                .apply(&ds.labels, &path.display().to_string())?;
            Ok(prepared(ds, split, standardize))
        }
        ManifestFormat::Nyuv2 | ManifestFormat::Cityscapes => Err(CoreError::config(
            "task",
            format!(
                "{} is an RGB-D segmentation dataset; set `task = \"segmentation\"`",
                path.display()
            ),
        )),
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

impl PreparedData {
    /// The data as the classification task's pipeline takes it.
    pub fn task_data(&self) -> TaskData<crate::task::Classification> {
        TaskData {
            source: self.source.clone(),
            split: self.split.clone(),
        }
    }
}

/// Loads the segmentation data a config names, splits it, and computes the task loss's class
/// weights on the training split.
pub fn prepare_seg_data(cfg: &ExperimentConfig) -> Result<TaskData<Segmentation>> {
    let (source, split, official): (Arc<dyn SegSource>, Split, ClassWeighting) = match cfg
        .data
        .source
    {
        DataSource::Scenes => {
            let scenes = SyntheticScenes::generate(&cfg.data.scenes.clone().unwrap_or_default())?;
            let split = cfg
                .data
                .split
                .apply(&vec![0; scenes.len()], scenes.name())?;
            (Arc::new(scenes), split, ClassWeighting::MedianFrequency)
        }
        DataSource::Manifest => {
            let path = manifest_path(cfg)?;
            let manifest = read_manifest(path)?;
            let base = path.parent().unwrap_or(Path::new("."));
            let (Some(layout), Some(rgbd)) = (manifest.format.rgbd_layout(), &manifest.rgbd) else {
                return Err(CoreError::config(
                    "task",
                    format!(
                        "{} is a classification dataset; set `task = \"classification\"`",
                        path.display()
                    ),
                ));
            };
            let (tree, split) = RgbdTree::open(&manifest.name, layout, rgbd, base)?;
            let official = match layout {
                RgbdLayout::Nyuv2 => ClassWeighting::MedianFrequency,
                RgbdLayout::Cityscapes => ClassWeighting::None,
            };
            (Arc::new(tree), split, official)
        }
        other => {
            return Err(CoreError::config(
                "data.source",
                format!(
                    "`{other:?}` is not segmentation data; use `scenes` or an nyuv2 / cityscapes manifest"
                ),
            ));
        }
    };
    for (name, part) in [
        ("train", &split.train),
        ("val", &split.val),
        ("test", &split.test),
    ] {
        if part.is_empty() {
            return Err(CoreError::data(
                source.name(),
                format!("the {name} split is empty; use more scenes or change data.split"),
            ));
        }
    }
    let class_weights = match cfg.data.class_weighting.unwrap_or(official) {
        ClassWeighting::MedianFrequency => {
            median_frequency_weights(&class_pixel_counts(source.as_ref(), &split.train)?)
        }
        ClassWeighting::None => vec![1.0; source.num_classes()],
    };
    Ok(TaskData {
        source: Arc::new(SegData {
            source,
            class_weights,
        }),
        split,
    })
}

/// The config's `data.manifest`, required when the source is a manifest.
fn manifest_path(cfg: &ExperimentConfig) -> Result<&Path> {
    cfg.data
        .manifest
        .as_deref()
        .ok_or_else(|| CoreError::config("data.manifest", "missing"))
}

/// What the CLI and the app ask of a task's loaded data, whichever task it is: implemented once
/// for every [`TaskData`] through the [`Task`] trait, and for classification's [`PreparedData`].
pub trait AnyTaskData: Send + Sync {
    /// The task the data is for.
    fn task(&self) -> TaskKind;
    /// Train / val / test indices.
    fn split(&self) -> &Split;
    /// The dataset's name.
    fn name(&self) -> String;
    /// Modality names, in mask order.
    fn modality_names(&self) -> Vec<String>;
    /// Class names, in class-index order.
    fn class_names(&self) -> Vec<String>;
    /// One line about the data and its split, for the CLI.
    fn describe(&self) -> String;
}

/// `describe`'s split part.
fn describe_split(split: &Split) -> String {
    format!(
        "split train {} / val {} / test {}",
        split.train.len(),
        split.val.len(),
        split.test.len()
    )
}

impl<T: Task> AnyTaskData for TaskData<T> {
    fn task(&self) -> TaskKind {
        T::KIND
    }
    fn split(&self) -> &Split {
        &self.split
    }
    fn name(&self) -> String {
        T::source_name(&self.source)
    }
    fn modality_names(&self) -> Vec<String> {
        T::modality_names(&self.source)
    }
    fn class_names(&self) -> Vec<String> {
        T::class_names(&self.source)
    }
    fn describe(&self) -> String {
        format!(
            "{}; {}",
            T::describe(&self.source),
            describe_split(&self.split)
        )
    }
}

impl AnyTaskData for PreparedData {
    fn task(&self) -> TaskKind {
        Classification::KIND
    }
    fn split(&self) -> &Split {
        &self.split
    }
    fn name(&self) -> String {
        Classification::source_name(self.source.as_ref())
    }
    fn modality_names(&self) -> Vec<String> {
        Classification::modality_names(self.source.as_ref())
    }
    fn class_names(&self) -> Vec<String> {
        Classification::class_names(self.source.as_ref())
    }
    fn describe(&self) -> String {
        format!(
            "{}; {}",
            Classification::describe(self.source.as_ref()),
            describe_split(&self.split)
        )
    }
}

/// Either task's data with its split: what a config's `task` and `[data]` name, loaded (the app
/// holds one of these and hands it to [`crate::experiment::run_experiment_in`]). This enum is
/// where a task's data is registered: a variant, an arm in [`LoadedData::load`] and one in
/// [`LoadedData::data`]; everything else reaches the task through [`AnyTaskData`].
#[derive(Clone)]
pub enum LoadedData {
    /// Classification samples (mfeat, synthetic anti-spoofing, CSV or image-list manifests).
    Classification(PreparedData),
    /// RGB-D scenes (synthetic scenes, NYUv2, Cityscapes) with their class weights.
    Segmentation(TaskData<Segmentation>),
}

impl LoadedData {
    /// Loads the data of `cfg` for its task.
    pub fn load(cfg: &ExperimentConfig) -> Result<Self> {
        Ok(match cfg.task {
            TaskKind::Classification => LoadedData::Classification(prepare_data(cfg)?),
            TaskKind::Segmentation => LoadedData::Segmentation(prepare_seg_data(cfg)?),
        })
    }

    /// The data, as any task's.
    pub fn data(&self) -> &dyn AnyTaskData {
        match self {
            LoadedData::Classification(d) => d,
            LoadedData::Segmentation(d) => d,
        }
    }

    /// The task the data is for.
    pub fn task(&self) -> TaskKind {
        self.data().task()
    }

    /// Train / val / test indices.
    pub fn split(&self) -> &Split {
        self.data().split()
    }

    /// The dataset's name.
    pub fn name(&self) -> String {
        self.data().name()
    }

    /// Modality names, in mask order.
    pub fn modality_names(&self) -> Vec<String> {
        self.data().modality_names()
    }

    /// Class names, in class-index order.
    pub fn class_names(&self) -> Vec<String> {
        self.data().class_names()
    }

    /// One line about the data and its split, for the CLI.
    pub fn describe(&self) -> String {
        self.data().describe()
    }

    /// The classification data, if it is that.
    pub fn classification(&self) -> Option<&PreparedData> {
        match self {
            LoadedData::Classification(d) => Some(d),
            LoadedData::Segmentation(_) => None,
        }
    }

    /// The segmentation data, if it is that.
    pub fn segmentation(&self) -> Option<&TaskData<Segmentation>> {
        match self {
            LoadedData::Segmentation(d) => Some(d),
            LoadedData::Classification(_) => None,
        }
    }
}
