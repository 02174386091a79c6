//! Whether an experiment fits a browser tab: WebGPU's default limits (a storage buffer binding
//! holds at most 128 MiB) and the memory of a wasm32 page. The browser app refuses a run that
//! would exceed them, with the numbers, instead of crashing mid-run.
//!
//! The figures are estimates from the shapes: the largest tensor one training step binds (the
//! input batch, the first convolution's output, or the im2col buffer of the first residual
//! layer) and the bytes the page holds (the dataset, and each trained model several times over:
//! weights, gradients, two Adam/SGD moments, the best copy and its checkpoint).

use crate::config::ExperimentConfig;
use crate::data::{ModalityKind, ModalitySpec};
use crate::error::{CoreError, Result};
use crate::model::resnet::conv_out;
use crate::prepare::LoadedData;

/// What a browser tab allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BrowserLimits {
    /// WebGPU's default `maxStorageBufferBindingSize` (128 MiB).
    pub max_binding_bytes: u64,
    /// Memory the page may use for data and models (wasm32 addresses 4 GiB; browsers often
    /// stop a tab well before that).
    pub memory_bytes: u64,
}

impl Default for BrowserLimits {
    fn default() -> Self {
        BrowserLimits {
            max_binding_bytes: 128 << 20,
            memory_bytes: 2 << 30,
        }
    }
}

/// An experiment's estimated needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Footprint {
    /// Bytes of the largest tensor one step binds.
    pub largest_binding_bytes: u64,
    /// Which tensor that is.
    pub largest_binding: String,
    /// Bytes of the dataset in memory.
    pub data_bytes: u64,
    /// Bytes the trained models take, all copies counted.
    pub model_bytes: u64,
}

impl Footprint {
    /// Data and models together.
    pub fn memory_bytes(&self) -> u64 {
        self.data_bytes + self.model_bytes
    }
}

/// Copies of each model's parameters a run holds (weights, gradients, two optimiser moments,
/// the best model, its serialised checkpoint, and the explorer's copy).
const MODEL_COPIES: u64 = 7;

/// The largest batch any stage or the evaluation of `cfg` runs.
fn largest_batch(cfg: &ExperimentConfig) -> u64 {
    cfg.teacher
        .batch_size
        .max(cfg.student.batch_size)
        .max(cfg.eval.batch_size) as u64
}

/// Estimates what `cfg` needs on data of `modalities` with `samples` samples, for models with
/// `params` parameters each (teacher and students alike) and `methods` trained models.
pub fn footprint(
    cfg: &ExperimentConfig,
    modalities: &[ModalitySpec],
    samples: usize,
    params: usize,
    models: usize,
) -> Footprint {
    let batch = largest_batch(cfg);
    let widths = cfg.model.image_preset.widths();
    let mut largest = (0u64, String::new());
    let mut bigger = |bytes: u64, what: String| {
        if bytes > largest.0 {
            largest = (bytes, what);
        }
    };
    let mut per_sample = 0u64;
    for m in modalities {
        match m.kind {
            ModalityKind::Vector { dim } => {
                per_sample += dim as u64;
                let widest = dim.max(cfg.model.mlp_hidden) as u64;
                bigger(batch * widest * 4, format!("the `{}` batch", m.name));
            }
            ModalityKind::Image {
                channels,
                height,
                width,
            } => {
                let pixels = (height * width) as u64;
                per_sample += channels as u64 * pixels;
                bigger(
                    batch * channels as u64 * pixels * 4,
                    format!("the `{}` input batch", m.name),
                );
                // stem: stride 2, then a stride-2 pool before layer1
                let (h2, w2) = (conv_out(height, 2), conv_out(width, 2));
                let stem = (widths[0] * h2 * w2) as u64;
                bigger(
                    batch * stem * 4,
                    format!("the `{}` stem convolution's output", m.name),
                );
                let (h4, w4) = (conv_out(h2, 2), conv_out(w2, 2));
                let im2col = (widths[0] * 9 * h4 * w4) as u64;
                bigger(
                    batch * im2col * 4,
                    format!("the `{}` first residual layer's im2col buffer", m.name),
                );
            }
        }
    }
    Footprint {
        largest_binding_bytes: largest.0,
        largest_binding: largest.1,
        data_bytes: per_sample * samples as u64 * 4,
        model_bytes: params as u64 * 4 * MODEL_COPIES * models as u64,
    }
}

