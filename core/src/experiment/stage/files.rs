//! The files of one stage inside its run folder, all relative to the run (`<stage>/…`).

/// Where one stage keeps its files.
pub(crate) struct StageFiles {
    /// The selected deployment network of a finished stage (`model.bpk`).
    pub model: String,
    /// What a finished stage was trained from, and its history (`meta.json`).
    pub meta: String,
    /// The newest epoch checkpoint (`checkpoint.bin`).
    pub checkpoint: String,
    /// The checkpoint before the newest, kept so a corrupt newest one costs an epoch, not the
    /// run (`checkpoint.prev.bin`).
    pub previous: String,
    /// The fingerprint the checkpoints were written with (`fingerprint.json`).
    pub fingerprint: String,
}

impl StageFiles {
    /// The files of the stage named `stage` (`teacher`, `sf-md`, `sf/101`, …).
    pub fn new(stage: &str) -> Self {
        StageFiles {
            model: format!("{stage}/model.bpk"),
            meta: format!("{stage}/meta.json"),
            checkpoint: format!("{stage}/checkpoint.bin"),
            previous: format!("{stage}/checkpoint.prev.bin"),
            fingerprint: format!("{stage}/fingerprint.json"),
        }
    }
}
