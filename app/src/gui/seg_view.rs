//! Pictures of RGB-D segmentation for the data and explorer panels: a scene's RGB image, its
//! depth in a perceptual colour map with a scale, label maps in a fixed palette with a legend of
//! class names, and error maps.
//!
//! * **Class palette**: the PASCAL VOC colour map (class `k`, label `k + 1`, gets VOC colour
//!   `k + 1`: dark red, green, olive, navy, purple, teal, grey, …); void is black.
//! * **Depth**: Google's Turbo colour map (near = blue, far = red) over the scene's own range of
//!   readings; a missing reading (0) is black.
//! * **Error map**: pixels right in the current combination dark grey; wrong although every
//!   modality would get them right (they *became* wrong when a modality was removed) amber;
//!   wrong with every modality too red; void black.

use super::draw::TextureCache;
use eframe::egui::{self, Color32, ColorImage, RichText, Vec2};
use mmanet_core::data::rgbd::{Label, RgbdScene};
use mmanet_core::task::segmentation::LabelMap;

/// Colour of void (unlabelled) pixels and missing depth readings.
pub const VOID: Color32 = Color32::BLACK;
/// Error map: a pixel predicted right.
pub const RIGHT: Color32 = Color32::from_rgb(70, 70, 70);
/// Error map: wrong in the current combination, right with every modality.
pub const BECAME_WRONG: Color32 = Color32::from_rgb(250, 180, 40);
/// Error map: wrong with every modality as well.
pub const WRONG: Color32 = Color32::from_rgb(220, 60, 50);

/// The palette colour of class index `k` (label `k + 1`): PASCAL VOC's colour map.
pub fn class_color(k: usize) -> Color32 {
    let mut label = k + 1;
    let (mut r, mut g, mut b) = (0u8, 0u8, 0u8);
    for shift in (0..8).rev() {
        r |= ((label & 1) as u8) << shift;
        g |= (((label >> 1) & 1) as u8) << shift;
        b |= (((label >> 2) & 1) as u8) << shift;
        label >>= 3;
    }
    Color32::from_rgb(r, g, b)
}

/// Turbo (A. Mikhailov, Google, 2019; polynomial approximation) at `t` in 0..=1.
pub fn turbo(t: f32) -> Color32 {
    let t = t.clamp(0.0, 1.0);
    let poly = |c: [f32; 6]| {
        let v = c[0] + t * (c[1] + t * (c[2] + t * (c[3] + t * (c[4] + t * c[5]))));
        (v.clamp(0.0, 1.0) * 255.0).round() as u8
    };
    Color32::from_rgb(
        poly([
            0.135_721_4,
            4.615_393,
            -42.660_32,
            132.131_08,
            -152.942_4,
            59.286_38,
        ]),
        poly([
            0.091_402_61,
            2.194_188_4,
            4.842_966_6,
            -14.185_033,
            4.277_298_6,
            2.829_566,
        ]),
        poly([
            0.106_673_3,
            12.641_946,
            -60.582_05,
            110.362_77,
            -89.903_11,
            27.348_25,
        ]),
    )
}

/// The range of a scene's depth readings (zeros, missing readings, excluded).
pub fn depth_range(depth: &[f32]) -> (f32, f32) {
    let (lo, hi) = depth
        .iter()
        .filter(|d| **d > 0.0)
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &d| {
            (lo.min(d), hi.max(d))
        });
    if lo.is_finite() { (lo, hi) } else { (0.0, 1.0) }
}

/// The scene's RGB image.
pub fn rgb_image(scene: &RgbdScene) -> ColorImage {
    ColorImage::from_rgb([scene.width, scene.height], &scene.rgb)
}

/// The scene's depth in Turbo over `range`, missing readings black.
pub fn depth_image(scene: &RgbdScene, (lo, hi): (f32, f32)) -> ColorImage {
    let span = (hi - lo).max(1e-6);
    let pixels = scene
        .depth
        .iter()
        .map(|&d| {
            if d > 0.0 {
                turbo((d - lo) / span)
            } else {
                VOID
            }
        })
        .collect();
    ColorImage::new([scene.width, scene.height], pixels)
}

