//! Errors from attaching to and reading a live Go process. Each names the process and says what the
//! operator can do.

use goroscope_gobin::GobinError;

/// A read of the target's memory failed as a whole.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    /// The process is gone.
    #[error("process {pid} has exited")]
    Exited {
        /// The process.
        pid: u32,
    },
    /// The process exec'd another program under the same pid while goroscope was reading it:
    /// nothing read from the new image may be reported as the old one's.
    #[error("process {pid} exec'd into {into} during observation: its memory now belongs to another program; what was read before is kept, nothing after")]
    Exec {
        /// The process.
        pid: u32,
        /// What it runs now (the target of /proc/PID/exe).
        into: String,
    },
    /// The kernel refused the read.
    #[error("permission denied reading the memory of process {pid}: run goroscope as root, or grant it CAP_SYS_PTRACE (sudo setcap cap_sys_ptrace+ep \"$(command -v goroscope)\")")]
    PermissionDenied {
        /// The process.
        pid: u32,
    },
    /// An address that should be mapped is not.
    #[error("process {pid}: {len} bytes at {address:#x} are not mapped")]
    Unmapped {
        /// The process.
        pid: u32,
        /// The address.
        address: u64,
        /// How many bytes were asked for.
        len: usize,
    },
    /// Any other failure of process_vm_readv.
    #[error("reading the memory of process {pid}: {source}")]
    Io {
        /// The process.
        pid: u32,
        /// The system error.
        #[source]
        source: std::io::Error,
    },
    /// What was read cannot be what should be there (a pointer into freed memory, a structure
    /// torn by the running target, or a layout goroscope does not know): nothing is reported
    /// from it.
    #[error("process {pid}: the data at {address:#x} is not what goroscope expects ({what}); nothing was taken from it")]
    Implausible {
        /// The process.
        pid: u32,
        /// Where the structure that failed a check was read.
        address: u64,
        /// The check that failed, with what was seen.
        what: String,
    },
    /// A programming error in how the read was asked for.
    #[error("bad memory read request: {0}")]
    BadRequest(&'static str),
}

/// Why goroscope cannot read a process's goroutines.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// No such process.
    #[error("no process with PID {pid} (it may have exited); check with `ps -p {pid}`")]
    NoProcess {
        /// The process.
        pid: u32,
    },
    /// Its executable could not be opened.
    #[error("cannot open the executable of process {pid} ({path}): {source}; run goroscope as root, or grant it CAP_SYS_PTRACE")]
    Executable {
        /// The process.
        pid: u32,
        /// The path tried.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The executable is not a Go program goroscope can read.
    #[error("process {pid}: {source}")]
    Binary {
        /// The process.
        pid: u32,
        /// What is wrong with the binary.
        #[source]
        source: GobinError,
    },
    /// Reading its memory failed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// The executable's mapping could not be found in /proc/PID/maps.
    #[error("process {pid}: cannot find where its executable is mapped in /proc/{pid}/maps")]
    NoMapping {
        /// The process.
        pid: u32,
    },
    /// What was read does not look like a Go runtime of the expected layout: refusing rather than
    /// reporting garbage.
    #[error("process {pid} ({version}): its runtime state does not look right ({what}); refusing to report garbage. The binary may use a runtime layout goroscope does not know; please report this with the output of `go version -m` on the binary")]
    Implausible {
        /// The process.
        pid: u32,
        /// Its Go version.
        version: String,
        /// The invariant that failed.
        what: String,
    },
    /// The layout inferred from the binary's runtime code (there were no DWARF and no table for
    /// its Go release) failed an invariant on the live process.
    #[error("process {pid} ({version}): goroscope has no runtime struct offsets for {version}, and the ones it {layout} fail a check on the live process: {what}. Refusing to report garbage; rebuild the target without -ldflags=-w so it carries DWARF, or update goroscope")]
    InferredLayoutRejected {
        /// The process.
        pid: u32,
        /// Its Go version.
        version: String,
        /// How the layout was obtained, e.g. `inferred (go1.26 layout + runtime code)`.
        layout: String,
        /// The invariants that failed, with what was seen.
        what: String,
    },
}

impl AttachError {
    /// True when the cause is that the process is gone.
    pub fn is_exited(&self) -> bool {
        matches!(
            self,
            AttachError::NoProcess { .. } | AttachError::Memory(MemoryError::Exited { .. })
        )
    }
}
