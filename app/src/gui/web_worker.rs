//! The page's compute worker (browser only): a dedicated Web Worker running the page's own
//! module, in which runs train and the WebGPU adapter is looked for, so that the page's thread
//! only draws and applies events — the page's counterpart of the desktop's training thread.
//!
//! * The page's side ([`start_training`], [`send`], [`probe`]) creates the worker on first use
//!   from `worker.js` and posts it the module the page already compiled
//!   (`wasm_bindgen::module()`), so the module is downloaded and compiled once; the worker
//!   instantiates it with a memory of its own.
//! * The worker's side ([`serve`]) answers [`WorkerRequest`]s with [`WorkerReply`]s. A run's
//!   files (checkpoints, results) stay in the worker, and a copy goes to the page as bytes when
//!   the run ends, before its `Finished` event, so the Runs, Mining and Explorer panels open it
//!   as before.
//! * The explorer's models live in the worker too ([`send_explorer`], [`explorer_replies`]):
//!   loading a run's models and predicting a sample happen there.
//! * A panic in the worker ends its run with an error in the page; the next request starts a
//!   new worker.

use super::platform;
use super::predictor::{ExplorerInWorker, ExplorerRequest, PredictorReply};
use super::training_job::{JobControl, JobEvent, JobSink};
use super::worker_protocol::{WorkerReply, WorkerRequest, decode, encode};
use js_sys::{Array, Object, Reflect, Uint8Array};
use mmanet_core::config::ExperimentConfig;
use mmanet_core::device::DeviceChoice;
use mmanet_core::experiment::{LoadedData, RunMode, run_experiment_in};
use mmanet_core::store::{MemoryStore, RunStore};
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Sender;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

/// The worker's script, beside `index.html`: it imports the module's JS glue, waits for the
/// module and calls `worker_main`.
const WORKER_SCRIPT: &str = "./worker.js";

/// The worker's name (shown by the browser's developer tools).
const WORKER_NAME: &str = "mmanet-compute";

/// What the page reports as the place its runs train.
pub const RUNS_ON: &str = "web worker mmanet-compute";

// ---------------------------------------------------------------------------------------------
// The page's side

/// A run in progress as the page follows it: its number, where its events go, and the repaint
/// request.
type JobOutlet = (u64, Sender<JobEvent>, Box<dyn Fn()>);

/// The worker as the page holds it.
struct PageSide {
    worker: web_sys::Worker,
    /// The worker said [`WorkerReply::Ready`]; until then requests wait in `queued`.
    ready: bool,
    queued: Vec<JsValue>,
    /// The run in progress.
    job: Option<JobOutlet>,
    /// Device descriptions found, and the choices asked about.
    probes: Vec<(DeviceChoice, String)>,
    asked: Vec<DeviceChoice>,
    /// The worker crashed: the next request starts a new one.
    dead: bool,
    _on_message: Closure<dyn FnMut(web_sys::MessageEvent)>,
    _on_error: Closure<dyn FnMut(web_sys::Event)>,
}

thread_local! {
    static PAGE: RefCell<Option<PageSide>> = const { RefCell::new(None) };
    static NEXT_JOB: Cell<u64> = const { Cell::new(1) };
    /// The explorer's answers not yet taken, and its repaint request.
    static EXPLORER_REPLIES: RefCell<Vec<PredictorReply>> = const { RefCell::new(Vec::new()) };
    static EXPLORER_WAKE: RefCell<Option<Box<dyn Fn()>>> = const { RefCell::new(None) };
}

/// A JS error as text.
fn js_text(e: JsValue) -> String {
    e.as_string()
        .or_else(|| {
            e.dyn_ref::<js_sys::Error>()
                .map(|e| String::from(e.message()))
        })
        .unwrap_or_else(|| format!("{e:?}"))
}

fn spawn() -> Result<PageSide, String> {
    let options = web_sys::WorkerOptions::new();
    options.set_type(web_sys::WorkerType::Module);
    options.set_name(WORKER_NAME);
    let worker = web_sys::Worker::new_with_options(WORKER_SCRIPT, &options)
        .map_err(|e| format!("cannot start the compute worker: {}", js_text(e)))?;
    let on_message =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(|e: web_sys::MessageEvent| {
            on_reply(e.data())
        });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // an `ErrorEvent` when the script threw, a plain event when it could not be loaded
    let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(|e: web_sys::Event| {
        let message = Reflect::get(&e, &"message".into())
            .ok()
            .and_then(|m| m.as_string())
            .unwrap_or_else(|| format!("{WORKER_SCRIPT} could not be loaded"));
        crashed(format!("the compute worker failed: {message}"));
    });
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    // the page's module, already compiled: the worker instantiates it without fetching it
    worker.post_message(&wasm_bindgen::module()).map_err(|e| {
        format!(
            "cannot send the module to the compute worker: {}",
            js_text(e)
        )
    })?;
    Ok(PageSide {
        worker,
        ready: false,
        queued: Vec::new(),
        job: None,
        probes: Vec::new(),
        asked: Vec::new(),
        dead: false,
        _on_message: on_message,
        _on_error: on_error,
    })
}

