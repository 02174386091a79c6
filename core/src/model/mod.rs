//! The multimodal network: one encoder per modality, modality masking of the encoder
//! **outputs**, fusion by channel concatenation, a shared trunk (deployment network) and an
//! optional regularization head (MMANet, next issue) reading the same masked fusion.
//!
//! * All encoders produce maps of the same spatial size → convolutional trunk (ResNet layer3,
//!   layer4, GAP, linear), features = layer4 flattened — the official classification network.
//! * Otherwise (vector modalities, mixed kinds) every encoder output becomes a vector (image maps
//!   are globally average-pooled) → MLP trunk, features = its hidden layer.
//!
//! The same struct serves the teacher (always the full mask), SF (a fixed mask) and SF-MD / the
//! MMANet student (a per-sample mask).

pub mod esanet;
#[cfg(not(target_family = "wasm"))]
pub mod imagenet;
pub mod resnet;

use crate::data::{Batch, ModalityKind, ModalitySpec};
use crate::error::{CoreError, Result};
use crate::kernels::batch_norm;
use crate::modality::ModalitySet;
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, Relu};
use burn::prelude::*;
use resnet::{ConvEncoder, ConvTrunk, conv_out};
use serde::{Deserialize, Serialize};

/// Channel widths of the ResNet-18-SE image path.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ImagePreset {
    /// The official network: widths 64/128/256/512 (teacher 13,182,554 parameters on three
    /// 3-channel modalities and 2 classes).
    Paper,
    /// Widths 16/32/64/128: CPU and browser sized.
    Small,
    /// Widths 8/16/32/64: for tests and the quickest demos.
    Tiny,
}

impl ImagePreset {
    /// [stem+layer1, layer2, layer3, layer4] channel widths.
    pub fn widths(self) -> [usize; 4] {
        match self {
            ImagePreset::Paper => [64, 128, 256, 512],
            ImagePreset::Small => [16, 32, 64, 128],
            ImagePreset::Tiny => [8, 16, 32, 64],
        }
    }
}

/// Network settings (the `[model]` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    /// Widths of the image path (`paper`, `small`, `tiny`).
    #[serde(default = "default_preset")]
    pub image_preset: ImagePreset,
    /// Hidden width of each vector modality's MLP encoder.
    #[serde(default = "default_mlp_hidden")]
    pub mlp_hidden: usize,
    /// Output width of each vector modality's MLP encoder.
    #[serde(default = "default_mlp_embed")]
    pub mlp_embed: usize,
    /// Hidden width of the MLP trunk (its output is the feature MAD distils).
    #[serde(default = "default_trunk_hidden")]
    pub trunk_hidden: usize,
}

fn default_preset() -> ImagePreset {
    ImagePreset::Small
}
fn default_mlp_hidden() -> usize {
    128
}
fn default_mlp_embed() -> usize {
    64
}
fn default_trunk_hidden() -> usize {
    128
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            image_preset: default_preset(),
            mlp_hidden: default_mlp_hidden(),
            mlp_embed: default_mlp_embed(),
            trunk_hidden: default_trunk_hidden(),
        }
    }
}

/// The widest MLP layer a config may ask for.
pub const MAX_WIDTH: usize = 16_384;

impl ModelConfig {
    /// Checks the widths.
    pub fn validate(&self) -> Result<()> {
        for (field, v) in [
            ("model.mlp_hidden", self.mlp_hidden),
            ("model.mlp_embed", self.mlp_embed),
            ("model.trunk_hidden", self.trunk_hidden),
        ] {
            if v == 0 || v > MAX_WIDTH {
                return Err(CoreError::config(
                    field,
                    format!("must be 1..={MAX_WIDTH}, got {v}"),
                ));
            }
        }
        Ok(())
    }
}

/// MLP encoder of a vector modality: Linear → BN → ReLU → Linear → ReLU.
#[derive(Module, Debug)]
pub struct MlpEncoder {
    fc1: Linear,
    bn1: BatchNorm,
    fc2: Linear,
    relu: Relu,
}

impl MlpEncoder {
    fn new(dim: usize, hidden: usize, embed: usize, device: &Device) -> Self {
        MlpEncoder {
            fc1: LinearConfig::new(dim, hidden).init(device),
            bn1: BatchNormConfig::new(hidden).init(device),
            fc2: LinearConfig::new(hidden, embed).init(device),
            relu: Relu::new(),
        }
    }

    fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let h = self
            .relu
            .forward(batch_norm(&self.bn1, self.fc1.forward(x)));
        self.relu.forward(self.fc2.forward(h))
    }

    /// The width of the output (the embedding).
    fn output_dim(&self) -> usize {
        self.fc2.weight.lazy_shape()[1]
    }
}

/// One modality's encoder. (Built once per model, so the size difference between the
/// variants does not matter; boxing would only complicate the module derive.)
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Encoder {
    /// ResNet-18-SE stem for images.
    Conv(ConvEncoder),
    /// MLP for feature vectors.
    Mlp(MlpEncoder),
}

/// MLP trunk: Linear → BN → ReLU (features) → Linear (logits).
#[derive(Module, Debug)]
pub struct MlpTrunk {
    fc1: Linear,
    bn1: BatchNorm,
    fc2: Linear,
    relu: Relu,
}

impl MlpTrunk {
    fn new(cin: usize, hidden: usize, classes: usize, device: &Device) -> Self {
        MlpTrunk {
            fc1: LinearConfig::new(cin, hidden).init(device),
            bn1: BatchNormConfig::new(hidden).init(device),
            fc2: LinearConfig::new(hidden, classes).init(device),
            relu: Relu::new(),
        }
    }

    fn forward(&self, x: Tensor<2>) -> (Tensor<2>, Tensor<2>) {
        let f = self
            .relu
            .forward(batch_norm(&self.bn1, self.fc1.forward(x)));
        (self.fc2.forward(f.clone()), f)
    }
}

/// The body after fusion: a deployment trunk or a regularization head.
#[derive(Module, Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Trunk {
    /// ResNet layer3 + layer4 + GAP + linear.
    Conv(ConvTrunk),
    /// MLP.
    Mlp(MlpTrunk),
}

impl Trunk {
    fn forward(&self, fused: &Fused) -> (Tensor<2>, Tensor<2>) {
        match (self, fused) {
            (Trunk::Conv(t), Fused::Map(x)) => t.forward(x.clone()),
            (Trunk::Mlp(t), Fused::Vector(x)) => t.forward(x.clone()),
            _ => unreachable!("trunk kind is chosen from the fusion kind at construction"),
        }
    }

    fn bn_buffers(&self) -> usize {
        match self {
            Trunk::Conv(t) => t.bn_buffers(),
            Trunk::Mlp(t) => 2 * t.bn1.gamma.lazy_shape().num_elements(),
        }
    }
}

/// The fused, masked encoder outputs.
#[derive(Clone, Debug)]
pub enum Fused {
    /// Channel concatenation of equally sized maps, `[B, ΣC, H, W]`.
    Map(Tensor<4>),
    /// Concatenation of vectors, `[B, ΣE]`.
    Vector(Tensor<2>),
}

/// One modality's encoder output, before masking.
#[derive(Clone, Debug)]
pub enum Encoded {
    /// A feature map, `[B, C, H, W]`.
    Map(Tensor<4>),
    /// A vector, `[B, E]`.
    Vector(Tensor<2>),
    /// Not computed (the modality is missing from every sample): the output's dimensions and
    /// device.
    Absent(Vec<usize>, Device),
}

/// One modality's input batch.
#[derive(Clone, Debug)]
pub enum ModalityInput {
    /// `[B, dim]`.
    Vector(Tensor<2>),
    /// `[B, C, H, W]`.
    Image(Tensor<4>),
}

/// What a forward pass returns.
#[derive(Clone, Debug)]
pub struct NetOutput {
    /// Deployment-head logits `[B, classes]`.
    pub logits: Tensor<2>,
    /// Trunk features MAD distils, flattened per sample `[B, D]`.
    pub features: Tensor<2>,
    /// Regularization-head logits, when the network has that head.
    pub reg_logits: Option<Tensor<2>>,
}

/// Description of a built network (kept with checkpoints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NetInfo {
    /// The modalities the network reads.
    pub modalities: Vec<ModalitySpec>,
    /// Number of classes.
    pub classes: usize,
    /// Settings it was built from.
    pub config: ModelConfig,
    /// Whether it has the regularization head.
    pub with_reg_head: bool,
}

