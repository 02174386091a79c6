//! The messages between the page and its compute worker — a Web Worker running the page's own
//! module, where training runs so that the page's thread only draws.
//!
//! Requests go from the page to the worker, replies come back; both travel as JSON text
//! ([`encode`], [`decode`]). A run's files travel beside them as bytes (see
//! `web_worker`), since JSON would inflate checkpoints fourfold. The training events are the
//! desktop worker thread's own [`JobEvent`]s, so the panels apply the same events either way.

use super::predictor::{ExplorerRequest, PredictorReply};
use super::training_job::JobEvent;
use mmanet_core::config::ExperimentConfig;
use mmanet_core::device::DeviceChoice;
use serde::{Deserialize, Serialize};

/// What the page asks of its compute worker.
#[derive(Debug, Serialize, Deserialize)]
pub enum WorkerRequest {
    /// Which device `choice` resolves to (the worker looks for the WebGPU adapter once).
    Probe(DeviceChoice),
    /// Train `cfg` (the worker loads the data the config names itself).
    Train {
        /// The page's number for this run (replies and later requests carry it).
        job: u64,
        /// The run's config, its name included.
        cfg: Box<ExperimentConfig>,
        /// Where to train.
        device: DeviceChoice,
        /// Continue the stopped run of the same name.
        resume: bool,
    },
    /// Pause or continue run `job` before its next step.
    Pause {
        /// The run.
        job: u64,
        /// Pause (`true`) or continue.
        paused: bool,
    },
    /// Stop run `job` before its next step.
    Stop {
        /// The run.
        job: u64,
    },
    /// A question for the explorer's models, which live in the worker (a bundle's bytes
    /// travel beside it).
    Explorer(ExplorerRequest),
}

/// What the compute worker answers.
#[derive(Debug, Serialize, Deserialize)]
pub enum WorkerReply {
    /// The worker listens (the page queues requests until then).
    Ready,
    /// What a [`WorkerRequest::Probe`] found.
    Probed {
        /// The choice asked about.
        choice: DeviceChoice,
        /// The device it resolves to, or why it is unavailable.
        description: String,
    },
    /// A training event of run `job`, as the desktop's training thread reports it.
    Job {
        /// The run.
        job: u64,
        /// What happened.
        event: JobEvent,
    },
    /// The explorer's answer.
    Explorer(PredictorReply),
    /// The worker panicked; its message. It serves nothing more (the page starts a new one).
    Crashed(String),
}

/// A message as the text that travels.
pub fn encode<T: Serialize>(message: &T) -> String {
    // every field is a plain value (strings, numbers, enums), which serialize without fail
    serde_json::to_string(message).unwrap_or_else(|e| {
        serde_json::to_string(&WorkerReply::Crashed(format!(
            "cannot encode a message: {e}"
        )))
        .unwrap_or_default()
    })
}