impl PageSide {
    /// Posts a request, or queues it until the worker is ready.
    fn post(&mut self, message: JsValue) {
        if !self.ready {
            self.queued.push(message);
        } else if let Err(e) = self.worker.post_message(&message) {
            log::error!("cannot reach the compute worker: {}", js_text(e));
        }
    }

    fn request(&mut self, request: &WorkerRequest) {
        self.post(JsValue::from_str(&encode(request)));
    }
}

/// A request with bytes beside it: `{ request: text, bytes: Uint8Array }`.
fn with_bytes(request: &WorkerRequest, bytes: &[u8]) -> JsValue {
    let message = Object::new();
    let _ = Reflect::set(
        &message,
        &"request".into(),
        &JsValue::from_str(&encode(request)),
    );
    let _ = Reflect::set(&message, &"bytes".into(), &Uint8Array::from(bytes).into());
    message.into()
}

/// Runs `f` on the page's worker, starting one when there is none (or the last crashed).
fn with_page<R>(f: impl FnOnce(&mut PageSide) -> R) -> Result<R, String> {
    PAGE.with_borrow_mut(|page| {
        if page.as_ref().is_none_or(|p| p.dead) {
            if let Some(old) = page.take() {
                old.worker.terminate();
            }
            *page = Some(spawn()?);
        }
        match page.as_mut() {
            Some(p) => Ok(f(p)),
            None => Err("no compute worker".into()),
        }
    })
}

/// Starts training `cfg` in the worker; its events go to `events`, and `wake` is called after
/// each. Returns the run's number (for [`WorkerRequest::Pause`] and [`WorkerRequest::Stop`]).
pub fn start_training(
    cfg: ExperimentConfig,
    device: DeviceChoice,
    resume: bool,
    events: Sender<JobEvent>,
    wake: Box<dyn Fn()>,
) -> Result<u64, String> {
    let job = NEXT_JOB.get();
    NEXT_JOB.set(job + 1);
    with_page(|p| {
        p.job = Some((job, events, wake));
        p.request(&WorkerRequest::Train {
            job,
            cfg: Box::new(cfg),
            device,
            resume,
        });
    })?;
    Ok(job)
}

/// Sends `request` to the worker that is running (pause and stop: without a live worker there
/// is no run to pause or stop, and no new worker is started for it).
pub fn send(request: WorkerRequest) {
    PAGE.with_borrow_mut(|page| {
        if let Some(p) = page.as_mut().filter(|p| !p.dead) {
            p.request(&request);
        }
    });
}

/// Who to wake when the explorer's answers come.
pub fn set_explorer_wake(wake: Box<dyn Fn()>) {
    EXPLORER_WAKE.set(Some(wake));
}

/// Sends the explorer's `request` to the worker (`bytes`: a bundle's, beside it).
pub fn send_explorer(request: ExplorerRequest, bytes: Option<Vec<u8>>) {
    let request = WorkerRequest::Explorer(request);
    let sent = with_page(|p| match &bytes {
        Some(b) => p.post(with_bytes(&request, b)),
        None => p.request(&request),
    });
    if let Err(e) = sent {
        explorer_answer(PredictorReply::Loaded(Err(e)));
    }
}

/// The explorer's answers since the last call.
pub fn explorer_replies() -> Vec<PredictorReply> {
    EXPLORER_REPLIES.with_borrow_mut(std::mem::take)
}

fn explorer_answer(reply: PredictorReply) {
    EXPLORER_REPLIES.with_borrow_mut(|r| r.push(reply));
    EXPLORER_WAKE.with_borrow(|w| {
        if let Some(w) = w {
            w();
        }
    });
}

/// What `choice` resolves to, once the worker has looked (the first call asks it).
pub fn probe(choice: DeviceChoice) -> Option<String> {
    let answer = with_page(|p| {
        if let Some((_, d)) = p.probes.iter().find(|(c, _)| *c == choice) {
            return Some(d.clone());
        }
        if !p.asked.contains(&choice) {
            p.asked.push(choice);
            p.request(&WorkerRequest::Probe(choice));
        }
        None
    });
    answer.unwrap_or_else(|e| Some(format!("unavailable: {e}")))
}

