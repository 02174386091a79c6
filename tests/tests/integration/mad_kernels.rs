//! The MAD kernels against the tensor-op reference — the WGSL kernels on the wgpu backend (a
//! software Vulkan adapter in CI) and the host kernel on the CPU backend: forward values and
//! student gradients on random inputs of several shapes (with zeros and all-zero rows), and
//! every `mad_*` golden case.
//!
//! The tensor-op reference is evaluated once per case, on the CPU backend, and both kernels are
//! checked against it: on the software adapter every new shape costs Burn's matmul an autotune
//! and each of its kernels a shader compile, so evaluating the reference there too would double
//! that cost without adding a check (the same ops on wgpu are checked against the golden vectors
//! in `wgpu_parity.rs`).

use burn::prelude::*;
use mmanet_core::losses::mad::{MadImpl, MadReduction, dense_mad_loss_with, mad_loss_with};
use mmanet_tests::golden_checks::host;
use mmanet_tests::{MadCase, assert_close};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const REL: f64 = 1e-5;

/// The wgpu device, with the kernels' outputs poisoned (NaN before they run).
fn wgpu() -> Device {
    mmanet_core::kernels::poison_outputs(true);
    mmanet_tests::wgpu_device()
}

/// The devices with MAD kernels: the CPU, then wgpu.
fn devices() -> [Device; 2] {
    [Device::flex(), wgpu()]
}

/// Random features with some exact zeros and, when `zero_row`, an all-zero first row.
fn features(rng: &mut StdRng, b: usize, d: usize, zero_row: bool) -> Vec<f32> {
    let mut v: Vec<f32> = (0..b * d)
        .map(|_| {
            if rng.random_bool(0.1) {
                0.0
            } else {
                rng.random_range(-1.0f32..1.0)
            }
        })
        .collect();
    if zero_row {
        v[..d].fill(0.0);
    }
    v
}

/// The kernels on every device of [`devices`] against the tensor-op reference (on the CPU).
fn compare(case: &MadCase, devices: &[Device], reduction: Option<MadReduction>) {
    let case_name = format!("B={} D={} C={} {:?}", case.b, case.d, case.c, reduction);
    let (lo, go) = case.loss_and_grad(&Device::flex(), MadImpl::Ops, reduction);
    assert!(
        go.iter().all(|x| x.is_finite()),
        "{case_name}: op gradient not finite"
    );
    for device in devices {
        let what = format!("{case_name} on {device:?}");
        let (lk, gk) = case.loss_and_grad(device, MadImpl::Kernel, reduction);
        assert!(
            gk.iter().all(|x| x.is_finite()),
            "{what}: kernel gradient not finite"
        );
        assert_close(&format!("{what}: loss"), &[lk], &[lo], REL);
        assert_gradients_close(&what, &gk, &go, lo, &case.s);
    }
}

/// Student gradients agree to `REL` in the relative norm error, against the larger of the
/// reference's norm and the problem's natural gradient scale `|L|·√(B·D)/‖S‖` (MAD is invariant
/// to scaling S, so its gradient scales as L/‖S‖). The floor matters only where the exact
/// gradient is 0 and the reference holds f32 rounding noise (e.g. a normalisation block of one
/// column, whose relation is ±1 whatever S is); elementwise, every entry must agree within
/// `REL` of the same scale's per-entry share.
fn assert_gradients_close(what: &str, got: &[f64], want: &[f64], loss: f64, s: &[f32]) {
    assert_eq!(got.len(), want.len(), "{what}: gradient length");
    let norm = |v: &[f64]| v.iter().map(|x| x * x).sum::<f64>().sqrt();
    let s_norm = s.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt();
    let natural = if s_norm > 0.0 {
        loss.abs() * (s.len() as f64).sqrt() / s_norm
    } else {
        0.0
    };
    let scale = norm(want).max(natural).max(1e-30);
    let diff: Vec<f64> = got.iter().zip(want).map(|(g, w)| g - w).collect();
    assert!(
        norm(&diff) <= REL * scale,
        "{what}: student gradient relative error {:.3e} > {REL:e}",
        norm(&diff) / scale
    );
    let entry_scale = want
        .iter()
        .fold(0f64, |m, w| m.max(w.abs()))
        .max(natural / (s.len() as f64).sqrt());
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (g - w).abs() <= REL * entry_scale,
            "{what}: gradient[{i}] kernel {g} vs ops {w}"
        );
    }
}

#[test]
fn kernels_match_tensor_ops() {
    let devices = devices();
    let mut rng = StdRng::seed_from_u64(7);
    // Every B with D = 16; D = 1, D = 1000 (several 256-wide passes, a ragged last one) and
    // D = 8192 (the classification feature size) on a few. The largest batch runs at D = 1000,
    // not 8192: on the software Vulkan adapter of CI that one case took most of a minute and
    // exercises no path the two neighbouring cases do not.
    let shapes = [
        (1, 16, 2),
        (2, 16, 10),
        (7, 16, 2),
        (64, 16, 10),
        (130, 16, 2),
        (2, 1, 10),
        (130, 1, 10),
        (7, 8192, 2),
        (64, 1000, 10),
    ];
    for &(b, d, c) in &shapes {
        let case = MadCase {
            s: features(&mut rng, b, d, b > 2),
            t: features(&mut rng, b, d, false),
            z: (0..b * c).map(|_| rng.random_range(-4.0f32..4.0)).collect(),
            b,
            d,
            c,
        };
        for r in [
            MadReduction::Official,
            MadReduction::Paper,
            MadReduction::Sp,
        ] {
            compare(&case, &devices, Some(r));
        }
        compare(&case, &devices, None);
    }
}

