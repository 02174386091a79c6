//! The app (eframe): `mmanet gui` on the desktop, and the page `web/` builds. Five panels —
//! Data, Training, Mining, Explorer, Runs — over one [`MmanetApp`]; training and inference run
//! as workers ([`training_job`], [`predictor`]) that report through channels, so the window
//! never waits; in the browser, training runs in a Web Worker ([`worker_protocol`], the
//! `web_worker` module). What else differs in the browser is in [`platform`].

mod data_panel;
mod draw;
mod explorer_panel;
mod mining_panel;
#[cfg(not(target_family = "wasm"))]
mod native;
mod panel;
pub mod platform;
mod predictor;
mod run_timing;
mod runs_panel;
#[cfg(not(target_family = "wasm"))]
mod script;
pub mod seg_view;
mod session;
pub mod settings;
pub mod status;
mod training_job;
mod training_panel;
#[cfg(target_family = "wasm")]
mod web_worker;
// the page's messages; natively only their tests use them
#[cfg_attr(not(target_family = "wasm"), allow(dead_code))]
mod worker_protocol;

#[cfg(test)]
mod tests;

use anyhow::Result;
use eframe::egui::{self, Key, KeyboardShortcut, Modifiers};
use mmanet_core::data::InMemoryDataset;
use mmanet_core::data::rgbd::RgbdScene;
use mmanet_core::device::DeviceChoice;
use mmanet_core::experiment::LoadedData;
use mmanet_core::modality::ModalitySet;
use mmanet_core::runs::RunRecord;
use panel::{Action, Panel, PanelContext};
use predictor::{Predictor, PredictorReply, PredictorRequest, explorer_models};
use session::{RunStatus, Session};
use settings::Settings;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use training_job::TrainingJob;

#[cfg(not(target_family = "wasm"))]
pub use native::{GpuSharing, run};
#[cfg(not(target_family = "wasm"))]
pub use script::ScriptOptions;
#[cfg(target_family = "wasm")]
pub use web_worker::serve as serve_compute_worker;

/// How many of the last frames' costs the status report summarises.
const RECENT_FRAMES: usize = 120;

/// The pretrained demo model the page opens on: MMANet on mfeat, exported from `mmanet demo`
/// (see `app/assets/README.md` for how it was made).
pub const PRETRAINED_MFEAT: &[u8] = include_bytes!("../../assets/mfeat-mmanet.mmanet");
/// Its file name.
pub const PRETRAINED_MFEAT_NAME: &str = "mfeat-mmanet.mmanet";

/// Start a run.
pub const SHORTCUT_START: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::Enter);
/// Pause or resume the run.
pub const SHORTCUT_PAUSE: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::P);
/// Stop the run.
pub const SHORTCUT_STOP: KeyboardShortcut = KeyboardShortcut::new(Modifiers::COMMAND, Key::Period);

/// The panels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Tab {
    /// Choose and look at the data.
    Data,
    /// Configure, start and watch training.
    Training,
    /// MAR's weak-combination mining.
    Mining,
    /// Toggle modalities on a test sample.
    Explorer,
    /// Saved runs: open, export, compare.
    Runs,
}

impl Tab {
    const ALL: [Tab; 5] = [
        Tab::Data,
        Tab::Training,
        Tab::Mining,
        Tab::Explorer,
        Tab::Runs,
    ];

    fn label(self) -> &'static str {
        match self {
            Tab::Data => "📂 Data",
            Tab::Training => "🏋 Training",
            Tab::Mining => "⛏ Mining",
            Tab::Explorer => "🔍 Explorer",
            Tab::Runs => "🗄 Runs",
        }
    }
}

/// A sample the explorer read from files.
#[derive(Clone)]
pub enum LoadedSample {
    /// Classification: one value vector per modality, preprocessed as the dataset's.
    Vectors(Arc<InMemoryDataset>),
    /// Segmentation: a raw RGB-D scene (labels unknown).
    Scene(Arc<RgbdScene>),
}

