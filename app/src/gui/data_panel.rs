//! The data panel: choose mfeat, the synthetic anti-spoofing generator or the synthetic RGB-D
//! scene generator (each with its cue-strength sliders), or a manifest file (dialog or drag
//! and drop); counts per split and class (samples, or labelled pixels for segmentation); a
//! sample gallery (for segmentation: RGB, depth in Turbo with its scale, and the labels in the
//! class palette with a legend).

use super::panel::{Action, Panel, PanelContext};
use super::settings::{DataChoice, Preset};
use super::{draw, platform, seg_view};
use eframe::egui::{self, RichText};
use mmanet_core::experiment::LoadedData;

/// Which split and page the gallery shows.
#[derive(Default)]
pub struct GalleryState {
    /// 0 train, 1 val, 2 test.
    pub split: usize,
    /// Page (of [`GALLERY_PAGE`] samples).
    pub page: usize,
}

/// Samples per gallery page.
pub const GALLERY_PAGE: usize = 12;

/// One grid row of a generator's settings: `name`, then `slider` (labelled by it, with `hint`
/// on hover). True when the user lets go of the slider: the data reloads then, not at every step
/// of a drag.
fn slider_row(ui: &mut egui::Ui, name: &str, slider: egui::Slider<'_>, hint: Option<&str>) -> bool {
    let l = ui.label(name);
    let mut response = ui.add(slider).labelled_by(l.id);
    if let Some(hint) = hint {
        response = response.on_hover_text(hint);
    }
    ui.end_row();
    response.drag_stopped()
}

/// The generator's seed row; true when the seed changed.
fn seed_row(ui: &mut egui::Ui, seed: &mut u64) -> bool {
    let l = ui.label("seed");
    let changed = ui
        .add(egui::DragValue::new(seed))
        .labelled_by(l.id)
        .changed();
    ui.end_row();
    changed
}

/// The data panel's own state: the gallery's split and page.
#[derive(Default)]
pub struct DataPanel {
    gallery: GalleryState,
}

impl DataPanel {
    /// Starts the gallery over (new data was loaded).
    pub fn reset_gallery(&mut self) {
        self.gallery = GalleryState::default();
    }
}

impl Panel for DataPanel {
    fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext<'_>) {
        egui::Panel::left("data_source")
            .resizable(true)
            .default_size(300.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| data_source(ui, ctx));
            });
        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| self.data_overview(ui, ctx));
        });
    }
}

