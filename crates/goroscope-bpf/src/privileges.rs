//! Whether this process may load BPF programs: its effective capabilities,
//! read from /proc (CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN).

use std::fs;
use std::path::Path;

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
        assert!(p.bpf && p.perfmon && p.sys_admin && p.can_trace());
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
    fn garbage_is_none() {
        assert_eq!(Privileges::from_status("CapEff:\tzz\n"), None);
        assert_eq!(Privileges::from_status("Name: x\n"), None);
    }
}