/// A message from its text.
pub fn decode<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("a malformed worker message ({e}): {text:.200}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmanet_core::modality::ModalitySet;
    use mmanet_core::train::{EpochSummary, StepReport, TrainEvent};
    use std::path::PathBuf;

    /// Every event the panels apply survives the trip to the page unchanged.
    #[test]
    fn job_events_round_trip_through_the_worker_message() {
        let step = StepReport {
            epoch: 1,
            batch: 2,
            batches: 9,
            lr: 0.01,
            momentum: Some(0.9),
            losses: vec![("ce".into(), 1.5), ("mad".into(), 0.25)],
            total: 2.0,
            accuracy: 0.5,
            dropped_terms: vec!["mad".into()],
        };
        let summary: EpochSummary = serde_json::from_value(serde_json::json!({
            "epoch": 1, "lr": null, "losses": [["ce", 1.25]], "train_accuracy": 0.75,
            "val_accuracy": [], "val_score": 81.5, "val_acer": 3.5, "is_best": true
        }))
        .expect("an epoch summary");
        let summary = EpochSummary {
            val_accuracy: vec![(ModalitySet::from_mask(&[true, false, true]), 81.5)],
            ..summary
        };
        let events = vec![
            JobEvent::Device("cpu".into()),
            JobEvent::RunsOn("web worker".into()),
            JobEvent::Timing(
                serde_json::from_value(serde_json::json!({
                    "phases": [{"phase": "steps", "seconds": 1.5, "count": 3}],
                    "total_s": 2.0, "steps": 3, "step_median_ms": 500.0,
                    "slow_step_excess_s": 0.0
                }))
                .expect("a timing report"),
            ),
            JobEvent::Message("resumed".into()),
            JobEvent::StageStarted {
                stage: "mmanet".into(),
                epochs: 3,
                batches: 9,
                resumed: 1,
            },
            JobEvent::Train {
                stage: "mmanet".into(),
                event: TrainEvent::Step(step),
            },
            JobEvent::Train {
                stage: "mmanet".into(),
                event: TrainEvent::Epoch(summary),
            },
            JobEvent::Train {
                stage: "mmanet".into(),
                event: TrainEvent::Finished {
                    best_epoch: 2,
                    best_score: 88.25,
                },
            },
            JobEvent::Finished(Ok(PathBuf::from("memory:mfeat-1"))),
            JobEvent::Finished(Err("stopped by the user".into())),
        ];
        for event in events {
            let text = encode(&WorkerReply::Job {
                job: 7,
                event: event.clone(),
            });
            match decode::<WorkerReply>(&text) {
                Ok(WorkerReply::Job { job, event: back }) => {
                    assert_eq!(job, 7);
                    assert_eq!(back, event, "{text}");
                }
                other => panic!("{text} came back as {other:?}"),
            }
        }
    }

    /// A training request carries the whole config: the worker trains what the page set.
    #[test]
    fn train_requests_carry_the_config_unchanged() {
        let dir = std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../configs"));
        let mut configs = 0;
        for entry in std::fs::read_dir(dir).expect("the configs folder") {
            let path = entry.expect("a config").path();
            let name = path
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            // dataset manifests and the crate's own file are not experiment configs
            if !name.ends_with(".toml") || name.ends_with("-manifest.toml") || name == "Cargo.toml"
            {
                continue;
            }
            let cfg = ExperimentConfig::load(&path).expect("a shipped config");
            assert_train_request_round_trips(cfg);
            configs += 1;
        }
        assert!(configs >= 8, "only {configs} configs");
        for request in [
            WorkerRequest::Probe(DeviceChoice::Wgpu),
            WorkerRequest::Pause {
                job: 2,
                paused: true,
            },
            WorkerRequest::Stop { job: 2 },
        ] {
            let text = encode(&request);
            let back: WorkerRequest = decode(&text).expect("a request");
            assert_eq!(format!("{back:?}"), format!("{request:?}"));
        }
    }

    fn assert_train_request_round_trips(cfg: ExperimentConfig) {
        let text = encode(&WorkerRequest::Train {
            job: 3,
            cfg: Box::new(cfg.clone()),
            device: DeviceChoice::Auto,
            resume: true,
        });
        match decode::<WorkerRequest>(&text) {
            Ok(WorkerRequest::Train {
                job,
                cfg: back,
                device,
                resume,
            }) => {
                assert_eq!(job, 3);
                assert_eq!(*back, cfg);
                assert_eq!(device, DeviceChoice::Auto);
                assert!(resume);
            }
            other => panic!("{text} came back as {other:?}"),
        }
    }

    /// The explorer's questions and answers (a label map with its scores and ground truth
    /// included) survive the trip.
    #[test]
    fn explorer_messages_round_trip() {
        use super::super::predictor::{ExplorerModel, ModelOutput, ModelPrediction, SegPrediction};
        use mmanet_core::task::segmentation::{LabelMap, SceneScores};
        let set = ModalitySet::from_mask(&[true, false]);
        let map = LabelMap {
            height: 2,
            width: 3,
            classes: vec![0, 1, 2, 2, 1, 0],
        };
        let replies = vec![
            PredictorReply::Loaded(Ok(vec!["MMANet".into(), "Teacher (all modalities)".into()])),
            PredictorReply::Loaded(Err("run x is not in the compute worker".into())),
            PredictorReply::Prediction {
                sample: 4,
                set,
                result: Ok(vec![
                    ModelPrediction {
                        label: "MMANet".into(),
                        set,
                        output: ModelOutput::Probabilities(vec![0.25, 0.75]),
                    },
                    ModelPrediction {
                        label: "SF-MD".into(),
                        set,
                        output: ModelOutput::Segmentation(SegPrediction {
                            map: map.clone(),
                            full: Some(map),
                            scores: Some(SceneScores {
                                miou: 0.5,
                                pixel_accuracy: 0.625,
                            }),
                            truth: std::sync::Arc::new(vec![0, 1, 2, 3, 2, 1]),
                        }),
                    },
                ]),
            },
        ];
        for reply in replies {
            let text = encode(&WorkerReply::Explorer(reply.clone()));
            match decode::<WorkerReply>(&text) {
                Ok(WorkerReply::Explorer(back)) => assert_eq!(back, reply, "{text}"),
                other => panic!("{text} came back as {other:?}"),
            }
        }
        let request = WorkerRequest::Explorer(ExplorerRequest::LoadRun {
            run: "mfeat-1".into(),
            cfg: Box::new(
                ExperimentConfig::load(std::path::Path::new(concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/../configs/mfeat-demo.toml"
                )))
                .expect("the demo config"),
            ),
            models: vec![ExplorerModel {
                label: "MMANet".into(),
                stage: "mmanet".into(),
                full_only: false,
            }],
        });
        let text = encode(&request);
        let back: WorkerRequest = decode(&text).expect("a request");
        assert_eq!(format!("{back:?}"), format!("{request:?}"));
    }

    /// A message that is not one names itself instead of panicking.
    #[test]
    fn malformed_messages_are_errors() {
        let e = decode::<WorkerReply>("{\"Job\": {\"job\": 3}}").expect_err("not an event");
        assert!(e.contains("malformed worker message"), "{e}");
    }
}