/// Ground-truth labels (0 = void, label `k + 1` = class `k`) in the class palette.
pub fn labels_image(labels: &[Label], height: usize, width: usize) -> ColorImage {
    let pixels = labels
        .iter()
        .map(|&l| {
            if l == 0 {
                VOID
            } else {
                class_color(l as usize - 1)
            }
        })
        .collect();
    ColorImage::new([width, height], pixels)
}

/// A predicted label map in the class palette.
pub fn prediction_image(map: &LabelMap) -> ColorImage {
    let pixels = map
        .classes
        .iter()
        .map(|&k| class_color(k as usize))
        .collect();
    ColorImage::new([map.width, map.height], pixels)
}

/// Per pixel: [`VOID`], [`RIGHT`], [`BECAME_WRONG`] (wrong now, right with `full`, the map
/// with every modality) or [`WRONG`].
pub fn error_colors(map: &LabelMap, full: Option<&LabelMap>, truth: &[Label]) -> Vec<Color32> {
    map.classes
        .iter()
        .zip(truth)
        .enumerate()
        .map(|(p, (&k, &l))| {
            if l == 0 {
                VOID
            } else if k as usize + 1 == l as usize {
                RIGHT
            } else if full.is_some_and(|f| {
                f.classes
                    .get(p)
                    .is_some_and(|&c| c as usize + 1 == l as usize)
            }) {
                BECAME_WRONG
            } else {
                WRONG
            }
        })
        .collect()
}

/// The error map as a picture.
pub fn error_image(map: &LabelMap, full: Option<&LabelMap>, truth: &[Label]) -> ColorImage {
    ColorImage::new([map.width, map.height], error_colors(map, full, truth))
}

/// Shows `image` (cached under `key`) `height` points tall, tinted grey when `on` is false.
pub fn picture(
    ui: &mut egui::Ui,
    textures: &mut TextureCache,
    key: &str,
    height: f32,
    on: bool,
    make: impl FnOnce() -> ColorImage,
) {
    let tex = textures.named(ui.ctx(), key, make);
    let [w, h] = tex.size();
    let aspect = w as f32 / h.max(1) as f32;
    let tint = if on {
        Color32::WHITE
    } else {
        Color32::from_white_alpha(40)
    };
    ui.add(egui::Image::new((tex.id(), Vec2::new(height * aspect, height))).tint(tint));
}

/// The legend of the class palette: a swatch and the name of every class.
pub fn legend(ui: &mut egui::Ui, classes: &[String]) {
    ui.horizontal_wrapped(|ui| {
        for (k, name) in classes.iter().enumerate() {
            swatch(ui, class_color(k));
            ui.label(RichText::new(name).small());
            ui.add_space(6.0);
        }
        swatch(ui, VOID);
        ui.label(RichText::new("void").small().weak());
    });
}

/// The error map's legend.
pub fn error_legend(ui: &mut egui::Ui) {
    ui.horizontal_wrapped(|ui| {
        for (c, what) in [
            (RIGHT, "right"),
            (BECAME_WRONG, "wrong since a modality was removed"),
            (WRONG, "wrong with every modality too"),
        ] {
            swatch(ui, c);
            ui.label(RichText::new(what).small());
            ui.add_space(6.0);
        }
    });
}

/// A Turbo colour bar from `lo` to `hi` (in `unit`) `width` points wide.
pub fn depth_scale(ui: &mut egui::Ui, (lo, hi): (f32, f32), unit: &str, width: f32) {
    ui.horizontal(|ui| {
        ui.label(RichText::new(format!("{lo:.0}")).small());
        let (rect, _) = ui.allocate_exact_size(Vec2::new(width, 10.0), egui::Sense::hover());
        let painter = ui.painter_at(rect);
        let steps = 32;
        let w = rect.width() / steps as f32;
        for s in 0..steps {
            let x = rect.left() + s as f32 * w;
            painter.rect_filled(
                egui::Rect::from_min_max(
                    egui::pos2(x, rect.top()),
                    egui::pos2(x + w + 0.5, rect.bottom()),
                ),
                0.0,
                turbo(s as f32 / (steps - 1) as f32),
            );
        }
        ui.label(RichText::new(format!("{hi:.0} {unit}")).small());
    });
}

