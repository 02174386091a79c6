//! The mining panel (the picture behind the paper's Fig. 5): per warm-up mining round, each
//! candidate combination's prediction distribution and its KL to the full combination (or, for
//! segmentation, its mIoU and squared gap), the accumulated memory bank, and the weak set MAR
//! chose.

use super::panel::{Panel, PanelContext};
use eframe::egui::{self, Color32, RichText, Vec2};
use egui_plot::{Bar, BarChart, Corner, Legend, Line, Plot, PlotPoints};
use mmanet_core::losses::mar::weak_set_of;
use mmanet_core::mining::{MiningTrace, RoundMeasure};
use mmanet_core::modality::ModalitySet;

/// Colour of the weak combinations.
const WEAK: Color32 = Color32::from_rgb(220, 80, 70);
/// Colour of this round's KL bars.
const KL_COLOR: Color32 = Color32::from_rgb(150, 150, 160);
/// Colour of the other bank bars.
const BANK_COLOR: Color32 = Color32::from_rgb(70, 130, 200);
/// Colours of the other candidates' bank curves (no red: red marks the weak set).
const OTHERS: [Color32; 4] = [
    Color32::from_rgb(70, 130, 200),
    Color32::from_rgb(90, 180, 120),
    Color32::from_rgb(200, 170, 60),
    Color32::from_rgb(160, 120, 200),
];

/// The mining panel's own state: which stage's mining and which round are on show.
#[derive(Default)]
pub struct MiningPanel {
    /// The stage picked (the first mined one when `None` or gone).
    stage: Option<String>,
    /// The mining round on show.
    round: usize,
}

impl MiningPanel {
    /// Shows the first mined stage and its last round (a run was opened).
    pub fn show_latest(&mut self) {
        self.stage = None;
        self.round = usize::MAX;
    }
}

