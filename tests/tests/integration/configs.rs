//! Every shipped config parses and validates; the shipped manifest parses; the embedded list
//! (`mmanet_core::configs::ALL`) is the folder's.

use mmanet_core::config::ExperimentConfig;
use mmanet_core::data::manifest::read_manifest;
use std::path::Path;

#[test]
fn shipped_configs_are_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut n = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        // the folder is also the `mmanet-configs` crate
        if !name.ends_with(".toml") || name == "Cargo.toml" {
            continue;
        }
        let embedded = mmanet_core::configs::by_name(&name)
            .unwrap_or_else(|| panic!("{name} is missing from configs/lib.rs's ALL"));
        let on_disk = std::fs::read_to_string(&path).unwrap();
        assert_eq!(embedded, on_disk, "{name}: the embedded text is the file's");
        if name.contains("manifest") {
            read_manifest(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        } else {
            ExperimentConfig::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            n += 1;
        }
    }
    assert!(n >= 4, "found {n} experiment configs");
    let files = std::fs::read_dir(&dir)
        .unwrap()
        .filter(|e| {
            let name = e
                .as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .to_string();
            name.ends_with(".toml") && name != "Cargo.toml"
        })
        .count();
    assert_eq!(
        mmanet_core::configs::ALL.len(),
        files,
        "ALL lists every shipped config"
    );
}

/// `mmanet.mad_impl` is read from configs and `--set`, defaults to `auto`, rejects unknown
/// values with the field, and stays out of the serialized config (a run's identity).
#[test]
fn mad_impl_setting() {
    use mmanet_core::losses::mad::MadImpl;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/mfeat-demo.toml");
    let text = std::fs::read_to_string(&path).unwrap();
    let cfg = ExperimentConfig::from_toml_with_overrides(&text, "demo", &[]).unwrap();
    assert_eq!(cfg.mmanet.mad_impl, MadImpl::Auto);
    let ops = ["mmanet.mad_impl=\"ops\"".to_string()];
    let cfg = ExperimentConfig::from_toml_with_overrides(&text, "demo", &ops).unwrap();
    assert_eq!(cfg.mmanet.mad_impl, MadImpl::Ops);
    let json = serde_json::to_string(&cfg.mmanet).unwrap();
    assert!(!json.contains("mad_impl"), "{json}");
    let bad = ["mmanet.mad_impl=\"fast\"".to_string()];
    let err = ExperimentConfig::from_toml_with_overrides(&text, "demo", &bad)
        .unwrap_err()
        .to_string();
    assert!(err.contains("mad_impl"), "{err}");
}

#[test]
fn a_shorter_run_pulls_the_warm_up_inside_it() {
    use mmanet_core::mmanet_settings::{MmanetConfig, mining_epochs_before, warmup_for};
    let official = MmanetConfig::default();
    assert_eq!(official.warmup_epochs, 5);
    // it fits 30 epochs: untouched
    let mut m = official.clone();
    assert!(!m.fit_warmup(30));
    assert_eq!(m, official);
    // 6 epochs: 5 + 1 leaves none with MAD/MAR on; the warm-up moves to 3, mining to 0, 1, 2
    assert!(m.fit_warmup(6));
    assert_eq!(
        (m.warmup_epochs, m.mining_epochs.clone()),
        (3, vec![0, 1, 2])
    );
    m.validate(6).unwrap();
    for epochs in 3..40 {
        let mut m = official.clone();
        m.fit_warmup(epochs);
        m.validate(epochs)
            .unwrap_or_else(|e| panic!("{epochs} epochs: {e}"));
    }
    assert_eq!(warmup_for(3), 1);
    assert_eq!(warmup_for(4), 2);
    assert_eq!(warmup_for(12), 6);
    assert_eq!(mining_epochs_before(1), vec![0]);
    // under 3 epochs nothing fits: validation says so
    let mut m = official.clone();
    assert!(!m.fit_warmup(2));
    let err = m.validate(2).unwrap_err().to_string();
    assert!(err.contains("mmanet.warmup_epochs"), "{err}");
}

/// The face anti-spoofing configs carry the official recipe (spec §1.5–1.8): teacher, SF-MD and
/// MMANet with α 30, β 0.5, mining after epochs 2–4, the weak set after 5; CASIA-SURF's bona fide
/// label is 1, CeFA's 0 (protocol race_prot_rdi_4@5, test batch 128).
#[test]
fn anti_spoofing_configs_follow_the_official_recipe() {
    use mmanet_core::config::Method;
    use mmanet_core::data::manifest::ManifestFormat;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    for (file, bona_fide, eval_batch) in [("casia-surf.toml", 1, 64), ("cefa.toml", 0, 128)] {
        let cfg = ExperimentConfig::load(&dir.join(file)).unwrap();
        assert_eq!(cfg.methods, [Method::SfMd, Method::Mmanet], "{file}");
        assert_eq!((cfg.mmanet.alpha, cfg.mmanet.beta), (30.0, 0.5), "{file}");
        assert_eq!(cfg.mmanet.warmup_epochs, 5, "{file}");
        assert_eq!(cfg.mmanet.mining_epochs, [2, 3, 4], "{file}");
        assert_eq!(cfg.eval.bona_fide_label, bona_fide, "{file}");
        assert_eq!(cfg.eval.batch_size, eval_batch, "{file}");
        for stage in [&cfg.teacher, &cfg.student] {
            assert_eq!((stage.epochs, stage.batch_size), (100, 64), "{file}");
            assert_eq!(stage.lr_milestones, [16, 33, 50], "{file}");
            assert_eq!(stage.select_after_epoch, 31, "{file}");
        }
    }
    let cefa = read_manifest(&dir.join("cefa-manifest.toml")).unwrap();
    assert_eq!(cefa.format, ManifestFormat::Cefa);
    assert_eq!(
        cefa.class_names,
        Some(vec!["real".to_string(), "attack".to_string()])
    );
    // no protocol written: the paper's race_prot_rdi_4@5
    assert!(cefa.images.unwrap().cefa_protocol.is_none());
}
