//! RGB-D semantic segmentation (spec §2): [`EsaNet`] on a [`SegSource`], the class-weighted
//! cross-entropy summed over four scales, mIoU per combination, mining by mIoU, dense MAD on
//! three fused encoder levels weighted by the entropy of the teacher's 1/16 decoder feature, and
//! the regularization decoder's loss on the samples of the weak combination.

use super::{FrozenTeacher, Task};
use crate::config::{ExperimentConfig, TaskKind};
use crate::data::rgbd::{
    Label, RgbdPreprocessing, RgbdScene, SegSource, load_seg_sample, normalize, resize,
};
use crate::error::{CoreError, Result};
use crate::eval::read_i64;
use crate::losses::mad::{MadImpl, MadReduction, dense_mad_loss, dense_mad_loss_with};
use crate::losses::mar::MarLossMode;
use crate::metrics::iou;
use crate::modality::ModalitySet;
use crate::model::esanet::{EsaNet, FuseCache, SegOutput, bilinear};
use crate::model::mask_tensor;
use crate::report::{CombinationResult, EvalReport, SegScores, TableMetric};
use crate::task::{LossContext, MiningEvidence};
use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use burn::tensor::module::adaptive_avg_pool2d;
use rand::rngs::StdRng;
use std::sync::Arc;

/// The modality names of the segmentation task, in mask order.
pub const SEG_MODALITIES: [&str; 2] = ["rgb", "depth"];

/// A segmentation dataset with the class weights of its task loss.
#[derive(Clone)]
pub struct SegData {
    /// The scenes.
    pub source: Arc<dyn SegSource>,
    /// Weight of each class in the cross-entropy (median frequency for NYUv2, ones otherwise).
    pub class_weights: Vec<f32>,
}

/// A batch of RGB-D inputs on the device.
#[derive(Clone, Debug)]
pub struct SegInputs {
    /// `[B, 3, H, W]`.
    pub rgb: Tensor<4>,
    /// `[B, 1, H, W]`.
    pub depth: Tensor<4>,
}

/// A batch of label maps on the device.
#[derive(Clone, Debug)]
pub struct SegTargets {
    /// Labels (0 = void) at full size (in evaluation: the stored size), then at 1/8, 1/16 and
    /// 1/32 of the input (nearest neighbour), `[B, h, w]`.
    pub scales: [Tensor<3, Int>; 4],
    /// Class weights `[K]`.
    pub weights: Tensor<1>,
}

/// The segmentation task (NYUv2, Cityscapes, synthetic RGB-D scenes).
pub struct Segmentation;

/// Nearest-neighbour downsampling of a `h × w` label map (PyTorch's `nearest`: source index
/// `⌊i · in / out⌋`).
pub fn downsample_labels(labels: &[Label], h: usize, w: usize, oh: usize, ow: usize) -> Vec<Label> {
    let mut out = Vec::with_capacity(oh * ow);
    for y in 0..oh {
        let sy = (y * h / oh).min(h - 1);
        for x in 0..ow {
            let sx = (x * w / ow).min(w - 1);
            out.push(labels[sy * w + sx]);
        }
    }
    out
}

/// The class-weighted cross-entropy of one scale: Σ_pixels w[y]·CE / Σ_non-void w[y], void
/// (label 0) ignored, labels shifted by −1. A scale with no labelled pixel contributes 0.
pub fn weighted_cross_entropy(
    logits: Tensor<4>,
    labels: Tensor<3, Int>,
    weights: Tensor<1>,
) -> Tensor<1> {
    let [b, _, h, w] = logits.dims();
    let logp = log_softmax(logits, 1);
    let valid = labels.clone().greater_elem(0).float();
    let target = (labels - 1).clamp_min(0);
    let picked: Tensor<3> = logp
        .gather(1, target.clone().reshape([b, 1, h, w]))
        .reshape([b, h, w]);
    let pixel_weights = weights
        .select(0, target.reshape([b * h * w]))
        .reshape([b, h, w])
        * valid;
    let num = (picked.neg() * pixel_weights.clone()).sum();
    num / pixel_weights.sum().clamp_min(1e-12)
}

