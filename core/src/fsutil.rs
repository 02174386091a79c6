//! File helpers: atomic writes (temp file in the same folder, then rename), so an interrupted
//! run never leaves a half-written checkpoint or result file.

use crate::error::{CoreError, Result};
use std::io::Write;
use std::path::Path;

/// Writes `bytes` to `path` atomically: the data goes to `<path>.tmp-<pid>` first, is flushed
/// to disk, then renamed over `path`. Missing parent folders are created.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| CoreError::io(parent, e))?;
    }
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "out".into());
    let tmp = path.with_file_name(format!(".{file_name}.tmp-{}", std::process::id()));
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        CoreError::io(path, e)
    })
}
