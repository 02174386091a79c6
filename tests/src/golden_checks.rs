//! MAD and MAR checks against the golden vectors, on any device (used by the CPU test and the
//! wgpu test).

use crate::{assert_close, assert_close_matrix, flat_f64, golden, golden_files};
use burn::prelude::*;
use mmanet_core::losses::ce::cross_entropy_per_sample;
use mmanet_core::losses::mad::MadImpl;
use mmanet_core::losses::mad::{
    MadReduction, dense_block_row_sums, dense_mad_loss, gram, mad_parts, softmax_entropy,
    teacher_weights,
};
use mmanet_core::losses::mar::{
    BankMode, CandidateRule, MarLossMode, MemoryBank, MiningMode, candidates, label_histogram,
    mar_terms,
};
use mmanet_core::metrics::argmax_rows;
use mmanet_core::mining::RoundMeasure;
use mmanet_core::modality::ModalitySet;
use mmanet_core::model::esanet::FuseCache;
use mmanet_core::task::segmentation::{dense_mad_levels, pixel_rows};
use serde_json::Value;

/// f32 tolerance of the project's standard.
pub const REL: f64 = 1e-5;

fn shape(v: &Value) -> Vec<usize> {
    let mut s = Vec::new();
    let mut x = v;
    while let Value::Array(items) = x {
        s.push(items.len());
        match items.first() {
            Some(first) => x = first,
            None => break,
        }
    }
    s
}

/// A `[B, rest]` f32 tensor from a nested JSON array (flattened per sample).
pub fn rows(v: &Value, device: &Device) -> Tensor<2> {
    let s = shape(v);
    let b = s[0];
    let values: Vec<f32> = flat_f64(v).into_iter().map(|x| x as f32).collect();
    let d = values.len() / b;
    Tensor::from_data(TensorData::new(values, [b, d]), device)
}

/// A tensor's values read back as f64.
pub fn host<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .try_into_vec_as::<f32>()
        .unwrap()
        .into_iter()
        .map(f64::from)
        .collect()
}

fn scalar(v: &Value) -> f64 {
    v.as_f64().expect("number")
}

fn sets(v: &Value) -> Vec<ModalitySet> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| ModalitySet::from_mask(&flat_f64(m).iter().map(|x| *x == 1.0).collect::<Vec<_>>()))
        .collect()
}

/// Checks one classification MAD case (`mad_cls_*`): every intermediate, both reductions, SP.
pub fn check_mad_cls(name: &str, device: &Device) {
    let g = golden(name);
    let (i, o) = (&g["inputs"], &g["outputs"]);
    let fs = rows(&i["fm_s"], device);
    let ft = rows(&i["fm_t"], device);
    let zt = rows(&i["logit_t"], device);
    let ctx = |k: &str| format!("{name}: {k}");
    assert_close_matrix(
        &ctx("gram_s"),
        &host(gram(fs.clone())),
        &flat_f64(&o["gram_s"]),
        REL,
    );
    assert_close_matrix(
        &ctx("gram_t"),
        &host(gram(ft.clone())),
        &flat_f64(&o["gram_t"]),
        REL,
    );
    let p = mad_parts(fs.clone(), ft.clone(), zt.clone(), MadReduction::Official);
    assert_close_matrix(&ctx("rel_s"), &host(p.rel_s), &flat_f64(&o["rel_s"]), REL);
    assert_close_matrix(&ctx("rel_t"), &host(p.rel_t), &flat_f64(&o["rel_t"]), REL);
    assert_close_matrix(
        &ctx("disc"),
        &host(p.disc.clone()),
        &flat_f64(&o["disc"]),
        REL,
    );
    assert_close(
        &ctx("row_sum"),
        &host(p.disc.clone().sum_dim(1)),
        &flat_f64(&o["row_sum"]),
        REL,
    );
    assert_close(
        &ctx("col_sum"),
        &host(p.disc.sum_dim(0)),
        &flat_f64(&o["col_sum"]),
        REL,
    );
    assert_close(
        &ctx("entropy_t"),
        &host(p.entropy),
        &flat_f64(&o["entropy_t"]),
        REL,
    );
    assert_close(
        &ctx("weight"),
        &host(p.weights),
        &flat_f64(&o["weight"]),
        REL,
    );
    assert_close(
        &ctx("loss_official"),
        &host(p.loss),
        &[scalar(&o["loss_official"])],
        REL,
    );
    let paper = mad_parts(fs.clone(), ft.clone(), zt.clone(), MadReduction::Paper).loss;
    assert_close(
        &ctx("loss_paper_row_weighted"),
        &host(paper),
        &[scalar(&o["loss_paper_row_weighted"])],
        REL,
    );
    let sp = mad_parts(fs, ft, zt, MadReduction::Sp).loss;
    assert_close(
        &ctx("sp_loss_mean"),
        &host(sp),
        &[scalar(&o["sp_loss_mean"])],
        REL,
    );
}

