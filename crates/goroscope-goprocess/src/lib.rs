//! Reads a live Go process's runtime state — every goroutine with its state, wait reason, creation
//! site, stack and pprof labels, the scheduler and the GC — from its memory with `process_vm_readv`, in periodic
//! snapshots. Nothing is injected, nothing is stopped: the target keeps running while it is read,
//! and what is read is checked before it is believed.

pub mod attach;
pub mod error;
mod fasthash;
mod frame_table;
mod g_record;
mod image;
pub mod labels;
pub mod maps;
pub mod memory;
pub mod snapshot;
pub mod symbolizer;
mod unwind;
mod validate;

pub use attach::{GoProcess, TargetInfo};
pub use error::{AttachError, MemoryError};
pub use labels::{GLayout, LabelSetLayout};
pub use snapshot::{monotonic_ns, SnapshotOptions};
pub use symbolizer::ProcessSymbolizer;
