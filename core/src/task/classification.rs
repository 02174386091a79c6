//! Classification (spec §1): [`MultimodalNet`] on a [`MultimodalSource`], cross-entropy,
//! accuracy / ACER per combination, mining by prediction distributions, MAD on the trunk
//! features weighted by the teacher's class entropy.

use super::{FrozenTeacher, Task};
use crate::config::{ExperimentConfig, TaskKind};
use crate::data::{MultimodalSource, make_batch};
use crate::error::{CoreError, Result};
use crate::eval::{evaluate, predict_proba};
use crate::losses::ce::cross_entropy_per_sample;
use crate::losses::mad::{MadImpl, MadReduction, mad_loss, mad_loss_kernels};
use crate::losses::mar::{MarLossMode, mar_loss};
use crate::modality::ModalitySet;
use crate::model::{ModalityInput, MultimodalNet, NetOutput, label_tensor, mask_tensor};
use crate::report::{EvalReport, TableMetric};
use crate::task::{LossContext, MiningEvidence};
use burn::prelude::*;
use rand::rngs::StdRng;

/// The classification task (face anti-spoofing, mfeat, any multi-view dataset).
pub struct Classification;

impl Task for Classification {
    type Net = MultimodalNet;
    type Source = dyn MultimodalSource;
    type Inputs = Vec<ModalityInput>;
    type Targets = Tensor<1, Int>;
    type Output = NetOutput;

    const KIND: TaskKind = TaskKind::Classification;
    const SCORE: TableMetric = TableMetric::Accuracy;
    const OFFICIAL_TEACHER_BATCH_NORM: bool = false;

    fn check_settings(cfg: &ExperimentConfig, source: &Self::Source) -> Result<()> {
        let classes = source.num_classes();
        if cfg.eval.bona_fide_label >= classes {
            return Err(CoreError::config(
                "eval.bona_fide_label",
                format!(
                    "{} is not a class of {} (classes 0..{classes})",
                    cfg.eval.bona_fide_label,
                    source.name()
                ),
            ));
        }
        Ok(())
    }

    fn build_net(
        cfg: &ExperimentConfig,
        source: &Self::Source,
        with_reg: bool,
        device: &Device,
    ) -> Result<MultimodalNet> {
        MultimodalNet::new(
            source.modalities(),
            source.num_classes(),
            &cfg.model,
            with_reg,
            device,
        )
    }

    fn num_modalities(net: &MultimodalNet) -> usize {
        net.num_modalities()
    }

    fn num_classes(net: &MultimodalNet) -> usize {
        net.info().classes
    }

    fn source_name(source: &Self::Source) -> String {
        source.name().to_string()
    }

    fn modality_names(source: &Self::Source) -> Vec<String> {
        source.modality_names()
    }

    fn class_names(source: &Self::Source) -> Vec<String> {
        source.class_names()
    }

    fn describe(source: &Self::Source) -> String {
        format!(
            "{} — {} samples, {} classes, modalities {}",
            source.name(),
            source.len(),
            source.num_classes(),
            source
                .modalities()
                .iter()
                .map(|m| format!("{} {:?}", m.name, m.kind.shape()))
                .collect::<Vec<_>>()
                .join(", ")
        )
    }

    fn model_settings(cfg: &ExperimentConfig) -> serde_json::Value {
        serde_json::json!(cfg.model)
    }

    fn load_batch(
        net: &MultimodalNet,
        source: &Self::Source,
        indices: &[usize],
        augment: Option<&mut StdRng>,
        device: &Device,
    ) -> Result<(Self::Inputs, Self::Targets)> {
        let host = make_batch(source, indices, augment)?;
        let inputs = net.inputs_from_batch(&host, device)?;
        Ok((inputs, label_tensor(&host.labels, device)))
    }

    fn forward(net: &MultimodalNet, inputs: &Self::Inputs, masks: &[ModalitySet]) -> NetOutput {
        let every = ModalitySet::full(net.num_modalities());
        Self::forward_in_stage(net, inputs, masks, every)
    }

