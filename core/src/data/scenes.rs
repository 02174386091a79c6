//! Synthetic RGB-D scenes for segmentation without a download: a room seen by an RGB camera and
//! a depth sensor, labelled per pixel, built so that the modalities are complementary:
//!
//! | class | colour | depth |
//! |---|---|---|
//! | `wall` | grey-beige | a far vertical plane |
//! | `floor` | brown | a plane rising toward the camera at the bottom |
//! | `box` | **the wall's colour** | stands out of the wall (nearer) |
//! | `step` | **the floor's colour** | raised above the floor |
//! | `poster` | a saturated colour | **on the wall plane** |
//! | `rug` | a saturated colour | **on the floor plane** |
//! | `lamp` | yellow | a near blob |
//!
//! So `box` and `step` can only be told apart from their surroundings by depth, `poster` and
//! `rug` only by colour, and wall, floor and lamp by either: RGB alone, depth alone and RGB-D
//! differ clearly in mIoU. Each modality has its own noise, and the depth sensor drops readings
//! (0, as real sensors do) with a configurable probability. Pixels at the scene border are void
//! (label 0), as NYUv2's unlabelled border.

use super::rgbd::{DepthStats, Label, RgbdScene, SegAugment, SegSource};
use crate::error::{CoreError, Result};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// The classes, label `k + 1` for index `k`.
pub const SCENE_CLASSES: [&str; 7] = ["wall", "floor", "box", "step", "poster", "rug", "lamp"];

/// Settings of the scene generator (the `[data.scenes]` table).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, Hash)]
#[serde(deny_unknown_fields)]
pub struct ScenesConfig {
    /// Number of scenes.
    #[serde(default = "default_scenes")]
    pub scenes: usize,
    /// Height of a scene in pixels (a multiple of 32).
    #[serde(default = "default_height")]
    pub height: usize,
    /// Width of a scene in pixels (a multiple of 32).
    #[serde(default = "default_width")]
    pub width: usize,
    /// Standard deviation of the RGB noise, in 0..255 units.
    #[serde(default = "default_rgb_noise")]
    pub rgb_noise: u32,
    /// Standard deviation of the depth noise in mm.
    #[serde(default = "default_depth_noise")]
    pub depth_noise: u32,
    /// Share of depth readings the sensor drops (set to 0), in percent.
    #[serde(default = "default_dropouts")]
    pub depth_dropout_percent: u32,
    /// Strength of the colour-only cue, in percent: how far the poster's and the rug's colours
    /// are from the wall's and the floor's (0 = the same colour: only the lamp tells RGB apart).
    #[serde(default = "default_cue")]
    pub rgb_cue_percent: u32,
    /// Strength of the depth-only cue, in percent: how far the box stands out of the wall and
    /// the step out of the floor (0 = flush: only the lamp tells depth apart).
    #[serde(default = "default_cue")]
    pub depth_cue_percent: u32,
    /// Seed of the generator.
    #[serde(default)]
    pub seed: u64,
}

fn default_scenes() -> usize {
    240
}
fn default_height() -> usize {
    64
}
fn default_width() -> usize {
    96
}
fn default_rgb_noise() -> u32 {
    12
}
fn default_depth_noise() -> u32 {
    60
}
fn default_cue() -> u32 {
    100
}
fn default_dropouts() -> u32 {
    3
}

impl Default for ScenesConfig {
    fn default() -> Self {
        ScenesConfig {
            scenes: default_scenes(),
            height: default_height(),
            width: default_width(),
            rgb_noise: default_rgb_noise(),
            depth_noise: default_depth_noise(),
            depth_dropout_percent: default_dropouts(),
            rgb_cue_percent: default_cue(),
            depth_cue_percent: default_cue(),
            seed: 0,
        }
    }
}

