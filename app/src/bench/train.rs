//! `mmanet bench train`: complete training steps, timed through the trainer the experiments use
//! (`StageTrainer::train_step_at`): a batch assembled from host data and uploaded, per-sample
//! modality dropout, the student's forward pass, cross-entropy, for MMANet the frozen teacher's
//! forward pass with MAD and the regularization head's loss on the weak set mining rgb+ir gives, the one readback of
//! the step's loss values, backward, and the SGD update. Then the deployment network's forward
//! pass alone. Inputs are synthetic, of the preset's shapes.

use super::train_seg::{SEG_BENCH_CLASSES, bench_train_seg};
use super::{median, pattern, time_forward};
use anyhow::Result;
use burn::prelude::*;
use mmanet_core::config::{OptimizerKind, StageConfig};
use mmanet_core::data::{InMemoryDataset, ModalityKind, ModalitySpec};
use mmanet_core::dropout::DropoutMode;
use mmanet_core::experiment::block_on;
use mmanet_core::losses::mar::weak_set_of;
use mmanet_core::mmanet::{MadTerm, MarTerm};
use mmanet_core::mmanet_settings::MmanetConfig;
use mmanet_core::modality::ModalitySet;
use mmanet_core::model::esanet::SegPreset;
use mmanet_core::model::{ImagePreset, ModelConfig, MultimodalNet};
use mmanet_core::schedule::ScheduleKind;
use mmanet_core::task::{Classification, Task};
use mmanet_core::train::StageTrainer;
use std::sync::Arc;
use std::time::Instant;

/// The network a training step is timed on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TrainPreset {
    /// ResNet-18-SE as in the paper (widths 64…512) on three 3×S×S images, 2 classes
    Paper,
    /// ResNet-18-SE widths 16…128
    Small,
    /// ResNet-18-SE widths 8…64
    Tiny,
    /// the mfeat MLP (views 240, 76, 6; 10 classes)
    Mlp,
    /// ESANet as in the paper (two ResNet-50 encoders, RGB and depth; 40 classes, PPM)
    SegPaper,
    /// ESANet with BasicBlock encoders of widths 16…128 (the segmentation demo's network)
    SegSmall,
    /// ESANet widths 8…64
    SegTiny,
}

impl TrainPreset {
    fn label(self) -> &'static str {
        match self {
            TrainPreset::Paper => "paper",
            TrainPreset::Small => "small",
            TrainPreset::Tiny => "tiny",
            TrainPreset::Mlp => "mlp",
            TrainPreset::SegPaper => "seg-paper",
            TrainPreset::SegSmall => "seg-small",
            TrainPreset::SegTiny => "seg-tiny",
        }
    }

    /// The segmentation network of a `seg-…` preset.
    fn seg_preset(self) -> Option<SegPreset> {
        match self {
            TrainPreset::SegPaper => Some(SegPreset::Paper),
            TrainPreset::SegSmall => Some(SegPreset::Small),
            TrainPreset::SegTiny => Some(SegPreset::Tiny),
            _ => None,
        }
    }

    /// Modalities, classes and model settings of a classification preset (none for `seg-…`).
    fn shapes(self, size: usize) -> (Vec<ModalitySpec>, usize, ModelConfig) {
        let image = |name: &str| ModalitySpec {
            name: name.into(),
            kind: ModalityKind::Image {
                channels: 3,
                height: size,
                width: size,
            },
        };
        let vector = |name: &str, dim| ModalitySpec {
            name: name.into(),
            kind: ModalityKind::Vector { dim },
        };
        let convnet = |image_preset| {
            (
                vec![image("rgb"), image("depth"), image("ir")],
                2,
                ModelConfig {
                    image_preset,
                    ..ModelConfig::default()
                },
            )
        };
        match self {
            TrainPreset::Paper => convnet(ImagePreset::Paper),
            TrainPreset::Small => convnet(ImagePreset::Small),
            TrainPreset::Tiny => convnet(ImagePreset::Tiny),
            TrainPreset::Mlp => (
                vec![vector("pix", 240), vector("fou", 76), vector("mor", 6)],
                10,
                ModelConfig::default(),
            ),
            // the segmentation presets' scenes are not modality vectors (see `train_seg`)
            TrainPreset::SegPaper | TrainPreset::SegSmall | TrainPreset::SegTiny => {
                (Vec::new(), 0, ModelConfig::default())
            }
        }
    }
}

