//! Learning-rate schedules, stepped once per epoch: linear warm-up followed by multi-step decay
//! (classification), or PyTorch's one-cycle policy with momentum cycling (segmentation).

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
    /// PyTorch's `OneCycleLR(total_steps = epochs, div_factor 25, pct_start 0.1, cos,
    /// final_div_factor 1e4)` stepped once per epoch, cycling SGD's momentum (Adam's β₁) from
    /// 0.95 down to 0.85 and back — the official segmentation loop (golden
    /// `lr_schedule_seg.json`).
    OneCycle,
}

/// One-cycle constants of the official segmentation recipe.
const ONE_CYCLE_DIV: f64 = 25.0;
const ONE_CYCLE_FINAL_DIV: f64 = 1e4;
const ONE_CYCLE_PCT_START: f64 = 0.1;
const ONE_CYCLE_MOMENTUM: (f64, f64) = (0.85, 0.95);

/// PyTorch's cosine annealing from `start` to `end` at fraction `pct`.
fn cos_anneal(start: f64, end: f64, pct: f64) -> f64 {
    end + (start - end) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0)
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
    /// Number of epochs of the stage (the one-cycle policy spans them).
    #[serde(default)]
    pub total_epochs: usize,
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
            ScheduleKind::OneCycle => {
                let initial = self.base_lr / ONE_CYCLE_DIV;
                let min = initial / ONE_CYCLE_FINAL_DIV;
                Some(self.one_cycle(epoch, (initial, self.base_lr), (self.base_lr, min)))
            }
        }
    }

    /// SGD's momentum (Adam's β₁) for `epoch` when the schedule cycles it (one-cycle), else
    /// `None` (the optimiser's configured value).
    pub fn momentum_at(&self, epoch: usize) -> Option<f64> {
        let (base, max) = ONE_CYCLE_MOMENTUM;
        (self.kind == ScheduleKind::OneCycle)
            .then(|| self.one_cycle(epoch, (max, base), (base, max)))
    }

    /// PyTorch's two-phase one-cycle value at step `epoch`: `phase1` (start, end) over steps
    /// `0..=pct·T − 1`, then `phase2` to step `T − 1`, both cosine.
    fn one_cycle(&self, epoch: usize, phase1: (f64, f64), phase2: (f64, f64)) -> f64 {
        let total = self.total_epochs.max(2) as f64;
        let end1 = ONE_CYCLE_PCT_START * total - 1.0;
        let end2 = total - 1.0;
        let step = epoch as f64;
        if step <= end1 {
            cos_anneal(phase1.0, phase1.1, step / end1)
        } else {
            cos_anneal(phase2.0, phase2.1, ((step - end1) / (end2 - end1)).min(1.0))
        }
    }
}
