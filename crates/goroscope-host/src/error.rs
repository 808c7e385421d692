//! Errors from reading host state. Every variant names the file (or pid) it is about, so a message
//! tells the operator where to look.

use std::path::PathBuf;

/// Why host state could not be read.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The process exited (or its pid was never in use) while it was being read. Callers walking
    /// `/proc` expect this and normally ignore it.
    #[error("process {pid} is gone (it exited while being read)")]
    Gone {
        /// The process id.
        pid: u32,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A directory could not be listed.
    #[error("cannot list {path}: {source} (is procfs/sysfs mounted there?)")]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file was read but its contents are not in the format the kernel documents.
    #[error("cannot parse {path}: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What was wrong with it.
        reason: String,
    },
}

/// Results of this crate.
pub type Result<T, E = HostError> = std::result::Result<T, E>;
