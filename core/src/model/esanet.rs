//! ESANet as MMANet's segmentation code builds it (spec §2, `ESANet_KD_Auxi`): two ResNet
//! encoders (RGB and depth), SE-add fusion after the stem and after each of layer1–4 with the
//! modality mask applied at those five places, 1×1 skip layers, a pyramid-pooling context module
//! (PPM, or APPM for Cityscapes), and a decoder of three modules (3×3 conv, NonBottleneck1D
//! blocks, a side output, learned 3×3 upsampling, an additive skip) with a final 3×3 conv and two
//! learned upsamplings to full resolution. The MMANet student adds a second decoder of the same
//! shape, the regularization network, reading the same encoder outputs.
//!
//! Masking: per sample, both streams' features are multiplied by their bit before each fusion.
//! The depth stream continues from its own **unmasked** features; the RGB stream continues from
//! the **fused** ones (so the depth encoder always sees the full depth).
//!
//! The encoders keep torchvision's module names (`conv1`, `bn1`, `layer1.0.conv1`, …,
//! `downsample.0`/`.1`) so ImageNet weights load by name ([`crate::model::imagenet`]).

use crate::error::{CoreError, Result};
use crate::kernels::{batch_norm, conv2d, max_pool2d};
use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Initializer, PaddingConfig2d, Relu};
use burn::prelude::*;
use burn::tensor::activation::sigmoid;
use burn::tensor::module::{adaptive_avg_pool2d, interpolate};
use burn::tensor::ops::{InterpolateMode, InterpolateOptions};
use serde::{Deserialize, Serialize};

/// ResNet block type of the encoders.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum BlockKind {
    /// Two 3×3 convs (ResNet-18/34), expansion 1.
    Basic,
    /// 1×1, 3×3 (stride here), 1×1 (ResNet-50), expansion 4.
    Bottleneck,
}

impl BlockKind {
    /// Output channels per planes.
    pub fn expansion(self) -> usize {
        match self {
            BlockKind::Basic => 1,
            BlockKind::Bottleneck => 4,
        }
    }
}

/// The context module on the 1/32 features.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ContextKind {
    /// Pyramid pooling, bins 1 and 5 (NYUv2).
    Ppm,
    /// Adaptive pyramid pooling, bins 1, 2, 4, 8, pooled sizes scaled with the input (Cityscapes).
    Appm,
}

impl ContextKind {
    /// The pooling bins.
    pub fn bins(self) -> &'static [usize] {
        match self {
            ContextKind::Ppm => &[1, 5],
            ContextKind::Appm => &[1, 2, 4, 8],
        }
    }
}

/// Size presets of the segmentation network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum SegPreset {
    /// The official network: ResNet-50 encoders, decoder [512, 256, 128] with 3 NonBottleneck1D
    /// blocks per module (teacher 71,733,544 parameters for 40 classes with PPM).
    Paper,
    /// BasicBlock encoders of widths 16/32/64/128 (one block per layer), decoder [64, 32, 16]
    /// with one NonBottleneck1D each: trains on two CPU cores in minutes.
    Small,
    /// Widths 8/16/32/64, decoder [32, 16, 8]: for tests.
    Tiny,
}

/// The segmentation network's settings (the `[seg_model]` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Hash)]
#[serde(deny_unknown_fields)]
pub struct SegModelConfig {
    /// Size preset.
    #[serde(default = "default_seg_preset")]
    pub preset: SegPreset,
    /// Context module (`ppm` for NYUv2, `appm` for Cityscapes).
    #[serde(default = "default_context")]
    pub context: ContextKind,
    /// A torchvision ResNet state dict (`.pth`, e.g. `resnet50-19c8e357.pth` for the `paper`
    /// preset) to initialise both encoders with, as the official training does; relative to
    /// the config file, else found by name in `$MMANET_WEIGHTS` or PyTorch's hub cache
    /// ([`crate::model::imagenet`]). None (or `""`): random (He) initialisation.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "empty_path_is_none"
    )]
    pub imagenet: Option<std::path::PathBuf>,
    /// He initialisation of the layers outside the encoders, as ESANet's `--he_init` (the
    /// official Cityscapes script): every conv of the fusions, skips, context module and
    /// decoders drawn from `kaiming_normal_(fan_out, relu)`, except the class outputs, the
    /// convs before a sigmoid (SE's second) and the depthwise upsampling. Off: PyTorch's
    /// default init (the official NYUv2 script).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub he_init: bool,
}

