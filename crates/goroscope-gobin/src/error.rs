//! Errors from reading a Go binary. Each says which file and what to do about it.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use goroscope_model::Escaped;

use crate::buildinfo::BuildInfoError;
use crate::dwarf::DwarfError;
use crate::pclntab::PclntabError;

/// A path as messages print it: control characters and bytes that are not UTF-8 escaped
/// (goroscope-model's one rule), so a hostile file name cannot drive the terminal.
fn shown(path: &Path) -> Escaped<'_> {
    goroscope_model::escaped(path.as_os_str().as_bytes())
}

/// Why a Go binary could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GobinError {
    /// The file could not be read at all.
    #[error("cannot read {}: {source}", shown(.path))]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not an ELF file (or not one this build understands).
    #[error("{} is not an ELF executable ({reason})", shown(.path))]
    NotElf {
        /// The file.
        path: PathBuf,
        /// What the parser said.
        reason: String,
    },
    /// The file is ELF but carries no Go build information.
    #[error("{} is not a Go program: it has no .go.buildinfo (built by something other than the Go toolchain?)", shown(.path))]
    NotGo {
        /// The file.
        path: PathBuf,
    },
    /// The Go build information is present but unreadable.
    #[error("{}: cannot read its Go build information: {source}", shown(.path))]
    BuildInfo {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        #[source]
        source: BuildInfoError,
    },
    /// The function table is missing or unreadable.
    #[error("{}: cannot read its Go function table (.gopclntab): {source}", shown(.path))]
    Pclntab {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        #[source]
        source: PclntabError,
    },
    /// The DWARF debug information is present but unreadable.
    #[error("{}: cannot read its DWARF: {source}", shown(.path))]
    Dwarf {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        #[source]
        source: DwarfError,
    },
    /// The binary was built for an architecture goroscope cannot read goroutines on.
    #[error("{} is built for {architecture}; goroscope reads Go processes on x86-64 only", shown(.path))]
    UnsupportedArchitecture {
        /// The file.
        path: PathBuf,
        /// What it is built for.
        architecture: String,
    },
    /// The Go version is older than goroscope supports.
    #[error("{} was built by {version}; goroscope reads Go 1.19 and newer", shown(.path))]
    UnsupportedGoVersion {
        /// The file.
        path: PathBuf,
        /// The version it was built with.
        version: String,
    },
    /// Struct layouts for this Go version are known neither from DWARF nor from the tables, and
    /// cannot be inferred from its code (it is not newer than the tables, or inference failed).
    #[error("{} was built by {version} and has no DWARF, and goroscope has no runtime struct offsets for {version} (it knows {known}){note}; rebuild the target without -ldflags=-w, or update goroscope", shown(.path))]
    NoOffsets {
        /// The file.
        path: PathBuf,
        /// The version it was built with.
        version: String,
        /// The versions the tables cover, e.g. `go1.19–go1.27`.
        known: String,
        /// Why inference from the runtime code did not stand in (starting with `; `), or empty.
        note: String,
    },
    /// A runtime global goroscope needs could not be found.
    #[error("{}: cannot find the Go runtime's {symbol} (the binary has no symbol table and decoding {via} did not find it)", shown(.path))]
    GlobalNotFound {
        /// The file.
        path: PathBuf,
        /// The global, e.g. `runtime.allgs`.
        symbol: String,
        /// The runtime function that was decoded to look for it.
        via: String,
    },
}
