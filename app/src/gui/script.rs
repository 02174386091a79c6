//! `mmanet gui --demo-script`: clicks through the app in a real window — load mfeat, train
//! SF-MD and MMANet for a few epochs, look at the mining, switch a modality off in the
//! explorer — saving a screenshot of every panel, then closes. With `--script-task seg` it does
//! the same on synthetic RGB-D scenes, with screenshots of the explorer's label maps with RGB-D
//! and with RGB only; with `--script-task antispoof` on the synthetic anti-spoofing images, with
//! the explorer's answers with all three modalities and with depth off (RGB + IR, the pair MMANet
//! mines as weak there). CI runs all three under Xvfb.

use super::predictor::PredictorReply;
use super::session::RunStatus;
use super::settings::{DataChoice, Preset, Settings};
use super::{MmanetApp, Tab};
use eframe::egui;
use mmanet_core::config::{Method, TaskKind};
use mmanet_core::device::DeviceChoice;
use mmanet_core::modality::ModalitySet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the script does.
#[derive(Clone, Debug)]
pub struct ScriptOptions {
    /// Where the screenshots go (`training.png`, `mining.png`, `explorer.png`, `data.png`,
    /// `runs.png`).
    pub screenshot_dir: PathBuf,
    /// Where the run goes.
    pub output_dir: PathBuf,
    /// Epochs of each stage, at least 3 (the warm-up is about half of it).
    pub epochs: usize,
    /// Give up after this long.
    pub timeout: Duration,
    /// The training device.
    pub device: DeviceChoice,
    /// Which demo: mfeat classification ([`Preset::MfeatDemo`]), synthetic anti-spoofing
    /// ([`Preset::SyntheticAntispoof`]) or synthetic RGB-D segmentation ([`Preset::ScenesDemo`]).
    pub preset: Preset,
}

/// How the script ended (shared with [`super::run`], which turns it into the exit status).
#[derive(Clone, Default)]
pub struct ScriptOutcome(Arc<Mutex<Option<Result<(), String>>>>);

impl ScriptOutcome {
    fn set(&self, r: Result<(), String>) {
        if let Ok(mut o) = self.0.lock() {
            o.get_or_insert(r);
        }
    }