/// Checks one segmentation MAD case (`mad_seg_*`).
pub fn check_mad_seg(name: &str, device: &Device) {
    let g = golden(name);
    let (i, o) = (&g["inputs"], &g["outputs"]);
    let xs = rows(&i["x_s_rows"], device);
    let xt = rows(&i["x_t_rows"], device);
    let zt = rows(&i["logit_t_rows"], device);
    let ctx = |k: &str| format!("{name}: {k}");
    let blocks = dense_block_row_sums(xs.clone(), xt.clone());
    assert_close_matrix(
        &ctx("block_row_sums"),
        &host(blocks.clone()),
        &flat_f64(&o["block_row_sums"]),
        REL,
    );
    assert_close(
        &ctx("row_sum"),
        &host(blocks.sum_dim(0)),
        &flat_f64(&o["row_sum"]),
        REL,
    );
    assert_close(
        &ctx("entropy_t"),
        &host(softmax_entropy(zt.clone())),
        &flat_f64(&o["entropy_t"]),
        REL,
    );
    assert_close(
        &ctx("weight"),
        &host(teacher_weights(zt.clone())),
        &flat_f64(&o["weight"]),
        REL,
    );
    assert_close(
        &ctx("loss_official"),
        &host(dense_mad_loss(xs.clone(), xt, zt)),
        &[scalar(&o["loss_official"])],
        REL,
    );
    // The training code path: `[B, C, H, W]` maps become pixel rows in (b, h, w) order, and
    // `dense_mad_levels` sums the loss over three fused levels (here the same maps three
    // times), with the implementation `auto` picks on this device (the kernels on wgpu).
    let fs = map(&i["fm_s_map"], device);
    let ft = map(&i["fm_t_map"], device);
    let pt = map(&i["pred_t_map"], device);
    assert_close(
        &ctx("pixel rows"),
        &host(pixel_rows(fs.clone())),
        &host(xs),
        0.0,
    );
    let cache = |m: &Tensor<4>| FuseCache {
        context: m.clone(),
        skip3: m.clone(),
        skip2: m.clone(),
        skip1: m.clone(),
    };
    assert_close(
        &ctx("dense_mad_levels (3 levels)"),
        &host(dense_mad_levels(
            &cache(&fs),
            &cache(&ft),
            pt,
            MadImpl::Auto,
        )),
        &[3.0 * scalar(&o["loss_official"])],
        REL,
    );
}

/// A `[B, C, H, W]` golden map.
fn map(v: &Value, device: &Device) -> Tensor<4> {
    let s = shape(v);
    let values: Vec<f32> = flat_f64(v).into_iter().map(|x| x as f32).collect();
    Tensor::from_data(TensorData::new(values, [s[0], s[1], s[2], s[3]]), device)
}

