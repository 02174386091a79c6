//! MAD and MAR against every `mad_*` / `mar_*` golden case (f32, relative error ≤ 1e-5), on the
//! CPU backend. The wgpu run of the same checks lives in `wgpu_parity.rs`.

use burn::prelude::*;
use mmanet_core::losses::mad::{MadReduction, mad_loss, teacher_weights};
use mmanet_core::losses::mar::{
    BankMode, CandidateRule, MemoryBank, MiningMode, candidates, mean_probabilities, weak_set_of,
};
use mmanet_core::mining::RoundMeasure;
use mmanet_core::modality::ModalitySet;
use mmanet_tests::golden_checks::check_all;

#[test]
fn every_golden_case_passes_on_cpu() {
    let n = check_all(&Device::flex());
    assert!(n >= 8, "ran {n} golden cases");
}

#[test]
fn entropy_is_safe_when_teacher_probabilities_underflow() {
    let device = Device::flex();
    // softmax of these logits underflows to exactly 0 for the small entries in f32
    let zt = Tensor::<2>::from_data(
        TensorData::new(vec![200.0f32, -200.0, 0.0, 0.0, -300.0, 300.0], [3, 2]),
        &device,
    );
    let w: Vec<f32> = teacher_weights(zt.clone())
        .into_data()
        .try_into_vec_as()
        .unwrap();
    assert!(w.iter().all(|v| v.is_finite()), "{w:?}");
    assert!(
        (w[1] - 1.0).abs() < 1e-6,
        "the only uncertain sample carries all the weight: {w:?}"
    );
    // an all-confident teacher: zero weights, zero loss, no NaN
    let sure = Tensor::<2>::from_data(
        TensorData::new(vec![500.0f32, -500.0, -500.0, 500.0], [2, 2]),
        &device,
    );
    let f = Tensor::<2>::from_data(
        TensorData::new(vec![1.0f32, 2.0, 3.0, 4.0], [2, 2]),
        &device,
    );
    let l: f32 = mad_loss(f.clone() * 2.0, f, sure, MadReduction::Official).into_scalar();
    assert_eq!(l, 0.0);
}

#[test]
fn paper_mining_uses_mean_softmax_and_plain_kl() {
    // full combination predicts evenly; candidate 1 is skewed → it is the weak one
    let n = 3;
    let cands = candidates(n, CandidateRule::Paper);
    assert_eq!(cands.len(), 6, "every non-full combination");
    let mut bank = MemoryBank::new(
        n,
        candidates(n, CandidateRule::Official),
        MiningMode::Paper,
        BankMode::Mean,
    );
    let even = mean_probabilities(&[0.5, 0.5, 0.5, 0.5], 2);
    let skew = mean_probabilities(&[0.9, 0.1, 0.7, 0.3], 2);
    let round = bank
        .add_round(
            2,
            RoundMeasure::Distributions(vec![even.clone(), skew.clone(), even.clone(), even]),
        )
        .clone();
    let want = 0.8f64 * (0.8f64 / 0.5).ln() + 0.2 * (0.2f64 / 0.5).ln();
    assert!(
        (round.discrepancy[1] - want).abs() < 1e-6 && round.discrepancy[0] == 0.0,
        "{:?}",
        round.discrepancy
    );
    assert_eq!(bank.argmax(), Some(1));
    let ri = ModalitySet::from_mask(&[true, false, true]);
    assert_eq!(bank.weak_set().unwrap(), weak_set_of(ri));
    assert_eq!(
        weak_set_of(ri),
        vec![ri, ModalitySet::single(0), ModalitySet::single(2)]
    );
}

#[test]
fn segmentation_mining_matches_golden() {
    // through the memory bank MAR trains with: RGB and Depth ranked by the squared mIoU gap
    let g = mmanet_tests::golden("seg_mining.json");
    let cands = candidates(2, CandidateRule::Official);
    assert_eq!(cands, [ModalitySet::single(0), ModalitySet::single(1)]);
    let mut bank = MemoryBank::new(2, cands, MiningMode::Official, BankMode::Sum);
    for (e, row) in g["miou_per_epoch"].as_array().unwrap().iter().enumerate() {
        let round = bank.add_round(6 + e, RoundMeasure::Miou(mmanet_tests::flat_f64(row)));
        assert_eq!(round.combinations.len(), 3);
    }
    mmanet_tests::assert_close(
        "seg bank",
        &bank.values(),
        &mmanet_tests::flat_f64(&g["bank"]),
        1e-12,
    );
    let want = mmanet_tests::flat_f64(&g["weak_combination"]);
    let want = ModalitySet::from_mask(&[want[0] == 1.0, want[1] == 1.0]);
    assert_eq!(
        bank.weak_set(),
        Some(vec![want]),
        "a single weak combination"
    );
}

/// `--mad-impl auto` and `kernel` run the host kernel on the CPU backend of a native build;
/// `ops` keeps the tensor ops. (`kernel` where there is no kernel — CUDA, the page's CPU
/// fallback — is a config error naming `mmanet.mad_impl`.)
#[test]
fn mad_impl_on_the_cpu_backend() {
    use mmanet_core::losses::mad::MadImpl;
    let cpu = Device::flex();
    assert!(MadImpl::Kernel.use_kernels(&cpu).unwrap());
    assert!(MadImpl::Auto.use_kernels(&cpu).unwrap());
    assert!(!MadImpl::Ops.use_kernels(&cpu).unwrap());
}
