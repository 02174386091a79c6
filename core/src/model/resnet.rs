//! ResNet-18-SE building blocks (spec §1.1): BasicBlock layers, the per-modality stem encoder
//! (conv3×3/s2 → BN → ReLU → maxpool → layer1 → layer2 → SE) and the shared trunk
//! (layer3 → layer4 → GAP → linear).

use crate::kernels::{batch_norm, conv2d, max_pool2d};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{
    BatchNorm, BatchNormConfig, Initializer, Linear, LinearConfig, PaddingConfig2d, Relu,
};
use burn::prelude::*;

/// PyTorch's `kaiming_normal_(mode="fan_out", nonlinearity="relu")`, as the official code uses.
fn kaiming_fan_out() -> Initializer {
    Initializer::KaimingNormal {
        gain: 2f64.sqrt(),
        fan_out_only: true,
    }
}

fn conv(cin: usize, cout: usize, k: usize, stride: usize, device: &Device) -> Conv2d {
    let pad = k / 2;
    Conv2dConfig::new([cin, cout], [k, k])
        .with_stride([stride, stride])
        .with_padding(PaddingConfig2d::Explicit(pad, pad, pad, pad))
        .with_bias(false)
        .with_initializer(kaiming_fan_out())
        .init(device)
}

/// conv3×3(stride) → BN → ReLU → conv3×3 → BN, plus identity or 1×1 downsample, then ReLU.
#[derive(Module, Debug)]
pub struct BasicBlock {
    conv1: Conv2d,
    bn1: BatchNorm,
    conv2: Conv2d,
    bn2: BatchNorm,
    downsample: Option<(Conv2d, BatchNorm)>,
    relu: Relu,
}

impl BasicBlock {
    /// A block from `cin` to `cout` channels.
    pub fn new(cin: usize, cout: usize, stride: usize, device: &Device) -> Self {
        let downsample = (stride != 1 || cin != cout).then(|| {
            (
                conv(cin, cout, 1, stride, device),
                BatchNormConfig::new(cout).init(device),
            )
        });
        BasicBlock {
            conv1: conv(cin, cout, 3, stride, device),
            bn1: BatchNormConfig::new(cout).init(device),
            conv2: conv(cout, cout, 3, 1, device),
            bn2: BatchNormConfig::new(cout).init(device),
            downsample,
            relu: Relu::new(),
        }
    }

    /// Forward pass.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let identity = match &self.downsample {
            Some((c, bn)) => batch_norm(bn, conv2d(c, x.clone())),
            None => x.clone(),
        };
        let y = self
            .relu
            .forward(batch_norm(&self.bn1, conv2d(&self.conv1, x)));
        let y = batch_norm(&self.bn2, conv2d(&self.conv2, y));
        self.relu.forward(y + identity)
    }

    /// Number of BatchNorm running-statistic values (not trainable parameters).
    pub fn bn_buffers(&self) -> usize {
        let bn = |b: &BatchNorm| 2 * b.gamma.lazy_shape().num_elements();
        bn(&self.bn1) + bn(&self.bn2) + self.downsample.as_ref().map_or(0, |(_, b)| bn(b))
    }
}

/// Two BasicBlocks, the first with `stride`.
#[derive(Module, Debug)]
pub struct ResLayer {
    blocks: Vec<BasicBlock>,
}

impl ResLayer {
    /// A layer from `cin` to `cout` channels.
    pub fn new(cin: usize, cout: usize, stride: usize, device: &Device) -> Self {
        ResLayer {
            blocks: vec![
                BasicBlock::new(cin, cout, stride, device),
                BasicBlock::new(cout, cout, 1, device),
            ],
        }
    }

    /// Forward pass.
    pub fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        for b in &self.blocks {
            x = b.forward(x);
        }
        x
    }

    /// BatchNorm running-statistic values.
    pub fn bn_buffers(&self) -> usize {
        self.blocks.iter().map(BasicBlock::bn_buffers).sum()
    }
}

/// Squeeze-and-excitation: x ⊙ σ(W₂·ReLU(W₁·GAP(x) + b₁) + b₂).
#[derive(Module, Debug)]
pub struct SqueezeExcite {
    pool: AdaptiveAvgPool2d,
    fc1: Linear,
    fc2: Linear,
    relu: Relu,
}

