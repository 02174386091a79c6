//! RGB-D segmentation: ESANet against the official network (parameter counts, output shapes),
//! the modality mask at the five fusions, the task loss, the data pipeline (scenes,
//! augmentation, class weights) and a short segmentation experiment end to end.

use burn::prelude::*;
use mmanet_core::data::rgbd::{
    ClassPixelCounts, DepthStats, IMAGENET_MEAN, IMAGENET_STD, RgbdPreprocessing, RgbdScene,
    SegAugment, SegSource, augment_scene, class_pixel_counts, median_frequency_weights, normalize,
};
use mmanet_core::data::scenes::{SCENE_CLASSES, ScenesConfig, SyntheticScenes};
use mmanet_core::experiment::{
    LoadedData, RunMode, SilentProgress, block_on, prepare_seg_data, run_experiment,
};
use mmanet_core::mining::RoundMeasure;
use mmanet_core::modality::ModalitySet;
use mmanet_core::model::esanet::{ContextKind, EsaNet, SegModelConfig, SegPreset};
use mmanet_core::report::TableMetric;
use mmanet_core::runs::load_task_stage_model;
use mmanet_core::task::Segmentation;
use mmanet_core::task::segmentation::{LabelMap, predict_scene, scene_scores};
use mmanet_core::task::segmentation::{SegTargets, multiscale_loss, weighted_cross_entropy};
use mmanet_tests::{golden, scenes_demo_config};
use rand::SeedableRng;
use rand::rngs::StdRng;

fn paper(context: ContextKind) -> SegModelConfig {
    SegModelConfig {
        preset: SegPreset::Paper,
        context,
        imagenet: None,
        he_init: false,
    }
}

#[test]
fn paper_preset_has_the_official_parameter_counts() {
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
    let probe = golden("arch_probe_seg.json");
    let device = Device::flex();
    let teacher = EsaNet::new(&paper(ContextKind::Ppm), 40, [480, 640], false, &device).unwrap();
    assert_eq!(
        teacher.num_trainable_params() as u64,
        probe["teacher"]["n_params"].as_u64().unwrap(),
        "teacher: two ResNet-50 encoders, SE-add fusion, skips, PPM, one decoder"
    );
    let student = EsaNet::new(&paper(ContextKind::Ppm), 40, [480, 640], true, &device).unwrap();
    assert_eq!(
        student.num_trainable_params() as u64,
        probe["auxi"]["n_params"].as_u64().unwrap(),
        "student: the teacher's architecture plus the regularization decoder"
    );
    assert_eq!(student.num_reg_decoder_params(), 16_335_296);
    // APPM (Cityscapes) has the same number of parameters with ResNet-50 encoders
    let appm = EsaNet::new(&paper(ContextKind::Appm), 40, [480, 640], false, &device).unwrap();
    assert_eq!(appm.num_trainable_params(), teacher.num_trainable_params());
}

#[test]
fn paper_preset_output_shapes_match_the_official_network_at_480x640() {
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
    let probe = golden("arch_probe_seg.json");
    let dims = |v: &serde_json::Value| -> Vec<Vec<usize>> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| {
                s.as_array()
                    .unwrap()
                    .iter()
                    .skip(1) // the probe ran a batch of 2, this test a batch of 1
                    .map(|d| d.as_u64().unwrap() as usize)
                    .collect()
            })
            .collect()
    };
    let device = Device::flex();
    let net = EsaNet::new(&paper(ContextKind::Ppm), 40, [480, 640], true, &device).unwrap();
    let rgb = Tensor::<4>::zeros([1, 3, 480, 640], &device);
    let depth = Tensor::<4>::zeros([1, 1, 480, 640], &device);
    let mask = Tensor::<2>::ones([1, 2], &device);
    let out = net.forward(rgb, depth, mask, false);
    let tail = |t: &Tensor<4>| t.dims()[1..].to_vec();
    let got: Vec<Vec<usize>> = [
        tail(&out.main.logits),
        tail(&out.main.side[0]),
        tail(&out.main.side[1]),
        tail(&out.main.side[2]),
        tail(&out.main.features[0]),
        tail(&out.main.features[1]),
        tail(&out.main.features[2]),
    ]
    .to_vec();
    assert_eq!(got, dims(&probe["auxi"]["decoder_tuple_shapes"]));
    let cache: Vec<Vec<usize>> = [
        tail(&out.cache.context),
        tail(&out.cache.skip3),
        tail(&out.cache.skip2),
        tail(&out.cache.skip1),
    ]
    .to_vec();
    assert_eq!(cache, dims(&probe["auxi"]["fuse_cache_shapes"]));
}

