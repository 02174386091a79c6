//! The seam between the one training pipeline and the paper's two tasks.
//!
//! A [`Task`] says what a network, a batch and an output are, how the task loss and the batch
//! score are computed, how a model is evaluated per modality combination, what MAR's mining
//! measures, and how MMANet's two terms (MAD from the teacher, the regularization network's
//! loss on the weak combinations) read that task's outputs. Everything else — the step-wise
//! trainer ([`crate::train::StageTrainer`]), checkpoints, the stage runner and the experiment
//! ([`crate::experiment`]), the comparison tables and the run folders — is written once, generic
//! over the task:
//!
//! * [`Classification`]: one encoder per modality, fused by concatenation, a classifier trunk
//!   (face anti-spoofing, mfeat); scored by accuracy and ACER; mining by prediction distributions;
//! * [`Segmentation`]: ESANet on RGB-D scenes; scored by mIoU; mining by mIoU.

pub mod classification;
pub mod segmentation;
pub mod terms;

pub use classification::Classification;
pub use segmentation::Segmentation;
pub use terms::{LossContext, LossTerm, MiningEvidence};

use crate::config::{ExperimentConfig, TaskKind};
use crate::error::Result;
use crate::losses::mad::{MadImpl, MadReduction};
use crate::losses::mar::MarLossMode;
use crate::mmanet_settings::TeacherNorm;
use crate::modality::ModalitySet;
use crate::report::{EvalReport, TableMetric};
use burn::prelude::*;
use rand::rngs::StdRng;