/// The data source: its choice, the generators' sliders, the manifest, and Load.
fn data_source(ui: &mut egui::Ui, ctx: &mut PanelContext<'_>) {
    ui.heading("Source");
    let before = ctx.settings.data;
    for choice in [
        DataChoice::Mfeat,
        DataChoice::Synthetic,
        DataChoice::Scenes,
        DataChoice::Manifest,
    ] {
        // a page cannot read a dataset's folder of files
        if choice != DataChoice::Manifest || !platform::IN_BROWSER {
            ui.radio_value(&mut ctx.settings.data, choice, choice.label());
        }
    }
    let mut reload = false;
    if ctx.settings.data != before {
        ctx.settings.use_preset(Preset::for_data(ctx.settings.data));
        reload = ctx.settings.data != DataChoice::Manifest || ctx.settings.manifest.is_some();
    }
    ui.add_space(6.0);
    match ctx.settings.data {
        DataChoice::Mfeat => {
            ui.label(
                "2,000 handwritten digits seen through three views: pix (pixels), fou \
                 (Fourier coefficients), mor (6 morphological features, a weak view).",
            );
            ui.label(
                RichText::new(
                    "UCI Multiple Features, R. P. W. Duin — CC BY 4.0 (see core/data/mfeat/README.md)",
                )
                .small()
                .weak(),
            );
        }
        DataChoice::Synthetic => {
            let s = &mut ctx.settings.synthetic;
            ui.label("Face anti-spoofing images: live vs spoof, with a cue of adjustable strength in each modality.");
            let mut changed = false;
            egui::Grid::new("synthetic").num_columns(2).show(ui, |ui| {
                for (name, v) in [
                    ("RGB cue", &mut s.rgb_strength),
                    ("Depth cue", &mut s.depth_strength),
                    ("IR cue", &mut s.ir_strength),
                    ("noise σ", &mut s.noise),
                ] {
                    changed |= slider_row(ui, name, egui::Slider::new(v, 0.0..=1.0), None);
                }
                changed |= slider_row(
                    ui,
                    "samples",
                    egui::Slider::new(&mut s.samples, 100..=4000),
                    None,
                );
                changed |= slider_row(
                    ui,
                    "image side",
                    egui::Slider::new(&mut s.size, 16..=64),
                    None,
                );
                changed |= seed_row(ui, &mut s.seed);
            });
            reload |= changed;
        }
        DataChoice::Scenes => {
            let s = &mut ctx.settings.scenes;
            ui.label(
                "RGB-D scenes for segmentation: a wall and a floor; a box and a step that only \
                 depth shows, a poster and a rug that only colour shows, and a lamp both show.",
            );
            let mut changed = false;
            egui::Grid::new("scenes").num_columns(2).show(ui, |ui| {
                for (name, v, range, hint) in [
                    (
                        "RGB cue %",
                        &mut s.rgb_cue_percent,
                        0..=100,
                        "how far the poster's and rug's colours are from the wall's and floor's",
                    ),
                    (
                        "Depth cue %",
                        &mut s.depth_cue_percent,
                        0..=100,
                        "how far the box and the step stand out",
                    ),
                    ("RGB noise σ", &mut s.rgb_noise, 0..=60, "in 0..255 units"),
                    ("depth noise σ (mm)", &mut s.depth_noise, 0..=400, "in mm"),
                    (
                        "depth dropout %",
                        &mut s.depth_dropout_percent,
                        0..=50,
                        "missing depth readings, as a real sensor",
                    ),
                ] {
                    changed |= slider_row(ui, name, egui::Slider::new(v, range), Some(hint));
                }
                changed |= slider_row(
                    ui,
                    "scenes",
                    egui::Slider::new(&mut s.scenes, 30..=1000),
                    None,
                );
                for (name, v) in [("height", &mut s.height), ("width", &mut s.width)] {
                    let slider = egui::Slider::new(v, 32..=256).step_by(32.0);
                    changed |= slider_row(ui, name, slider, Some("a multiple of 32"));
                }
                changed |= seed_row(ui, &mut s.seed);
            });
            reload |= changed;
        }
        DataChoice::Manifest => {
            ui.label("A dataset manifest (TOML: CSV views, CASIA-SURF / CeFA image lists, or an NYUv2 / Cityscapes tree for segmentation), or a CASIA-SURF list file (train_list.txt, with the official val and test lists beside it). Drop the file on the window or:");
            if ui.button("Open manifest or list…").clicked()
                && let Some(path) = platform::pick_file(
                    "Open a manifest or list",
                    "manifest or CASIA-SURF list",
                    &["toml", "txt"],
                )
            {
                ctx.settings.manifest = Some(path);
                reload = true;
            }
            if let Some(p) = &ctx.settings.manifest {
                ui.label(RichText::new(p.display().to_string()).monospace().small());
            }
        }
    }
    ui.add_space(6.0);
    if ui.button("⟳ Load").clicked() {
        reload = true;
    }
    if reload {
        ctx.ask(Action::LoadData);
    }
    if let Some(e) = &ctx.session.data_error {
        ui.add_space(6.0);
        ui.colored_label(ui.visuals().error_fg_color, e);
    }
}