/// [`footprint`] for segmentation: `scenes` RGB-D scenes stored at `stored` `[h, w]` pixels
/// (RGB bytes, f32 depth, u16 labels), network inputs of `input` `[h, w]` (the training crop or
/// the evaluation size, whichever is larger), models of `params` parameters each, `models`
/// trained models. The largest binding is the input batch, the stem's output at 1/2, the
/// im2col buffer of the first encoder layer at 1/4, or the full-resolution logits.
pub fn seg_footprint(
    cfg: &ExperimentConfig,
    classes: usize,
    scenes: usize,
    stored: [usize; 2],
    input: [usize; 2],
    params: usize,
    models: usize,
) -> Footprint {
    let batch = largest_batch(cfg);
    let arch = cfg.seg_model.arch();
    let (h, w) = (input[0] as u64, input[1] as u64);
    let stem = arch.planes[0] as u64;
    let candidates = [
        (batch * 3 * h * w * 4, "the RGB input batch"),
        (
            batch * stem * (h / 2) * (w / 2) * 4,
            "the stem convolution's output",
        ),
        (
            batch * stem * 9 * (h / 4) * (w / 4) * 4,
            "the first encoder layer's im2col buffer",
        ),
        (
            batch * classes as u64 * h * w * 4,
            "the full-resolution logits",
        ),
    ];
    let (bytes, what) = candidates
        .into_iter()
        .max_by_key(|(b, _)| *b)
        .unwrap_or((0, ""));
    let pixels = (stored[0] * stored[1]) as u64;
    Footprint {
        largest_binding_bytes: bytes,
        largest_binding: what.to_string(),
        // RGB bytes + f32 depth + u16 labels per pixel
        data_bytes: scenes as u64 * pixels * (3 + 4 + 2),
        model_bytes: params as u64 * 4 * MODEL_COPIES * models as u64,
    }
}

/// Refuses an experiment a browser tab could not hold: builds the networks `cfg` asks for on
/// `data` (on the CPU device, to count their parameters), estimates the footprint and checks it
/// against [`BrowserLimits::default`].
pub fn check_experiment_fits(cfg: &ExperimentConfig, data: &LoadedData) -> Result<()> {
    use crate::config::Method;
    use burn::module::Module;
    let n = data.modality_names().len();
    let models = 1 + cfg
        .methods
        .iter()
        .map(|m| if *m == Method::Sf { (1 << n) - 1 } else { 1 })
        .sum::<usize>();
    let device = &crate::device::cpu_device().device;
    let f = match data {
        LoadedData::Classification(d) => {
            let source = d.source.as_ref();
            let net = crate::model::MultimodalNet::new(
                source.modalities(),
                source.num_classes(),
                &cfg.model,
                true,
                device,
            )?;
            footprint(
                cfg,
                source.modalities(),
                source.len(),
                net.num_params(),
                models,
            )
        }
        LoadedData::Segmentation(d) => {
            use crate::task::Task;
            let source = d.source.source.as_ref();
            let net = crate::task::Segmentation::build_net(cfg, &d.source, true, device)?;
            let stored = match source.scene(0) {
                Ok(s) => [s.height, s.width],
                Err(_) => source.eval_size(),
            };
            let [th, tw] = source.train_size();
            let [eh, ew] = source.eval_size();
            seg_footprint(
                cfg,
                source.num_classes(),
                source.len(),
                stored,
                [th.max(eh), tw.max(ew)],
                net.num_params(),
                models,
            )
        }
    };
    check_browser_fit(&f, &BrowserLimits::default())
}

/// Refuses synthetic anti-spoofing data a browser tab could not hold: its generated images
/// (RGB, depth and IR, 5 channels of f32 per pixel) against [`BrowserLimits::memory_bytes`].
/// Other sources are not generated in memory and pass.
pub fn check_data_fits(data: &crate::config::DataConfig, limits: &BrowserLimits) -> Result<()> {
    let Some(s) = data.synthetic.as_ref() else {
        return Ok(());
    };
    if data.source != crate::config::DataSource::Synthetic {
        return Ok(());
    }
    let bytes = (s.samples as u64) * 5 * (s.size as u64) * (s.size as u64) * 4;
    if bytes > limits.memory_bytes {
        return Err(CoreError::config(
            "data.synthetic",
            format!(
                "{} samples of {}×{} pixels would take {} MiB, more than the {} MiB a browser page can rely on; lower the samples or the size",
                s.samples,
                s.size,
                s.size,
                bytes >> 20,
                limits.memory_bytes >> 20
            ),
        ));
    }
    Ok(())
}