fn tiny(device: &Device, reg: bool) -> EsaNet {
    let cfg = SegModelConfig {
        preset: SegPreset::Tiny,
        context: ContextKind::Ppm,
        imagenet: None,
        he_init: false,
    };
    EsaNet::new(&cfg, 5, [32, 64], reg, device).unwrap()
}

fn random(shape: [usize; 4], seed: u64, device: &Device) -> Tensor<4> {
    use rand::Rng;
    let mut rng = StdRng::seed_from_u64(seed);
    let n = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect();
    Tensor::from_data(TensorData::new(v, shape), device)
}

fn max_diff(a: Tensor<4>, b: Tensor<4>) -> f32 {
    (a - b).abs().max().into_scalar()
}

/// Masking acts on both streams before each of the five fusions: with RGB masked the output
/// does not depend on the RGB image at all, with depth masked not on the depth map (the depth
/// encoder still runs on its own unmasked features).
#[test]
fn the_mask_removes_a_modality_at_every_fusion() {
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
    let device = Device::flex();
    let net = tiny(&device, false).valid();
    let (rgb_a, rgb_b) = (
        random([2, 3, 32, 64], 1, &device),
        random([2, 3, 32, 64], 2, &device),
    );
    let (d_a, d_b) = (
        random([2, 1, 32, 64], 3, &device),
        random([2, 1, 32, 64], 4, &device),
    );
    let mask = |r: f32, d: f32| Tensor::<2>::from_data([[r, d], [r, d]], &device);
    let run =
        |r: &Tensor<4>, d: &Tensor<4>, m| net.forward(r.clone(), d.clone(), m, false).main.logits;
    let depth_only = max_diff(
        run(&rgb_a, &d_a, mask(0., 1.)),
        run(&rgb_b, &d_a, mask(0., 1.)),
    );
    assert_eq!(depth_only, 0.0, "depth only: the RGB image has no effect");
    let rgb_only = max_diff(
        run(&rgb_a, &d_a, mask(1., 0.)),
        run(&rgb_a, &d_b, mask(1., 0.)),
    );
    assert_eq!(rgb_only, 0.0, "RGB only: the depth map has no effect");
    let both = max_diff(
        run(&rgb_a, &d_a, mask(1., 1.)),
        run(&rgb_b, &d_a, mask(1., 1.)),
    );
    assert!(both > 1e-4, "RGB-D: both matter ({both})");
    // per-sample masks: sample 0 depth-only, sample 1 RGB-D
    let mixed = Tensor::<2>::from_data([[0.0f32, 1.0], [1.0, 1.0]], &device);
    let a = run(&rgb_a, &d_a, mixed.clone());
    let b = run(&rgb_b, &d_a, mixed);
    let [_, k, h, w] = a.dims();
    let s0 = max_diff(
        a.clone().slice([0..1, 0..k, 0..h, 0..w]),
        b.clone().slice([0..1, 0..k, 0..h, 0..w]),
    );
    let s1 = max_diff(
        a.slice([1..2, 0..k, 0..h, 0..w]),
        b.slice([1..2, 0..k, 0..h, 0..w]),
    );
    assert_eq!(s0, 0.0);
    assert!(s1 > 1e-4);
}

/// The class-weighted cross-entropy of one scale, against a hand computation: two classes,
/// four pixels, one of them void.
#[test]
fn weighted_cross_entropy_matches_a_hand_computation() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    let device = Device::flex();
    // logits [1, 2, 1, 4]: pixel p has logits (a_p, b_p)
    let a = [2.0f32, 0.0, 1.0, 3.0];
    let b = [0.0f32, 1.0, 1.0, -1.0];
    let mut v = a.to_vec();
    v.extend(b);
    let logits = Tensor::<4>::from_data(TensorData::new(v, [1, 2, 1, 4]), &device);
    let labels =
        Tensor::<3, Int>::from_data(TensorData::new(vec![1i64, 2, 0, 1], [1, 1, 4]), &device);
    let weights = Tensor::<1>::from_data([0.5f32, 2.0], &device);
    let got: f32 = weighted_cross_entropy(logits, labels, weights).into_scalar();
    let ce = |x: f32, y: f32, target_first: bool| {
        let lse = (x.exp() + y.exp()).ln();
        lse - if target_first { x } else { y }
    };
    // pixel 0: class 1 (index 0, weight 0.5); pixel 1: class 2 (weight 2); pixel 2: void;
    // pixel 3: class 1 (weight 0.5)
    let num = 0.5 * ce(2.0, 0.0, true) + 2.0 * ce(0.0, 1.0, false) + 0.5 * ce(3.0, -1.0, true);
    let want = num / (0.5 + 2.0 + 0.5);
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
}