/// The task loss: [`weighted_cross_entropy`] summed over full, 1/8, 1/16 and 1/32.
pub fn multiscale_loss(scales: [Tensor<4>; 4], targets: &SegTargets) -> Tensor<1> {
    let mut total: Option<Tensor<1>> = None;
    for (logits, labels) in scales.into_iter().zip(targets.scales.iter()) {
        let l = weighted_cross_entropy(logits, labels.clone(), targets.weights.clone());
        total = Some(match total {
            Some(t) => t + l,
            None => l,
        });
    }
    total.expect("four scales")
}

/// `[B, C, H, W]` → `[B·H·W, C]` rows, pixels in (b, h, w) order.
pub fn pixel_rows(x: Tensor<4>) -> Tensor<2> {
    let [b, c, h, w] = x.dims();
    x.permute([0, 2, 3, 1]).reshape([b * h * w, c])
}

/// Pools a level to 30×40 when it is taller than 30 (the official memory saving).
fn pool_tall(x: Tensor<4>) -> Tensor<4> {
    let [_, _, h, _] = x.dims();
    if h > 30 {
        adaptive_avg_pool2d(x, [30, 40])
    } else {
        x
    }
}

/// Dense MAD summed over the context output, skip3 and skip2 (spec §2): each level pooled to
/// 30×40 when taller, every pixel a row, weights from the entropy of `teacher_map` (the
/// teacher's 1/16 decoder feature) pooled to the level's size.
pub fn dense_mad_levels(
    student: &FuseCache,
    teacher: &FuseCache,
    teacher_map: Tensor<4>,
    imp: MadImpl,
) -> Tensor<1> {
    let levels = [
        (student.context.clone(), teacher.context.clone()),
        (student.skip3.clone(), teacher.skip3.clone()),
        (student.skip2.clone(), teacher.skip2.clone()),
    ];
    let mut total: Option<Tensor<1>> = None;
    for (s, t) in levels {
        let (s, t) = (pool_tall(s), pool_tall(t.detach()));
        let [_, _, h, w] = s.dims();
        let map = adaptive_avg_pool2d(teacher_map.clone().detach(), [h, w]);
        let (s, t, map) = (pixel_rows(s), pixel_rows(t), pixel_rows(map));
        // `kernel` off wgpu is refused before training starts; fall back to tensor ops anyway
        let l = dense_mad_loss_with(s.clone(), t.clone(), map.clone(), imp)
            .unwrap_or_else(|_| dense_mad_loss(s, t, map));
        total = Some(match total {
            Some(x) => x + l,
            None => l,
        });
    }
    total.expect("three levels")
}

/// The combination where RGB is missing and depth present: the official code runs the
/// regularization decoder only when a batch holds one.
fn depth_only() -> ModalitySet {
    ModalitySet::single(1)
}

fn mask_of(masks: &[ModalitySet], device: &Device) -> Tensor<2> {
    mask_tensor(masks, 2, device)
}

impl Task for Segmentation {
    type Net = EsaNet;
    type Source = SegData;
    type Inputs = SegInputs;
    type Targets = SegTargets;
    type Output = SegOutput;

    const KIND: TaskKind = TaskKind::Segmentation;
    const SCORE: TableMetric = TableMetric::Miou;
    const OFFICIAL_TEACHER_BATCH_NORM: bool = true;
    const OFFICIAL_MAD_NAN_GUARD: bool = true;