    /// `Ok` without a script or when it succeeded.
    pub fn into_result(self) -> anyhow::Result<()> {
        match self.0.lock().map(|o| o.clone()) {
            Ok(None) | Ok(Some(Ok(()))) => Ok(()),
            Ok(Some(Err(e))) => Err(anyhow::anyhow!("demo script failed: {e}")),
            Err(_) => Err(anyhow::anyhow!("demo script: state poisoned")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Step {
    Setup,
    Training,
    Shot(Tab, &'static str),
    /// A screenshot of the explorer, named after the modalities on (`explorer-rgb+ir.png`).
    ExplorerShot,
    Explore,
    Toggle,
    SecondRun,
    Compare,
    Finish,
}

/// The classification script.
const PLAN_CLS: [Step; 14] = [
    Step::Setup,
    Step::Training,
    Step::Shot(Tab::Training, "training"),
    Step::Shot(Tab::Mining, "mining"),
    Step::Explore,
    Step::Toggle,
    Step::Shot(Tab::Explorer, "explorer"),
    Step::Shot(Tab::Data, "data"),
    // a second run with a larger β, then the two side by side
    Step::SecondRun,
    Step::Training,
    Step::Compare,
    Step::Shot(Tab::Runs, "runs"),
    Step::Explore,
    Step::Finish,
];

/// The image scripts (segmentation, anti-spoofing): the explorer with every modality, then with
/// depth switched off.
const PLAN_TOGGLE: [Step; 10] = [
    Step::Setup,
    Step::Training,
    Step::Shot(Tab::Training, "training"),
    Step::Shot(Tab::Mining, "mining"),
    Step::Explore,
    Step::ExplorerShot,
    Step::Toggle,
    Step::ExplorerShot,
    Step::Shot(Tab::Data, "data"),
    Step::Finish,
];

type Saved = Arc<Mutex<Option<Result<PathBuf, String>>>>;

/// The script's progress.
pub struct DemoScript {
    opts: ScriptOptions,
    outcome: ScriptOutcome,
    step: usize,
    frames: u32,
    started: Instant,
    run_started: Instant,
    last_frame: Option<Instant>,
    frame_gaps: Vec<Duration>,
    idle_gaps: Vec<Duration>,
    last_idle_frame: Option<Instant>,
    shot: Option<Saved>,
    toggled: Option<ModalitySet>,
}

impl DemoScript {
    /// A script at its first step.
    pub fn new(opts: ScriptOptions, outcome: ScriptOutcome) -> Self {
        DemoScript {
            opts,
            outcome,
            step: 0,
            frames: 0,
            started: Instant::now(),
            run_started: Instant::now(),
            last_frame: None,
            frame_gaps: Vec::new(),
            idle_gaps: Vec::new(),
            last_idle_frame: None,
            shot: None,
            toggled: None,
        }
    }

    fn plan(&self) -> &'static [Step] {
        match self.opts.preset {
            Preset::MfeatDemo | Preset::MfeatPixImage => &PLAN_CLS,
            Preset::SyntheticAntispoof | Preset::ScenesDemo => &PLAN_TOGGLE,
        }
    }

    /// The modality the script switches off: the strongest one. mfeat's pix (the network
    /// must do with fou + mor), or depth: the scenes' RGB alone, the anti-spoofing RGB + IR.
    fn switched_off(&self) -> usize {
        match self.opts.preset {
            Preset::MfeatDemo | Preset::MfeatPixImage => 0,
            Preset::SyntheticAntispoof | Preset::ScenesDemo => 1,
        }
    }

    fn next(&mut self) {
        self.last_idle_frame = None;
        self.step += 1;
        self.frames = 0;
        self.shot = None;
    }

    fn fail(&mut self, ctx: &egui::Context, why: String) -> bool {
        eprintln!("gui-script: FAILED: {why}");
        self.outcome.set(Err(why));
        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
        false
    }

    /// Shows `tab`, lets the layout settle, saves a screenshot as `<name>.png` and moves on
    /// once it is written; `false` when the script failed.
    fn screenshot(
        &mut self,
        app: &mut MmanetApp,
        ctx: &egui::Context,
        tab: Tab,
        name: &str,
    ) -> bool {
        app.tab = tab;
        // the baseline: frame gaps with nothing training (after the first frames of a tab)
        let now = Instant::now();
        if let Some(last) = self.last_idle_frame.replace(now)
            && self.frames > 3
        {
            self.idle_gaps.push(now - last);
        }
        if let Some(saved) = &self.shot {
            let done = saved.lock().ok().and_then(|s| s.clone());
            match done {
                Some(Ok(path)) => {
                    println!("gui-script: screenshot {}", path.display());
                    self.next();
                }
                Some(Err(e)) => return self.fail(ctx, e),
                None => {}
            }
        } else if self.frames > 10 {
            // a few frames for the layout to settle
            let saved: Saved = Arc::default();
            let target = self.opts.screenshot_dir.join(format!("{name}.png"));
            let slot = saved.clone();
            let waker = ctx.clone();
            ctx.request_screenshot(move |image| {
                let result = save_png(&image, &target).map(|()| target.clone());
                if let Ok(mut s) = slot.lock() {
                    *s = Some(result);
                }
                waker.request_repaint();
            });
            self.shot = Some(saved);
        }
        true
    }

    /// Runs one frame of the script; `false` when it is over.
    pub fn step(&mut self, app: &mut MmanetApp, ctx: &egui::Context) -> bool {
        ctx.request_repaint_after(Duration::from_millis(50));
        self.frames += 1;
        if self.started.elapsed() > self.opts.timeout {
            let at = self.plan()[self.step];
            return self.fail(
                ctx,
                format!("timed out after {:?} at {at:?}", self.opts.timeout),
            );
        }
        match self.plan()[self.step] {
            Step::Setup => {
                let mut settings = Settings {
                    data: self.opts.preset.data_choice(),
                    ..Settings::default()
                };
                settings.use_preset(self.opts.preset);
                // fewer samples: the script trains three stages in well under a minute
                match settings.data {
                    DataChoice::Scenes => settings.scenes.scenes = 90,
                    DataChoice::Synthetic => settings.synthetic.samples = 300,
                    _ => {}
                }
                app.settings = Settings {
                    methods: vec![Method::SfMd, Method::Mmanet],
                    epochs: self.opts.epochs,
                    warmup_epochs: mmanet_core::mmanet_settings::warmup_for(self.opts.epochs),
                    output_dir: self.opts.output_dir.clone(),
                    device: self.opts.device,
                    ..settings
                };
                app.load_data();
                if let Some(e) = &app.session.data_error {
                    return self.fail(ctx, format!("loading the data: {e}"));
                }
                app.tab = Tab::Training;
                app.start_training(false);
                if !app.session.status.is_active() {
                    let why = app.notice.clone().unwrap_or_default();
                    return self.fail(ctx, format!("training did not start: {why}"));
                }
                println!(
                    "gui-script: {}",
                    app.shared_gpu
                        .as_deref()
                        .unwrap_or("the window renders on a wgpu device of its own")
                );
                println!(
                    "gui-script: training SF-MD and MMANet on {}",
                    app.session
                        .data_summary
                        .as_ref()
                        .map_or("the data", |d| d.name.as_str())
                );
                self.run_started = Instant::now();
                self.next();
            }
            Step::Training => match &app.session.status {
                RunStatus::Running => {
                    // how smoothly the window keeps drawing while the worker trains
                    let now = Instant::now();
                    if let Some(last) = self.last_frame.replace(now) {
                        self.frame_gaps.push(now - last);
                    }
                }
                RunStatus::Finished(dir) => {
                    self.last_frame = None;
                    report_gaps("while training", std::mem::take(&mut self.frame_gaps));
                    println!(
                        "gui-script: trained in {:.0} s, results in {}",
                        self.run_started.elapsed().as_secs_f64(),
                        dir.display()
                    );
                    let names = app.session.modality_names();
                    let weak = app
                        .session
                        .stages
                        .iter()
                        .find_map(|s| s.mining()?.weak_set)
                        .map(|w| {
                            w.iter()
                                .map(|s| s.long_label(&names))
                                .collect::<Vec<_>>()
                                .join(", ")
                        });
                    match weak {
                        Some(w) => println!("gui-script: mined weak set: {w}"),
                        None => return self.fail(ctx, "MMANet mined no weak set".into()),
                    }
                    self.next();
                }
                RunStatus::Failed(e) | RunStatus::Stopped(e) => {
                    let e = e.clone();
                    return self.fail(ctx, format!("training ended: {e}"));
                }
                _ => {}
            },
            Step::ExplorerShot => {
                let names = app.session.modality_names();
                let on = ModalitySet::from_mask(&app.panels.explorer.present).long_label(&names);
                return self.screenshot(app, ctx, Tab::Explorer, &format!("explorer-{on}"));
            }
            Step::Shot(tab, name) => return self.screenshot(app, ctx, tab, name),
            Step::Explore => {
                app.tab = Tab::Explorer;
                match &app.panels.explorer.models {
                    Some(Ok(_)) if got_prediction(app) => {
                        if self.opts.preset.task() == TaskKind::Segmentation {
                            print_prediction(app);
                        }
                        self.next();
                    }
                    Some(Err(e)) => {
                        let e = e.clone();
                        return self.fail(ctx, format!("explorer models: {e}"));
                    }
                    _ => {}
                }
            }
            Step::Toggle => {
                if self.toggled.is_none() {
                    let off = self.switched_off();
                    if let Some(p) = app.panels.explorer.present.get_mut(off) {
                        *p = false;
                    }
                    self.toggled = Some(ModalitySet::from_mask(&app.panels.explorer.present));
                } else if got_prediction(app)
                    && app.panels.explorer.requested.map(|r| r.1) == self.toggled
                {
                    print_prediction(app);
                    self.next();
                }
            }
            Step::SecondRun => {
                app.settings.beta = 0.5;
                app.tab = Tab::Training;
                app.start_training(false);
                if !app.session.status.is_active() {
                    let why = app.notice.clone().unwrap_or_default();
                    return self.fail(ctx, format!("the second run did not start: {why}"));
                }
                println!("gui-script: a second run with β = 0.5");
                self.run_started = Instant::now();
                self.next();
            }
            Step::Compare => {
                app.tab = Tab::Runs;
                if self.frames > 2 {
                    if app.panels.runs.runs.len() < 2 {
                        return self.fail(
                            ctx,
                            format!(
                                "the runs panel lists {} run(s), not 2",
                                app.panels.runs.runs.len()
                            ),
                        );
                    }
                    // newest first: A = the first run, B = the second
                    app.panels.runs.compare = [Some(1), Some(0)];
                    app.panels.runs.method = Some("MMANet".into());
                    self.next();
                }
            }
            Step::Finish => {
                report_gaps("idle", std::mem::take(&mut self.idle_gaps));
                println!("gui-script: ok");
                self.outcome.set(Ok(()));
                ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                return false;
            }
        }
        true
    }
}

/// Prints the median and longest gap between frames (the script asks for one every 50 ms).
fn report_gaps(when: &str, mut gaps: Vec<Duration>) {
    gaps.sort();
    if let (Some(median), Some(max)) = (gaps.get(gaps.len() / 2), gaps.last()) {
        println!(
            "gui-script: frame gaps {when} (one frame asked for every 50 ms): median {:.0} ms, longest {:.0} ms over {} gaps",
            median.as_secs_f64() * 1e3,
            max.as_secs_f64() * 1e3,
            gaps.len()
        );
    }
}

/// Prints each model's answer on show: its top class, or its scene scores and the classes its
/// label map shows.
fn print_prediction(app: &MmanetApp) {
    let Some(PredictorReply::Prediction {
        sample,
        set,
        result: Ok(models),
    }) = &app.panels.explorer.prediction
    else {
        return;
    };
    let names = app.session.modality_names();
    for m in models {
        let through = m.set.long_label(&names);
        if let Some(probs) = m.probs() {
            let (class, p) = probs
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .map(|(k, p)| (k, *p))
                .unwrap_or((0, 0.0));
            println!(
                "gui-script: sample {sample} through {}: {} predicts class {class} ({:.1}%)",
                set.long_label(&names),
                m.label,
                p * 100.0
            );
        } else if let Some(seg) = m.segmentation() {
            let mut present = seg.map.classes.clone();
            present.sort_unstable();
            present.dedup();
            let scores = seg.scores.map_or("unscored".to_string(), |s| {
                format!(
                    "mIoU {:.1}%, pixel accuracy {:.1}%",
                    s.miou * 100.0,
                    s.pixel_accuracy * 100.0
                )
            });
            println!(
                "gui-script: scene {sample} through {}: {} sees {through}: {scores}, {} classes in its map",
                set.long_label(&names),
                m.label,
                present.len()
            );
        }
    }
}

fn got_prediction(app: &MmanetApp) -> bool {
    matches!(
        &app.panels.explorer.prediction,
        Some(PredictorReply::Prediction { result: Ok(_), sample, set })
            if app.panels.explorer.requested == Some((*sample, *set))
    )
}

/// Writes an egui screenshot as PNG.
fn save_png(image: &egui::ColorImage, path: &std::path::Path) -> Result<(), String> {
    let [w, h] = image.size;
    let bytes: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
    let buffer = image::RgbaImage::from_raw(w as u32, h as u32, bytes)
        .ok_or_else(|| "screenshot has the wrong size".to_string())?;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    buffer
        .save(path)
        .map_err(|e| format!("{}: {e}", path.display()))
}