/// The app.
pub struct MmanetApp {
    /// Remembered settings.
    pub settings: Settings,
    /// The panel on show.
    pub tab: Tab,
    /// This launch's state.
    pub session: Session,
    job: Option<TrainingJob>,
    predictor: Option<Predictor>,
    textures: draw::TextureCache,
    data_key: Option<String>,
    panels: Panels,
    last_run: Option<(String, Settings)>,
    device_probe: DeviceProbe,
    notice: Option<String>,
    #[cfg(not(target_family = "wasm"))]
    script: Option<script::DemoScript>,
    /// Launched with a demo script: nothing is remembered from or for this launch.
    scripted: bool,
    /// The adapter the window shares with training, when it does.
    shared_gpu: Option<String>,
    /// A dropped bundle's name and bytes, once read.
    dropped_bundle: Arc<std::sync::Mutex<Option<DroppedBundle>>>,
    wake: Arc<dyn Fn() + Send + Sync>,
}

/// The five panels, each owning its state ([`panel::Panel`]).
#[derive(Default)]
struct Panels {
    data: data_panel::DataPanel,
    training: training_panel::TrainingPanel,
    mining: mining_panel::MiningPanel,
    explorer: explorer_panel::ExplorerPanel,
    runs: runs_panel::RunsPanel,
}

/// A dropped bundle file: its name and its bytes, or why they could not be read.
type DroppedBundle = (String, Result<Vec<u8>, String>);

/// What the chosen device resolves to (the adapter name), found on a background thread.
#[derive(Default)]
struct DeviceProbe {
    answer: Option<(DeviceChoice, String)>,
    pending: Option<(DeviceChoice, std::sync::mpsc::Receiver<String>)>,
}

impl DeviceProbe {
    /// The description of `choice` once known; starts a probe when needed.
    fn describe(
        &mut self,
        choice: DeviceChoice,
        wake: &Arc<dyn Fn() + Send + Sync>,
    ) -> Option<&str> {
        if let Some((c, rx)) = &self.pending
            && let Ok(text) = rx.try_recv()
        {
            self.answer = Some((*c, text));
            self.pending = None;
        }
        let known = self.answer.as_ref().is_some_and(|(c, _)| *c == choice);
        let probing = self.pending.as_ref().is_some_and(|(c, _)| *c == choice);
        #[cfg(not(target_family = "wasm"))]
        if !known && !probing {
            let (tx, rx) = std::sync::mpsc::channel();
            let wake = wake.clone();
            let spawned = std::thread::Builder::new()
                .name("mmanet-device-probe".into())
                .spawn(move || {
                    let _ = tx.send(platform::probe_device(choice));
                    wake();
                });
            if spawned.is_ok() {
                self.pending = Some((choice, rx));
            }
        }
        // the browser looks for its WebGPU adapter once, on the page's event loop
        #[cfg(target_family = "wasm")]
        if !known && !probing {
            match platform::probe_device(choice) {
                Some(text) => self.answer = Some((choice, text)),
                None => wake(),
            }
        }
        self.answer
            .as_ref()
            .filter(|(c, _)| *c == choice)
            .map(|(_, t)| t.as_str())
    }
}

