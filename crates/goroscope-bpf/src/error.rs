//! The errors of loading, attaching and reading goroscope's BPF programs,
//! each carrying what was being done and, for loads, the verifier's words.

use std::io;

use crate::attach::AttachMode;

/// Something went wrong between goroscope and the kernel's BPF subsystem.
#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    /// libbpf could not open (parse) one of goroscope's embedded BPF objects.
    #[error("opening BPF object `{object}`: {source}")]
    Open {
        /// Which object.
        object: &'static str,
        /// libbpf's error.
        #[source]
        source: libbpf_rs::Error,
    },
    /// The kernel refused to load an object; `verifier_log` holds the end of what it said.
    #[error("loading BPF object `{object}` ({mode}) failed: {source}{}", log_suffix(.verifier_log))]
    Load {
        /// Which object.
        object: &'static str,
        /// How its programs were to be attached.
        mode: AttachMode,
        /// libbpf's error.
        #[source]
        source: libbpf_rs::Error,
        /// The trimmed verifier log (may be empty).
        verifier_log: String,
    },
    /// A loaded program could not be attached to its hook.
    #[error("attaching BPF program `{program}` ({mode}) failed: {source}")]
    Attach {
        /// Which program.
        program: String,
        /// How it was being attached.
        mode: AttachMode,
        /// libbpf's error.
        #[source]
        source: libbpf_rs::Error,
    },
    /// Reading or writing a BPF map failed.
    #[error("accessing BPF map `{map}`: {source}")]
    Map {
        /// Which map.
        map: &'static str,
        /// libbpf's error.
        #[source]
        source: libbpf_rs::Error,
    },
    /// An object has no read-only data section to configure (a build defect).
    #[error("BPF object `{object}` has no .rodata to configure")]
    MissingRodata {
        /// Which object.
        object: &'static str,
    },
    /// A CPU-sampling perf event could not be opened.
    #[error("opening a cpu-clock sampling event on CPU {cpu}: {source} (needs root or CAP_PERFMON, and perf events allowed: kernel.perf_event_paranoid)")]
    PerfEvent {
        /// Which CPU.
        cpu: usize,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A sampling frequency outside 1–1000 Hz.
    #[error("a sampling frequency of {frequency} Hz is out of range: use 1 to 1000 Hz")]
    Frequency {
        /// What was asked for.
        frequency: u32,
    },
    /// A BPF map could not be mapped into memory.
    #[error("mapping BPF map `{map}` into memory: {source} (the kernel must allow mmap of BPF array maps, Linux 5.5+)")]
    MapMemory {
        /// Which map.
        map: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A record read from a BPF map or ring buffer was shorter than its type.
    #[error("BPF map `{map}` returned {len} bytes, expected at least {expected}")]
    ShortRecord {
        /// Which map.
        map: &'static str,
        /// What was returned.
        len: usize,
        /// What the shared struct needs.
        expected: usize,
    },
    /// Neither tp_btf nor raw_tp tracepoints can be attached on this kernel.
    #[error("this kernel allows neither tp_btf nor raw_tp programs ({detail}); run `goroscope doctor` for details")]
    NoAttachMode {
        /// Why each was refused.
        detail: String,
    },
    /// The ring-buffer reader could not be set up.
    #[error("setting up the ring-buffer reader: {source}")]
    RingBuffer {
        /// libbpf's error.
        #[source]
        source: libbpf_rs::Error,
    },
    /// A thread could not be started.
    #[error("starting the {name} thread: {source}")]
    Thread {
        /// Which thread.
        name: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The kernel refused to turn on BPF run-time accounting (`BPF_ENABLE_STATS`).
    #[error("turning on BPF run-time statistics: {source}; run as root, or grant CAP_SYS_ADMIN")]
    EnableStats {
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A file under /proc could not be read.
    #[error("reading {path}: {source}")]
    Proc {
        /// Which file or directory.
        path: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
}

fn log_suffix(log: &str) -> String {
    if log.is_empty() {
        String::new()
    } else {
        format!("\nverifier log (end):\n{log}")
    }
}