/// The training step timed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum TrainMethod {
    /// unified model with modality dropout: student forward, CE, backward, SGD
    SfMd,
    /// SF-MD + frozen teacher forward, MAD and the regularization head on the weak set
    Mmanet,
}

impl TrainMethod {
    fn label(self) -> &'static str {
        match self {
            TrainMethod::SfMd => "SF-MD",
            TrainMethod::Mmanet => "MMANet",
        }
    }
}

/// The official student stage's optimiser (SGD, momentum 0.9, Nesterov, weight decay 5e-4)
/// at a constant learning rate, with uniform modality dropout.
pub(super) fn bench_stage(batch: usize) -> StageConfig {
    StageConfig {
        epochs: 2,
        batch_size: batch,
        drop_last: true,
        optimizer: OptimizerKind::default(),
        lr: 0.01,
        momentum: 0.9,
        nesterov: true,
        weight_decay: 5e-4,
        schedule: ScheduleKind::Paper,
        lr_warmup_epochs: 0,
        lr_milestones: Vec::new(),
        lr_gamma: 0.1,
        select_after_epoch: 0,
        select_by: Default::default(),
        dropout: DropoutMode::Uniform,
        seed: 0,
        gradient_diagnostics: false,
    }
}

/// Two batches of deterministic synthetic samples (values in [-1, 1], labels alternating).
fn synthetic_data(modalities: &[ModalitySpec], classes: usize, samples: usize) -> InMemoryDataset {
    let features = modalities
        .iter()
        .enumerate()
        .map(|(m, spec)| pattern(m, samples * spec.kind.numel()))
        .collect();
    InMemoryDataset {
        name: "bench".into(),
        modalities: modalities.to_vec(),
        classes,
        class_names: None,
        features,
        labels: (0..samples).map(|i| i % classes).collect(),
    }
}

/// One row of the table.
#[derive(Clone, Debug, serde::Serialize)]
pub struct TrainBenchRow {
    /// `paper`, `small`, `tiny` or `mlp`.
    pub preset: String,
    /// `SF-MD`, `MMANet`, or `deployment forward`.
    pub what: String,
    /// Parameters of the network trained (student with its regularization head for MMANet).
    pub parameters: usize,
    /// Samples per step.
    pub batch: usize,
    /// Median milliseconds per step.
    pub median_ms: f64,
    /// Samples per second at the median.
    pub samples_per_s: f64,
    /// Bytes the device's memory pools held after the timed steps, where the backend says.
    pub reserved_bytes: Option<u64>,
}

impl TrainBenchRow {
    /// The row of a step of `batch` samples that took `secs` (median), with the device memory
    /// reserved now.
    pub(super) fn timed(
        preset: &str,
        what: &str,
        parameters: usize,
        batch: usize,
        secs: f64,
        device: &Device,
    ) -> Self {
        TrainBenchRow {
            preset: preset.into(),
            what: what.into(),
            parameters,
            batch,
            median_ms: secs * 1e3,
            samples_per_s: batch as f64 / secs,
            reserved_bytes: device.memory_pool_usage().map(|u| u.bytes_reserved),
        }
    }
}

/// Runs `warmup + iters` training steps of `trainer`, each of which must compute `expected`
/// loss terms, and returns the median seconds of the last `iters`.
pub(super) fn time_steps<T: Task>(
    trainer: &mut StageTrainer<T>,
    warmup: usize,
    iters: usize,
    expected: usize,
) -> Result<f64> {
    let mut times = Vec::with_capacity(iters);
    for i in 0..warmup + iters {
        let started = Instant::now();
        let report = block_on(trainer.train_step_at(1))?;
        if i >= warmup {
            times.push(started.elapsed().as_secs_f64());
        }
        anyhow::ensure!(
            report.losses.len() == expected,
            "the step computed {:?}, expected {expected} loss terms",
            report.losses.iter().map(|(n, _)| n).collect::<Vec<_>>()
        );
    }
    Ok(median(times))
}

