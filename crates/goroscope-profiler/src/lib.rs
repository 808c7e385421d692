//! goroscope's profiler: the kernel samples stacks (goroscope-bpf), this crate turns them into
//! symbolized, Go-aware profiles ([`goroscope_model::profile::Profile`]) whose samples carry the
//! goroutine that was running, its start function, creation site and pprof labels.
//!
//! One symbolizer serves every kind of profile: Go code through the binary's `.gopclntab` with
//! inlined calls expanded, native code through blazesym (ELF symbols and DWARF), the kernel
//! through kallsyms.

#![deny(missing_docs)]

mod assemble;
pub mod cpu;
pub mod offcpu;
pub mod session;
mod symbols;
mod targets;
pub mod wall;
mod watched;

pub use assemble::{Assembler, RawStack};
pub use cpu::{CpuProfile, CpuSummary};
pub use offcpu::{OffCpuProfile, OffCpuSummary};
pub use session::{Outcome, Request, Session, SessionError};
pub use symbols::Symbols;
pub use targets::GoTargets;
pub use wall::{WallError, WallProfile};
