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

/// Now, in nanoseconds since the Unix epoch (a profile's start time, as pprof records it).
pub fn unix_now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}
