//! The runs panel: the run folders under the output folder (the same files the CLI writes),
//! open one into the other panels, export a copy, and compare two runs per combination.

use super::panel::{Action, Panel, PanelContext};
use super::{Tab, draw, platform};
use eframe::egui::{self, Color32, RichText};
use mmanet_core::report::ComparisonTable;
use mmanet_core::runs::RunRecord;
use std::path::{Path, PathBuf};

/// The runs panel's own state: the list of runs and the comparison selection.
#[derive(Default)]
pub struct RunsPanel {
    /// Scan the output folder again at the next frame.
    pub rescan: bool,
    scanned: bool,
    /// Runs found: folder and its record (or why it could not be read).
    pub runs: Vec<(PathBuf, Result<RunRecord, String>)>,
    /// Compared runs (indices into `runs`).
    pub compare: [Option<usize>; 2],
    /// Method compared.
    pub method: Option<String>,
}

impl RunsPanel {
    fn scan(&mut self, output_dir: &Path) {
        self.runs = platform::list_run_dirs(output_dir)
            .into_iter()
            .map(|p| {
                let r = platform::open_run_store(&p)
                    .and_then(|s| RunRecord::from_store(s.as_ref()).map_err(|e| e.to_string()));
                (p, r)
            })
            .collect();
        self.compare = [None, None];
        self.scanned = true;
        self.rescan = false;
    }
}

/// One row per combination: (label, value in A, value in B) for `method` in both tables.
pub fn compare_rows(
    a: &ComparisonTable,
    b: &ComparisonTable,
    method: &str,
) -> Vec<(String, Option<f64>, Option<f64>)> {
    let col = |t: &ComparisonTable| t.methods.iter().position(|m| m == method);
    let (ca, cb) = (col(a), col(b));
    a.rows
        .iter()
        .enumerate()
        .map(|(r, label)| {
            let va = ca.map(|c| a.cells[r][c].0);
            let vb = cb.and_then(|c| {
                let rb = b.rows.iter().position(|l| l == label)?;
                Some(b.cells[rb][c].0)
            });
            (label.clone(), va, vb)
        })
        .collect()
}

impl Panel for RunsPanel {
    fn ui(&mut self, ui: &mut egui::Ui, ctx: &mut PanelContext<'_>) {
        if !self.scanned || self.rescan {
            self.scan(&ctx.settings.output_dir);
        }
        ui.horizontal(|ui| {
            if !platform::IN_BROWSER {
                ui.heading(format!("Runs in {}", ctx.settings.output_dir.display()));
            } else {
                ui.heading("This page's runs (kept in memory until the page is closed)");
            }
            if ui.button("⟳ Refresh").clicked() {
                self.rescan = true;
            }
            if !platform::IN_BROWSER
                && ui.button("Open run folder…").clicked()
                && let Some(dir) = platform::pick_folder()
            {
                ctx.ask(Action::OpenRun(dir));
            }
        });
        if self.runs.is_empty() {
            ui.label(
                "No finished runs here yet. Train one in the Training panel, or run `mmanet demo`.",
            );
            return;
        }
        let shown = ctx.session.run.as_ref().map(|r| r.record.dir.clone());
        let mut open: Option<PathBuf> = None;
        let mut export: Option<PathBuf> = None;
        egui::ScrollArea::vertical()
            .max_height(ui.available_height() * 0.45)
            .show(ui, |ui| {
                egui::Grid::new("runs")
                    .striped(true)
                    .num_columns(6)
                    .show(ui, |ui| {
                        for h in ["A", "B", "run", "methods", "average (accuracy or mIoU)", ""] {
                            ui.label(RichText::new(h).strong());
                        }
                        ui.end_row();
                        for (k, (dir, record)) in self.runs.iter().enumerate() {
                            for slot in 0..2 {
                                let mut on = self.compare[slot] == Some(k);
                                if ui.radio(on, "").clicked() {
                                    on = !on;
                                    self.compare[slot] = on.then_some(k);
                                }
                            }
                            let name = dir
                                .file_name()
                                .map(|n| n.to_string_lossy().to_string())
                                .unwrap_or_default();
                            let text = RichText::new(name);
                            ui.label(if shown.as_deref() == Some(dir.as_path()) {
                                text.strong()
                            } else {
                                text
                            });
                            match record {
                                Ok(r) => {
                                    ui.label(
                                        r.reports
                                            .iter()
                                            .map(|x| x.method.as_str())
                                            .collect::<Vec<_>>()
                                            .join(", "),
                                    );
                                    ui.label(
                                        r.reports
                                            .iter()
                                            .map(|x| {
                                                format!(
                                                    "{} {:.2}",
                                                    x.method,
                                                    x.selection_score() * 100.0
                                                )
                                            })
                                            .collect::<Vec<_>>()
                                            .join(" · "),
                                    );
                                }
                                Err(e) => {
                                    ui.colored_label(ui.visuals().error_fg_color, "unreadable");
                                    ui.label(RichText::new(e).small());
                                }
                            }
                            ui.horizontal(|ui| {
                                if ui
                                    .button("Open")
                                    .on_hover_text(
                                        "show in the training, mining and explorer panels",
                                    )
                                    .clicked()
                                {
                                    open = Some(dir.clone());
                                }
                                if ui
                                    .button("Export…")
                                    .on_hover_text("copy the run folder (models, results, config)")
                                    .clicked()
                                {
                                    export = Some(dir.clone());
                                }
                            });
                            ui.end_row();
                        }
                    });
            });
        if let Some(dir) = open {
            ctx.ask(Action::OpenRun(dir));
            ctx.ask(Action::ShowTab(Tab::Explorer));
        }
        if let Some(dir) = export
            && let Some(target) = platform::pick_folder()
        {
            let dest = target.join(dir.file_name().unwrap_or_default());
            ctx.ask(Action::Notice(match copy_dir(&dir, &dest) {
                Ok(()) => format!("exported to {}", dest.display()),
                Err(e) => format!("export failed: {e}"),
            }));
        }
        ui.separator();
        self.compare_view(ui);
    }
}

