//! The inference explorer's worker: holds a run's trained models on the CPU and answers
//! "class probabilities of sample i seen through combination S" (classification) or "the
//! label map of scene i seen through S" (segmentation) off the UI thread.

use mmanet_core::bundle::Bundle;
use mmanet_core::config::{ExperimentConfig, Method};
use mmanet_core::data::rgbd::{Label, RgbdPreprocessing, RgbdScene, SegSource};
use mmanet_core::data::{InMemoryDataset, MultimodalSource};
use mmanet_core::device::cpu_device;
use mmanet_core::eval::predict_proba;
use mmanet_core::experiment::{LoadedData, block_on};
use mmanet_core::modality::ModalitySet;
use mmanet_core::model::MultimodalNet;
use mmanet_core::model::esanet::EsaNet;
use mmanet_core::runs::load_task_stage_model;
use mmanet_core::store::RunStore;
use mmanet_core::task::segmentation::{LabelMap, SceneScores, predict_scene, scene_scores};
use mmanet_core::task::{Classification, Segmentation, Task};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
#[cfg(not(target_family = "wasm"))]
use std::sync::mpsc::{Receiver, Sender, channel};

/// A model the explorer shows.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
        data: LoadedData,
        /// What to load.
        models: Vec<ExplorerModel>,
    },
    /// Load a deployment bundle's network, over its dataset (replaces what was loaded).
    LoadBundle {
        /// The bundle.
        bundle: Arc<Bundle>,
        /// Its dataset (same split as its training).
        data: LoadedData,
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
    /// Segment an RGB-D scene read from files (answered as sample [`LOADED_SAMPLE`]).
    PredictScene {
        /// The raw scene (labels all void when unknown).
        scene: Arc<RgbdScene>,
        /// Modalities present.
        set: ModalitySet,
    },
}

/// The sample index the explorer uses for a sample read from files.
pub const LOADED_SAMPLE: usize = usize::MAX;

/// One model's answer.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModelPrediction {
    /// Model label.
    pub label: String,
    /// The combination it saw.
    pub set: ModalitySet,
    /// What it predicted.
    pub output: ModelOutput,
}

impl ModelPrediction {
    /// Class probabilities (classification).
    pub fn probs(&self) -> Option<&[f32]> {
        match &self.output {
            ModelOutput::Probabilities(p) => Some(p),
            ModelOutput::Segmentation(_) => None,
        }
    }

    /// The segmentation (segmentation).
    pub fn segmentation(&self) -> Option<&SegPrediction> {
        match &self.output {
            ModelOutput::Segmentation(s) => Some(s),
            ModelOutput::Probabilities(_) => None,
        }
    }
}

/// What a model predicted, per task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ModelOutput {
    /// Class probabilities of the sample.
    Probabilities(Vec<f32>),
    /// A scene's label map.
    Segmentation(SegPrediction),
}

/// One model's segmentation of a scene.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegPrediction {
    /// The label map through the requested combination.
    pub map: LabelMap,
    /// The label map with every modality, when the combination lacks one (for the pixels
    /// that became wrong when a modality was removed).
    pub full: Option<LabelMap>,
    /// Scores of `map` against the ground truth, when the scene has labels.
    pub scores: Option<SceneScores>,
    /// The ground truth (0 = void), shared by the models of one answer.
    pub truth: Arc<Vec<Label>>,
}

/// What the worker answers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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

/// The explorer's questions as they travel to the page's compute worker, which holds the
/// models there (the worker has its own copy of the page's runs, and loads the data a config
/// names itself).
#[derive(Debug, Serialize, Deserialize)]
pub enum ExplorerRequest {
    /// Load these models of the page's run `run`.
    LoadRun {
        /// The run's name.
        run: String,
        /// Its config.
        cfg: Box<ExperimentConfig>,
        /// What to load.
        models: Vec<ExplorerModel>,
    },
    /// Load the deployment bundle whose bytes travel beside the request.
    LoadBundle {
        /// Its name, for messages.
        name: String,
    },
    /// Predict one sample of the loaded data through one combination.
    Predict {
        /// Sample index in the dataset.
        sample: usize,
        /// Modalities present.
        set: ModalitySet,
    },
}

