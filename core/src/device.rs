//! Choosing the compute device at run time: wgpu on a real GPU adapter, Burn's `flex` CPU
//! backend otherwise (no adapter, or only a software one such as llvmpipe/lavapipe, which is
//! far slower than `flex` for training).

use burn::prelude::*;
use serde::{Deserialize, Serialize};

/// What the user asked for (`--device`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChoice {
    /// wgpu on a hardware GPU adapter, else the CPU backend.
    #[default]
    Auto,
    /// Burn's `flex` CPU backend.
    Cpu,
    /// wgpu on the best adapter, even a software one.
    Wgpu,
    /// Burn's CUDA backend on the first NVIDIA GPU (the `cuda` cargo feature).
    #[cfg(feature = "cuda")]
    Cuda,
}

/// The backend that was chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// Burn's `flex` CPU backend.
    Cpu,
    /// Burn's wgpu backend.
    Wgpu,
    /// Burn's CUDA backend.
    #[cfg(feature = "cuda")]
    Cuda,
}

/// A device and a one-line description of it.
#[derive(Clone, Debug)]
pub struct SelectedDevice {
    /// The device tensors and models live on.
    pub device: Device,
    /// Backend kind.
    pub backend: BackendKind,
    /// E.g. `wgpu: NVIDIA GeForce RTX 4070 (Vulkan, discrete GPU)` or `cpu (flex)`.
    pub description: String,
}

/// The most threads [`set_cpu_threads`] accepts.
pub const MAX_CPU_THREADS: usize = 1024;

/// Sizes the thread pool Burn's CPU backend (`flex`) computes on: `Some(n)` threads, or `None`
/// for its default (every core, or `RAYON_NUM_THREADS` when set). Call it once, before the first
/// tensor operation on the CPU; returns the pool's size. Natively only: a browser page computes
/// on its own thread.
#[cfg(not(target_family = "wasm"))]
pub fn set_cpu_threads(threads: Option<usize>) -> crate::Result<usize> {
    use crate::error::CoreError;
    let Some(n) = threads else {
        return Ok(cpu_threads());
    };
    if n == 0 || n > MAX_CPU_THREADS {
        return Err(CoreError::config(
            "threads",
            format!("{n}: the CPU backend takes 1 to {MAX_CPU_THREADS} threads"),
        ));
    }
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .thread_name(|i| format!("mmanet-cpu-{i}"))
        .build_global();
    match built {
        Ok(()) => Ok(n),
        // already sized (a second call in one process): fine when the size agrees
        Err(_) if rayon::current_num_threads() == n => Ok(n),
        Err(e) => Err(CoreError::Backend(format!(
            "the CPU backend's thread pool already runs {} threads, so it cannot be set to {n}: {e}",
            rayon::current_num_threads()
        ))),
    }
}

/// How many threads Burn's CPU backend computes on (1 in a browser page).
pub fn cpu_threads() -> usize {
    #[cfg(not(target_family = "wasm"))]
    {
        rayon::current_num_threads()
    }
    #[cfg(target_family = "wasm")]
    {
        1
    }
}

/// `cpu (Burn flex backend, N threads)`.
fn cpu_label() -> String {
    match cpu_threads() {
        1 => "cpu (Burn flex backend, 1 thread)".into(),
        n => format!("cpu (Burn flex backend, {n} threads)"),
    }
}

/// Burn's CPU backend.
pub fn cpu_device() -> SelectedDevice {
    SelectedDevice {
        device: Device::flex(),
        backend: BackendKind::Cpu,
        description: cpu_label(),
    }
}

/// Burn's wgpu runtime can be initialised once per process: the first result is kept, so the
/// app can look up the adapter and later train on it.
#[cfg(not(target_family = "wasm"))]
fn wgpu_once() -> &'static std::result::Result<(Device, burn::tensor::wgpu::WgpuSetup), String> {
    static INIT: std::sync::OnceLock<
        std::result::Result<(Device, burn::tensor::wgpu::WgpuSetup), String>,
    > = std::sync::OnceLock::new();
    INIT.get_or_init(|| {
        Device::wgpu_options()
            .init_with_setup()
            .map_err(|e| e.to_string())
    })
}

/// The wgpu handles (instance, adapter, device, queue) behind Burn's wgpu device, initialising
/// it if needed; `None` without an adapter. A GUI can render on them, so that it and training
/// share one GPU device.
#[cfg(not(target_family = "wasm"))]
pub fn wgpu_setup() -> Option<burn::tensor::wgpu::WgpuSetup> {
    wgpu_once().as_ref().ok().map(|(_, setup)| setup.clone())
}

/// Picks the device for `choice` (native targets; the browser initialises wgpu asynchronously).
/// Safe to call more than once: wgpu is initialised on the first call only.
#[cfg(not(target_family = "wasm"))]
pub fn select_device(choice: DeviceChoice) -> crate::Result<SelectedDevice> {
    use crate::error::CoreError;
    use burn::tensor::wgpu::wgpu::DeviceType;
    if choice == DeviceChoice::Cpu {
        return Ok(cpu_device());
    }
    #[cfg(feature = "cuda")]
    if choice == DeviceChoice::Cuda {
        return cuda_device();
    }
    match wgpu_once() {
        Ok((device, setup)) => {
            let device = device.clone();
            let info = setup.adapter.get_info();
            let software = info.device_type == DeviceType::Cpu;
            let description = format!(
                "wgpu: {} ({:?}, {:?})",
                info.name, info.backend, info.device_type
            );
            if software && choice == DeviceChoice::Auto {
                let mut cpu = cpu_device();
                cpu.description = format!(
                    "{} — the only GPU adapter is the software adapter `{}`, which is slower; choose the wgpu device (`--device wgpu`) to use it anyway",
                    cpu_label(),
                    info.name
                );
                Ok(cpu)
            } else {
                Ok(SelectedDevice {
                    device,
                    backend: BackendKind::Wgpu,
                    description,
                })
            }
        }
        Err(e) => {
            if choice == DeviceChoice::Wgpu {
                Err(CoreError::Backend(format!("no wgpu adapter: {e}")))
            } else {
                let mut cpu = cpu_device();
                cpu.description = format!("{} — no GPU adapter found ({e})", cpu_label());
                Ok(cpu)
            }
        }
    }
}

/// Burn's CUDA backend on GPU 0, checked with a small computation (a missing driver is an
/// error, not a panic later).
#[cfg(all(feature = "cuda", not(target_family = "wasm")))]
fn cuda_device() -> crate::Result<SelectedDevice> {
    use crate::error::CoreError;
    let probe = std::panic::catch_unwind(|| {
        let device = Device::cuda(0usize);
        let sum: f32 = Tensor::<1>::ones([4], &device).sum().into_scalar();
        (device, sum)
    });
    match probe {
        Ok((device, 4.0)) => Ok(SelectedDevice {
            device,
            backend: BackendKind::Cuda,
            description: "cuda: GPU 0 (Burn CUDA backend)".into(),
        }),
        Ok((_, sum)) => Err(CoreError::Backend(format!(
            "the CUDA device computed 1+1+1+1 = {sum}"
        ))),
        Err(panic) => Err(CoreError::Backend(format!(
            "no CUDA device: {}",
            panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("the CUDA runtime failed to start")
        ))),
    }
}
