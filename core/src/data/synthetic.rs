//! A synthetic face anti-spoofing set: RGB (3 channels), Depth (1) and IR (1) images of a
//! "face", live (label 1, bona fide) or spoof (label 0, attack), with a configurable cue
//! strength per modality so that strong modalities and weak combinations exist.
//!
//! Every image shows a face-like ellipse at a random position and scale on a noisy background.
//! The cues that separate live from spoof, each scaled by its modality's strength:
//! * **Depth**: a live face is a 3-D bump (brighter toward the centre); a spoof is flat (a photo
//!   or a screen);
//! * **IR**: live skin reflects IR evenly; a spoof (paper, screen) is darker and shows stripes;
//! * **RGB**: spoofs carry a moiré-like high-frequency pattern and a colour cast.
//!
//! Strength 0 removes a modality's cue entirely; 1 makes it obvious.

use super::{InMemoryDataset, ModalityKind, ModalitySpec};
use crate::error::{CoreError, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// Settings of the synthetic anti-spoofing generator.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyntheticConfig {
    /// Number of samples (half live, half spoof).
    pub samples: usize,
    /// Image side in pixels (images are square).
    pub size: usize,
    /// Cue strength of the RGB modality, 0..=1.
    pub rgb_strength: f32,
    /// Cue strength of the Depth modality, 0..=1.
    pub depth_strength: f32,
    /// Cue strength of the IR modality, 0..=1.
    pub ir_strength: f32,
    /// Standard deviation of the pixel noise.
    pub noise: f32,
    /// Seed of the generator.
    pub seed: u64,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        SyntheticConfig {
            samples: 600,
            size: 32,
            rgb_strength: 0.25,
            depth_strength: 0.8,
            ir_strength: 0.4,
            noise: 0.35,
            seed: 0,
        }
    }
}

fn normal(rng: &mut StdRng) -> f32 {
    // Box–Muller
    let u1: f32 = rng.random::<f32>().max(1e-7);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

impl SyntheticConfig {
    /// Checks the settings (field names as in a config's `[data.synthetic]` table).
    pub fn validate(&self) -> Result<()> {
        if self.samples < 2 {
            return Err(CoreError::config(
                "data.synthetic.samples",
                format!("need at least 2 samples, got {}", self.samples),
            ));
        }
        if self.size < 8 || self.size > super::MAX_IMAGE_SIDE {
            return Err(CoreError::config(
                "data.synthetic.size",
                format!(
                    "must be 8..={} px, got {}",
                    super::MAX_IMAGE_SIDE,
                    self.size
                ),
            ));
        }
        for (field, v) in [
            ("data.synthetic.rgb_strength", self.rgb_strength),
            ("data.synthetic.depth_strength", self.depth_strength),
            ("data.synthetic.ir_strength", self.ir_strength),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(CoreError::config(
                    field,
                    format!("must be in 0..=1, got {v}"),
                ));
            }
        }
        if !(self.noise.is_finite() && (0.0..=MAX_NOISE).contains(&self.noise)) {
            return Err(CoreError::config(
                "data.synthetic.noise",
                format!("must be in 0..={MAX_NOISE}, got {}", self.noise),
            ));
        }
        // RGB, depth and IR planes of f32
        super::check_generated_size(
            "data.synthetic.samples",
            self.samples,
            5 * 4 * (self.size * self.size) as u64,
        )
    }
}

/// The largest pixel-noise standard deviation (pixels span about 0..1).
const MAX_NOISE: f32 = 100.0;

/// Generates the dataset (modalities `rgb`, `depth`, `ir`; classes `attack` = 0, `live` = 1).
pub fn generate(cfg: &SyntheticConfig) -> Result<InMemoryDataset> {
    cfg.validate()?;
    let s = cfg.size;
    let px = s * s;
    let mut rng = StdRng::seed_from_u64(cfg.seed);
    let mut rgb = Vec::with_capacity(cfg.samples * 3 * px);
    let mut depth = Vec::with_capacity(cfg.samples * px);
    let mut ir = Vec::with_capacity(cfg.samples * px);
    let mut labels = Vec::with_capacity(cfg.samples);
    for i in 0..cfg.samples {
        let live = i % 2 == 1;
        labels.push(usize::from(live));
        let sign = if live { 1.0 } else { -1.0 };
        let cx = s as f32 * rng.random_range(0.35..0.65);
        let cy = s as f32 * rng.random_range(0.35..0.65);
        let rx = s as f32 * rng.random_range(0.2..0.3);
        let ry = rx * rng.random_range(1.1..1.35);
        let skin = [
            rng.random_range(0.2..0.9f32),
            rng.random_range(0.1..0.7f32),
            rng.random_range(0.0..0.5f32),
        ];
        let stripe_freq = rng.random_range(0.6..1.2f32);
        let stripe_phase = rng.random_range(0.0..std::f32::consts::TAU);
        let mut face = vec![0f32; px];
        for y in 0..s {
            for x in 0..s {
                let dx = (x as f32 - cx) / rx;
                let dy = (y as f32 - cy) / ry;
                let r2 = dx * dx + dy * dy;
                face[y * s + x] = if r2 < 1.0 { (1.0 - r2).sqrt() } else { 0.0 };
            }
        }
        // RGB: face colour, plus (spoof) a colour cast and a moiré pattern.
        for (c, tone) in skin.iter().enumerate() {
            for y in 0..s {
                for x in 0..s {
                    let f = face[y * s + x];
                    let inside = f32::from(f > 0.0);
                    let moire = ((x as f32 * 2.1 + y as f32 * 1.3) * stripe_freq + c as f32).sin();
                    let cue = if live {
                        0.0
                    } else {
                        cfg.rgb_strength * inside * (0.6 * moire + if c == 2 { 0.5 } else { 0.0 })
                    };
                    rgb.push(inside * tone + cue + cfg.noise * normal(&mut rng));
                }
            }
        }
        // Depth: live = curved bump, spoof = flat plate; both with noise.
        let plate = rng.random_range(0.3..0.6f32);
        for &f in &face {
            let inside = f32::from(f > 0.0);
            let shape = inside * (plate + sign * cfg.depth_strength * (f - 0.5));
            depth.push(shape + cfg.noise * normal(&mut rng));
        }
        // IR: live skin even, spoof striped.
        let level = rng.random_range(0.3..0.8f32);
        for y in 0..s {
            for x in 0..s {
                let f = face[y * s + x];
                let inside = f32::from(f > 0.0);
                let stripes = ((y as f32) * stripe_freq * 1.7 + stripe_phase).sin();
                // spoof material reflects IR less and shows stripes
                let cue = if live {
                    0.0
                } else {
                    cfg.ir_strength * (0.6 * stripes - 0.4)
                };
                ir.push(inside * (level + cue) + cfg.noise * normal(&mut rng));
            }
        }
    }
    let img = |channels| ModalityKind::Image {
        channels,
        height: s,
        width: s,
    };
    let ds = InMemoryDataset {
        name: "synthetic-antispoof".into(),
        modalities: vec![
            ModalitySpec {
                name: "rgb".into(),
                kind: img(3),
            },
            ModalitySpec {
                name: "depth".into(),
                kind: img(1),
            },
            ModalitySpec {
                name: "ir".into(),
                kind: img(1),
            },
        ],
        classes: 2,
        class_names: Some(vec!["attack".into(), "live".into()]),
        features: vec![rgb, depth, ir],
        labels,
    };
    ds.validate()?;
    Ok(ds)
}