#[test]
fn the_task_loss_sums_four_scales() {
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
    let device = Device::flex();
    let net = tiny(&device, false);
    let out = net.forward(
        random([2, 3, 32, 64], 1, &device),
        random([2, 1, 32, 64], 2, &device),
        Tensor::ones([2, 2], &device),
        false,
    );
    let label = |h: usize, w: usize| {
        let v: Vec<i64> = (0..2 * h * w).map(|i| (i % 6) as i64).collect();
        Tensor::<3, Int>::from_data(TensorData::new(v, [2, h, w]), &device)
    };
    let targets = SegTargets {
        scales: [label(32, 64), label(4, 8), label(2, 4), label(1, 2)],
        weights: Tensor::from_data([1.0f32, 2.0, 0.5, 1.0, 1.5], &device),
    };
    let total: f32 = multiscale_loss(out.main.scales(), &targets).into_scalar();
    let each: f32 = out
        .main
        .scales()
        .into_iter()
        .zip(targets.scales.iter())
        .map(|(l, t)| {
            weighted_cross_entropy(l, t.clone(), targets.weights.clone()).into_scalar::<f32>()
        })
        .sum();
    assert!(
        (total - each).abs() < 1e-5 * each.abs(),
        "{total} vs {each}"
    );
    assert!(total.is_finite() && total > 0.0);
}

#[test]
fn scenes_have_depth_only_and_colour_only_classes() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    let cfg = ScenesConfig {
        scenes: 24,
        ..ScenesConfig::default()
    };
    let scenes = SyntheticScenes::generate(&cfg).unwrap();
    assert_eq!(scenes.num_classes(), SCENE_CLASSES.len());
    let all: Vec<usize> = (0..scenes.len()).collect();
    let counts = class_pixel_counts(&scenes, &all).unwrap();
    assert!(
        counts.pixels[1..].iter().all(|&c| c > 0),
        "every class appears: {:?}",
        counts.pixels
    );
    // per class: mean colour and mean depth over every scene
    let k = SCENE_CLASSES.len() + 1;
    let (mut rgb, mut depth, mut n) = (vec![[0f64; 3]; k], vec![0f64; k], vec![0f64; k]);
    for i in 0..scenes.len() {
        let s = scenes.scene(i).unwrap();
        assert_eq!(s.labels[0], 0, "the border is void");
        for p in 0..s.labels.len() {
            let l = s.labels[p] as usize;
            if s.depth[p] == 0.0 {
                continue; // a dropped reading
            }
            for (sum, v) in rgb[l].iter_mut().zip(&s.rgb[3 * p..3 * p + 3]) {
                *sum += *v as f64;
            }
            depth[l] += s.depth[p] as f64;
            n[l] += 1.0;
        }
    }
    let colour = |l: usize| rgb[l].map(|v| v / n[l]);
    let dist = |a: [f64; 3], b: [f64; 3]| (0..3).map(|c| (a[c] - b[c]).powi(2)).sum::<f64>().sqrt();
    let d = |l: usize| depth[l] / n[l];
    let (wall, floor, bx, step, poster, rug) = (1, 2, 3, 4, 5, 6);
    assert!(
        dist(colour(bx), colour(wall)) < 6.0,
        "box: the wall's colour"
    );
    assert!(d(wall) - d(bx) > 500.0, "box: nearer than the wall");
    assert!(
        dist(colour(step), colour(floor)) < 6.0,
        "step: the floor's colour"
    );
    assert!(
        dist(colour(poster), colour(wall)) > 60.0,
        "poster: its own colour"
    );
    assert!(
        (d(poster) - d(wall)).abs() < 150.0,
        "poster: on the wall plane"
    );
    assert!(
        dist(colour(rug), colour(floor)) > 60.0,
        "rug: its own colour"
    );
    let again = SyntheticScenes::generate(&cfg).unwrap();
    assert_eq!(again.scene(5).unwrap(), scenes.scene(5).unwrap(), "seeded");
}