/// `imagenet = ""` (as `--set seg_model.imagenet=""` writes it) means no weights.
fn empty_path_is_none<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<std::path::PathBuf>, D::Error> {
    let p: Option<std::path::PathBuf> = serde::Deserialize::deserialize(d)?;
    Ok(p.filter(|p| !p.as_os_str().is_empty()))
}

fn default_seg_preset() -> SegPreset {
    SegPreset::Small
}
fn default_context() -> ContextKind {
    ContextKind::Ppm
}

impl Default for SegModelConfig {
    fn default() -> Self {
        SegModelConfig {
            preset: default_seg_preset(),
            context: default_context(),
            imagenet: None,
            he_init: false,
        }
    }
}

/// The concrete architecture a [`SegModelConfig`] stands for.
#[derive(Clone, Debug, PartialEq)]
pub struct EsaNetArch {
    /// Encoder block type.
    pub block: BlockKind,
    /// Blocks per encoder layer.
    pub layers: [usize; 4],
    /// Planes of layer1..4 (the stem has `planes[0]` channels).
    pub planes: [usize; 4],
    /// Decoder module channels (1/16, 1/8, 1/4).
    pub decoder: [usize; 3],
    /// NonBottleneck1D blocks per decoder module.
    pub decoder_blocks: usize,
    /// Context module.
    pub context: ContextKind,
}

impl SegModelConfig {
    /// The architecture of this config.
    pub fn arch(&self) -> EsaNetArch {
        let (block, layers, planes, decoder, decoder_blocks) = match self.preset {
            SegPreset::Paper => (
                BlockKind::Bottleneck,
                [3, 4, 6, 3],
                [64, 128, 256, 512],
                [512, 256, 128],
                3,
            ),
            SegPreset::Small => (
                BlockKind::Basic,
                [1, 1, 1, 1],
                [16, 32, 64, 128],
                [64, 32, 16],
                1,
            ),
            SegPreset::Tiny => (
                BlockKind::Basic,
                [1, 1, 1, 1],
                [8, 16, 32, 64],
                [32, 16, 8],
                1,
            ),
        };
        EsaNetArch {
            block,
            layers,
            planes,
            decoder,
            decoder_blocks,
            context: self.context,
        }
    }
}

/// PyTorch's `kaiming_normal_(mode="fan_out", nonlinearity="relu")` (torchvision ResNet init).
fn kaiming_fan_out() -> Initializer {
    Initializer::KaimingNormal {
        gain: 2f64.sqrt(),
        fan_out_only: true,
    }
}

/// A conv with `k×k` kernel, padding `k/2`; `kaiming` selects the ResNet init (otherwise
/// PyTorch's default, Burn's default too).
fn conv(
    cin: usize,
    cout: usize,
    k: [usize; 2],
    stride: usize,
    bias: bool,
    kaiming: bool,
    device: &Device,
) -> Conv2d {
    let (ph, pw) = (k[0] / 2, k[1] / 2);
    let mut c = Conv2dConfig::new([cin, cout], k)
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(ph, pw, ph, pw))
        .with_bias(bias);
    if kaiming {
        c = c.with_initializer(kaiming_fan_out());
    }
    c.init(device)
}

/// `c` with its weight drawn again from `kaiming_normal_(mode="fan_out", nonlinearity="relu")`
/// (ESANet's `--he_init`); its bias is kept. For the non-grouped convs it is applied to.
fn he_reinit(mut c: Conv2d) -> Conv2d {
    let [cout, cin, kh, kw] = c.weight.lazy_shape().dims::<4>();
    let device = c.weight.lazy_device();
    c.weight = kaiming_fan_out().init_with(
        [cout, cin, kh, kw],
        Some(cin * kh * kw),
        Some(cout * kh * kw),
        &device,
    );
    c
}

fn bn(c: usize, device: &Device) -> BatchNorm {
    BatchNormConfig::new(c).init(device)
}

