//! The agent's sources, one per collector: each reads its collector, keeps what dead processes
//! counted, and turns it into metric families.

pub mod go;
pub mod network;
pub mod processes;
pub mod sched;
pub mod syscalls;
pub mod tcp;