/// Rescale, crop and flip move the three planes together: in a scene whose depth encodes the
/// label, every augmented pixel still has the depth of its label.
#[test]
fn augmentation_keeps_rgb_depth_and_labels_aligned() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    let (h, w) = (32, 48);
    let mut scene = RgbdScene {
        height: h,
        width: w,
        rgb: vec![0; 3 * h * w],
        depth: vec![0.0; h * w],
        labels: vec![0; h * w],
    };
    for y in 0..h {
        for x in 0..w {
            let l = ((y / 5 + x / 7) % 7 + 1) as u8;
            let p = y * w + x;
            scene.labels[p] = u16::from(l);
            scene.depth[p] = l as f32 * 100.0;
            scene.rgb[3 * p..3 * p + 3].copy_from_slice(&[l * 30; 3]);
        }
    }
    let aug = SegAugment {
        scale: [1.0, 1.4],
        hsv: false,
        flip: true,
    };
    let mut rng = StdRng::seed_from_u64(7);
    for _ in 0..8 {
        let out = augment_scene(scene.clone(), [32, 32], aug, &mut rng);
        assert_eq!((out.height, out.width), (32, 32));
        for p in 0..32 * 32 {
            assert_eq!(out.depth[p], out.labels[p] as f32 * 100.0, "pixel {p}");
        }
    }
    // HSV jitter changes colour only
    let jittered = augment_scene(
        scene.clone(),
        [32, 48],
        SegAugment {
            scale: [1.0, 1.0],
            hsv: true,
            flip: false,
        },
        &mut rng,
    );
    assert_eq!(jittered.labels, scene.labels);
    assert_eq!(jittered.depth, scene.depth);
}

#[test]
fn normalisation_uses_imagenet_statistics_and_keeps_missing_depth_at_zero() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    let scene = RgbdScene {
        height: 1,
        width: 2,
        rgb: vec![255, 0, 128, 0, 255, 0],
        depth: vec![0.0, 2841.95 + 1417.26],
        labels: vec![1, 0],
    };
    let s = normalize(&scene, DepthStats::NYUV2);
    let want_r0 = (1.0 - IMAGENET_MEAN[0]) / IMAGENET_STD[0];
    assert!(
        (s.rgb[0] - want_r0).abs() < 1e-6,
        "CHW layout, channel 0 pixel 0"
    );
    let want_g1 = (1.0 - IMAGENET_MEAN[1]) / IMAGENET_STD[1];
    assert!((s.rgb[2 + 1] - want_g1).abs() < 1e-6, "channel 1 pixel 1");
    assert_eq!(s.depth[0], 0.0, "a missing reading stays 0");
    assert!((s.depth[1] - 1.0).abs() < 1e-5);
}

#[test]
fn median_frequency_weights_follow_esanet() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    // void, then 3 classes; class 3 only appears in a quarter of the pixels' scenes
    let counts = ClassPixelCounts {
        pixels: vec![10, 60, 30, 5],
        scene_pixels: vec![100, 100, 100, 20],
    };
    let w = median_frequency_weights(&counts);
    // frequencies 0.6, 0.3, 0.25 → median 0.3
    let want = [0.5f32, 1.0, 1.2];
    for (g, e) in w.iter().zip(want) {
        assert!((g - e).abs() < 1e-6, "{w:?}");
    }
}

