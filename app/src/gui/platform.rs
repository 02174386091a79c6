//! What differs between the desktop and the browser, in one place:
//! * where runs live — run folders on disk, or in memory for the page's lifetime;
//! * how the compute device is found — synchronously natively, asynchronously in the browser
//!   (WebGPU, else Burn's CPU backend in wasm);
//! * where training runs — a worker thread natively, the page's compute worker (a Web Worker,
//!   [`super::web_worker`]) in the browser, which also looks for the WebGPU adapter.

use mmanet_core::store::RunStore;
use std::path::{Path, PathBuf};

pub use imp::*;

#[cfg(not(target_family = "wasm"))]
mod imp {
    use super::*;
    use mmanet_core::device::{DeviceChoice, select_device};
    use mmanet_core::store::FolderStore;

    /// The files of the run at `dir`.
    pub fn open_run_store(dir: &Path) -> Result<Box<dyn RunStore + Send>, String> {
        if !dir.is_dir() {
            return Err(format!("{} is not a folder", dir.display()));
        }
        Ok(Box::new(FolderStore::new(dir)))
    }

    /// The runs under `output_dir`, newest first.
    pub fn list_run_dirs(output_dir: &Path) -> Vec<PathBuf> {
        mmanet_core::runs::list_runs(output_dir)
    }

    /// Whether a run called `name` exists under `output_dir`.
    pub fn run_exists(output_dir: &Path, name: &str) -> bool {
        output_dir.join(name).exists()
    }

    /// Whether the app runs in a browser page (no files: runs stay in memory, no file dialogs).
    pub const IN_BROWSER: bool = false;

    /// A file chosen in the system's dialog.
    pub fn pick_file(title: &str, filter: &str, extensions: &[&str]) -> Option<PathBuf> {
        rfd::FileDialog::new()
            .set_title(title)
            .add_filter(filter, extensions)
            .pick_file()
    }

    /// A folder chosen in the system's dialog.
    pub fn pick_folder() -> Option<PathBuf> {
        rfd::FileDialog::new().pick_folder()
    }

    /// Reads a file dropped on the window; `deliver` gets its bytes (at once natively).
    pub fn read_dropped(
        file: egui::DroppedFileHandle,
        deliver: impl FnOnce(Result<Vec<u8>, String>) + 'static,
    ) {
        deliver(file.bytes());
    }

    /// Describes the device `choice` resolves to (may initialise wgpu; call off the UI thread).
    pub fn probe_device(choice: DeviceChoice) -> String {
        match select_device(choice) {
            Ok(d) => d.description,
            Err(e) => format!("unavailable: {e}"),
        }
    }
}

#[cfg(target_family = "wasm")]
mod imp {
    use super::*;
    use mmanet_core::device::{BackendKind, DeviceChoice, SelectedDevice, cpu_device};
    use mmanet_core::store::MemoryStore;
    use std::cell::RefCell;
    use wasm_bindgen::JsCast;

    thread_local! {
        /// The page's runs, oldest first.
        static RUNS: RefCell<Vec<MemoryStore>> = const { RefCell::new(Vec::new()) };
        /// The WebGPU adapter, once looked for.
        static WEBGPU: RefCell<WebGpu> = const { RefCell::new(WebGpu::NotAsked) };
    }

    enum WebGpu {
        NotAsked,
        Pending,
        /// Burn's wgpu device and its description and whether the adapter is a software one;
        /// or why there is none.
        Ready(Result<(burn::prelude::Device, String, bool), String>),
    }

    /// Whether the app runs in a browser page (no files: runs stay in memory, no file dialogs).
    pub const IN_BROWSER: bool = true;

    /// No file dialogs in the page (the buttons are hidden).
    pub fn pick_file(_title: &str, _filter: &str, _extensions: &[&str]) -> Option<PathBuf> {
        None
    }

    /// No folder dialogs in the page (the buttons are hidden).
    pub fn pick_folder() -> Option<PathBuf> {
        None
    }

    /// Reads a file dropped on the page; `deliver` gets its bytes once the browser has read
    /// them (asynchronously, on the page's event loop).
    pub fn read_dropped(
        file: egui::DroppedFileHandle,
        deliver: impl FnOnce(Result<Vec<u8>, String>) + 'static,
    ) {
        wasm_bindgen_futures::spawn_local(async move {
            deliver(file.bytes_async().await);
        });
    }

    /// Keeps a run's files for the page's lifetime (replacing an earlier copy of the same run).
    pub fn keep_run(store: MemoryStore) {
        RUNS.with_borrow_mut(|runs| {
            runs.retain(|r| r.name() != store.name());
            runs.push(store);
        });
    }

    /// Takes a kept run out (to continue it).
    pub fn take_run(name: &str) -> Option<MemoryStore> {
        RUNS.with_borrow_mut(|runs| {
            let k = runs.iter().position(|r| r.name() == name)?;
            Some(runs.remove(k))
        })
    }

    /// A copy of the kept run called `name`.
    pub fn run_store(name: &str) -> Option<MemoryStore> {
        RUNS.with_borrow(|runs| runs.iter().find(|r| r.name() == name).cloned())
    }

    /// The files of the run shown as `dir` (`memory:<name>`).
    pub fn open_run_store(dir: &Path) -> Result<Box<dyn RunStore + Send>, String> {
        RUNS.with_borrow(|runs| {
            runs.iter()
                .find(|r| r.location("") == dir)
                .map(|r| Box::new(r.clone()) as Box<dyn RunStore + Send>)
                .ok_or_else(|| format!("{} is not a run of this page", dir.display()))
        })
    }

