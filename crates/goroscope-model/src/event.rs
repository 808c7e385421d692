//! Kernel events (exec, exit, fork, open) as borrowed views of the bytes the
//! BPF programs produced, so decoding and printing an event allocates nothing.

use crate::exit_status::ExitStatus;

/// The kinds of event `goroscope trace` can stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventKind {
    /// A process replaced its program (execve).
    Exec,
    /// The last thread of a process exited.
    Exit,
    /// A new process was created (not a new thread).
    Fork,
    /// A file was opened with open, openat or openat2.
    Open,
}

impl EventKind {
    /// Every kind, in the order they are listed to users.
    pub const ALL: [EventKind; 4] = [Self::Exec, Self::Exit, Self::Fork, Self::Open];

    /// The name users type and see (`exec`, `exit`, `fork`, `open`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Exit => "exit",
            Self::Fork => "fork",
            Self::Open => "open",
        }
    }

    /// The kind with that name, if any (case-insensitive, surrounding spaces ignored).
    pub fn from_name(name: &str) -> Option<Self> {
        let name = name.trim();
        Self::ALL
            .into_iter()
            .find(|k| k.name().eq_ignore_ascii_case(name))
    }
}

/// What every event carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EventHeader<'a> {
    /// When it happened, in CLOCK_MONOTONIC nanoseconds.
    pub ts_ns: u64,
    /// The cgroup v2 id of the task.
    pub cgroup_id: u64,
    /// Process id (the kernel's tgid).
    pub pid: u32,
    /// Thread id (the kernel's pid).
    pub tid: u32,
    /// The process's name, without the trailing NULs.
    pub comm: &'a [u8],
}

/// What is particular to each kind of event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventDetail<'a> {
    /// See [`EventKind::Exec`].
    Exec {
        /// The parent process id.
        ppid: u32,
        /// The program path as passed to execve.
        filename: &'a [u8],
        /// The command line, NUL-separated, when it was asked for.
        args: Option<&'a [u8]>,
        /// The command line was longer than what was copied.
        args_truncated: bool,
    },
    /// See [`EventKind::Exit`].
    Exit {
        /// The parent process id.
        ppid: u32,
        /// Exit code or terminating signal.
        status: ExitStatus,
        /// How long the process lived.
        lifetime_ns: u64,
    },
    /// See [`EventKind::Fork`]; the header describes the parent.
    Fork {
        /// The new process's id.
        child_pid: u32,
    },
    /// See [`EventKind::Open`].
    Open {
        /// Which syscall: open, openat or openat2.
        syscall_nr: u32,
        /// The directory fd the path is relative to (AT_FDCWD is -100).
        dirfd: i32,
        /// The path as passed (empty when it could not be read).
        path: &'a [u8],
        /// The path filled the kernel's buffer and may have been cut short.
        path_truncated: bool,
        /// The O_* flags.
        flags: u64,
        /// The mode, for O_CREAT and O_TMPFILE.
        mode: u32,
        /// The new file descriptor, or -errno.
        ret: i64,
    },
}

/// One decoded event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    /// Who and when.
    pub header: EventHeader<'a>,
    /// What.
    pub detail: EventDetail<'a>,
}

impl Event<'_> {
    /// The kind of this event.
    pub fn kind(&self) -> EventKind {
        match self.detail {
            EventDetail::Exec { .. } => EventKind::Exec,
            EventDetail::Exit { .. } => EventKind::Exit,
            EventDetail::Fork { .. } => EventKind::Fork,
            EventDetail::Open { .. } => EventKind::Open,
        }
    }
}

/// The bytes of a fixed-size C string field up to its first NUL.
pub fn until_nul(bytes: &[u8]) -> &[u8] {
    match bytes.iter().position(|&b| b == 0) {
        Some(end) => &bytes[..end],
        None => bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_by_name() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(EventKind::from_name(" EXEC "), Some(EventKind::Exec));
        assert_eq!(EventKind::from_name("clone"), None);
        assert_eq!(EventKind::from_name(""), None);
    }

    #[test]
    fn until_nul_stops_at_the_first_nul() {
        assert_eq!(until_nul(b"dd\0\0junk"), b"dd");
        assert_eq!(until_nul(b"full-length-comm"), b"full-length-comm");
        assert_eq!(until_nul(b"\0"), b"");
    }

    #[test]
    fn kind_follows_detail() {
        let header = EventHeader {
            ts_ns: 1,
            cgroup_id: 2,
            pid: 3,
            tid: 4,
            comm: b"x",
        };
        let event = Event {
            header,
            detail: EventDetail::Fork { child_pid: 9 },
        };
        assert_eq!(event.kind(), EventKind::Fork);
    }
}
