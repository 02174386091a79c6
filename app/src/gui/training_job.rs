//! A training run that never holds up the window: the whole experiment
//! (`experiment::run_experiment_in`, either task), reporting through a channel, paused and stopped between
//! steps.
//! * Natively it runs on a worker thread and writes the same run folder as the CLI.
//! * In the browser it is a task on the page's event loop that hands the page back a frame
//!   every few milliseconds of work, and keeps the run in memory.

use mmanet_core::config::ExperimentConfig;
use mmanet_core::device::DeviceChoice;
use mmanet_core::experiment::{LoadedData, ProgressSink};
use mmanet_core::train::TrainEvent;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender, channel};

/// What the worker reports.
#[derive(Debug)]
pub enum JobEvent {
    /// The compute device was chosen.
    Device(String),
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

/// A running (or finished) training job.
pub struct TrainingJob {
    control: Arc<JobControl>,
    events: Receiver<JobEvent>,
    #[cfg(not(target_family = "wasm"))]
    thread: Option<std::thread::JoinHandle<()>>,
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
        let (mut sink, control, events) = ChannelSink::new(wake);
        let thread = std::thread::Builder::new()
            .name("mmanet-training".into())
            .spawn(move || {
                let result = native::run(&cfg, &data, device, resume, &mut sink);
                sink.send(JobEvent::Finished(result));
            })?;
        Ok(TrainingJob {
            control,
            events,
            thread: Some(thread),
        })
    }

    /// Starts `cfg` on `data` as a task on the page's event loop; the run is kept in memory
    /// (see [`super::platform::keep_run`]). `wake` is called after every event.
    #[cfg(target_family = "wasm")]
    pub fn start(
        cfg: ExperimentConfig,
        data: LoadedData,
        device: DeviceChoice,
        resume: bool,
        wake: impl Fn() + Send + 'static,
    ) -> std::io::Result<Self> {
        let (mut sink, control, events) = ChannelSink::new(wake);
        wasm_bindgen_futures::spawn_local(async move {
            let result = web::run(&cfg, &data, device, resume, &mut sink).await;
            sink.send(JobEvent::Finished(result));
        });
        Ok(TrainingJob { control, events })
    }

    /// Every event since the last call.
    pub fn poll(&self) -> Vec<JobEvent> {
        self.events.try_iter().collect()
    }

    /// Pauses (`true`) or resumes the run before its next step.
    pub fn set_paused(&self, paused: bool) {
        self.control.paused.store(paused, Ordering::SeqCst);
    }

    /// Whether the run is paused.
    pub fn is_paused(&self) -> bool {
        self.control.paused.load(Ordering::SeqCst)
    }

    /// Stops the run before its next step (the last epoch's checkpoint stays for resuming).
    pub fn stop(&self) {
        self.control.stop.store(true, Ordering::SeqCst);
    }

    /// Whether a stop was asked for.
    pub fn is_stopping(&self) -> bool {
        self.control.stop.load(Ordering::SeqCst)
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
        sink: &mut ChannelSink,
    ) -> Result<PathBuf, String> {
        let selected = select_device(device).map_err(|e| e.to_string())?;
        sink.send(JobEvent::Device(selected.description.clone()));
        let outcome = run_experiment(cfg, data, &selected.device, resume, RunMode::Train, sink)
            .map_err(|e| e.to_string())?;
        Ok(outcome.run_dir)
    }
}

#[cfg(target_family = "wasm")]
mod web {
    use super::*;
    use crate::gui::platform;
    use mmanet_core::experiment::{RunMode, run_experiment_in};
    use mmanet_core::store::{MemoryStore, RunStore};

    pub async fn run(
        cfg: &ExperimentConfig,
        data: &LoadedData,
        device: DeviceChoice,
        resume: bool,
        sink: &mut ChannelSink,
    ) -> Result<PathBuf, String> {
        let selected = platform::select_device(device).await?;
        sink.send(JobEvent::Device(selected.description.clone()));
        // a stopped run continues in the same store
        let mut store = resume
            .then(|| platform::take_run(&cfg.name))
            .flatten()
            .unwrap_or_else(|| MemoryStore::new(cfg.name.clone()));
        let result = run_experiment_in(
            cfg,
            data,
            &selected.device,
            &mut store,
            resume,
            RunMode::Train,
            sink,
        )
        .await;
        let dir = store.location("");
        platform::keep_run(store);
        result.map(|_| dir).map_err(|e| e.to_string())
    }
}

/// Forwards progress to the UI; holds the worker while paused.
struct ChannelSink {
    tx: Sender<JobEvent>,
    control: Arc<JobControl>,
    wake: Box<dyn Fn() + Send>,
    /// When the page last got a frame (browser).
    #[cfg(target_family = "wasm")]
    last_yield: web_time::Instant,
}

/// In the browser, the page gets the event loop back after this much training work.
#[cfg(target_family = "wasm")]
const WORK_BETWEEN_FRAMES: std::time::Duration = std::time::Duration::from_millis(12);

impl ChannelSink {
    /// A sink, the control it obeys, and the receiving end of its events.
    fn new(wake: impl Fn() + Send + 'static) -> (Self, Arc<JobControl>, Receiver<JobEvent>) {
        let control = Arc::new(JobControl::default());
        let (tx, events) = channel();
        let sink = ChannelSink {
            tx,
            control: control.clone(),
            wake: Box::new(wake),
            #[cfg(target_family = "wasm")]
            last_yield: web_time::Instant::now(),
        };
        (sink, control, events)
    }

    fn send(&self, event: JobEvent) {
        // The app may have gone away (window closed); the run then ends at its next step.
        if self.tx.send(event).is_err() {
            self.control.stop.store(true, Ordering::SeqCst);
        }
        (self.wake)();
    }
}

impl ProgressSink for ChannelSink {
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
        while self.control.paused.load(Ordering::SeqCst)
            && !self.control.stop.load(Ordering::SeqCst)
        {
            std::thread::sleep(std::time::Duration::from_millis(30));
        }
        self.control.stop.load(Ordering::SeqCst)
    }

    #[cfg(target_family = "wasm")]
    fn between_steps(&mut self) -> mmanet_core::experiment::StepYield<'_> {
        Box::pin(async move {
            let paused = || {
                self.control.paused.load(Ordering::SeqCst)
                    && !self.control.stop.load(Ordering::SeqCst)
            };
            if self.last_yield.elapsed() >= WORK_BETWEEN_FRAMES || paused() {
                crate::gui::platform::sleep_ms(0).await;
                while paused() {
                    crate::gui::platform::sleep_ms(50).await;
                }
                self.last_yield = web_time::Instant::now();
            }
        })
    }
}
