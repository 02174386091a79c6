//! A training run that never holds up the window: the whole experiment
//! (`experiment::run_experiment_in`, either task), reporting through a channel, paused and stopped between
//! steps.
//! * Natively it runs on a worker thread and writes the same run folder as the CLI.
//! * In the browser it runs in the page's compute worker (a Web Worker running the same module,
//!   [`super::web_worker`]), which keeps the run in memory and sends the page a copy of its files
//!   when it ends; the page's thread only applies the events and draws.
//!
//! Both report through a [`JobSink`] and the same [`JobEvent`]s.

use super::run_timing::{RunTiming, TimingReport};
use mmanet_core::config::ExperimentConfig;
use mmanet_core::device::DeviceChoice;
use mmanet_core::experiment::{LoadedData, ProgressSink};
use mmanet_core::train::TrainEvent;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, channel};

/// What the worker reports (the page's compute worker sends them as JSON).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum JobEvent {
    /// The compute device was chosen.
    Device(String),
    /// Where the run trains: the desktop's training thread or the page's web worker.
    RunsOn(String),
    /// Where the run's time went so far, phase by phase (sent at each stage's end and before
    /// [`JobEvent::Finished`]).
    Timing(TimingReport),
    /// A line of information (reused teacher, resumed stage, …).
    Message(String),
    /// A stage starts.
    StageStarted {
        /// `teacher`, `sf-md`, `mmanet`, `sf/101`, …
        stage: String,
        /// Its epochs.
        epochs: usize,
        /// Batches per epoch.
        batches: usize,
        /// Epochs already done (resumed).
        resumed: usize,
    },
    /// One training event of a stage.
    Train {
        /// The stage.
        stage: String,
        /// What happened.
        event: TrainEvent,
    },
    /// The run ended: its folder, or why it did not finish.
    Finished(Result<PathBuf, String>),
}

/// Pause and stop flags shared with the worker.
#[derive(Debug, Default)]
pub struct JobControl {
    paused: AtomicBool,
    stop: AtomicBool,
}

impl JobControl {
    /// Pauses (`true`) or continues before the next step.
    pub(crate) fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::SeqCst);
    }

    /// Whether the run is paused.
    pub(crate) fn is_paused(&self) -> bool {
        self.paused.load(Ordering::SeqCst)
    }

    /// Stops before the next step.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub(crate) fn is_stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Paused and not stopping: the run waits.
    fn holds(&self) -> bool {
        self.is_paused() && !self.is_stopping()
    }
}

/// A running (or finished) training job.
pub struct TrainingJob {
    control: Arc<JobControl>,
    events: Receiver<JobEvent>,
    #[cfg(not(target_family = "wasm"))]
    thread: Option<std::thread::JoinHandle<()>>,
    /// The page's number for the run in its compute worker.
    #[cfg(target_family = "wasm")]
    job: u64,
}

impl TrainingJob {
    /// Starts `cfg` on `data` on a new thread. `wake` is called after every event (the app
    /// passes `egui::Context::request_repaint`).
    #[cfg(not(target_family = "wasm"))]
    pub fn start(
        cfg: ExperimentConfig,
        data: LoadedData,
        device: DeviceChoice,
        resume: bool,
        wake: impl Fn() + Send + 'static,
    ) -> std::io::Result<Self> {
        let control = Arc::new(JobControl::default());
        let (tx, events) = channel();
        let mut sink = JobSink::new(control.clone(), move |event| {
            let delivered = tx.send(event).is_ok();
            wake();
            delivered
        });
        let thread = std::thread::Builder::new()
            .name("mmanet-training".into())
            .spawn(move || {
                sink.send(JobEvent::RunsOn("thread mmanet-training".into()));
                let result = native::run(&cfg, &data, device, resume, &mut sink);
                sink.send(JobEvent::Finished(result));
            })?;
        Ok(TrainingJob {
            control,
            events,
            thread: Some(thread),
        })
    }

    /// Starts `cfg` in the page's compute worker, which loads the data the config names (the
    /// page's copy, `data`, stays for the panels); the run is kept in memory there and, when it
    /// ends, in the page (see [`super::platform::keep_run`]). `wake` is called after every event.
    #[cfg(target_family = "wasm")]
    pub fn start(
        cfg: ExperimentConfig,
        data: LoadedData,
        device: DeviceChoice,
        resume: bool,
        wake: impl Fn() + 'static,
    ) -> std::io::Result<Self> {
        drop(data);
        let (tx, events) = channel();
        let job = super::web_worker::start_training(cfg, device, resume, tx, Box::new(wake))
            .map_err(std::io::Error::other)?;
        Ok(TrainingJob {
            control: Arc::new(JobControl::default()),
            events,
            job,
        })
    }

    /// Every event since the last call.
    pub fn poll(&self) -> Vec<JobEvent> {
        self.events.try_iter().collect()
    }

    /// Pauses (`true`) or resumes the run before its next step.
    pub fn set_paused(&self, paused: bool) {
        self.control.set_paused(paused);
        #[cfg(target_family = "wasm")]
        super::web_worker::send(super::worker_protocol::WorkerRequest::Pause {
            job: self.job,
            paused,
        });
    }

