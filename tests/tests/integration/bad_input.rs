//! Bad input found by trying mmanet as a new user would: each is a clear error, quickly, and
//! nothing is written outside the output folder.

use burn::prelude::*;
use mmanet_core::config::ExperimentConfig;
use mmanet_core::data::csv::{CsvView, LabelColumn, LabelPosition, load_multiview};
use mmanet_core::experiment::{RunMode, SilentProgress, prepare_data, run_experiment};
use mmanet_tests::quick_demo_config;

const DEMO: &str = mmanet_core::configs::MFEAT_DEMO;

/// Trains `cfg` on `data` on the CPU backend, from scratch.
fn train(
    cfg: &ExperimentConfig,
    data: &mmanet_core::experiment::PreparedData,
) -> mmanet_core::Result<mmanet_core::experiment::ExperimentOutcome> {
    run_experiment(
        cfg,
        data,
        &Device::flex(),
        false,
        RunMode::Train,
        &mut SilentProgress,
    )
}

/// A label of 99999999999 once made the class count 10^11 and built something that large; now
/// the label is refused, naming the file, line and column.
#[test]
fn a_huge_label_is_refused_before_anything_is_sized_by_it() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    let text = "1,2,99999999999\n3,4,99999999999\n";
    let view = CsvView {
        name: "a".into(),
        file: "a.csv".into(),
        text,
        header: false,
        label: LabelColumn::Named(LabelPosition::Last),
        image_shape: None,
    };
    let started = std::time::Instant::now();
    let e = load_multiview("d", &[view], None).unwrap_err().to_string();
    assert!(
        e.contains("a.csv:1, column 3") && e.contains("99999999999") && e.contains("65536"),
        "{e}"
    );
    assert!(started.elapsed().as_secs() < 5, "it answers at once");
}

/// A run name that would leave the output folder is refused, as any name that is not one folder.
#[test]
fn a_run_name_cannot_leave_the_output_folder() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    for name in ["../../escape", "a/b", "..", "a\\\\b", "", "tab\\there"] {
        let overrides = [format!("name=\"{name}\"")];
        let e = ExperimentConfig::from_toml_with_overrides(DEMO, "c.toml", &overrides)
            .unwrap_err()
            .to_string();
        assert!(e.contains("`name`"), "{name}: {e}");
    }
    // an ordinary name with spaces and dots is fine
    let ok = ["name=\"my run v1.2\"".to_string()];
    ExperimentConfig::from_toml_with_overrides(DEMO, "c.toml", &ok).unwrap();
}

/// The bona-fide class must be a class of the data: refused before anything trains.
#[test]
fn a_bona_fide_label_outside_the_classes_is_refused() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = quick_demo_config(dir.path(), 1);
    cfg.eval.bona_fide_label = 10;
    let data = prepare_data(&cfg).unwrap();
    let e = train(&cfg, &data).err().expect("refused").to_string();
    assert!(
        e.contains("eval.bona_fide_label") && e.contains("10 is not a class of mfeat"),
        "{e}"
    );
    assert!(
        !dir.path().join("mfeat-demo").join("teacher").exists(),
        "nothing trained"
    );
}

/// A missing file's OS message appears once, not once per level of the error chain.
#[test]
fn a_missing_file_says_so_once() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    let e = mmanet_core::data::manifest::read_manifest(std::path::Path::new("/nonexistent/m.toml"))
        .unwrap_err();
    assert!(
        std::error::Error::source(&e).is_none(),
        "the OS error is in the message only"
    );
    let text = e.to_string();
    assert_eq!(text.matches("os error 2").count(), 1, "{text}");
    assert!(text.contains("/nonexistent/m.toml"), "{text}");
}

/// Too many modalities or classes in a manifest are refused with the limit.
#[test]
fn manifests_beyond_the_limits_are_refused() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    let mut text = String::from("name = \"wide\"\nformat = \"csv\"\n");
    for m in 0..17 {
        text += &format!("[[modality]]\nname = \"m{m}\"\nfile = \"m{m}.csv\"\n");
    }
    let e = mmanet_core::data::manifest::parse_manifest(&text, "wide.toml")
        .unwrap_err()
        .to_string();
    assert!(e.contains("wide.toml") && e.contains("at most 16"), "{e}");
    let text = "name = \"many\"\nclasses = 1000000\n[[modality]]\nname = \"a\"\nfile = \"a.csv\"\n";
    let e = mmanet_core::data::manifest::parse_manifest(text, "many.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("many.toml") && e.contains("1000000 classes"),
        "{e}"
    );
}

