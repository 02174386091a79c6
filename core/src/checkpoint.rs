//! A stage checkpoint in one file: training progress (JSON), the current model and optimiser
//! state (burnpack bytes from burn's record system) and the best model so far. One file means
//! one atomic write: a run interrupted at any moment resumes from a consistent state.
//!
//! Layout: `MMANETCK` magic, format version (u32 LE), then four length-prefixed (u64 LE) blobs:
//! progress JSON, model, optimiser, best model (empty when none).

use crate::error::{CoreError, Result};
use crate::fsutil::write_atomic;
use crate::train::TrainerProgress;
use std::path::Path;

const MAGIC: &[u8; 8] = b"MMANETCK";
const VERSION: u32 = 1;

/// The contents of a stage checkpoint.
#[derive(Clone, Debug, PartialEq)]
pub struct StageCheckpoint {
    /// Training progress.
    pub progress: TrainerProgress,
    /// Current model (burnpack bytes).
    pub model: Vec<u8>,
    /// Optimiser state (burnpack bytes).
    pub optimizer: Vec<u8>,
    /// Best model so far (burnpack bytes).
    pub best_model: Option<Vec<u8>>,
}

impl StageCheckpoint {
    /// Encodes the checkpoint.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let progress = serde_json::to_vec(&self.progress)
            .map_err(|e| CoreError::Training(format!("cannot encode progress: {e}")))?;
        let best = self.best_model.as_deref().unwrap_or(&[]);
        let mut out = Vec::with_capacity(
            32 + progress.len() + self.model.len() + self.optimizer.len() + best.len(),
        );
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&VERSION.to_le_bytes());
        for blob in [&progress[..], &self.model, &self.optimizer, best] {
            out.extend_from_slice(&(blob.len() as u64).to_le_bytes());
            out.extend_from_slice(blob);
        }
        Ok(out)
    }

    /// Decodes a checkpoint; `path` names it in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |m: &str| CoreError::Checkpoint {
            path: path.to_path_buf(),
            message: m.to_string(),
        };
        if bytes.len() < 12 || &bytes[..8] != MAGIC {
            return Err(bad("not an mmanet checkpoint (bad magic)"));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != VERSION {
            return Err(bad(&format!(
                "format version {version}, expected {VERSION}"
            )));
        }
        let mut pos = 12;
        let mut blobs = Vec::with_capacity(4);
        for _ in 0..4 {
            let len_bytes = bytes
                .get(pos..pos + 8)
                .ok_or_else(|| bad("truncated (length field)"))?;
            let len = u64::from_le_bytes(len_bytes.try_into().expect("8 bytes"));
            pos += 8;
            let end = usize::try_from(len)
                .ok()
                .and_then(|len| pos.checked_add(len))
                .ok_or_else(|| bad("truncated (payload)"))?;
            let blob = bytes
                .get(pos..end)
                .ok_or_else(|| bad("truncated (payload)"))?;
            blobs.push(blob.to_vec());
            pos = end;
        }
        let progress = serde_json::from_slice(&blobs[0])
            .map_err(|e| bad(&format!("progress is not valid JSON: {e}")))?;
        let best = std::mem::take(&mut blobs[3]);
        Ok(StageCheckpoint {
            progress,
            model: std::mem::take(&mut blobs[1]),
            optimizer: std::mem::take(&mut blobs[2]),
            best_model: (!best.is_empty()).then_some(best),
        })
    }

    /// Writes the checkpoint atomically.
    pub fn save(&self, path: &Path) -> Result<()> {
        write_atomic(path, &self.to_bytes()?)
    }

    /// Reads a checkpoint file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| CoreError::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }
}