/// Checks one MAR case (`mar_cls_*`): mining rounds, bank, weak set, masks, both MAR losses,
/// MAD and the total losses.
pub fn check_mar_cls(name: &str, device: &Device) {
    let g = golden(name);
    let (i, o) = (&g["inputs"], &g["outputs"]);
    let classes = g["n_classes"].as_u64().unwrap() as usize;
    let ctx = |k: &str| format!("{name}: {k}");
    let combos = sets(&g["mining_combos"]);
    let n = 3;
    assert_eq!(
        &combos[..3],
        &candidates(n, CandidateRule::Official)[..],
        "official candidates = the pairs"
    );
    assert_eq!(combos[3], ModalitySet::full(n));
    let mut bank = MemoryBank::new(n, combos[..3].to_vec(), MiningMode::Official, BankMode::Sum);
    let val = i["val_logits"].as_array().unwrap();
    let rounds = o["mining"]["rounds"].as_array().unwrap();
    for (r, (round_logits, want)) in val.iter().zip(rounds).enumerate() {
        let mut dists = Vec::new();
        let mut preds_all = Vec::new();
        for combo_logits in round_logits.as_array().unwrap() {
            let logits: Vec<f32> = flat_f64(combo_logits)
                .into_iter()
                .map(|x| x as f32)
                .collect();
            let preds = argmax_rows(&logits, classes);
            preds_all.extend(preds.iter().map(|&p| p as f64));
            dists.push(label_histogram(&preds, classes));
        }
        assert_eq!(
            preds_all,
            flat_f64(&want["pred_labels"]),
            "{name}: round {r} labels"
        );
        let flat: Vec<f64> = dists.iter().flatten().copied().collect();
        assert_close(
            &ctx(&format!("round {r} distributions")),
            &flat,
            &flat_f64(&want["distributions"]),
            REL,
        );
        let round = bank
            .add_round(2 + r, RoundMeasure::Distributions(dists))
            .clone();
        assert_close(
            &ctx(&format!("round {r} kl_official")),
            &round.discrepancy,
            &flat_f64(&want["kl_official"]),
            REL,
        );
        assert_close(
            &ctx(&format!("round {r} bank")),
            &round.bank,
            &flat_f64(&want["bank_after_round"]),
            REL,
        );
    }
    assert_close(
        &ctx("bank"),
        &bank.values(),
        &flat_f64(&o["mining"]["bank"]),
        REL,
    );
    let mut mean_bank = bank.clone();
    mean_bank.bank_mode = BankMode::Mean;
    assert_close(
        &ctx("bank_mean"),
        &mean_bank.values(),
        &flat_f64(&o["mining"]["bank_mean"]),
        REL,
    );
    assert_eq!(
        bank.argmax(),
        Some(o["mining"]["argmax_index"].as_u64().unwrap() as usize)
    );
    let weak = bank.weak_set().unwrap();
    assert_eq!(weak, sets(&o["mining"]["weak_set"]), "{name}: weak set");

    // MAR on one training batch
    let masks = sets(&i["train_p"]);
    let y: Vec<i64> = flat_f64(&i["train_y"])
        .into_iter()
        .map(|v| v as i64)
        .collect();
    let b = y.len();
    let labels = Tensor::<1, Int>::from_data(TensorData::new(y, [b]), device);
    let wm: Vec<f64> = mmanet_core::losses::mar::weak_masks(&masks, &weak)
        .into_iter()
        .map(f64::from)
        .collect();
    assert_eq!(wm, flat_f64(&o["mar"]["weak_masks"]), "{name}: weak masks");
    let ce_reg = cross_entropy_per_sample(rows(&i["train_reg_logits"], device), labels.clone());
    let ce_host = host(ce_reg.clone());
    for k in 0..3 {
        assert_close(
            &ctx("ce_reg_per_sample"),
            &ce_host,
            &flat_f64(&o["mar"]["ce_reg_per_sample"][k]),
            REL,
        );
    }
    let off = mar_terms(ce_reg.clone(), &masks, &weak, MarLossMode::Official);
    assert_close(
        &ctx("mar_terms_official"),
        &host(off.clone()),
        &flat_f64(&o["mar"]["mar_terms_official"]),
        REL,
    );
    let mar_off = off.sum();
    assert_close(
        &ctx("mar_official"),
        &host(mar_off.clone()),
        &[scalar(&o["mar"]["mar_official"])],
        REL,
    );
    let int = mar_terms(ce_reg, &masks, &weak, MarLossMode::Paper);
    assert_close(
        &ctx("mar_terms_intended"),
        &host(int.clone()),
        &flat_f64(&o["mar"]["mar_terms_intended"]),
        REL,
    );
    assert_close(
        &ctx("mar_intended"),
        &host(int.sum()),
        &[scalar(&o["mar"]["mar_intended"])],
        REL,
    );

    // MAD and the totals
    let (fs, ft, zt) = (
        rows(&i["train_fm_s"], device),
        rows(&i["train_fm_t"], device),
        rows(&i["train_logit_t"], device),
    );
    let mad_off = mad_parts(fs.clone(), ft.clone(), zt.clone(), MadReduction::Official).loss;
    let mad_pap = mad_parts(fs, ft, zt, MadReduction::Paper).loss;
    assert_close(
        &ctx("mad_official"),
        &host(mad_off.clone()),
        &[scalar(&o["mad_official"])],
        REL,
    );
    assert_close(
        &ctx("mad_paper_row_weighted"),
        &host(mad_pap.clone()),
        &[scalar(&o["mad_paper_row_weighted"])],
        REL,
    );
    let ce_main = cross_entropy_per_sample(rows(&i["train_main_logits"], device), labels).mean();
    assert_close(
        &ctx("ce_main"),
        &host(ce_main.clone()),
        &[scalar(&o["ce_main"])],
        REL,
    );
    assert_close(
        &ctx("warmup_loss"),
        &host(ce_main.clone()),
        &[scalar(&o["warmup_loss"])],
        REL,
    );
    let (alpha, beta) = (scalar(&g["alpha_mad"]), scalar(&g["beta_mar"]));
    let total = ce_main.clone() + mar_off * beta + mad_off * alpha;
    assert_close(
        &ctx("total_official"),
        &host(total),
        &[scalar(&o["total_official"])],
        REL,
    );
    let mar_int = scalar(&o["mar"]["mar_intended"]);
    let total_int = host(ce_main + mad_pap * alpha)[0] + beta * mar_int;
    assert_close(
        &ctx("total_intended"),
        &[total_int],
        &[scalar(&o["total_intended"])],
        REL,
    );
}

/// Runs every `mad_*` and `mar_*` golden case on `device`; returns how many ran.
pub fn check_all(device: &Device) -> usize {
    let mut n = 0;
    for f in golden_files("mad_cls") {
        check_mad_cls(&f, device);
        n += 1;
    }
    for f in golden_files("mad_seg") {
        check_mad_seg(&f, device);
        n += 1;
    }
    for f in golden_files("mar_cls") {
        check_mar_cls(&f, device);
        n += 1;
    }
    n
}
