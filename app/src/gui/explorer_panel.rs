//! The inference explorer: pick a test sample, switch modalities on and off, and watch the
//! deployment network's class probabilities (for segmentation: its label map, error map and
//! the scene's mIoU) beside SF-MD's and the teacher's (all modalities); below, the run's
//! per-combination test table.

use super::panel::{Action, Panel, PanelContext};
use super::predictor::{ModelPrediction, PredictorReply};
use super::{LoadedSample, draw, platform, seg_view};
use eframe::egui::{self, RichText};
use mmanet_core::experiment::LoadedData;
use mmanet_core::modality::ModalitySet;
use std::path::PathBuf;

/// The explorer panel's own state: the sample and modalities on show, the loaded models and
/// the answers the predictor gave (which the app hands over as they arrive).
#[derive(Default)]
pub struct ExplorerPanel {
    /// Position in the test split.
    pub position: usize,
    /// Which modalities are switched on.
    pub present: Vec<bool>,
    /// The run whose models are loaded (or loading).
    pub models_of: Option<PathBuf>,
    /// Loaded model labels, or why loading failed.
    pub models: Option<Result<Vec<String>, String>>,
    /// The last request sent: (sample, combination).
    pub requested: Option<(usize, ModalitySet)>,
    /// The answer to it.
    pub prediction: Option<PredictorReply>,
    /// A sample read from files, shown instead of a test sample: its file names and values.
    pub loaded: Option<(String, LoadedSample)>,
    /// The deployment bundle on show (instead of a run's models): its file name, and its test
    /// tables as it carries them.
    pub bundle: Option<(String, Vec<mmanet_core::report::ComparisonTable>)>,
}

impl Panel for ExplorerPanel {
    fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext<'_>) {
        let Some(data) = ctx.session.data.clone() else {
            ui.label("Load data first (Data panel), or open a trained model:");
            self.model_buttons(ui, ctx);
            return;
        };
        let test = &data.split().test.clone();
        if test.is_empty() {
            ui.label("The test split is empty.");
            return;
        }
        self.position = self.position.min(test.len() - 1);
        let names = data.modality_names();
        if self.present.len() != names.len() {
            self.present = vec![true; names.len()];
        }
        let classes = ctx.session.class_names();