/// The worker crashed (or could not start): the run in progress ends with `why`.
fn crashed(why: String) {
    log::error!("{why}");
    let job = PAGE.with_borrow_mut(|page| {
        page.as_mut().and_then(|p| {
            p.dead = true;
            p.job.take()
        })
    });
    // the explorer's models were in the worker too
    explorer_answer(PredictorReply::Loaded(Err(why.clone())));
    if let Some((_, events, wake)) = job {
        let _ = events.send(JobEvent::Finished(Err(why)));
        wake();
    }
}

/// One message from the worker.
fn on_reply(data: JsValue) {
    let Some(text) = data.as_string() else {
        if let Err(e) = keep_run_files(&data) {
            log::error!("a run's files from the compute worker: {e}");
        }
        return;
    };
    let reply = match decode::<WorkerReply>(&text) {
        Ok(r) => r,
        Err(e) => {
            log::error!("{e}");
            return;
        }
    };
    match reply {
        WorkerReply::Ready => PAGE.with_borrow_mut(|page| {
            if let Some(p) = page.as_mut() {
                p.ready = true;
                for message in std::mem::take(&mut p.queued) {
                    p.post(message);
                }
            }
        }),
        WorkerReply::Probed {
            choice,
            description,
        } => PAGE.with_borrow_mut(|page| {
            if let Some(p) = page.as_mut() {
                p.probes.retain(|(c, _)| *c != choice);
                p.probes.push((choice, description));
            }
        }),
        WorkerReply::Job { job, event } => {
            let finished = matches!(event, JobEvent::Finished(_));
            PAGE.with_borrow_mut(|page| {
                let Some(p) = page.as_mut() else { return };
                let Some((current, events, wake)) = &p.job else {
                    return;
                };
                if *current != job {
                    return;
                }
                let _ = events.send(event);
                wake();
                if finished {
                    p.job = None;
                }
            });
        }
        WorkerReply::Explorer(reply) => explorer_answer(reply),
        WorkerReply::Crashed(why) => crashed(format!("the compute worker crashed: {why}")),
    }
}

