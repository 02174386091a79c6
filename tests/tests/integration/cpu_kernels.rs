//! The CPU kernels against Burn's own modules. The convolution (`kernels::cpu_conv`) against
//! `Conv2d`: the same output and the same input, weight and bias gradients (relative error
//! ≤ 1e-5) for the shapes the networks use and the awkward ones (stride, dilation, asymmetric
//! padding, non-square kernels, groups, a batch not divisible by the weight-gradient chunks).
//! The batch norm (`kernels::cpu_norm`) against `BatchNorm`: output, gradients and running
//! statistics in training mode, output in inference mode. All three (and the MAD kernel,
//! `kernels::cpu_mad`, checked against tensor ops in `mad_kernels.rs`) give results
//! independent of the number of threads.

use burn::module::RunningState;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::Distribution;
use mmanet_core::kernels::cpu_conv::runs_on_flex;
use mmanet_core::kernels::{batch_norm, conv2d};

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
    groups: usize,
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
        groups: 1,
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
        // 3×3 "same" on planes of 7×7 and up: the direct AVX2 tile on CPUs that have it, with
        // output channels that do not fill its blocks of four, and a plane of exactly 7×7
        case(
            2,
            5,
            [10, 13],
            7,
            [3, 3],
            [1, 1],
            PaddingConfig2d::Explicit(1, 1, 1, 1),
        ),
        case(
            3,
            24,
            [7, 7],
            9,
            [3, 3],
            [1, 1],
            PaddingConfig2d::Explicit(1, 1, 1, 1),
        ),
        // 3×3 with stride 2 on odd sizes (an 8 × 7 output): the direct tile over the padded
        // input's four phases (the stem above is the even case)
        case(
            2,
            5,
            [15, 13],
            6,
            [3, 3],
            [2, 2],
            PaddingConfig2d::Explicit(1, 1, 1, 1),
        ),
        // planes smaller than the kernel (the deepest layers of a tiny image): whole kernel
        // rows and columns fall in the padding
        case(
            2,
            3,
            [1, 2],
            4,
            [3, 3],
            [1, 1],
            PaddingConfig2d::Explicit(1, 1, 1, 1),
        ),
        case(
            2,
            2,
            [2, 1],
            3,
            [5, 5],
            [1, 1],
            PaddingConfig2d::Explicit(2, 2, 2, 2),
        ),
        // pointwise (1×1, stride 1, no padding: no im2col), ungrouped and in two groups
        Case {
            bias: true,
            ..case(3, 6, [5, 7], 10, [1, 1], [1, 1], PaddingConfig2d::Valid)
        },
        Case {
            groups: 2,
            ..case(2, 6, [4, 4], 4, [1, 1], [1, 1], PaddingConfig2d::Valid)
        },
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
        // ESANet's learned upsampling (depthwise 3×3 with bias), two groups of 3 → 2 with stride
        Case {
            groups: 6,
            bias: true,
            ..case(
                3,
                6,
                [8, 10],
                6,
                [3, 3],
                [1, 1],
                PaddingConfig2d::Explicit(1, 1, 1, 1),
            )
        },
        Case {
            groups: 2,
            ..case(
                2,
                6,
                [9, 9],
                4,
                [3, 3],
                [2, 2],
                PaddingConfig2d::Explicit(1, 1, 1, 1),
            )
        },
    ]
}