/// Handle to the worker: a thread natively; in the browser, the page's compute worker
/// ([`super::web_worker`]), which answers while the page keeps drawing.
pub struct Predictor {
    #[cfg(not(target_family = "wasm"))]
    requests: Sender<PredictorRequest>,
    #[cfg(not(target_family = "wasm"))]
    replies: Receiver<PredictorReply>,
    /// Answers given in the page (requests the compute worker cannot take).
    #[cfg(target_family = "wasm")]
    local: std::cell::RefCell<Vec<PredictorReply>>,
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

    /// The explorer's side of the page's compute worker; `wake` is called after every reply.
    #[cfg(target_family = "wasm")]
    pub fn start(wake: impl Fn() + Send + 'static) -> std::io::Result<Self> {
        super::web_worker::set_explorer_wake(Box::new(wake));
        Ok(Predictor {
            local: Default::default(),
        })
    }

    /// Queues a request.
    #[cfg(not(target_family = "wasm"))]
    pub fn send(&self, request: PredictorRequest) {
        let _ = self.requests.send(request);
    }

    /// Sends a request to the page's compute worker.
    #[cfg(target_family = "wasm")]
    pub fn send(&self, request: PredictorRequest) {
        let wire = match request {
            PredictorRequest::Load { cfg, models, .. } => Ok((
                ExplorerRequest::LoadRun {
                    run: cfg.name.clone(),
                    cfg,
                    models,
                },
                None,
            )),
            PredictorRequest::LoadBundle { bundle, .. } => bundle
                .to_bytes()
                .map(|bytes| {
                    let name = bundle_label(&bundle);
                    (ExplorerRequest::LoadBundle { name }, Some(bytes))
                })
                .map_err(|e| PredictorReply::Loaded(Err(e.to_string()))),
            PredictorRequest::Predict { sample, set } => {
                Ok((ExplorerRequest::Predict { sample, set }, None))
            }
            // a page cannot read sample files (no file dialogs there)
            PredictorRequest::PredictLoaded { set, .. }
            | PredictorRequest::PredictScene { set, .. } => Err(PredictorReply::Prediction {
                sample: LOADED_SAMPLE,
                set,
                result: Err("a page cannot read sample files".into()),
            }),
        };
        match wire {
            Ok((request, bytes)) => super::web_worker::send_explorer(request, bytes),
            Err(reply) => self.local.borrow_mut().push(reply),
        }
    }

    /// Every reply since the last call.
    pub fn poll(&self) -> Vec<PredictorReply> {
        #[cfg(not(target_family = "wasm"))]
        return self.replies.try_iter().collect();
        #[cfg(target_family = "wasm")]
        {
            let mut replies = std::mem::take(&mut *self.local.borrow_mut());
            replies.extend(super::web_worker::explorer_replies());
            replies
        }
    }
}

/// The explorer's models in the page's compute worker, and the data they answer on.
#[cfg(target_family = "wasm")]
#[derive(Default)]
pub(crate) struct ExplorerInWorker {
    models: Models,
    /// The last data loaded, by its data config (as JSON).
    data: Option<(String, LoadedData)>,
}

#[cfg(target_family = "wasm")]
impl ExplorerInWorker {
    /// The data `cfg` names, loaded once for a run of requests on the same data.
    fn data_of(&mut self, cfg: &ExperimentConfig) -> Result<LoadedData, String> {
        let key = serde_json::to_string(&cfg.data).unwrap_or_default();
        if let Some((k, data)) = &self.data
            && *k == key
        {
            return Ok(data.clone());
        }
        let data = LoadedData::load(cfg).map_err(|e| format!("cannot load the data: {e}"))?;
        self.data = Some((key, data.clone()));
        Ok(data)
    }