impl DataPanel {
    /// The loaded data: its counts per split and class, and the sample gallery.
    fn data_overview(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext<'_>) {
        let (Some(summary), Some(data)) = (&ctx.session.data_summary, &ctx.session.data) else {
            ui.label("No data loaded.");
            return;
        };
        ui.heading(&summary.name);
        ui.label(format!("modalities: {}", summary.modalities.join(" · ")));
        ui.add_space(4.0);
        egui::CollapsingHeader::new(format!("{} per split and class", summary.unit))
            .default_open(true)
            .show(ui, |ui| {
                egui::Grid::new("counts").striped(true).show(ui, |ui| {
                    ui.label("");
                    for c in &summary.classes {
                        ui.label(RichText::new(c).small());
                    }
                    ui.label(RichText::new("total").strong());
                    ui.end_row();
                    for (k, name) in ["train", "val", "test"].iter().enumerate() {
                        ui.label(*name);
                        for n in &summary.counts[k] {
                            ui.label(n.to_string());
                        }
                        ui.label(
                            RichText::new(summary.counts[k].iter().sum::<u64>().to_string())
                                .strong(),
                        );
                        ui.end_row();
                    }
                });
            });
        ui.add_space(8.0);
        let split = data.split().clone();
        let splits = [&split.train, &split.val, &split.test];
        ui.horizontal(|ui| {
            ui.label("Gallery:");
            for (k, name) in ["train", "val", "test"].iter().enumerate() {
                if ui
                    .selectable_label(self.gallery.split == k, *name)
                    .clicked()
                {
                    self.gallery.split = k;
                    self.gallery.page = 0;
                }
            }
            let pages = splits[self.gallery.split]
                .len()
                .div_ceil(GALLERY_PAGE)
                .max(1);
            self.gallery.page = self.gallery.page.min(pages - 1);
            if ui.button("◀").clicked() {
                self.gallery.page = self.gallery.page.saturating_sub(1);
            }
            ui.label(format!("page {} / {pages}", self.gallery.page + 1));
            if ui.button("▶").clicked() {
                self.gallery.page = (self.gallery.page + 1).min(pages - 1);
            }
        });
        let indices = splits[self.gallery.split];
        let start = self.gallery.page * GALLERY_PAGE;
        let classes = summary.classes.clone();
        let page: Vec<usize> = indices
            .iter()
            .skip(start)
            .take(GALLERY_PAGE)
            .copied()
            .collect();
        match data.clone() {
            LoadedData::Classification(data) => {
                let source = data.source.clone();
                egui::Grid::new("gallery")
                    .num_columns(3)
                    .spacing([18.0, 12.0])
                    .show(ui, |ui| {
                        for (k, &i) in page.iter().enumerate() {
                            ui.vertical(|ui| {
                                let label = source.label(i);
                                ui.label(
                                    RichText::new(format!(
                                        "#{i} · {}",
                                        classes.get(label).cloned().unwrap_or_default()
                                    ))
                                    .small(),
                                );
                                draw::sample_modalities(
                                    ui,
                                    ctx.textures,
                                    source.as_ref(),
                                    (i, i),
                                    None,
                                    48.0,
                                );
                            });
                            if k % 3 == 2 {
                                ui.end_row();
                            }
                        }
                    });
            }
            LoadedData::Segmentation(data) => {
                seg_view::legend(ui, &classes);
                ui.add_space(4.0);
                let source = data.source.source.clone();
                egui::Grid::new("seg_gallery")
                    .num_columns(2)
                    .spacing([18.0, 12.0])
                    .show(ui, |ui| {
                        for (k, &i) in page.iter().enumerate() {
                            ui.vertical(|ui| {
                                ui.label(RichText::new(format!("scene {i}")).small());
                                match source.scene(i) {
                                    Ok(scene) => seg_view::scene_row(
                                        ui,
                                        ctx.textures,
                                        &scene,
                                        &format!("gallery-{i}"),
                                        None,
                                        true,
                                        56.0,
                                    ),
                                    Err(e) => {
                                        ui.colored_label(
                                            ui.visuals().error_fg_color,
                                            e.to_string(),
                                        );
                                    }
                                }
                            });
                            if k % 2 == 1 {
                                ui.end_row();
                            }
                        }
                    });
            }
        }
    }
}
