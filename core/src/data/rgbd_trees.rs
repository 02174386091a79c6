//! NYUv2 and Cityscapes in the layouts ESANet's prepare scripts write (spec §2 "Layouts"),
//! read lazily, scene by scene:
//!
//! * **NYUv2**: `root/train.txt` and `root/test.txt` list scene names; each scene is
//!   `root/<split>/rgb/<name>.png` (8-bit RGB), `root/<split>/depth/<name>.png` (refined) or
//!   `depth_raw/` (uint16, mm, 0 = no reading) and `root/<split>/labels_40/<name>.png` (uint8,
//!   0 = void; `labels_13`, and `labels_894` as uint16, for the other class sets). The official loop
//!   validates (and mines) on `test`, so the validation split is the test split.
//! * **Cityscapes**: `root/<split>_{rgb,depth_raw,labels_19}.txt` list paths relative to
//!   `root/<split>/{rgb,depth_raw,labels_19}/`; depth is a float16 `.npy` (raw
//!   disparity-derived depth, m), labels a uint8 PNG with 0 = void. Depth above `max_depth`
//!   (300 m, the official loader's clamp) is set to 0 (missing). The splits read are `train`
//!   and `valid`: the public `test` labels are placeholders (all void after mapping), so the
//!   final table is computed on `valid`, as the official code reports — the validation split
//!   is also the test split.
//!
//! Every error names the file (and, for list files, the line).

use super::rgbd::{DepthStats, Label, RgbdScene, SegAugment, SegSource};
use super::split::Split;
use crate::error::{CoreError, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Which of the two layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash)]
#[serde(rename_all = "snake_case")]
pub enum RgbdLayout {
    /// NYUv2 (ESANet's `nyuv2` prepare script).
    Nyuv2,
    /// Cityscapes (ESANet's `cityscapes` prepare script).
    Cityscapes,
}

/// Which depth the NYUv2 loader reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum DepthKind {
    /// `depth/` (inpainted; ESANet's default for NYUv2).
    #[default]
    Refined,
    /// `depth_raw/`.
    Raw,
}

/// The manifest's `[rgbd]` table.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RgbdTreeConfig {
    /// The dataset root, relative to the manifest's folder.
    pub root: PathBuf,
    /// NYUv2 only: `refined` (default) or `raw` depth.
    #[serde(default)]
    pub depth: DepthKind,
    /// Number of classes: NYUv2 40 (default), 13 or 894 (16-bit label files); Cityscapes 19.
    #[serde(default)]
    pub classes: Option<usize>,
    /// Training crop `[height, width]` (NYUv2 480×640, Cityscapes 512×1024).
    #[serde(default)]
    pub train_size: Option<[usize; 2]>,
    /// Network input in evaluation (NYUv2 480×640, Cityscapes 512×1024; labels stay at their
    /// stored size).
    #[serde(default)]
    pub eval_size: Option<[usize; 2]>,
    /// Random rescale range (NYUv2 [1.0, 1.4], Cityscapes [0.5, 2.0]).
    #[serde(default)]
    pub scale: Option<[f32; 2]>,
    /// Depth above this (in the dataset's unit) is set to 0, missing: Cityscapes 300 (m, the
    /// official loader's clamp for far and saturated readings), NYUv2 none.
    #[serde(default)]
    pub max_depth: Option<f32>,
}

/// The files of one scene.
#[derive(Clone, Debug, PartialEq)]
struct SceneFiles {
    rgb: PathBuf,
    depth: PathBuf,
    labels: PathBuf,
}

/// An NYUv2 or Cityscapes tree, with its official splits.
#[derive(Clone, Debug)]
pub struct RgbdTree {
    name: String,
    layout: RgbdLayout,
    scenes: Vec<SceneFiles>,
    classes: usize,
    train_size: [usize; 2],
    eval_size: [usize; 2],
    augment: SegAugment,
    max_depth: Option<f32>,
}

fn read_list(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| CoreError::io(path, e))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line.split_whitespace().count() != 1 {
            return Err(CoreError::Parse {
                file: path.display().to_string(),
                line: n + 1,
                column: None,
                message: format!("expected one name or path per line, got `{line}`"),
            });
        }
        out.push(line.to_string());
    }
    if out.is_empty() {
        return Err(CoreError::data(
            path.display().to_string(),
            "the list is empty",
        ));
    }
    Ok(out)
}