/// Encoders + masked fusion + trunk (+ optional regularization head).
#[derive(Module, Debug)]
pub struct MultimodalNet {
    encoders: Vec<Encoder>,
    trunk: Trunk,
    reg_head: Option<Trunk>,
    gap: AdaptiveAvgPool2d,
    #[module(skip)]
    info: NetInfo,
}

impl MultimodalNet {
    /// Builds the network for `modalities` and `classes` on `device`.
    pub fn new(
        modalities: &[ModalitySpec],
        classes: usize,
        config: &ModelConfig,
        with_reg_head: bool,
        device: &Device,
    ) -> Result<Self> {
        // fresh weights are drawn from Burn's process-wide generator (crate::rng)
        let _rng = crate::rng::burn_rng();
        config.validate()?;
        if modalities.is_empty() {
            return Err(CoreError::data("model", "no modalities"));
        }
        if classes < 2 {
            return Err(CoreError::data(
                "model",
                format!("need at least 2 classes, got {classes}"),
            ));
        }
        let w = config.image_preset.widths();
        // Encoder output spatial sizes (stem /2, maxpool /2, layer2 /2).
        let map_sizes: Vec<Option<(usize, usize)>> = modalities
            .iter()
            .map(|m| match m.kind {
                ModalityKind::Image { height, width, .. } => {
                    let f = |s| conv_out(conv_out(conv_out(s, 2), 2), 2);
                    Some((f(height), f(width)))
                }
                ModalityKind::Vector { .. } => None,
            })
            .collect();
        let all_maps_equal = map_sizes.iter().all(|s| s.is_some() && *s == map_sizes[0]);
        let encoders = modalities
            .iter()
            .map(|m| match m.kind {
                ModalityKind::Image { channels, .. } => {
                    Encoder::Conv(ConvEncoder::new(channels, [w[0], w[1]], device))
                }
                ModalityKind::Vector { dim } => Encoder::Mlp(MlpEncoder::new(
                    dim,
                    config.mlp_hidden,
                    config.mlp_embed,
                    device,
                )),
            })
            .collect();
        let make_trunk = || {
            if all_maps_equal {
                Trunk::Conv(ConvTrunk::new(
                    w[1] * modalities.len(),
                    [w[2], w[3]],
                    classes,
                    device,
                ))
            } else {
                let fused: usize = modalities
                    .iter()
                    .map(|m| match m.kind {
                        ModalityKind::Image { .. } => w[1],
                        ModalityKind::Vector { .. } => config.mlp_embed,
                    })
                    .sum();
                Trunk::Mlp(MlpTrunk::new(fused, config.trunk_hidden, classes, device))
            }
        };
        Ok(MultimodalNet {
            encoders,
            trunk: make_trunk(),
            reg_head: with_reg_head.then(make_trunk),
            gap: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            info: NetInfo {
                modalities: modalities.to_vec(),
                classes,
                config: config.clone(),
                with_reg_head,
            },
        })
    }

    /// The deployment network alone: drops the regularization head (training only).
    pub fn without_reg_head(mut self) -> Self {
        self.reg_head = None;
        self.info.with_reg_head = false;
        self
    }

    /// What the network was built for.
    pub fn info(&self) -> &NetInfo {
        &self.info
    }

    /// Number of modalities.
    pub fn num_modalities(&self) -> usize {
        self.encoders.len()
    }

    /// Trainable parameters (weights and biases; BatchNorm running statistics excluded), the
    /// number PyTorch's `sum(p.numel() for p in model.parameters())` gives.
    pub fn num_trainable_params(&self) -> usize {
        let buffers: usize = self
            .encoders
            .iter()
            .map(|e| match e {
                Encoder::Conv(c) => c.bn_buffers(),
                Encoder::Mlp(m) => 2 * m.bn1.gamma.lazy_shape().num_elements(),
            })
            .sum::<usize>()
            + self.trunk.bn_buffers()
            + self.reg_head.as_ref().map_or(0, Trunk::bn_buffers);
        self.num_params() - buffers
    }

    /// Trainable parameters of the regularization head alone (0 without one).
    pub fn num_reg_head_params(&self) -> usize {
        self.reg_head
            .as_ref()
            .map_or(0, |h| h.num_params() - h.bn_buffers())
    }

