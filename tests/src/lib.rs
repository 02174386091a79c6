//! Helpers shared by the integration tests: golden-vector loading and tolerance checks.

pub mod golden_checks;

use serde_json::Value;
use std::path::PathBuf;

/// The golden-vector folder: `MMANET_GOLDEN_DIR` if set, else the copy in `tests/golden/`.
pub fn golden_dir() -> PathBuf {
    std::env::var_os("MMANET_GOLDEN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("golden"))
}

/// The wgpu device (a software Vulkan adapter in CI). Its shaders are autotuned at CubeCL's
/// minimal level (`tests/cubecl.toml`).
pub fn wgpu_device() -> burn::prelude::Device {
    use burn::cubecl::config::autotune::AutotuneLevel;
    use burn::cubecl::config::{CubeClRuntimeConfig, RuntimeConfig};
    let level = CubeClRuntimeConfig::get().autotune.level.clone();
    assert!(
        matches!(level, AutotuneLevel::Minimal)
            || std::env::var_os("CUBECL_AUTOTUNE_LEVEL").is_some(),
        "CubeCL autotunes at {level:?}: tests/cubecl.toml was not read (run the tests from tests/)"
    );
    mmanet_core::device::select_device(mmanet_core::device::DeviceChoice::Wgpu)
        .expect(
            "a wgpu adapter is required (install Debian's mesa-vulkan-drivers for a software one)",
        )
        .device
}

/// Parses one golden JSON file.
pub fn golden(name: &str) -> Value {
    let path = golden_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read golden file {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Flattens a nested JSON array of numbers.
pub fn flat_f64(v: &Value) -> Vec<f64> {
    match v {
        Value::Array(items) => items.iter().flat_map(flat_f64).collect(),
        Value::Number(n) => vec![n.as_f64().expect("number")],
        other => panic!("expected numbers, got {other}"),
    }
}

/// Asserts `|got − want| ≤ rel · max(|want|, 1e-7)` element-wise: relative error for every value
/// of magnitude ≥ 1e-7, and an absolute `rel · 1e-7` for values that are zero up to rounding
/// (e.g. a KL divergence of −6.6e-17 between identical distributions).
pub fn assert_close(what: &str, got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} vs {}",
        got.len(),
        want.len()
    );
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite(), "{what}[{i}] is {g}");
        let tol = rel * w.abs().max(1e-7);
        assert!(
            (g - w).abs() <= tol,
            "{what}[{i}]: got {g}, want {w} (relative error {:.3e} > {rel:e})",
            (g - w).abs() / w.abs().max(1e-300)
        );
    }
}

/// Asserts two matrices agree in relative Frobenius norm, `‖got − want‖ ≤ rel·‖want‖`, and
/// element-wise within `rel` of the largest magnitude (so entries that are tiny differences of
/// nearly equal numbers are judged against the matrix's scale, as f32 can resolve them).
pub fn assert_close_matrix(what: &str, got: &[f64], want: &[f64], rel: f64) {
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: length {} vs {}",
        got.len(),
        want.len()
    );
    let norm = want.iter().map(|w| w * w).sum::<f64>().sqrt();
    let diff = got
        .iter()
        .zip(want)
        .map(|(g, w)| (g - w).powi(2))
        .sum::<f64>()
        .sqrt();
    assert!(
        diff <= rel * norm.max(1e-300),
        "{what}: relative norm error {:.3e} > {rel:e}",
        diff / norm
    );
    let scale = want.iter().fold(0f64, |m, w| m.max(w.abs()));
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(g.is_finite(), "{what}[{i}] is {g}");
        assert!(
            (g - w).abs() <= rel * scale,
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}

/// The names of the golden files starting with `prefix` (sorted).
pub fn golden_files(prefix: &str) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(golden_dir())
        .expect("golden dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.starts_with(prefix) && n.ends_with(".json"))
        .collect();
    names.sort();
    names
}