/// One task of the paper, as the training pipeline sees it.
pub trait Task: Sized + Send + 'static {
    /// The network (deployment network, optionally with the regularization head).
    type Net: Module + Clone + Send + std::fmt::Debug + 'static;
    /// The data a network trains on.
    type Source: ?Sized + Send + Sync;
    /// A batch of inputs on the device.
    type Inputs: Clone;
    /// A batch of targets on the device.
    type Targets;
    /// What a forward pass returns.
    type Output;

    /// Which of the config's tasks this is (its `task` key).
    const KIND: TaskKind;
    /// Short name (`classification`, `segmentation`).
    const NAME: &'static str = Self::KIND.name();
    /// Whether [`TeacherNorm::Official`] means batch statistics.
    const OFFICIAL_TEACHER_BATCH_NORM: bool;
    /// What validation scores (and model selection maximises): accuracy, or mIoU.
    const SCORE: TableMetric;
    /// Whether the official loop zeroes a NaN distillation loss for the step (segmentation:
    /// `if torch.isnan(distillation_loss): distillation_loss = 0`) rather than training on it.
    const OFFICIAL_MAD_NAN_GUARD: bool = false;

    /// Builds a fresh network for `source` as `cfg` describes it (with the regularization head
    /// when `with_reg`).
    fn build_net(
        cfg: &ExperimentConfig,
        source: &Self::Source,
        with_reg: bool,
        device: &Device,
    ) -> Result<Self::Net>;
    /// Checks the settings that only the data can judge (for classification: the bona-fide
    /// class is one of the data's classes), before anything trains.
    fn check_settings(cfg: &ExperimentConfig, source: &Self::Source) -> Result<()> {
        let _ = (cfg, source);
        Ok(())
    }
    /// Number of modalities the network reads.
    fn num_modalities(net: &Self::Net) -> usize;
    /// Number of classes.
    fn num_classes(net: &Self::Net) -> usize;
    /// The dataset's name, for messages.
    fn source_name(source: &Self::Source) -> String;
    /// The data's modality names, in mask order.
    fn modality_names(source: &Self::Source) -> Vec<String>;
    /// The data's class names, in class-index order.
    fn class_names(source: &Self::Source) -> Vec<String>;
    /// One line about the data for the CLI (`mfeat — 2000 samples, 10 classes, …`).
    fn describe(source: &Self::Source) -> String;
    /// The config's network settings that determine this task's model: part of every stage's
    /// fingerprint (a stage is reused or resumed only under the same settings).
    fn model_settings(cfg: &ExperimentConfig) -> serde_json::Value;
    /// Loads the samples `indices` onto `device` (with `augment`, the training augmentation).
    fn load_batch(
        net: &Self::Net,
        source: &Self::Source,
        indices: &[usize],
        augment: Option<&mut StdRng>,
        device: &Device,
    ) -> Result<(Self::Inputs, Self::Targets)>;
    /// A forward pass with one combination per sample.
    fn forward(net: &Self::Net, inputs: &Self::Inputs, masks: &[ModalitySet]) -> Self::Output;

    /// [`Task::forward`] in a training stage whose samples only ever see the modalities in
    /// `seen` (a customised SF model: one fixed combination): the rest of the network need not
    /// run, as long as the outputs are [`Task::forward`]'s. By default the full pass.
    fn forward_in_stage(
        net: &Self::Net,
        inputs: &Self::Inputs,
        masks: &[ModalitySet],
        seen: ModalitySet,
    ) -> Self::Output {
        let _ = seen;
        Self::forward(net, inputs, masks)
    }
    /// The task loss `[1]` (cross-entropy; for segmentation summed over four scales).
    fn task_loss(output: &Self::Output, targets: &Self::Targets) -> Tensor<1>;
    /// The batch score `[1]` shown while training (accuracy; pixel accuracy).
    fn batch_score(output: &Self::Output, targets: &Self::Targets) -> Tensor<1>;
    /// The deployment network alone (the regularization head dropped).
    fn deployment(net: Self::Net) -> Self::Net;
    /// Evaluates `net` (in eval mode) on `indices` once per combination. `bona_fide_label`
    /// adds APCER/BPCER/ACER on two-class classification data.
    #[allow(clippy::too_many_arguments)]
    fn evaluate(
        net: &Self::Net,
        source: &Self::Source,
        indices: &[usize],
        combinations: &[ModalitySet],
        batch_size: usize,
        device: &Device,
        bona_fide_label: Option<usize>,
        method: &str,
    ) -> impl Future<Output = Result<EvalReport>>;
    /// What MAR's mining measures for `combinations` on `indices`.
    fn mining_evidence(
        net: &Self::Net,
        source: &Self::Source,
        indices: &[usize],
        combinations: &[ModalitySet],
        batch_size: usize,
        device: &Device,
    ) -> impl Future<Output = Result<MiningEvidence>>;
    /// MAD between the student's features in `ctx` and the frozen `teacher`'s on the complete
    /// modalities.
    fn distill(
        teacher: &FrozenTeacher<Self>,
        ctx: &LossContext<'_, Self>,
        reduction: MadReduction,
        imp: MadImpl,
    ) -> Tensor<1>;
    /// The regularization network's loss on the weak combinations `weak`, or `None` when the
    /// output has no regularization head.
    fn regularization_loss(
        ctx: &LossContext<'_, Self>,
        weak: &[ModalitySet],
        mode: MarLossMode,
    ) -> Option<Tensor<1>>;
    /// Whether `output` came through the regularization network (segmentation runs it only
    /// when the batch holds a depth-only sample, as the official forward does).
    fn regularization_head_ran(output: &Self::Output) -> bool;
}

/// The frozen teacher as MAD runs it.
pub struct FrozenTeacher<T: Task> {
    /// The network: on the plain device in eval mode (running statistics), or on the autodiff
    /// device with no parameter tracked, so its BatchNorm layers use batch statistics.
    pub net: T::Net,
    /// Whether it normalises with batch statistics (it then runs on the autodiff device).
    pub batch_stats: bool,
}

impl<T: Task> FrozenTeacher<T> {
    /// Freezes `teacher` for distillation on the training `device`, normalising as `norm` says.
    pub fn new(teacher: &T::Net, norm: TeacherNorm, device: &Device) -> Self {
        let batch_stats = match norm {
            TeacherNorm::Official => T::OFFICIAL_TEACHER_BATCH_NORM,
            TeacherNorm::Running => false,
            TeacherNorm::Batch => true,
        };
        let net = if batch_stats {
            teacher.clone().fork(&device.clone().autodiff()).no_grad()
        } else {
            teacher.valid()
        };
        FrozenTeacher { net, batch_stats }
    }

    /// An input tensor moved to the teacher's side (the plain device unless it uses batch
    /// statistics), never tracked.
    pub fn input<const D: usize>(&self, x: &Tensor<D>) -> Tensor<D> {
        if self.batch_stats {
            x.clone().detach()
        } else {
            x.clone().without_autodiff()
        }
    }
}