/// A tiny segmentation experiment end to end on the scene generator: teacher, SF-MD and MMANet;
/// per-combination mIoU tables; MAR mines by mIoU and picks one weak combination.
#[test]
fn short_segmentation_experiment_mines_by_miou() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    let dir = tempfile::tempdir().unwrap();
    let cfg = scenes_demo_config(
        dir.path(),
        &[
            "data.scenes.scenes=40",
            "data.scenes.height=32",
            "data.scenes.width=64",
            "seg_model.preset=\"tiny\"",
            "teacher.epochs=3",
            "student.epochs=4",
            "teacher.select_after_epoch=0",
            "student.select_after_epoch=0",
            "mmanet.warmup_epochs=2",
            "mmanet.mining_epochs=[0, 1]",
        ],
    );
    let data = prepare_seg_data(&cfg).unwrap();
    assert_eq!(data.source.class_weights.len(), SCENE_CLASSES.len());
    let out = run_experiment(
        &cfg,
        &data,
        &Device::flex(),
        false,
        RunMode::Train,
        &mut SilentProgress,
    )
    .unwrap();
    let methods: Vec<&str> = out.reports.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["Teacher", "SF-MD", "MMANet"]);
    for r in &out.reports {
        assert_eq!(r.modalities, ["rgb", "depth"]);
        assert_eq!(r.rows.len(), 3, "RGB, Depth, RGB-D");
        for row in &r.rows {
            let seg = row.seg.as_ref().expect("segmentation scores");
            assert_eq!(seg.class_iou.len(), SCENE_CLASSES.len());
            assert!((0.0..=1.0).contains(&seg.miou));
            assert!(seg.pixels > 0);
        }
    }
    assert_eq!(out.tables[0].metric, TableMetric::Miou);
    assert!(out.run_dir.join("results-miou.md").exists());
    let mining = &out.mining[0];
    assert_eq!(mining.method, "MMANet");
    assert_eq!(mining.trace.rounds.len(), 2);
    for round in &mining.trace.rounds {
        match &round.measure {
            RoundMeasure::Miou(m) => assert_eq!(m.len(), 3, "RGB, Depth, then RGB-D"),
            other => panic!("segmentation mines by mIoU, got {other:?}"),
        }
        if let RoundMeasure::Miou(m) = &round.measure {
            for k in 0..2 {
                assert!((round.discrepancy[k] - (m[2] - m[k]).powi(2)).abs() < 1e-12);
            }
        }
    }
    let weak = mining.trace.weak_set.clone().expect("a weak combination");
    assert_eq!(weak.len(), 1, "a single weak combination");
    assert!(weak[0] == ModalitySet::single(0) || weak[0] == ModalitySet::single(1));
    assert!(out.run_dir.join("mmanet/mining.json").exists());
    // the MAR and MAD terms were on after the warm-up
    let meta: mmanet_core::experiment::StageMeta = serde_json::from_str(
        &std::fs::read_to_string(out.run_dir.join("mmanet/meta.json")).unwrap(),
    )
    .unwrap();
    let last = meta.history.last().unwrap();
    let names: Vec<&str> = last.losses.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["ce", "mad", "mar"]);
    // `mmanet eval`: the finished stages are loaded, not trained, and score the same
    let again = run_experiment(
        &cfg,
        &data,
        &Device::flex(),
        false,
        RunMode::EvalOnly,
        &mut SilentProgress,
    )
    .unwrap();
    assert_eq!(again.reports, out.reports);
    // the run folder reads back
    let record = mmanet_core::runs::RunRecord::load(&out.run_dir).unwrap();
    assert_eq!(record.reports.len(), out.reports.len());
    for (a, b) in record.reports.iter().zip(&out.reports) {
        assert_eq!(a.method, b.method);
        for (x, y) in a.rows.iter().zip(&b.rows) {
            let (x, y) = (x.seg.as_ref().unwrap(), y.seg.as_ref().unwrap());
            assert!((x.miou - y.miou).abs() < 1e-12 && x.pixels == y.pixels);
        }
    }
    let tables = record.tables().unwrap();
    assert_eq!(tables[0].metric, TableMetric::Miou);
    assert_eq!(tables[0].methods, out.tables[0].methods);

    // The explorer's path: a stage's model loaded from the run folder, one scene at a time.
    // Summed over the test scenes, its pixels agree with the evaluation's pixel accuracy for
    // every combination.
    let device = Device::flex();
    let store = mmanet_core::store::FolderStore::new(&out.run_dir);
    let net = load_task_stage_model::<Segmentation>(&cfg, &data.source, &device, &store, "mmanet")
        .unwrap();
    let source = data.source.source.as_ref();
    let prep = RgbdPreprocessing::of(source);
    let mmanet_report = &out.reports[2];
    for row in &mmanet_report.rows {
        let (mut correct, mut pixels) = (0f64, 0f64);
        for &i in &data.split.test {
            let scene = source.scene(i).unwrap();
            let map =
                block_on(predict_scene(&net, &prep, &scene, row.combination, &device)).unwrap();
            assert_eq!((map.height, map.width), (scene.height, scene.width));
            assert!(
                map.classes
                    .iter()
                    .all(|&k| (k as usize) < SCENE_CLASSES.len())
            );
            let labelled = scene.labels.iter().filter(|&&l| l > 0).count() as f64;
            let scores = scene_scores(&map, &scene.labels, SCENE_CLASSES.len());
            correct += scores.pixel_accuracy * labelled;
            pixels += labelled;
        }
        let accuracy = correct / pixels;
        assert!(
            (accuracy - row.accuracy).abs() < 1e-5,
            "{}: {accuracy} scene by scene, {} evaluated",
            row.label,
            row.accuracy
        );
    }
    // an empty combination is refused
    let scene = source.scene(data.split.test[0]).unwrap();
    let e = block_on(predict_scene(
        &net,
        &prep,
        &scene,
        ModalitySet::from_mask(&[false, false]),
        &device,
    ))
    .unwrap_err()
    .to_string();
    assert!(e.contains("at least one modality"), "{e}");
    // a network whose weights are not finite is refused, not turned into a label map
    let poisoned = burn::module::Module::map(net.clone(), &mut mmanet_tests::PoisonWeights);
    let all = ModalitySet::from_mask(&[true, true]);
    let e = block_on(predict_scene(&poisoned, &prep, &scene, all, &device))
        .unwrap_err()
        .to_string();
    assert!(e.contains("not a number"), "{e}");
    // either task's data through one loader
    let loaded = LoadedData::load(&cfg).unwrap();
    assert_eq!(loaded.task(), mmanet_core::config::TaskKind::Segmentation);
    assert_eq!(loaded.split().test, data.split.test);
    assert_eq!(loaded.modality_names(), ["rgb", "depth"]);
    assert_eq!(
        loaded.class_names(),
        SCENE_CLASSES.map(String::from).to_vec()
    );
}