/// One ResNet block with torchvision's names: Basic uses `conv1`/`conv2`, Bottleneck adds
/// `conv3`; `downsample` is `(1×1 conv, BN)`.
#[derive(Module, Debug)]
pub struct ResBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    conv3: Option<Conv2d>,
    bn3: Option<BatchNorm>,
    downsample: Option<(Conv2d, BatchNorm)>,
    relu: Relu,
}

impl ResBlock {
    fn new(kind: BlockKind, cin: usize, planes: usize, stride: usize, device: &Device) -> Self {
        let cout = planes * kind.expansion();
        let downsample = (stride != 1 || cin != cout).then(|| {
            (
                conv(cin, cout, [1, 1], stride, false, true, device),
                bn(cout, device),
            )
        });
        match kind {
            BlockKind::Basic => ResBlock {
                conv1: conv(cin, planes, [3, 3], stride, false, true, device),
                bn1: bn(planes, device),
                conv2: conv(planes, planes, [3, 3], 1, false, true, device),
                bn2: bn(planes, device),
                conv3: None,
                bn3: None,
                downsample,
                relu: Relu::new(),
            },
            BlockKind::Bottleneck => ResBlock {
                conv1: conv(cin, planes, [1, 1], 1, false, true, device),
                bn1: bn(planes, device),
                conv2: conv(planes, planes, [3, 3], stride, false, true, device),
                bn2: bn(planes, device),
                conv3: Some(conv(planes, cout, [1, 1], 1, false, true, device)),
                bn3: Some(bn(cout, device)),
                downsample,
                relu: Relu::new(),
            },
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some((c, b)) => batch_norm(b, conv2d(c, x.clone())),
            None => x.clone(),
        };
        let y = self
            .relu
            .forward(batch_norm(&self.bn1, conv2d(&self.conv1, x)));
        let y = batch_norm(&self.bn2, conv2d(&self.conv2, y));
        let y = match (&self.conv3, &self.bn3) {
            (Some(c), Some(b)) => batch_norm(b, conv2d(c, self.relu.forward(y))),
            _ => y,
        };
        self.relu.forward(y + identity)
    }
}

/// A torchvision-layout ResNet without `fc`: `conv1` 7×7/2 → `bn1` → ReLU (the stem), then
/// `layer1..4` (the max-pool runs in [`EsaNet`]'s forward, between stem and layer1).
#[derive(Module, Debug)]
pub struct ResNetEncoder {
    /// Stem conv, 7×7 stride 2.
    pub conv1: Conv2d,
    /// Stem BN.
    pub bn1: BatchNorm,
    /// Layer 1 (1/4).
    pub layer1: Vec<ResBlock>,
    /// Layer 2 (1/8).
    pub layer2: Vec<ResBlock>,
    /// Layer 3 (1/16).
    pub layer3: Vec<ResBlock>,
    /// Layer 4 (1/32).
    pub layer4: Vec<ResBlock>,
    relu: Relu,
}

impl ResNetEncoder {
    /// An encoder for `in_channels`-channel input.
    pub fn new(in_channels: usize, arch: &EsaNetArch, device: &Device) -> Self {
        let e = arch.block.expansion();
        let mut cin = arch.planes[0];
        let mut layer = |i: usize| {
            let stride = if i == 0 { 1 } else { 2 };
            let blocks: Vec<ResBlock> = (0..arch.layers[i])
                .map(|b| {
                    let block = ResBlock::new(
                        arch.block,
                        cin,
                        arch.planes[i],
                        if b == 0 { stride } else { 1 },
                        device,
                    );
                    cin = arch.planes[i] * e;
                    block
                })
                .collect();
            blocks
        };
        let (l1, l2, l3, l4) = (layer(0), layer(1), layer(2), layer(3));
        ResNetEncoder {
            conv1: conv(in_channels, arch.planes[0], [7, 7], 2, false, true, device),
            bn1: bn(arch.planes[0], device),
            layer1: l1,
            layer2: l2,
            layer3: l3,
            layer4: l4,
            relu: Relu::new(),
        }
    }

    fn stem(&self, x: Tensor<4>) -> Tensor<4> {
        self.relu
            .forward(batch_norm(&self.bn1, conv2d(&self.conv1, x)))
    }

    fn layer(&self, i: usize, mut x: Tensor<4>) -> Tensor<4> {
        let blocks = match i {
            1 => &self.layer1,
            2 => &self.layer2,
            3 => &self.layer3,
            _ => &self.layer4,
        };
        for b in blocks {
            x = b.forward(x);
        }
        x
    }