fn layer(case: &Case, device: &Device) -> Conv2d {
    Conv2dConfig::new([case.c_in, case.c_out], case.kernel)
        .with_stride(case.stride)
        .with_dilation(case.dilation)
        .with_padding(case.padding.clone())
        .with_bias(case.bias)
        .with_groups(case.groups)
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
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
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
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
    let device = Device::flex().autodiff();
    // the ResNet stem (im2col + GEMM), a block conv (the direct 3×3 tile on 16×16 planes) and
    // the learned upsampling (depthwise, direct)
    let all = cases();
    for case in [&all[0], &all[1], &all[all.len() - 2]] {
        device.seed(7);
        let conv = layer(case, &device);
        let x = Tensor::<4>::random(
            [9, case.c_in, 16, 16],
            Distribution::Normal(0.0, 1.0),
            &device,
        );
        let out = conv.forward(x.clone()).dims();
        let upstream = Tensor::<4>::random(out, Distribution::Normal(0.0, 1.0), &device);
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
}

fn bn_layer(channels: usize, device: &Device) -> BatchNorm {
    let bn = BatchNormConfig::new(channels)
        .with_momentum(0.3)
        .init(device);
    // a scale and shift other than 1 and 0, so their gradients and roles are checked
    let gamma = Tensor::<1>::random([channels], Distribution::Uniform(0.5, 1.5), device);
    let beta = Tensor::<1>::random([channels], Distribution::Normal(0.0, 1.0), device);
    BatchNorm {
        gamma: burn::module::Param::from_tensor(gamma),
        beta: burn::module::Param::from_tensor(beta),
        ..bn
    }
}

/// Output, input gradient, gamma gradient, beta gradient, running mean and variance after one
/// training-mode call of `forward` on `x`.
fn run_bn<const D: usize>(
    bn: &BatchNorm,
    x: &Tensor<D>,
    upstream: &Tensor<D>,
    forward: impl Fn(&BatchNorm, Tensor<D>) -> Tensor<D>,
) -> [Vec<f32>; 6] {
    // fresh running statistics (clones of a `BatchNorm` share them)
    let [c] = bn.gamma.val().dims();
    let device = x.device();
    let bn = BatchNorm {
        running_mean: RunningState::new(Tensor::zeros([c], &device)),
        running_var: RunningState::new(Tensor::ones([c], &device)),
        ..bn.clone()
    };
    let x = x.clone().require_grad();
    let y = forward(&bn, x.clone());
    let grads = (y.clone() * upstream.clone()).sum().backward();
    let host_d = |t: Tensor<D>| t.into_data().try_to_vec::<f32>().expect("f32");
    let host1 = |t: Tensor<1>| t.into_data().try_to_vec::<f32>().expect("f32");
    [
        host_d(y.detach()),
        host_d(x.grad(&grads).expect("input gradient")),
        host1(bn.gamma.grad(&grads).expect("gamma gradient")),
        host1(bn.beta.grad(&grads).expect("beta gradient")),
        host1(bn.running_mean.value()),
        host1(bn.running_var.value()),
    ]
}

#[test]
fn cpu_batch_norm_matches_burns_batch_norm() {
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
    let device = Device::flex().autodiff();
    // a ResNet block's shape, a plane not a multiple of the 8 lanes, one sample, a 1×1 plane
    let shapes = [[4, 8, 6, 6], [3, 5, 7, 3], [1, 4, 5, 5], [16, 3, 1, 1]];
    for (i, shape) in shapes.iter().enumerate() {
        device.seed(100 + i as u64);
        let bn = bn_layer(shape[1], &device);
        // an offset mean, so the two-pass variance matters
        let x = Tensor::<4>::random(*shape, Distribution::Normal(3.0, 2.0), &device);
        let upstream = Tensor::<4>::random(*shape, Distribution::Normal(0.0, 1.0), &device);
        let ours = run_bn(&bn, &x, &upstream, batch_norm);
        let burn = run_bn(&bn, &x, &upstream, |b, x| b.forward(x));
        let what = [
            "output",
            "input gradient",
            "gamma gradient",
            "beta gradient",
            "running mean",
            "running variance",
        ];
        for (what, (a, b)) in what.iter().zip(ours.iter().zip(burn.iter())) {
            let err = relative_error(a, b);
            assert!(
                err <= 1e-5,
                "shape {shape:?}: {what} relative error {err:e}"
            );
        }

        // inference mode (the running statistics): on the plain device, frozen on the autodiff
        // device, and frozen with a tracked input (Burn's differentiable composition)
        let trained = {
            let bn = bn.clone();
            let _ = bn.forward(x.clone());
            bn
        };
        let host = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().expect("f32");
        let plain = trained.valid();
        let frozen = trained.clone().freeze();
        let cases = [
            (
                host(batch_norm(&plain, x.clone().inner())),
                host(plain.forward(x.clone().inner())),
            ),
            (
                host(batch_norm(&frozen, x.clone())),
                host(frozen.forward(x.clone())),
            ),
        ];
        for (a, b) in &cases {
            let err = relative_error(a, b);
            assert!(
                err <= 1e-5,
                "shape {shape:?}: inference relative error {err:e}"
            );
        }
        let tracked_grad = |f: &dyn Fn(Tensor<4>) -> Tensor<4>| {
            let x = x.clone().require_grad();
            let grads = (f(x.clone()) * upstream.clone()).sum().backward();
            host(x.grad(&grads).expect("input gradient"))
        };
        let a = tracked_grad(&|x| batch_norm(&frozen, x));
        let b = tracked_grad(&|x| frozen.forward(x));
        let err = relative_error(&a, &b);
        assert!(
            err <= 1e-5,
            "shape {shape:?}: frozen input gradient relative error {err:e}"
        );
    }
}

/// The MLPs' batch norm over `[N, C]` matrices (the row-wise passes), training and inference,
/// on one and several row tasks.
#[test]
fn cpu_batch_norm_of_a_matrix_matches_burns_batch_norm() {
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
    let device = Device::flex().autodiff();
    // an MLP batch, a width not a multiple of 8, one sample, and 2 row tasks (65,536 values
    // a task) with a short last one
    let shapes = [[64, 128], [10, 13], [1, 6], [700, 100]];
    for (i, shape) in shapes.iter().enumerate() {
        device.seed(300 + i as u64);
        let bn = bn_layer(shape[1], &device);
        let x = Tensor::<2>::random(*shape, Distribution::Normal(3.0, 2.0), &device);
        let upstream = Tensor::<2>::random(*shape, Distribution::Normal(0.0, 1.0), &device);
        let ours = run_bn(&bn, &x, &upstream, batch_norm);
        let burn = run_bn(&bn, &x, &upstream, |b, x| b.forward(x));
        for (k, (a, b)) in ours.iter().zip(burn.iter()).enumerate() {
            let err = relative_error(a, b);
            assert!(
                err <= 1e-5,
                "shape {shape:?}: value set {k} relative error {err:e}"
            );
        }
        let trained = {
            let bn = bn.clone();
            let _ = bn.forward(x.clone());
            bn
        };
        let plain = trained.valid();
        let host = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().expect("f32");
        let err = relative_error(
            &host(batch_norm(&plain, x.clone().inner())),
            &host(plain.forward(x.clone().inner())),
        );
        assert!(
            err <= 1e-5,
            "shape {shape:?}: inference relative error {err:e}"
        );
    }
    // the same bits on any thread count
    device.seed(12);
    let bn = bn_layer(100, &device);
    let x = Tensor::<2>::random([700, 100], Distribution::Normal(1.0, 2.0), &device);
    let upstream = Tensor::<2>::random([700, 100], Distribution::Normal(0.0, 1.0), &device);
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        pool.install(|| run_bn(&bn, &x, &upstream, batch_norm))
    };
    let one = on(1);
    assert_eq!(on(3), one, "3 threads against 1");
}