    /// Skips the encoders of the modalities the stage never sees (their outputs are always
    /// masked to zero; nothing evaluates them). Encoders of modalities a stage does see run
    /// even when a batch happens to lack them: their batch-norm statistics, momentum and
    /// weight decay still move, as in the official code.
    fn forward_in_stage(
        net: &MultimodalNet,
        inputs: &Self::Inputs,
        masks: &[ModalitySet],
        seen: ModalitySet,
    ) -> NetOutput {
        let device = match inputs.first() {
            Some(ModalityInput::Vector(t)) => t.device(),
            Some(ModalityInput::Image(t)) => t.device(),
            None => Device::default(),
        };
        let mask = mask_tensor(masks, net.num_modalities(), &device);
        let present: Vec<bool> = (0..net.num_modalities())
            .map(|m| seen.contains(m) || masks.iter().any(|set| set.contains(m)))
            .collect();
        net.forward_present(inputs, mask, &present)
    }

    fn task_loss(output: &NetOutput, targets: &Tensor<1, Int>) -> Tensor<1> {
        cross_entropy_per_sample(output.logits.clone(), targets.clone()).mean()
    }

    fn batch_score(output: &NetOutput, targets: &Tensor<1, Int>) -> Tensor<1> {
        let [b] = targets.dims();
        output
            .logits
            .clone()
            .argmax(1)
            .reshape([b])
            .equal(targets.clone())
            .float()
            .mean()
    }

    fn deployment(net: MultimodalNet) -> MultimodalNet {
        net.without_reg_head()
    }

    async fn evaluate(
        net: &MultimodalNet,
        source: &Self::Source,
        indices: &[usize],
        combinations: &[ModalitySet],
        batch_size: usize,
        device: &Device,
        bona_fide_label: Option<usize>,
        method: &str,
    ) -> Result<EvalReport> {
        let bona_fide = bona_fide_label.filter(|_| source.num_classes() == 2);
        evaluate(
            net,
            source,
            indices,
            combinations,
            batch_size,
            device,
            bona_fide,
            method,
        )
        .await
    }

    async fn mining_evidence(
        net: &MultimodalNet,
        source: &Self::Source,
        indices: &[usize],
        combinations: &[ModalitySet],
        batch_size: usize,
        device: &Device,
    ) -> Result<MiningEvidence> {
        let classes = net.info().classes;
        let mut rows = Vec::with_capacity(combinations.len());
        for &c in combinations {
            let mut block = Vec::with_capacity(indices.len() * classes);
            for chunk in indices.chunks(batch_size.max(1)) {
                let p = predict_proba(net, source, chunk, c, device).await?;
                block.extend(p.into_iter().flatten());
            }
            rows.push(block);
        }
        Ok(MiningEvidence::Probabilities { rows, classes })
    }

    fn distill(
        teacher: &FrozenTeacher<Self>,
        ctx: &LossContext<'_, Self>,
        reduction: MadReduction,
        imp: MadImpl,
    ) -> Tensor<1> {
        // The teacher runs without autodiff tracking, on the complete modalities.
        let inputs: Vec<ModalityInput> = ctx
            .inputs
            .iter()
            .map(|x| match x {
                ModalityInput::Vector(t) => ModalityInput::Vector(teacher.input(t)),
                ModalityInput::Image(t) => ModalityInput::Image(teacher.input(t)),
            })
            .collect();
        let n = teacher.net.num_modalities();
        let full = vec![ModalitySet::full(n); ctx.masks.len()];
        let t = Self::forward(&teacher.net, &inputs, &full);
        let (features, logits) = (t.features.detach(), t.logits.detach());
        let student = ctx.output.features.clone();
        if imp != MadImpl::Ops
            && let Some(loss) =
                mad_loss_kernels(student.clone(), features.clone(), logits.clone(), reduction)
        {
            return loss;
        }
        // Off wgpu (`auto`), or `ops`: `kernel` off wgpu is refused before training starts.
        mad_loss(student, features, logits, reduction)
    }

    fn regularization_loss(
        ctx: &LossContext<'_, Self>,
        weak: &[ModalitySet],
        mode: MarLossMode,
    ) -> Option<Tensor<1>> {
        let reg = ctx.output.reg_logits.clone()?;
        let ce = cross_entropy_per_sample(reg, ctx.targets.clone());
        Some(mar_loss(ce, ctx.masks, weak, mode))
    }

    fn regularization_head_ran(output: &Self::Output) -> bool {
        output.reg_logits.is_some()
    }
}