#[test]
fn scene_scores_count_the_classes_present() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    // truth: classes 0 and 1 (labels 1, 2), one void pixel; class 2 never appears
    let truth: [u16; 5] = [1, 1, 2, 2, 0];
    let map = LabelMap {
        height: 1,
        width: 5,
        classes: vec![0, 1, 1, 1, 2],
    };
    let s = scene_scores(&map, &truth, 3);
    // class 0: IoU 1/2; class 1: 2/3; class 2 (predicted only on void) absent from both
    assert!((s.miou - (0.5 + 2.0 / 3.0) / 2.0).abs() < 1e-12, "{s:?}");
    assert!((s.pixel_accuracy - 0.75).abs() < 1e-12, "{s:?}");
    // nothing labelled: zero, not NaN
    let s = scene_scores(&map, &[0; 5], 3);
    assert_eq!((s.miou, s.pixel_accuracy), (0.0, 0.0));
}

/// Scenes whose ground truth is withheld (as the public Cityscapes `test` labels are): every
/// label void.
struct Unlabelled(SyntheticScenes);

impl SegSource for Unlabelled {
    fn name(&self) -> &str {
        "unlabelled"
    }
    fn num_classes(&self) -> usize {
        self.0.num_classes()
    }
    fn len(&self) -> usize {
        self.0.len()
    }
    fn scene(&self, i: usize) -> mmanet_core::Result<RgbdScene> {
        let mut s = self.0.scene(i)?;
        s.labels.fill(0);
        Ok(s)
    }
    fn depth_stats(&self) -> DepthStats {
        self.0.depth_stats()
    }
    fn train_size(&self) -> [usize; 2] {
        self.0.train_size()
    }
    fn eval_size(&self) -> [usize; 2] {
        self.0.eval_size()
    }
}

/// A split with no labelled pixel has no mIoU: evaluating on it is an error that says so, never
/// a table of 0.00.
#[test]
fn a_split_without_labelled_pixels_has_no_miou() {
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
    use mmanet_core::task::Task;
    use mmanet_core::task::segmentation::SegData;
    let scenes = SyntheticScenes::generate(&ScenesConfig {
        scenes: 4,
        height: 32,
        width: 64,
        ..ScenesConfig::default()
    })
    .unwrap();
    let device = Device::flex();
    let net = EsaNet::new(
        &SegModelConfig {
            preset: SegPreset::Tiny,
            ..SegModelConfig::default()
        },
        scenes.num_classes(),
        [32, 64],
        false,
        &device,
    )
    .unwrap();
    let full = [ModalitySet::full(2)];
    let labelled = SegData {
        source: std::sync::Arc::new(scenes.clone()),
        class_weights: vec![1.0; scenes.num_classes()],
    };
    let report = block_on(Segmentation::evaluate(
        &net,
        &labelled,
        &[0, 1],
        &full,
        2,
        &device,
        None,
        "x",
    ))
    .unwrap();
    assert!(report.rows[0].seg.as_ref().unwrap().pixels > 0);
    let void = SegData {
        source: std::sync::Arc::new(Unlabelled(scenes)),
        class_weights: labelled.class_weights.clone(),
    };
    let err = block_on(Segmentation::evaluate(
        &net,
        &void,
        &[0, 1],
        &full,
        2,
        &device,
        None,
        "x",
    ))
    .expect_err("no mIoU from void labels")
    .to_string();
    assert!(
        err.contains("no labelled pixel") && err.contains("unlabelled"),
        "{err}"
    );
}

