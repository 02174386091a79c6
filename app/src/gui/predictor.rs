//! The inference explorer's worker: holds a run's trained models on the CPU and answers
//! "class probabilities of sample i seen through combination S" off the UI thread.

use mmanet_core::config::{ExperimentConfig, Method};
use mmanet_core::data::{InMemoryDataset, MultimodalSource};
use mmanet_core::device::cpu_device;
use mmanet_core::eval::predict_proba;
use mmanet_core::modality::ModalitySet;
use mmanet_core::model::MultimodalNet;
use mmanet_core::pipeline::{PreparedData, block_on};
use mmanet_core::runs::load_stage_model;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, Sender, channel};

/// A model the explorer shows.
#[derive(Clone, Debug, PartialEq)]
pub struct ExplorerModel {
    /// Display name (`MMANet`, `Teacher (full)`, `SF-MD`).
    pub label: String,
    /// Its stage folder in the run.
    pub stage: String,
    /// Always sees every modality (the teacher).
    pub full_only: bool,
}

/// The models of a run worth showing side by side: the deployment network (MMANet, else the
/// last unified method), SF-MD when trained, and the teacher with every modality.
pub fn explorer_models(cfg: &ExperimentConfig) -> Vec<ExplorerModel> {
    let unified: Vec<Method> = cfg
        .methods
        .iter()
        .copied()
        .filter(|m| *m != Method::Sf)
        .collect();
    let mut models = Vec::new();
    let deployment = unified
        .iter()
        .copied()
        .find(|m| *m == Method::Mmanet)
        .or(unified.last().copied());
    if let Some(d) = deployment {
        models.push(ExplorerModel {
            label: d.label().to_string(),
            stage: d.slug().to_string(),
            full_only: false,
        });
    }
    if deployment != Some(Method::SfMd) && unified.contains(&Method::SfMd) {
        models.push(ExplorerModel {
            label: Method::SfMd.label().to_string(),
            stage: Method::SfMd.slug().to_string(),
            full_only: false,
        });
    }
    models.push(ExplorerModel {
        label: "Teacher (all modalities)".into(),
        stage: "teacher".into(),
        full_only: true,
    });
    models
}

/// A question for the worker.
pub enum PredictorRequest {
    /// Load these models of a run (replaces what was loaded).
    Load {
        /// The run folder.
        run_dir: PathBuf,
        /// Its config.
        cfg: Box<ExperimentConfig>,
        /// Its data (same split as training).
        data: PreparedData,
        /// What to load.
        models: Vec<ExplorerModel>,
    },
    /// Predict one sample through one combination.
    Predict {
        /// Sample index in the dataset.
        sample: usize,
        /// Modalities present.
        set: ModalitySet,
    },
    /// Predict a sample read from files (answered as sample [`LOADED_SAMPLE`]).
    PredictLoaded {
        /// Its modalities, preprocessed as the dataset's samples.
        sample: Arc<InMemoryDataset>,
        /// Modalities present.
        set: ModalitySet,
    },
}

/// The sample index the explorer uses for a sample read from files.
pub const LOADED_SAMPLE: usize = usize::MAX;

/// One model's answer.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelPrediction {
    /// Model label.
    pub label: String,
    /// The combination it saw.
    pub set: ModalitySet,
    /// Class probabilities.
    pub probs: Vec<f32>,
}

/// What the worker answers.
#[derive(Clone, Debug, PartialEq)]
pub enum PredictorReply {
    /// Models loaded (their labels), or why not.
    Loaded(Result<Vec<String>, String>),
    /// Probabilities for a request, or why not.
    Prediction {
        /// Sample index.
        sample: usize,
        /// Requested combination.
        set: ModalitySet,
        /// One entry per loaded model.
        result: Result<Vec<ModelPrediction>, String>,
    },
}

/// Handle to the worker thread.
pub struct Predictor {
    requests: Sender<PredictorRequest>,
    replies: Receiver<PredictorReply>,
}