    /// Answers `request` (`bytes`: a bundle's, beside a [`ExplorerRequest::LoadBundle`]).
    pub(crate) fn answer(
        &mut self,
        request: ExplorerRequest,
        bytes: Option<Vec<u8>>,
    ) -> PredictorReply {
        let request = match request {
            ExplorerRequest::LoadRun { run, cfg, models } => {
                let store = match super::platform::run_store(&run) {
                    Some(s) => s,
                    None => {
                        return PredictorReply::Loaded(Err(format!(
                            "run {run} is not in the compute worker"
                        )));
                    }
                };
                match self.data_of(&cfg) {
                    Ok(data) => PredictorRequest::Load {
                        store: Box::new(store),
                        cfg,
                        data,
                        models,
                    },
                    Err(e) => return PredictorReply::Loaded(Err(e)),
                }
            }
            ExplorerRequest::LoadBundle { name } => {
                let bundle = bytes
                    .ok_or_else(|| format!("{name}: no bytes came with the model"))
                    .and_then(|b| Bundle::from_bytes(&b, &name).map_err(|e| e.to_string()));
                let bundle = match bundle {
                    Ok(b) => b,
                    Err(e) => return PredictorReply::Loaded(Err(e)),
                };
                match self.data_of(&bundle.header.config) {
                    Ok(data) => PredictorRequest::LoadBundle {
                        bundle: Arc::new(bundle),
                        data,
                    },
                    Err(e) => return PredictorReply::Loaded(Err(e)),
                }
            }
            ExplorerRequest::Predict { sample, set } => PredictorRequest::Predict { sample, set },
        };
        self.models.answer(request)
    }
}

/// A run's loaded models with their data.
enum Loaded {
    Classification {
        data: mmanet_core::experiment::PreparedData,
        models: Vec<(ExplorerModel, MultimodalNet)>,
    },
    Segmentation {
        source: Arc<dyn SegSource>,
        models: Vec<(ExplorerModel, EsaNet)>,
    },
}