impl RgbdTree {
    /// Opens the tree at `cfg.root` (relative to `base`) and returns it with its split: NYUv2
    /// train / test, Cityscapes train / valid; in both the validation split is the test split,
    /// as the official code validates and reports.
    pub fn open(
        name: &str,
        layout: RgbdLayout,
        cfg: &RgbdTreeConfig,
        base: &Path,
    ) -> Result<(Self, Split)> {
        let root = base.join(&cfg.root);
        if !root.is_dir() {
            return Err(CoreError::data(
                root.display().to_string(),
                "the dataset root is not a folder (edit `root` in the manifest)",
            ));
        }
        let (classes, size, eval, scale, max_depth) = match layout {
            RgbdLayout::Nyuv2 => (40, [480, 640], [480, 640], [1.0, 1.4], None),
            RgbdLayout::Cityscapes => (19, [512, 1024], [1024, 2048], [0.5, 2.0], Some(300.0)),
        };
        let max_depth = cfg.max_depth.or(max_depth);
        if let Some(m) = max_depth
            && !(m.is_finite() && m > 0.0)
        {
            return Err(CoreError::config(
                "rgbd.max_depth",
                format!("must be a positive number (the dataset's depth unit), got {m}"),
            ));
        }
        let classes = cfg.classes.unwrap_or(classes);
        if !(2..=Label::MAX as usize).contains(&classes) {
            return Err(CoreError::config(
                "rgbd.classes",
                format!(
                    "must be in 2..={} (labels are 8- or 16-bit PNGs), got {classes}",
                    Label::MAX
                ),
            ));
        }
        let train_size = cfg.train_size.unwrap_or(size);
        let eval_size = cfg.eval_size.unwrap_or(eval);
        for (field, [h, w]) in [
            ("rgbd.train_size", train_size),
            ("rgbd.eval_size", eval_size),
        ] {
            crate::data::check_input_size(h, w, field)?;
        }
        let scale = cfg.scale.unwrap_or(scale);
        if !scale
            .iter()
            .all(|s| s.is_finite() && (0.1..=8.0).contains(s))
            || scale[0] > scale[1]
        {
            return Err(CoreError::config(
                "rgbd.scale",
                format!(
                    "must be [low, high] with 0.1 ≤ low ≤ high ≤ 8, got [{}, {}]",
                    scale[0], scale[1]
                ),
            ));
        }
        let mut scenes = Vec::new();
        let mut parts = Vec::new();
        match layout {
            RgbdLayout::Nyuv2 => {
                let depth_dir = match cfg.depth {
                    DepthKind::Refined => "depth",
                    DepthKind::Raw => "depth_raw",
                };
                let labels_dir = format!("labels_{classes}");
                for split in ["train", "test"] {
                    let start = scenes.len();
                    for name in read_list(&root.join(format!("{split}.txt")))? {
                        let file =
                            |dir: &str| root.join(split).join(dir).join(format!("{name}.png"));
                        scenes.push(SceneFiles {
                            rgb: file("rgb"),
                            depth: file(depth_dir),
                            labels: file(&labels_dir),
                        });
                    }
                    parts.push((start..scenes.len()).collect::<Vec<_>>());
                }
                // train, val = test (the official loop validates on it), test
                parts.insert(1, parts[1].clone());
            }
            RgbdLayout::Cityscapes => {
                let labels_dir = format!("labels_{classes}");
                for split in ["train", "valid"] {
                    let list = |dir: &str| read_list(&root.join(format!("{split}_{dir}.txt")));
                    let (rgb, depth, labels) =
                        (list("rgb")?, list("depth_raw")?, list(&labels_dir)?);
                    if rgb.len() != depth.len() || rgb.len() != labels.len() {
                        return Err(CoreError::data(
                            root.join(format!("{split}_rgb.txt")).display().to_string(),
                            format!(
                                "{} rgb, {} depth and {} label entries: the three lists of `{split}` must be the same length",
                                rgb.len(),
                                depth.len(),
                                labels.len()
                            ),
                        ));
                    }
                    let start = scenes.len();
                    for ((r, d), l) in rgb.iter().zip(&depth).zip(&labels) {
                        scenes.push(SceneFiles {
                            rgb: root.join(split).join("rgb").join(r),
                            depth: root.join(split).join("depth_raw").join(d),
                            labels: root.join(split).join(&labels_dir).join(l),
                        });
                    }
                    parts.push((start..scenes.len()).collect::<Vec<_>>());
                }
                // train, val = valid, test = valid (the public test labels are placeholders)
                parts.push(parts[1].clone());
            }
        }
        let mut parts = parts.into_iter();
        let split = Split {
            train: parts.next().unwrap_or_default(),
            val: parts.next().unwrap_or_default(),
            test: parts.next().unwrap_or_default(),
        };
        let tree = RgbdTree {
            name: name.to_string(),
            layout,
            scenes,
            classes,
            train_size,
            eval_size,
            augment: SegAugment {
                scale,
                hsv: true,
                flip: true,
            },
            max_depth,
        };
        Ok((tree, split))
    }
}