    /// Whether the run is paused.
    pub fn is_paused(&self) -> bool {
        self.control.is_paused()
    }

    /// Stops the run before its next step (the last epoch's checkpoint stays for resuming).
    pub fn stop(&self) {
        if self.control.is_stopping() {
            return;
        }
        self.control.stop();
        #[cfg(target_family = "wasm")]
        super::web_worker::send(super::worker_protocol::WorkerRequest::Stop { job: self.job });
    }

    /// Whether a stop was asked for.
    pub fn is_stopping(&self) -> bool {
        self.control.is_stopping()
    }
}

impl Drop for TrainingJob {
    fn drop(&mut self) {
        self.stop();
        #[cfg(not(target_family = "wasm"))]
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[cfg(not(target_family = "wasm"))]
mod native {
    use super::*;
    use mmanet_core::device::select_device;
    use mmanet_core::experiment::{RunMode, run_experiment};

    pub fn run(
        cfg: &ExperimentConfig,
        data: &LoadedData,
        device: DeviceChoice,
        resume: bool,
        sink: &mut JobSink,
    ) -> Result<PathBuf, String> {
        let selected = select_device(device).map_err(|e| e.to_string())?;
        sink.send(JobEvent::Device(selected.description.clone()));
        let outcome = run_experiment(cfg, data, &selected.device, resume, RunMode::Train, sink)
            .map_err(|e| e.to_string())?;
        Ok(outcome.run_dir)
    }
}

/// Forwards progress to the page or window and obeys its pause and stop: on the desktop's
/// training thread and in the page's compute worker alike.
pub(crate) struct JobSink {
    /// Delivers one event; `false` when nobody listens any more (the run then stops).
    deliver: Box<dyn FnMut(JobEvent) -> bool + Send>,
    control: Arc<JobControl>,
    /// The phases' times, taken as the events are sent.
    timing: RunTiming,
    /// When the worker last looked at its messages (browser).
    #[cfg(target_family = "wasm")]
    last_yield: web_time::Instant,
}

/// In the page's compute worker, the run hands the worker's event loop back after this much
/// training work, so that a pause or stop request is read (the page draws on its own thread).
#[cfg(target_family = "wasm")]
const WORK_BETWEEN_YIELDS: std::time::Duration = std::time::Duration::from_millis(50);

impl JobSink {
    /// A sink obeying `control` that hands events to `deliver`.
    pub(crate) fn new(
        control: Arc<JobControl>,
        deliver: impl FnMut(JobEvent) -> bool + Send + 'static,
    ) -> Self {
        JobSink {
            deliver: Box::new(deliver),
            control,
            timing: RunTiming::start(),
            #[cfg(target_family = "wasm")]
            last_yield: web_time::Instant::now(),
        }
    }

    /// Delivers `event`; the run stops at its next step when nobody listens any more (the
    /// window was closed).
    pub(crate) fn send(&mut self, event: JobEvent) {
        self.timing.observe(&event);
        let run_done = matches!(event, JobEvent::Finished(_));
        let stage_done = matches!(
            event,
            JobEvent::Train {
                event: TrainEvent::Finished { .. },
                ..
            }
        );
        // the totals go before the run's end, after a stage's end
        if run_done {
            self.send_timing();
        }
        self.deliver_or_stop(event);
        if stage_done {
            self.send_timing();
        }
    }

    fn send_timing(&mut self) {
        if let Some(report) = self.timing.report() {
            self.deliver_or_stop(JobEvent::Timing(report));
        }
    }

    fn deliver_or_stop(&mut self, event: JobEvent) {
        if !(self.deliver)(event) {
            self.control.stop();
        }
    }
}

impl ProgressSink for JobSink {
    fn stage_started(&mut self, stage: &str, epochs: usize, batches: usize, resumed: usize) {
        self.send(JobEvent::StageStarted {
            stage: stage.to_string(),
            epochs,
            batches,
            resumed,
        });
    }

    fn event(&mut self, stage: &str, event: &TrainEvent) {
        self.send(JobEvent::Train {
            stage: stage.to_string(),
            event: event.clone(),
        });
    }

    fn message(&mut self, text: &str) {
        self.send(JobEvent::Message(text.to_string()));
    }

    fn cancelled(&mut self) -> bool {
        #[cfg(not(target_family = "wasm"))]
        while self.control.holds() {
            std::thread::sleep(std::time::Duration::from_millis(30));
        }
        self.control.is_stopping()
    }

    #[cfg(target_family = "wasm")]
    fn between_steps(&mut self) -> mmanet_core::experiment::StepYield<'_> {
        Box::pin(async move {
            if self.last_yield.elapsed() >= WORK_BETWEEN_YIELDS || self.control.holds() {
                crate::gui::platform::sleep_ms(0).await;
                while self.control.holds() {
                    crate::gui::platform::sleep_ms(50).await;
                }
                self.last_yield = web_time::Instant::now();
            }
        })
    }
}
