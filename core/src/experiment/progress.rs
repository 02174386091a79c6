//! Where a running experiment's progress goes ([`ProgressSink`]: the CLI's bars, the app's
//! channel, the page), and running its future to completion natively ([`block_on`]).

use crate::train::TrainEvent;

/// Receives progress from a running experiment (the CLI draws progress bars from it).
pub trait ProgressSink {
    /// A stage starts (`teacher`, `sf-md`, `sf/101`, …).
    fn stage_started(
        &mut self,
        stage: &str,
        epochs: usize,
        batches_per_epoch: usize,
        resumed_epochs: usize,
    );
    /// A training event of the current stage.
    fn event(&mut self, stage: &str, event: &TrainEvent);
    /// A line of information.
    fn message(&mut self, text: &str);
    /// Asked before every training step: `true` stops the run with
    /// [`crate::error::CoreError::Cancelled`] (the stage's last epoch checkpoint stays on disk,
    /// so `--resume` continues from it).
    fn cancelled(&mut self) -> bool {
        false
    }
    /// Awaited before every training step, before [`ProgressSink::cancelled`]: the browser's
    /// sink hands control back to the page here (and waits while paused). The default returns
    /// at once.
    fn between_steps(&mut self) -> StepYield<'_> {
        Box::pin(std::future::ready(()))
    }
}

/// What [`ProgressSink::between_steps`] returns.
pub type StepYield<'a> = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + 'a>>;

/// A sink that ignores everything.
pub struct SilentProgress;

impl ProgressSink for SilentProgress {
    fn stage_started(&mut self, _: &str, _: usize, _: usize, _: usize) {}
    fn event(&mut self, _: &str, _: &TrainEvent) {}
    fn message(&mut self, _: &str) {}
}

/// Runs a future to completion on this thread (native only: in a browser it would block the page).
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    burn::tensor::read_sync(f)
}
