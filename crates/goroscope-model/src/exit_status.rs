//! Decoding of Linux task exit codes (wait(2) statuses) and signal names.

/// A decoded task exit status, as found in the kernel's `task->exit_code`
/// or `signal->group_exit_code` (the same encoding as a wait(2) status).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExitStatus {
    /// The value passed to exit(2) (0..=255); 0 when killed by a signal.
    pub exit_code: i32,
    /// The signal that killed the task, or 0 for a normal exit.
    pub signal: u32,
    /// Whether the task dumped core when the signal killed it.
    pub core_dumped: bool,
}

impl ExitStatus {
    /// Decodes a raw wait(2)-style status: bits 8..16 hold the exit code,
    /// bits 0..7 the terminating signal and bit 7 the core-dump flag.
    pub fn from_wait_status(raw: u32) -> Self {
        let signal = raw & 0x7f;
        let exit_code = if signal == 0 {
            ((raw >> 8) & 0xff) as i32
        } else {
            0
        };
        Self {
            exit_code,
            signal,
            core_dumped: raw & 0x80 != 0,
        }
    }
}

/// Names of the standard Linux x86_64 signals, indexed by number minus one.
const SIGNAL_NAMES: [&str; 31] = [
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// Returns the name of standard Linux x86_64 signal `sig` (1..=31), e.g.
/// 9 -> `"SIGKILL"`; `None` for 0, real-time signals and invalid numbers.
pub fn signal_name(sig: u32) -> Option<&'static str> {
    let index = usize::try_from(sig.checked_sub(1)?).ok()?;
    SIGNAL_NAMES.get(index).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_exit() {
        assert_eq!(
            ExitStatus::from_wait_status(0),
            ExitStatus {
                exit_code: 0,
                signal: 0,
                core_dumped: false
            }
        );
        assert_eq!(
            ExitStatus::from_wait_status(3 << 8),
            ExitStatus {
                exit_code: 3,
                signal: 0,
                core_dumped: false
            }
        );
        assert_eq!(ExitStatus::from_wait_status(0xff00).exit_code, 255);
        // Bits above 16 are ignored.
        assert_eq!(ExitStatus::from_wait_status(0x1_0100).exit_code, 1);
    }

    #[test]
    fn killed_by_signal() {
        assert_eq!(
            ExitStatus::from_wait_status(9),
            ExitStatus {
                exit_code: 0,
                signal: 9,
                core_dumped: false
            }
        );
        // SIGSEGV with core dump.
        assert_eq!(
            ExitStatus::from_wait_status(0x8b),
            ExitStatus {
                exit_code: 0,
                signal: 11,
                core_dumped: true
            }
        );
        // Stray exit-code bits are dropped when a signal is set.
        assert_eq!(ExitStatus::from_wait_status(0x0206).exit_code, 0);
        assert_eq!(ExitStatus::from_wait_status(0x0206).signal, 6);
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(0), None);
        assert_eq!(signal_name(1), Some("SIGHUP"));
        assert_eq!(signal_name(2), Some("SIGINT"));
        assert_eq!(signal_name(6), Some("SIGABRT"));
        assert_eq!(signal_name(9), Some("SIGKILL"));
        assert_eq!(signal_name(11), Some("SIGSEGV"));
        assert_eq!(signal_name(13), Some("SIGPIPE"));
        assert_eq!(signal_name(15), Some("SIGTERM"));
        assert_eq!(signal_name(17), Some("SIGCHLD"));
        assert_eq!(signal_name(29), Some("SIGIO"));
        assert_eq!(signal_name(30), Some("SIGPWR"));
        assert_eq!(signal_name(31), Some("SIGSYS"));
        assert_eq!(signal_name(32), None);
        assert_eq!(signal_name(u32::MAX), None);
    }
}
