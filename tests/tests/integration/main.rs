//! The integration tests, one module per subject, in one test binary: each test binary links
//! the whole of Burn and re-instantiates the generic code it uses, so one binary instead of
//! twenty compiles and links several CPU-minutes faster, and the slow tests on the software GPU
//! run beside the CPU ones instead of after them.
//!
//! Run one subject with a filter, e.g. `cargo test --release -p mmanet-tests --test integration
//! -- fuzz::`. Two tests keep binaries of their own: `mad_kernels_blocked` (it sets a global
//! block size) and `cuda_golden` (the `cuda` feature).

mod architecture;
mod bad_input;
mod bundle;
mod combinations;
mod configs;
mod cpu_kernels;
mod end_to_end;
mod fuzz;
mod golden_losses;
mod imagenet;
mod loaders;
mod mad_kernels;
mod metrics_golden;
mod mmanet_training;
mod model;
mod rgbd_loaders;
mod run_folders;
mod segmentation;
mod synthetic;
mod wgpu_parity;
