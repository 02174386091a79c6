//! `mmanet bench mad`: times MAD forward + backward (student gradient) on the chosen device, at
//! the classification shape (B = 64 samples, D = 512·4·4 features) and the dense segmentation
//! shape (N = 8·30·40 pixel rows, C = 512 channels), and prints the median per iteration.
//! On a wgpu device it times both implementations in the same run — the tensor-op composition
//! (the baseline) and the hand-written WGSL kernels — and prints their ratio; elsewhere only
//! the tensor ops run.

use anyhow::{Context, Result};
use burn::prelude::*;
use burn::tensor::Distribution;
use mmanet_core::kernels::runs_wgsl;
use mmanet_core::losses::mad::{MadImpl, MadReduction, dense_mad_loss_with, mad_loss_with};
use std::time::Instant;

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

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Runs `f` `warmup + iters` times and returns the median seconds of the last `iters` (the
/// warm-up covers shader compilation and autotuning, which on wgpu can span several calls).
fn time<F: FnMut() -> Result<()>>(warmup: usize, iters: usize, mut f: F) -> Result<f64> {
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

/// The innermost cause of a multi-line device error: its last line that is not a backtrace
/// note.
fn last_line(message: &str) -> &str {
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

/// Which deployment networks `bench predict` times.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PredictNets {
    /// the mfeat MLP (views 240, 76, 6; 10 classes)
    Mlp,
    /// ResNet-18-SE `small` (three 3×112×112 images, 2 classes)
    Small,
    /// ResNet-18-SE `paper` (three 3×112×112 images, 2 classes)
    Paper,
    /// all three
    All,
}

/// `mmanet bench predict`: samples per second of deployment networks (no regularization head)
/// at each batch size — host inputs uploaded, the forward pass, the softmax read back, as
/// `mmanet predict` does — with the throughput relative to batch 1 of the same network. With
/// `bundle`, its network alone.
pub fn bench_predict(
    device: &Device,
    nets: PredictNets,
    bundle: Option<&mmanet_core::bundle::Bundle>,
    batches: &[usize],
    warmup: usize,
    iters: usize,
) -> Result<()> {
    use mmanet_core::data::{ModalityKind, ModalitySpec};
    use mmanet_core::modality::ModalitySet;
    use mmanet_core::model::{ImagePreset, ModelConfig, MultimodalNet, mask_tensor};
    let vector = |name: &str, dim| ModalitySpec {
        name: name.into(),
        kind: ModalityKind::Vector { dim },
    };
    let image = |name: &str| ModalitySpec {
        name: name.into(),
        kind: ModalityKind::Image {
            channels: 3,
            height: 112,
            width: 112,
        },
    };
    let faces = || vec![image("rgb"), image("depth"), image("ir")];
    let preset = |p| ModelConfig {
        image_preset: p,
        ..ModelConfig::default()
    };
    let mut cases: Vec<(String, Vec<ModalitySpec>, usize, ModelConfig)> = Vec::new();
    if let Some(b) = bundle {
        let h = &b.header;
        anyhow::ensure!(
            h.task == mmanet_core::config::TaskKind::Classification,
            "bench predict times classifiers; this bundle segments"
        );
        cases.push((
            format!("{} on {}", h.method, h.dataset),
            h.modalities.clone(),
            h.class_names.len(),
            h.config.model.clone(),
        ));
    } else {
        if matches!(nets, PredictNets::Mlp | PredictNets::All) {
            let mlp = vec![vector("pix", 240), vector("fou", 76), vector("mor", 6)];
            cases.push(("mfeat MLP".into(), mlp, 10, ModelConfig::default()));
        }
        if matches!(nets, PredictNets::Small | PredictNets::All) {
            cases.push((
                "ResNet-18-SE small".into(),
                faces(),
                2,
                preset(ImagePreset::Small),
            ));
        }
        if matches!(nets, PredictNets::Paper | PredictNets::All) {
            cases.push((
                "ResNet-18-SE paper".into(),
                faces(),
                2,
                preset(ImagePreset::Paper),
            ));
        }
    }
    device.seed(0);
    println!(
        "| network | parameters | batch | median ms per batch | samples/s | throughput vs batch 1 |"
    );
    println!("|---|---:|---:|---:|---:|---:|");
    for (name, modalities, classes, model) in cases {
        let net = match bundle {
            Some(b) => b.classifier(device)?,
            None => MultimodalNet::new(&modalities, classes, &model, false, device)?,
        };
        let params = net.num_trainable_params();
        let mut per_sample_at_1 = None;
        for &batch in batches {
            let host: Vec<(Vec<f32>, Vec<usize>)> = modalities
                .iter()
                .enumerate()
                .map(|(m, spec)| {
                    let n = batch * spec.kind.numel();
                    let values = (0..n)
                        .map(|i| ((i * 7 + m * 13) % 255) as f32 / 127.5 - 1.0)
                        .collect();
                    (values, [vec![batch], spec.kind.shape()].concat())
                })
                .collect();
            let sets = vec![ModalitySet::full(modalities.len()); batch];
            let result = time(warmup, iters, || {
                let b = mmanet_core::data::Batch {
                    inputs: host.iter().map(|(v, _)| v.clone()).collect(),
                    shapes: host.iter().map(|(_, s)| s.clone()).collect(),
                    labels: vec![0; batch],
                    indices: (0..batch).collect(),
                };
                let inputs = net.inputs_from_batch(&b, device)?;
                let mask = mask_tensor(&sets, modalities.len(), device);
                let p = burn::tensor::activation::softmax(net.forward(&inputs, mask).logits, 1);
                let values = mmanet_core::pipeline::block_on(mmanet_core::eval::read_f32(p))?;
                anyhow::ensure!(values.len() == batch * classes, "short read");
                Ok(())
            });
            match result {
                Ok(secs) => {
                    let per_sample = secs / batch as f64;
                    if batch == 1 {
                        per_sample_at_1 = Some(per_sample);
                    }
                    let ratio = per_sample_at_1
                        .map_or("—".to_string(), |b1| format!("{:.1}×", b1 / per_sample));
                    println!(
                        "| {name} | {params} | {batch} | {:.3} | {:.0} | {ratio} |",
                        secs * 1e3,
                        1.0 / per_sample
                    );
                }
                Err(e) => println!("| {name} | {params} | {batch} | failed: {e} | — | — |"),
            }
        }
    }
    Ok(())
}
