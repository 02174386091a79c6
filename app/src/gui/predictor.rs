//! The inference explorer's worker: holds a run's trained models on the CPU and answers
//! "class probabilities of sample i seen through combination S" off the UI thread.

use mmanet_core::config::{ExperimentConfig, Method};
use mmanet_core::data::{InMemoryDataset, MultimodalSource};
use mmanet_core::device::cpu_device;
use mmanet_core::eval::predict_proba;
use mmanet_core::modality::ModalitySet;
use mmanet_core::model::MultimodalNet;
use mmanet_core::pipeline::{PreparedData, block_on};
use mmanet_core::runs::load_stage_model_from;
use mmanet_core::store::RunStore;
use std::sync::Arc;
#[cfg(not(target_family = "wasm"))]
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
        /// The run's files.
        store: Box<dyn RunStore + Send>,
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

/// Handle to the worker (a thread natively; in the browser, requests are answered in place:
/// the models are small and run on the CPU backend, which answers at once).
pub struct Predictor {
    #[cfg(not(target_family = "wasm"))]
    requests: Sender<PredictorRequest>,
    #[cfg(not(target_family = "wasm"))]
    replies: Receiver<PredictorReply>,
    #[cfg(target_family = "wasm")]
    state: std::cell::RefCell<(Models, Vec<PredictorReply>)>,
}

impl Predictor {
    /// Starts the worker; `wake` is called after every reply.
    #[cfg(not(target_family = "wasm"))]
    pub fn start(wake: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        let (requests, rx) = channel::<PredictorRequest>();
        let (tx, replies) = channel();
        std::thread::Builder::new()
            .name("mmanet-explorer".into())
            .spawn(move || worker(rx, tx, wake))?;
        Ok(Predictor { requests, replies })
    }

    /// The in-place predictor of the browser.
    #[cfg(target_family = "wasm")]
    pub fn start(_wake: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        Ok(Predictor {
            state: Default::default(),
        })
    }

    /// Queues a request.
    pub fn send(&self, request: PredictorRequest) {
        #[cfg(not(target_family = "wasm"))]
        let _ = self.requests.send(request);
        #[cfg(target_family = "wasm")]
        {
            let mut state = self.state.borrow_mut();
            let (models, replies) = &mut *state;
            replies.push(models.answer(request));
        }
    }

    /// Every reply since the last call.
    pub fn poll(&self) -> Vec<PredictorReply> {
        #[cfg(not(target_family = "wasm"))]
        return self.replies.try_iter().collect();
        #[cfg(target_family = "wasm")]
        return std::mem::take(&mut self.state.borrow_mut().1);
    }
}

struct Loaded {
    data: PreparedData,
    models: Vec<(ExplorerModel, MultimodalNet)>,
}

/// The loaded models and the answers to requests.
struct Models {
    device: burn::prelude::Device,
    loaded: Option<Loaded>,
}

impl Default for Models {
    fn default() -> Self {
        Models {
            device: cpu_device().device,
            loaded: None,
        }
    }
}

impl Models {
    fn answer(&mut self, request: PredictorRequest) -> PredictorReply {
        let device = &self.device;
        match request {
            PredictorRequest::Load {
                store,
                cfg,
                data,
                models,
            } => {
                let result: Result<Vec<(ExplorerModel, MultimodalNet)>, String> = models
                    .into_iter()
                    .map(|m| {
                        load_stage_model_from(&cfg, &data, device, store.as_ref(), &m.stage)
                            .map(|net| (m, net))
                            .map_err(|e| e.to_string())
                    })
                    .collect();
                match result {
                    Ok(models) => {
                        let labels = models.iter().map(|(m, _)| m.label.clone()).collect();
                        self.loaded = Some(Loaded { data, models });
                        PredictorReply::Loaded(Ok(labels))
                    }
                    Err(e) => {
                        self.loaded = None;
                        PredictorReply::Loaded(Err(e))
                    }
                }
            }
            PredictorRequest::Predict { sample, set } => {
                let result = match &self.loaded {
                    None => Err("no trained models loaded yet".to_string()),
                    Some(l) => predict_all(l, l.data.source.as_ref(), sample, set, device),
                };
                PredictorReply::Prediction {
                    sample,
                    set,
                    result,
                }
            }
            PredictorRequest::PredictLoaded { sample, set } => {
                let result = match &self.loaded {
                    None => Err("no trained models loaded yet".to_string()),
                    Some(l) => predict_all(l, sample.as_ref(), 0, set, device),
                };
                PredictorReply::Prediction {
                    sample: LOADED_SAMPLE,
                    set,
                    result,
                }
            }
        }
    }
}

#[cfg(not(target_family = "wasm"))]
fn worker(rx: Receiver<PredictorRequest>, tx: Sender<PredictorReply>, wake: impl Fn()) {
    let mut models = Models::default();
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
            let is_predict = !matches!(request, PredictorRequest::Load { .. });
            if is_predict && Some(k) != last_predict {
                continue;
            }
            if tx.send(models.answer(request)).is_err() {
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