/// A scene side by side: its RGB image, its depth (with the Turbo scale below) and, with
/// `with_truth` when it has labels, its ground truth; `present` greys out a switched-off
/// modality. `key` names the scene's textures in the cache.
pub fn scene_row(
    ui: &mut egui::Ui,
    textures: &mut TextureCache,
    scene: &RgbdScene,
    key: &str,
    present: Option<&[bool]>,
    with_truth: bool,
    height: f32,
) {
    let on = |m: usize| present.is_none_or(|p| p.get(m).copied().unwrap_or(true));
    let range = depth_range(&scene.depth);
    let caption = |ui: &mut egui::Ui, name: &str, on: bool| {
        let text = RichText::new(name).small();
        ui.label(if on {
            text
        } else {
            text.strikethrough().weak()
        });
    };
    ui.horizontal(|ui| {
        ui.vertical(|ui| {
            picture(ui, textures, &format!("{key}-rgb"), height, on(0), || {
                rgb_image(scene)
            });
            caption(ui, "rgb", on(0));
        });
        ui.vertical(|ui| {
            picture(ui, textures, &format!("{key}-depth"), height, on(1), || {
                depth_image(scene, range)
            });
            caption(ui, "depth", on(1));
            let width = height * scene.width as f32 / scene.height.max(1) as f32;
            depth_scale(ui, range, "", (width - 60.0).max(20.0));
        });
        if with_truth && scene.labels.iter().any(|&l| l > 0) {
            ui.vertical(|ui| {
                picture(ui, textures, &format!("{key}-labels"), height, true, || {
                    labels_image(&scene.labels, scene.height, scene.width)
                });
                caption(ui, "ground truth", true);
            });
        }
    });
}

fn swatch(ui: &mut egui::Ui, color: Color32) {
    let (rect, _) = ui.allocate_exact_size(Vec2::splat(10.0), egui::Sense::hover());
    ui.painter().rect_filled(rect, 2.0, color);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_palette_is_pascal_vocs() {
        // VOC labels 1..=7
        let expected = [
            (128, 0, 0),
            (0, 128, 0),
            (128, 128, 0),
            (0, 0, 128),
            (128, 0, 128),
            (0, 128, 128),
            (128, 128, 128),
        ];
        for (k, (r, g, b)) in expected.into_iter().enumerate() {
            assert_eq!(class_color(k), Color32::from_rgb(r, g, b), "class {k}");
        }
        // distinct colours for NYUv2's 40 classes
        let mut all: Vec<_> = (0..40).map(class_color).collect();
        all.dedup();
        all.sort_by_key(|c| c.to_array());
        all.dedup();
        assert_eq!(all.len(), 40);
    }

    #[test]
    fn turbo_runs_from_blue_to_red() {
        let near = turbo(0.1);
        let far = turbo(0.9);
        assert!(near.b() > near.r(), "{near:?}");
        assert!(far.r() > far.b(), "{far:?}");
        let mid = turbo(0.5);
        assert!(mid.g() > 200, "{mid:?}");
    }

    #[test]
    fn error_map_separates_pixels_lost_with_a_modality() {
        let map = LabelMap {
            height: 1,
            width: 4,
            classes: vec![0, 1, 1, 2],
        };
        let full = LabelMap {
            height: 1,
            width: 4,
            classes: vec![0, 0, 2, 2],
        };
        // truth: class 0, class 0, class 0, void
        let truth: [Label; 4] = [1, 1, 1, 0];
        assert_eq!(
            error_colors(&map, Some(&full), &truth),
            vec![RIGHT, BECAME_WRONG, WRONG, VOID]
        );
        assert_eq!(
            error_colors(&map, None, &truth),
            vec![RIGHT, WRONG, WRONG, VOID]
        );
    }

    #[test]
    fn depth_pictures_keep_missing_readings_black() {
        let scene = RgbdScene {
            height: 1,
            width: 3,
            rgb: vec![0; 9],
            depth: vec![1000.0, 0.0, 3000.0],
            labels: vec![1, 0, 2],
        };
        let range = depth_range(&scene.depth);
        assert_eq!(range, (1000.0, 3000.0));
        let img = depth_image(&scene, range);
        assert_eq!(img.pixels[1], VOID);
        assert_eq!(img.pixels[0], turbo(0.0));
        assert_eq!(img.pixels[2], turbo(1.0));
        let labels = labels_image(&scene.labels, 1, 3);
        assert_eq!(labels.pixels, vec![class_color(0), VOID, class_color(1)]);
    }
}
