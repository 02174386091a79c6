//! The training panel: preset, methods, α, β, warm-up, epochs, device; start / pause / stop;
//! live plots of the loss terms (linear or logarithmic axis), per-combination validation
//! accuracy (mIoU for segmentation), the learning rate and, when the schedule cycles it, the
//! momentum.

use super::panel::{Action, Panel, PanelContext, run_buttons};
use super::session::StageLog;
use super::settings::{METHOD_CHOICES, Preset};
use super::{SHORTCUT_PAUSE, SHORTCUT_START, SHORTCUT_STOP, platform};
use eframe::egui::{self, RichText};
use egui_plot::{HoverPosition, Legend, Line, Plot, PlotPoints};
use mmanet_core::config::Method;
use mmanet_core::device::DeviceChoice;

/// The training panel's own state: the stage whose curves are on show.
#[derive(Default)]
pub struct TrainingPanel {
    /// The stage picked (the live one, else the last, when `None` or gone).
    pub(super) plot_stage: Option<String>,
}

impl TrainingPanel {
    /// Follows the live stage again (a run started).
    pub fn follow_live_stage(&mut self) {
        self.plot_stage = None;
    }
}

impl Panel for TrainingPanel {
    fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext<'_>) {
        egui::Panel::left("training_settings")
            .resizable(true)
            .default_size(290.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| training_settings(ui, ctx));
            });
        egui::CentralPanel::default().show(ui, |ui| self.training_plots(ui, ctx));
    }
}

/// The experiment's settings, the run buttons, the device and the log.
fn training_settings(ui: &mut egui::Ui, ctx: &mut PanelContext<'_>) {
    let idle = !ctx.session.status.is_active();
    ui.add_enabled_ui(idle, |ui| {
        ui.heading("Experiment");
        let mut preset = ctx.settings.preset;
        egui::ComboBox::from_label("preset")
            .selected_text(preset.file())
            .show_ui(ui, |ui| {
                for p in Preset::ALL {
                    ui.selectable_value(&mut preset, p, p.file());
                }
            });
        if let Some((finding, better)) = ctx.settings.preset.finding() {
            ui.label(egui::RichText::new(finding).small());
            if let Some(better) = better
                && ui
                    .small_button(format!("Switch to {}", better.file()))
                    .on_hover_text("the preset where MMANet was measured to beat SF-MD")
                    .clicked()
            {
                preset = better;
            }
        }
        if preset != ctx.settings.preset {
            let other_task = preset.task() != ctx.settings.data_task();
            ctx.settings.use_preset(preset);
            // a preset of the other task brings its data
            if other_task {
                ctx.settings.data = preset.data_choice();
                ctx.ask(Action::LoadData);
            }
        }
        let s = &mut *ctx.settings;
        ui.add_space(4.0);
        ui.label("Methods (each a column of the results table):");
        for m in METHOD_CHOICES {
            let mut on = s.methods.contains(&m);
            let hint = match m {
                Method::SfMd => "one network, modality dropout on encoder outputs",
                Method::Mad => "SF-MD + margin-aware distillation from the teacher",
                Method::Mmanet => "SF-MD + MAD + MAR (mined weak combinations)",
                Method::Sf => "one model per combination (7× the training)",
                _ => "",
            };
            if ui
                .checkbox(&mut on, m.label())
                .on_hover_text(hint)
                .changed()
            {
                if on {
                    s.methods.push(m);
                } else {
                    s.methods.retain(|x| *x != m);
                }
            }
        }
        ui.add_space(4.0);
        egui::Grid::new("knobs").num_columns(2).show(ui, |ui| {
            let l = ui.label("α (MAD weight)");
            ui.add(
                egui::DragValue::new(&mut s.alpha)
                    .speed(0.1)
                    .range(0.0..=100.0),
            )
            .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("β (MAR weight)");
            ui.add(
                egui::DragValue::new(&mut s.beta)
                    .speed(0.01)
                    .range(0.0..=10.0),
            )
            .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("warm-up epochs");
            ui.add(egui::DragValue::new(&mut s.warmup_epochs).range(1..=100))
                .labelled_by(l.id)
                .on_hover_text(
                    "MAD and MAR start after this epoch; MAR mines in the three epochs before it",
                );
            ui.end_row();
            let l = ui.label("epochs");
            ui.add(egui::DragValue::new(&mut s.epochs).range(1..=500))
                .labelled_by(l.id);
            ui.end_row();
            let l = ui.label("batch size");
            let mut batch = s.effective_batch_size().unwrap_or(64);
            if ui
                .add(egui::DragValue::new(&mut batch).range(1..=4096))
                .labelled_by(l.id)
                .on_hover_text("samples per training step, teacher and students (from the preset until changed)")
                .changed()
            {
                s.batch_size = Some(batch);
            }
            ui.end_row();
            let l = ui.label("device");
            egui::ComboBox::from_id_salt("device")
                .selected_text(device_label(s.device))
                .show_ui(ui, |ui| {
                    for d in [DeviceChoice::Auto, DeviceChoice::Cpu, DeviceChoice::Wgpu] {
                        ui.selectable_value(&mut s.device, d, device_label(d));
                    }
                })
                .response
                .labelled_by(l.id);
            ui.end_row();
            // a page keeps its runs in memory
            if !platform::IN_BROWSER {
                let l = ui.label("output folder");
                let mut out = s.output_dir.display().to_string();
                if ui
                    .text_edit_singleline(&mut out)
                    .labelled_by(l.id)
                    .changed()
                {
                    s.output_dir = out.into();
                }
                ui.end_row();
            }
        });
    });
    ui.add_space(8.0);
    ui.horizontal(|ui| {
        if let Some(action) = run_buttons(ui, ctx.session, ctx.can_resume) {
            ctx.ask(action);
        }
    });
    let egui_ctx = ui.ctx().clone();
    ui.label(
        RichText::new(format!(
            "start {} · pause {} · stop {}",
            egui_ctx.format_shortcut(&SHORTCUT_START),
            egui_ctx.format_shortcut(&SHORTCUT_PAUSE),
            egui_ctx.format_shortcut(&SHORTCUT_STOP)
        ))
        .small()
        .weak(),
    );
    match (&ctx.session.device, ctx.session.status.is_active()) {
        (Some(d), true) => {
            ui.label(RichText::new(format!("training on: {d}")).small());
        }
        _ => match &ctx.device {
            Some(d) => {
                ui.label(RichText::new(format!("device: {d}")).small());
            }
            None => {
                ui.horizontal(|ui| {
                    ui.spinner();
                    ui.label(RichText::new("looking for a GPU adapter…").small());
                });
            }
        },
    }
    ui.add_space(8.0);
    egui::CollapsingHeader::new("log")
        .default_open(true)
        .show(ui, |ui| {
            for m in ctx.session.messages.iter().rev().take(12) {
                ui.label(RichText::new(m).small());
            }
            for s in &ctx.session.stages {
                if let Some((epoch, score)) = s.best {
                    ui.label(
                        RichText::new(format!(
                            "{}: best epoch {epoch}, val {:.2}%",
                            s.name,
                            score * 100.0
                        ))
                        .small(),
                    );
                }
            }
        });
}