    /// Encodes every modality, zeroes each encoder's output where `mask[b, m] = 0`, and fuses.
    /// `mask` is `[B, n_modalities]` of 0/1 floats.
    pub fn encode_fuse(&self, inputs: &[ModalityInput], mask: Tensor<2>) -> Fused {
        let present = vec![true; self.encoders.len()];
        self.fuse(&self.encode(inputs, &present), mask)
    }

    /// Every modality's encoder output before masking, for the modalities with `present[m]`;
    /// the others (absent from every sample of the batch) are not computed: [`MultimodalNet::fuse`]
    /// puts zeros in their place, the values masking would give. One encoding serves several
    /// combinations (evaluation).
    ///
    /// An encoder whose parameters have not been drawn yet runs anyway: Burn draws a
    /// parameter's initial value at its first use, so skipping it would move every later draw
    /// (the trunk's initial weights) and the results with them.
    pub fn encode(&self, inputs: &[ModalityInput], present: &[bool]) -> Vec<Encoded> {
        self.encoders
            .iter()
            .zip(inputs)
            .zip(present)
            .map(|((enc, input), &present)| (enc, input, present || !all_initialized(enc)))
            .map(|(enc, input, present)| match (enc, input) {
                (Encoder::Conv(e), ModalityInput::Image(x)) if present => {
                    Encoded::Map(e.forward(x.clone()))
                }
                (Encoder::Conv(e), ModalityInput::Image(x)) => {
                    Encoded::Absent(e.output_dims(x.dims()).to_vec(), x.device())
                }
                (Encoder::Mlp(e), ModalityInput::Vector(x)) if present => {
                    Encoded::Vector(e.forward(x.clone()))
                }
                (Encoder::Mlp(e), ModalityInput::Vector(x)) => {
                    Encoded::Absent(vec![x.dims()[0], e.output_dim()], x.device())
                }
                _ => unreachable!("inputs are checked against the modality kinds"),
            })
            .collect()
    }

    /// Zeroes each encoder's output where `mask[b, m] = 0` and fuses them (`mask` is
    /// `[B, n_modalities]` of 0/1 floats).
    pub fn fuse(&self, encoded: &[Encoded], mask: Tensor<2>) -> Fused {
        let [b, _] = mask.dims();
        let any_vector = self.encoders.iter().any(|e| matches!(e, Encoder::Mlp(_)))
            || matches!(self.trunk, Trunk::Mlp(_));
        let mut maps = Vec::new();
        let mut vecs = Vec::new();
        for (m, encoded) in encoded.iter().enumerate() {
            let keep = mask.clone().slice([0..b, m..m + 1]); // [B, 1]
            match encoded {
                Encoded::Map(y) => {
                    let y = y.clone() * keep.reshape([b, 1, 1, 1]);
                    if any_vector {
                        vecs.push(self.gap.forward(y).flatten(1, 3));
                    } else {
                        maps.push(y);
                    }
                }
                Encoded::Vector(y) => vecs.push(y.clone() * keep),
                Encoded::Absent(dims, device) => match dims[..] {
                    [b, c, _, _] if any_vector => vecs.push(Tensor::zeros([b, c], device)),
                    [b, c, h, w] => maps.push(Tensor::zeros([b, c, h, w], device)),
                    [b, e] => vecs.push(Tensor::zeros([b, e], device)),
                    _ => unreachable!("encoder outputs are vectors or maps"),
                },
            }
        }
        if any_vector {
            Fused::Vector(Tensor::cat(vecs, 1))
        } else {
            Fused::Map(Tensor::cat(maps, 1))
        }
    }

    /// Forward pass where `present[m]` is false only for modalities no sample of the batch
    /// sees (`mask` is 0 in their column): their encoders are skipped, their outputs zero, as
    /// masking makes them. The outputs are those of [`MultimodalNet::forward`]; the skipped
    /// encoders get no gradient and no batch-norm update (training a customised SF model,
    /// whose other modalities are always missing, computes only its own encoders).
    pub fn forward_present(
        &self,
        inputs: &[ModalityInput],
        mask: Tensor<2>,
        present: &[bool],
    ) -> NetOutput {
        let fused = self.fuse(&self.encode(inputs, present), mask);
        let (logits, features) = self.trunk.forward(&fused);
        let reg_logits = self.reg_head.as_ref().map(|h| h.forward(&fused).0);
        NetOutput {
            logits,
            features,
            reg_logits,
        }
    }

