//! Where a run's files live: a folder on disk (the CLI and the desktop app) or memory (the
//! browser, which has no file system). The experiment pipeline and the run reader only see
//! [`RunStore`], so one code path serves both.
//!
//! Paths inside a store are relative and `/`-separated (`teacher/model.bpk`, `reports.json`).

use crate::error::{CoreError, Result};
use crate::fsutil::write_atomic;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A run's files, addressed by relative path.
pub trait RunStore {
    /// The bytes of `rel`; an I/O error (naming the file) when it is missing or unreadable.
    fn read(&self, rel: &str) -> Result<Vec<u8>>;
    /// Writes `rel` whole (atomically on disk), creating folders as needed.
    fn write(&mut self, rel: &str, bytes: &[u8]) -> Result<()>;
    /// Whether `rel` exists.
    fn exists(&self, rel: &str) -> bool;
    /// Where `rel` is, for messages and errors (a path on disk, or `memory:<run>/<rel>`).
    fn location(&self, rel: &str) -> PathBuf;
    /// Renames `from` to `to` (replacing it), atomically on disk.
    fn rename(&mut self, from: &str, to: &str) -> Result<()>;

    /// `rel` as UTF-8 text.
    fn read_text(&self, rel: &str) -> Result<String> {
        let bytes = self.read(rel)?;
        String::from_utf8(bytes).map_err(|e| {
            CoreError::io(
                self.location(rel),
                std::io::Error::new(std::io::ErrorKind::InvalidData, e),
            )
        })
    }
}

/// A run folder on disk.
#[derive(Clone, Debug)]
pub struct FolderStore {
    root: PathBuf,
}

impl FolderStore {
    /// The run folder `root` (created on the first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        FolderStore { root: root.into() }
    }

    /// The folder.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl RunStore for FolderStore {
    fn read(&self, rel: &str) -> Result<Vec<u8>> {
        let path = self.location(rel);
        std::fs::read(&path).map_err(|e| CoreError::io(&path, e))
    }

    fn write(&mut self, rel: &str, bytes: &[u8]) -> Result<()> {
        // every file stays inside the run folder
        if rel.split(['/', '\\']).any(|part| part == "..") || Path::new(rel).is_absolute() {
            return Err(CoreError::data(
                self.root.display().to_string(),
                format!("refusing to write `{rel}`: it is outside the run folder"),
            ));
        }
        write_atomic(&self.location(rel), bytes)
    }

    fn exists(&self, rel: &str) -> bool {
        self.location(rel).is_file()
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        let (a, b) = (self.location(from), self.location(to));
        std::fs::rename(&a, &b).map_err(|e| CoreError::io(&a, e))?;
        crate::fsutil::sync_parent(&b);
        Ok(())
    }

    fn location(&self, rel: &str) -> PathBuf {
        rel.split('/')
            .filter(|p| !p.is_empty())
            .fold(self.root.clone(), |p, part| p.join(part))
    }
}

/// A run kept in memory (the browser app's runs).
#[derive(Clone, Debug, Default)]
pub struct MemoryStore {
    name: String,
    files: BTreeMap<String, Vec<u8>>,
}

impl MemoryStore {
    /// An empty store for the run `name` (used in [`RunStore::location`]).
    pub fn new(name: impl Into<String>) -> Self {
        MemoryStore {
            name: name.into(),
            files: BTreeMap::new(),
        }
    }

    /// The run's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Every file's relative path, sorted.
    pub fn files(&self) -> impl Iterator<Item = &str> {
        self.files.keys().map(String::as_str)
    }

    /// Total bytes held.
    pub fn size_bytes(&self) -> usize {
        self.files.values().map(Vec::len).sum()
    }
}

impl RunStore for MemoryStore {
    fn read(&self, rel: &str) -> Result<Vec<u8>> {
        self.files.get(rel).cloned().ok_or_else(|| {
            CoreError::io(
                self.location(rel),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file in this run"),
            )
        })
    }

    fn write(&mut self, rel: &str, bytes: &[u8]) -> Result<()> {
        self.files.insert(rel.to_string(), bytes.to_vec());
        Ok(())
    }

    fn rename(&mut self, from: &str, to: &str) -> Result<()> {
        let bytes = self.files.remove(from).ok_or_else(|| {
            CoreError::io(
                self.location(from),
                std::io::Error::new(std::io::ErrorKind::NotFound, "no such file in this run"),
            )
        })?;
        self.files.insert(to.to_string(), bytes);
        Ok(())
    }

    fn exists(&self, rel: &str) -> bool {
        self.files.contains_key(rel)
    }

    fn location(&self, rel: &str) -> PathBuf {
        PathBuf::from(format!("memory:{}/{rel}", self.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_store_round_trips_and_names_missing_files() {
        let mut s = MemoryStore::new("run1");
        assert!(!s.exists("teacher/meta.json"));
        s.write("teacher/meta.json", b"{}").unwrap();
        assert!(s.exists("teacher/meta.json"));
        assert_eq!(s.read_text("teacher/meta.json").unwrap(), "{}");
        let err = s.read("teacher/model.bpk").unwrap_err().to_string();
        assert!(err.contains("memory:run1/teacher/model.bpk"), "{err}");
        assert_eq!(s.size_bytes(), 2);
    }

    #[test]
    fn folder_store_writes_nested_files() {
        let dir = std::env::temp_dir().join(format!("mmanet-store-{}", std::process::id()));
        let mut s = FolderStore::new(&dir);
        s.write("sf/101/meta.json", b"x").unwrap();
        assert!(dir.join("sf").join("101").join("meta.json").is_file());
        assert_eq!(s.read("sf/101/meta.json").unwrap(), b"x");
        assert!(!s.exists("sf/101/model.bpk"));
        for outside in ["../escape.json", "sf/../../x", "/etc/x"] {
            let e = s.write(outside, b"x").unwrap_err().to_string();
            assert!(e.contains("outside the run folder"), "{outside}: {e}");
        }
        assert!(!dir.parent().unwrap().join("escape.json").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
