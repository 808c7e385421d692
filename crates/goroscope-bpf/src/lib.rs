//! goroscope's BPF side: the programs' skeletons, loading and attaching them
//! with what the kernel allows, and reading what they collect.

#[allow(clippy::all, missing_docs, unsafe_op_in_unsafe_fn)]
mod skel {
    pub mod syscalls {
        include!(concat!(env!("OUT_DIR"), "/syscalls.skel.rs"));
    }
    pub mod process {
        include!(concat!(env!("OUT_DIR"), "/process.skel.rs"));
    }
    pub mod files {
        include!(concat!(env!("OUT_DIR"), "/files.skel.rs"));
    }
    pub mod probe {
        include!(concat!(env!("OUT_DIR"), "/probe.skel.rs"));
    }
    pub mod sched {
        include!(concat!(env!("OUT_DIR"), "/sched.skel.rs"));
    }
    pub mod tcp {
        include!(concat!(env!("OUT_DIR"), "/tcp.skel.rs"));
    }
    pub mod profile {
        include!(concat!(env!("OUT_DIR"), "/profile.skel.rs"));
    }
    pub mod offcpu {
        include!(concat!(env!("OUT_DIR"), "/offcpu.skel.rs"));
    }
}

pub mod attach;
mod batch;
pub mod bpf_stats;
pub mod error;
pub mod events;
mod evict;
pub mod filter;
mod go_processes;
mod libbpf_log;
pub mod losses;
pub mod offcpu;
mod pod;
pub mod privileges;
pub mod profile;
pub mod sched;
mod stacks;
mod syscall_threads;
pub mod syscalls;
pub mod tcp;
pub mod tracefs;

pub use attach::{choose_attach_mode, probe_program, AttachMode, ProgramKind};
pub use error::BpfError;
pub use events::{
    EventCollector, EventObjects, EventOptions, EventStream, RawEvent, PROCESS_RING_BYTES,
    RING_BYTES,
};
pub use filter::ProcessFilter;
pub use losses::Losses;
pub use privileges::Privileges;
pub use sched::SchedCollector;
pub use syscalls::SyscallCollector;
pub use tcp::TcpCollector;

/// Prepares libbpf for goroscope: its messages are captured for error
/// reports instead of being printed. Call once at start.
pub fn init() {
    libbpf_log::install();
}