impl SqueezeExcite {
    /// SE over `channels` with the given reduction (official 16).
    pub fn new(channels: usize, reduction: usize, device: &Device) -> Self {
        let hidden = (channels / reduction).max(1);
        SqueezeExcite {
            pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc1: LinearConfig::new(channels, hidden).init(device),
            fc2: LinearConfig::new(hidden, channels).init(device),
            relu: Relu::new(),
        }
    }

    /// Forward pass.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, _, _] = x.dims();
        let s: Tensor<2> = self.pool.forward(x.clone()).flatten(1, 3);
        let s = self.fc2.forward(self.relu.forward(self.fc1.forward(s)));
        let s = burn::tensor::activation::sigmoid(s).reshape([b, c, 1, 1]);
        x * s
    }
}

/// The per-modality image encoder: stem, layer1, layer2, SE. Output `widths[1] × H/8 × W/8`.
#[derive(Module, Debug)]
pub struct ConvEncoder {
    stem: Conv2d,
    stem_bn: BatchNorm,
    relu: Relu,
    pool: MaxPool2d,
    layer1: ResLayer,
    layer2: ResLayer,
    se: SqueezeExcite,
}

impl ConvEncoder {
    /// An encoder for `in_channels`-channel images; `widths` = [layer1, layer2] channels.
    pub fn new(in_channels: usize, widths: [usize; 2], device: &Device) -> Self {
        ConvEncoder {
            stem: conv(in_channels, widths[0], 3, 2, device),
            stem_bn: BatchNormConfig::new(widths[0]).init(device),
            relu: Relu::new(),
            pool: MaxPool2dConfig::new([3, 3])
                .with_strides([2, 2])
                .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                .init(),
            layer1: ResLayer::new(widths[0], widths[0], 1, device),
            layer2: ResLayer::new(widths[0], widths[1], 2, device),
            se: SqueezeExcite::new(widths[1], 16, device),
        }
    }

    /// Forward pass.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self
            .relu
            .forward(batch_norm(&self.stem_bn, conv2d(&self.stem, x)));
        let x = max_pool2d(&self.pool, x);
        self.se.forward(self.layer2.forward(self.layer1.forward(x)))
    }

    /// The shape of [`ConvEncoder::forward`]'s output for an input of shape `[B, C, H, W]`:
    /// `[B, widths[1], H/8, W/8]` (each halving rounded up).
    pub fn output_dims(&self, [b, _, h, w]: [usize; 4]) -> [usize; 4] {
        let channels = self.se.fc2.weight.lazy_shape()[1];
        let eighth = |size| conv_out(conv_out(conv_out(size, 2), 2), 2);
        [b, channels, eighth(h), eighth(w)]
    }

    /// BatchNorm running-statistic values.
    pub fn bn_buffers(&self) -> usize {
        2 * self.stem_bn.gamma.lazy_shape().num_elements()
            + self.layer1.bn_buffers()
            + self.layer2.bn_buffers()
    }
}

/// Spatial size after a 3×3 (or 1×1) convolution / pooling with padding k/2 and `stride`.
pub fn conv_out(size: usize, stride: usize) -> usize {
    (size - 1) / stride + 1
}

/// The shared convolutional trunk: layer3 → layer4 → GAP → linear.
#[derive(Module, Debug)]
pub struct ConvTrunk {
    layer3: ResLayer,
    layer4: ResLayer,
    pool: AdaptiveAvgPool2d,
    fc: Linear,
}

impl ConvTrunk {
    /// A trunk reading `cin` fused channels; `widths` = [layer3, layer4] channels.
    pub fn new(cin: usize, widths: [usize; 2], classes: usize, device: &Device) -> Self {
        ConvTrunk {
            layer3: ResLayer::new(cin, widths[0], 2, device),
            layer4: ResLayer::new(widths[0], widths[1], 2, device),
            pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            fc: LinearConfig::new(widths[1], classes).init(device),
        }
    }

    /// Returns (logits `[B, C]`, layer4 features flattened `[B, C4·H4·W4]`).
    pub fn forward(&self, x: Tensor<4>) -> (Tensor<2>, Tensor<2>) {
        let l4 = self.layer4.forward(self.layer3.forward(x));
        let pooled: Tensor<2> = self.pool.forward(l4.clone()).flatten(1, 3);
        (self.fc.forward(pooled), l4.flatten(1, 3))
    }

    /// BatchNorm running-statistic values.
    pub fn bn_buffers(&self) -> usize {
        self.layer3.bn_buffers() + self.layer4.bn_buffers()
    }
}
