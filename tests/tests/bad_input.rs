//! Bad input found by trying mmanet as a new user would: each is a clear error, quickly, and
//! nothing is written outside the output folder.

use burn::prelude::*;
use mmanet_core::config::ExperimentConfig;
use mmanet_core::data::csv::{CsvView, LabelColumn, LabelPosition, load_multiview};
use mmanet_core::pipeline::{RunMode, SilentProgress, prepare_data, run_experiment};
use mmanet_tests::quick_demo_config;

const DEMO: &str = include_str!("../../configs/mfeat-demo.toml");

/// Trains `cfg` on `data` on the CPU backend, from scratch.
fn train(
    cfg: &ExperimentConfig,
    data: &mmanet_core::pipeline::PreparedData,
) -> mmanet_core::Result<mmanet_core::pipeline::ExperimentOutcome> {
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
