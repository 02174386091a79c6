//! The inference explorer: pick a test sample, switch modalities on and off, and watch the
//! deployment network's class probabilities beside SF-MD's and the teacher's (all
//! modalities); below, the run's per-combination test table.

use super::predictor::PredictorReply;
use super::{MmanetApp, draw, platform};
use eframe::egui::{self, RichText};

impl MmanetApp {
    pub(super) fn explorer_panel(&mut self, ui: &mut egui::Ui) {
        let Some(data) = self.session.data.clone() else {
            ui.label("Load data first (Data panel).");
            return;
        };
        let test = &data.split.test;
        if test.is_empty() {
            ui.label("The test split is empty.");
            return;
        }
        self.explorer.position = self.explorer.position.min(test.len() - 1);
        let names = data.source.modality_names();
        if self.explorer.present.len() != names.len() {
            self.explorer.present = vec![true; names.len()];
        }
        let classes = self.session.class_names();

        egui::Panel::left("explorer_sample")
            .resizable(true)
            .default_size(360.0)
            .show(ui, |ui| {
                ui.heading("Test sample");
                ui.horizontal(|ui| {
                    if ui.button("◀").clicked() {
                        self.explorer.position = self.explorer.position.saturating_sub(1);
                    }
                    ui.add(
                        egui::DragValue::new(&mut self.explorer.position)
                            .range(0..=test.len() - 1)
                            .prefix("#"),
                    )
                    .on_hover_text("position in the test split");
                    if ui.button("▶").clicked() {
                        self.explorer.position = (self.explorer.position + 1).min(test.len() - 1);
                    }
                    if ui
                        .button("🎲")
                        .on_hover_text("a random test sample")
                        .clicked()
                    {
                        let t = ui.input(|i| i.time);
                        self.explorer.position = ((t * 7919.0) as usize) % test.len();
                    }
                    ui.label(format!("of {}", test.len()));
                });
                let sample = test[self.explorer.position];
                ui.horizontal(|ui| {
                    let can_read = data.source.reads_sample_files() && !platform::IN_BROWSER;
                    let load = ui
                        .add_enabled(can_read, egui::Button::new("📂 Load sample from files…"))
                        .on_hover_text(
                            "one image per modality, preprocessed as the dataset's test images",
                        )
                        .on_disabled_hover_text("this dataset's samples are not image files");
                    if load.clicked() {
                        let paths: Option<Vec<_>> = names
                            .iter()
                            .map(|n| {
                                platform::pick_file(
                                    &format!("Choose the {n} image"),
                                    "image",
                                    &["png", "jpg", "jpeg"],
                                )
                            })
                            .collect();
                        if let Some(paths) = paths {
                            self.load_explorer_sample(&paths);
                        }
                    }
                    if self.explorer.loaded.is_some() && ui.button("back to test samples").clicked()
                    {
                        self.explorer.loaded = None;
                    }
                });
                match &self.explorer.loaded {
                    Some((files, _)) => {
                        ui.label(format!("sample read from {files} · true class unknown"));
                    }
                    None => {
                        let label = data.source.label(sample);
                        ui.label(format!(
                            "dataset index {sample} · true class: {}",
                            classes.get(label).cloned().unwrap_or_default()
                        ));
                    }
                }
                ui.add_space(6.0);
                ui.label(RichText::new("Modalities present:").strong());
                ui.horizontal(|ui| {
                    for (m, name) in names.iter().enumerate() {
                        let on = self.explorer.present[m];
                        let others = self.explorer.present.iter().filter(|p| **p).count();
                        // at least one modality stays on: no model is defined on the empty set
                        ui.add_enabled_ui(!on || others > 1, |ui| {
                            ui.checkbox(&mut self.explorer.present[m], name);
                        });
                    }
                });
                ui.add_space(6.0);
                match &self.explorer.loaded {
                    Some((_, values)) => draw::sample_modalities(
                        ui,
                        &mut self.textures,
                        values.as_ref(),
                        (0, draw::LOADED_KEY),
                        Some(&self.explorer.present),
                        96.0,
                    ),
                    None => draw::sample_modalities(
                        ui,
                        &mut self.textures,
                        data.source.as_ref(),
                        (sample, sample),
                        Some(&self.explorer.present),
                        96.0,
                    ),
                }
            });
        self.request_prediction();

        egui::CentralPanel::default().show(ui, |ui| {
            egui::ScrollArea::vertical().show(ui, |ui| {
                self.explorer_predictions(ui, &classes);
                ui.add_space(10.0);
                if let Some(run) = &self.session.run {
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

    fn explorer_predictions(&mut self, ui: &mut egui::Ui, classes: &[String]) {
        let names = self.session.modality_names();
        match &self.explorer.models {
            None if self.explorer.models_of.is_none() => {
                ui.label(
                    "No trained models yet: train a run (Training panel) or open one (Runs panel).",
                );
                return;
            }
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label("loading the run's models…");
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
            .explorer
            .requested
            .filter(|(s, _)| *s != super::predictor::LOADED_SAMPLE)
            .and_then(|(s, _)| Some(self.session.data.as_ref()?.source.label(s)));
        match &self.explorer.prediction {
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
                        draw::probability_bars(ui, &m.probs, classes, truth, width);
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
}
