//! The deployment bundle (`.mmanet`): one file with a trained deployment network (no
//! regularization head, no teacher) and what using it on new data needs — the task, the
//! modalities with their kinds and shapes, the class names, the training split's feature
//! standardisation, the RGB-D preprocessing for segmentation, the experiment config the network is
//! built from, the stage's fingerprint and the test table it scored.
//!
//! Layout, little-endian:
//!
//! | bytes | what |
//! |---|---|
//! | 8 | the magic `MMANETB\n` |
//! | 4 | format version (u32; this build writes and reads [`BUNDLE_FORMAT_VERSION`]) |
//! | 8 | header length `n` (u64) |
//! | n | the header, JSON ([`BundleHeader`]) |
//! | rest | the network's weights (burnpack, as `model.bpk` in a run folder) |
//!
//! A bundle is bytes in and bytes out, so the browser reads it as the desktop does.

use crate::config::{ExperimentConfig, Method, TaskKind};
pub use crate::data::imagelist::ImagePreprocessing;
pub use crate::data::rgbd::RgbdPreprocessing;
use crate::data::{FeatureScaler, ModalitySpec};
use crate::error::{CoreError, Result};
use crate::experiment::LoadedData;
use crate::model::MultimodalNet;
use crate::model::esanet::EsaNet;
use crate::report::EvalReport;
use crate::runs::RunRecord;
use crate::store::RunStore;
use crate::train::module_from_bytes;
use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// The first bytes of every bundle.
pub const BUNDLE_MAGIC: &[u8; 8] = b"MMANETB\n";
/// The bundle format this build writes, and the newest it reads.
pub const BUNDLE_FORMAT_VERSION: u32 = 1;

/// Everything but the weights.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BundleHeader {
    /// The task.
    pub task: TaskKind,
    /// The method the network was trained with (`MMANet`, `SF-MD`, …).
    pub method: String,
    /// Its stage folder in the run (`mmanet`, `sf-md`, …).
    pub stage: String,
    /// The dataset it was trained on.
    pub dataset: String,
    /// Modalities in mask order, with kinds and shapes (segmentation: `rgb`, `depth` at the
    /// evaluation size).
    pub modalities: Vec<ModalitySpec>,
    /// Class names, in class-index order.
    pub class_names: Vec<String>,
    /// Per modality, the training split's standardisation of vector features (classification).
    pub scalers: Vec<Option<FeatureScaler>>,
    /// The RGB-D preprocessing (segmentation).
    pub rgbd: Option<RgbdPreprocessing>,
    /// How image files become inputs (classification of image-list data: CASIA-SURF, CeFA).
    #[serde(default)]
    pub images: Option<ImagePreprocessing>,
    /// The experiment config of the run (the network is built from its `[model]` /
    /// `[seg_model]`).
    pub config: ExperimentConfig,
    /// The stage's fingerprint (data, model, settings), as in its `meta.json`.
    pub fingerprint: String,
    /// The per-combination test report of this network in its run.
    pub test_report: Option<EvalReport>,
}

/// A deployment bundle: header and weights.
#[derive(Clone, Debug, PartialEq)]
pub struct Bundle {
    /// What the network is and needs.
    pub header: BundleHeader,
    /// The network's weights (burnpack).
    pub weights: Vec<u8>,
}