/// ESANet's `--he_init` (the official Cityscapes script): every conv outside the encoders is
/// drawn from `kaiming_normal_(fan_out, relu)` except the class outputs and SE's conv before the
/// sigmoid, which keep PyTorch's default (uniform, std 1/√(3·fan_in)); without it the decoder
/// keeps the default. Told apart by each weight tensor's standard deviation.
#[test]
fn he_init_draws_the_layers_outside_the_encoders_as_esanet_does() {
    let _rng = mmanet_core::rng::burn_rng(); // seeds or draws: see mmanet_core::rng
    use burn::store::ModuleSnapshot;
    let device = Device::flex();
    let build = |he_init| {
        let cfg = SegModelConfig {
            preset: SegPreset::Tiny,
            he_init,
            ..SegModelConfig::default()
        };
        EsaNet::new(&cfg, 5, [32, 64], true, &device).unwrap()
    };
    // (name, shape, std) of every 4-D conv weight outside the encoders and the fixed
    // bilinear upsampling kernels, with enough values to estimate a std
    let stats = |net: &EsaNet| -> Vec<(String, Vec<usize>, f64)> {
        net.collect(None, None, true)
            .into_iter()
            .filter(|t| {
                t.name.ends_with("weight")
                    && t.shape.len() == 4
                    && !t.name.starts_with("encoder_")
                    && !t.name.contains("upsample")
                    && t.shape.iter().product::<usize>() >= 100
            })
            .map(|t| {
                let v: Vec<f32> = burn::store::bridge::to_data(&t)
                    .unwrap()
                    .try_to_vec::<f32>()
                    .unwrap();
                let n = v.len() as f64;
                let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
                let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
                (t.name.clone(), t.shape.to_vec(), var.sqrt())
            })
            .collect()
    };
    let he_std = |s: &[usize]| (2.0 / (s[0] * s[2] * s[3]) as f64).sqrt();
    let default_std = |s: &[usize]| 1.0 / (3.0 * (s[1] * s[2] * s[3]) as f64).sqrt();
    // nearer the expected std than the other, and within 25 %
    let drawn_as = |std: f64, want: f64, other: f64| {
        let (a, b) = ((std / want).ln().abs(), (std / other).ln().abs());
        a < b && a < 0.25
    };
    let (mut drawn_he, mut kept) = (0, 0);
    for (name, shape, std) in stats(&build(true)) {
        let (he, default) = (he_std(&shape), default_std(&shape));
        if name.contains("side_output") || name.contains("conv_out") || name.contains("fc2") {
            assert!(
                drawn_as(std, default, he),
                "{name} {shape:?}: std {std}, default {default}"
            );
            kept += 1;
        } else {
            assert!(
                drawn_as(std, he, default),
                "{name} {shape:?}: std {std}, He {he}"
            );
            drawn_he += 1;
        }
    }
    assert!(drawn_he >= 20 && kept >= 3, "{drawn_he} He, {kept} kept");
    for (name, shape, std) in stats(&build(false)) {
        if name.starts_with("decoder.") && !name.contains("side_output") {
            let (he, default) = (he_std(&shape), default_std(&shape));
            assert!(
                drawn_as(std, default, he),
                "{name}: std {std}, default {default}"
            );
        }
    }
}