    fn build_net(
        cfg: &ExperimentConfig,
        data: &SegData,
        with_reg: bool,
        device: &Device,
    ) -> Result<EsaNet> {
        let net = EsaNet::new(
            &cfg.seg_model,
            data.source.num_classes(),
            data.source.train_size(),
            with_reg,
            device,
        )?;
        match &cfg.seg_model.imagenet {
            None => Ok(net),
            #[cfg(not(target_family = "wasm"))]
            Some(path) => {
                let found = crate::model::imagenet::WeightsSearch::from_env().locate(path)?;
                crate::model::imagenet::load_imagenet_encoders(net, &found)
            }
            #[cfg(target_family = "wasm")]
            Some(_) => Err(CoreError::config(
                "seg_model.imagenet",
                "ImageNet weights are read from a file, which a browser page cannot do",
            )),
        }
    }

    /// The ImageNet weights the config names are looked for before anything trains (not at
    /// the teacher's first step, after the data has loaded).
    fn check_settings(cfg: &ExperimentConfig, _source: &SegData) -> Result<()> {
        match &cfg.seg_model.imagenet {
            None => Ok(()),
            #[cfg(not(target_family = "wasm"))]
            Some(path) => crate::model::imagenet::WeightsSearch::from_env()
                .locate(path)
                .map(|_| ()),
            #[cfg(target_family = "wasm")]
            Some(_) => Err(CoreError::config(
                "seg_model.imagenet",
                "ImageNet weights are read from a file, which a browser page cannot do",
            )),
        }
    }

    fn num_modalities(_net: &EsaNet) -> usize {
        2
    }

    fn num_classes(net: &EsaNet) -> usize {
        net.info().classes
    }

    fn source_name(source: &SegData) -> String {
        source.source.name().to_string()
    }

    fn modality_names(_source: &SegData) -> Vec<String> {
        seg_modality_names()
    }

    fn class_names(source: &SegData) -> Vec<String> {
        source.source.class_names()
    }

    fn describe(source: &SegData) -> String {
        let src = source.source.as_ref();
        let [h, w] = src.train_size();
        format!(
            "{} — {} scenes, {} classes, rgb + depth, training crops {h}×{w}",
            src.name(),
            src.len(),
            src.num_classes()
        )
    }

    fn model_settings(cfg: &ExperimentConfig) -> serde_json::Value {
        serde_json::json!({ "seg_model": cfg.seg_model })
    }

    fn load_batch(
        net: &EsaNet,
        data: &SegData,
        indices: &[usize],
        mut augment: Option<&mut StdRng>,
        device: &Device,
    ) -> Result<(SegInputs, SegTargets)> {
        let source = data.source.as_ref();
        let [h, w] = if augment.is_some() {
            source.train_size()
        } else {
            source.eval_size()
        };
        let classes = net.info().classes;
        if source.num_classes() != classes {
            return Err(CoreError::data(
                source.name(),
                format!(
                    "{} classes, the network has {classes}",
                    source.num_classes()
                ),
            ));
        }
        let b = indices.len();
        let (mut rgb, mut depth, mut labels) = (
            Vec::with_capacity(b * 3 * h * w),
            Vec::with_capacity(b * h * w),
            Vec::with_capacity(b * h * w),
        );
        let mut label_size = None;
        for &i in indices {
            let s = load_seg_sample(source, i, augment.as_deref_mut())?;
            if s.size != [h, w] || *label_size.get_or_insert(s.label_size) != s.label_size {
                return Err(CoreError::data(
                    source.name(),
                    format!(
                        "scene {i} gives {:?} inputs and {:?} labels, the batch has {h}×{w} inputs and {:?} labels",
                        s.size, s.label_size, label_size
                    ),
                ));
            }
            rgb.extend_from_slice(&s.rgb);
            depth.extend_from_slice(&s.depth);
            labels.extend_from_slice(&s.labels);
        }
        let [lh, lw] = label_size.unwrap_or([h, w]);
        let label_tensor = |sh: usize, sw: usize| {
            let mut v: Vec<i64> = Vec::with_capacity(b * sh * sw);
            for k in 0..b {
                let map = &labels[k * lh * lw..(k + 1) * lh * lw];
                let small = if (sh, sw) == (lh, lw) {
                    map.to_vec()
                } else {
                    downsample_labels(map, lh, lw, sh, sw)
                };
                v.extend(small.into_iter().map(i64::from));
            }
            Tensor::<3, Int>::from_data(TensorData::new(v, [b, sh, sw]), device)
        };
        let targets = SegTargets {
            scales: [
                label_tensor(lh, lw),
                label_tensor(h / 8, w / 8),
                label_tensor(h / 16, w / 16),
                label_tensor(h / 32, w / 32),
            ],
            weights: Tensor::from_data(
                TensorData::new(data.class_weights.clone(), [data.class_weights.len()]),
                device,
            ),
        };
        let inputs = SegInputs {
            rgb: Tensor::from_data(TensorData::new(rgb, [b, 3, h, w]), device),
            depth: Tensor::from_data(TensorData::new(depth, [b, 1, h, w]), device),
        };
        Ok((inputs, targets))
    }