    /// The stem, the max-pool, and layer1..4 without fusion (the features the ImageNet import
    /// is checked on): `[after max-pool, layer1, layer2, layer3, layer4]`.
    pub fn features(&self, x: Tensor<4>) -> Vec<Tensor<4>> {
        let mut x = max_pool(self.stem(x));
        let mut out = vec![x.clone()];
        for i in 1..=4 {
            x = self.layer(i, x);
            out.push(x.clone());
        }
        out
    }
}

fn max_pool(x: Tensor<4>) -> Tensor<4> {
    let pool: MaxPool2d = MaxPool2dConfig::new([3, 3])
        .with_strides([2, 2])
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init();
    max_pool2d(&pool, x)
}

/// Squeeze-and-excitation with 1×1 convs (bias): x ⊙ σ(W₂·ReLU(W₁·GAP(x))).
#[derive(Module, Debug)]
pub struct SqueezeExcitation {
    fc1: Conv2d,
    fc2: Conv2d,
    relu: Relu,
}

impl SqueezeExcitation {
    fn new(c: usize, device: &Device) -> Self {
        let hidden = (c / 16).max(1);
        SqueezeExcitation {
            fc1: conv(c, hidden, [1, 1], 1, true, false, device),
            fc2: conv(hidden, c, [1, 1], 1, true, false, device),
            relu: Relu::new(),
        }
    }

    /// He init of `fc1`; `fc2` precedes the sigmoid and keeps its init.
    fn he_init(self) -> Self {
        SqueezeExcitation {
            fc1: he_reinit(self.fc1),
            ..self
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let s = adaptive_avg_pool2d(x.clone(), [1, 1]);
        let s = sigmoid(conv2d(&self.fc2, self.relu.forward(conv2d(&self.fc1, s))));
        x * s
    }
}

/// SE-add fusion: `SE_rgb(rgb) + SE_depth(depth)`.
#[derive(Module, Debug)]
pub struct SeAddFusion {
    se_rgb: SqueezeExcitation,
    se_depth: SqueezeExcitation,
}

impl SeAddFusion {
    fn new(c: usize, device: &Device) -> Self {
        SeAddFusion {
            se_rgb: SqueezeExcitation::new(c, device),
            se_depth: SqueezeExcitation::new(c, device),
        }
    }

    fn he_init(self) -> Self {
        SeAddFusion {
            se_rgb: self.se_rgb.he_init(),
            se_depth: self.se_depth.he_init(),
        }
    }

    fn forward(&self, rgb: Tensor<4>, depth: Tensor<4>) -> Tensor<4> {
        self.se_rgb.forward(rgb) + self.se_depth.forward(depth)
    }
}

/// conv (no bias) → BN → ReLU.
#[derive(Module, Debug)]
pub struct ConvBnAct {
    conv: Conv2d,
    bn: BatchNorm,
    relu: Relu,
}

impl ConvBnAct {
    fn new(cin: usize, cout: usize, k: usize, device: &Device) -> Self {
        ConvBnAct {
            conv: conv(cin, cout, [k, k], 1, false, false, device),
            bn: bn(cout, device),
            relu: Relu::new(),
        }
    }

    fn he_init(self) -> Self {
        ConvBnAct {
            conv: he_reinit(self.conv),
            ..self
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.relu
            .forward(batch_norm(&self.bn, conv2d(&self.conv, x)))
    }
}

fn nearest(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Nearest).with_output_size(size),
    )
}

/// Bilinear resize with `align_corners = False` (PyTorch's default), for logits.
pub fn bilinear(x: Tensor<4>, size: [usize; 2]) -> Tensor<4> {
    interpolate(
        x,
        InterpolateOptions::new(InterpolateMode::Bilinear)
            .with_align_corners(false)
            .with_output_size(size),
    )
}

/// Pyramid pooling (PPM / APPM): per bin, pool, 1×1 ConvBnAct to `cin / bins`, nearest
/// upsampling back; concatenate with the input; 1×1 ConvBnAct to `cout`.
#[derive(Module, Debug)]
pub struct ContextModule {
    branches: Vec<ConvBnAct>,
    final_conv: ConvBnAct,
    #[module(skip)]
    kind: ContextKind,
    /// The 1/32 size of training inputs (APPM scales its pooled sizes against it).
    #[module(skip)]
    train_size_32: [usize; 2],
}

