//! Image datasets read lazily from disk: the CASIA-SURF list layout and the CeFA folder layout
//! (spec §1.9), with the official preprocessing and training augmentation (spec §1.4).
//!
//! * **CASIA-SURF**: a list file per split, each line `rgb_relpath depth_relpath ir_relpath label`
//!   separated by single spaces, paths relative to the dataset root, label 1 = bona fide.
//! * **CeFA**: `root/<RACE>/<RACE>-<ID>/<video>/{profile,depth,ir}/<frames>`, the video named
//!   `r_iii_d_s_a`; a [`CefaProtocol`] selects the videos of each split; label 0 = real (PAI 1),
//!   1 = attack.
//!
//! Train: resize to `train_resize` (144), random rotation in ±30° on the official canvas, random
//! `size` (112) crop, horizontal flip with p = 0.5 — one geometric draw shared by every modality of
//! the sample; val/test: resize to `size`. Then `(x − 127.5) / 128`.

use super::{ModalityKind, ModalitySpec, MultimodalSource};
use crate::error::{CoreError, Result};
use image::imageops::FilterType;
use rand::Rng;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Settings of an image-list dataset (the `[images]` table of a manifest).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageListConfig {
    /// Dataset root, relative to the manifest's folder.
    #[serde(default = "default_root")]
    pub root: PathBuf,
    /// CASIA-SURF: training list file, relative to the root.
    #[serde(default)]
    pub train_list: Option<PathBuf>,
    /// CASIA-SURF: validation list file, relative to the root.
    #[serde(default)]
    pub val_list: Option<PathBuf>,
    /// CASIA-SURF: test list file, relative to the root.
    #[serde(default)]
    pub test_list: Option<PathBuf>,
    /// CeFA: the protocol selecting each split's videos (default `race_prot_rdi_4@5`).
    #[serde(default)]
    pub cefa_protocol: Option<CefaProtocol>,
    /// Network input side (official: 112).
    #[serde(default = "default_size")]
    pub size: usize,
    /// Side the training images are resized to before rotation and cropping (official: 144).
    #[serde(default = "default_train_resize")]
    pub train_resize: usize,
    /// Channels per modality: 3 reads every modality as 3-channel (depth and IR replicated, as
    /// the official code does); 1 reads grayscale.
    #[serde(default = "default_channels")]
    pub channels: usize,
    /// Largest rotation angle of the training augmentation, in degrees.
    #[serde(default = "default_rotation")]
    pub max_rotation_deg: i32,
}

fn default_root() -> PathBuf {
    PathBuf::from(".")
}
fn default_size() -> usize {
    112
}
fn default_train_resize() -> usize {
    144
}
fn default_channels() -> usize {
    3
}
fn default_rotation() -> i32 {
    30
}

/// One sample: a file per modality and a label.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageSample {
    /// Image files in modality order.
    pub paths: Vec<PathBuf>,
    /// Class label.
    pub label: usize,
}

/// A lazily decoded image dataset (one split).
#[derive(Clone, Debug)]
pub struct ImageListDataset {
    name: String,
    modalities: Vec<ModalitySpec>,
    samples: Vec<ImageSample>,
    classes: usize,
    size: usize,
    train_resize: usize,
    channels: usize,
    max_rotation_deg: i32,
    class_names: Vec<String>,
}

/// Parses a CASIA-SURF list file's text; paths are joined to `root`.
pub fn parse_surf_list(text: &str, file: &str, root: &Path) -> Result<Vec<ImageSample>> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim_end_matches('\r');
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 4 {
            return Err(CoreError::Parse {
                file: file.to_string(),
                line: i + 1,
                column: None,
                message: format!(
                    "expected 4 fields `rgb depth ir label`, found {}: `{line}`",
                    fields.len()
                ),
            });
        }
        let label = match fields[3] {
            "0" => 0,
            "1" => 1,
            other => {
                return Err(CoreError::Parse {
                    file: file.to_string(),
                    line: i + 1,
                    column: Some(4),
                    message: format!("label must be 0 (attack) or 1 (bona fide), got `{other}`"),
                });
            }
        };
        out.push(ImageSample {
            paths: fields[..3].iter().map(|p| root.join(p)).collect(),
            label,
        });
    }
    if out.is_empty() {
        return Err(CoreError::data(file, "the list has no samples"));
    }
    Ok(out)
}

/// One split of a CeFA protocol: which videos it takes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CefaSplitRule {
    /// Race code 1 = AF, 2 = CA, 3 = EA.
    pub race: u32,
    /// Inclusive range of subject ids.
    pub ids: (u32, u32),
    /// Accepted devices (1 rssdk, 2 mp4, 3 bag, 4 MOV).
    pub devices: Vec<u32>,
    /// Accepted sessions (1 indoor, 2 outdoor, 3 random).
    pub sessions: Vec<u32>,
    /// Accepted PAIs (1 real, 2 cloth, 3 photo, 4 screen).
    pub pais: Vec<u32>,
}

