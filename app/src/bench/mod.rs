//! `mmanet bench`: timings with a documented command, each case timed after untimed warm-up
//! iterations (shader compilation, autotuning) and reported as a median.
//! - `mad` (MAD forward + backward, tensor ops against the WGSL kernels),
//! - `predict` (deployment networks' samples/s by batch size),
//! - `train` (complete training steps of SF-MD and MMANet, and the deployment forward, for the
//!   classification networks and, `train_seg`, the segmentation network).

mod mad;
mod predict;
mod train;
mod train_seg;

pub use mad::{BenchShape, bench_mad};
pub use predict::{PredictNets, bench_predict};
pub use train::{TrainMethod, TrainPreset, bench_train};

use anyhow::Result;
use burn::prelude::*;
use std::time::Instant;

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs `f` `warmup + iters` times and returns the median seconds of the last `iters` (the
/// warm-up covers shader compilation and autotuning, which on wgpu can span several calls).
pub(crate) fn time<F: FnMut() -> Result<()>>(warmup: usize, iters: usize, mut f: F) -> Result<f64> {
    for _ in 0..warmup {
        f()?;
    }
    let mut times = Vec::with_capacity(iters);
    for _ in 0..iters {
        let t = Instant::now();
        f()?;
        times.push(t.elapsed().as_secs_f64());
    }
    Ok(median(times))
}

/// The innermost cause of a multi-line device error: its last line that is not a backtrace
/// note.
pub(crate) fn last_line(message: &str) -> &str {
    message
        .lines()
        .rev()
        .map(|l| l.trim().trim_end_matches(')'))
        .find(|l| {
            !l.is_empty()
                && !l.contains("backtrace")
                && !l.starts_with("Asked at")
                && !l.starts_with("Caused by")
        })
        .unwrap_or(message)
}

/// `n` deterministic input values in [-1, 1] for modality `m`.
pub(crate) fn pattern(m: usize, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 7 + m * 13) % 255) as f32 / 127.5 - 1.0)
        .collect()
}

/// Deterministic inputs for `batch` samples of `modalities` (values in [-1, 1]), as one host
/// batch.
pub(crate) fn host_batch(
    modalities: &[mmanet_core::data::ModalitySpec],
    batch: usize,
) -> mmanet_core::data::Batch {
    let (inputs, shapes) = modalities
        .iter()
        .enumerate()
        .map(|(m, spec)| {
            let values = pattern(m, batch * spec.kind.numel());
            (values, [vec![batch], spec.kind.shape()].concat())
        })
        .unzip();
    mmanet_core::data::Batch {
        inputs,
        shapes,
        labels: vec![0; batch],
        indices: (0..batch).collect(),
    }
}

/// Median seconds of one deployment forward pass of `net` on a batch of `batch` samples with
/// every modality present: host inputs uploaded, the forward pass, the softmax read back — as
/// `mmanet predict` does.
pub(crate) fn time_forward(
    net: &mmanet_core::model::MultimodalNet,
    modalities: &[mmanet_core::data::ModalitySpec],
    classes: usize,
    batch: usize,
    device: &Device,
    warmup: usize,
    iters: usize,
) -> Result<f64> {
    use mmanet_core::modality::ModalitySet;
    use mmanet_core::model::mask_tensor;
    let host = host_batch(modalities, batch);
    let sets = vec![ModalitySet::full(modalities.len()); batch];
    time(warmup, iters, || {
        let inputs = net.inputs_from_batch(&host, device)?;
        let mask = mask_tensor(&sets, modalities.len(), device);
        let p = burn::tensor::activation::softmax(net.forward(&inputs, mask).logits, 1);
        let values = mmanet_core::experiment::block_on(mmanet_core::eval::read_f32(p))?;
        anyhow::ensure!(values.len() == batch * classes, "short read");
        Ok(())
    })
}
