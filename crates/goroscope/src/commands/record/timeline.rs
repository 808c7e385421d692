//! The process's side of each timeline point (threads, descriptors, CPU time, memory, read from
//! `/proc/PID`), and who the process is.

use std::path::Path;

use goroscope_host::ProcFs;
use goroscope_model::recording::{Target, TimePoint};

/// The timeline point at `at_ns` with what `/proc/PID` says; fields stay `None` once the process
/// is gone.
pub fn process_point(proc_root: &Path, pid: u32, at_ns: u64) -> TimePoint {
    let procfs = ProcFs::new(proc_root);
    let usage = goroscope_host::process_usage(&procfs, pid).ok();
    let fds = goroscope_host::open_fds(&procfs, pid).ok();
    TimePoint {
        at_ns,
        threads: usage.map(|u| u.threads),
        fds,
        cpu_ns: usage.map(|u| ((u.cpu_user_seconds + u.cpu_system_seconds) * 1e9) as u64),
        rss_bytes: usage.map(|u| u.rss_bytes),
        go: None,
    }
}

/// Who process `pid` is: its name, command line and executable, and the host.
pub fn describe_target(proc_root: &Path, pid: u32) -> Target {
    let dir = proc_root.join(pid.to_string());
    let command = std::fs::read(dir.join("comm"))
        .map(|b| String::from_utf8_lossy(b.strip_suffix(b"\n").unwrap_or(&b)).into_owned())
        .unwrap_or_default();
    let command_line = std::fs::read(dir.join("cmdline"))
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    let executable = std::fs::read_link(dir.join("exe"))
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_default();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    Target {
        pid,
        command,
        command_line,
        executable,
        host,
        cpus,
        ..Target::default()
    }
}