    /// This page's runs, newest first.
    pub fn list_run_dirs(_output_dir: &Path) -> Vec<PathBuf> {
        RUNS.with_borrow(|runs| runs.iter().rev().map(|r| r.location("")).collect())
    }

    /// Whether this page has a run called `name`.
    pub fn run_exists(_output_dir: &Path, name: &str) -> bool {
        RUNS.with_borrow(|runs| runs.iter().any(|r| r.name() == name))
    }

    /// Describes the device `choice` resolves to once the page's compute worker has looked for
    /// the WebGPU adapter (asking it on first use).
    pub fn probe_device(choice: DeviceChoice) -> Option<String> {
        super::super::web_worker::probe(choice)
    }

    fn pick(
        choice: DeviceChoice,
        webgpu: &Result<(burn::prelude::Device, String, bool), String>,
    ) -> Result<SelectedDevice, String> {
        let cpu = |why: String| {
            let mut d = cpu_device();
            d.description = format!("cpu (Burn flex backend in wasm) — {why}");
            d
        };
        match (choice, webgpu) {
            (DeviceChoice::Cpu, _) => Ok(cpu("chosen in the training panel".into())),
            (DeviceChoice::Wgpu, Err(e)) => Err(format!("no WebGPU adapter: {e}")),
            (DeviceChoice::Auto, Err(e)) => Ok(cpu(format!(
                "no WebGPU adapter ({e}), so training runs on the CPU, slower"
            ))),
            (DeviceChoice::Auto, Ok((_, name, true))) => Ok(cpu(format!(
                "the only WebGPU adapter is the software adapter `{name}`, which is slower; choose the wgpu device to use it anyway"
            ))),
            (_, Ok((device, name, _))) => Ok(SelectedDevice {
                device: device.clone(),
                backend: BackendKind::Wgpu,
                description: name.clone(),
            }),
        }
    }

    fn start_webgpu() {
        let start = WEBGPU.with_borrow_mut(|w| {
            if matches!(w, WebGpu::NotAsked) {
                *w = WebGpu::Pending;
                true
            } else {
                false
            }
        });
        if start {
            wasm_bindgen_futures::spawn_local(async {
                let result = init_webgpu().await;
                WEBGPU.with_borrow_mut(|w| *w = WebGpu::Ready(result));
            });
        }
    }

    async fn init_webgpu() -> Result<(burn::prelude::Device, String, bool), String> {
        use burn::tensor::wgpu::wgpu::DeviceType;
        let has_webgpu = navigator()
            .map(|n| js_sys::Reflect::has(&n, &"gpu".into()).unwrap_or(false))
            .unwrap_or(false);
        if !has_webgpu {
            return Err("this browser has no WebGPU".into());
        }
        let (device, setup) = burn::prelude::Device::wgpu_options()
            .init_with_setup_async()
            .await
            .map_err(|e| {
                log::warn!("no WebGPU adapter: {e}");
                "the browser offered no adapter".to_string()
            })?;
        let info = setup.adapter.get_info();
        let software = info.device_type == DeviceType::Cpu;
        // browsers tell wgpu no adapter name; their own adapter info has vendor and architecture
        let name = match adapter_info_from_page().await {
            Some(n) => n,
            None => info.name.clone(),
        };
        let kind = if software { "software" } else { "GPU" };
        Ok((device, format!("wgpu (WebGPU): {name} ({kind})"), software))
    }

    /// The page's or the worker's `navigator`.
    fn navigator() -> Option<wasm_bindgen::JsValue> {
        js_sys::Reflect::get(&js_sys::global(), &"navigator".into())
            .ok()
            .filter(|n| !n.is_undefined())
    }

    /// `vendor architecture` (or the description) of the WebGPU adapter.
    async fn adapter_info_from_page() -> Option<String> {
        use js_sys::Reflect;
        let gpu = Reflect::get(&navigator()?, &"gpu".into()).ok()?;
        let request: js_sys::Function = Reflect::get(&gpu, &"requestAdapter".into()).ok()?.into();
        let promise: js_sys::Promise = request.call0(&gpu).ok()?.into();
        let adapter = wasm_bindgen_futures::JsFuture::from(promise).await.ok()?;
        let info = Reflect::get(&adapter, &"info".into()).ok()?;
        let field = |k: &str| {
            Reflect::get(&info, &k.into())
                .ok()
                .and_then(|v| v.as_string())
                .filter(|s| !s.is_empty())
        };
        let text = match (field("vendor"), field("architecture"), field("description")) {
            (_, _, Some(d)) => d,
            (Some(v), Some(a), None) => format!("{v} {a}"),
            (Some(v), None, None) => v,
            _ => return None,
        };
        Some(text)
    }

    /// The device for `choice`, waiting for the WebGPU search when it is still running.
    pub async fn select_device(choice: DeviceChoice) -> Result<SelectedDevice, String> {
        loop {
            let picked = WEBGPU.with_borrow(|w| match w {
                WebGpu::Ready(r) => Some(pick(choice, r)),
                _ => None,
            });
            if let Some(p) = picked {
                return p;
            }
            start_webgpu();
            sleep_ms(20).await;
        }
    }

    /// Waits `ms` milliseconds on this thread's event loop (the page's, or its worker's:
    /// messages, rendering and input go on).
    pub async fn sleep_ms(ms: i32) {
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            let global = js_sys::global();
            let set_timeout = js_sys::Reflect::get(&global, &"setTimeout".into())
                .ok()
                .and_then(|f| f.dyn_into::<js_sys::Function>().ok());
            match set_timeout {
                Some(f) => {
                    let _ = f.call2(&global, &resolve, &ms.into());
                }
                None => {
                    let _ = resolve.call0(&wasm_bindgen::JsValue::UNDEFINED);
                }
            }
        });
        let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
    }
}
