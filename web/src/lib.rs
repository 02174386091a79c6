//! The mmanet app in a web page: the desktop app's panels (`mmanet_app::gui`) in eframe's web
//! runner. Training runs on Burn's wgpu backend on the page's WebGPU adapter, or on Burn's CPU
//! backend in wasm where the browser has none; runs are kept in memory.
//!
//! `index.html` (in `static/`) loads the module with a progress bar, creates a [`WebHandle`]
//! and starts it on the page's canvas. URL parameters set the training panel before the first
//! frame, and `train=1` starts a run at once (what the browser tests use):
//! `?preset=mfeat-demo&methods=sf-md,mmanet&epochs=4&device=wgpu&train=1`. A visit with no preset
//! and no run opens the pretrained mfeat model in the explorer (`pretrained=0`: not).
//! [`WebHandle::status`] returns the app's state as JSON for scripts and tests.
//!
//! Training runs in the page's compute worker: `worker.js` (in `static/`) gets the module from
//! the page, instantiates it and calls [`worker_main`].

#![cfg(target_family = "wasm")]

use eframe::wasm_bindgen::{self, prelude::*};
use mmanet_app::gui::settings::{Preset, Settings};
use mmanet_app::gui::{MmanetApp, Tab};
use mmanet_core::config::Method;
use mmanet_core::device::DeviceChoice;
use std::sync::Arc;

/// How soon the page shows what its compute worker reported.
const WORKER_EVENT_REPAINT: std::time::Duration = std::time::Duration::from_millis(100);

/// What the URL asked for.
#[derive(Default)]
struct UrlOptions {
    start: bool,
    tab: Option<Tab>,
    /// Open the pretrained mfeat model in the explorer (a visit that asks for no preset and no
    /// run; `pretrained=0` says no).
    pretrained: bool,
}

/// Applies `?preset=…&methods=…&epochs=…&batch=…&scenes=…&samples=…&warmup=…&beta=…&device=…&train=1&tab=…`
/// to `settings` (`scenes`: how many synthetic RGB-D scenes; `samples`: how many synthetic
/// anti-spoofing samples);
/// an unknown value is reported and ignored.
fn apply_url(settings: &mut Settings, query: &web_sys::UrlSearchParams) -> UrlOptions {
    let mut opts = UrlOptions::default();
    if let Some(p) = query.get("preset") {
        match Preset::ALL
            .iter()
            .find(|k| k.file().ends_with(&format!("/{p}.toml")))
        {
            Some(k) => {
                settings.use_preset(*k);
                settings.data = k.data_choice();
            }
            None => log::warn!("unknown preset `{p}`"),
        }
    }
    if let Some(m) = query.get("methods") {
        let parsed: Result<Vec<Method>, _> = m
            .split(',')
            .map(|s| serde_json::from_value(serde_json::Value::String(s.trim().into())))
            .collect();
        match parsed {
            Ok(methods) if !methods.is_empty() => settings.methods = methods,
            _ => log::warn!("methods: `{m}` is not a list like sf-md,mad,mmanet,sf"),
        }
    }
    let number = |key: &str| query.get(key).and_then(|v| v.parse::<f64>().ok());
    if let Some(e) = number("epochs") {
        settings.epochs = e as usize;
        // as `mmanet demo --epochs`: a warm-up that fits inside the run
        if settings.epochs >= 3 && settings.warmup_epochs + 1 >= settings.epochs {
            settings.warmup_epochs = mmanet_core::mmanet_settings::warmup_for(settings.epochs);
        }
    }
    if let Some(n) = number("scenes") {
        settings.scenes.scenes = n as usize;
    }
    if let Some(n) = number("samples") {
        settings.synthetic.samples = n as usize;
    }
    if let Some(b) = number("batch") {
        settings.batch_size = Some(b as usize);
    }
    if let Some(w) = number("warmup") {
        settings.warmup_epochs = w as usize;
    }
    if let Some(a) = number("alpha") {
        settings.alpha = a;
    }
    if let Some(b) = number("beta") {
        settings.beta = b;
    }
    if let Some(d) = query.get("device") {
        match d.as_str() {
            "auto" => settings.device = DeviceChoice::Auto,
            "cpu" => settings.device = DeviceChoice::Cpu,
            "wgpu" | "webgpu" => settings.device = DeviceChoice::Wgpu,
            other => log::warn!("device: `{other}` is not auto, cpu or wgpu"),
        }
    }
    opts.tab = query.get("tab").and_then(|t| match t.as_str() {
        "data" => Some(Tab::Data),
        "training" => Some(Tab::Training),
        "mining" => Some(Tab::Mining),
        "explorer" => Some(Tab::Explorer),
        "runs" => Some(Tab::Runs),
        _ => None,
    });
    opts.start = query.get("train").is_some_and(|v| v == "1" || v == "true");
    opts.pretrained = !opts.start
        && query.get("preset").is_none()
        && query.get("pretrained").is_none_or(|v| v != "0");
    opts
}

