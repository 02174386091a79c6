//! A stage's identity: its name (also its folder in the run) and the fingerprint of
//! everything that determines its model. A finished stage whose fingerprint matches is reused;
//! a checkpoint is resumed only under the fingerprint it was written with.

use crate::config::{ExperimentConfig, Method, StageConfig};
use crate::modality::ModalitySet;
use crate::task::Task;

/// Name and fingerprint of one stage of an experiment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StageId {
    /// Display name and folder name relative to the run folder (`teacher`, `sf-md`, `sf/110`).
    pub name: String,
    /// JSON of the data, the network, the stage settings and what else determines the model.
    pub fingerprint: String,
}

impl StageId {
    /// The teacher, trained on complete data.
    pub fn teacher<T: Task>(cfg: &ExperimentConfig) -> Self {
        StageId {
            name: "teacher".into(),
            fingerprint: fingerprint::<T>(cfg, &cfg.teacher, "teacher"),
        }
    }

    /// SF's model for the combination `c` of `n` modalities, trained with `stage`.
    pub fn sf<T: Task>(
        cfg: &ExperimentConfig,
        stage: &StageConfig,
        c: ModalitySet,
        n: usize,
    ) -> Self {
        let name = format!("sf/{}", c.bit_string(n));
        StageId {
            fingerprint: fingerprint::<T>(cfg, stage, &name),
            name,
        }
    }

    /// The unified student of `method` (SF-MD and the methods built on it). A distilled
    /// student's identity includes MMANet's settings and the teacher's.
    pub fn student<T: Task>(cfg: &ExperimentConfig, method: Method) -> Self {
        let extra = if method.uses_teacher() {
            format!(
                "{}|{}|{}",
                method.slug(),
                serde_json::to_string(&cfg.mmanet).unwrap_or_default(),
                fingerprint::<T>(cfg, &cfg.teacher, "teacher")
            )
        } else {
            method.slug().to_string()
        };
        StageId {
            name: method.slug().to_string(),
            fingerprint: fingerprint::<T>(cfg, &cfg.student, &extra),
        }
    }
}

/// Everything that determines a stage's model: the data, the network, the stage settings, and
/// `extra` (the method, and for distilled students the teacher's identity). The network's part
/// is the task's ([`Task::model_settings`]).
fn fingerprint<T: Task>(cfg: &ExperimentConfig, stage: &StageConfig, extra: &str) -> String {
    serde_json::json!({
        "data": cfg.data,
        "model": T::model_settings(cfg),
        "stage": stage,
        "extra": extra,
    })
    .to_string()
}
