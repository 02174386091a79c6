//! Resuming an interrupted stage from its epoch checkpoint (the newest, else the one before
//! it), or saying how to when `--resume` was not given.

use super::files::StageFiles;
use crate::checkpoint::StageCheckpoint;
use crate::error::{CoreError, Result};
use crate::experiment::progress::ProgressSink;
use crate::experiment::stage_id::StageId;
use crate::store::RunStore;
use crate::task::Task;
use crate::train::StageTrainer;

/// Restores `trainer` from the stage's checkpoint when `resume` is set and the checkpoint was
/// written with the same fingerprint; without `resume`, an interrupted run is reported and the
/// stage starts over. A checkpoint of other settings is an error under `resume`.
pub(super) fn resume_or_restart<T: Task>(
    trainer: &mut StageTrainer<T>,
    id: &StageId,
    files: &StageFiles,
    resume: bool,
    store: &dyn RunStore,
    sink: &mut dyn ProgressSink,
) -> Result<()> {
    if !store.exists(&files.checkpoint) && !store.exists(&files.previous) {
        return Ok(());
    }
    if !resume {
        sink.message(&format!(
            "{}: an interrupted run is in {}; starting over (pass --resume to continue it)",
            id.name,
            store.location(&id.name).display()
        ));
        return Ok(());
    }
    let same = store.read_text(&files.fingerprint).ok().as_deref() == Some(id.fingerprint.as_str());
    if !same {
        return Err(CoreError::Checkpoint {
            path: store.location(&files.checkpoint),
            message: "was written with different settings; delete the folder or rerun with the original config".into(),
        });
    }
    // the newest checkpoint; if it is missing or does not load, the one before it
    let mut failure: Option<CoreError> = None;
    for file in [&files.checkpoint, &files.previous] {
        if !store.exists(file) {
            continue;
        }
        let path = store.location(file);
        let restored = store
            .read(file)
            .and_then(|bytes| StageCheckpoint::from_bytes(&bytes, &path))
            .and_then(|ck| {
                let epochs = ck.progress.epochs_done;
                trainer.restore(ck.model, ck.optimizer, ck.progress, ck.best_model)?;
                Ok(epochs)
            });
        match restored {
            Ok(epochs) => {
                if let Some(e) = &failure {
                    sink.message(&format!(
                        "{}: {e}; resuming from the previous checkpoint instead",
                        id.name
                    ));
                }
                sink.message(&format!(
                    "{}: resuming after epoch {epochs} from {}",
                    id.name,
                    path.display()
                ));
                return Ok(());
            }
            Err(e) => {
                failure.get_or_insert(e);
            }
        }
    }
    failure.map_or(Ok(()), Err)
}
