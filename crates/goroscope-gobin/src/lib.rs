//! Reads Go binaries without running them: build information (`.go.buildinfo`), symbolization from
//! `.gopclntab` (functions, files, lines, inlined frames), the addresses of the runtime globals
//! goroscope reads (from `.symtab`, or by decoding runtime functions in stripped binaries) and the
//! offsets of runtime struct fields (from DWARF, from per-version tables for Go 1.19–1.27, or, for a
//! newer release, inferred from the binary's own runtime code).
//!
//! Everything here is pure: it reads files and bytes, never a live process.

pub mod buildinfo;
pub mod bytes;
pub mod dwarf;
pub mod elf;
pub mod error;
pub mod infer;
pub mod locate;
pub mod offsets;
pub mod pclntab;
pub mod symtab;
pub mod version;

pub use bytes::SharedBytes;
pub use elf::ElfFile;
pub use error::GobinError;
pub use version::GoVersion;