impl ContextModule {
    fn he_init(self) -> Self {
        ContextModule {
            branches: self.branches.into_iter().map(ConvBnAct::he_init).collect(),
            final_conv: self.final_conv.he_init(),
            ..self
        }
    }

    fn new(
        kind: ContextKind,
        cin: usize,
        cout: usize,
        train_size_32: [usize; 2],
        device: &Device,
    ) -> Self {
        let bins = kind.bins();
        let reduced = cin / bins.len();
        ContextModule {
            branches: bins
                .iter()
                .map(|_| ConvBnAct::new(cin, reduced, 1, device))
                .collect(),
            final_conv: ConvBnAct::new(cin + reduced * bins.len(), cout, 1, device),
            kind,
            train_size_32,
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let mut parts = vec![x.clone()];
        for (bin, branch) in self.kind.bins().iter().zip(&self.branches) {
            let pooled = match self.kind {
                ContextKind::Ppm => [*bin, *bin],
                ContextKind::Appm => {
                    // int(h / (H/32) + 0.5) per axis, as the official APPM
                    let mh = ((h as f64 / self.train_size_32[0] as f64) + 0.5) as usize;
                    let mw = ((w as f64 / self.train_size_32[1] as f64) + 0.5) as usize;
                    [bin * mh.max(1), bin * mw.max(1)]
                }
            };
            let y = branch.forward(adaptive_avg_pool2d(x.clone(), pooled));
            parts.push(nearest(y, [h, w]));
        }
        self.final_conv.forward(Tensor::cat(parts, 1))
    }
}

/// ERFNet's NonBottleneck1D: 3×1 → ReLU → 1×3 → BN → ReLU → 3×1 → ReLU → 1×3 → BN, plus the
/// input, then ReLU (convs with bias, BN eps 1e-3).
#[derive(Module, Debug)]
pub struct NonBottleneck1D {
    conv3x1_1: Conv2d,
    conv1x3_1: Conv2d,
    bn1: BatchNorm,
    conv3x1_2: Conv2d,
    conv1x3_2: Conv2d,
    bn2: BatchNorm,
    relu: Relu,
}

impl NonBottleneck1D {
    fn new(c: usize, device: &Device) -> Self {
        let bn = || BatchNormConfig::new(c).with_epsilon(1e-3).init(device);
        NonBottleneck1D {
            conv3x1_1: conv(c, c, [3, 1], 1, true, false, device),
            conv1x3_1: conv(c, c, [1, 3], 1, true, false, device),
            bn1: bn(),
            conv3x1_2: conv(c, c, [3, 1], 1, true, false, device),
            conv1x3_2: conv(c, c, [1, 3], 1, true, false, device),
            bn2: bn(),
            relu: Relu::new(),
        }
    }

