//! RGB-D semantic segmentation data (spec §2): a raw scene as a sensor and an annotator give it
//! (8-bit RGB, depth in the dataset's unit with 0 = no reading, 8-bit labels with 0 = void), the
//! [`SegSource`] trait every segmentation dataset implements (synthetic scenes, NYUv2,
//! Cityscapes), and the preprocessing and augmentation they share:
//!
//! * training: random rescale (bilinear RGB, nearest depth and labels), random crop to the
//!   training size, HSV jitter (h, s × U(0.9, 1.1), v + U(−25, 25)), horizontal flip with
//!   probability ½;
//! * always: RGB / 255 then ImageNet mean/std; depth `(d − μ)/σ` with missing readings (0)
//!   kept at 0;
//! * evaluation: no augmentation; the scene is used at its stored size.

use crate::error::{CoreError, Result};
use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

/// ImageNet channel means (RGB in 0..1).
pub const IMAGENET_MEAN: [f32; 3] = [0.485, 0.456, 0.406];
/// ImageNet channel standard deviations.
pub const IMAGENET_STD: [f32; 3] = [0.229, 0.224, 0.225];

/// A pixel's label: 0 = void, classes `1..=classes` (8-bit label files, and 16-bit ones such as
/// NYUv2's `labels_894`).
pub type Label = u16;

/// One RGB-D scene as stored: `height × width` pixels, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct RgbdScene {
    /// Height in pixels.
    pub height: usize,
    /// Width in pixels.
    pub width: usize,
    /// RGB, interleaved (`h, w, c`), 0..=255.
    pub rgb: Vec<u8>,
    /// Depth in the dataset's unit (NYUv2: mm), 0 = no reading.
    pub depth: Vec<f32>,
    /// Labels, 0 = void, classes `1..=classes`.
    pub labels: Vec<Label>,
}