/// The three splits of a CeFA protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CefaProtocol {
    /// Training videos.
    pub train: CefaSplitRule,
    /// Development (validation) videos.
    pub dev: CefaSplitRule,
    /// Test videos.
    pub test: CefaSplitRule,
}

impl CefaProtocol {
    /// `race_prot_rdi_4@5`, the protocol the paper uses (spec §1.9).
    pub fn race_prot_rdi_4_5() -> Self {
        let rule = |race, ids, pais: &[u32]| CefaSplitRule {
            race,
            ids,
            devices: vec![1, 3],
            sessions: vec![1, 2],
            pais: pais.to_vec(),
        };
        CefaProtocol {
            train: rule(3, (0, 199), &[1, 4]),
            dev: rule(3, (200, 299), &[1, 4]),
            test: rule(1, (300, 499), &[1, 2]),
        }
    }
}

fn race_name(race: u32) -> Option<&'static str> {
    match race {
        1 => Some("AF"),
        2 => Some("CA"),
        3 => Some("EA"),
        _ => None,
    }
}

fn sorted_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| CoreError::io(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Lists the samples of one CeFA split: every frame of every selected video, the three modality
/// frame lists each sorted by path and paired by position (as the official loader does).
pub fn cefa_samples(root: &Path, rule: &CefaSplitRule) -> Result<Vec<ImageSample>> {
    let race = race_name(rule.race)
        .ok_or_else(|| CoreError::config("cefa.race", format!("unknown race {}", rule.race)))?;
    let race_dir = root.join(race);
    let mut subjects: Vec<PathBuf> = std::fs::read_dir(&race_dir)
        .map_err(|e| CoreError::io(&race_dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    subjects.sort();
    let mut out = Vec::new();
    for subject in subjects {
        let mut videos: Vec<PathBuf> = std::fs::read_dir(&subject)
            .map_err(|e| CoreError::io(&subject, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect();
        videos.sort();
        for video in videos {
            let name = video
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default()
                .to_string();
            let parts: Vec<u32> = name.split('_').filter_map(|p| p.parse().ok()).collect();
            let [r, id, d, s, a] = parts[..] else {
                continue; // not a video folder
            };
            if r != rule.race
                || id < rule.ids.0
                || id > rule.ids.1
                || !rule.devices.contains(&d)
                || !rule.sessions.contains(&s)
                || !rule.pais.contains(&a)
            {
                continue;
            }
            let lists = ["profile", "depth", "ir"]
                .iter()
                .map(|m| sorted_files(&video.join(m)))
                .collect::<Result<Vec<_>>>()?;
            if lists.iter().any(|l| l.len() != lists[0].len()) {
                return Err(CoreError::data(
                    video.display().to_string(),
                    format!(
                        "frame counts differ between profile/depth/ir: {:?}",
                        lists.iter().map(Vec::len).collect::<Vec<_>>()
                    ),
                ));
            }
            let label = usize::from(a != 1);
            for k in 0..lists[0].len() {
                out.push(ImageSample {
                    paths: lists.iter().map(|l| l[k].clone()).collect(),
                    label,
                });
            }
        }
    }
    if out.is_empty() {
        return Err(CoreError::data(
            race_dir.display().to_string(),
            format!("no CeFA frames match the split rule {rule:?}"),
        ));
    }
    Ok(out)
}

impl ImageListDataset {
    /// Builds a dataset over `samples` with modalities `rgb`, `depth`, `ir`.
    pub fn new(
        name: &str,
        samples: Vec<ImageSample>,
        cfg: &ImageListConfig,
        class_names: Vec<String>,
    ) -> Result<Self> {
        if cfg.channels != 1 && cfg.channels != 3 {
            return Err(CoreError::config(
                "images.channels",
                format!("must be 1 or 3, got {}", cfg.channels),
            ));
        }
        if cfg.size > super::MAX_IMAGE_SIDE || cfg.train_resize > 2 * super::MAX_IMAGE_SIDE {
            return Err(CoreError::config(
                "images.size",
                format!(
                    "at most {} px (train_resize at most {}), got {} and {}",
                    super::MAX_IMAGE_SIDE,
                    2 * super::MAX_IMAGE_SIDE,
                    cfg.size,
                    cfg.train_resize
                ),
            ));
        }
        if !(0..=180).contains(&cfg.max_rotation_deg) {
            return Err(CoreError::config(
                "images.max_rotation_deg",
                format!("must be 0..=180 degrees, got {}", cfg.max_rotation_deg),
            ));
        }
        if cfg.size == 0 || cfg.train_resize < cfg.size {
            return Err(CoreError::config(
                "images.train_resize",
                format!("must be ≥ size ({}), got {}", cfg.size, cfg.train_resize),
            ));
        }
        let kind = ModalityKind::Image {
            channels: cfg.channels,
            height: cfg.size,
            width: cfg.size,
        };
        let modalities = ["rgb", "depth", "ir"]
            .iter()
            .map(|n| ModalitySpec {
                name: n.to_string(),
                kind: kind.clone(),
            })
            .collect();
        Ok(ImageListDataset {
            name: name.to_string(),
            modalities,
            samples,
            classes: class_names.len(),
            size: cfg.size,
            train_resize: cfg.train_resize,
            channels: cfg.channels,
            max_rotation_deg: cfg.max_rotation_deg,
            class_names,
        })
    }

    /// The samples (paths and labels).
    pub fn samples(&self) -> &[ImageSample] {
        &self.samples
    }
}

/// A geometric augmentation drawn once per sample and applied to every modality.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Augmentation {
    /// Rotation angle in degrees.
    pub angle_deg: i32,
    /// Crop top-left corner as fractions of the free range (0..1).
    pub crop_fy: f64,
    /// See `crop_fy`.
    pub crop_fx: f64,
    /// Horizontal flip.
    pub flip: bool,
}

impl Augmentation {
    /// Draws the official augmentation: angle ~ U{−max..max}, crop corner uniform, flip p = 0.5.
    pub fn draw(rng: &mut StdRng, max_rotation_deg: i32) -> Self {
        Augmentation {
            angle_deg: rng.random_range(-max_rotation_deg..=max_rotation_deg),
            crop_fy: rng.random(),
            crop_fx: rng.random(),
            flip: rng.random_bool(0.5),
        }
    }
}

/// How an image-list dataset's images are prepared in evaluation: what a deployment bundle
/// carries so that new images are seen as the test images were.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ImagePreprocessing {
    /// Side of the square network input; every image is resized to it (bilinear), whatever its
    /// own size, as in training.
    pub size: usize,
    /// 3: B, G, R planes (a grayscale image replicated), as OpenCV reads; 1: luma.
    pub channels: usize,
    /// Pixel normalisation `(x − mean) / std` on 0..255 values (official: 127.5).
    pub mean: f32,
    /// See `mean` (official: 128).
    pub std: f32,
}

impl ImagePreprocessing {
    /// The official CASIA-SURF / CeFA evaluation preprocessing at `size` and `channels`.
    pub fn official(size: usize, channels: usize) -> Self {
        ImagePreprocessing {
            size,
            channels,
            mean: 127.5,
            std: 128.0,
        }
    }

    /// Decodes and prepares the image at `path` (`channels × size × size` values).
    pub fn read(&self, path: &Path) -> Result<Vec<f32>> {
        let mut values = decode_resized(path, self.channels, self.size)?;
        values
            .iter_mut()
            .for_each(|v| *v = (*v - self.mean) / self.std);
        Ok(values)
    }
}

/// Decodes an image file into `channels` planes of `f32` 0..255 (3 = B, G, R order as OpenCV
/// reads it; 1 = luma), resized to `side × side` with bilinear filtering.
pub fn decode_resized(path: &Path, channels: usize, side: usize) -> Result<Vec<f32>> {
    let img = image::open(path).map_err(|e| CoreError::Data {
        context: path.display().to_string(),
        message: format!("cannot decode image: {e}"),
    })?;
    let side32 = side as u32;
    let mut out = Vec::with_capacity(channels * side * side);
    if channels == 1 {
        let g = image::imageops::resize(&img.to_luma8(), side32, side32, FilterType::Triangle);
        out.extend(g.pixels().map(|p| p.0[0] as f32));
    } else {
        let rgb = image::imageops::resize(&img.to_rgb8(), side32, side32, FilterType::Triangle);
        for c in [2usize, 1, 0] {
            out.extend(rgb.pixels().map(|p| p.0[c] as f32));
        }
    }
    Ok(out)
}

/// Rotates each `side × side` plane about its centre by `angle_deg` onto the official canvas of
/// side ⌊0.8·side·(|sin a| + |cos a|)⌋, bilinear, constant-0 border; returns (planes, canvas side).
pub fn rotate_to_canvas(planes: &[f32], side: usize, angle_deg: i32) -> (Vec<f32>, usize) {
    let a = (angle_deg as f64).to_radians();
    let canvas =
        (side as f64 * 0.8 * a.sin().abs() + side as f64 * 0.8 * a.cos().abs()).floor() as usize;
    let (sin, cos) = a.sin_cos();
    let c_in = (side as f64 - 1.0) / 2.0;
    let c_out = (canvas as f64 - 1.0) / 2.0;
    let n_planes = planes.len() / (side * side);
    let mut out = vec![0f32; n_planes * canvas * canvas];
    for p in 0..n_planes {
        let src = &planes[p * side * side..(p + 1) * side * side];
        let dst = &mut out[p * canvas * canvas..(p + 1) * canvas * canvas];
        for v in 0..canvas {
            for u in 0..canvas {
                // inverse map: output pixel -> source pixel (counter-clockwise rotation)
                let dx = u as f64 - c_out;
                let dy = v as f64 - c_out;
                let x = cos * dx - sin * dy + c_in;
                let y = sin * dx + cos * dy + c_in;
                dst[v * canvas + u] = bilinear(src, side, x, y);
            }
        }
    }
    (out, canvas)
}

fn bilinear(src: &[f32], side: usize, x: f64, y: f64) -> f32 {
    let x0 = x.floor();
    let y0 = y.floor();
    let (fx, fy) = ((x - x0) as f32, (y - y0) as f32);
    let at = |xi: f64, yi: f64| -> f32 {
        if xi < 0.0 || yi < 0.0 || xi >= side as f64 || yi >= side as f64 {
            0.0
        } else {
            src[yi as usize * side + xi as usize]
        }
    };
    let top = at(x0, y0) * (1.0 - fx) + at(x0 + 1.0, y0) * fx;
    let bottom = at(x0, y0 + 1.0) * (1.0 - fx) + at(x0 + 1.0, y0 + 1.0) * fx;
    top * (1.0 - fy) + bottom * fy
}

/// Crops `out_side × out_side` at (`y`, `x`) from square planes of side `side`, optionally
/// flipping horizontally.
pub fn crop_flip(
    planes: &[f32],
    side: usize,
    y: usize,
    x: usize,
    out_side: usize,
    flip: bool,
) -> Vec<f32> {
    let n_planes = planes.len() / (side * side);
    let mut out = Vec::with_capacity(n_planes * out_side * out_side);
    for p in 0..n_planes {
        let src = &planes[p * side * side..(p + 1) * side * side];
        for v in 0..out_side {
            for u in 0..out_side {
                let su = if flip { out_side - 1 - u } else { u };
                out.push(src[(y + v) * side + x + su]);
            }
        }
    }
    out
}

/// Applies `(x − 127.5) / 128` in place.
pub fn normalize_pixels(values: &mut [f32]) {
    values.iter_mut().for_each(|v| *v = (*v - 127.5) / 128.0);
}

impl MultimodalSource for ImageListDataset {
    fn name(&self) -> &str {
        &self.name
    }
    fn modalities(&self) -> &[ModalitySpec] {
        &self.modalities
    }
    fn num_classes(&self) -> usize {
        self.classes
    }
    fn len(&self) -> usize {
        self.samples.len()
    }
    fn label(&self, i: usize) -> usize {
        self.samples[i].label
    }
    fn class_names(&self) -> Vec<String> {
        self.class_names.clone()
    }
    fn load_sample(
        &self,
        i: usize,
        augment: Option<&mut StdRng>,
        out: &mut [Vec<f32>],
    ) -> Result<()> {
        let sample = &self.samples[i];
        let aug = augment.map(|rng| Augmentation::draw(rng, self.max_rotation_deg));
        for (path, dst) in sample.paths.iter().zip(out.iter_mut()) {
            let mut values = match aug {
                None => decode_resized(path, self.channels, self.size)?,
                Some(a) => {
                    let planes = decode_resized(path, self.channels, self.train_resize)?;
                    let (rotated, canvas) =
                        rotate_to_canvas(&planes, self.train_resize, a.angle_deg);
                    if canvas < self.size {
                        // small images: the canvas can be smaller than the crop; fall back to a resize
                        decode_resized(path, self.channels, self.size)?
                    } else {
                        let free = canvas - self.size;
                        let y = ((a.crop_fy * (free + 1) as f64) as usize).min(free);
                        let x = ((a.crop_fx * (free + 1) as f64) as usize).min(free);
                        crop_flip(&rotated, canvas, y, x, self.size, a.flip)
                    }
                }
            };
            normalize_pixels(&mut values);
            *dst = values;
        }
        Ok(())
    }

    fn reads_sample_files(&self) -> bool {
        true
    }

    fn image_preprocessing(&self) -> Option<ImagePreprocessing> {
        Some(ImagePreprocessing::official(self.size, self.channels))
    }

    fn sample_from_files(&self, paths: &[std::path::PathBuf]) -> Result<Vec<Vec<f32>>> {
        if paths.len() != self.modalities.len() {
            return Err(CoreError::data(
                &self.name,
                format!(
                    "a sample is {} images ({}), got {}",
                    self.modalities.len(),
                    self.modalities
                        .iter()
                        .map(|m| m.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                    paths.len()
                ),
            ));
        }
        let prep = ImagePreprocessing::official(self.size, self.channels);
        paths.iter().map(|path| prep.read(path)).collect()
    }
}
