//! Whether this process may load BPF programs and read Go processes: its effective
//! capabilities, read from /proc (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN; CAP_SYS_PTRACE for
//! other users' processes), and whether a failed kernel feature probe was refused for want of
//! privilege rather than for want of the feature.

use std::fs;
use std::path::Path;

const CAP_SYS_PTRACE: u32 = 19;
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// The capabilities that matter to goroscope.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Privileges {
    /// CAP_BPF: create maps and load programs.
    pub bpf: bool,
    /// CAP_PERFMON: tracing programs, reading kernel memory.
    pub perfmon: bool,
    /// CAP_SYS_ADMIN: implies both on every kernel.
    pub sys_admin: bool,
    /// CAP_SYS_PTRACE: read the memory and executables of other users' processes (Go targets).
    pub sys_ptrace: bool,
}

impl Privileges {
    /// Reads this process's effective capabilities from `<proc_root>/self/status`.
    pub fn of_self(proc_root: &Path) -> Option<Self> {
        let status = fs::read_to_string(proc_root.join("self/status")).ok()?;
        Self::from_status(&status)
    }

    /// Parses the `CapEff:` line of a /proc/PID/status text.
    pub fn from_status(status: &str) -> Option<Self> {
        let hex = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))?
            .trim();
        let caps = u64::from_str_radix(hex, 16).ok()?;
        let has = |cap: u32| caps & (1u64 << cap) != 0;
        Some(Self {
            bpf: has(CAP_BPF),
            perfmon: has(CAP_PERFMON),
            sys_admin: has(CAP_SYS_ADMIN),
            sys_ptrace: has(CAP_SYS_PTRACE),
        })
    }

    /// True when tracing programs can be loaded and attached.
    pub fn can_trace(&self) -> bool {
        self.sys_admin || (self.bpf && self.perfmon)
    }

    /// The capabilities still needed, named for the operator.
    pub fn missing(&self) -> Vec<&'static str> {
        if self.can_trace() {
            return Vec::new();
        }
        let mut missing = Vec::new();
        if !self.bpf {
            missing.push("CAP_BPF");
        }
        if !self.perfmon {
            missing.push("CAP_PERFMON");
        }
        missing
    }
}

/// Why the kernel refused a BPF feature probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// EPERM or EACCES: this process may not use bpf(2) (missing capabilities, or
    /// `kernel.unprivileged_bpf_disabled`, or a security module); says nothing about the kernel.
    Permission,
    /// Any other error: the kernel lacks the feature (EINVAL, ENOTSUP, E2BIG...).
    Unsupported,
}

impl Refusal {
    /// Sorts an errno from bpf(2).
    pub fn from_errno(errno: i32) -> Refusal {
        match errno {
            libc::EPERM | libc::EACCES => Refusal::Permission,
            _ => Refusal::Unsupported,
        }
    }
}

/// Whether this process may create BPF maps at all: `Err` with the errno when even a plain
/// 1-entry array is refused. A feature probe that fails while this fails with EPERM/EACCES was
/// refused for privilege, not for the feature (libbpf's probes report both as "not supported").
pub fn bpf_allowed() -> Result<(), i32> {
    // union bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries (u32 each),
    // the rest zero. 128 bytes covers every field the kernel reads for this command.
    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_TYPE_ARRAY: u32 = 2;
    let mut attr = [0u32; 32];
    attr[0] = BPF_MAP_TYPE_ARRAY;
    attr[1] = 4;
    attr[2] = 4;
    attr[3] = 1;
    // SAFETY: attr is a valid, zero-padded bpf_attr of the size passed, living across the call.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            attr.as_mut_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(libc::EPERM));
    }
    // SAFETY: fd is a descriptor bpf(2) just returned to us and nothing else owns.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

/// What to tell an operator whose Go processes cannot be read.
pub const HOW_TO_GRANT_PTRACE: &str =
    "run goroscope as root, or grant CAP_SYS_PTRACE: sudo setcap cap_sys_ptrace,cap_bpf,cap_perfmon+ep \
     \"$(command -v goroscope)\" (for a systemd service: AmbientCapabilities=CAP_SYS_PTRACE CAP_BPF CAP_PERFMON)";

/// What to tell an operator who lacks the privileges.
pub const HOW_TO_GRANT: &str =
    "run goroscope as root (sudo goroscope ...), or grant the capabilities: \
     sudo setcap cap_bpf,cap_perfmon+ep \"$(command -v goroscope)\"";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_has_everything() {
        let p = Privileges::from_status("Name:\tx\nCapEff:\t000001ffffffffff\n").unwrap();
        assert!(p.bpf && p.perfmon && p.sys_admin && p.sys_ptrace && p.can_trace());
        assert!(p.missing().is_empty());
    }

    #[test]
    fn nobody_has_nothing() {
        let p = Privileges::from_status("CapEff:\t0000000000000000\n").unwrap();
        assert!(!p.can_trace());
        assert_eq!(p.missing(), vec!["CAP_BPF", "CAP_PERFMON"]);
    }

    #[test]
    fn bpf_and_perfmon_are_enough() {
        let caps = (1u64 << CAP_BPF) | (1u64 << CAP_PERFMON);
        let p = Privileges::from_status(&format!("CapEff:\t{caps:016x}\n")).unwrap();
        assert!(p.can_trace() && !p.sys_admin);
        let only_bpf =
            Privileges::from_status(&format!("CapEff:\t{:016x}\n", 1u64 << CAP_BPF)).unwrap();
        assert_eq!(only_bpf.missing(), vec!["CAP_PERFMON"]);
    }

    #[test]
    fn permission_errors_are_not_missing_features() {
        assert_eq!(Refusal::from_errno(libc::EPERM), Refusal::Permission);
        assert_eq!(Refusal::from_errno(libc::EACCES), Refusal::Permission);
        assert_eq!(Refusal::from_errno(libc::EINVAL), Refusal::Unsupported);
        assert_eq!(Refusal::from_errno(libc::ENOTSUP), Refusal::Unsupported);
        // This test runs as root: plain maps may be created.
        assert_eq!(bpf_allowed(), Ok(()));
    }

    #[test]
    fn garbage_is_none() {
        assert_eq!(Privileges::from_status("CapEff:\tzz\n"), None);
        assert_eq!(Privileges::from_status("Name: x\n"), None);
    }
}
