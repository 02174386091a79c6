//! The MAD kernels' blocked path — the Grams computed in row blocks, as for the dense relation
//! over every pixel of a batch — against the tensor-op reference, with a block size small enough
//! that a batch of 130 rows takes 19 blocks (a separate test binary: the block size is global).

use burn::prelude::*;
use mmanet_core::device::{DeviceChoice, select_device};
use mmanet_core::kernels::{gram_block_rows, poison_outputs, set_max_gram_block_bytes};
use mmanet_core::losses::mad::{MadImpl, MadReduction, dense_mad_loss_with, mad_loss_with};
use mmanet_tests::golden_checks::host;
use mmanet_tests::{assert_close, assert_close_matrix};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[test]
fn blocked_kernels_match_tensor_ops() {
    // SAFETY: set before the first wgpu call; the test reads no environment itself.
    unsafe { std::env::set_var("CUBECL_AUTOTUNE_LEVEL", "minimal") };
    poison_outputs(true);
    set_max_gram_block_bytes(7 * 130 * 4);
    let device = select_device(DeviceChoice::Wgpu)
        .expect(
            "a wgpu adapter is required (install Debian's mesa-vulkan-drivers for a software one)",
        )
        .device;
    let (b, d, c) = (130, 24, 10);
    assert_eq!(gram_block_rows(b), 7);
    let mut rng = StdRng::seed_from_u64(11);
    let mut values =
        |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
    let (s, t, z) = (values(b * d), values(b * d), values(b * c));
    let run = |imp: MadImpl, reduction: Option<MadReduction>| {
        let ad = device.clone().autodiff();
        let s = Tensor::<2>::from_data(TensorData::new(s.clone(), [b, d]), &ad).require_grad();
        let t = Tensor::<2>::from_data(TensorData::new(t.clone(), [b, d]), &ad);
        let z = Tensor::<2>::from_data(TensorData::new(z.clone(), [b, c]), &ad);
        let loss = match reduction {
            Some(r) => mad_loss_with(s.clone(), t, z, r, imp),
            None => dense_mad_loss_with(s.clone(), t, z, imp),
        }
        .expect("MAD");
        let grads = loss.backward();
        let g = s.grad(&grads).expect("student gradient");
        (host(loss)[0], host(g))
    };
    for reduction in [
        Some(MadReduction::Official),
        Some(MadReduction::Paper),
        None,
    ] {
        let (lk, gk) = run(MadImpl::Kernel, reduction);
        let (lo, go) = run(MadImpl::Ops, reduction);
        let what = format!("{reduction:?}");
        assert!(gk.iter().all(|x| x.is_finite()), "{what}: kernel gradient");
        assert_close(&format!("{what}: loss"), &[lk], &[lo], 1e-5);
        assert_close_matrix(&format!("{what}: gradient"), &gk, &go, 1e-5);
    }
}