    fn he_init(self) -> Self {
        NonBottleneck1D {
            conv3x1_1: he_reinit(self.conv3x1_1),
            conv1x3_1: he_reinit(self.conv1x3_1),
            conv3x1_2: he_reinit(self.conv3x1_2),
            conv1x3_2: he_reinit(self.conv1x3_2),
            ..self
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let r = &self.relu;
        let y = r.forward(conv2d(&self.conv3x1_1, x.clone()));
        let y = r.forward(batch_norm(&self.bn1, conv2d(&self.conv1x3_1, y)));
        let y = r.forward(conv2d(&self.conv3x1_2, y));
        let y = batch_norm(&self.bn2, conv2d(&self.conv1x3_2, y));
        r.forward(y + x)
    }
}

/// Learned ×2 upsampling (`learned-3x3-zeropad`): nearest ×2, then a depthwise 3×3 conv with
/// zero padding and bias, its kernel initialised to the bilinear `[1 2 1]ᵀ[1 2 1]/16`.
#[derive(Module, Debug)]
pub struct LearnedUpsample {
    conv: Conv2d,
}

impl LearnedUpsample {
    fn new(c: usize, device: &Device) -> Self {
        let mut conv = Conv2dConfig::new([c, c], [3, 3])
            .with_groups(c)
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(true)
            .init(device);
        let k = [1.0f32, 2.0, 1.0, 2.0, 4.0, 2.0, 1.0, 2.0, 1.0].map(|v| v / 16.0);
        let values: Vec<f32> = (0..c).flat_map(|_| k).collect();
        conv.weight = Param::from_data(TensorData::new(values, [c, 1, 3, 3]), device);
        conv.bias = Some(Param::from_data(
            TensorData::new(vec![0f32; c], [c]),
            device,
        ));
        LearnedUpsample { conv }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        conv2d(&self.conv, nearest(x, [2 * h, 2 * w]))
    }
}

/// One decoder module: 3×3 ConvBnAct → NonBottleneck1D × n → (side output) → learned ×2 → + skip.
#[derive(Module, Debug)]
pub struct DecoderModule {
    conv3x3: ConvBnAct,
    blocks: Vec<NonBottleneck1D>,
    side_output: Conv2d,
    upsample: LearnedUpsample,
}

impl DecoderModule {
    fn new(cin: usize, c: usize, blocks: usize, classes: usize, device: &Device) -> Self {
        DecoderModule {
            conv3x3: ConvBnAct::new(cin, c, 3, device),
            blocks: (0..blocks)
                .map(|_| NonBottleneck1D::new(c, device))
                .collect(),
            side_output: conv(c, classes, [1, 1], 1, true, false, device),
            upsample: LearnedUpsample::new(c, device),
        }
    }

    /// He init of the 3×3 ConvBnAct and the blocks; the side output (class count) and the
    /// depthwise upsampling keep theirs.
    fn he_init(self) -> Self {
        DecoderModule {
            conv3x3: self.conv3x3.he_init(),
            blocks: self
                .blocks
                .into_iter()
                .map(NonBottleneck1D::he_init)
                .collect(),
            ..self
        }
    }

    /// Returns (upsampled + skip, side logits before upsampling).
    fn forward(&self, x: Tensor<4>, skip: Tensor<4>) -> (Tensor<4>, Tensor<4>) {
        let mut y = self.conv3x3.forward(x);
        for b in &self.blocks {
            y = b.forward(y);
        }
        let side = conv2d(&self.side_output, y.clone());
        (self.upsample.forward(y) + skip, side)
    }
}

/// What a decoder returns (the official 7-tuple).
#[derive(Clone, Debug)]
pub struct DecoderOutput {
    /// Full-resolution logits `[B, K, H, W]`.
    pub logits: Tensor<4>,
    /// Side logits at 1/8, 1/16, 1/32.
    pub side: [Tensor<4>; 3],
    /// Decoder features at 1/4 (`decoder[2]` ch), 1/8, 1/16 (`decoder[0]` ch).
    pub features: [Tensor<4>; 3],
}

impl DecoderOutput {
    /// The four scales the task loss sums over: full, 1/8, 1/16, 1/32.
    pub fn scales(&self) -> [Tensor<4>; 4] {
        [
            self.logits.clone(),
            self.side[0].clone(),
            self.side[1].clone(),
            self.side[2].clone(),
        ]
    }
}

/// The decoder: three modules, `conv_out` 3×3, two learned ×2 upsamplings.
#[derive(Module, Debug)]
pub struct Decoder {
    modules: Vec<DecoderModule>,
    conv_out: Conv2d,
    upsample1: LearnedUpsample,
    upsample2: LearnedUpsample,
}

impl Decoder {
    fn new(arch: &EsaNetArch, classes: usize, device: &Device) -> Self {
        let d = arch.decoder;
        let cins = [d[0], d[0], d[1]];
        Decoder {
            modules: (0..3)
                .map(|i| DecoderModule::new(cins[i], d[i], arch.decoder_blocks, classes, device))
                .collect(),
            conv_out: conv(d[2], classes, [3, 3], 1, true, false, device),
            upsample1: LearnedUpsample::new(classes, device),
            upsample2: LearnedUpsample::new(classes, device),
        }
    }

    /// He init of the modules; `conv_out` (class count) and the upsamplings keep theirs.
    fn he_init(self) -> Self {
        Decoder {
            modules: self
                .modules
                .into_iter()
                .map(DecoderModule::he_init)
                .collect(),
            ..self
        }
    }

