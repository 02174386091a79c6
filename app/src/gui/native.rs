//! The desktop window: eframe's native event loop, optionally rendering on Burn's wgpu device.

use super::{MmanetApp, Settings, Tab, script, script::ScriptOptions};
use anyhow::{Result, anyhow};
use eframe::egui;
use mmanet_core::device::{BackendKind, DeviceChoice, select_device};
use std::sync::Arc;

/// Whether the window renders on Burn's wgpu device (one GPU device for display and training).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum GpuSharing {
    /// Share when Burn finds a hardware GPU adapter.
    Auto,
    /// Share even a software adapter (llvmpipe/lavapipe); an error without any adapter.
    On,
    /// The window gets a wgpu device of its own.
    Off,
}

/// Burn's wgpu handles when the window should render on them.
fn shared_gpu(sharing: GpuSharing) -> Result<Option<burn::tensor::wgpu::WgpuSetup>> {
    Ok(match sharing {
        GpuSharing::Off => None,
        GpuSharing::Auto => {
            let selected = select_device(DeviceChoice::Auto)?;
            if selected.backend == BackendKind::Wgpu {
                mmanet_core::device::wgpu_setup()
            } else {
                None
            }
        }
        GpuSharing::On => Some(mmanet_core::device::wgpu_setup().ok_or_else(|| {
            anyhow!("--gpu-sharing on: Burn found no wgpu adapter to share with the window")
        })?),
    })
}

/// Opens the window and runs until it is closed. With a script, clicks through a tiny run,
/// saves screenshots and exits (non-zero when the script fails).
pub fn run(script: Option<ScriptOptions>, sharing: GpuSharing) -> Result<()> {
    let scripted = script.is_some();
    let shared = shared_gpu(sharing)?;
    let shared_label = shared.as_ref().map(|s| {
        let info = s.adapter.get_info();
        format!(
            "display and training share {} ({:?})",
            info.name, info.backend
        )
    });
    let script_state =
        std::env::temp_dir().join(format!("mmanet-gui-script-{}", std::process::id()));
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("MMANet — incomplete multimodal learning")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([960.0, 600.0])
            .with_drag_and_drop(true),
        // A scripted run neither reads nor writes the user's remembered state.
        persist_window: !scripted,
        persistence_path: scripted.then(|| script_state.clone()),
        ..Default::default()
    };
    let mut options = options;
    if let Some(setup) = shared {
        // egui renders on Burn's wgpu device: one device for the window and the training
        options.wgpu_options.wgpu_setup = eframe::egui_wgpu::WgpuSetupExisting {
            instance: setup.instance,
            adapter: setup.adapter,
            device: setup.device,
            queue: setup.queue,
        }
        .into();
    }
    let outcome = script::ScriptOutcome::default();
    let outcome_in_app = outcome.clone();
    eframe::run_native(
        "mmanet",
        options,
        Box::new(move |cc| {
            let ctx = cc.egui_ctx.clone();
            let wake: Arc<dyn Fn() + Send + Sync> = Arc::new(move || ctx.request_repaint());
            let persisted: Option<(Settings, Tab)> = if scripted {
                None
            } else {
                cc.storage.and_then(super::remembered)
            };
            let (settings, tab) = persisted.unwrap_or((Settings::default(), Tab::Data));
            let mut app = MmanetApp::new(settings, tab, wake);
            app.shared_gpu = shared_label;
            if let Some(opts) = script {
                app.script = Some(script::DemoScript::new(opts, outcome_in_app));
                app.scripted = true;
            }
            Ok(Box::new(app))
        }),
    )
    .map_err(|e| anyhow!("the window could not be opened: {e}"))?;
    if scripted {
        let _ = std::fs::remove_dir_all(&script_state);
    }
    outcome.into_result()
}