/// Reads one RGB-D scene from its two files, for inference on a scene of one's own: an 8-bit
/// RGB image and its depth (a 16-bit PNG in the dataset's unit, as NYUv2's, or a `.npy` as
/// Cityscapes'), of the same size. The labels are unknown (all void).
pub fn read_rgbd_files(rgb: &Path, depth: &Path) -> Result<RgbdScene> {
    read_rgbd_parts(Some(rgb), Some(depth))
}

/// [`read_rgbd_files`] where either file may be missing (a sensor that is absent): the missing
/// modality is zeros at the other's size, for a network that is told it is absent.
pub fn read_rgbd_parts(rgb: Option<&Path>, depth: Option<&Path>) -> Result<RgbdScene> {
    let rgb_part = rgb
        .map(|p| -> Result<_> {
            let img = open_image(p)?.to_rgb8();
            Ok((img.height() as usize, img.width() as usize, img.into_raw()))
        })
        .transpose()?;
    let depth_part = depth
        .map(|p| {
            if p.extension().is_some_and(|e| e.eq_ignore_ascii_case("npy")) {
                read_npy_2d(p)
            } else {
                read_depth_png(p)
            }
        })
        .transpose()?;
    let (h, w, rgb_values, depth_values) = match (rgb_part, depth_part) {
        (Some((h, w, c)), Some((dh, dw, d))) => {
            if (dh, dw) != (h, w) {
                let (rgb, depth) = (rgb.unwrap_or(Path::new("")), depth.unwrap_or(Path::new("")));
                return Err(CoreError::data(
                    depth.display().to_string(),
                    format!(
                        "depth is {dh}×{dw}, the RGB image {} is {h}×{w}",
                        rgb.display()
                    ),
                ));
            }
            (h, w, c, d)
        }
        (Some((h, w, c)), None) => (h, w, c, vec![0.0; h * w]),
        (None, Some((h, w, d))) => (h, w, vec![0; h * w * 3], d),
        (None, None) => {
            return Err(CoreError::config(
                "inputs",
                "a scene needs an RGB image, a depth map, or both",
            ));
        }
    };
    let scene = RgbdScene {
        height: h,
        width: w,
        rgb: rgb_values,
        depth: depth_values,
        labels: vec![0; h * w],
    };
    let origin = rgb
        .or(depth)
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    scene.validate(&origin)?;
    Ok(scene)
}

/// Decodes an image of a scene, refusing one larger than [`super::MAX_IMAGE_SIDE`] a side from
/// its header, before its pixels are allocated.
fn open_image(path: &Path) -> Result<image::DynamicImage> {
    let side = super::MAX_IMAGE_SIDE as u32;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(side);
    limits.max_image_height = Some(side);
    let decode = || -> std::result::Result<image::DynamicImage, image::ImageError> {
        let mut reader = image::ImageReader::open(path)?.with_guessed_format()?;
        reader.limits(limits);
        reader.decode()
    };
    decode().map_err(|e| match e {
        image::ImageError::IoError(io) => CoreError::io(path, io),
        image::ImageError::Limits(_) => CoreError::data(
            path.display().to_string(),
            format!("is larger than {side} px a side (or too large to decode); scale it down"),
        ),
        other => CoreError::data(
            path.display().to_string(),
            format!("cannot decode: {other}"),
        ),
    })
}

/// A depth PNG: 16-bit (mm), or 8-bit.
fn read_depth_png(path: &Path) -> Result<(usize, usize, Vec<f32>)> {
    let img = open_image(path)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let values = match img {
        image::DynamicImage::ImageLuma16(g) => g.into_raw().into_iter().map(f32::from).collect(),
        image::DynamicImage::ImageLuma8(g) => g.into_raw().into_iter().map(f32::from).collect(),
        other => {
            return Err(CoreError::data(
                path.display().to_string(),
                format!(
                    "depth must be a 1-channel PNG (16-bit, mm), got {:?}",
                    other.color()
                ),
            ));
        }
    };
    Ok((h, w, values))
}

/// A label PNG: 1 channel, 8-bit (NYUv2's `labels_40`, Cityscapes) or 16-bit (NYUv2's
/// `labels_894`), 0 = void.
fn read_labels(path: &Path) -> Result<(usize, usize, Vec<Label>)> {
    let img = open_image(path)?;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let labels = match img {
        image::DynamicImage::ImageLuma8(g) => g.into_raw().into_iter().map(Label::from).collect(),
        image::DynamicImage::ImageLuma16(g) => g.into_raw(),
        other => {
            return Err(CoreError::data(
                path.display().to_string(),
                format!(
                    "labels must be a 1-channel PNG, 8- or 16-bit (0 = void), got {:?}",
                    other.color()
                ),
            ));
        }
    };
    Ok((h, w, labels))
}