    /// `cache` = [context output, skip3, skip2, skip1].
    pub fn forward(&self, cache: &FuseCache) -> DecoderOutput {
        let (f16, s32) = self.modules[0].forward(cache.context.clone(), cache.skip3.clone());
        let (f8, s16) = self.modules[1].forward(f16.clone(), cache.skip2.clone());
        let (f4, s8) = self.modules[2].forward(f8.clone(), cache.skip1.clone());
        let out = conv2d(&self.conv_out, f4.clone());
        let logits = self.upsample2.forward(self.upsample1.forward(out));
        DecoderOutput {
            logits,
            side: [s8, s16, s32],
            features: [f4, f8, f16],
        }
    }
}

/// The fused encoder outputs the decoder reads (and dense MAD distils).
#[derive(Clone, Debug)]
pub struct FuseCache {
    /// Context-module output, 1/32, `decoder[0]` channels.
    pub context: Tensor<4>,
    /// Skip at 1/16, `decoder[0]` channels.
    pub skip3: Tensor<4>,
    /// Skip at 1/8, `decoder[1]` channels.
    pub skip2: Tensor<4>,
    /// Skip at 1/4, `decoder[2]` channels.
    pub skip1: Tensor<4>,
}

/// What a forward pass returns.
#[derive(Clone, Debug)]
pub struct SegOutput {
    /// The deployment decoder.
    pub main: DecoderOutput,
    /// The fused encoder outputs.
    pub cache: FuseCache,
    /// The regularization decoder, when asked for and present.
    pub reg: Option<DecoderOutput>,
}

/// A skip layer: 1×1 ConvBnAct when the channels differ, identity otherwise.
#[derive(Module, Debug)]
pub struct SkipLayer {
    conv: Option<ConvBnAct>,
}

impl SkipLayer {
    fn new(cin: usize, cout: usize, device: &Device) -> Self {
        SkipLayer {
            conv: (cin != cout).then(|| ConvBnAct::new(cin, cout, 1, device)),
        }
    }

    fn he_init(self) -> Self {
        SkipLayer {
            conv: self.conv.map(ConvBnAct::he_init),
        }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match &self.conv {
            Some(c) => c.forward(x),
            None => x,
        }
    }
}

/// Description of a built segmentation network (kept with checkpoints).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SegNetInfo {
    /// Number of classes (void excluded).
    pub classes: usize,
    /// Settings it was built from.
    pub config: SegModelConfig,
    /// Training input `[height, width]`.
    pub train_size: [usize; 2],
    /// Whether it has the regularization decoder.
    pub with_reg_decoder: bool,
}

/// ESANet with masked SE-add fusion, and optionally MMANet's regularization decoder.
#[derive(Module, Debug)]
pub struct EsaNet {
    /// RGB encoder (3 channels).
    pub encoder_rgb: ResNetEncoder,
    /// Depth encoder (1 channel).
    pub encoder_depth: ResNetEncoder,
    fusions: Vec<SeAddFusion>,
    skips: Vec<SkipLayer>,
    context: ContextModule,
    decoder: Decoder,
    reg_decoder: Option<Decoder>,
    #[module(skip)]
    info: SegNetInfo,
}

impl EsaNet {
    /// Builds the network for `classes` classes and training inputs of `train_size`.
    pub fn new(
        config: &SegModelConfig,
        classes: usize,
        train_size: [usize; 2],
        with_reg_decoder: bool,
        device: &Device,
    ) -> Result<Self> {
        // fresh weights are drawn from Burn's process-wide generator (crate::rng)
        let _rng = crate::rng::burn_rng();
        if classes < 2 {
            return Err(CoreError::config(
                "classes",
                format!("segmentation needs at least 2 classes, got {classes}"),
            ));
        }
        crate::data::check_input_size(train_size[0], train_size[1], "train_size")?;
        let arch = config.arch();
        let e = arch.block.expansion();
        let enc: Vec<usize> = std::iter::once(arch.planes[0])
            .chain(arch.planes.iter().map(|p| p * e))
            .collect();
        let d = arch.decoder;
        let net = EsaNet {
            encoder_rgb: ResNetEncoder::new(3, &arch, device),
            encoder_depth: ResNetEncoder::new(1, &arch, device),
            fusions: enc.iter().map(|&c| SeAddFusion::new(c, device)).collect(),
            skips: vec![
                SkipLayer::new(enc[1], d[2], device),
                SkipLayer::new(enc[2], d[1], device),
                SkipLayer::new(enc[3], d[0], device),
            ],
            context: ContextModule::new(
                arch.context,
                enc[4],
                d[0],
                [train_size[0] / 32, train_size[1] / 32],
                device,
            ),
            decoder: Decoder::new(&arch, classes, device),
            reg_decoder: with_reg_decoder.then(|| Decoder::new(&arch, classes, device)),
            info: SegNetInfo {
                classes,
                config: config.clone(),
                train_size,
                with_reg_decoder,
            },
        };
        Ok(if config.he_init { net.he_init() } else { net })
    }

