//! Where a run's time goes, timed where the run trains (the job's sink sees every event as it
//! is sent, so a page or window busy drawing does not blur it): the wait for the device,
//! each stage's setup (networks built, the teacher loaded, the first step — on WebGPU, where
//! most kernels compile), the training steps, the epochs' ends (validation, and MAR's mining in
//! the warm-up), the stages' ends and the run's end (test evaluation of every combination, the
//! reports). The sink sends the totals as a [`JobEvent::Timing`] at each stage's end and the
//! run's; the page's status hook reports them, and the browser test prints them.

use super::training_job::JobEvent;
use mmanet_core::train::TrainEvent;
use serde::{Deserialize, Serialize};
use web_time::Instant;

/// One part of a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// From the start to the device's choice (on the page: the WebGPU adapter and device).
    Device,
    /// From the device (or the end of a stage) to the next stage's start: loading the data,
    /// saving the previous stage.
    BetweenStages,
    /// From a stage's start to its first step's end: building the networks, loading the
    /// teacher, the first step (and on WebGPU the compilation of its kernels).
    StageSetup,
    /// Training steps after the first of a stage.
    Steps,
    /// An epoch's end: validation of the stage's combinations (and MAR's mining in its warm-up).
    EpochEnd,
    /// A stage's end: the best epoch's model chosen and saved.
    StageEnd,
    /// The run's end: test evaluation of every combination, reports, the run's files.
    RunEnd,
}

impl Phase {
    const ALL: [Phase; 7] = [
        Phase::Device,
        Phase::BetweenStages,
        Phase::StageSetup,
        Phase::Steps,
        Phase::EpochEnd,
        Phase::StageEnd,
        Phase::RunEnd,
    ];
}

/// The last event seen, as far as timing goes.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Last {
    Start,
    Device,
    StageStarted,
    Step,
    Epoch,
    StageFinished,
}

/// The phases' times of the current run.
#[derive(Clone, Debug, Default)]
pub struct RunTiming {
    last: Option<(Instant, Last)>,
    seconds: [f64; 7],
    counts: [usize; 7],
    /// Every step's time after a stage's first, in milliseconds.
    step_ms: Vec<f64>,
}

/// What the status hook reports.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TimingReport {
    /// Seconds and occurrences per phase, in run order.
    pub phases: Vec<PhaseTime>,
    /// Seconds from the start to the last event.
    pub total_s: f64,
    /// Training steps timed (after each stage's first).
    pub steps: usize,
    /// Their median, in milliseconds.
    pub step_median_ms: f64,
    /// Time the steps slower than three times the median took beyond it: stalls such as a
    /// kernel's compilation on WebGPU.
    pub slow_step_excess_s: f64,
    /// In a browser, the WebAssembly memory of the module instance that trains (the page's
    /// compute worker), in MB; none natively.
    #[serde(default)]
    pub memory_mb: Option<f64>,
}

/// One phase's total.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhaseTime {
    /// Which.
    pub phase: Phase,
    /// Seconds in all.
    pub seconds: f64,
    /// How many times it occurred.
    pub count: usize,
}

impl RunTiming {
    /// A run starting now.
    pub fn start() -> Self {
        RunTiming {
            last: Some((Instant::now(), Last::Start)),
            ..RunTiming::default()
        }
    }

    /// Counts the time since the last event toward the phase `event` ends.
    pub fn observe(&mut self, event: &JobEvent) {
        self.observe_at(event, Instant::now());
    }

    fn observe_at(&mut self, event: &JobEvent, now: Instant) {
        let Some((then, last)) = self.last else {
            return;
        };
        let (phase, next) = match event {
            JobEvent::Device(_) => (Phase::Device, Last::Device),
            JobEvent::StageStarted { .. } => (Phase::BetweenStages, Last::StageStarted),
            JobEvent::Train { event, .. } => match event {
                TrainEvent::Step(_) if last == Last::StageStarted => {
                    (Phase::StageSetup, Last::Step)
                }
                TrainEvent::Step(_) => (Phase::Steps, Last::Step),
                TrainEvent::Epoch(_) => (Phase::EpochEnd, Last::Epoch),
                TrainEvent::Finished { .. } => (Phase::StageEnd, Last::StageFinished),
            },
            JobEvent::Finished(_) => (Phase::RunEnd, Last::StageFinished),
            // information only: the time runs on to the next event that ends a phase
            JobEvent::RunsOn(_) | JobEvent::Message(_) | JobEvent::Timing(_) => return,
        };
        let seconds = now.saturating_duration_since(then).as_secs_f64();
        let k = Phase::ALL.iter().position(|p| *p == phase).unwrap_or(0);
        self.seconds[k] += seconds;
        self.counts[k] += 1;
        if phase == Phase::Steps {
            self.step_ms.push(seconds * 1e3);
        }
        self.last = Some((now, next));
    }