#[test]
fn cpu_batch_norm_gives_the_same_bits_on_any_thread_count() {
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
    let device = Device::flex().autodiff();
    device.seed(11);
    let bn = bn_layer(5, &device);
    let x = Tensor::<4>::random([7, 5, 9, 11], Distribution::Normal(1.0, 2.0), &device);
    let upstream = Tensor::<4>::random([7, 5, 9, 11], Distribution::Normal(0.0, 1.0), &device);
    let on = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .expect("a thread pool");
        pool.install(|| run_bn(&bn, &x, &upstream, batch_norm))
    };
    let one = on(1);
    for threads in [2, 3] {
        assert_eq!(on(threads), one, "{threads} threads against 1");
    }
}

#[test]
fn cpu_mad_gives_the_same_bits_on_any_thread_count() {
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
    use mmanet_core::losses::mad::{MadImpl, MadReduction, dense_mad_loss_with, mad_loss_with};
    let device = Device::flex().autodiff();
    device.seed(5);
    // 70 rows: blocks of 16 with a short last one; the dense layout splits the columns at 35
    let student = Tensor::<2>::random([70, 24], Distribution::Normal(0.0, 1.0), &device);
    let teacher = Tensor::<2>::random([70, 24], Distribution::Normal(0.0, 1.0), &device);
    let logits = Tensor::<2>::random([70, 4], Distribution::Normal(0.0, 2.0), &device);
    let run = |dense: bool| {
        let s = student.clone().require_grad();
        let loss = if dense {
            dense_mad_loss_with(s.clone(), teacher.clone(), logits.clone(), MadImpl::Kernel)
        } else {
            mad_loss_with(
                s.clone(),
                teacher.clone(),
                logits.clone(),
                MadReduction::Official,
                MadImpl::Kernel,
            )
        }
        .expect("the CPU kernel");
        let grads = loss.clone().backward();
        let host = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().expect("f32");
        let loss = loss.into_data().try_to_vec::<f32>().expect("f32");
        (loss, host(s.grad(&grads).expect("student gradient")))
    };
    for dense in [false, true] {
        let on = |threads: usize| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("a thread pool");
            pool.install(|| run(dense))
        };
        let one = on(1);
        for threads in [2, 3] {
            assert_eq!(
                on(threads),
                one,
                "dense {dense}: {threads} threads against 1"
            );
        }
    }
}

