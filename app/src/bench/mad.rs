//! `mmanet bench mad`: times MAD forward + backward (student gradient) on the chosen device, at
//! the classification shape (B = 64 samples, D = 512·4·4 features) and the dense segmentation
//! shape (N = 8·30·40 pixel rows, C = 512 channels), and prints the median per iteration.
//! On a wgpu device it times both implementations in the same run — the tensor-op composition
//! (the baseline) and the hand-written WGSL kernels — and prints their ratio; on the CPU device
//! the same with the host kernel (`kernels::cpu_mad`); elsewhere only the tensor ops run.

use super::{last_line, time};
use anyhow::{Context, Result};
use burn::prelude::*;
use burn::tensor::Distribution;
use mmanet_core::kernels::{runs_mad_kernels, runs_wgsl};
use mmanet_core::losses::mad::{MadImpl, MadReduction, dense_mad_loss_with, mad_loss_with};

/// Which shapes to time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchShape {
    /// B = 64, D = 8192, 2 classes.
    Cls,
    /// N = 9600, C = 512, teacher map 512 channels.
    Seg,
    /// Both.
    All,
}

/// MAD forward + backward; reads the gradient back so the device work is finished.
fn step(
    student: &Tensor<2>,
    teacher: &Tensor<2>,
    teacher_logits: &Tensor<2>,
    dense: bool,
    imp: MadImpl,
) -> Result<()> {
    let s = student.clone().require_grad();
    let loss = if dense {
        dense_mad_loss_with(s.clone(), teacher.clone(), teacher_logits.clone(), imp)?
    } else {
        mad_loss_with(
            s.clone(),
            teacher.clone(),
            teacher_logits.clone(),
            MadReduction::Official,
            imp,
        )?
    };
    let grads = loss.backward();
    let g = s
        .grad(&grads)
        .context("no gradient for the student features")?;
    let probe: f32 = g
        .sum()
        .try_into_scalar()
        .map_err(|e| anyhow::anyhow!("{}", last_line(&e.to_string())))?;
    anyhow::ensure!(probe.is_finite(), "non-finite gradient");
    Ok(())
}

/// Times the requested shapes on `device` and prints a table.
pub fn bench_mad(device: &Device, shape: BenchShape, warmup: usize, iters: usize) -> Result<()> {
    let device = device.clone().autodiff();
    device.seed(0);
    let mut cases = Vec::new();
    if matches!(shape, BenchShape::Cls | BenchShape::All) {
        cases.push(("classification", 64usize, 8192usize, 2usize, false));
    }
    if matches!(shape, BenchShape::Seg | BenchShape::All) {
        cases.push(("segmentation", 8 * 30 * 40, 512, 512, true));
    }
    // The kernels run first: a failed allocation in the op path can leave the device unusable.
    let mut paths = Vec::new();
    if runs_wgsl(&device) {
        paths.push(("WGSL kernels", MadImpl::Kernel));
    } else if runs_mad_kernels(&device) {
        paths.push(("CPU kernel", MadImpl::Kernel));
    }
    paths.push(("tensor ops", MadImpl::Ops));
    println!(
        "| case | rows | features | path | median ms (forward + backward) | speed-up vs tensor ops |"
    );
    println!("|---|---:|---:|---|---:|---:|");
    for (name, rows, dim, classes, dense) in cases {
        let relu = |t: Tensor<2>| t.clamp_min(0.0);
        let student = relu(Tensor::random(
            [rows, dim],
            Distribution::Normal(0.0, 1.0),
            &device,
        ));
        let teacher = relu(Tensor::random(
            [rows, dim],
            Distribution::Normal(0.0, 1.0),
            &device,
        ));
        let logits = Tensor::random([rows, classes], Distribution::Normal(0.0, 2.0), &device);
        let results: Vec<(&str, Result<f64>)> = paths
            .iter()
            .map(|&(label, imp)| {
                let secs = time(warmup, iters, || {
                    step(&student, &teacher, &logits, dense, imp)
                });
                (label, secs)
            })
            .collect();
        let baseline = results
            .iter()
            .find(|(label, _)| *label == "tensor ops")
            .and_then(|(_, r)| r.as_ref().ok().copied());
        for (label, result) in &results {
            match result {
                Ok(secs) => {
                    let ratio = baseline.map_or("—".to_string(), |b| format!("{:.2}×", b / secs));
                    println!(
                        "| {name} | {rows} | {dim} | {label} | {:.3} | {ratio} |",
                        secs * 1e3
                    );
                }
                Err(e) => println!("| {name} | {rows} | {dim} | {label} | failed: {e} | — |"),
            }
        }
    }
    Ok(())
}
