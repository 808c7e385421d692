//! `doctor`'s checks of the Go reader: whether goroscope holds CAP_SYS_PTRACE (needed to read
//! other users' processes), and whether it can really read a Go process here — a running one
//! found on the host (attach and one snapshot), else the memory of a child it starts — saying
//! what is missing and how to grant it.

use std::path::Path;
use std::process::{Command, Stdio};

use goroscope_bpf::privileges::HOW_TO_GRANT_PTRACE;
use goroscope_bpf::Privileges;
use goroscope_goprocess::{GoProcess, MemoryError, SnapshotOptions};
use goroscope_host::{GoDiscovery, ProcFs};

/// Most Go processes tried before giving up (each attach reads a binary's tables).
const MAX_TRIED: usize = 3;

/// The CAP_SYS_PTRACE line.
pub fn ptrace_check(privileges: Option<Privileges>) -> Result<String, String> {
    match privileges {
        Some(p) if p.sys_ptrace => {
            Ok("yes: Go processes of every user can be read".to_string())
        }
        Some(_) => Err(format!(
            "missing: only Go processes of goroscope's own user (with no more capabilities than it has) can be read; {HOW_TO_GRANT_PTRACE}"
        )),
        None => Err("cannot read /proc/self/status".to_string()),
    }
}

/// The Go reader line: read a running Go process, or a child's memory when none runs.
pub fn reader_check(proc_root: &Path, privileges: Option<Privileges>) -> Result<String, String> {
    let procfs = ProcFs::new(proc_root);
    let pids = procfs
        .pids()
        .map_err(|e| format!("cannot list {}: {e}", proc_root.display()))?;
    let mut discovery = GoDiscovery::new();
    let own = std::process::id();
    let found = discovery.scan(&procfs, pids.into_iter().filter(|&pid| pid != own));
    let denied = discovery.denied_last_scan();
    let has_ptrace = privileges.is_some_and(|p| p.sys_ptrace);
    let hidden = if denied == 0 {
        String::new()
    } else if has_ptrace {
        format!("; the executables of {denied} processes cannot be opened even so (another user namespace or a security module)")
    } else {
        format!("; the executables of {denied} processes (other users', or holding capabilities goroscope lacks) cannot be opened without CAP_SYS_PTRACE, so Go processes among them are not seen")
    };
    let mut failures = Vec::new();
    for process in &found {
        if failures.len() >= MAX_TRIED {
            break;
        }
        let tried = GoProcess::attach(proc_root, process.pid).and_then(|mut attached| {
            let snapshot = attached
                .snapshot(&SnapshotOptions { max_frames: 0 })
                .map_err(goroscope_goprocess::AttachError::Memory)?;
            Ok(snapshot.goroutines.len())
        });
        match tried {
            Ok(goroutines) => {
                return Ok(format!(
                    "read Go process {} ({}, {}): {goroutines} goroutines{hidden}",
                    process.pid,
                    printable(&process.comm),
                    process.go_version
                ))
            }
            // Gone (or exec'd) meanwhile: says nothing about goroscope's rights.
            Err(error)
                if error.is_exited()
                    || matches!(
                        error,
                        goroscope_goprocess::AttachError::Memory(MemoryError::Exec { .. })
                    ) => {}
            Err(error) => failures.push(format!(
                "{} ({}): {error}",
                process.pid,
                printable(&process.comm)
            )),
        }
    }
    if !failures.is_empty() {
        return Err(format!(
            "{} Go processes found, none of the {} tried could be read: {}{hidden}",
            found.len(),
            failures.len(),
            failures.join("; ")
        ));
    }
    // No Go process to try: the permission that matters is the same for any process.
    let child = read_a_child();
    match child {
        Ok(()) if denied > 0 && !has_ptrace => Err(format!(
            "no readable Go process running; a child's memory can be read{hidden}; {HOW_TO_GRANT_PTRACE}"
        )),
        Ok(()) => Ok(format!(
            "no Go process running to try; reading a child process's memory works{hidden}"
        )),
        Err(why) => Err(format!("no Go process running to try, and {why}")),
    }
}

/// Starts `sleep`, reads 8 bytes of its memory where its first mapping starts, and stops it.
fn read_a_child() -> Result<(), String> {
    let mut child = Command::new("sleep")
        .arg("10")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start `sleep` to test reading a process: {e}"))?;
    let pid = child.id();
    let result = (|| {
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .map_err(|e| format!("cannot read /proc/{pid}/maps of a child: {e}"))?;
        let start = maps
            .split('-')
            .next()
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .ok_or_else(|| format!("/proc/{pid}/maps of a child lists no mapping"))?;
        let mut memory = goroscope_goprocess::memory::ProcessMemory::new(pid);
        match memory.read_u64(start) {
            Ok(_) => Ok(()),
            Err(error @ MemoryError::PermissionDenied { .. }) => {
                Err(format!("even a child's memory cannot be read: {error}"))
            }
            Err(error) => Err(format!("reading a child's memory: {error}")),
        }
    })();
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// `text` with control characters as `\xNN` (process names are chosen by whoever runs them).
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                format!("\\x{:02x}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}