        egui::Panel::left("explorer_sample")
            .resizable(true)
            .default_size(360.0)
            .show(ui, |ui| {
                ui.heading("Test sample");
                ui.horizontal(|ui| {
                    if ui.button("◀").clicked() {
                        self.position = self.position.saturating_sub(1);
                    }
                    ui.add(
                        egui::DragValue::new(&mut self.position)
                            .range(0..=test.len() - 1)
                            .prefix("#"),
                    )
                    .on_hover_text("position in the test split");
                    if ui.button("▶").clicked() {
                        self.position = (self.position + 1).min(test.len() - 1);
                    }
                    if ui
                        .button("🎲")
                        .on_hover_text("a random test sample")
                        .clicked()
                    {
                        let t = ui.input(|i| i.time);
                        self.position = ((t * 7919.0) as usize) % test.len();
                    }
                    ui.label(format!("of {}", test.len()));
                });
                let sample = test[self.position];
                ui.horizontal(|ui| {
                    let reads_files = match &data {
                        LoadedData::Classification(d) => d.source.reads_sample_files(),
                        LoadedData::Segmentation(_) => true,
                    };
                    let can_read = reads_files && !platform::IN_BROWSER;
                    let hint = match &data {
                        LoadedData::Classification(_) => {
                            "one image per modality, preprocessed as the dataset's test images"
                        }
                        LoadedData::Segmentation(_) => {
                            "an RGB image and its depth (a 16-bit PNG in the dataset's unit, or a .npy), preprocessed as the dataset's test scenes"
                        }
                    };
                    let load = ui
                        .add_enabled(can_read, egui::Button::new("📂 Load sample from files…"))
                        .on_hover_text(hint)
                        .on_disabled_hover_text("this dataset's samples are not image files");
                    if load.clicked() {
                        let paths: Option<Vec<_>> = match &data {
                            LoadedData::Classification(_) => names
                                .iter()
                                .map(|n| {
                                    platform::pick_file(
                                        &format!("Choose the {n} image"),
                                        "image",
                                        &["png", "jpg", "jpeg"],
                                    )
                                })
                                .collect(),
                            LoadedData::Segmentation(_) => [
                                ("Choose the RGB image", "image", &["png", "jpg", "jpeg"][..]),
                                ("Choose its depth", "depth", &["png", "npy"][..]),
                            ]
                            .into_iter()
                            .map(|(title, what, ext)| platform::pick_file(title, what, ext))
                            .collect(),
                        };
                        if let Some(paths) = paths {
                            ctx.ask(Action::LoadExplorerSample(paths));
                        }
                    }
                    if self.loaded.is_some() && ui.button("back to test samples").clicked()
                    {
                        self.loaded = None;
                    }
                });
                match (&self.loaded, &data) {
                    (Some((files, _)), _) => {
                        ui.label(format!("sample read from {files} · ground truth unknown"));
                    }
                    (None, LoadedData::Classification(d)) => {
                        let label = d.source.label(sample);
                        ui.label(format!(
                            "dataset index {sample} · true class: {}",
                            classes.get(label).cloned().unwrap_or_default()
                        ));
                    }
                    (None, LoadedData::Segmentation(_)) => {
                        ui.label(format!("dataset index {sample}"));
                    }
                }
                ui.add_space(6.0);
                ui.label(RichText::new("Modalities present:").strong());
                ui.horizontal(|ui| {
                    for (m, name) in names.iter().enumerate() {
                        let on = self.present[m];
                        let others = self.present.iter().filter(|p| **p).count();
                        // at least one modality stays on: no model is defined on the empty set
                        ui.add_enabled_ui(!on || others > 1, |ui| {
                            ui.checkbox(&mut self.present[m], name);
                        });
                    }
                });
                ui.add_space(6.0);
                let present = self.present.clone();
                // two pictures (RGB, depth) across the panel; the ground truth is beside the
                // predictions
                let scene_height = |ui: &egui::Ui, h: usize, w: usize| {
                    ((ui.available_width() - 24.0) / 2.0 * h as f32 / w.max(1) as f32)
                        .clamp(40.0, 200.0)
                };
                match (&self.loaded, &data) {
                    (Some((_, LoadedSample::Vectors(values))), _) => draw::sample_modalities(
                        ui,
                        ctx.textures,
                        values.as_ref(),
                        (0, draw::LOADED_KEY),
                        Some(&present),
                        96.0,
                    ),
                    (Some((_, LoadedSample::Scene(scene))), _) => {
                        let h = scene_height(ui, scene.height, scene.width);
                        seg_view::scene_row(
                            ui,
                            ctx.textures,
                            scene,
                            "explorer-loaded",
                            Some(&present),
                            false,
                            h,
                        );
                    }
                    (None, LoadedData::Classification(d)) => draw::sample_modalities(
                        ui,
                        ctx.textures,
                        d.source.as_ref(),
                        (sample, sample),
                        Some(&present),
                        96.0,
                    ),
                    (None, LoadedData::Segmentation(d)) => match d.source.source.scene(sample) {
                        Ok(scene) => {
                            let h = scene_height(ui, scene.height, scene.width);
                            seg_view::scene_row(
                                ui,
                                ctx.textures,
                                &scene,
                                &format!("explorer-{sample}"),
                                Some(&present),
                                false,
                                h,
                            );
                        }
                        Err(e) => {
                            ui.colored_label(ui.visuals().error_fg_color, e.to_string());
                        }
                    },
                }
            });
        ctx.ask(Action::RequestPrediction);

        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                ui.horizontal(|ui| {
                    match &self.bundle {
                        Some((name, _)) => ui.label(format!("model: {name}")),
                        None => match &self.models_of {
                            Some(run) => ui.label(format!("models of the run {}", run.display())),
                            None => ui.label("no model yet"),
                        },
                    };
                    ui.separator();
                    self.model_buttons(ui, ctx);
                });
                ui.separator();
                self.explorer_predictions(ui, ctx, &classes);
                ui.add_space(10.0);
                if let Some((name, tables)) = &self.bundle {
                    ui.label(
                        RichText::new(format!(
                            "Test split, per combination — as {name} scored in its run"
                        ))
                        .strong(),
                    );
                    for (k, table) in tables.iter().enumerate() {
                        draw::comparison_table(ui, table, &format!("explorer_bundle_table_{k}"));
                        ui.add_space(6.0);
                    }
                } else if let Some(run) = &ctx.session.run {
                    ui.label(
                        RichText::new(format!(
                            "Test split, per combination — run {}",
                            run.record.config.name
                        ))
                        .strong(),
                    );
                    for (k, table) in run.tables.iter().enumerate() {
                        draw::comparison_table(ui, table, &format!("explorer_table_{k}"));
                        ui.add_space(6.0);
                    }
                }
            });
        });
    }
}

impl ExplorerPanel {
    /// "Open model…" (a deployment bundle from `mmanet export`; not in the page, which has no
    /// file dialog) and the pretrained mfeat model.
    fn model_buttons(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext<'_>) {
        if !platform::IN_BROWSER
            && ui
                .button("📦 Open model…")
                .on_hover_text("a deployment bundle (.mmanet) written by `mmanet export`")
                .clicked()
            && let Some(path) = platform::pick_file("Open a model", "mmanet bundle", &["mmanet"])
        {
            ctx.ask(Action::OpenBundleFile(path));
        }
        if ui
            .button("✨ Pretrained mfeat model")
            .on_hover_text(
                "MMANet trained on the bundled mfeat digits by `mmanet demo`: try it before training anything",
            )
            .clicked()
        {
            ctx.ask(Action::OpenPretrained);
        }
    }

