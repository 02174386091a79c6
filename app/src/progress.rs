//! Progress bars (indicatif) for training stages.

use indicatif::{ProgressBar, ProgressStyle};
use mmanet_core::experiment::ProgressSink;
use mmanet_core::train::TrainEvent;

/// Draws one bar per stage and prints a line per epoch.
pub struct BarProgress {
    bar: Option<ProgressBar>,
    /// What the current stage validates (from its epochs), for the stage's last line.
    metric: &'static str,
}

impl BarProgress {
    pub fn new() -> Self {
        BarProgress {
            bar: None,
            metric: "acc",
        }
    }

    fn println(&self, text: &str) {
        match &self.bar {
            // a hidden bar (output is not a terminal) would swallow the line
            Some(b) if !b.is_hidden() => b.println(text),
            _ => println!("{text}"),
        }
    }
}

impl Drop for BarProgress {
    fn drop(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

impl ProgressSink for BarProgress {
    fn stage_started(&mut self, stage: &str, epochs: usize, batches: usize, resumed: usize) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
        let bar = ProgressBar::new((epochs * batches) as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>10} [{bar:30}] {pos}/{len} steps {elapsed_precise} eta {eta} {msg}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_prefix(stage.to_string());
        bar.set_position((resumed * batches) as u64);
        self.bar = Some(bar);
    }

    fn event(&mut self, stage: &str, event: &TrainEvent) {
        match event {
            TrainEvent::Step(s) => {
                if !s.dropped_terms.is_empty() {
                    self.println(&format!(
                        "{stage}: epoch {}, batch {}: {} was NaN and is left out of this step (the official segmentation loop's guard)",
                        s.epoch + 1,
                        s.batch + 1,
                        s.dropped_terms.join(", ")
                    ));
                }
                if let Some(b) = &self.bar {
                    b.inc(1);
                    b.set_message(format!(
                        "epoch {} loss {:.4} acc {:.1}%",
                        s.epoch + 1,
                        s.total,
                        s.accuracy * 100.0
                    ));
                }
            }
            TrainEvent::Epoch(e) => {
                // One line per improvement and every tenth epoch keeps the log readable.
                if !e.is_best && (e.epoch + 1) % 10 != 0 {
                    return;
                }
                let losses = e
                    .losses
                    .iter()
                    .map(|(n, v)| format!("{n} {v:.4}"))
                    .collect::<Vec<_>>()
                    .join(", ");
                self.metric = e.val_metric.short_name();
                self.println(&format!(
                    "{stage:>10} epoch {:>3}: lr {} | {} | train acc {:.1}% | val {} {:.2}%{}",
                    e.epoch + 1,
                    e.lr.map_or("—".to_string(), |l| format!("{l:.2e}")),
                    if losses.is_empty() {
                        "no update".into()
                    } else {
                        losses
                    },
                    e.train_accuracy * 100.0,
                    self.metric,
                    e.val_score * 100.0,
                    if e.is_best { " *" } else { "" }
                ));
            }
            TrainEvent::Finished {
                best_epoch,
                best_score,
            } => {
                self.println(&format!(
                    "{stage:>10} done: selected epoch {} (val {} {:.2}%)",
                    best_epoch + 1,
                    self.metric,
                    best_score * 100.0
                ));
                if let Some(b) = self.bar.take() {
                    b.finish_and_clear();
                }
            }
        }
    }

    fn message(&mut self, text: &str) {
        self.println(text);
    }
}