    fn forward(net: &EsaNet, inputs: &SegInputs, masks: &[ModalitySet]) -> SegOutput {
        let mask = mask_of(masks, &inputs.rgb.device());
        let with_reg = net.has_reg_decoder() && masks.contains(&depth_only());
        net.forward(inputs.rgb.clone(), inputs.depth.clone(), mask, with_reg)
    }

    fn task_loss(output: &SegOutput, targets: &SegTargets) -> Tensor<1> {
        multiscale_loss(output.main.scales(), targets)
    }

    fn batch_score(output: &SegOutput, targets: &SegTargets) -> Tensor<1> {
        let labels = targets.scales[0].clone();
        let [b, h, w] = labels.dims();
        let pred = output.main.logits.clone().argmax(1).reshape([b, h, w]);
        let valid = labels.clone().greater_elem(0).float();
        let correct = pred.equal(labels - 1).float() * valid.clone();
        correct.sum() / valid.sum().clamp_min(1.0)
    }

    fn deployment(net: EsaNet) -> EsaNet {
        net.without_reg_decoder()
    }

    async fn evaluate(
        net: &EsaNet,
        data: &SegData,
        indices: &[usize],
        combinations: &[ModalitySet],
        batch_size: usize,
        device: &Device,
        _bona_fide_label: Option<usize>,
        method: &str,
    ) -> Result<EvalReport> {
        let source = data.source.as_ref();
        if indices.is_empty() {
            return Err(CoreError::data(
                source.name(),
                "cannot evaluate on an empty split",
            ));
        }
        let k = net.info().classes;
        let mut confusion = vec![vec![vec![0u64; k]; k]; combinations.len()];
        let mut labelled = 0u64;
        for chunk in indices.chunks(batch_size.max(1)) {
            let (inputs, targets) = Self::load_batch(net, data, chunk, None, device)?;
            let labels = read_i64(targets.scales[0].clone()).await?;
            labelled += labels
                .iter()
                .filter(|&&l| l > 0 && (l as usize) <= k)
                .count() as u64;
            let [b, h, w] = targets.scales[0].dims();
            for (c, &combo) in combinations.iter().enumerate() {
                let masks = vec![combo; b];
                let mask = mask_of(&masks, device);
                let out = net.forward(inputs.rgb.clone(), inputs.depth.clone(), mask, false);
                let mut logits = out.main.logits;
                let [_, _, lh, lw] = logits.dims();
                if [lh, lw] != [h, w] {
                    logits = bilinear(logits, [h, w]);
                }
                let pred = read_i64(logits.argmax(1).reshape([b * h * w])).await?;
                let m = &mut confusion[c];
                for (&p, &l) in pred.iter().zip(&labels) {
                    if l > 0 && (l as usize) <= k && (p as usize) < k {
                        m[l as usize - 1][p as usize] += 1;
                    }
                }
            }
        }
        if labelled == 0 {
            // an mIoU of 0.00 from an empty confusion matrix would read as a result
            return Err(CoreError::data(
                source.name(),
                format!(
                    "the {} scenes evaluated have no labelled pixel (every label is void), so \
                     there is no mIoU to report; is this split's ground truth withheld (as the \
                     public Cityscapes `test` labels are)?",
                    indices.len()
                ),
            ));
        }
        let rows = combinations
            .iter()
            .zip(&confusion)
            .map(|(&combo, m)| {
                let (class_iou, miou) = iou(m);
                let pixels: u64 = m.iter().flatten().sum();
                let correct: u64 = (0..k).map(|i| m[i][i]).sum();
                CombinationResult {
                    combination: combo,
                    label: combo.long_label(&seg_modality_names()),
                    samples: indices.len(),
                    accuracy: if pixels > 0 {
                        correct as f64 / pixels as f64
                    } else {
                        0.0
                    },
                    pad: None,
                    seg: Some(SegScores {
                        miou,
                        class_iou,
                        pixels,
                    }),
                }
            })
            .collect();
        Ok(EvalReport {
            method: method.to_string(),
            modalities: seg_modality_names(),
            rows,
        })
    }

