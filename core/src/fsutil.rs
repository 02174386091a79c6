//! File helpers: atomic writes (temp file in the same folder, then rename, then the folder
//! synced), so an interrupted run never leaves a half-written checkpoint or result file; and the
//! run folder's lock, so two runs never write one folder.

use crate::error::{CoreError, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

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
    })?;
    sync_parent(path);
    Ok(())
}

/// Flushes the folder entry of a renamed file to disk, so the rename survives a power cut
/// (best effort: some file systems cannot sync a folder).
pub(crate) fn sync_parent(path: &Path) {
    #[cfg(unix)]
    {
        let parent = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        if let Ok(dir) = std::fs::File::open(parent) {
            let _ = dir.sync_all();
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

/// A run folder's lock while a run writes it: `<folder>/.lock` holds the owner's process id,
/// created exclusively and removed when the lock is dropped. A second run on the same folder is
/// refused while the owner lives; a lock left by a process that is gone is taken over.
#[derive(Debug)]
pub struct RunLock {
    path: PathBuf,
}

impl RunLock {
    /// Locks the run folder `dir` (creating it).
    pub fn acquire(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
        let path = dir.join(".lock");
        for _ in 0..3 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut f) => {
                    f.write_all(std::process::id().to_string().as_bytes())
                        .and_then(|()| f.sync_all())
                        .map_err(|e| CoreError::io(&path, e))?;
                    return Ok(RunLock { path });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let owner = std::fs::read_to_string(&path)
                        .ok()
                        .and_then(|t| t.trim().parse::<u32>().ok());
                    if let Some(pid) = owner
                        && pid != std::process::id()
                        && process_alive(pid)
                    {
                        return Err(CoreError::data(
                            dir.display().to_string(),
                            format!(
                                "is being written by process {pid} (another mmanet run); wait for it to finish, or delete {} if that process is not mmanet",
                                path.display()
                            ),
                        ));
                    }
                    // stale: its owner is gone
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => return Err(CoreError::io(&path, e)),
            }
        }
        Err(CoreError::data(
            dir.display().to_string(),
            format!("cannot take the lock {}", path.display()),
        ))
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Whether process `pid` is running (Linux: `/proc`; elsewhere assumed so).
fn process_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}
