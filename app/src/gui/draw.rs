//! Drawing helpers shared by the panels: a sample's modalities (images as images, vectors as
//! bar strips), class-probability bars and the per-combination comparison table.

use eframe::egui::{self, Color32, ColorImage, RichText, TextureHandle, TextureOptions, Vec2};
use mmanet_core::data::{ModalityKind, ModalitySpec, MultimodalSource};
use mmanet_core::report::ComparisonTable;
use std::collections::HashMap;

/// Textures of drawn samples, dropped when the data changes.
#[derive(Default)]
pub struct TextureCache {
    map: HashMap<(usize, usize), TextureHandle>,
    named: HashMap<String, TextureHandle>,
}

impl TextureCache {
    /// Forgets every texture (new data).
    pub fn clear(&mut self) {
        self.map.clear();
        self.named.clear();
    }

    /// The texture named `key`, made by `make` on first use.
    pub fn named(
        &mut self,
        ctx: &egui::Context,
        key: &str,
        make: impl FnOnce() -> ColorImage,
    ) -> &TextureHandle {
        self.named
            .entry(key.to_string())
            .or_insert_with(|| ctx.load_texture(key, make(), TextureOptions::NEAREST))
    }

    /// Whether a texture named `key` is cached (drawn since the last clear).
    #[cfg(test)]
    pub fn has_named(&self, key: &str) -> bool {
        self.named.contains_key(key)
    }

    /// Forgets the named textures whose key starts with `prefix`.
    pub fn forget_named(&mut self, prefix: &str) {
        self.named.retain(|k, _| !k.starts_with(prefix));
    }

    /// Forgets the textures of one sample key.
    pub fn forget_sample(&mut self, key: usize) {
        self.map.retain(|(k, _), _| *k != key);
    }
}

/// The texture key of the explorer's sample read from files.
pub const LOADED_KEY: usize = usize::MAX;

/// How a modality is drawn: `(channels, height, width)` for pictures, `None` for bar strips.
/// The mfeat `pix` view (240 pixel averages) is drawn as its 15×16 picture.
pub fn picture_shape(spec: &ModalitySpec) -> Option<(usize, usize, usize)> {
    match spec.kind {
        ModalityKind::Image {
            channels,
            height,
            width,
        } => Some((channels, height, width)),
        ModalityKind::Vector { dim: 240 } if spec.name == "pix" => Some((1, 16, 15)),
        ModalityKind::Vector { .. } => None,
    }
}

/// A picture of `values` (`C×H×W`, row-major) scaled to the full grey/colour range.
pub fn to_color_image(values: &[f32], (c, h, w): (usize, usize, usize)) -> ColorImage {
    let (lo, hi) = values
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let scale = if hi > lo { 255.0 / (hi - lo) } else { 0.0 };
    let byte = |v: f32| ((v - lo) * scale).clamp(0.0, 255.0) as u8;
    let plane = h * w;
    let pixels = (0..plane)
        .map(|p| {
            if c >= 3 {
                Color32::from_rgb(
                    byte(values[p]),
                    byte(values[plane + p]),
                    byte(values[2 * plane + p]),
                )
            } else {
                let g = byte(values[p]);
                Color32::from_gray(g)
            }
        })
        .collect();
    ColorImage::new([w, h], pixels)
}

/// Draws every modality of sample `i` side by side, each with its name; `present[m]` false
/// draws modality `m` greyed out (switched off). Read errors are shown in place. `key` names the
/// sample's textures in the cache (the sample index, or [`LOADED_KEY`]).
pub fn sample_modalities(
    ui: &mut egui::Ui,
    textures: &mut TextureCache,
    source: &dyn MultimodalSource,
    (i, key): (usize, usize),
    present: Option<&[bool]>,
    size: f32,
) {
    let specs = source.modalities();
    let mut values: Vec<Vec<f32>> = specs.iter().map(|s| vec![0.0; s.kind.numel()]).collect();
    if let Err(e) = source.load_sample(i, None, &mut values) {
        ui.colored_label(ui.visuals().error_fg_color, e.to_string());
        return;
    }
    ui.horizontal(|ui| {
        for (m, spec) in specs.iter().enumerate() {
            let on = present.is_none_or(|p| p.get(m).copied().unwrap_or(true));
            ui.vertical(|ui| {
                let tint = if on {
                    Color32::WHITE
                } else {
                    Color32::from_white_alpha(40)
                };
                match picture_shape(spec) {
                    Some(shape) => {
                        let tex = textures.map.entry((key, m)).or_insert_with(|| {
                            ui.ctx().load_texture(
                                format!("sample-{key}-{m}"),
                                to_color_image(&values[m], shape),
                                TextureOptions::NEAREST,
                            )
                        });
                        let aspect = shape.2 as f32 / shape.1 as f32;
                        ui.add(
                            egui::Image::new((tex.id(), Vec2::new(size * aspect, size))).tint(tint),
                        );
                    }
                    None => bar_strip(ui, &values[m], Vec2::new(size * 1.4, size), on),
                }
                let name = RichText::new(&spec.name).small();
                ui.label(if on {
                    name
                } else {
                    name.strikethrough().weak()
                });
            });
        }
    });
}

