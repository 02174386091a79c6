//! Using a deployment bundle on new data: a [`Classifier`] predicts classes of samples with any
//! subset of modalities (each sample sees the modalities it has), a [`Segmenter`] predicts label
//! maps of RGB-D scenes; [`inputs`] reads samples from CSV files, datasets and image files, and
//! [`output`] writes predictions as CSV or JSON.
//!
//! The inputs are prepared with the bundle's own statistics — vector features standardised with
//! the training split's mean and standard deviation, images resized and normalised as in
//! evaluation — so the same samples give the same numbers as the run's evaluation.

pub mod inputs;
pub mod output;

use crate::bundle::{Bundle, BundleHeader};
use crate::config::{DataSource, ExperimentConfig};
use crate::data::manifest::read_manifest;
use crate::data::rgbd::{RgbdPreprocessing, RgbdScene};
use crate::data::{Batch, ModalitySpec};
use crate::error::{CoreError, Result};
use crate::eval::read_f32;
use crate::modality::ModalitySet;
use crate::model::esanet::EsaNet;
use crate::model::{MultimodalNet, mask_tensor};
use crate::prepare::LoadedData;
use crate::task::segmentation::{LabelMap, predict_scene};
use burn::prelude::*;
use burn::tensor::activation::softmax;
pub use inputs::SampleReader;
use serde::Serialize;
use std::path::Path;

/// One sample's prediction.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SamplePrediction {
    /// How the sample is named (`row 3`, `sample 7`, a file name).
    pub id: String,
    /// The modalities the network saw for it.
    pub seen: ModalitySet,
    /// The predicted class index.
    pub class: usize,
    /// Class probabilities (softmax), in class-index order.
    pub probabilities: Vec<f32>,
    /// The sample's known class, when the input carries labels.
    pub label: Option<usize>,
}

/// The parsed `--modalities` list: the set of the named modalities of the model.
pub fn modality_set_from_names(modalities: &[ModalitySpec], names: &str) -> Result<ModalitySet> {
    let mut set = ModalitySet::default();
    for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        set = set.with(inputs::modality_index(modalities, name)?);
    }
    if set.is_empty() {
        return Err(CoreError::config(
            "modalities",
            "name at least one modality of the model",
        ));
    }
    Ok(set)
}

/// The experiment config whose data `path` names, for predicting a dataset's own samples: an
/// experiment config (TOML) as it is, or a dataset manifest (TOML, or a CASIA-SURF list) with the
/// bundle's own settings.
pub fn data_config_for(header: &BundleHeader, path: &Path) -> Result<ExperimentConfig> {
    match read_manifest(path) {
        Ok(_) => {
            let mut cfg = header.config.clone();
            cfg.data.source = DataSource::Manifest;
            cfg.data.manifest = Some(path.to_path_buf());
            Ok(cfg)
        }
        Err(as_manifest) => ExperimentConfig::load(path).map_err(|as_config| {
            CoreError::data(
                path.display().to_string(),
                format!(
                    "is neither a dataset manifest ({as_manifest}) nor an experiment config ({as_config})"
                ),
            )
        }),
    }
}