impl Panel for MiningPanel {
    fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext<'_>) {
        let mined: Vec<(String, MiningTrace)> = ctx
            .session
            .stages
            .iter()
            .filter_map(|s| Some((s.name.clone(), s.mining()?)))
            .collect();
        if mined.is_empty() {
            ui.label(
                "No mining yet. Train MMANet (Training panel): during its warm-up epochs MAR \
                 measures how far each candidate combination's predictions are from the full \
                 combination's, accumulates that in a memory bank, and picks the weakest.",
            );
            return;
        }
        let names = ctx.session.modality_names();
        let classes = ctx.session.class_names();
        let shown = self
            .stage
            .clone()
            .filter(|n| mined.iter().any(|(m, _)| m == n))
            .unwrap_or_else(|| mined[0].0.clone());
        if mined.len() > 1 {
            ui.horizontal(|ui| {
                ui.label("stage:");
                for (n, _) in &mined {
                    if ui.selectable_label(*n == shown, n).clicked() {
                        self.stage = Some(n.clone());
                    }
                }
            });
        }
        let Some((_, trace)) = mined.iter().find(|(n, _)| *n == shown) else {
            return;
        };
        let label = |s: &ModalitySet| s.short_label(&names);
        match (&trace.weak_set, trace.chosen_after_epoch) {
            (Some(weak), Some(epoch)) => {
                let chosen = weak.first().map(label).unwrap_or_default();
                let why = if weak.len() == 1 {
                    "the candidate with the largest bank value".to_string()
                } else {
                    format!(
                        "the candidate with the largest bank value, {chosen}, and its sub-combinations"
                    )
                };
                ui.label(
                    RichText::new(format!(
                        "Weak set chosen after epoch {epoch}: {} ({why}) — the regularization head trains on {}.",
                        weak.iter().map(label).collect::<Vec<_>>().join(", "),
                        if weak.len() == 1 { "its samples" } else { "these" }
                    ))
                    .strong(),
                );
            }
            _ => {
                ui.label(format!(
                    "Mining: {} round(s) so far; the weak set is chosen at the end of the warm-up.",
                    trace.rounds.len()
                ));
            }
        }
        if trace.rounds.is_empty() {
            return;
        }
        let last = trace.rounds.len() - 1;
        if self.round > last {
            self.round = last;
        }
        ui.horizontal(|ui| {
            ui.label("mining round:");
            for (k, r) in trace.rounds.iter().enumerate() {
                if ui
                    .selectable_label(self.round == k, format!("after epoch {}", r.epoch))
                    .clicked()
                {
                    self.round = k;
                }
            }
        });
        let round = &trace.rounds[self.round];
        let weak: Vec<ModalitySet> = trace.weak_set.clone().unwrap_or_default();
        let top = trace
            .weak_set
            .as_ref()
            .and_then(|w| w.first().copied())
            .or_else(|| {
                // not chosen yet: the current leader of the bank
                round
                    .bank
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(k, _)| round.combinations[k])
            });
        let leader_set = top.map(weak_set_of).unwrap_or_default();
        let candidates = &round.combinations[..round.combinations.len() - 1];
        let x_labels: Vec<String> = candidates.iter().map(label).collect();

        let avail = ui.available_height();
        ui.columns(2, |cols| {
            let ui = &mut cols[0];
            let what = round.measure.discrepancy_name();
            ui.label(
                RichText::new(format!(
                    "{what} to the full combination, this round · memory bank"
                ))
                .strong(),
            );
            let kl: Vec<Bar> = round
                .discrepancy
                .iter()
                .enumerate()
                .map(|(k, v)| {
                    Bar::new(k as f64 - 0.18, *v)
                        .width(0.34)
                        .name(&x_labels[k])
                        .fill(KL_COLOR)
                })
                .collect();
            let bank: Vec<Bar> = round
                .bank
                .iter()
                .enumerate()
                .map(|(k, v)| {
                    let bar = Bar::new(k as f64 + 0.18, *v).width(0.34).name(&x_labels[k]);
                    bar.fill(if leader_set.contains(&candidates[k]) {
                        WEAK
                    } else {
                        BANK_COLOR
                    })
                })
                .collect();
            let labels = x_labels.clone();
            Plot::new("mining_bank")
                .height((avail * 0.5).max(180.0))
                .legend(Legend::default().position(Corner::LeftTop))
                .allow_drag(false)
                .allow_zoom(false)
                .allow_scroll(false)
                .include_y(0.0)
                .x_axis_formatter(move |mark, _| {
                    let k = mark.value.round();
                    if (mark.value - k).abs() < 1e-6 && k >= 0.0 {
                        labels.get(k as usize).cloned().unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .show(ui, |p| {
                    p.bar_chart(BarChart::new(format!("{what} this round"), kl).color(KL_COLOR));
                    p.bar_chart(BarChart::new("bank (Σ over rounds)", bank).color(BANK_COLOR));
                });
            ui.label(
                RichText::new("red: the weak combination (largest bank) and its subsets")
                    .small()
                    .color(WEAK),
            );

            let ui = &mut cols[1];
            let combination_label = |k: usize, set: &ModalitySet| {
                let full = k + 1 == round.combinations.len();
                let mut text = RichText::new(if full {
                    format!("{} (full)", label(set))
                } else {
                    format!("{}  {what} {:.2e}", label(set), round.discrepancy[k])
                })
                .small()
                .monospace();
                if leader_set.contains(set) {
                    text = text.color(WEAK);
                }
                text
            };
            match &round.measure {
                RoundMeasure::Distributions(distributions) => {
                    ui.label(RichText::new("prediction distribution per combination").strong());
                    ui.label(
                        RichText::new(
                            "share of validation samples predicted as each class (official mining)",
                        )
                        .small()
                        .weak(),
                    );
                    egui::Grid::new("distributions")
                        .num_columns(2)
                        .spacing([8.0, 6.0])
                        .show(ui, |ui| {
                            for (k, set) in round.combinations.iter().enumerate() {
                                ui.label(combination_label(k, set));
                                distribution_bars(ui, &distributions[k], classes.len());
                                ui.end_row();
                            }
                        });
                }
                RoundMeasure::Miou(miou) => {
                    ui.label(RichText::new("validation mIoU per combination").strong());
                    egui::Grid::new("miou")
                        .num_columns(2)
                        .spacing([8.0, 6.0])
                        .show(ui, |ui| {
                            for (k, set) in round.combinations.iter().enumerate() {
                                ui.label(combination_label(k, set));
                                ui.label(format!("{:.1}%", miou[k] * 100.0));
                                ui.end_row();
                            }
                        });
                }
            }
        });
        ui.add_space(6.0);
        ui.label(RichText::new("memory bank after each mining round").strong());
        Plot::new("bank_rounds")
            .height((ui.available_height() - 30.0).max(120.0))
            .legend(Legend::default().position(Corner::LeftTop))
            .x_axis_label("epoch")
            .include_y(0.0)
            .show(ui, |p| {
                for (k, c) in trace.candidates.iter().enumerate() {
                    let points: Vec<[f64; 2]> = trace
                        .rounds
                        .iter()
                        .filter_map(|r| Some([r.epoch as f64, *r.bank.get(k)?]))
                        .collect();
                    let line = Line::new(label(c), PlotPoints::from(points));
                    p.line(if leader_set.contains(c) {
                        line.color(WEAK).width(2.5)
                    } else {
                        line.color(OTHERS[k % OTHERS.len()])
                    });
                }
            });
        if !weak.is_empty() && !trace.final_bank.is_empty() {
            ui.add_space(6.0);
            ui.label(
                RichText::new(format!(
                    "final bank: {}",
                    trace
                        .candidates
                        .iter()
                        .zip(&trace.final_bank)
                        .map(|(c, v)| format!("{} {v:.3e}", label(c)))
                        .collect::<Vec<_>>()
                        .join(" · ")
                ))
                .small()
                .monospace(),
            );
        }
    }
}

/// A class distribution as a row of small vertical bars.
fn distribution_bars(ui: &mut egui::Ui, dist: &[f64], classes: usize) {
    let n = dist.len().max(classes).max(1);
    let size = Vec2::new((n as f32 * 14.0).clamp(60.0, 240.0), 28.0);
    let (rect, response) = ui.allocate_exact_size(size, egui::Sense::hover());
    let painter = ui.painter_at(rect);
    painter.rect_filled(rect, 2.0, ui.visuals().extreme_bg_color);
    let max = dist.iter().cloned().fold(1e-9, f64::max);
    let w = rect.width() / n as f32;
    for (k, v) in dist.iter().enumerate() {
        let h = (v / max) as f32 * (rect.height() - 2.0);
        painter.rect_filled(
            egui::Rect::from_min_max(
                egui::pos2(rect.left() + k as f32 * w + 1.0, rect.bottom() - h),
                egui::pos2(rect.left() + (k + 1) as f32 * w - 1.0, rect.bottom()),
            ),
            1.0,
            ui.visuals().selection.bg_fill,
        );
    }
    response.on_hover_text(
        dist.iter()
            .enumerate()
            .map(|(k, v)| format!("class {k}: {:.1}%", v * 100.0))
            .collect::<Vec<_>>()
            .join("\n"),
    );
}