/// The app in a page: create one, then [`WebHandle::start`] it on a canvas.
#[wasm_bindgen]
pub struct WebHandle {
    runner: eframe::WebRunner,
}

#[wasm_bindgen]
impl WebHandle {
    /// A runner that logs to the browser console.
    #[wasm_bindgen(constructor)]
    #[expect(clippy::new_without_default, reason = "a JS constructor")]
    pub fn new() -> Self {
        eframe::WebLogger::init(log::LevelFilter::Info).ok();
        WebHandle {
            runner: eframe::WebRunner::new(),
        }
    }

    /// Starts the app on `canvas`, with the settings remembered by this browser and those the
    /// URL gives.
    pub async fn start(&self, canvas: web_sys::HtmlCanvasElement) -> Result<(), JsValue> {
        let query = web_sys::window()
            .and_then(|w| w.location().search().ok())
            .and_then(|s| web_sys::UrlSearchParams::new_with_str(&s).ok());
        let web_options = eframe::WebOptions {
            // egui draws with WebGL2; Burn has WebGPU to itself
            renderer: eframe::Renderer::Glow,
            ..Default::default()
        };
        self.runner
            .start(
                canvas,
                web_options,
                Box::new(move |cc| {
                    let ctx = cc.egui_ctx.clone();
                    // The worker's events arrive up to a hundred times a second; the page
                    // shows them at most ten times a second, so that drawing (on a software
                    // renderer, a large part of a core) leaves the page's thread free between
                    // frames. Input still repaints at once.
                    let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
                        ctx.request_repaint_after(WORKER_EVENT_REPAINT);
                    });
                    let (mut settings, mut tab) = cc
                        .storage
                        .and_then(mmanet_app::gui::remembered)
                        .unwrap_or((Settings::default(), Tab::Data));
                    let opts = match &query {
                        Some(q) => apply_url(&mut settings, q),
                        None => UrlOptions {
                            pretrained: true,
                            ..UrlOptions::default()
                        },
                    };
                    if opts.start {
                        tab = Tab::Training;
                    }
                    let mut app = MmanetApp::new(settings, opts.tab.unwrap_or(tab), wake);
                    if opts.start {
                        app.start_training(false);
                    }
                    if opts.pretrained {
                        // the explorer answers at once, before any training
                        app.open_pretrained();
                        if let Some(t) = opts.tab {
                            app.tab = t;
                        }
                    }
                    Ok(Box::new(app))
                }),
            )
            .await
    }

    /// The app's state as JSON (see `MmanetApp::status_report`); `null` before it started.
    pub fn status(&self) -> String {
        match self.runner.app_mut::<MmanetApp>() {
            Some(app) => serde_json::to_string(&app.status_report())
                .unwrap_or_else(|e| serde_json::json!({ "error": e.to_string() }).to_string()),
            None => "null".into(),
        }
    }

    /// Pauses the run, or continues a paused one (the Pause button, for scripts and tests).
    pub fn toggle_pause(&self) {
        if let Some(mut app) = self.runner.app_mut::<MmanetApp>() {
            app.toggle_pause();
        }
    }

    /// Stops the run after its current step (the Stop button).
    pub fn stop(&self) {
        if let Some(mut app) = self.runner.app_mut::<MmanetApp>() {
            app.stop_training();
        }
    }

    /// Continues the stopped run (the Continue button); `false` when there is none.
    pub fn continue_run(&self) -> bool {
        match self.runner.app_mut::<MmanetApp>() {
            Some(mut app) if app.can_resume() => {
                app.start_training(true);
                true
            }
            _ => false,
        }
    }

    /// Whether the app crashed.
    pub fn has_panicked(&self) -> bool {
        self.runner.has_panicked()
    }

    /// The crash message, if it crashed.
    pub fn panic_message(&self) -> Option<String> {
        self.runner.panic_summary().map(|s| s.message())
    }
}

/// The compute worker's entry point: `worker.js` calls it once it has instantiated the module
/// the page sent; from then on the worker trains what the page asks (see
/// `mmanet_app::gui::serve_compute_worker`).
#[wasm_bindgen]
pub fn worker_main() {
    eframe::WebLogger::init(log::LevelFilter::Info).ok();
    mmanet_app::gui::serve_compute_worker();
}