#[test]
fn gradient_diagnostics_measure_the_terms_without_changing_the_training() {
    let _rng = mmanet_core::rng::burn_rng(); // trains: see mmanet_core::rng
    let dir = tempfile::tempdir().unwrap();
    let settings = [
        "data.scenes.scenes=40",
        "data.scenes.height=32",
        "data.scenes.width=64",
        "seg_model.preset=\"tiny\"",
        "methods=[\"mmanet\"]",
        "teacher.epochs=2",
        "student.epochs=3",
        "teacher.select_after_epoch=0",
        "student.select_after_epoch=0",
        "mmanet.warmup_epochs=1",
        "mmanet.mining_epochs=[0, 1]",
    ];
    let meta = |cfg: &mmanet_core::config::ExperimentConfig| {
        let text = std::fs::read_to_string(cfg.output_dir.join(&cfg.name).join("mmanet/meta.json"))
            .unwrap();
        serde_json::from_str::<mmanet_core::experiment::StageMeta>(&text).unwrap()
    };
    let run = |cfg: &mmanet_core::config::ExperimentConfig| {
        let data = prepare_seg_data(cfg).unwrap();
        run_experiment(
            cfg,
            &data,
            &Device::flex(),
            false,
            RunMode::Train,
            &mut SilentProgress,
        )
        .unwrap()
    };
    // the same run folder: the teacher is trained once, MMANet twice
    let plain_cfg = scenes_demo_config(dir.path(), &settings);
    let plain = run(&plain_cfg);
    let plain_meta = meta(&plain_cfg);
    let mut with = settings.to_vec();
    with.push("student.gradient_diagnostics=true");
    let diag_cfg = scenes_demo_config(dir.path(), &with);
    let diag = run(&diag_cfg);
    let diag_meta = meta(&diag_cfg);

    // the measurement leaves the training as it was: same losses, same selected model, same
    // test scores
    assert_eq!(diag.reports, plain.reports);
    assert_eq!(diag_meta.best_epoch, plain_meta.best_epoch);
    for (d, p) in diag_meta.history.iter().zip(&plain_meta.history) {
        assert_eq!(d.losses, p.losses);
        assert_eq!(d.val_accuracy, p.val_accuracy);
        assert_eq!(d.regularized_samples, p.regularized_samples);
        assert!(p.diagnostics.is_none());
    }
    let combos = [
        ModalitySet::single(0),
        ModalitySet::single(1),
        ModalitySet::from_indices([0, 1]),
    ];
    // from the second epoch on (the first batches draw the parameters' initial values)
    assert_eq!(diag_meta.history.len(), 3);
    for epoch in &diag_meta.history[1..] {
        let d = epoch.diagnostics.as_ref().expect("diagnostics every epoch");
        let terms: Vec<&str> = d.gradients.iter().map(|g| g.term.as_str()).collect();
        let on = epoch.epoch > 1; // MAD and MAR after the warm-up
        assert_eq!(
            terms,
            if on {
                vec!["ce", "mad", "mar"]
            } else {
                vec!["ce"]
            },
            "epoch {}",
            epoch.epoch
        );
        let ce = &d.gradients[0];
        assert!(ce.norm > 0.0 && ce.norm.is_finite());
        assert!((ce.ratio_to_task - 1.0).abs() < 1e-12);
        assert!(
            (ce.cosine_to_task - 1.0).abs() < 1e-4,
            "{}",
            ce.cosine_to_task
        );
        for g in &d.gradients[1..] {
            assert!(g.norm.is_finite() && g.norm >= 0.0, "{g:?}");
            assert!(
                (-1.0 - 1e-4..=1.0 + 1e-4).contains(&g.cosine_to_task),
                "{g:?}"
            );
        }
        if on {
            assert!(d.gradients[1].norm > 0.0, "MAD pulls on the encoders");
            // one value per combination and active term; the task loss of every combination
            for c in combos {
                let of = |t: &str| -> Vec<f64> {
                    d.values
                        .iter()
                        .filter(|v| v.term == t && v.combination == c)
                        .map(|v| v.value)
                        .collect()
                };
                let (ce, mad) = (of("ce"), of("mad"));
                assert_eq!((ce.len(), mad.len()), (1, 1), "{c:?}");
                assert!(ce[0] > 0.0 && ce[0].is_finite(), "{ce:?}");
                assert!(mad[0] >= 0.0 && mad[0].is_finite(), "{mad:?}");
            }
            // MAR trained the regularization decoder on the weak combination's samples only
            let weak = diag.mining[0].trace.weak_set.clone().unwrap();
            let (_, n) = epoch
                .regularized_samples
                .iter()
                .find(|(t, _)| t == "mar")
                .expect("a count of regularized samples");
            assert!(*n > 0 && *n <= 24, "{n} of 24 training scenes");
            assert_eq!(weak.len(), 1);
        } else {
            assert!(epoch.regularized_samples.is_empty());
        }
    }
}