impl ScenesConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<()> {
        if self.scenes < 3 {
            return Err(CoreError::config(
                "data.scenes.scenes",
                format!(
                    "need at least 3 scenes (train, val, test), got {}",
                    self.scenes
                ),
            ));
        }
        crate::data::check_input_size(self.height, self.width, "data.scenes.height")?;
        // RGB (3 bytes), depth (f32) and a label byte per pixel
        super::check_generated_size(
            "data.scenes.scenes",
            self.scenes,
            8 * (self.height * self.width) as u64,
        )?;
        for (field, value, max) in [
            ("data.scenes.rgb_noise", self.rgb_noise, 255),
            ("data.scenes.depth_noise", self.depth_noise, 10_000),
        ] {
            if value > max {
                return Err(CoreError::config(
                    field,
                    format!("must be at most {max}, got {value}"),
                ));
            }
        }
        for (field, value) in [
            (
                "data.scenes.depth_dropout_percent",
                self.depth_dropout_percent,
            ),
            ("data.scenes.rgb_cue_percent", self.rgb_cue_percent),
            ("data.scenes.depth_cue_percent", self.depth_cue_percent),
        ] {
            if value > 100 {
                return Err(CoreError::config(
                    field,
                    format!("must be at most 100, got {value}"),
                ));
            }
        }
        Ok(())
    }
}

/// Generated scenes, all held in memory.
#[derive(Clone, Debug)]
pub struct SyntheticScenes {
    scenes: Vec<RgbdScene>,
    size: [usize; 2],
}