impl Predictor {
    /// Starts the worker; `wake` is called after each reply.
    pub fn start(wake: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        let (requests, rx) = channel::<PredictorRequest>();
        let (tx, replies) = channel();
        std::thread::Builder::new()
            .name("mmanet-explorer".into())
            .spawn(move || worker(rx, tx, wake))?;
        Ok(Predictor { requests, replies })
    }

    /// Queues a request (a dead worker is reported by the next [`Predictor::poll`]).
    pub fn send(&self, request: PredictorRequest) {
        let _ = self.requests.send(request);
    }

    /// Replies since the last call.
    pub fn poll(&self) -> Vec<PredictorReply> {
        self.replies.try_iter().collect()
    }
}

struct Loaded {
    data: PreparedData,
    models: Vec<(ExplorerModel, MultimodalNet)>,
}

fn worker(rx: Receiver<PredictorRequest>, tx: Sender<PredictorReply>, wake: impl Fn()) {
    let device = cpu_device().device;
    let mut loaded: Option<Loaded> = None;
    while let Ok(first) = rx.recv() {
        // Only the newest prediction matters when the user clicks faster than we answer.
        let mut pending = vec![first];
        pending.extend(rx.try_iter());
        let last_predict = pending.iter().rposition(|r| {
            matches!(
                r,
                PredictorRequest::Predict { .. } | PredictorRequest::PredictLoaded { .. }
            )
        });
        for (k, request) in pending.into_iter().enumerate() {
            let reply = match request {
                PredictorRequest::Load {
                    run_dir,
                    cfg,
                    data,
                    models,
                } => {
                    let result: Result<Vec<(ExplorerModel, MultimodalNet)>, String> = models
                        .into_iter()
                        .map(|m| {
                            load_stage_model(&cfg, &data, &device, &run_dir, &m.stage)
                                .map(|net| (m, net))
                                .map_err(|e| e.to_string())
                        })
                        .collect();
                    match result {
                        Ok(models) => {
                            let labels = models.iter().map(|(m, _)| m.label.clone()).collect();
                            loaded = Some(Loaded { data, models });
                            PredictorReply::Loaded(Ok(labels))
                        }
                        Err(e) => {
                            loaded = None;
                            PredictorReply::Loaded(Err(e))
                        }
                    }
                }
                PredictorRequest::Predict { sample, set } => {
                    if Some(k) != last_predict {
                        continue;
                    }
                    let result = match &loaded {
                        None => Err("no trained models loaded yet".to_string()),
                        Some(l) => predict_all(l, l.data.source.as_ref(), sample, set, &device),
                    };
                    PredictorReply::Prediction {
                        sample,
                        set,
                        result,
                    }
                }
                PredictorRequest::PredictLoaded { sample, set } => {
                    if Some(k) != last_predict {
                        continue;
                    }
                    let result = match &loaded {
                        None => Err("no trained models loaded yet".to_string()),
                        Some(l) => predict_all(l, sample.as_ref(), 0, set, &device),
                    };
                    PredictorReply::Prediction {
                        sample: LOADED_SAMPLE,
                        set,
                        result,
                    }
                }
            };
            if tx.send(reply).is_err() {
                return;
            }
            wake();
        }
    }
}

fn predict_all(
    loaded: &Loaded,
    source: &dyn MultimodalSource,
    sample: usize,
    set: ModalitySet,
    device: &burn::prelude::Device,
) -> Result<Vec<ModelPrediction>, String> {
    if set.is_empty() {
        return Err("switch on at least one modality".into());
    }
    if sample >= source.len() {
        return Err(format!("sample {sample} is not in the data"));
    }
    let n = source.modalities().len();
    loaded
        .models
        .iter()
        .map(|(m, net)| {
            let seen = if m.full_only {
                ModalitySet::full(n)
            } else {
                set
            };
            let probs = block_on(predict_proba(net, source, &[sample], seen, device))
                .map_err(|e| e.to_string())?;
            Ok(ModelPrediction {
                label: m.label.clone(),
                set: seen,
                probs: probs.into_iter().next().unwrap_or_default(),
            })
        })
        .collect()
}