/// A run folder another live process is writing is refused, not overwritten; a lock left by a
/// process that is gone is taken over, and the lock goes when the run ends.
#[test]
fn a_run_folder_in_use_is_not_overwritten() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = quick_demo_config(dir.path(), 1);
    cfg.methods = vec![mmanet_core::config::Method::SfMd];
    let data = prepare_data(&cfg).unwrap();
    let run_dir = dir.path().join(&cfg.name);
    std::fs::create_dir_all(&run_dir).unwrap();
    let lock = run_dir.join(".lock");
    let mut owner = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .unwrap();
    std::fs::write(&lock, owner.id().to_string()).unwrap();
    let run = || train(&cfg, &data);
    let e = run().err().expect("refused").to_string();
    assert!(
        e.contains(&format!("is being written by process {}", owner.id())),
        "{e}"
    );
    assert!(!run_dir.join("teacher").exists(), "nothing written");
    owner.kill().unwrap();
    owner.wait().unwrap();
    run().unwrap();
    assert!(!lock.exists(), "the lock is gone with the run");
    assert!(run_dir.join("reports.json").is_file());
}

/// Generators and image lists refuse sizes that would not fit, before allocating anything.
#[test]
fn generated_data_beyond_the_limits_is_refused_at_once() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    use mmanet_core::data::scenes::ScenesConfig;
    use mmanet_core::data::synthetic::{SyntheticConfig, generate};
    let started = std::time::Instant::now();
    let e = generate(&SyntheticConfig {
        samples: 1_000_000_000,
        ..SyntheticConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("synthetic.samples") && e.contains("8 GiB"),
        "{e}"
    );
    let e = generate(&SyntheticConfig {
        size: 100_000,
        ..SyntheticConfig::default()
    })
    .unwrap_err()
    .to_string();
    assert!(e.contains("synthetic.size"), "{e}");
    let e = ScenesConfig {
        scenes: usize::MAX,
        ..ScenesConfig::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("data.scenes.scenes") && e.contains("8 GiB"),
        "{e}"
    );
    let e = ScenesConfig {
        height: 8192,
        ..ScenesConfig::default()
    }
    .validate()
    .unwrap_err()
    .to_string();
    assert!(e.contains("data.scenes.height"), "{e}");
    assert!(started.elapsed().as_secs() < 5, "refused at once");
}

