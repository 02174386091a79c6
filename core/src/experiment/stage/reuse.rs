//! Reusing a finished stage: its selected model and record, when they were trained with the
//! same fingerprint.

use super::StageMeta;
use super::files::StageFiles;
use crate::error::Result;
use crate::experiment::progress::ProgressSink;
use crate::experiment::stage_id::StageId;
use crate::store::RunStore;
use crate::train::module_from_bytes;
use burn::module::Module;

/// The finished model of stage `id` in `store`, loaded into the network `fresh` builds, when
/// its `meta.json` has the same fingerprint; `None` when there is no finished stage or its
/// settings changed (said to `sink`).
pub(super) fn finished_stage<M: Module>(
    id: &StageId,
    files: &StageFiles,
    store: &dyn RunStore,
    sink: &mut dyn ProgressSink,
    fresh: impl FnOnce() -> Result<M>,
) -> Result<Option<(M, StageMeta)>> {
    let (Ok(meta_text), Ok(bytes)) = (store.read_text(&files.meta), store.read(&files.model))
    else {
        return Ok(None);
    };
    let Ok(meta) = serde_json::from_str::<StageMeta>(&meta_text) else {
        return Ok(None);
    };
    if meta.fingerprint != id.fingerprint {
        sink.message(&format!(
            "{}: the settings changed since {} was trained; training again",
            id.name,
            store.location(&files.model).display()
        ));
        return Ok(None);
    }
    sink.message(&format!(
        "{}: reusing the finished model in {} (best epoch {}, val {:.2}%)",
        id.name,
        store.location(&id.name).display(),
        meta.best_epoch,
        meta.best_score * 100.0
    ));
    Ok(Some((module_from_bytes(fresh()?, bytes)?, meta)))
}
