//! The training loop of one stage: a step at a time, progress to the sink, an atomic epoch
//! checkpoint after every epoch (the one before it kept), until the trainer finishes.

use super::files::StageFiles;
use crate::checkpoint::StageCheckpoint;
use crate::error::{CoreError, Result};
use crate::experiment::progress::ProgressSink;
use crate::store::RunStore;
use crate::task::Task;
use crate::train::{StageTrainer, TrainEvent};

/// Trains `trainer` to its last epoch. Awaits [`ProgressSink::between_steps`] and asks
/// [`ProgressSink::cancelled`] before every step.
pub(super) async fn train_to_end<T: Task>(
    trainer: &mut StageTrainer<T>,
    stage: &str,
    files: &StageFiles,
    store: &mut dyn RunStore,
    sink: &mut dyn ProgressSink,
) -> Result<()> {
    loop {
        sink.between_steps().await;
        if sink.cancelled() {
            return Err(CoreError::Cancelled {
                stage: stage.to_string(),
            });
        }
        let event = trainer.step().await?;
        sink.event(stage, &event);
        match event {
            // In a browser, optimiser state can only be read synchronously, which WebGPU
            // forbids: a page's run keeps no epoch checkpoints (a stopped stage starts over).
            TrainEvent::Epoch(_) if cfg!(target_family = "wasm") => {}
            TrainEvent::Epoch(_) => write_checkpoint(trainer, files, store)?,
            TrainEvent::Finished { .. } => return Ok(()),
            TrainEvent::Step(_) => {}
        }
    }
}

/// Writes the trainer's state as the newest checkpoint, the previous newest kept as
/// `checkpoint.prev.bin`.
fn write_checkpoint<T: Task>(
    trainer: &StageTrainer<T>,
    files: &StageFiles,
    store: &mut dyn RunStore,
) -> Result<()> {
    let (model, optimizer, progress) = trainer.checkpoint()?;
    let checkpoint = StageCheckpoint {
        progress,
        model,
        optimizer,
        best_model: trainer.best_model_bytes().map(<[u8]>::to_vec),
    };
    let bytes = checkpoint.to_bytes()?;
    if store.exists(&files.checkpoint) {
        store.rename(&files.checkpoint, &files.previous)?;
    }
    store.write(&files.checkpoint, &bytes)
}