impl RunsPanel {
    /// Two runs' tables side by side for one method, per combination.
    fn compare_view(&mut self, ui: &mut egui::Ui) {
        let pick = |k: Option<usize>| {
            k.and_then(|k| self.runs.get(k))
                .and_then(|(d, r)| Some((d.clone(), r.as_ref().ok()?.tables().ok()?)))
        };
        let (Some((da, ta)), Some((db, tb))) = (pick(self.compare[0]), pick(self.compare[1]))
        else {
            ui.label("Pick two runs (A and B) to compare them per combination.");
            return;
        };
        if ta[0].metric != tb[0].metric {
            ui.label(format!(
                "The two runs measure different things ({} and {}): pick two runs of one task.",
                ta[0].metric.name(),
                tb[0].metric.name()
            ));
            return;
        }
        let methods: Vec<String> = ta[0]
            .methods
            .iter()
            .filter(|m| tb[0].methods.contains(m))
            .cloned()
            .collect();
        if methods.is_empty() {
            ui.label("The two runs have no method in common.");
            return;
        }
        let method = self
            .method
            .clone()
            .filter(|m| methods.contains(m))
            .unwrap_or_else(|| methods[methods.len() - 1].clone());
        ui.horizontal(|ui| {
            ui.label(RichText::new("Compare").strong());
            for m in &methods {
                if ui.selectable_label(*m == method, m).clicked() {
                    self.method = Some(m.clone());
                }
            }
        });
        let name = |d: &Path| {
            d.file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default()
        };
        egui::Grid::new("compare")
            .striped(true)
            .num_columns(4)
            .show(ui, |ui| {
                ui.label(RichText::new(ta[0].metric.name()).strong());
                ui.label(RichText::new(format!("A: {}", name(&da))).strong());
                ui.label(RichText::new(format!("B: {}", name(&db))).strong());
                ui.label(RichText::new("B − A").strong());
                ui.end_row();
                for (label, va, vb) in compare_rows(&ta[0], &tb[0], &method) {
                    ui.label(label);
                    let cell = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.2}"));
                    ui.label(RichText::new(cell(va)).monospace());
                    ui.label(RichText::new(cell(vb)).monospace());
                    match (va, vb) {
                        (Some(a), Some(b)) => {
                            let d = b - a;
                            let color = if d > 0.0 {
                                Color32::from_rgb(60, 170, 90)
                            } else if d < 0.0 {
                                Color32::from_rgb(220, 80, 70)
                            } else {
                                ui.visuals().text_color()
                            };
                            ui.label(RichText::new(format!("{d:+.2}")).monospace().color(color));
                        }
                        _ => {
                            ui.label("—");
                        }
                    }
                    ui.end_row();
                }
            });
        ui.add_space(6.0);
        ui.collapsing("run A's whole table", |ui| {
            draw::comparison_table(ui, &ta[0], "compare_a")
        });
        ui.collapsing("run B's whole table", |ui| {
            draw::comparison_table(ui, &tb[0], "compare_b")
        });
    }
}

/// Copies a run folder recursively (export).
fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}
