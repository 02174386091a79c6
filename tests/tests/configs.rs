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