/// Loads `models` of task `T` from `store`.
fn load_models<T: Task>(
    cfg: &ExperimentConfig,
    source: &T::Source,
    store: &dyn RunStore,
    models: Vec<ExplorerModel>,
    device: &burn::prelude::Device,
) -> Result<Vec<(ExplorerModel, T::Net)>, String> {
    models
        .into_iter()
        .map(|m| {
            load_task_stage_model::<T>(cfg, source, device, store, &m.stage)
                .map(|net| (m, net))
                .map_err(|e| e.to_string())
        })
        .collect()
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

/// How the explorer names a bundle's network.
pub fn bundle_label(bundle: &Bundle) -> String {
    format!("{} (bundle)", bundle.header.method)
}

impl Models {
    /// Keeps what was loaded and answers with the models' labels, or forgets all on failure.
    fn install(&mut self, loaded: Result<Loaded, String>) -> PredictorReply {
        match loaded {
            Ok(loaded) => {
                let labels = match &loaded {
                    Loaded::Classification { models, .. } => {
                        models.iter().map(|(m, _)| m.label.clone()).collect()
                    }
                    Loaded::Segmentation { models, .. } => {
                        models.iter().map(|(m, _)| m.label.clone()).collect()
                    }
                };
                self.loaded = Some(loaded);
                PredictorReply::Loaded(Ok(labels))
            }
            Err(e) => {
                self.loaded = None;
                PredictorReply::Loaded(Err(e))
            }
        }
    }

    fn answer(&mut self, request: PredictorRequest) -> PredictorReply {
        let device = &self.device;
        match request {
            PredictorRequest::Load {
                store,
                cfg,
                data,
                models,
            } => {
                let store = store.as_ref();
                let loaded = match data {
                    LoadedData::Classification(data) => load_models::<Classification>(
                        &cfg,
                        data.source.as_ref(),
                        store,
                        models,
                        device,
                    )
                    .map(|models| Loaded::Classification { data, models }),
                    LoadedData::Segmentation(data) => {
                        load_models::<Segmentation>(&cfg, &data.source, store, models, device).map(
                            |models| Loaded::Segmentation {
                                source: data.source.source.clone(),
                                models,
                            },
                        )
                    }
                };
                self.install(loaded)
            }
            PredictorRequest::LoadBundle { bundle, data } => {
                let model = ExplorerModel {
                    label: bundle_label(&bundle),
                    stage: bundle.header.stage.clone(),
                    full_only: false,
                };
                let loaded = match data {
                    LoadedData::Classification(data) => {
                        bundle.classifier(device).map(|net| Loaded::Classification {
                            data,
                            models: vec![(model, net)],
                        })
                    }
                    LoadedData::Segmentation(data) => {
                        bundle.segmenter(device).map(|net| Loaded::Segmentation {
                            source: data.source.source.clone(),
                            models: vec![(model, net)],
                        })
                    }
                };
                self.install(loaded.map_err(|e| e.to_string()))
            }
            PredictorRequest::Predict { sample, set } => {
                let result = match &self.loaded {
                    None => Err("no trained models loaded yet".to_string()),
                    Some(Loaded::Classification { data, models }) => {
                        predict_all(models, data.source.as_ref(), sample, set, device)
                    }
                    Some(Loaded::Segmentation { source, models }) => {
                        if sample >= source.len() {
                            Err(format!("scene {sample} is not in the data"))
                        } else {
                            source
                                .scene(sample)
                                .map_err(|e| e.to_string())
                                .and_then(|scene| {
                                    segment_all(models, source.as_ref(), &scene, set, device)
                                })
                        }
                    }
                };
                PredictorReply::Prediction {
                    sample,
                    set,
                    result,
                }
            }
            PredictorRequest::PredictLoaded { sample, set } => {
                let result = match &self.loaded {
                    Some(Loaded::Classification { models, .. }) => {
                        predict_all(models, sample.as_ref(), 0, set, device)
                    }
                    Some(Loaded::Segmentation { .. }) => {
                        Err("the loaded models segment RGB-D scenes".to_string())
                    }
                    None => Err("no trained models loaded yet".to_string()),
                };
                PredictorReply::Prediction {
                    sample: LOADED_SAMPLE,
                    set,
                    result,
                }
            }
            PredictorRequest::PredictScene { scene, set } => {
                let result = match &self.loaded {
                    Some(Loaded::Segmentation { source, models }) => {
                        segment_all(models, source.as_ref(), &scene, set, device)
                    }
                    Some(Loaded::Classification { .. }) => {
                        Err("the loaded models classify samples, not RGB-D scenes".to_string())
                    }
                    None => Err("no trained models loaded yet".to_string()),
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
                PredictorRequest::Predict { .. }
                    | PredictorRequest::PredictLoaded { .. }
                    | PredictorRequest::PredictScene { .. }
            )
        });
        for (k, request) in pending.into_iter().enumerate() {
            let is_predict = !matches!(
                request,
                PredictorRequest::Load { .. } | PredictorRequest::LoadBundle { .. }
            );
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
    models: &[(ExplorerModel, MultimodalNet)],
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
    models
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
                output: ModelOutput::Probabilities(probs.into_iter().next().unwrap_or_default()),
            })
        })
        .collect()
}

/// Every model's label map of `scene` through `set` (the teacher through both modalities),
/// with the full-modality map beside it when `set` lacks one, scored when the scene has labels.
fn segment_all(
    models: &[(ExplorerModel, EsaNet)],
    source: &dyn SegSource,
    scene: &RgbdScene,
    set: ModalitySet,
    device: &burn::prelude::Device,
) -> Result<Vec<ModelPrediction>, String> {
    if set.is_empty() {
        return Err("switch on at least one modality".into());
    }
    let full_set = ModalitySet::full(2);
    let labelled = scene.labels.iter().any(|&l| l > 0);
    let truth = Arc::new(scene.labels.clone());
    let classes = source.num_classes();
    let prep = RgbdPreprocessing::of(source);
    let segment = |net: &EsaNet, s: ModalitySet| {
        block_on(predict_scene(net, &prep, scene, s, device)).map_err(|e| e.to_string())
    };
    models
        .iter()
        .map(|(m, net)| {
            let seen = if m.full_only { full_set } else { set };
            let map = segment(net, seen)?;
            let full = if seen == full_set {
                None
            } else {
                Some(segment(net, full_set)?)
            };
            let scores = labelled.then(|| scene_scores(&map, &scene.labels, classes));
            Ok(ModelPrediction {
                label: m.label.clone(),
                set: seen,
                output: ModelOutput::Segmentation(SegPrediction {
                    map,
                    full,
                    scores,
                    truth: truth.clone(),
                }),
            })
        })
        .collect()
}
