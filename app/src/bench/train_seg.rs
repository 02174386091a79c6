//! `mmanet bench train --preset seg-…`: the segmentation (ESANet, RGB-D) training steps, timed
//! through the experiments' trainer as the classification steps are: the batch assembled from
//! host scenes (at the training size, augmentation off) and uploaded, per-sample modality
//! dropout over rgb, depth and rgb+depth, the student's forward pass and the four-scale weighted
//! cross-entropy, for MMANet the frozen teacher's forward pass with dense MAD (α 4) and the
//! regularization decoder's loss on the samples of the weak combination depth (β 0.2, NYUv2's
//! weights), the one readback of the step's loss values, backward and the SGD update. Then the
//! deployment network's forward pass with the label map read back. `bench/esanet_torch.py` is
//! the same step in PyTorch.

use super::time;
use super::train::{TrainBenchRow, bench_stage, time_steps};
use anyhow::Result;
use burn::prelude::*;
use mmanet_core::data::rgbd::{DepthStats, RgbdScene, SegAugment, SegSource};
use mmanet_core::experiment::block_on;
use mmanet_core::mmanet::{MadTerm, MarTerm};
use mmanet_core::mmanet_settings::MmanetConfig;
use mmanet_core::modality::ModalitySet;
use mmanet_core::model::esanet::{EsaNet, SegModelConfig, SegPreset};
use mmanet_core::model::mask_tensor;
use mmanet_core::task::Segmentation;
use mmanet_core::task::segmentation::SegData;
use mmanet_core::train::StageTrainer;
use std::sync::Arc;

/// Classes of the benchmark's label maps (NYUv2's 40).
pub const SEG_BENCH_CLASSES: usize = 40;

/// Deterministic scenes of one size: RGB, depth and labels from the index pattern
/// `(i·7 + m·13) mod 255` over each modality's flat values, every class present.
struct BenchScenes {
    size: [usize; 2],
    scenes: usize,
}

impl SegSource for BenchScenes {
    fn name(&self) -> &str {
        "bench scenes"
    }
    fn num_classes(&self) -> usize {
        SEG_BENCH_CLASSES
    }
    fn len(&self) -> usize {
        self.scenes
    }
    fn scene(&self, i: usize) -> mmanet_core::Result<RgbdScene> {
        let [h, w] = self.size;
        let n = h * w;
        let rgb = (0..3 * n).map(|p| ((p * 7 + i) % 255) as u8).collect();
        let depth = (0..n).map(|p| 1.0 + ((p * 7 + 13) % 255) as f32).collect();
        let labels = (0..n)
            .map(|p| ((p + i) % (SEG_BENCH_CLASSES + 1)) as u16)
            .collect();
        Ok(RgbdScene {
            height: h,
            width: w,
            rgb,
            depth,
            labels,
        })
    }
    fn depth_stats(&self) -> DepthStats {
        DepthStats {
            mean: 128.0,
            std: 74.0,
        }
    }
    fn train_size(&self) -> [usize; 2] {
        self.size
    }
    fn eval_size(&self) -> [usize; 2] {
        self.size
    }
    fn augment(&self) -> SegAugment {
        SegAugment {
            scale: [1.0, 1.0],
            hsv: false,
            flip: false,
        }
    }
}

/// Times the segmentation training steps of `methods` (`mmanet` or not) and the deployment
/// forward pass of `preset` on `batch` scenes of `size` = `[height, width]`.
#[allow(clippy::too_many_arguments)]
pub fn bench_train_seg(
    device: &Device,
    label: &str,
    preset: SegPreset,
    methods: &[(String, bool)],
    batch: usize,
    size: [usize; 2],
    warmup: usize,
    iters: usize,
    print: &mut dyn FnMut(TrainBenchRow),
) -> Result<()> {
    let model = SegModelConfig {
        preset,
        ..SegModelConfig::default()
    };
    let classes = SEG_BENCH_CLASSES;
    let data = Arc::new(SegData {
        source: Arc::new(BenchScenes {
            size,
            scenes: 2 * batch,
        }),
        class_weights: vec![1.0; classes],
    });
    for (what, mmanet) in methods {
        let student = EsaNet::new(&model, classes, size, *mmanet, &device.clone().autodiff())?;
        let parameters = student.num_trainable_params();
        let mut trainer = StageTrainer::<Segmentation>::new(
            bench_stage(batch),
            student,
            data.clone(),
            (0..2 * batch).collect(),
            vec![0],
            device,
        )?;
        if *mmanet {
            // NYUv2's weights; MAD and the regularization decoder on from the first step; the
            // weak combination is depth alone (what mining gives on the demo's scenes)
            let cfg = MmanetConfig {
                alpha: 4.0,
                beta: 0.2,
                warmup_epochs: 0,
                ..MmanetConfig::default()
            };
            cfg.mad_impl.use_kernels(device)?;
            let teacher = EsaNet::new(&model, classes, size, false, device)?;
            trainer.add_loss_term(Box::new(MadTerm::<Segmentation>::new(
                &teacher, &cfg, cfg.mad, device,
            )));
            trainer.add_loss_term(Box::new(MarTerm::<Segmentation>::fixed(
                &cfg,
                2,
                vec![ModalitySet::from_indices([1])],
            )));
        }
        let secs = time_steps(&mut trainer, warmup, iters, if *mmanet { 3 } else { 1 })?;
        print(TrainBenchRow::timed(
            label, what, parameters, batch, secs, device,
        ));
    }
    let deployment = EsaNet::new(&model, classes, size, false, device)?;
    let [h, w] = size;
    let scenes = BenchScenes {
        size,
        scenes: batch,
    };
    let (mut rgb, mut depth) = (Vec::new(), Vec::new());
    for i in 0..batch {
        let s = mmanet_core::data::rgbd::normalize(&scenes.scene(i)?, scenes.depth_stats());
        rgb.extend(s.rgb);
        depth.extend(s.depth);
    }
    let sets = vec![ModalitySet::full(2); batch];
    let secs = time(warmup, iters, || {
        let r = Tensor::<4>::from_data(TensorData::new(rgb.clone(), [batch, 3, h, w]), device);
        let d = Tensor::<4>::from_data(TensorData::new(depth.clone(), [batch, 1, h, w]), device);
        let out = deployment.forward(r, d, mask_tensor(&sets, 2, device), false);
        let labels = out.main.logits.argmax(1);
        let values = block_on(mmanet_core::eval::read_i64(labels))?;
        anyhow::ensure!(values.len() == batch * h * w, "short read");
        Ok(())
    })?;
    print(TrainBenchRow::timed(
        label,
        "deployment forward",
        deployment.num_trainable_params(),
        batch,
        secs,
        device,
    ));
    Ok(())
}