    async fn mining_evidence(
        net: &EsaNet,
        data: &SegData,
        indices: &[usize],
        combinations: &[ModalitySet],
        batch_size: usize,
        device: &Device,
    ) -> Result<MiningEvidence> {
        let report = Self::evaluate(
            net,
            data,
            indices,
            combinations,
            batch_size,
            device,
            None,
            "mining",
        )
        .await?;
        Ok(MiningEvidence::Miou(
            report
                .rows
                .iter()
                .map(|r| r.seg.as_ref().map_or(0.0, |s| s.miou))
                .collect(),
        ))
    }

    fn distill(
        teacher: &FrozenTeacher<Self>,
        ctx: &LossContext<'_, Self>,
        _reduction: MadReduction,
        imp: MadImpl,
    ) -> Tensor<1> {
        let rgb = teacher.input(&ctx.inputs.rgb);
        let depth = teacher.input(&ctx.inputs.depth);
        let full = mask_of(&vec![ModalitySet::full(2); ctx.masks.len()], &rgb.device());
        let t = teacher.net.forward(rgb, depth, full, false);
        let [_, _, feature_16] = t.main.features;
        dense_mad_levels(&ctx.output.cache, &t.cache, feature_16, imp)
    }

    fn regularization_loss(
        ctx: &LossContext<'_, Self>,
        weak: &[ModalitySet],
        _mode: MarLossMode,
    ) -> Option<Tensor<1>> {
        // Without a depth-only sample the official code does not run the regularization
        // decoder and the main decoder's output stands in for it.
        let out = ctx.output.reg.as_ref().unwrap_or(&ctx.output.main);
        let device = out.logits.device();
        let mut total: Option<Tensor<1>> = None;
        for w in weak {
            let idx: Vec<i64> = ctx
                .masks
                .iter()
                .enumerate()
                .filter(|(_, m)| *m == w)
                .map(|(i, _)| i as i64)
                .collect();
            let l = if idx.is_empty() {
                // the official value when no sample has the weak combination
                Tensor::<1>::from_data(TensorData::new(vec![1e-16f32], [1]), &device)
            } else {
                let n = idx.len();
                let sel = Tensor::<1, Int>::from_data(TensorData::new(idx, [n]), &device);
                let scales = out.scales().map(|t| t.select(0, sel.clone()));
                let targets = SegTargets {
                    scales: ctx.targets.scales.clone().map(|t| t.select(0, sel.clone())),
                    weights: ctx.targets.weights.clone(),
                };
                multiscale_loss(scales, &targets)
            };
            total = Some(match total {
                Some(t) => t + l,
                None => l,
            });
        }
        total
    }

    fn regularization_head_ran(output: &Self::Output) -> bool {
        output.reg.is_some()
    }
}

/// [`SEG_MODALITIES`] as owned strings.
pub fn seg_modality_names() -> Vec<String> {
    SEG_MODALITIES.iter().map(|s| s.to_string()).collect()
}