impl TrainingPanel {
    /// The stage picker and its curves.
    fn training_plots(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext<'_>) {
        if ctx.session.stages.is_empty() {
            ui.label(
                "Press ▶ Start to train the teacher and the chosen methods on the loaded data.",
            );
            return;
        }
        let names: Vec<String> = ctx.session.stages.iter().map(|s| s.name.clone()).collect();
        let live = ctx.session.current_stage().map(|s| s.name.clone());
        let shown = self
            .plot_stage
            .clone()
            .filter(|n| names.contains(n))
            .or(live)
            .unwrap_or_else(|| names[names.len() - 1].clone());
        ui.horizontal(|ui| {
            ui.label("stage:");
            for n in &names {
                if ui.selectable_label(*n == shown, n).clicked() {
                    self.plot_stage = Some(n.clone());
                }
            }
        });
        let Some(stage) = ctx.session.stages.iter().find(|s| s.name == shown) else {
            return;
        };
        let h = ((ui.available_height() - 60.0) / 3.0).max(120.0);
        let log = ctx.settings.loss_log_scale;
        ui.horizontal(|ui| {
            ui.label(RichText::new("training loss (unweighted terms)").strong());
            ui.checkbox(&mut ctx.settings.loss_log_scale, "log scale")
                .on_hover_text(
                    "a logarithmic axis keeps CE and MAD readable beside a large MAR term",
                );
        });
        let mut loss_plot = Plot::new("loss")
            .height(h)
            .legend(Legend::default())
            .x_axis_label("epoch");
        if log {
            loss_plot = loss_plot
                .y_axis_formatter(|mark, _| format_log_tick(mark.value))
                .label_formatter(|hover| {
                    let (name, at) = match hover {
                        HoverPosition::NearDataPoint {
                            plot_name,
                            position,
                            ..
                        } => (*plot_name, position),
                        HoverPosition::Elsewhere { position } => ("", position),
                    };
                    Some(format!(
                        "{name}\nepoch {:.2}, {}",
                        at.x,
                        format_log_tick(at.y)
                    ))
                });
        }
        loss_plot.show(ui, |p| {
            for (name, points) in loss_series(stage) {
                let points = if log { to_log10(points) } else { points };
                p.line(Line::new(name, PlotPoints::from(points)));
            }
        });
        let metric = match stage.summaries.last().map(|e| e.val_metric) {
            Some(mmanet_core::report::TableMetric::Miou) => "mIoU",
            _ => "accuracy",
        };
        ui.label(RichText::new(format!("validation {metric} per combination (%)")).strong());
        let names = ctx.session.modality_names();
        Plot::new("val")
            .height(h)
            .legend(Legend::default())
            .x_axis_label("epoch")
            .show(ui, |p| {
                for (label, points) in val_series(stage, &names) {
                    p.line(Line::new(label, PlotPoints::from(points)));
                }
            });
        let momentum = momentum_series(stage);
        ui.label(
            RichText::new(if momentum.is_empty() {
                "learning rate"
            } else {
                "learning rate and momentum (β₁ for Adam), which the one-cycle schedule cycles"
            })
            .strong(),
        );
        let lr = lr_series(stage);
        let plot_lr = |ui: &mut egui::Ui, height: f32| {
            Plot::new("lr")
                .height(height)
                .x_axis_label("epoch")
                .show(ui, |p| {
                    p.line(Line::new("lr", PlotPoints::from(lr.clone())));
                });
        };
        if momentum.is_empty() {
            plot_lr(ui, h * 0.6);
        } else {
            ui.columns(2, |cols| {
                plot_lr(&mut cols[0], h * 0.6);
                Plot::new("momentum")
                    .height(h * 0.6)
                    .x_axis_label("epoch")
                    .show(&mut cols[1], |p| {
                        p.line(Line::new("momentum", PlotPoints::from(momentum)));
                    });
            });
        }
    }
}