/// The audit of every numeric setting: each out-of-range value (zero, negative, NaN, infinite,
/// too large, inconsistent with another field) is refused with an error naming its field. The
/// README's "Robustness" section lists the ranges.
#[test]
fn every_numeric_config_field_is_range_checked() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    const SYNTHETIC: &str = mmanet_core::configs::SYNTHETIC_ANTISPOOF;
    const SCENES: &str = mmanet_core::configs::SCENES_DEMO;
    let cases: &[(&str, &str, &str)] = &[
        (DEMO, "teacher.epochs=0", "teacher.epochs"),
        (DEMO, "student.epochs=100001", "student.epochs"),
        (DEMO, "teacher.batch_size=0", "teacher.batch_size"),
        (DEMO, "student.batch_size=70000", "student.batch_size"),
        (DEMO, "teacher.lr=-0.1", "teacher.lr"),
        (DEMO, "teacher.lr=nan", "teacher.lr"),
        (DEMO, "student.lr=inf", "student.lr"),
        (DEMO, "teacher.momentum=1.0", "teacher.momentum"),
        (DEMO, "student.momentum=nan", "student.momentum"),
        (DEMO, "teacher.weight_decay=-1e-4", "teacher.weight_decay"),
        (DEMO, "teacher.lr_gamma=0.0", "teacher.lr_gamma"),
        (
            DEMO,
            "teacher.lr_warmup_epochs=31",
            "teacher.lr_warmup_epochs",
        ),
        (DEMO, "student.lr_milestones=[30]", "student.lr_milestones"),
        (
            DEMO,
            "student.lr_milestones=[18446744073709551615]",
            "student.lr_milestones",
        ),
        (
            DEMO,
            "teacher.select_after_epoch=30",
            "teacher.select_after_epoch",
        ),
        (DEMO, "eval.batch_size=0", "eval.batch_size"),
        (DEMO, "model.mlp_hidden=0", "model.mlp_hidden"),
        (DEMO, "model.mlp_embed=1000000", "model.mlp_embed"),
        (DEMO, "model.trunk_hidden=1000000000", "model.trunk_hidden"),
        (DEMO, "mmanet.alpha=-1.0", "mmanet.alpha"),
        (DEMO, "mmanet.alpha=nan", "mmanet.alpha"),
        (DEMO, "mmanet.beta=inf", "mmanet.beta"),
        (DEMO, "mmanet.warmup_epochs=29", "mmanet.warmup_epochs"),
        (DEMO, "mmanet.mining_epochs=[]", "mmanet.mining_epochs"),
        (DEMO, "mmanet.mining_epochs=[25]", "mmanet.mining_epochs"),
        (DEMO, "data.split.train=0.0", "split"),
        (DEMO, "data.split.val=-0.1", "split"),
        (DEMO, "data.split.test=nan", "split"),
        (DEMO, "data.split.test=0.5", "split"),
        (
            SYNTHETIC,
            "data.synthetic.samples=1",
            "data.synthetic.samples",
        ),
        (SYNTHETIC, "data.synthetic.size=4", "data.synthetic.size"),
        (SYNTHETIC, "data.synthetic.size=5000", "data.synthetic.size"),
        (
            SYNTHETIC,
            "data.synthetic.rgb_strength=1.5",
            "data.synthetic.rgb_strength",
        ),
        (
            SYNTHETIC,
            "data.synthetic.depth_strength=nan",
            "data.synthetic.depth_strength",
        ),
        (
            SYNTHETIC,
            "data.synthetic.ir_strength=-0.1",
            "data.synthetic.ir_strength",
        ),
        (
            SYNTHETIC,
            "data.synthetic.noise=-1.0",
            "data.synthetic.noise",
        ),
        (
            SYNTHETIC,
            "data.synthetic.noise=inf",
            "data.synthetic.noise",
        ),
        (
            SYNTHETIC,
            "data.synthetic.samples=100000000",
            "data.synthetic.samples",
        ),
        (SCENES, "data.scenes.scenes=2", "data.scenes.scenes"),
        (SCENES, "data.scenes.height=40", "data.scenes.height"),
        (SCENES, "data.scenes.width=8192", "data.scenes.height"),
        (SCENES, "data.scenes.rgb_noise=300", "data.scenes.rgb_noise"),
        (
            SCENES,
            "data.scenes.depth_noise=20000",
            "data.scenes.depth_noise",
        ),
        (
            SCENES,
            "data.scenes.depth_dropout_percent=101",
            "data.scenes.depth_dropout_percent",
        ),
        (
            SCENES,
            "data.scenes.rgb_cue_percent=200",
            "data.scenes.rgb_cue_percent",
        ),
        (
            SCENES,
            "data.scenes.depth_cue_percent=101",
            "data.scenes.depth_cue_percent",
        ),
    ];
    for (text, set, field) in cases {
        let e = ExperimentConfig::from_toml_with_overrides(text, "c.toml", &[set.to_string()])
            .err()
            .unwrap_or_else(|| panic!("`{set}` was accepted"))
            .to_string();
        assert!(e.contains(field), "`{set}`: {e}");
    }

    // the manifest's [images] table (CASIA-SURF and CeFA image lists)
    use mmanet_core::data::imagelist::{ImageListConfig, ImageListDataset};
    for (images, field) in [
        (r#"{"channels": 2}"#, "images.channels"),
        (r#"{"size": 0}"#, "images.train_resize"),
        (r#"{"size": 5000}"#, "images.size"),
        (
            r#"{"size": 112, "train_resize": 100}"#,
            "images.train_resize",
        ),
        (r#"{"max_rotation_deg": -5}"#, "images.max_rotation_deg"),
        (
            r#"{"max_rotation_deg": -2147483648}"#,
            "images.max_rotation_deg",
        ),
        (r#"{"max_rotation_deg": 720}"#, "images.max_rotation_deg"),
    ] {
        let cfg: ImageListConfig = serde_json::from_str(images).unwrap();
        let e = ImageListDataset::new("lists", Vec::new(), &cfg, Vec::new())
            .err()
            .unwrap_or_else(|| panic!("{images} was accepted"))
            .to_string();
        assert!(e.contains(field), "{images}: {e}");
    }

    // the manifest's [rgbd] table (NYUv2 and Cityscapes trees)
    use mmanet_core::data::rgbd_trees::{RgbdLayout, RgbdTree, RgbdTreeConfig};
    let root = tempfile::tempdir().unwrap();
    for (rgbd, field) in [
        (r#"{"classes": 1}"#, "rgbd.classes"),
        (r#"{"classes": 70000}"#, "rgbd.classes"),
        (r#"{"max_depth": 0}"#, "rgbd.max_depth"),
        (r#"{"max_depth": -3}"#, "rgbd.max_depth"),
        (r#"{"train_size": [480, 650]}"#, "rgbd.train_size"),
        (r#"{"eval_size": [0, 640]}"#, "rgbd.eval_size"),
        (r#"{"eval_size": [480, 65536]}"#, "rgbd.eval_size"),
        (r#"{"scale": [1.4, 1.0]}"#, "rgbd.scale"),
        (r#"{"scale": [0.0, 1.0]}"#, "rgbd.scale"),
        (r#"{"scale": [1.0, 1000.0]}"#, "rgbd.scale"),
    ] {
        let mut value: serde_json::Value = serde_json::from_str(rgbd).unwrap();
        value["root"] = ".".into();
        let cfg: RgbdTreeConfig = serde_json::from_value(value).unwrap();
        let e = RgbdTree::open("tree", RgbdLayout::Nyuv2, &cfg, root.path())
            .err()
            .unwrap_or_else(|| panic!("{rgbd} was accepted"))
            .to_string();
        assert!(e.contains(field), "{rgbd}: {e}");
    }
}

/// A scene image larger than 4096 px a side is refused from its header, naming the file, before
/// its pixels are allocated.
#[test]
fn an_oversized_scene_image_is_refused() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    let dir = tempfile::tempdir().unwrap();
    let wide = dir.path().join("wide.png");
    image::GrayImage::new(5000, 1).save(&wide).unwrap();
    let small = dir.path().join("small.png");
    image::RgbImage::new(8, 8).save(&small).unwrap();
    let e = mmanet_core::data::rgbd_trees::read_rgbd_parts(Some(&small), Some(&wide))
        .unwrap_err()
        .to_string();
    assert!(e.contains("wide.png") && e.contains("4096 px"), "{e}");
}

/// Generated anti-spoofing data a browser tab could not hold is refused before it is generated
/// (the page asks `limits::check_data_fits`), naming the setting and the sizes; data that fits
/// and sources that are not generated in memory pass.
#[test]
fn generated_data_beyond_a_browser_tab_is_refused() {
    let _rng = mmanet_core::rng::burn_rng(); // trains or builds: see mmanet_core::rng
    use mmanet_core::config::{DataConfig, DataSource, ExperimentConfig};
    use mmanet_core::limits::{BrowserLimits, check_data_fits};
    let limits = BrowserLimits::default();
    let shipped = ExperimentConfig::from_toml(
        mmanet_core::configs::SYNTHETIC_ANTISPOOF,
        "synthetic-antispoof.toml",
    )
    .unwrap();
    let synthetic = |samples: usize, size: usize| -> DataConfig {
        let mut data = shipped.data.clone();
        let s = data
            .synthetic
            .as_mut()
            .expect("the shipped config's generator");
        (s.samples, s.size) = (samples, size);
        data
    };
    check_data_fits(&shipped.data, &limits).unwrap();
    // 20,000 × 5 × 128 × 128 × 4 bytes = 6,250 MiB
    let e = check_data_fits(&synthetic(20_000, 128), &limits)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("data.synthetic")
            && e.contains("20000 samples of 128×128")
            && e.contains("6250 MiB"),
        "{e}"
    );
    let mut mfeat = synthetic(20_000, 128);
    mfeat.source = DataSource::Mfeat;
    check_data_fits(&mfeat, &limits).unwrap();
}
