//! The library's error type: every variant names the file, line, column or field at fault.

use std::path::PathBuf;

/// Errors of the mmanet library.
#[derive(Debug, thiserror::Error)]
pub enum CoreError {
    /// A file could not be read or written. (The OS error is part of the message, not a
    /// separate source, so a chain of causes does not print it twice.)
    #[error("{path}: {error}{}", io_hint(error))]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        error: std::io::Error,
    },
    /// A data file has a bad line or cell.
    #[error("{file}:{line}{}: {message}", column.map(|c| format!(", column {c}")).unwrap_or_default())]
    Parse {
        /// The file being read.
        file: String,
        /// 1-based line number.
        line: usize,
        /// 1-based column number, when one cell is at fault.
        column: Option<usize>,
        /// What is wrong.
        message: String,
    },
    /// A dataset is inconsistent as a whole (row counts, empty split, wrong shape).
    #[error("{context}: {message}")]
    Data {
        /// The file, dataset or split involved.
        context: String,
        /// What is wrong.
        message: String,
    },
    /// A configuration value is invalid or inconsistent.
    #[error("config field `{field}`: {message}")]
    Config {
        /// The dotted field name, e.g. `train.epochs`.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A checkpoint could not be written or read back.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Training diverged or produced a non-finite value.
    #[error("training stopped: {0}")]
    Training(String),
    /// The compute backend failed (no adapter, readback failure).
    #[error("backend: {0}")]
    Backend(String),
    /// The user stopped the run; the last epoch's checkpoint is kept for resuming.
    #[error("stopped by the user during `{stage}` (resume continues from the last finished epoch)")]
    Cancelled {
        /// The stage that was running.
        stage: String,
    },
}

/// What to do about an I/O error whose remedy is not obvious from the OS message.
fn io_hint(error: &std::io::Error) -> &'static str {
    use std::io::ErrorKind;
    match error.kind() {
        ErrorKind::StorageFull | ErrorKind::QuotaExceeded | ErrorKind::FileTooLarge => {
            " — free some space, then resume the run: the epochs it finished are kept"
        }
        ErrorKind::ReadOnlyFilesystem => " — choose an output folder on a writable disk",
        _ => "",
    }
}

/// Result with [`CoreError`].
pub type Result<T> = std::result::Result<T, CoreError>;

impl CoreError {
    /// Wraps an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        CoreError::Io {
            path: path.into(),
            error,
        }
    }

    /// A data-level error.
    pub fn data(context: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::Data {
            context: context.into(),
            message: message.into(),
        }
    }

    /// A config-level error.
    pub fn config(field: impl Into<String>, message: impl Into<String>) -> Self {
        CoreError::Config {
            field: field.into(),
            message: message.into(),
        }
    }
}