fn device_label(d: DeviceChoice) -> &'static str {
    match d {
        DeviceChoice::Auto => "auto (GPU if present)",
        DeviceChoice::Cpu => "CPU",
        DeviceChoice::Wgpu => "wgpu (any adapter)",
        #[cfg(feature = "cuda")]
        DeviceChoice::Cuda => "CUDA (NVIDIA GPU)",
    }
}

/// Per loss term, `[epoch position, value]` points: every step while live, else epoch means.
pub fn loss_series(stage: &StageLog) -> Vec<(String, Vec<[f64; 2]>)> {
    let mut series: Vec<(String, Vec<[f64; 2]>)> = Vec::new();
    let mut push = |name: &str, x: f64, y: f32| {
        if !y.is_finite() {
            return;
        }
        match series.iter_mut().find(|(n, _)| n == name) {
            Some((_, pts)) => pts.push([x, f64::from(y)]),
            None => series.push((name.to_string(), vec![[x, f64::from(y)]])),
        }
    };
    if stage.steps.is_empty() {
        for e in &stage.summaries {
            for (name, v) in &e.losses {
                push(name, e.epoch as f64 + 1.0, *v);
            }
        }
    } else {
        for s in &stage.steps {
            let x = s.epoch as f64 + (s.batch + 1) as f64 / s.batches.max(1) as f64;
            for (name, v) in &s.losses {
                push(name, x, *v);
            }
        }
    }
    series
}

/// `[x, log10 y]` for the points with `y > 0` (a logarithmic axis).
pub fn to_log10(points: Vec<[f64; 2]>) -> Vec<[f64; 2]> {
    points
        .into_iter()
        .filter(|p| p[1] > 0.0)
        .map(|[x, y]| [x, y.log10()])
        .collect()
}

/// A tick of a log10 axis as the value it stands for (`10^v`).
pub fn format_log_tick(v: f64) -> String {
    let value = 10f64.powf(v);
    if (1e-3..1e4).contains(&value) {
        format!("{}", (value * 1e3).round() / 1e3)
    } else {
        format!("{value:.0e}")
    }
}

/// `[epoch position, momentum]` points when the schedule cycles the momentum (else none).
pub fn momentum_series(stage: &StageLog) -> Vec<[f64; 2]> {
    schedule_series(stage, |s| s.momentum, |e| e.momentum)
}

/// A schedule value over the stage: every step while live (`of_step`), else per epoch
/// (`of_epoch`); points without a value are left out.
fn schedule_series(
    stage: &StageLog,
    of_step: impl Fn(&mmanet_core::train::StepReport) -> Option<f64>,
    of_epoch: impl Fn(&mmanet_core::train::EpochSummary) -> Option<f64>,
) -> Vec<[f64; 2]> {
    if stage.steps.is_empty() {
        stage
            .summaries
            .iter()
            .filter_map(|e| Some([e.epoch as f64 + 1.0, of_epoch(e)?]))
            .collect()
    } else {
        stage
            .steps
            .iter()
            .filter_map(|s| {
                Some([
                    s.epoch as f64 + (s.batch + 1) as f64 / s.batches.max(1) as f64,
                    of_step(s)?,
                ])
            })
            .collect()
    }
}

/// Per combination, `[epoch, accuracy %]` points.
pub fn val_series(stage: &StageLog, names: &[String]) -> Vec<(String, Vec<[f64; 2]>)> {
    let mut series: Vec<(String, Vec<[f64; 2]>)> = Vec::new();
    for e in &stage.summaries {
        for (set, acc) in &e.val_accuracy {
            let label = set.short_label(names);
            let point = [e.epoch as f64 + 1.0, acc * 100.0];
            match series.iter_mut().find(|(n, _)| *n == label) {
                Some((_, pts)) => pts.push(point),
                None => series.push((label, vec![point])),
            }
        }
    }
    series
}

/// `[epoch position, lr]` points.
pub fn lr_series(stage: &StageLog) -> Vec<[f64; 2]> {
    schedule_series(stage, |s| Some(s.lr), |e| e.lr)
}