    /// The totals so far (none before a run).
    pub fn report(&self) -> Option<TimingReport> {
        self.last?;
        let mut sorted = self.step_ms.clone();
        sorted.sort_by(f64::total_cmp);
        let median = sorted.get(sorted.len() / 2).copied().unwrap_or(0.0);
        let excess_ms: f64 = sorted
            .iter()
            .filter(|&&t| t > 3.0 * median)
            .map(|t| t - median)
            .sum();
        Some(TimingReport {
            phases: Phase::ALL
                .iter()
                .zip(self.seconds.iter().zip(&self.counts))
                .filter(|(_, (_, count))| **count > 0)
                .map(|(phase, (seconds, count))| PhaseTime {
                    phase: *phase,
                    seconds: *seconds,
                    count: *count,
                })
                .collect(),
            total_s: self.seconds.iter().sum(),
            steps: sorted.len(),
            step_median_ms: median,
            slow_step_excess_s: excess_ms / 1e3,
            memory_mb: wasm_memory_mb(),
        })
    }
}

/// This module instance's WebAssembly memory, in MB (browser only).
pub fn wasm_memory_mb() -> Option<f64> {
    #[cfg(target_family = "wasm")]
    {
        use wasm_bindgen::JsCast;
        let memory: js_sys::WebAssembly::Memory = wasm_bindgen::memory().dyn_into().ok()?;
        let buffer: js_sys::ArrayBuffer = memory.buffer().dyn_into().ok()?;
        Some(buffer.byte_length() as f64 / 1e6)
    }
    #[cfg(not(target_family = "wasm"))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmanet_core::train::StepReport;
    use std::time::Duration;

    fn step() -> JobEvent {
        JobEvent::Train {
            stage: "teacher".into(),
            event: TrainEvent::Step(StepReport {
                epoch: 0,
                batch: 0,
                batches: 1,
                lr: 0.1,
                momentum: None,
                losses: Vec::new(),
                total: 1.0,
                accuracy: 0.5,
                dropped_terms: Vec::new(),
            }),
        }
    }

    /// Each interval goes to the phase its closing event ends; the first step of a stage is
    /// its setup, a step far above the median counts as a stall.
    #[test]
    fn intervals_go_to_the_phase_their_event_ends() {
        let t0 = Instant::now();
        let mut timing = RunTiming {
            last: Some((t0, Last::Start)),
            ..RunTiming::default()
        };
        let ms = |m: u64| t0 + Duration::from_millis(m);
        let events = [
            (JobEvent::RunsOn("web worker".into()), 50),
            (JobEvent::Device("cpu".into()), 100),
            (
                JobEvent::StageStarted {
                    stage: "teacher".into(),
                    epochs: 1,
                    batches: 5,
                    resumed: 0,
                },
                300,
            ),
            (step(), 1300),
            (step(), 1310),
            (step(), 1320),
            (step(), 1330),
            (step(), 1430),
            (
                JobEvent::Train {
                    stage: "teacher".into(),
                    event: TrainEvent::Finished {
                        best_epoch: 0,
                        best_score: 1.0,
                    },
                },
                1500,
            ),
            (JobEvent::Finished(Ok("memory:x".into())), 2500),
        ];
        for (event, at) in &events {
            timing.observe_at(event, ms(*at));
        }
        let report = timing.report().expect("a run");
        let seconds = |p: Phase| {
            report
                .phases
                .iter()
                .find(|t| t.phase == p)
                .map(|t| (t.seconds * 1e3).round() as u64)
        };
        assert_eq!(seconds(Phase::Device), Some(100));
        assert_eq!(seconds(Phase::BetweenStages), Some(200));
        assert_eq!(seconds(Phase::StageSetup), Some(1000));
        assert_eq!(seconds(Phase::Steps), Some(130));
        assert_eq!(seconds(Phase::EpochEnd), None);
        assert_eq!(seconds(Phase::StageEnd), Some(70));
        assert_eq!(seconds(Phase::RunEnd), Some(1000));
        assert_eq!(report.steps, 4);
        assert!((report.step_median_ms - 10.0).abs() < 1e-6);
        // the 100 ms step is 90 ms over the median
        assert!((report.slow_step_excess_s - 0.09).abs() < 1e-6);
        assert!((report.total_s - 2.5).abs() < 1e-6);
    }
}