/// Every `mad_*` golden case through the kernels: the entropy weights, the three
/// classification reductions and the dense (segmentation) loss.
#[test]
fn kernels_match_golden_vectors() {
    for device in devices() {
        kernels_match_golden_vectors_on(&device);
    }
}

fn kernels_match_golden_vectors_on(device: &Device) {
    use mmanet_core::kernels::{entropy_weights, runs_wgsl};
    use mmanet_tests::golden_checks::rows;
    use mmanet_tests::{flat_f64, golden, golden_files};
    let wgsl = runs_wgsl(device);
    let cls = golden_files("mad_cls");
    let seg = golden_files("mad_seg");
    assert!(cls.len() >= 3 && seg.len() >= 2, "golden MAD cases present");
    for name in &cls {
        let g = golden(name);
        let (i, o) = (&g["inputs"], &g["outputs"]);
        let (fs, ft, zt) = (
            rows(&i["fm_s"], device),
            rows(&i["fm_t"], device),
            rows(&i["logit_t"], device),
        );
        // the entropy kernel is wgpu's (the CPU path weights by tensor ops, checked in
        // golden_losses.rs)
        if wgsl {
            let w = entropy_weights(zt.clone()).expect("wgpu");
            assert_close(
                &format!("{name}: weight"),
                &host(w),
                &flat_f64(&o["weight"]),
                REL,
            );
        }
        for (r, key) in [
            (MadReduction::Official, "loss_official"),
            (MadReduction::Paper, "loss_paper_row_weighted"),
            (MadReduction::Sp, "sp_loss_mean"),
        ] {
            let loss = mad_loss_with(fs.clone(), ft.clone(), zt.clone(), r, MadImpl::Kernel)
                .expect("kernel");
            let want = o[key].as_f64().expect("number");
            assert_close(&format!("{name}: {key}"), &host(loss), &[want], REL);
        }
    }
    for name in &seg {
        let g = golden(name);
        let (i, o) = (&g["inputs"], &g["outputs"]);
        let (xs, xt, zt) = (
            rows(&i["x_s_rows"], device),
            rows(&i["x_t_rows"], device),
            rows(&i["logit_t_rows"], device),
        );
        if wgsl {
            let w = entropy_weights(zt.clone()).expect("wgpu");
            assert_close(
                &format!("{name}: weight"),
                &host(w),
                &flat_f64(&o["weight"]),
                REL,
            );
        }
        let loss = dense_mad_loss_with(xs, xt, zt, MadImpl::Kernel).expect("kernel");
        let want = o["loss_official"].as_f64().expect("number");
        assert_close(&format!("{name}: loss_official"), &host(loss), &[want], REL);
    }
}

/// The kernels' backward node chains into the rest of the graph: features made by a tracked
/// linear map `S = X·W` give the same `∂L/∂W` through the kernels as through tensor ops.
#[test]
fn kernel_gradient_flows_into_the_graph() {
    let mut rng = StdRng::seed_from_u64(3);
    let (b, k, d, c) = (12, 5, 24, 3);
    let x: Vec<f32> = (0..b * k).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let w: Vec<f32> = (0..k * d).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    let t: Vec<f32> = features(&mut rng, b, d, false);
    let z: Vec<f32> = (0..b * c).map(|_| rng.random_range(-3.0f32..3.0)).collect();
    let grad_w = |device: &Device, imp: MadImpl| {
        let ad = device.clone().autodiff();
        let x = Tensor::<2>::from_data(TensorData::new(x.clone(), [b, k]), &ad);
        let w = Tensor::<2>::from_data(TensorData::new(w.clone(), [k, d]), &ad).require_grad();
        let t = Tensor::<2>::from_data(TensorData::new(t.clone(), [b, d]), &ad);
        let z = Tensor::<2>::from_data(TensorData::new(z.clone(), [b, c]), &ad);
        let s = x.matmul(w.clone()).tanh();
        let loss = mad_loss_with(s, t, z, MadReduction::Official, imp).expect("MAD");
        let grads = loss.backward();
        (
            host(loss)[0],
            host(w.grad(&grads).expect("weight gradient")),
        )
    };
    let (lo, go) = grad_w(&Device::flex(), MadImpl::Ops);
    for device in devices() {
        let (lk, gk) = grad_w(&device, MadImpl::Kernel);
        assert_close(&format!("chained loss on {device:?}"), &[lk], &[lo], REL);
        mmanet_tests::assert_close_matrix(&format!("∂L/∂W on {device:?}"), &gk, &go, REL);
    }
}