/// The demo config, shortened to `epochs` per stage (no lr milestones, any epoch selectable),
/// writing into `out`.
pub fn quick_demo_config(
    out: &std::path::Path,
    epochs: usize,
) -> mmanet_core::config::ExperimentConfig {
    let text = mmanet_core::configs::MFEAT_DEMO;
    let mut cfg =
        mmanet_core::config::ExperimentConfig::from_toml(text, "mfeat-demo.toml").unwrap();
    cfg.output_dir = out.to_path_buf();
    for stage in [&mut cfg.teacher, &mut cfg.student] {
        stage.epochs = epochs;
        stage.select_after_epoch = 0;
        stage.lr_milestones.clear();
    }
    cfg
}

/// The segmentation demo config (`configs/scenes-demo.toml`) with `key.path=value` overrides,
/// writing into `out`.
pub fn scenes_demo_config(
    out: &std::path::Path,
    overrides: &[&str],
) -> mmanet_core::config::ExperimentConfig {
    let overrides: Vec<String> = overrides.iter().map(|o| o.to_string()).collect();
    let mut cfg = mmanet_core::config::ExperimentConfig::from_toml_with_overrides(
        mmanet_core::configs::SCENES_DEMO,
        "scenes-demo.toml",
        &overrides,
    )
    .unwrap();
    cfg.output_dir = out.to_path_buf();
    cfg
}

/// Prepares the data of `cfg` and trains everything on the CPU backend.
pub fn train_on_cpu(
    cfg: &mmanet_core::config::ExperimentConfig,
) -> (
    mmanet_core::experiment::PreparedData,
    mmanet_core::experiment::ExperimentOutcome,
) {
    use mmanet_core::experiment::{RunMode, SilentProgress, prepare_data, run_experiment};
    let data = prepare_data(cfg).unwrap();
    let out = run_experiment(
        cfg,
        &data,
        &burn::prelude::Device::flex(),
        false,
        RunMode::Train,
        &mut SilentProgress,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    (data, out)
}

/// Random MAD inputs of one shape: student and teacher features `[b, d]`, teacher logits `[b, c]`.
pub struct MadCase {
    /// Student features, row-major.
    pub s: Vec<f32>,
    /// Teacher features, row-major.
    pub t: Vec<f32>,
    /// Teacher logits, row-major.
    pub z: Vec<f32>,
    /// Rows (samples or pixels).
    pub b: usize,
    /// Feature size.
    pub d: usize,
    /// Classes.
    pub c: usize,
}

impl MadCase {
    /// The MAD loss and the student gradient by `imp` on `device` (autodiff added here);
    /// `reduction` `None` is the dense (segmentation) variant.
    pub fn loss_and_grad(
        &self,
        device: &burn::prelude::Device,
        imp: mmanet_core::losses::mad::MadImpl,
        reduction: Option<mmanet_core::losses::mad::MadReduction>,
    ) -> (f64, Vec<f64>) {
        use burn::prelude::*;
        use mmanet_core::losses::mad::{dense_mad_loss_with, mad_loss_with};
        let ad = device.clone().autodiff();
        let rows = |v: &[f32], cols: usize| {
            Tensor::<2>::from_data(TensorData::new(v.to_vec(), [self.b, cols]), &ad)
        };
        let s = rows(&self.s, self.d).require_grad();
        let (t, z) = (rows(&self.t, self.d), rows(&self.z, self.c));
        let loss = match reduction {
            Some(r) => mad_loss_with(s.clone(), t, z, r, imp),
            None => dense_mad_loss_with(s.clone(), t, z, imp),
        }
        .expect("MAD");
        let grads = loss.backward();
        let g = s.grad(&grads).expect("student gradient");
        (golden_checks::host(loss)[0], golden_checks::host(g))
    }
}

/// A module mapper that turns every float parameter into NaN: the network of a training run
/// that diverged.
pub struct PoisonWeights;

impl burn::module::ModuleMapper for PoisonWeights {
    fn map_float<const D: usize>(
        &mut self,
        param: burn::module::Param<burn::prelude::Tensor<D>>,
    ) -> burn::module::Param<burn::prelude::Tensor<D>> {
        param.map(|t| t.mul_scalar(f32::NAN))
    }
}