fn normal(rng: &mut StdRng) -> f32 {
    let u1: f32 = rng.random::<f32>().max(1e-7);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// An axis-aligned rectangle `[top, bottom) × [left, right)`.
#[derive(Clone, Copy)]
struct Rect {
    top: usize,
    bottom: usize,
    left: usize,
    right: usize,
}

impl Rect {
    fn contains(&self, y: usize, x: usize) -> bool {
        (self.top..self.bottom).contains(&y) && (self.left..self.right).contains(&x)
    }
}

/// A rectangle inside `rows`, between `min` and `max` pixels tall and up to twice `max` wide,
/// clear of the border columns.
fn random_rect(
    rng: &mut StdRng,
    rows: std::ops::Range<usize>,
    w: usize,
    min: usize,
    max: usize,
) -> Rect {
    let avail = rows.end.saturating_sub(rows.start).max(1);
    let lo = min.min(avail);
    let hh = rng.random_range(lo..=max.clamp(lo, avail));
    let ww = rng.random_range(min.min(w - 2)..=(2 * max).clamp(min.min(w - 2), w - 2));
    let top = rows.start + rng.random_range(0..=avail - hh);
    let left = 1 + rng.random_range(0..=(w - 2 - ww));
    Rect {
        top,
        bottom: top + hh,
        left,
        right: left + ww,
    }
}

/// Generates one scene.
fn scene(cfg: &ScenesConfig, rng: &mut StdRng) -> RgbdScene {
    let (h, w) = (cfg.height, cfg.width);
    // the horizon: wall above, floor below
    let horizon = rng.random_range(h * 2 / 5..h * 3 / 5);
    let wall_depth = rng.random_range(3500.0f32..5000.0);
    let mut colour = |ranges: [std::ops::Range<u8>; 3]| ranges.map(|r| rng.random_range(r));
    let wall_rgb = colour([150..190, 140..175, 120..150]);
    let floor_rgb = colour([100..130, 65..90, 40..60]);
    let poster_rgb = colour([20..80, 90..160, 170..230]);
    let rug_rgb = colour([160..220, 30..70, 60..110]);
    let lamp_rgb = [230u8, 210, 60];
    let min_side = (h / 8).max(3);
    let boxr = random_rect(rng, 2..horizon, w, min_side, h / 3);
    let poster = random_rect(rng, 2..horizon, w, min_side, h / 3);
    let step = random_rect(rng, horizon + 1..h - 1, w, min_side, h / 4);
    let rug = random_rect(rng, horizon + 1..h - 1, w, min_side, h / 4);
    let lamp_c = (
        rng.random_range(h / 6..h - h / 6) as f32,
        rng.random_range(w / 6..w - w / 6) as f32,
    );
    let lamp_r = rng.random_range(h as f32 / 14.0..h as f32 / 8.0).max(2.0);
    let depth_cue = cfg.depth_cue_percent as f32 / 100.0;
    let box_out = rng.random_range(700.0f32..1400.0) * depth_cue;
    let step_up = rng.random_range(500.0f32..900.0) * depth_cue;
    // the painted patches' colours, moved toward their surface's as the colour cue weakens
    let rgb_cue = cfg.rgb_cue_percent as f32 / 100.0;
    let toward = |base: [u8; 3], patch: [u8; 3]| {
        let mut out = base;
        for c in 0..3 {
            let (b, p) = (base[c] as f32, patch[c] as f32);
            out[c] = (b + (p - b) * rgb_cue).round().clamp(0.0, 255.0) as u8;
        }
        out
    };
    let poster_rgb = toward(wall_rgb, poster_rgb);
    let rug_rgb = toward(floor_rgb, rug_rgb);

    let n = h * w;
    let mut rgb = Vec::with_capacity(3 * n);
    let mut depth = Vec::with_capacity(n);
    let mut labels = Vec::with_capacity(n);
    for y in 0..h {
        // the floor plane comes nearer toward the bottom of the image
        let t = (y.saturating_sub(horizon)) as f32 / (h - horizon).max(1) as f32;
        let floor_depth = wall_depth * (1.0 - 0.7 * t);
        for x in 0..w {
            let on_floor = y >= horizon;
            let (mut class, mut colour, mut d) = if on_floor {
                (2u8, floor_rgb, floor_depth)
            } else {
                (1u8, wall_rgb, wall_depth)
            };
            // painted patches: colour only, the surface's depth
            if !on_floor && poster.contains(y, x) {
                class = 5;
                colour = poster_rgb;
            }
            if on_floor && rug.contains(y, x) {
                class = 6;
                colour = rug_rgb;
            }
            // geometry in the surface's colour: depth only
            if !on_floor && boxr.contains(y, x) {
                class = 3;
                colour = wall_rgb;
                d = wall_depth - box_out;
            }
            if on_floor && step.contains(y, x) {
                class = 4;
                colour = floor_rgb;
                d = floor_depth - step_up;
            }
            // the lamp: both cues
            let (dy, dx) = (y as f32 - lamp_c.0, x as f32 - lamp_c.1);
            let r2 = (dy * dy + dx * dx) / (lamp_r * lamp_r);
            if r2 <= 1.0 {
                class = 7;
                colour = lamp_rgb;
                d = 1200.0 + 300.0 * r2;
            }
            if y == 0 || x == 0 || y == h - 1 || x == w - 1 {
                class = 0;
            }
            for c in colour {
                let v = c as f32 + cfg.rgb_noise as f32 * normal(rng);
                rgb.push(v.round().clamp(0.0, 255.0) as u8);
            }
            let dropped = rng.random_range(0..100) < cfg.depth_dropout_percent;
            depth.push(if dropped {
                0.0
            } else {
                (d + cfg.depth_noise as f32 * normal(rng)).max(1.0)
            });
            labels.push(Label::from(class));
        }
    }
    RgbdScene {
        height: h,
        width: w,
        rgb,
        depth,
        labels,
    }
}

impl SyntheticScenes {
    /// Generates the scenes `cfg` describes.
    pub fn generate(cfg: &ScenesConfig) -> Result<Self> {
        cfg.validate()?;
        let mut rng = StdRng::seed_from_u64(cfg.seed);
        let scenes = (0..cfg.scenes).map(|_| scene(cfg, &mut rng)).collect();
        Ok(SyntheticScenes {
            scenes,
            size: [cfg.height, cfg.width],
        })
    }
}

impl SegSource for SyntheticScenes {
    fn name(&self) -> &str {
        "synthetic RGB-D scenes"
    }
    fn num_classes(&self) -> usize {
        SCENE_CLASSES.len()
    }
    fn class_names(&self) -> Vec<String> {
        SCENE_CLASSES.iter().map(|s| s.to_string()).collect()
    }
    fn len(&self) -> usize {
        self.scenes.len()
    }
    fn scene(&self, i: usize) -> Result<RgbdScene> {
        self.scenes.get(i).cloned().ok_or_else(|| {
            CoreError::data(
                self.name(),
                format!("scene {i} requested, there are {}", self.scenes.len()),
            )
        })
    }
    fn depth_stats(&self) -> DepthStats {
        DepthStats::NYUV2
    }
    fn train_size(&self) -> [usize; 2] {
        self.size
    }
    fn eval_size(&self) -> [usize; 2] {
        self.size
    }
    fn augment(&self) -> SegAugment {
        SegAugment::default()
    }
}
