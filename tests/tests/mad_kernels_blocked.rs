//! The MAD kernels' blocked path — the Grams computed in row blocks, as for the dense relation
//! over every pixel of a batch — against the tensor-op reference, with a block size small enough
//! that a batch of 130 rows takes 19 blocks (a separate test binary: the block size is global).
//! The reference runs on the CPU backend (see `integration/mad_kernels.rs`).

use mmanet_core::kernels::{gram_block_rows, poison_outputs, set_max_gram_block_bytes};
use mmanet_core::losses::mad::{MadImpl, MadReduction};
use mmanet_tests::{MadCase, assert_close, assert_close_matrix};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[test]
fn blocked_kernels_match_tensor_ops() {
    poison_outputs(true);
    set_max_gram_block_bytes(7 * 130 * 4);
    let device = mmanet_tests::wgpu_device();
    let (b, d, c) = (130, 24, 10);
    assert_eq!(gram_block_rows(b), 7);
    let mut rng = StdRng::seed_from_u64(11);
    let mut values =
        |len: usize| -> Vec<f32> { (0..len).map(|_| rng.random_range(-1.0f32..1.0)).collect() };
    let case = MadCase {
        s: values(b * d),
        t: values(b * d),
        z: values(b * c),
        b,
        d,
        c,
    };
    for reduction in [
        Some(MadReduction::Official),
        Some(MadReduction::Paper),
        None,
    ] {
        let (lk, gk) = case.loss_and_grad(&device, MadImpl::Kernel, reduction);
        let (lo, go) = case.loss_and_grad(&burn::prelude::Device::flex(), MadImpl::Ops, reduction);
        let what = format!("{reduction:?}");
        assert!(gk.iter().all(|x| x.is_finite()), "{what}: kernel gradient");
        assert_close(&format!("{what}: loss"), &[lk], &[lo], 1e-5);
        assert_close_matrix(&format!("{what}: gradient"), &gk, &go, 1e-5);
    }
}
