//! Every shipped config parses and validates; the shipped manifest parses.

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
        if !name.ends_with(".toml") {
            continue;
        }
        if name.contains("manifest") {
            read_manifest(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        } else {
            ExperimentConfig::load(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
            n += 1;
        }
    }
    assert!(n >= 4, "found {n} experiment configs");
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