    /// Forward pass: deployment logits, trunk features, and the regularization head's logits.
    pub fn forward(&self, inputs: &[ModalityInput], mask: Tensor<2>) -> NetOutput {
        self.forward_present(inputs, mask, &vec![true; self.encoders.len()])
    }

    /// The deployment network's logits for fused encoder outputs (no regularization head).
    pub fn deployment_logits(&self, fused: &Fused) -> Tensor<2> {
        self.trunk.forward(fused).0
    }

    /// Moves a host batch to `device` as model inputs, checking shapes against the modalities.
    pub fn inputs_from_batch(&self, batch: &Batch, device: &Device) -> Result<Vec<ModalityInput>> {
        if batch.inputs.len() != self.info.modalities.len() {
            return Err(CoreError::data(
                "batch",
                format!(
                    "{} modalities in the batch, the model has {}",
                    batch.inputs.len(),
                    self.info.modalities.len()
                ),
            ));
        }
        batch
            .inputs
            .iter()
            .zip(&batch.shapes)
            .zip(&self.info.modalities)
            .map(|((values, shape), spec)| {
                let mut expected = vec![batch.labels.len()];
                expected.extend(spec.kind.shape());
                if *shape != expected {
                    return Err(CoreError::data(
                        "batch",
                        format!(
                            "modality `{}` has shape {shape:?}, the model expects {expected:?}",
                            spec.name
                        ),
                    ));
                }
                let data = TensorData::new(values.clone(), shape.clone());
                Ok(match spec.kind {
                    ModalityKind::Vector { .. } => {
                        ModalityInput::Vector(Tensor::<2>::from_data(data, device))
                    }
                    ModalityKind::Image { .. } => {
                        ModalityInput::Image(Tensor::<4>::from_data(data, device))
                    }
                })
            })
            .collect()
    }
}

/// The `[B, n]` 0/1 mask tensor of per-sample combinations.
pub fn mask_tensor(sets: &[ModalitySet], n_modalities: usize, device: &Device) -> Tensor<2> {
    let values: Vec<f32> = sets
        .iter()
        .flat_map(|s| (0..n_modalities).map(move |m| if s.contains(m) { 1.0 } else { 0.0 }))
        .collect();
    Tensor::from_data(TensorData::new(values, [sets.len(), n_modalities]), device)
}

/// Labels as an Int tensor.
pub fn label_tensor(labels: &[usize], device: &Device) -> Tensor<1, Int> {
    let values: Vec<i64> = labels.iter().map(|&l| l as i64).collect();
    Tensor::from_data(TensorData::new(values, [labels.len()]), device)
}

/// Whether every float parameter of `module` holds its value (Burn draws a parameter's initial
/// value when it is first used).
fn all_initialized<M: Module>(module: &M) -> bool {
    struct Initialized(bool);
    impl burn::module::ModuleVisitor for Initialized {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            self.0 &= param.is_initialized();
        }
    }
    let mut visitor = Initialized(true);
    module.visit(&mut visitor);
    visitor.0
}

/// Trainable parameters of any module: every float parameter except BatchNorm running
/// statistics (PyTorch's `sum(p.numel() for p in model.parameters())`).
pub fn trainable_params<M: Module>(module: &M) -> usize {
    /// Counts parameters, halving BatchNorm's (γ, β, running mean, running var are the same size).
    struct Count {
        containers: Vec<String>,
        total: usize,
    }
    impl burn::module::ModuleVisitor for Count {
        fn enter_module(&mut self, _name: &str, container_type: &str) {
            self.containers.push(container_type.to_string());
        }
        fn exit_module(&mut self, _name: &str, _container_type: &str) {
            self.containers.pop();
        }
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            let n = param.lazy_shape().num_elements();
            let in_bn = self
                .containers
                .last()
                .is_some_and(|c| c == "Struct:BatchNorm");
            self.total += if in_bn { n / 2 } else { n };
        }
    }
    let mut count = Count {
        containers: Vec::new(),
        total: 0,
    };
    module.visit(&mut count);
    count.total
}