/// A predicted label map: the class index (label − 1, never void) of every pixel, row-major.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LabelMap {
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// Class index per pixel, `0..classes`.
    pub classes: Vec<Label>,
}

/// Predicts the label map of one raw `scene` seen through `set`, with `net` in eval mode: the
/// inputs prepared as `prep` says (resized to its evaluation size, depth normalised with its
/// statistics — [`RgbdPreprocessing::of`] a dataset gives its test scenes' preparation), the
/// logits bilinearly upsampled to the scene's own size, then the arg-max class.
pub async fn predict_scene(
    net: &EsaNet,
    prep: &RgbdPreprocessing,
    scene: &RgbdScene,
    set: ModalitySet,
    device: &Device,
) -> Result<LabelMap> {
    if set.is_empty() {
        return Err(CoreError::config(
            "modalities",
            "switch on at least one modality",
        ));
    }
    scene.validate("scene")?;
    let [h, w] = prep.eval_size;
    let sample = normalize(&resize(scene, h, w), prep.depth_stats);
    let rgb = Tensor::<4>::from_data(TensorData::new(sample.rgb, [1, 3, h, w]), device);
    let depth = Tensor::<4>::from_data(TensorData::new(sample.depth, [1, 1, h, w]), device);
    let out = net.forward(rgb, depth, mask_of(&[set], device), false);
    let (oh, ow) = (scene.height, scene.width);
    let mut logits = out.main.logits;
    let [_, _, lh, lw] = logits.dims();
    if [lh, lw] != [oh, ow] {
        logits = bilinear(logits, [oh, ow]);
    }
    // the count of non-finite logits travels with the classes: one readback
    let not_finite = logits.clone().is_nan().int().sum() + logits.clone().is_inf().int().sum();
    let mut read = read_i64(Tensor::cat(
        vec![logits.argmax(1).reshape([oh * ow]), not_finite],
        0,
    ))
    .await?;
    if read.pop().unwrap_or(0) > 0 {
        return Err(CoreError::data(
            "scene",
            "the model's output is not a number (NaN or infinite): its weights are not finite",
        ));
    }
    let classes = read
        .into_iter()
        .map(|c| c.clamp(0, Label::MAX as i64) as Label)
        .collect();
    Ok(LabelMap {
        height: oh,
        width: ow,
        classes,
    })
}

/// One scene's scores against its ground truth (void pixels ignored).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SceneScores {
    /// Mean IoU over the classes present in the truth or the prediction (on one scene a class
    /// absent from both says nothing; the dataset mIoU counts it as 0).
    pub miou: f64,
    /// Share of labelled pixels predicted right.
    pub pixel_accuracy: f64,
}

/// Scores `pred` against `labels` (0 = void, class `k` as label `k + 1`) for `classes` classes.
pub fn scene_scores(pred: &LabelMap, labels: &[Label], classes: usize) -> SceneScores {
    let mut confusion = vec![vec![0u64; classes]; classes];
    for (&p, &l) in pred.classes.iter().zip(labels) {
        let (l, p) = (l as usize, p as usize);
        if l > 0 && l <= classes && p < classes {
            confusion[l - 1][p] += 1;
        }
    }
    let (per_class, _) = iou(&confusion);
    let present: Vec<f64> = (0..classes)
        .filter(|&k| confusion[k].iter().sum::<u64>() > 0 || confusion.iter().any(|r| r[k] > 0))
        .map(|k| per_class[k])
        .collect();
    let pixels: u64 = confusion.iter().flatten().sum();
    let correct: u64 = (0..classes).map(|k| confusion[k][k]).sum();
    SceneScores {
        miou: if present.is_empty() {
            0.0
        } else {
            present.iter().sum::<f64>() / present.len() as f64
        },
        pixel_accuracy: if pixels > 0 {
            correct as f64 / pixels as f64
        } else {
            0.0
        },
    }
}