/// Output and input gradient of `forward` on `x` with the upstream gradient `upstream`.
fn run_pool(
    x: &Tensor<4>,
    upstream: &Tensor<4>,
    forward: impl Fn(Tensor<4>) -> Tensor<4>,
) -> [Vec<f32>; 2] {
    let x = x.clone().require_grad();
    let y = forward(x.clone());
    assert_eq!(y.dims(), upstream.dims(), "output shape");
    let grads = (y.clone() * upstream.clone()).sum().backward();
    let host = |t: Tensor<4>| t.into_data().try_to_vec::<f32>().expect("f32");
    [
        host(y.detach()),
        host(x.grad(&grads).expect("input gradient")),
    ]
}

#[test]
fn cpu_max_pool_gives_burns_bits_forward_and_backward() {
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
    use burn::nn::pool::MaxPool2dConfig;
    use mmanet_core::kernels::max_pool2d;
    let device = Device::flex().autodiff();
    // (input [B, C, H, W], kernel, stride, padding)
    let cases = [
        ([2, 3, 12, 10], [3, 3], [2, 2], [1, 1]), // the ResNet stem's pool, even sizes
        ([2, 2, 9, 7], [3, 3], [2, 2], [1, 1]),   // odd sizes
        ([3, 2, 8, 8], [2, 2], [2, 2], [0, 0]),   // no padding
        ([1, 4, 6, 9], [3, 2], [1, 2], [1, 0]),   // stride 1 one way, overlapping windows
        ([2, 1, 5, 5], [5, 5], [1, 1], [2, 2]),   // windows larger than the stride
        ([1, 3, 7, 41], [3, 3], [2, 2], [1, 1]),  // long rows: most outputs interior
        ([1, 2, 6, 23], [3, 3], [1, 1], [1, 1]),  // stride 1, long rows
        ([1, 2, 7, 29], [3, 3], [3, 3], [1, 1]),  // stride 3: the strided-load path
    ];
    for (i, (dims, kernel, stride, [py, px])) in cases.into_iter().enumerate() {
        device.seed(i as u64);
        let pool = MaxPool2dConfig::new(kernel)
            .with_strides(stride)
            .with_padding(PaddingConfig2d::Explicit(py, px, py, px))
            .init();
        // ties, as after a ReLU (many zeros and repeated values), and a NaN
        let x = Tensor::<4>::random(dims, Distribution::Normal(0.0, 1.0), &device)
            .clamp(-0.5, 0.5)
            .mul_scalar(4.0)
            .round()
            .clamp_min(0.0);
        let mut values = x.into_data().try_to_vec::<f32>().expect("f32");
        values[5] = f32::NAN;
        let x = Tensor::<4>::from_data(TensorData::new(values, dims), &device);
        let out = pool.forward(x.clone()).dims();
        let upstream = Tensor::<4>::random(out, Distribution::Normal(0.0, 1.0), &device);
        let ours = run_pool(&x, &upstream, |x| max_pool2d(&pool, x));
        let burn = run_pool(&x, &upstream, |x| pool.forward(x));
        for (what, (a, b)) in ["output", "input gradient"]
            .iter()
            .zip(ours.iter().zip(burn.iter()))
        {
            let same =
                a.len() == b.len() && a.iter().zip(b).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same, "case {i}: the {what} differs from Burn's");
        }
    }
}
