//! Learning-rate schedules: linear warm-up followed by multi-step decay.

use serde::{Deserialize, Serialize};

/// Which warm-up + multi-step variant to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ScheduleKind {
    /// What the official classification loop really does (spec §1.5, golden
    /// `lr_schedule_cls.json`): epoch 0 trains nothing, epoch 1 runs at lr 0, epochs 2..=W ramp
    /// linearly, and each milestone m takes effect at epoch m + W + 1.
    Official,
    /// The paper's reading: epochs 0..W ramp linearly from base/W to base, then the lr is divided
    /// at each milestone epoch. Every epoch trains.
    #[default]
    Paper,
}

/// Warm-up + multi-step learning-rate schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LrSchedule {
    /// Variant.
    #[serde(default)]
    pub kind: ScheduleKind,
    /// Base learning rate.
    pub base_lr: f64,
    /// Number of warm-up epochs (0 = none).
    #[serde(default)]
    pub warmup_epochs: usize,
    /// Epochs at which the rate is multiplied by `gamma`.
    #[serde(default)]
    pub milestones: Vec<usize>,
    /// Decay factor.
    #[serde(default = "default_gamma")]
    pub gamma: f64,
}

fn default_gamma() -> f64 {
    0.1
}

impl LrSchedule {
    /// Learning rate of the training steps of `epoch` (0-based); `None` when the epoch makes no
    /// update at all (epoch 0 of the official schedule).
    pub fn lr_at(&self, epoch: usize) -> Option<f64> {
        let w = self.warmup_epochs;
        match self.kind {
            ScheduleKind::Official => {
                if epoch == 0 {
                    return None;
                }
                if w > 0 && epoch <= w {
                    return Some(self.base_lr * (epoch - 1) as f64 / w as f64);
                }
                let decays = self.milestones.iter().filter(|&&m| epoch > m + w).count();
                Some(self.base_lr * self.gamma.powi(decays as i32))
            }
            ScheduleKind::Paper => {
                if epoch < w {
                    return Some(self.base_lr * (epoch + 1) as f64 / w as f64);
                }
                let decays = self.milestones.iter().filter(|&&m| epoch >= m).count();
                Some(self.base_lr * self.gamma.powi(decays as i32))
            }
        }
    }
}
