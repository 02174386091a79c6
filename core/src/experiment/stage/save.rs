//! The end of a stage: its selected deployment network and its record (`meta.json`).

use super::StageMeta;
use super::files::StageFiles;
use crate::error::{CoreError, Result};
use crate::experiment::stage_id::StageId;
use crate::store::RunStore;
use crate::task::Task;
use crate::train::{StageTrainer, module_to_bytes_async};

/// Writes the selected model (the regularization head, for training only, left out) and the
/// stage's record, and returns both.
pub(super) async fn save_selected<T: Task>(
    trainer: &StageTrainer<T>,
    id: &StageId,
    files: &StageFiles,
    store: &mut dyn RunStore,
) -> Result<(T::Net, StageMeta)> {
    let best = T::deployment(trainer.best_model()?);
    store.write(&files.model, &module_to_bytes_async(&best).await?)?;
    let progress = trainer.progress();
    let meta = StageMeta {
        fingerprint: id.fingerprint.clone(),
        best_epoch: progress.best_epoch.unwrap_or(0),
        best_score: progress.best_score,
        history: progress.history.clone(),
    };
    let meta_json = serde_json::to_vec_pretty(&meta)
        .map_err(|e| CoreError::Training(format!("cannot encode stage meta: {e}")))?;
    store.write(&files.meta, &meta_json)?;
    Ok((best, meta))
}