impl RgbdScene {
    /// Checks that the three planes have `height × width` pixels.
    pub fn validate(&self, origin: &str) -> Result<()> {
        let n = self.height * self.width;
        if n == 0 {
            return Err(CoreError::data(origin, "the scene has no pixels"));
        }
        for (what, len) in [
            ("rgb", self.rgb.len() / 3),
            ("depth", self.depth.len()),
            ("labels", self.labels.len()),
        ] {
            if len != n {
                return Err(CoreError::data(
                    origin,
                    format!(
                        "{what} has {len} pixels, the scene is {}×{}",
                        self.height, self.width
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Depth normalisation `(d − mean)/std`, zeros kept (spec §2).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct DepthStats {
    /// μ (NYUv2 2841.95 mm).
    pub mean: f32,
    /// σ (NYUv2 1417.26 mm).
    pub std: f32,
}

impl DepthStats {
    /// NYUv2's depth statistics (mm).
    pub const NYUV2: DepthStats = DepthStats {
        mean: 2841.95,
        std: 1417.26,
    };
    /// Cityscapes' raw depth statistics.
    pub const CITYSCAPES: DepthStats = DepthStats {
        mean: 31.716,
        std: 38.703,
    };
}

/// How a network's RGB-D inputs are prepared in evaluation: what a deployment bundle carries so
/// that new scenes are seen as the test scenes were.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RgbdPreprocessing {
    /// `[h, w]` the network was trained on (its crops).
    pub train_size: [usize; 2],
    /// `[h, w]` scenes are resized to before the network (logits go back to the scene's size).
    pub eval_size: [usize; 2],
    /// Depth normalisation `(d − μ)/σ`, zeros kept; RGB uses ImageNet's mean and std.
    pub depth_stats: DepthStats,
}

impl RgbdPreprocessing {
    /// The evaluation preprocessing of `source`'s scenes.
    pub fn of(source: &dyn SegSource) -> Self {
        RgbdPreprocessing {
            train_size: source.train_size(),
            eval_size: source.eval_size(),
            depth_stats: source.depth_stats(),
        }
    }
}

/// Training-time augmentation settings (spec §2).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegAugment {
    /// Random rescale range (NYUv2 [1.0, 1.4], Cityscapes [0.5, 2.0]).
    pub scale: [f32; 2],
    /// Apply the HSV jitter.
    pub hsv: bool,
    /// Apply the random horizontal flip.
    pub flip: bool,
}

impl Default for SegAugment {
    fn default() -> Self {
        SegAugment {
            scale: [1.0, 1.4],
            hsv: true,
            flip: true,
        }
    }
}

/// One preprocessed sample ready for a batch.
#[derive(Clone, Debug, PartialEq)]
pub struct SegSample {
    /// `[3, H, W]` normalised RGB.
    pub rgb: Vec<f32>,
    /// `[1, H, W]` normalised depth.
    pub depth: Vec<f32>,
    /// `[h, w]` labels, 0 = void: the input's size in training, the stored size in evaluation
    /// (the logits are upsampled to it).
    pub labels: Vec<Label>,
    /// `[H, W]` of the inputs.
    pub size: [usize; 2],
    /// `[h, w]` of the labels.
    pub label_size: [usize; 2],
}

/// Anything that yields RGB-D segmentation scenes by index.
pub trait SegSource: Send + Sync {
    /// Dataset name, used in messages.
    fn name(&self) -> &str;
    /// Number of classes (labels `1..=classes`; 0 is void).
    fn num_classes(&self) -> usize;
    /// Class names, index `k` for label `k + 1`.
    fn class_names(&self) -> Vec<String> {
        (1..=self.num_classes()).map(|c| c.to_string()).collect()
    }
    /// Number of scenes.
    fn len(&self) -> usize;
    /// Whether there are no scenes.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The raw scene `i`.
    fn scene(&self, i: usize) -> Result<RgbdScene>;
    /// The depth normalisation.
    fn depth_stats(&self) -> DepthStats;
    /// `[height, width]` of training crops (every scene is at least this large once rescaled).
    fn train_size(&self) -> [usize; 2];
    /// `[height, width]` of the network input in evaluation. A scene stored larger is resized
    /// to it (bilinear RGB, nearest depth) while its labels keep their stored size.
    fn eval_size(&self) -> [usize; 2];
    /// Training augmentation.
    fn augment(&self) -> SegAugment {
        SegAugment::default()
    }
}

/// Per-class pixel statistics of a split (index 0 = void): how many pixels carry each label,
/// and how many pixels the scenes that contain it have in all (for median frequency).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassPixelCounts {
    /// Pixels per label.
    pub pixels: Vec<u64>,
    /// Per label, the pixels of the scenes where it appears.
    pub scene_pixels: Vec<u64>,
}

/// What a split's depth maps hold: the range of the readings and how many pixels have none.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DepthSummary {
    /// Smallest reading (0 = missing excluded); `None` when every pixel is missing.
    pub min: Option<f32>,
    /// Largest reading.
    pub max: Option<f32>,
    /// Pixels without a reading (0).
    pub missing: u64,
    /// All pixels.
    pub pixels: u64,
}

impl DepthSummary {
    /// The share of pixels without a reading, 0..=1 (0 for no pixels).
    pub fn missing_share(&self) -> f64 {
        if self.pixels == 0 {
            0.0
        } else {
            self.missing as f64 / self.pixels as f64
        }
    }
}

/// One pass over a split's scenes: its class pixel counts and its depth.
#[derive(Clone, Debug, PartialEq)]
pub struct SplitScan {
    /// Pixels per label.
    pub classes: ClassPixelCounts,
    /// The depth readings.
    pub depth: DepthSummary,
}

/// Counts the labels of the scenes `indices`; a label above the dataset's classes is an error
/// naming the scene.
pub fn class_pixel_counts(source: &dyn SegSource, indices: &[usize]) -> Result<ClassPixelCounts> {
    Ok(scan_split(source, indices)?.classes)
}

/// Reads the scenes `indices` once: their class pixel counts (a label above the dataset's
/// classes is an error naming the scene) and the range and missing share of their depth.
pub fn scan_split(source: &dyn SegSource, indices: &[usize]) -> Result<SplitScan> {
    let n = source.num_classes() + 1;
    let mut counts = ClassPixelCounts {
        pixels: vec![0; n],
        scene_pixels: vec![0; n],
    };
    let mut depth = DepthSummary {
        min: None,
        max: None,
        missing: 0,
        pixels: 0,
    };
    for &i in indices {
        let scene = source.scene(i)?;
        let mut here = vec![0u64; n];
        for &l in &scene.labels {
            let l = l as usize;
            if l >= n {
                return Err(CoreError::data(
                    source.name(),
                    format!(
                        "scene {i} has label {l}, above the {} classes",
                        source.num_classes()
                    ),
                ));
            }
            here[l] += 1;
        }
        let total = scene.labels.len() as u64;
        for (k, c) in here.into_iter().enumerate() {
            counts.pixels[k] += c;
            if c > 0 {
                counts.scene_pixels[k] += total;
            }
        }
        depth.pixels += scene.depth.len() as u64;
        for &d in &scene.depth {
            if d > 0.0 {
                depth.min = Some(depth.min.map_or(d, |m| m.min(d)));
                depth.max = Some(depth.max.map_or(d, |m| m.max(d)));
            } else {
                depth.missing += 1;
            }
        }
    }
    Ok(SplitScan {
        classes: counts,
        depth,
    })
}

/// ESANet's median-frequency class weights (void excluded): `f_c = pixels_c / scene_pixels_c`,
/// `w_c = median(f) / f_c`. A class absent from the split gets weight 0 and is left out of the
/// median (the official code would produce NaN).
pub fn median_frequency_weights(counts: &ClassPixelCounts) -> Vec<f32> {
    let freq: Vec<f64> = counts.pixels[1..]
        .iter()
        .zip(&counts.scene_pixels[1..])
        .map(|(&p, &s)| if s > 0 { p as f64 / s as f64 } else { 0.0 })
        .collect();
    let mut present: Vec<f64> = freq.iter().copied().filter(|f| *f > 0.0).collect();
    present.sort_by(f64::total_cmp);
    let median = match present.len() {
        0 => return vec![1.0; freq.len()],
        n if n % 2 == 1 => present[n / 2],
        n => (present[n / 2 - 1] + present[n / 2]) / 2.0,
    };
    freq.iter()
        .map(|&f| if f > 0.0 { (median / f) as f32 } else { 0.0 })
        .collect()
}

/// Preprocesses scene `i` of `source`: with `rng`, the training augmentation and a crop to
/// [`SegSource::train_size`]; without, the inputs at [`SegSource::eval_size`] and the labels at
/// the stored size.
pub fn load_seg_sample(
    source: &dyn SegSource,
    i: usize,
    rng: Option<&mut StdRng>,
) -> Result<SegSample> {
    let origin = || format!("{} scene {i}", source.name());
    let scene = source.scene(i)?;
    scene.validate(&origin())?;
    match rng {
        Some(rng) => {
            let [h, w] = source.train_size();
            let scene = augment_scene(scene, [h, w], source.augment(), rng);
            Ok(normalize(&scene, source.depth_stats()))
        }
        None => {
            let [h, w] = source.eval_size();
            if scene.height < h || scene.width < w {
                return Err(CoreError::data(
                    origin(),
                    format!(
                        "is {}×{}, smaller than the evaluation size {h}×{w}",
                        scene.height, scene.width
                    ),
                ));
            }
            let labels = scene.labels.clone();
            let label_size = [scene.height, scene.width];
            let input = resize(&scene, h, w);
            let mut sample = normalize(&input, source.depth_stats());
            sample.labels = labels;
            sample.label_size = label_size;
            Ok(sample)
        }
    }
}

/// RGB / 255 with ImageNet mean/std (CHW), depth `(d − μ)/σ` with zeros kept.
pub fn normalize(scene: &RgbdScene, stats: DepthStats) -> SegSample {
    let n = scene.height * scene.width;
    let mut rgb = vec![0f32; 3 * n];
    for p in 0..n {
        for c in 0..3 {
            let v = scene.rgb[3 * p + c] as f32 / 255.0;
            rgb[c * n + p] = (v - IMAGENET_MEAN[c]) / IMAGENET_STD[c];
        }
    }
    let depth = scene
        .depth
        .iter()
        .map(|&d| {
            if d == 0.0 {
                0.0
            } else {
                (d - stats.mean) / stats.std
            }
        })
        .collect();
    SegSample {
        rgb,
        depth,
        labels: scene.labels.clone(),
        size: [scene.height, scene.width],
        label_size: [scene.height, scene.width],
    }
}

/// Rescale → crop to `size` → HSV jitter → flip, as ESANet's training pipeline.
pub fn augment_scene(
    scene: RgbdScene,
    size: [usize; 2],
    aug: SegAugment,
    rng: &mut StdRng,
) -> RgbdScene {
    let [lo, hi] = aug.scale;
    let s = if hi > lo {
        rng.random_range(lo..hi)
    } else {
        lo
    };
    // never smaller than the crop
    let h = ((scene.height as f32 * s).round() as usize).max(size[0]);
    let w = ((scene.width as f32 * s).round() as usize).max(size[1]);
    let mut scene = resize(&scene, h, w);
    let top = rng.random_range(0..=h - size[0]);
    let left = rng.random_range(0..=w - size[1]);
    scene = crop(&scene, top, left, size);
    if aug.hsv {
        let hf = rng.random_range(0.9f32..1.1);
        let sf = rng.random_range(0.9f32..1.1);
        let vd = rng.random_range(-25f32..25.0);
        hsv_jitter(&mut scene.rgb, hf, sf, vd);
    }
    if aug.flip && rng.random_bool(0.5) {
        scene = flip(&scene);
    }
    scene
}

/// Resizes: RGB bilinearly (half-pixel centres, as OpenCV), depth and labels by nearest
/// neighbour.
pub fn resize(scene: &RgbdScene, h: usize, w: usize) -> RgbdScene {
    if (h, w) == (scene.height, scene.width) {
        return scene.clone();
    }
    let (sh, sw) = (scene.height, scene.width);
    let ry = sh as f32 / h as f32;
    let rx = sw as f32 / w as f32;
    let mut rgb = vec![0u8; 3 * h * w];
    let mut depth = vec![0f32; h * w];
    let mut labels: Vec<Label> = vec![0; h * w];
    for y in 0..h {
        let fy = ((y as f32 + 0.5) * ry - 0.5).clamp(0.0, (sh - 1) as f32);
        let y0 = fy.floor() as usize;
        let y1 = (y0 + 1).min(sh - 1);
        let wy = fy - y0 as f32;
        let ny = ((y as f32 * ry) as usize).min(sh - 1);
        for x in 0..w {
            let fx = ((x as f32 + 0.5) * rx - 0.5).clamp(0.0, (sw - 1) as f32);
            let x0 = fx.floor() as usize;
            let x1 = (x0 + 1).min(sw - 1);
            let wx = fx - x0 as f32;
            for c in 0..3 {
                let at = |yy: usize, xx: usize| scene.rgb[3 * (yy * sw + xx) + c] as f32;
                let v = (1.0 - wy) * ((1.0 - wx) * at(y0, x0) + wx * at(y0, x1))
                    + wy * ((1.0 - wx) * at(y1, x0) + wx * at(y1, x1));
                rgb[3 * (y * w + x) + c] = v.round().clamp(0.0, 255.0) as u8;
            }
            let nx = ((x as f32 * rx) as usize).min(sw - 1);
            depth[y * w + x] = scene.depth[ny * sw + nx];
            labels[y * w + x] = scene.labels[ny * sw + nx];
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

/// The `size` window at (`top`, `left`).
pub fn crop(scene: &RgbdScene, top: usize, left: usize, size: [usize; 2]) -> RgbdScene {
    let [h, w] = size;
    let sw = scene.width;
    let mut out = RgbdScene {
        height: h,
        width: w,
        rgb: Vec::with_capacity(3 * h * w),
        depth: Vec::with_capacity(h * w),
        labels: Vec::with_capacity(h * w),
    };
    for y in top..top + h {
        let row = y * sw + left;
        out.rgb
            .extend_from_slice(&scene.rgb[3 * row..3 * (row + w)]);
        out.depth.extend_from_slice(&scene.depth[row..row + w]);
        out.labels.extend_from_slice(&scene.labels[row..row + w]);
    }
    out
}

/// Mirrors the scene left to right.
pub fn flip(scene: &RgbdScene) -> RgbdScene {
    let (h, w) = (scene.height, scene.width);
    let mut out = scene.clone();
    for y in 0..h {
        for x in 0..w {
            let (d, s) = (y * w + x, y * w + (w - 1 - x));
            out.depth[d] = scene.depth[s];
            out.labels[d] = scene.labels[s];
            out.rgb[3 * d..3 * d + 3].copy_from_slice(&scene.rgb[3 * s..3 * s + 3]);
        }
    }
    out
}

/// HSV jitter in place: hue and saturation scaled, value shifted (0..255 scale), as ESANet.
pub fn hsv_jitter(rgb: &mut [u8], hue_factor: f32, sat_factor: f32, value_shift: f32) {
    for px in rgb.chunks_exact_mut(3) {
        let [r, g, b] = [px[0], px[1], px[2]].map(|v| v as f32 / 255.0);
        let max = r.max(g).max(b);
        let min = r.min(g).min(b);
        let delta = max - min;
        let mut hue = if delta == 0.0 {
            0.0
        } else if max == r {
            60.0 * ((g - b) / delta).rem_euclid(6.0)
        } else if max == g {
            60.0 * ((b - r) / delta + 2.0)
        } else {
            60.0 * ((r - g) / delta + 4.0)
        };
        let sat = if max == 0.0 { 0.0 } else { delta / max };
        hue = (hue * hue_factor).rem_euclid(360.0);
        let sat = (sat * sat_factor).clamp(0.0, 1.0);
        let val = (max * 255.0 + value_shift).clamp(0.0, 255.0) / 255.0;
        let c = val * sat;
        let x = c * (1.0 - ((hue / 60.0).rem_euclid(2.0) - 1.0).abs());
        let m = val - c;
        let (r1, g1, b1) = match (hue / 60.0) as u32 {
            0 => (c, x, 0.0),
            1 => (x, c, 0.0),
            2 => (0.0, c, x),
            3 => (0.0, x, c),
            4 => (x, 0.0, c),
            _ => (c, 0.0, x),
        };
        for (dst, v) in px.iter_mut().zip([r1, g1, b1]) {
            *dst = ((v + m) * 255.0).round().clamp(0.0, 255.0) as u8;
        }
    }
}