fn mib(bytes: u64) -> String {
    format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// Refuses `footprint` when it exceeds `limits`, naming what is too big and the setting to
/// lower.
pub fn check_browser_fit(footprint: &Footprint, limits: &BrowserLimits) -> Result<()> {
    if footprint.largest_binding_bytes > limits.max_binding_bytes {
        return Err(CoreError::config(
            "batch_size",
            format!(
                "{} would take {}, more than the {} a WebGPU buffer binding may hold in a browser; lower the batch size or the image size, or use a smaller model.image_preset",
                footprint.largest_binding,
                mib(footprint.largest_binding_bytes),
                mib(limits.max_binding_bytes)
            ),
        ));
    }
    if footprint.memory_bytes() > limits.memory_bytes {
        return Err(CoreError::config(
            "data",
            format!(
                "the data ({}) and the models ({}) would take {}, more than the {} a browser page can rely on; use fewer or smaller samples, or a smaller model",
                mib(footprint.data_bytes),
                mib(footprint.model_bytes),
                mib(footprint.memory_bytes()),
                mib(limits.memory_bytes)
            ),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ImagePreset;

    fn image(name: &str, channels: usize, side: usize) -> ModalitySpec {
        ModalitySpec {
            name: name.into(),
            kind: ModalityKind::Image {
                channels,
                height: side,
                width: side,
            },
        }
    }

    fn config(batch: usize, preset: ImagePreset) -> ExperimentConfig {
        let mut cfg = ExperimentConfig::from_toml(
            crate::configs::SYNTHETIC_ANTISPOOF,
            "synthetic-antispoof.toml",
        )
        .unwrap();
        cfg.teacher.batch_size = batch;
        cfg.student.batch_size = batch;
        cfg.eval.batch_size = batch;
        cfg.model.image_preset = preset;
        cfg
    }

    #[test]
    fn the_largest_binding_is_computed_from_the_shapes() {
        let cfg = config(64, ImagePreset::Paper);
        let f = footprint(&cfg, &[image("rgb", 3, 112)], 100, 1_000, 1);
        // stem 64 × 56 × 56, pool to 28 × 28, im2col 64·9 × 28 × 28, batch 64, f32
        assert_eq!(f.largest_binding_bytes, 64 * 64 * 9 * 28 * 28 * 4);
        assert!(
            f.largest_binding.contains("im2col"),
            "{}",
            f.largest_binding
        );
        assert_eq!(f.data_bytes, 3 * 112 * 112 * 100 * 4);
        assert_eq!(f.model_bytes, 1_000 * 4 * MODEL_COPIES);
    }

    #[test]
    fn the_segmentation_footprint_is_computed_from_the_shapes() {
        let mut cfg =
            ExperimentConfig::from_toml(crate::configs::SCENES_DEMO, "scenes-demo.toml").unwrap();
        cfg.eval.batch_size = 4;
        // small preset: stem 16 channels; batch 8; input 64 × 96
        let f = seg_footprint(&cfg, 7, 240, [64, 96], [64, 96], 1_000, 3);
        assert_eq!(f.largest_binding_bytes, 8 * 16 * 9 * 16 * 24 * 4);
        assert!(
            f.largest_binding.contains("im2col"),
            "{}",
            f.largest_binding
        );
        assert_eq!(f.data_bytes, 240 * 64 * 96 * 9);
        assert_eq!(f.model_bytes, 1_000 * 4 * MODEL_COPIES * 3);
        check_browser_fit(&f, &BrowserLimits::default()).unwrap();
        // the paper network at NYUv2's size does not fit a browser's buffer binding
        cfg.seg_model.preset = crate::model::esanet::SegPreset::Paper;
        cfg.teacher.batch_size = 8;
        let f = seg_footprint(&cfg, 40, 1449, [480, 640], [480, 640], 71_733_544, 3);
        let e = check_browser_fit(&f, &BrowserLimits::default())
            .unwrap_err()
            .to_string();
        assert!(e.contains("batch_size"), "{e}");
    }

    #[test]
    fn a_run_too_big_for_a_browser_is_refused_with_the_setting_to_change() {
        let limits = BrowserLimits::default();
        let small = footprint(
            &config(32, ImagePreset::Small),
            &[image("rgb", 3, 32)],
            1200,
            200_000,
            3,
        );
        check_browser_fit(&small, &limits).unwrap();

        let wide = footprint(
            &config(256, ImagePreset::Paper),
            &[image("rgb", 3, 112)],
            10,
            1_000,
            1,
        );
        let err = check_browser_fit(&wide, &limits).unwrap_err().to_string();
        assert!(
            err.contains("batch_size") && err.contains("128 MiB"),
            "{err}"
        );

        let many = footprint(
            &config(8, ImagePreset::Tiny),
            &[image("rgb", 3, 128)],
            20_000,
            1_000,
            1,
        );
        let err = check_browser_fit(&many, &limits).unwrap_err().to_string();
        assert!(err.contains("data") && err.contains("2048 MiB"), "{err}");
    }
}