    fn explorer_predictions(
        &mut self,
        ui: &mut egui::Ui,
        ctx: &mut PanelContext<'_>,
        classes: &[String],
    ) {
        let names = ctx.session.modality_names();
        match &self.models {
            None if self.models_of.is_none() => {
                ui.label(
                    "No trained models yet: train a run (Training panel), open one (Runs panel), or open a model above.",
                );
                return;
            }
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("loading the models…");
                });
                return;
            }
            Some(Err(e)) => {
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("cannot load the models: {e}"),
                );
                return;
            }
            Some(Ok(_)) => {}
        }
        let truth = self
            .requested
            .filter(|(s, _)| *s != super::predictor::LOADED_SAMPLE)
            .and_then(|(s, _)| Some(ctx.session.data.as_ref()?.classification()?.source.label(s)));
        match &self.prediction {
            Some(PredictorReply::Prediction {
                result: Ok(models),
                sample,
                set,
            }) if models.iter().any(|m| m.segmentation().is_some()) => {
                let key = format!("pred-{sample}-{}", set.short_label(&names));
                let models = models.clone();
                self.seg_predictions(ui, ctx, &models, classes, &key);
            }
            Some(PredictorReply::Prediction {
                result: Ok(models), ..
            }) => {
                ui.columns(models.len().max(1), |cols| {
                    for (ui, m) in cols.iter_mut().zip(models) {
                        ui.label(RichText::new(&m.label).strong());
                        ui.label(
                            RichText::new(format!("sees {}", m.set.long_label(&names)))
                                .small()
                                .weak(),
                        );
                        let width = (ui.available_width() - 110.0).max(40.0);
                        let probs = m.probs().unwrap_or_default();
                        draw::probability_bars(ui, probs, classes, truth, width);
                    }
                });
            }
            Some(PredictorReply::Prediction { result: Err(e), .. }) => {
                ui.colored_label(ui.visuals().error_fg_color, e);
            }
            _ => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("predicting…");
                });
            }
        }
    }

    /// The segmentation answers: the ground truth, then per model its label map, its error
    /// map and the scene's scores; with the palette's and the error map's legends.
    fn seg_predictions(
        &mut self,
        ui: &mut egui::Ui,
        ctx: &mut PanelContext<'_>,
        models: &[ModelPrediction],
        classes: &[String],
        key: &str,
    ) {
        let names = ctx.session.modality_names();
        seg_view::legend(ui, classes);
        ui.add_space(4.0);
        let truth = models
            .iter()
            .find_map(|m| m.segmentation())
            .map(|s| s.truth.clone());
        let labelled = truth.as_ref().is_some_and(|t| t.iter().any(|&l| l > 0));
        let columns = models.len() + usize::from(labelled);
        ui.columns(columns.max(1), |cols| {
            let mut cols = cols.iter_mut();
            let first = models.iter().find_map(|m| m.segmentation());
            if labelled && let (Some(ui), Some(seg), Some(truth)) = (cols.next(), first, &truth) {
                let (h, w) = (seg.map.height, seg.map.width);
                let height = (ui.available_width() * h as f32 / w.max(1) as f32).min(220.0);
                ui.label(RichText::new("Ground truth").strong());
                ui.label(RichText::new("the annotation").small().weak());
                seg_view::picture(
                    ui,
                    ctx.textures,
                    &format!("{key}-truth"),
                    height,
                    true,
                    || seg_view::labels_image(truth, h, w),
                );
            }
            for ((k, m), ui) in models.iter().enumerate().zip(cols) {
                let Some(seg) = m.segmentation() else {
                    continue;
                };
                ui.label(RichText::new(&m.label).strong());
                ui.label(
                    RichText::new(format!("sees {}", m.set.long_label(&names)))
                        .small()
                        .weak(),
                );
                let (h, w) = (seg.map.height, seg.map.width);
                let height = (ui.available_width() * h as f32 / w.max(1) as f32).min(220.0);
                seg_view::picture(
                    ui,
                    ctx.textures,
                    &format!("{key}-map-{k}"),
                    height,
                    true,
                    || seg_view::prediction_image(&seg.map),
                );
                if labelled {
                    seg_view::picture(
                        ui,
                        ctx.textures,
                        &format!("{key}-err-{k}"),
                        height,
                        true,
                        || seg_view::error_image(&seg.map, seg.full.as_ref(), &seg.truth),
                    );
                }
                match seg.scores {
                    Some(s) => {
                        ui.label(
                            RichText::new(format!("scene mIoU {:.1}%", s.miou * 100.0)).strong(),
                        )
                        .on_hover_text("mean IoU over the classes in the truth or the prediction");
                        ui.label(format!("pixel accuracy {:.1}%", s.pixel_accuracy * 100.0));
                    }
                    None => {
                        ui.label(
                            RichText::new("no ground truth to score against")
                                .small()
                                .weak(),
                        );
                    }
                }
            }
        });
        if labelled {
            ui.label(RichText::new("error maps (second row):").small());
            seg_view::error_legend(ui);
        }
    }
}
