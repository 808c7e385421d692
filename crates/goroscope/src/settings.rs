//! Turns parsed arguments into settled, validated settings: every PID exists,
//! privileges are there. Anything wrong is a [`UsageError`] (exit code 2),
//! found before a single probe is attached.

use std::fmt;
use std::path::Path;

use goroscope_bpf::privileges::HOW_TO_GRANT;
use goroscope_bpf::{Privileges, ProcessFilter};

use crate::cli::TargetArgs;

/// Bad input or missing privileges: the operator must change something.
#[derive(Debug)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Validates `--pid` and `--comm` into a filter.
pub fn process_filter(target: &TargetArgs, proc_root: &Path) -> Result<ProcessFilter, UsageError> {
    for &pid in &target.pids {
        if !is_process(proc_root, pid) {
            return Err(UsageError(format!(
                "no process with PID {pid} (it may have exited, or it is a thread id); \
                 check with `ps -p {pid}`"
            )));
        }
    }
    if let Some(comm) = &target.comm {
        if comm.is_empty() || comm.contains('\0') {
            return Err(UsageError(
                "--comm needs a process name, as in /proc/PID/comm".into(),
            ));
        }
    }
    let mut pids = target.pids.clone();
    pids.sort_unstable();
    pids.dedup();
    Ok(ProcessFilter {
        pids,
        comm: target.comm.clone(),
        include_self: false,
    })
}

/// True when `pid` is a live process (a thread-group leader), not a thread or nothing.
pub fn is_process(proc_root: &Path, pid: u32) -> bool {
    // Bytes, not a String: the Name line holds the process name, which need not be UTF-8.
    let Ok(status) = std::fs::read(proc_root.join(pid.to_string()).join("status")) else {
        return false;
    };
    let status = String::from_utf8_lossy(&status);
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
    };
    let is_leader = field("Tgid:").and_then(|t| t.parse::<u32>().ok()) == Some(pid);
    let is_zombie = field("State:").is_some_and(|s| s.starts_with('Z'));
    is_leader && !is_zombie
}

/// Fails with what to do when this process cannot load tracing programs.
pub fn require_privileges(proc_root: &Path) -> Result<(), UsageError> {
    match Privileges::of_self(proc_root) {
        Some(p) if p.can_trace() => Ok(()),
        Some(p) => Err(UsageError(format!(
            "goroscope needs {} to load its BPF programs: {HOW_TO_GRANT}",
            p.missing().join(" and ")
        ))),
        None => Err(UsageError(format!(
            "cannot read this process's capabilities from {}/self/status; is /proc mounted?",
            proc_root.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fake_proc(entries: &[(u32, u32, &str)]) -> std::path::PathBuf {
        let root = std::env::temp_dir().join(format!(
            "goroscope-settings-{}-{}",
            std::process::id(),
            entries.len()
        ));
        for (pid, tgid, state) in entries {
            let dir = root.join(pid.to_string());
            fs::create_dir_all(&dir).unwrap();
            fs::write(
                dir.join("status"),
                format!("Name:\tx\nState:\t{state}\nTgid:\t{tgid}\nPid:\t{pid}\n"),
            )
            .unwrap();
        }
        root
    }

    fn target(pids: Vec<u32>) -> TargetArgs {
        TargetArgs {
            pids,
            comm: None,
            duration: None,
        }
    }

    #[test]
    fn live_processes_pass_and_threads_zombies_and_missing_fail() {
        let root = fake_proc(&[
            (10, 10, "S (sleeping)"),
            (11, 10, "S (sleeping)"),
            (12, 12, "Z (zombie)"),
        ]);
        assert!(process_filter(&target(vec![10, 10]), &root).unwrap().pids == vec![10]);
        for bad in [11, 12, 13] {
            let err = process_filter(&target(vec![bad]), &root).unwrap_err();
            assert!(err.0.contains(&format!("PID {bad}")), "{err}");
        }
        fs::remove_dir_all(root).unwrap();
    }
}