    /// ESANet's `--he_init` on every layer outside the encoders (see
    /// [`SegModelConfig::he_init`]).
    fn he_init(self) -> Self {
        EsaNet {
            fusions: self.fusions.into_iter().map(SeAddFusion::he_init).collect(),
            skips: self.skips.into_iter().map(SkipLayer::he_init).collect(),
            context: self.context.he_init(),
            decoder: self.decoder.he_init(),
            reg_decoder: self.reg_decoder.map(Decoder::he_init),
            ..self
        }
    }

    /// What the network was built for.
    pub fn info(&self) -> &SegNetInfo {
        &self.info
    }

    /// The deployment network alone: drops the regularization decoder.
    pub fn without_reg_decoder(mut self) -> Self {
        self.reg_decoder = None;
        self.info.with_reg_decoder = false;
        self
    }

    /// Whether the regularization decoder is present.
    pub fn has_reg_decoder(&self) -> bool {
        self.reg_decoder.is_some()
    }

    /// The encoders with masked SE-add fusion, the skips and the context module. `mask` is
    /// `[B, 2]` of 0/1 (RGB, depth).
    pub fn encode(&self, rgb: Tensor<4>, depth: Tensor<4>, mask: Tensor<2>) -> FuseCache {
        let [b, _] = mask.dims();
        let m_rgb = mask.clone().slice([0..b, 0..1]).reshape([b, 1, 1, 1]);
        let m_depth = mask.slice([0..b, 1..2]).reshape([b, 1, 1, 1]);
        let fuse = |i: usize, r: Tensor<4>, d: Tensor<4>| {
            self.fusions[i].forward(r * m_rgb.clone(), d * m_depth.clone())
        };
        let r = self.encoder_rgb.stem(rgb);
        let mut d = self.encoder_depth.stem(depth);
        let mut f = max_pool(fuse(0, r, d.clone()));
        d = max_pool(d);
        let mut skips = Vec::with_capacity(3);
        for i in 1..=4 {
            let r = self.encoder_rgb.layer(i, f);
            d = self.encoder_depth.layer(i, d);
            f = fuse(i, r, d.clone());
            if i <= 3 {
                skips.push(self.skips[i - 1].forward(f.clone()));
            }
        }
        let mut skips = skips.into_iter();
        let (skip1, skip2, skip3) = (
            skips.next().expect("three skips"),
            skips.next().expect("three skips"),
            skips.next().expect("three skips"),
        );
        FuseCache {
            context: self.context.forward(f),
            skip3,
            skip2,
            skip1,
        }
    }

    /// Full forward pass; the regularization decoder runs when `with_reg` and it is present.
    pub fn forward(
        &self,
        rgb: Tensor<4>,
        depth: Tensor<4>,
        mask: Tensor<2>,
        with_reg: bool,
    ) -> SegOutput {
        let cache = self.encode(rgb, depth, mask);
        let main = self.decoder.forward(&cache);
        let reg = match (&self.reg_decoder, with_reg) {
            (Some(d), true) => Some(d.forward(&cache)),
            _ => None,
        };
        SegOutput { main, cache, reg }
    }

    /// Trainable parameters (BatchNorm running statistics excluded), the number PyTorch's
    /// `sum(p.numel() for p in model.parameters())` gives.
    pub fn num_trainable_params(&self) -> usize {
        super::trainable_params(self)
    }

    /// Trainable parameters of the regularization decoder (0 without one).
    pub fn num_reg_decoder_params(&self) -> usize {
        self.reg_decoder.as_ref().map_or(0, super::trainable_params)
    }
}