/// Times the training steps of `methods` and the deployment forward pass for `preset`, prints
/// a table, and returns its rows. `size` is the side of the classification presets' images,
/// `seg_size` the `[height, width]` of the segmentation presets' scenes.
#[allow(clippy::too_many_arguments)]
pub fn bench_train(
    device: &Device,
    preset: TrainPreset,
    methods: &[TrainMethod],
    batch: usize,
    size: usize,
    seg_size: [usize; 2],
    warmup: usize,
    iters: usize,
) -> Result<Vec<TrainBenchRow>> {
    let (modalities, classes, model) = preset.shapes(size);
    let n = modalities.len();
    device.seed(0);
    let inputs = match preset.seg_preset() {
        Some(_) => format!(
            "rgb [3, {h}, {w}], depth [1, {h}, {w}], labels [{h}, {w}] of {SEG_BENCH_CLASSES} classes",
            h = seg_size[0],
            w = seg_size[1]
        ),
        None => modalities
            .iter()
            .map(|m| format!("{} {:?}", m.name, m.kind.shape()))
            .collect::<Vec<_>>()
            .join(", "),
    };
    println!(
        "compiles and autotunes during {warmup} untimed step(s) per case, then times {iters}; \
         inputs: {} synthetic samples of {inputs}",
        2 * batch,
    );
    println!(
        "| preset | step | parameters | batch | median ms/step | samples/s | device memory reserved |"
    );
    println!("|---|---|---:|---:|---:|---:|---:|");
    let mut rows = Vec::new();
    let mut print = |row: TrainBenchRow| {
        println!(
            "| {} | {} | {} | {} | {:.2} | {:.1} | {} |",
            row.preset,
            row.what,
            row.parameters,
            row.batch,
            row.median_ms,
            row.samples_per_s,
            row.reserved_bytes.map_or("—".into(), |b| format!(
                "{:.0} MiB",
                b as f64 / (1 << 20) as f64
            ))
        );
        rows.push(row);
    };
    if let Some(seg) = preset.seg_preset() {
        let methods: Vec<(String, bool)> = methods
            .iter()
            .map(|&m| (m.label().to_string(), m == TrainMethod::Mmanet))
            .collect();
        bench_train_seg(
            device,
            preset.label(),
            seg,
            &methods,
            batch,
            seg_size,
            warmup,
            iters,
            &mut print,
        )?;
        return Ok(rows);
    }
    let source: Arc<dyn mmanet_core::data::MultimodalSource> =
        Arc::new(synthetic_data(&modalities, classes, 2 * batch));
    for &method in methods {
        let reg_head = method == TrainMethod::Mmanet;
        let student = MultimodalNet::new(
            &modalities,
            classes,
            &model,
            reg_head,
            &device.clone().autodiff(),
        )?;
        let parameters = student.num_trainable_params();
        let mut trainer = StageTrainer::<Classification>::new(
            bench_stage(batch),
            student,
            source.clone(),
            (0..2 * batch).collect(),
            vec![0],
            device,
        )?;
        if method == TrainMethod::Mmanet {
            // MAD and the regularization head on from epoch 1 on; the weak set is what mining
            // the paper's weak pair rgb+ir (modalities 0 and 2) gives: rgb+ir, rgb, ir
            let cfg = MmanetConfig {
                warmup_epochs: 0,
                ..MmanetConfig::default()
            };
            cfg.mad_impl.use_kernels(device)?;
            let teacher = MultimodalNet::new(&modalities, classes, &model, false, device)?;
            trainer.add_loss_term(Box::new(MadTerm::<Classification>::new(
                &teacher, &cfg, cfg.mad, device,
            )));
            trainer.add_loss_term(Box::new(MarTerm::<Classification>::fixed(
                &cfg,
                n,
                weak_set_of(ModalitySet::from_indices([0, 2])),
            )));
        }
        let secs = time_steps(&mut trainer, warmup, iters, if reg_head { 3 } else { 1 })?;
        print(TrainBenchRow::timed(
            preset.label(),
            method.label(),
            parameters,
            batch,
            secs,
            device,
        ));
    }
    let deployment = MultimodalNet::new(&modalities, classes, &model, false, device)?;
    let secs = time_forward(
        &deployment,
        &modalities,
        classes,
        batch,
        device,
        warmup,
        iters,
    )?;
    print(TrainBenchRow::timed(
        preset.label(),
        "deployment forward",
        deployment.num_trainable_params(),
        batch,
        secs,
        device,
    ));
    Ok(rows)
}