/// A vector as a strip of bars around its zero line.
pub fn bar_strip(ui: &mut egui::Ui, values: &[f32], size: Vec2, on: bool) {
    let (rect, _) = ui.allocate_exact_size(size, egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
    if values.is_empty() {
        return;
    }
    let max = values.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    let color = if on {
        ui.visuals().selection.bg_fill
    } else {
        ui.visuals().weak_text_color()
    };
    let mid = rect.center().y;
    let w = rect.width() / values.len() as f32;
    for (k, v) in values.iter().enumerate() {
        let x = rect.left() + k as f32 * w;
        let h = v / max * (rect.height() / 2.0 - 1.0);
        let (top, bottom) = if h >= 0.0 {
            (mid - h, mid)
        } else {
            (mid, mid - h)
        };
        painter.rect_filled(
            egui::Rect::from_min_max(
                egui::pos2(x, top),
                egui::pos2(x + (w - 0.5).max(0.5), bottom),
            ),
            0.0,
            color,
        );
    }
}

/// Horizontal probability bars, one per class: the predicted class filled strongly, the true
/// class (if known) marked with ✔.
pub fn probability_bars(
    ui: &mut egui::Ui,
    probs: &[f32],
    classes: &[String],
    truth: Option<usize>,
    width: f32,
) {
    let best = probs
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(k, _)| k);
    egui::Grid::new(ui.next_auto_id())
        .num_columns(3)
        .spacing([6.0, 2.0])
        .show(ui, |ui| {
            for (k, p) in probs.iter().enumerate() {
                let name = classes.get(k).cloned().unwrap_or_else(|| k.to_string());
                let mark = if truth == Some(k) { " ✔" } else { "" };
                ui.label(RichText::new(format!("{name}{mark}")).small());
                let (rect, _) =
                    ui.allocate_exact_size(Vec2::new(width, 12.0), egui::Sense::hover());
                let painter = ui.painter_at(rect);
                painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
                let fill = if Some(k) == best {
                    ui.visuals().selection.bg_fill
                } else {
                    ui.visuals().weak_text_color()
                };
                let mut bar = rect;
                bar.set_width(rect.width() * p.clamp(0.0, 1.0));
                painter.rect_filled(bar, 2.0, fill);
                ui.label(
                    RichText::new(format!("{:.1}%", p * 100.0))
                        .small()
                        .monospace(),
                );
                ui.end_row();
            }
        });
}

/// Per column (method), the best and the worst combination row (not the average row).
pub fn column_extremes(table: &ComparisonTable) -> Vec<(usize, usize)> {
    let rows = table.rows.len().saturating_sub(1);
    (0..table.methods.len())
        .map(|c| {
            let value = |r: usize| table.cells[r][c].0;
            let better = |a: f64, b: f64| {
                if table.metric.higher_is_better() {
                    a > b
                } else {
                    a < b
                }
            };
            let mut best = 0;
            let mut worst = 0;
            for r in 1..rows {
                if better(value(r), value(best)) {
                    best = r;
                }
                if better(value(worst), value(r)) {
                    worst = r;
                }
            }
            (best, worst)
        })
        .collect()
}

/// The per-combination table: each method's best combination in green, its worst in red, and
/// the best method of each row in bold.
pub fn comparison_table(ui: &mut egui::Ui, table: &ComparisonTable, id: &str) {
    let extremes = column_extremes(table);
    let good = Color32::from_rgb(60, 170, 90);
    let bad = Color32::from_rgb(220, 80, 70);
    egui::Grid::new(id)
        .striped(true)
        .num_columns(table.methods.len() + 1)
        .show(ui, |ui| {
            ui.label(RichText::new(table.metric.name()).strong());
            for m in &table.methods {
                ui.label(RichText::new(m).strong());
            }
            ui.end_row();
            for (r, label) in table.rows.iter().enumerate() {
                let average = r + 1 == table.rows.len();
                let text = RichText::new(label);
                ui.label(if average { text.strong() } else { text });
                let row_best = table.best_in_row(r);
                for (c, &(mean, std)) in table.cells[r].iter().enumerate() {
                    let mut text = if table.runs[c] > 1 {
                        RichText::new(format!("{mean:.2} ± {std:.2}"))
                    } else {
                        RichText::new(format!("{mean:.2}"))
                    }
                    .monospace();
                    if row_best == Some(c) {
                        text = text.strong();
                    }
                    if !average && extremes[c].0 == r {
                        text = text.color(good);
                    } else if !average && extremes[c].1 == r {
                        text = text.color(bad);
                    }
                    ui.label(text);
                }
                ui.end_row();
            }
        });
    ui.label(
        RichText::new("green: a method's best combination · red: its worst · bold: best method")
            .small()
            .weak(),
    );
}