/// The data of `cfg` as the bundle's network takes it: loaded without standardisation (the
/// [`Classifier`] applies the bundle's own), checked to have the bundle's task, modalities and
/// number of classes.
pub fn load_data_for(header: &BundleHeader, cfg: &ExperimentConfig) -> Result<LoadedData> {
    let mut cfg = cfg.clone();
    cfg.data.standardize = false;
    if cfg.task != header.task {
        return Err(CoreError::config(
            "task",
            format!(
                "the data is for {:?}, the model for {:?}",
                cfg.task, header.task
            ),
        ));
    }
    let data = LoadedData::load(&cfg)?;
    if let LoadedData::Classification(d) = &data
        && d.source.modalities() != header.modalities.as_slice()
    {
        let show = |m: &[ModalitySpec]| {
            m.iter()
                .map(|m| format!("{} {:?}", m.name, m.kind.shape()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(CoreError::data(
            data.name(),
            format!(
                "its modalities ({}) are not the model's ({})",
                show(d.source.modalities()),
                show(&header.modalities)
            ),
        ));
    }
    if data.class_names().len() != header.class_names.len() {
        return Err(CoreError::data(
            data.name(),
            format!(
                "has {} classes, the model {}",
                data.class_names().len(),
                header.class_names.len()
            ),
        ));
    }
    Ok(data)
}

/// A classification bundle's network, ready to predict.
pub struct Classifier {
    /// What the network is and needs.
    pub header: BundleHeader,
    net: MultimodalNet,
    device: Device,
}

impl Classifier {
    /// The bundle's classifier on `device`.
    pub fn new(bundle: &Bundle, device: &Device) -> Result<Self> {
        Ok(Classifier {
            header: bundle.header.clone(),
            net: bundle.classifier(device)?,
            device: device.clone(),
        })
    }

    /// Predicts every sample of `reader`, `batch_size` at a time. Each sample sees the
    /// modalities it has — only those in `only`, when given; a sample left with none is an
    /// error naming it. `progress(done, total)` is called after each batch.
    pub async fn predict(
        &self,
        reader: &dyn SampleReader,
        only: Option<ModalitySet>,
        batch_size: usize,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<SamplePrediction>> {
        let specs = &self.header.modalities;
        let names: Vec<String> = specs.iter().map(|m| m.name.clone()).collect();
        let n = reader.len();
        let mut out = Vec::with_capacity(n);
        let indices: Vec<usize> = (0..n).collect();
        for chunk in indices.chunks(batch_size.max(1)) {
            let mut batch = Batch {
                inputs: specs
                    .iter()
                    .map(|s| Vec::with_capacity(chunk.len() * s.kind.numel()))
                    .collect(),
                shapes: specs
                    .iter()
                    .map(|s| [vec![chunk.len()], s.kind.shape()].concat())
                    .collect(),
                labels: vec![0; chunk.len()],
                indices: chunk.to_vec(),
            };
            let mut sets = Vec::with_capacity(chunk.len());
            for &i in chunk {
                let values = reader.read(i)?;
                let mut set = ModalitySet::default();
                for (m, (spec, v)) in specs.iter().zip(values).enumerate() {
                    let numel = spec.kind.numel();
                    match v {
                        Some(mut v) if only.is_none_or(|o| o.contains(m)) => {
                            if v.len() != numel {
                                return Err(CoreError::data(
                                    reader.id(i),
                                    format!(
                                        "modality `{}` has {} values, the model takes {numel}",
                                        spec.name,
                                        v.len()
                                    ),
                                ));
                            }
                            if let Some(Some(scaler)) = self.header.scalers.get(m) {
                                scaler.apply(&mut v);
                            }
                            batch.inputs[m].extend_from_slice(&v);
                            set = set.with(m);
                        }
                        _ => batch.inputs[m].extend(std::iter::repeat_n(0.0, numel)),
                    }
                }
                if set.is_empty() {
                    return Err(CoreError::data(
                        reader.id(i),
                        match only {
                            Some(o) => format!(
                                "has none of the modalities asked for ({})",
                                o.long_label(&names)
                            ),
                            None => {
                                format!("has no modality (the model takes {})", names.join(", "))
                            }
                        },
                    ));
                }
                sets.push(set);
            }
            let inputs = self.net.inputs_from_batch(&batch, &self.device)?;
            let mask = mask_tensor(&sets, specs.len(), &self.device);
            let logits = self.net.forward(&inputs, mask).logits;
            let classes = self.header.class_names.len();
            let p = read_f32(softmax(logits, 1)).await?;
            for ((&i, set), row) in chunk.iter().zip(sets).zip(p.chunks(classes)) {
                if row.iter().any(|v| !v.is_finite()) {
                    return Err(CoreError::data(
                        reader.id(i),
                        "the model's output is not a number (NaN or infinite): its weights are not finite",
                    ));
                }
                let class = row
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map_or(0, |(k, _)| k);
                out.push(SamplePrediction {
                    id: reader.id(i),
                    seen: set,
                    class,
                    probabilities: row.to_vec(),
                    label: reader.label(i),
                });
            }
            progress(out.len(), n);
        }
        Ok(out)
    }
}

/// Per combination seen, how many samples and — where labels are known — how many were right.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CombinationTally {
    /// The combination.
    pub seen: ModalitySet,
    /// Samples that saw it.
    pub samples: usize,
    /// Of those, samples with a known label.
    pub labelled: usize,
    /// Of those, samples predicted right.
    pub correct: usize,
}

impl CombinationTally {
    /// Accuracy over the labelled samples (`None` without labels).
    pub fn accuracy(&self) -> Option<f64> {
        (self.labelled > 0).then(|| self.correct as f64 / self.labelled as f64)
    }
}

/// The predictions tallied by combination seen, in the order combinations first appear.
pub fn tally(predictions: &[SamplePrediction]) -> Vec<CombinationTally> {
    let mut out: Vec<CombinationTally> = Vec::new();
    for p in predictions {
        let k = match out.iter().position(|t| t.seen == p.seen) {
            Some(k) => k,
            None => {
                out.push(CombinationTally {
                    seen: p.seen,
                    samples: 0,
                    labelled: 0,
                    correct: 0,
                });
                out.len() - 1
            }
        };
        let t = &mut out[k];
        t.samples += 1;
        if let Some(l) = p.label {
            t.labelled += 1;
            t.correct += usize::from(l == p.class);
        }
    }
    out
}

/// A segmentation bundle's network, ready to predict label maps.
pub struct Segmenter {
    /// What the network is and needs.
    pub header: BundleHeader,
    /// How scenes are prepared.
    pub prep: RgbdPreprocessing,
    net: EsaNet,
    device: Device,
}

impl Segmenter {
    /// The bundle's segmenter on `device`.
    pub fn new(bundle: &Bundle, device: &Device) -> Result<Self> {
        let net = bundle.segmenter(device)?;
        let prep = bundle.header.rgbd.clone().ok_or_else(|| {
            CoreError::config("model", "this bundle does not segment RGB-D scenes")
        })?;
        Ok(Segmenter {
            header: bundle.header.clone(),
            prep,
            net,
            device: device.clone(),
        })
    }

    /// The label map of `scene` seen through `set` (`rgb` = modality 0, `depth` = 1), at the
    /// scene's own size.
    pub async fn segment(&self, scene: &RgbdScene, set: ModalitySet) -> Result<LabelMap> {
        predict_scene(&self.net, &self.prep, scene, set, &self.device).await
    }
}
