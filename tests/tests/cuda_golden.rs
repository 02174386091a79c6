//! The MAD and MAR golden cases on Burn's CUDA backend, where MAD runs as tensor ops (the WGSL
//! kernels are for wgpu). Built with `--features cuda` only:
//! `cargo test --release -p mmanet-tests --features cuda --test cuda_golden`. On a machine
//! without an NVIDIA GPU it says so and passes; where one is present every case must pass.
#![cfg(feature = "cuda")]

use mmanet_core::device::{DeviceChoice, select_device};
use mmanet_tests::golden_checks::check_all;

#[test]
fn every_golden_case_passes_on_cuda() {
    match select_device(DeviceChoice::Cuda) {
        Ok(selected) => {
            let n = check_all(&selected.device);
            assert!(n >= 8, "ran {n} golden cases");
            eprintln!("{n} golden cases passed on {}", selected.description);
        }
        Err(e) => eprintln!(
            "NOT RUN on CUDA: {e} — the golden cases run on CUDA where an NVIDIA GPU is present"
        ),
    }
}
