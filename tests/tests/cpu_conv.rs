//! The CPU convolution (`kernels::cpu_conv`) against Burn's own `Conv2d`: the same output and
//! the same input, weight and bias gradients (relative error ≤ 1e-5) for the shapes the
//! networks use and the awkward ones (stride, dilation, asymmetric padding, non-square
//! kernels, a batch not divisible by the weight-gradient chunks), and results independent of
//! the number of threads.

use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::prelude::*;
use burn::tensor::Distribution;
use mmanet_core::kernels::conv2d;
use mmanet_core::kernels::cpu_conv::runs_on_flex;

/// One convolution case: input `[batch, c_in, h, w]`, `c_out`, kernel, stride, dilation,
/// padding, bias.
struct Case {
    batch: usize,
    c_in: usize,
    hw: [usize; 2],
    c_out: usize,
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    padding: PaddingConfig2d,
    bias: bool,
}

fn cases() -> Vec<Case> {
    let case = |batch, c_in, hw, c_out, kernel, stride, padding| Case {
        batch,
        c_in,
        hw,
        c_out,
        kernel,
        stride,
        dilation: [1, 1],
        padding,
        bias: false,
    };
    vec![
        // the ResNet stem (3 → 16, 3×3 / 2), a block conv, a 1×1 downsample, ESANet's 7×7 stem
        case(
            4,
            3,
            [16, 16],
            16,
            [3, 3],
            [2, 2],
            PaddingConfig2d::Explicit(1, 1, 1, 1),
        ),
        case(
            3,
            8,
            [9, 7],
            8,
            [3, 3],
            [1, 1],
            PaddingConfig2d::Explicit(1, 1, 1, 1),
        ),
        case(5, 8, [8, 8], 16, [1, 1], [2, 2], PaddingConfig2d::Valid),
        case(
            2,
            1,
            [16, 12],
            4,
            [7, 7],
            [2, 2],
            PaddingConfig2d::Explicit(3, 3, 3, 3),
        ),
        // NonBottleneck1D's 3×1 and 1×3 (with dilation), a batch of 11 (chunks of 2)
        Case {
            dilation: [2, 1],
            bias: true,
            ..case(
                11,
                6,
                [10, 6],
                6,
                [3, 1],
                [1, 1],
                PaddingConfig2d::Explicit(2, 0, 2, 0),
            )
        },
        Case {
            dilation: [1, 3],
            bias: true,
            ..case(
                2,
                6,
                [5, 12],
                5,
                [1, 3],
                [1, 1],
                PaddingConfig2d::Explicit(0, 3, 0, 3),
            )
        },
        // asymmetric padding, "same" (left to Burn's op), no padding with a remainder
        case(
            2,
            4,
            [7, 9],
            3,
            [2, 3],
            [1, 2],
            PaddingConfig2d::Explicit(1, 0, 0, 2),
        ),
        case(2, 4, [7, 9], 3, [2, 2], [1, 1], PaddingConfig2d::Same),
        case(3, 5, [11, 10], 7, [3, 3], [3, 2], PaddingConfig2d::Valid),
    ]
}

fn layer(case: &Case, device: &Device) -> Conv2d {
    Conv2dConfig::new([case.c_in, case.c_out], case.kernel)
        .with_stride(case.stride)
        .with_dilation(case.dilation)
        .with_padding(case.padding.clone())
        .with_bias(case.bias)
        .init(device)
}

/// Output, input gradient, weight gradient, bias gradient (flattened) of `forward` on `x`
/// with the upstream gradient `upstream`.
fn run(
    conv: &Conv2d,
    x: &Tensor<4>,
    upstream: &Tensor<4>,
    forward: impl Fn(&Conv2d, Tensor<4>) -> Tensor<4>,
) -> [Vec<f32>; 4] {
    let x = x.clone().require_grad();
    let y = forward(conv, x.clone());
    assert_eq!(y.dims(), upstream.dims(), "output shape");
    let grads = (y.clone() * upstream.clone()).sum().backward();
    let host = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().expect("f32");
    let bias = conv.bias.as_ref().map_or(Vec::new(), |b| {
        b.grad(&grads)
            .expect("bias gradient")
            .into_data()
            .try_to_vec::<f32>()
            .expect("f32")
    });
    [
        host(y.detach()),
        host(x.grad(&grads).expect("input gradient")),
        host(conv.weight.grad(&grads).expect("weight gradient")),
        bias,
    ]
}

/// max |a − b| / max |b|.
fn relative_error(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-30);
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

#[test]
fn cpu_convolution_matches_burns_conv2d_forward_and_gradients() {
    let device = Device::flex().autodiff();
    assert!(runs_on_flex(&device), "the autodiff CPU device is flex");
    for (i, case) in cases().iter().enumerate() {
        device.seed(i as u64);
        let conv = layer(case, &device);
        let [h, w] = case.hw;
        let x = Tensor::<4>::random(
            [case.batch, case.c_in, h, w],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let reference_y = conv.forward(x.clone());
        let upstream =
            Tensor::<4>::random(reference_y.dims(), Distribution::Normal(0.0, 1.0), &device);
        let ours = run(&conv, &x, &upstream, conv2d);
        let burn = run(&conv, &x, &upstream, |c, x| c.forward(x));
        for (what, (a, b)) in [
            "output",
            "input gradient",
            "weight gradient",
            "bias gradient",
        ]
        .iter()
        .zip(ours.iter().zip(burn.iter()))
        {
            assert!(
                !b.is_empty() || *what == "bias gradient",
                "case {i}: empty {what}"
            );
            let err = relative_error(a, b);
            assert!(err <= 1e-5, "case {i}: {what} relative error {err:e}");
        }
    }
}

#[test]
fn cpu_convolution_gives_the_same_bits_on_any_thread_count() {
    let device = Device::flex().autodiff();
    let case = &cases()[0];
    device.seed(7);
    let conv = layer(case, &device);
    let x = Tensor::<4>::random(
        [9, case.c_in, 16, 16],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let upstream = Tensor::<4>::random(
        [9, case.c_out, 8, 8],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        pool.install(|| run(&conv, &x, &upstream, conv2d))
    };
    let one = on(1);
    for threads in [2, 3] {
        assert_eq!(on(threads), one, "{threads} threads against 1");
    }
}

#[test]
fn grouped_convolutions_fall_back_to_burns_op() {
    let device = Device::flex().autodiff();
    let conv = Conv2dConfig::new([4, 4], [3, 3])
        .with_groups(4)
        .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
        .init(&device);
    let x = Tensor::<4>::random([2, 4, 6, 6], Distribution::Normal(0.0, 1.0), &device);
    let a = conv2d(&conv, x.clone())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let b = conv.forward(x).into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(a, b);
}