/// Keeps a run's files the worker sent (`{ run: name, files: [[path, bytes], …] }`) in the
/// page.
fn keep_run_files(data: &JsValue) -> Result<(), String> {
    let name = Reflect::get(data, &"run".into())
        .ok()
        .and_then(|n| n.as_string())
        .ok_or("no run name")?;
    let files: Array = Reflect::get(data, &"files".into())
        .map_err(js_text)?
        .dyn_into()
        .map_err(|_| "no file list")?;
    let mut store = MemoryStore::new(name);
    for pair in files.iter() {
        let pair: Array = pair.dyn_into().map_err(|_| "a file entry is not a pair")?;
        let path = pair.get(0).as_string().ok_or("a file without a path")?;
        let bytes: Uint8Array = pair
            .get(1)
            .dyn_into()
            .map_err(|_| format!("{path}: no bytes"))?;
        store
            .write(&path, &bytes.to_vec())
            .map_err(|e| e.to_string())?;
    }
    platform::keep_run(store);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The worker's side

thread_local! {
    /// The run training in this worker: its number and controls.
    static RUN: RefCell<Option<(u64, Arc<JobControl>)>> = const { RefCell::new(None) };
    /// The explorer's models.
    static EXPLORER: RefCell<ExplorerInWorker> = RefCell::new(ExplorerInWorker::default());
}

fn scope() -> web_sys::DedicatedWorkerGlobalScope {
    js_sys::global().unchecked_into()
}

fn post_value(value: &JsValue) {
    if let Err(e) = scope().post_message(value) {
        log::error!("cannot reach the page: {}", js_text(e));
    }
}

fn post(reply: &WorkerReply) {
    post_value(&JsValue::from_str(&encode(reply)));
}

/// Serves the page's requests in this worker (`worker.js` calls it once, through the module's
/// `worker_main`, after instantiating the module).
pub fn serve() {
    std::panic::set_hook(Box::new(|info| {
        let message = info.to_string();
        web_sys::console::error_1(&format!("mmanet compute worker: {message}").into());
        post(&WorkerReply::Crashed(message));
    }));
    let on_request =
        Closure::<dyn FnMut(web_sys::MessageEvent)>::new(|e: web_sys::MessageEvent| {
            let data = e.data();
            if let Some(text) = data.as_string() {
                return on_request(&text, None);
            }
            // a request with bytes beside it
            let text = Reflect::get(&data, &"request".into())
                .ok()
                .and_then(|t| t.as_string());
            let bytes = Reflect::get(&data, &"bytes".into())
                .ok()
                .and_then(|b| b.dyn_into::<Uint8Array>().ok())
                .map(|b| b.to_vec());
            match text {
                Some(text) => on_request(&text, bytes),
                None => log::warn!("the compute worker got a message that is not a request"),
            }
        });
    scope().set_onmessage(Some(on_request.as_ref().unchecked_ref()));
    // it serves for the worker's lifetime
    on_request.forget();
    post(&WorkerReply::Ready);
}

/// The controls of run `job`, when it is the one training.
fn control_of(job: u64) -> Option<Arc<JobControl>> {
    RUN.with_borrow(|run| {
        run.as_ref()
            .filter(|(current, _)| *current == job)
            .map(|(_, c)| c.clone())
    })
}

fn on_request(text: &str, bytes: Option<Vec<u8>>) {
    let request = match decode::<WorkerRequest>(text) {
        Ok(r) => r,
        Err(e) => {
            log::error!("{e}");
            return;
        }
    };
    match request {
        WorkerRequest::Probe(choice) => wasm_bindgen_futures::spawn_local(async move {
            let description = match platform::select_device(choice).await {
                Ok(d) => d.description,
                Err(e) => format!("unavailable: {e}"),
            };
            post(&WorkerReply::Probed {
                choice,
                description,
            });
        }),
        WorkerRequest::Train {
            job,
            cfg,
            device,
            resume,
        } => {
            let control = Arc::new(JobControl::default());
            RUN.set(Some((job, control.clone())));
            wasm_bindgen_futures::spawn_local(async move {
                let mut sink = JobSink::new(control, move |event| {
                    post(&WorkerReply::Job { job, event });
                    true
                });
                sink.send(JobEvent::RunsOn(RUNS_ON.into()));
                let result = train(&cfg, device, resume, &mut sink).await;
                sink.send(JobEvent::Finished(result));
                RUN.with_borrow_mut(|run| {
                    if run.as_ref().is_some_and(|(current, _)| *current == job) {
                        *run = None;
                    }
                });
            });
        }
        WorkerRequest::Pause { job, paused } => {
            if let Some(c) = control_of(job) {
                c.set_paused(paused);
            }
        }
        WorkerRequest::Stop { job } => {
            if let Some(c) = control_of(job) {
                c.stop();
            }
        }
        WorkerRequest::Explorer(request) => {
            let reply = EXPLORER.with_borrow_mut(|e| e.answer(request, bytes));
            post(&WorkerReply::Explorer(reply));
        }
    }
}

/// Trains `cfg` in this worker: the data the config names, the run kept in memory (a stopped
/// run continues in the same store), a copy of its files sent to the page.
async fn train(
    cfg: &ExperimentConfig,
    device: DeviceChoice,
    resume: bool,
    sink: &mut JobSink,
) -> Result<PathBuf, String> {
    let selected = platform::select_device(device).await?;
    sink.send(JobEvent::Device(selected.description.clone()));
    let data = LoadedData::load(cfg).map_err(|e| format!("cannot load the data: {e}"))?;
    let mut store = resume
        .then(|| platform::take_run(&cfg.name))
        .flatten()
        .unwrap_or_else(|| MemoryStore::new(cfg.name.clone()));
    let result = run_experiment_in(
        cfg,
        &data,
        &selected.device,
        &mut store,
        resume,
        RunMode::Train,
        sink,
    )
    .await;
    let dir = store.location("");
    send_run_files(&store);
    platform::keep_run(store);
    result.map(|_| dir).map_err(|e| e.to_string())
}

/// Sends the page a copy of `store`'s files (`{ run: name, files: [[path, bytes], …] }`).
fn send_run_files(store: &MemoryStore) {
    let files = Array::new();
    for path in store.files() {
        let Ok(bytes) = store.read(path) else {
            continue;
        };
        let pair = Array::of2(&path.into(), &Uint8Array::from(bytes.as_slice()).into());
        files.push(&pair);
    }
    let message = Object::new();
    let set = |k: &str, v: &JsValue| Reflect::set(&message, &k.into(), v);
    if set("run", &store.name().into()).is_err() || set("files", &files.into()).is_err() {
        log::error!("cannot send run {}'s files to the page", store.name());
        return;
    }
    post_value(&message.into());
}