/// IEEE half precision to f32.
fn f16_to_f32(bits: u16) -> f32 {
    let sign = if bits & 0x8000 != 0 { -1.0f32 } else { 1.0 };
    let exp = ((bits >> 10) & 0x1f) as i32;
    let frac = (bits & 0x3ff) as f32;
    sign * match exp {
        0 => frac * 2f32.powi(-24),
        31 if frac == 0.0 => f32::INFINITY,
        31 => f32::NAN,
        e => (1.0 + frac / 1024.0) * 2f32.powi(e - 15),
    }
}

/// A 2-D float16 or float32 `.npy` (little-endian, C order), as Cityscapes' depth.
pub fn read_npy_2d(path: &Path) -> Result<(usize, usize, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
    let bad = |m: &str| CoreError::data(path.display().to_string(), m.to_string());
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(bad("not a .npy file"));
    }
    let (header_len, start) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize,
            12,
        ),
        _ => return Err(bad("unsupported .npy version")),
    };
    let header = std::str::from_utf8(
        bytes
            .get(start..start + header_len)
            .ok_or_else(|| bad("truncated header"))?,
    )
    .map_err(|_| bad("the header is not text"))?;
    let elem = if header.contains("'<f2'") {
        2
    } else if header.contains("'<f4'") {
        4
    } else {
        return Err(bad("depth must be little-endian float16 or float32"));
    };
    if header.contains("'fortran_order': True") {
        return Err(bad("Fortran-ordered arrays are not supported"));
    }
    let shape_text = header
        .split("'shape':")
        .nth(1)
        .and_then(|s| s.split('(').nth(1))
        .and_then(|s| s.split(')').next())
        .ok_or_else(|| bad("no shape in the header"))?;
    let dims: Vec<usize> = shape_text
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.parse::<usize>().map_err(|_| bad("bad shape")))
        .collect::<Result<_>>()?;
    let [h, w] = dims[..] else {
        return Err(bad(&format!("expected a 2-D array, got shape {dims:?}")));
    };
    let data = &bytes[start + header_len..];
    if data.len() < h * w * elem {
        return Err(bad(&format!(
            "holds {} bytes of data, a {h}×{w} array needs {}",
            data.len(),
            h * w * elem
        )));
    }
    let values = data[..h * w * elem]
        .chunks_exact(elem)
        .map(|c| match elem {
            2 => f16_to_f32(u16::from_le_bytes([c[0], c[1]])),
            _ => f32::from_le_bytes([c[0], c[1], c[2], c[3]]),
        })
        .map(|v| if v.is_finite() { v } else { 0.0 })
        .collect();
    Ok((h, w, values))
}

impl SegSource for RgbdTree {
    fn name(&self) -> &str {
        &self.name
    }
    fn num_classes(&self) -> usize {
        self.classes
    }
    fn len(&self) -> usize {
        self.scenes.len()
    }
    fn scene(&self, i: usize) -> Result<RgbdScene> {
        let files = self.scenes.get(i).ok_or_else(|| {
            CoreError::data(
                &self.name,
                format!("scene {i} requested, there are {}", self.scenes.len()),
            )
        })?;
        let rgb = open_image(&files.rgb)?.to_rgb8();
        let (w, h) = (rgb.width() as usize, rgb.height() as usize);
        let (dh, dw, mut depth) = match self.layout {
            RgbdLayout::Nyuv2 => read_depth_png(&files.depth)?,
            RgbdLayout::Cityscapes => read_npy_2d(&files.depth)?,
        };
        if let Some(max) = self.max_depth {
            for d in depth.iter_mut().filter(|d| **d > max) {
                *d = 0.0;
            }
        }
        let (lh, lw, labels) = read_labels(&files.labels)?;
        for (what, path, size) in [
            ("depth", &files.depth, (dh, dw)),
            ("labels", &files.labels, (lh, lw)),
        ] {
            if size != (h, w) {
                return Err(CoreError::data(
                    path.display().to_string(),
                    format!(
                        "{what} is {}×{}, its RGB image {} is {h}×{w}",
                        size.0,
                        size.1,
                        files.rgb.display()
                    ),
                ));
            }
        }
        if let Some(&bad) = labels.iter().find(|&&l| l as usize > self.classes) {
            return Err(CoreError::data(
                files.labels.display().to_string(),
                format!("holds label {bad}, above the {} classes", self.classes),
            ));
        }
        Ok(RgbdScene {
            height: h,
            width: w,
            rgb: rgb.into_raw(),
            depth,
            labels,
        })
    }
    fn depth_stats(&self) -> DepthStats {
        match self.layout {
            RgbdLayout::Nyuv2 => DepthStats::NYUV2,
            RgbdLayout::Cityscapes => DepthStats::CITYSCAPES,
        }
    }
    fn train_size(&self) -> [usize; 2] {
        self.train_size
    }
    fn eval_size(&self) -> [usize; 2] {
        self.eval_size
    }
    fn augment(&self) -> SegAugment {
        self.augment
    }
}