/// The settings and panel this app remembered in `storage` (eframe persistence).
pub fn remembered(storage: &dyn eframe::Storage) -> Option<(Settings, Tab)> {
    eframe::get_value::<Persisted>(storage, eframe::APP_KEY).map(|p| (p.settings, p.tab))
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Persisted {
    settings: Settings,
    tab: Tab,
}

impl MmanetApp {
    /// A new app; `wake` asks for a repaint (from worker threads).
    pub fn new(settings: Settings, tab: Tab, wake: Arc<dyn Fn() + Send + Sync>) -> Self {
        let mut app = MmanetApp {
            settings,
            tab,
            session: Session::default(),
            job: None,
            predictor: None,
            textures: draw::TextureCache::default(),
            data_key: None,
            panels: Panels::default(),
            last_run: None,
            device_probe: DeviceProbe::default(),
            notice: None,
            #[cfg(not(target_family = "wasm"))]
            script: None,
            scripted: false,
            shared_gpu: None,
            dropped_bundle: Arc::default(),
            wake,
        };
        app.load_data();
        app
    }

    /// (Re)loads the data the settings name; errors are kept for the data panel.
    pub fn load_data(&mut self) {
        let cfg = match self.settings.data_config() {
            Ok(c) => c,
            Err(e) => {
                self.session.data_error = Some(format!("{e:#}"));
                return;
            }
        };
        let key = serde_json::to_string(&cfg.data).unwrap_or_default();
        // the generator's images must fit the page's memory
        if platform::IN_BROWSER
            && let Err(e) = mmanet_core::limits::check_data_fits(
                &cfg.data,
                &mmanet_core::limits::BrowserLimits::default(),
            )
        {
            self.session.data_error = Some(e.to_string());
            self.data_key = None;
            return;
        }
        match LoadedData::load(&cfg) {
            Ok(data) => {
                // a dataset of the other task (a segmentation manifest) brings its preset
                if self.settings.preset.task() != data.task() {
                    let preset = self.settings.preset.for_task(data.task());
                    self.settings.use_preset(preset);
                }
                self.install_data(data, key);
            }
            Err(e) => {
                self.session.data_error = Some(e.to_string());
                self.data_key = None;
            }
        }
    }

    /// Makes `data` (identified by `key`, its data config as JSON) the data on show.
    fn install_data(&mut self, data: LoadedData, key: String) {
        self.textures.clear();
        self.panels.explorer.present = vec![true; data.modality_names().len()];
        self.panels.explorer.position = 0;
        self.panels.explorer.loaded = None;
        self.panels.data.reset_gallery();
        match self.session.set_data(data) {
            Ok(()) => self.data_key = Some(key),
            Err(e) => {
                self.session.data_error = Some(e.to_string());
                self.data_key = None;
            }
        }
    }

    fn data_is_current(&self) -> bool {
        self.settings
            .data_config()
            .ok()
            .map(|c| serde_json::to_string(&c.data).unwrap_or_default())
            == self.data_key
    }

    /// Starts a new run with the current settings (or continues the last stopped one).
    pub fn start_training(&mut self, resume: bool) {
        if self.session.status.is_active() {
            return;
        }
        if !self.data_is_current() {
            self.load_data();
        }
        // never train the new settings on the previously loaded data
        let data = match (&self.session.data, self.data_is_current()) {
            (Some(data), true) => data.clone(),
            _ => {
                let why = self.session.data_error.clone().unwrap_or_default();
                self.notice = Some(format!("cannot start: the data did not load ({why})"));
                return;
            }
        };
        let (name, settings) = match (&self.last_run, resume) {
            (Some((name, s)), true) => (name.clone(), s.clone()),
            _ => {
                let now = web_time::SystemTime::now()
                    .duration_since(web_time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                // two runs started within a second get distinct folders
                let base = settings::run_name(self.settings.data, now);
                let name = (1..)
                    .map(|k| {
                        if k == 1 {
                            base.clone()
                        } else {
                            format!("{base}-{k}")
                        }
                    })
                    .find(|n| !platform::run_exists(&self.settings.output_dir, n))
                    .unwrap_or(base);
                (name, self.settings.clone())
            }
        };
        let cfg = match settings.experiment_config(&name) {
            Ok(c) => c,
            Err(e) => {
                self.notice = Some(format!("cannot start: {e}"));
                return;
            }
        };
        if platform::IN_BROWSER
            && let Err(e) = mmanet_core::limits::check_experiment_fits(&cfg, &data)
        {
            self.notice = Some(format!("cannot start in a browser: {e}"));
            return;
        }
        let wake = self.wake.clone();
        match TrainingJob::start(cfg, data, settings.device, resume, move || wake()) {
            Ok(job) => {
                self.session.begin_run();
                self.notice = None;
                self.panels.training.follow_live_stage();
                self.job = Some(job);
                self.last_run = Some((name, settings));
            }
            Err(e) => self.notice = Some(format!("cannot start the training thread: {e}")),
        }
    }

    /// What the chosen device is (the GPU adapter's name, or the CPU), once probed.
    pub fn device_description(&mut self) -> Option<String> {
        let choice = self.settings.device;
        self.device_probe
            .describe(choice, &self.wake)
            .map(str::to_string)
    }

    /// Where the app stands (the browser page's test hook reads it as JSON): the run status,
    /// the device, each stage's progress, and the shown run's per-combination tables.
    pub fn status_report(&self) -> status::StatusReport<'_> {
        use status::{ExplorerStatus, ModelAnswer, ModelsStatus, PredictionStatus, StageStatus};
        let state = match &self.session.status {
            RunStatus::Idle => "idle",
            RunStatus::Running => "running",
            RunStatus::Paused => "paused",
            RunStatus::Stopping => "stopping",
            RunStatus::Finished(_) => "finished",
            RunStatus::Stopped(_) => "stopped",
            RunStatus::Failed(_) => "failed",
        };
        let names = self.session.modality_names();
        let stages = self
            .session
            .stages
            .iter()
            .map(|s| StageStatus {
                name: &s.name,
                epochs: s.epochs,
                epochs_done: s.summaries.len(),
                steps: s.steps.len(),
                best: s.best,
                weak_set: s
                    .mining()
                    .and_then(|t| t.weak_set)
                    .map(|w| w.iter().map(|c| c.long_label(&names)).collect()),
            })
            .collect();
        let prediction = match &self.panels.explorer.prediction {
            Some(PredictorReply::Prediction {
                sample,
                set,
                result,
            }) => Some(PredictionStatus {
                sample: *sample,
                modalities: set.long_label(&names),
                models: match result {
                    Ok(preds) => preds.iter().map(ModelAnswer::of).collect(),
                    Err(_) => Vec::new(),
                },
                error: result.as_ref().err().map(String::as_str),
            }),
            _ => None,
        };
        let summary = self.session.data_summary.as_ref();
        status::StatusReport {
            state,
            tab: self.tab,
            status: self.session.status.describe(),
            device: self.session.device.as_deref(),
            runs_on: self.session.runs_on.as_deref(),
            timing: self.session.timing.clone(),
            ui_frame_ms: status::FrameCost::of(&self.session.ui_frame_ms),
            page_memory_mb: run_timing::wasm_memory_mb(),
            recent_frame_ms: status::FrameCost::of(
                &self
                    .session
                    .recent_frame_ms
                    .iter()
                    .copied()
                    .collect::<Vec<_>>(),
            ),
            data: summary.map(|d| d.name.as_str()),
            data_error: self.session.data_error.as_deref(),
            notice: self.notice.as_deref(),
            stages,
            tables: self.session.run.as_ref().map(|r| r.tables.as_slice()),
            explorer: ExplorerStatus {
                bundle: self
                    .panels
                    .explorer
                    .bundle
                    .as_ref()
                    .map(|(name, _)| name.as_str()),
                models: match &self.panels.explorer.models {
                    Some(Ok(labels)) => Some(ModelsStatus::Labels(labels)),
                    Some(Err(e)) => Some(ModelsStatus::Error { error: e }),
                    None => None,
                },
                prediction,
            },
            classes: summary.map(|d| d.classes.len()),
            task: self.session.data.as_ref().map(|d| d.task()),
            class_counts: summary.map(|d| &d.counts),
            count_unit: summary.map(|d| d.unit),
        }
    }

    /// Pauses or resumes the run.
    pub fn toggle_pause(&mut self) {
        if let Some(job) = &self.job
            && !job.is_stopping()
        {
            let paused = !job.is_paused();
            job.set_paused(paused);
            self.session.status = if paused {
                RunStatus::Paused
            } else {
                RunStatus::Running
            };
        }
    }

    /// Stops the run after its current step.
    pub fn stop_training(&mut self) {
        if let Some(job) = &self.job {
            job.stop();
            job.set_paused(false);
            self.session.status = RunStatus::Stopping;
        }
    }

    /// Whether a stopped run can be continued.
    pub fn can_resume(&self) -> bool {
        matches!(self.session.status, RunStatus::Stopped(_)) && self.last_run.is_some()
    }

    /// Shows a run folder in the mining, explorer and runs panels and loads its models.
    pub fn open_run(&mut self, dir: &Path) {
        let store = match platform::open_run_store(dir) {
            Ok(s) => s,
            Err(e) => {
                self.notice = Some(format!("cannot open the run: {e}"));
                return;
            }
        };
        let record = match RunRecord::from_store(store.as_ref()) {
            Ok(r) => r,
            Err(e) => {
                self.notice = Some(format!("cannot open the run: {e}"));
                return;
            }
        };
        // The explorer needs the run's own data and split.
        let key = serde_json::to_string(&record.config.data).unwrap_or_default();
        if self.data_key.as_deref() != Some(key.as_str()) {
            match LoadedData::load(&record.config) {
                Ok(data) => self.install_data(data, key),
                Err(e) => {
                    self.notice = Some(format!("cannot load the run's data: {e}"));
                    return;
                }
            }
        }
        let cfg = record.config.clone();
        if let Err(e) = self.session.show_run(record) {
            self.notice = Some(format!("cannot show the run: {e}"));
            return;
        }
        self.panels.mining.show_latest();
        if let Some(data) = self.session.data.clone() {
            self.panels.explorer.bundle = None;
            self.panels.explorer.models_of = Some(dir.to_path_buf());
            self.panels.explorer.models = None;
            self.panels.explorer.prediction = None;
            self.panels.explorer.requested = None;
            let models = explorer_models(&cfg);
            self.ask_predictor(PredictorRequest::Load {
                store,
                cfg: Box::new(cfg),
                data,
                models,
            });
        }
        self.panels.runs.rescan = true;
    }

    /// Opens a deployment bundle (`name` for messages) in the explorer: its dataset is loaded
    /// (with the split it was trained on) and its network answers on the test samples.
    pub fn open_bundle(&mut self, name: &str, bytes: &[u8]) {
        let bundle = match mmanet_core::bundle::Bundle::from_bytes(bytes, name) {
            Ok(b) => b,
            Err(e) => {
                self.notice = Some(format!("cannot open the model: {e}"));
                return;
            }
        };
        let cfg = &bundle.header.config;
        let key = serde_json::to_string(&cfg.data).unwrap_or_default();
        if self.data_key.as_deref() != Some(key.as_str()) {
            match LoadedData::load(cfg) {
                Ok(data) => self.install_data(data, key),
                Err(e) => {
                    self.notice = Some(format!(
                        "cannot load the dataset the model was trained on ({}): {e}",
                        bundle.header.dataset
                    ));
                    return;
                }
            }
        }
        let Some(data) = self.session.data.clone() else {
            return;
        };
        let tables = match &bundle.header.test_report {
            Some(r) => {
                mmanet_core::report::comparison_tables(&[(r.method.clone(), vec![r.clone()])])
                    .unwrap_or_default()
            }
            None => Vec::new(),
        };
        self.panels.explorer.bundle = Some((name.to_string(), tables));
        self.panels.explorer.models_of = Some(PathBuf::from(name));
        self.panels.explorer.models = None;
        self.panels.explorer.prediction = None;
        self.panels.explorer.requested = None;
        self.ask_predictor(PredictorRequest::LoadBundle {
            bundle: Arc::new(bundle),
            data,
        });
        self.tab = Tab::Explorer;
    }

    /// Opens the bundle file at `path` (desktop).
    pub fn open_bundle_file(&mut self, path: &Path) {
        match std::fs::read(path) {
            Ok(bytes) => self.open_bundle(&path.display().to_string(), &bytes),
            Err(e) => self.notice = Some(format!("cannot read {}: {e}", path.display())),
        }
    }

    /// Opens the pretrained mfeat model shipped with the app.
    pub fn open_pretrained(&mut self) {
        self.open_bundle(PRETRAINED_MFEAT_NAME, PRETRAINED_MFEAT);
    }

    /// Sends a request to the explorer's worker, starting it on first use.
    fn ask_predictor(&mut self, request: PredictorRequest) {
        if self.predictor.is_none() {
            let wake = self.wake.clone();
            match Predictor::start(move || wake()) {
                Ok(p) => self.predictor = Some(p),
                Err(e) => {
                    self.notice = Some(format!("cannot start the explorer thread: {e}"));
                    return;
                }
            }
        }
        if let Some(p) = &self.predictor {
            p.send(request);
        }
    }

    /// Asks for the explorer's prediction when the sample or the switches changed.
    pub fn request_prediction(&mut self) {
        let Some(data) = &self.session.data else {
            return;
        };
        let sample = match &self.panels.explorer.loaded {
            Some(_) => predictor::LOADED_SAMPLE,
            None => match data.split().test.get(self.panels.explorer.position) {
                Some(&s) => s,
                None => return,
            },
        };
        let set = ModalitySet::from_mask(&self.panels.explorer.present);
        if self.panels.explorer.requested == Some((sample, set)) {
            return;
        }
        self.panels.explorer.requested = Some((sample, set));
        if matches!(self.panels.explorer.models, Some(Ok(_))) {
            let request = match &self.panels.explorer.loaded {
                Some((_, LoadedSample::Vectors(values))) => PredictorRequest::PredictLoaded {
                    sample: values.clone(),
                    set,
                },
                Some((_, LoadedSample::Scene(scene))) => PredictorRequest::PredictScene {
                    scene: scene.clone(),
                    set,
                },
                None => PredictorRequest::Predict { sample, set },
            };
            self.ask_predictor(request);
        }
    }

    /// Reads a sample from files (one per modality, in order: for segmentation the RGB image
    /// and the depth) for the explorer, preprocessed as the loaded dataset's samples; a failure
    /// is shown as a notice.
    pub fn load_explorer_sample(&mut self, paths: &[PathBuf]) {
        let Some(data) = &self.session.data else {
            self.notice = Some("load the data first (Data panel)".into());
            return;
        };
        let result = match data {
            LoadedData::Classification(d) => {
                let source = d.source.as_ref();
                source
                    .sample_from_files(paths)
                    .and_then(|features| {
                        let ds = InMemoryDataset {
                            name: "loaded sample".into(),
                            modalities: source.modalities().to_vec(),
                            classes: source.num_classes(),
                            class_names: Some(source.class_names()),
                            features,
                            labels: vec![0],
                        };
                        ds.validate()?;
                        Ok(ds)
                    })
                    .map(|ds| LoadedSample::Vectors(Arc::new(ds)))
            }
            LoadedData::Segmentation(_) => match paths {
                [rgb, depth] => mmanet_core::data::rgbd_trees::read_rgbd_files(rgb, depth)
                    .map(|scene| LoadedSample::Scene(Arc::new(scene))),
                _ => Err(mmanet_core::CoreError::config(
                    "files",
                    "choose an RGB image and its depth",
                )),
            },
        };
        match result {
            Ok(sample) => {
                let names = paths
                    .iter()
                    .filter_map(|p| p.file_name())
                    .map(|n| n.to_string_lossy().to_string())
                    .collect::<Vec<_>>()
                    .join(", ");
                self.textures.forget_sample(draw::LOADED_KEY);
                self.textures.forget_named("explorer-loaded");
                self.panels.explorer.loaded = Some((names, sample));
                self.panels.explorer.requested = None;
                self.panels.explorer.prediction = None;
            }
            Err(e) => self.notice = Some(format!("cannot load the sample: {e}")),
        }
    }

    /// Applies what the workers reported since the last frame.
    fn poll_workers(&mut self) {
        let events = self.job.as_ref().map(|j| j.poll()).unwrap_or_default();
        for event in events {
            if let Some(dir) = self.session.apply(event) {
                self.open_run(&dir);
            }
        }
        if self.job.is_some() && !self.session.status.is_active() {
            self.job = None;
        }
        let replies = self
            .predictor
            .as_ref()
            .map(|p| p.poll())
            .unwrap_or_default();
        for reply in replies {
            match reply {
                PredictorReply::Loaded(r) => {
                    let ok = r.is_ok();
                    self.panels.explorer.models = Some(r);
                    if ok {
                        // ask again for what is on show, now that models are there
                        self.panels.explorer.requested = None;
                        self.request_prediction();
                    }
                }
                PredictorReply::Prediction { sample, set, .. }
                    if self.panels.explorer.requested == Some((sample, set)) =>
                {
                    // the label maps of the previous answer
                    self.textures.forget_named("pred-");
                    self.panels.explorer.prediction = Some(reply);
                }
                PredictorReply::Prediction { .. } => {}
            }
        }
    }

    fn shortcuts(&mut self, ctx: &egui::Context) {
        if ctx.input_mut(|i| i.consume_shortcut(&SHORTCUT_START)) {
            self.start_training(false);
        }
        if ctx.input_mut(|i| i.consume_shortcut(&SHORTCUT_PAUSE)) {
            self.toggle_pause();
        }
        if ctx.input_mut(|i| i.consume_shortcut(&SHORTCUT_STOP)) {
            self.stop_training();
        }
    }

    fn top_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.heading("MMANet");
            ui.separator();
            for tab in Tab::ALL {
                ui.selectable_value(&mut self.tab, tab, tab.label());
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                egui::widgets::global_theme_preference_buttons(ui);
                if let Some(action) = panel::run_buttons(ui, &self.session, self.can_resume()) {
                    self.apply(action);
                }
            });
        });
    }

    /// Carries out what a panel asked for.
    fn apply(&mut self, action: Action) {
        match action {
            Action::LoadData => self.load_data(),
            Action::StartTraining(resume) => self.start_training(resume),
            Action::TogglePause => self.toggle_pause(),
            Action::StopTraining => self.stop_training(),
            Action::OpenRun(dir) => self.open_run(&dir),
            Action::ShowTab(tab) => self.tab = tab,
            Action::Notice(text) => self.notice = Some(text),
            Action::RequestPrediction => self.request_prediction(),
            Action::OpenPretrained => self.open_pretrained(),
            Action::OpenBundleFile(path) => self.open_bundle_file(&path),
            Action::LoadExplorerSample(paths) => self.load_explorer_sample(&paths),
        }
    }

    /// Draws the panel on show: it gets the shared state as a [`PanelContext`], and what it
    /// asks for is carried out after.
    fn panel(&mut self, ui: &mut egui::Ui) {
        // the device is probed when the training panel shows it (not while a run on a known
        // device is live)
        let live_device = self.session.device.is_some() && self.session.status.is_active();
        let device = if self.tab == Tab::Training && !live_device {
            self.device_description()
        } else {
            None
        };
        let can_resume = self.can_resume();
        let mut ctx = PanelContext::new(
            &mut self.settings,
            &self.session,
            &mut self.textures,
            device,
            can_resume,
        );
        let panel: &mut dyn Panel = match self.tab {
            Tab::Data => &mut self.panels.data,
            Tab::Training => &mut self.panels.training,
            Tab::Mining => &mut self.panels.mining,
            Tab::Explorer => &mut self.panels.explorer,
            Tab::Runs => &mut self.panels.runs,
        };
        panel.ui(ui, &mut ctx);
        for action in ctx.into_actions() {
            self.apply(action);
        }
    }

    fn status_bar(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            ui.label(self.session.status.describe());
            if let Some(stage) = self.session.current_stage() {
                ui.separator();
                let epoch = stage.steps.last().map_or(0, |s| s.epoch + 1);
                ui.add(
                    egui::ProgressBar::new(stage.fraction())
                        .desired_width(180.0)
                        .text(format!("{} · epoch {epoch}/{}", stage.name, stage.epochs)),
                );
            }
            if let Some(d) = &self.session.device {
                ui.separator();
                ui.label(egui::RichText::new(d).small());
            }
            if let Some(s) = &self.shared_gpu {
                ui.separator();
                ui.label(egui::RichText::new(s).small().weak());
            }
        });
    }

    /// One frame of the whole window (also driven by the tests).
    pub fn frame(&mut self, ui: &mut egui::Ui) {
        let ctx = ui.ctx().clone();
        self.poll_workers();
        self.shortcuts(&ctx);
        self.dropped_files(&ctx);
        #[cfg(not(target_family = "wasm"))]
        if let Some(mut script) = self.script.take() {
            let keep = script.step(self, &ctx);
            if keep {
                self.script = Some(script);
            }
        }
        egui::Panel::top("top_bar").show(ui, |ui| self.top_bar(ui));
        egui::Panel::bottom("status_bar").show(ui, |ui| self.status_bar(ui));
        egui::CentralPanel::default().show(ui, |ui| {
            if let Some(n) = self.notice.clone() {
                ui.horizontal(|ui| {
                    ui.colored_label(ui.visuals().warn_fg_color, n);
                    if ui.small_button("✖").clicked() {
                        self.notice = None;
                    }
                });
                ui.separator();
            }
            self.panel(ui);
        });
        if self.session.status.is_active() {
            ctx.request_repaint_after(std::time::Duration::from_millis(250));
        }
    }

    /// A dropped model bundle (`.mmanet`) opens in the explorer (read asynchronously in the
    /// page); a dropped folder opens as a run; any other file as a dataset manifest.
    fn dropped_files(&mut self, ctx: &egui::Context) {
        let taken = self
            .dropped_bundle
            .lock()
            .ok()
            .and_then(|mut slot| slot.take());
        if let Some((name, bytes)) = taken {
            match bytes {
                Ok(bytes) => self.open_bundle(&name, &bytes),
                Err(e) => self.notice = Some(format!("cannot read {name}: {e}")),
            }
        }
        let files = ctx.input(|i| i.raw.dropped_files.clone());
        let Some(file) = files.into_iter().next() else {
            return;
        };
        let path = file.path().to_path_buf();
        if path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("mmanet"))
        {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "model.mmanet".into());
            let slot = self.dropped_bundle.clone();
            let wake = self.wake.clone();
            platform::read_dropped(file, move |bytes| {
                if let Ok(mut slot) = slot.lock() {
                    *slot = Some((name, bytes));
                }
                wake();
            });
            return;
        }
        if !path.as_os_str().is_empty() {
            if path.is_dir() {
                self.open_run(&path);
                self.tab = Tab::Runs;
            } else {
                self.settings.data = settings::DataChoice::Manifest;
                self.settings.manifest = Some(path);
                self.load_data();
                self.tab = Tab::Data;
            }
        }
    }
}

impl eframe::App for MmanetApp {
    fn ui(&mut self, ui: &mut egui::Ui, frame: &mut eframe::Frame) {
        // the previous frame's work on this thread, while a run trains (the page's test hook
        // reports it beside the gaps between frames)
        if let Some(seconds) = frame.info().cpu_usage {
            if self.session.status.is_active() {
                self.session.ui_frame_ms.push(seconds * 1e3);
            }
            // and the last frames whatever happens (the page's test compares idle drawing)
            let recent = &mut self.session.recent_frame_ms;
            if recent.len() == RECENT_FRAMES {
                recent.pop_front();
            }
            recent.push_back(seconds * 1e3);
        }
        self.frame(ui);
    }

    #[cfg(target_arch = "wasm32")]
    fn as_any_mut(&mut self) -> Option<&mut dyn std::any::Any> {
        Some(self)
    }

    fn persist_egui_memory(&self) -> bool {
        !self.scripted
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        if !self.scripted {
            eframe::set_value(
                storage,
                eframe::APP_KEY,
                &Persisted {
                    settings: self.settings.clone(),
                    tab: self.tab,
                },
            );
        }
    }
}