impl Bundle {
    /// The bundle of method `method`'s network in the run in `store` (its data is loaded to
    /// recover the standardisation and the names).
    pub fn from_run(store: &dyn RunStore, method: Method) -> Result<Self> {
        let record = RunRecord::from_store(store)?;
        let stage = method.slug().to_string();
        let meta = record
            .stages
            .iter()
            .find(|(name, _)| *name == stage)
            .map(|(_, meta)| meta)
            .ok_or_else(|| {
                CoreError::config(
                    "method",
                    format!(
                        "the run {} has no finished `{stage}` stage (it has: {})",
                        store.location("").display(),
                        record
                            .stages
                            .iter()
                            .map(|(n, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            })?;
        let weights = store.read(&format!("{stage}/model.bpk"))?;
        let data = LoadedData::load(&record.config)?;
        let mut images = None;
        let (modalities, scalers, rgbd) = match &data {
            LoadedData::Classification(d) => {
                images = d.source.image_preprocessing();
                (d.source.modalities().to_vec(), d.scalers.clone(), None)
            }
            LoadedData::Segmentation(d) => {
                let src = d.source.source.as_ref();
                let [h, w] = src.eval_size();
                let image = |name: &str, channels| ModalitySpec {
                    name: name.into(),
                    kind: crate::data::ModalityKind::Image {
                        channels,
                        height: h,
                        width: w,
                    },
                };
                (
                    vec![image("rgb", 3), image("depth", 1)],
                    vec![None, None],
                    Some(RgbdPreprocessing::of(src)),
                )
            }
        };
        let mut config = record.config.clone();
        // the weights are in the bundle: never read ImageNet weights to build the network
        config.seg_model.imagenet = None;
        Ok(Bundle {
            header: BundleHeader {
                task: data.task(),
                method: method.label().to_string(),
                stage,
                dataset: data.name(),
                modalities,
                class_names: data.class_names(),
                scalers,
                rgbd,
                images,
                config,
                fingerprint: meta.fingerprint.clone(),
                test_report: record
                    .reports
                    .iter()
                    .find(|r| r.method == method.label())
                    .cloned(),
            },
            weights,
        })
    }

    /// The bundle as bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let header = serde_json::to_vec(&self.header)
            .map_err(|e| CoreError::data("bundle", format!("cannot encode the header: {e}")))?;
        let mut out = Vec::with_capacity(20 + header.len() + self.weights.len());
        out.extend_from_slice(BUNDLE_MAGIC);
        out.extend_from_slice(&BUNDLE_FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&self.weights);
        Ok(out)
    }

    /// Reads a bundle from `bytes`; `origin` (a file name) is named in every error.
    pub fn from_bytes(bytes: &[u8], origin: &str) -> Result<Self> {
        let err = |msg: String| CoreError::data(origin, msg);
        if bytes.len() < 20 || &bytes[..8] != BUNDLE_MAGIC {
            return Err(err(
                "is not an mmanet bundle (write one with `mmanet export`)".into(),
            ));
        }
        let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
        if version > BUNDLE_FORMAT_VERSION {
            return Err(err(format!(
                "is bundle format {version}, from a newer mmanet; this one reads up to format {BUNDLE_FORMAT_VERSION}"
            )));
        }
        if version == 0 {
            return Err(err("has bundle format 0, which does not exist".into()));
        }
        let mut len = [0u8; 8];
        len.copy_from_slice(&bytes[12..20]);
        let len = u64::from_le_bytes(len);
        let end = 20u64
            .checked_add(len)
            .filter(|&e| e <= bytes.len() as u64)
            .ok_or_else(|| {
                err(format!(
                    "is cut short: its header says {len} bytes, the file has {} after it",
                    bytes.len() - 20
                ))
            })? as usize;
        let header: BundleHeader = serde_json::from_slice(&bytes[20..end])
            .map_err(|e| err(format!("has an unreadable header: {e}")))?;
        Ok(Bundle {
            header,
            weights: bytes[end..].to_vec(),
        })
    }

    /// The classification network, on `device`.
    pub fn classifier(&self, device: &Device) -> Result<MultimodalNet> {
        let h = &self.header;
        if h.task != TaskKind::Classification {
            return Err(CoreError::config(
                "model",
                "this bundle segments RGB-D scenes; it is not a classifier",
            ));
        }
        let fresh = MultimodalNet::new(
            &h.modalities,
            h.class_names.len(),
            &h.config.model,
            false,
            device,
        )?;
        self.load_weights(fresh)
    }

    /// The segmentation network, on `device`.
    pub fn segmenter(&self, device: &Device) -> Result<EsaNet> {
        let h = &self.header;
        let Some(rgbd) = &h.rgbd else {
            return Err(CoreError::config(
                "model",
                "this bundle is a classifier; it does not segment RGB-D scenes",
            ));
        };
        let fresh = EsaNet::new(
            &h.config.seg_model,
            h.class_names.len(),
            rgbd.train_size,
            false,
            device,
        )?;
        self.load_weights(fresh)
    }

    fn load_weights<M: Module>(&self, fresh: M) -> Result<M> {
        module_from_bytes(fresh, self.weights.clone()).map_err(|e| {
            CoreError::data(
                "bundle",
                format!("its weights do not fit the network it describes: {e}"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> Bundle {
        Bundle {
            header: BundleHeader {
                task: TaskKind::Classification,
                method: "MMANet".into(),
                stage: "mmanet".into(),
                dataset: "d".into(),
                modalities: vec![],
                class_names: vec!["a".into(), "b".into()],
                scalers: vec![],
                rgbd: None,
                images: None,
                config: ExperimentConfig::from_toml(crate::configs::MFEAT_DEMO, "mfeat-demo.toml")
                    .unwrap(),
                fingerprint: "{}".into(),
                test_report: None,
            },
            weights: vec![1, 2, 3],
        }
    }

    #[test]
    fn a_bundle_survives_bytes() {
        let b = tiny();
        let bytes = b.to_bytes().unwrap();
        assert_eq!(&bytes[..8], BUNDLE_MAGIC);
        assert_eq!(Bundle::from_bytes(&bytes, "m.mmanet").unwrap(), b);
    }

    #[test]
    fn foreign_future_and_cut_files_are_named_errors() {
        let bytes = tiny().to_bytes().unwrap();
        let e = Bundle::from_bytes(b"PK\x03\x04 a zip file, not a bundle", "x.zip")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("x.zip") && e.contains("not an mmanet bundle"),
            "{e}"
        );
        let mut future = bytes.clone();
        future[8..12].copy_from_slice(&(BUNDLE_FORMAT_VERSION + 1).to_le_bytes());
        let e = Bundle::from_bytes(&future, "new.mmanet")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("new.mmanet") && e.contains("newer mmanet"),
            "{e}"
        );
        let e = Bundle::from_bytes(&bytes[..40], "cut.mmanet")
            .unwrap_err()
            .to_string();
        assert!(e.contains("cut.mmanet") && e.contains("cut short"), "{e}");
        let mut garbled = bytes;
        garbled[20] = b'!';
        let e = Bundle::from_bytes(&garbled, "bad.mmanet")
            .unwrap_err()
            .to_string();
        assert!(e.contains("unreadable header"), "{e}");
    }
}
