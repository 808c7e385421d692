//! What a process uses: resident memory, CPU time, threads and open file descriptors, from
//! `/proc/PID` (`/proc/self` for goroscope's own cost, which the agent exports; any pid for the
//! processes `goroscope record` follows).

use std::path::Path;

use crate::error::{HostError, Result};
use crate::fsread::{parse_u64, read_small};
use crate::procfs::{stat_field, ProcFs, STAT_BUFFER};

/// The resources this process uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OwnUsage {
    /// Resident set size in bytes.
    pub rss_bytes: u64,
    /// CPU time spent in user mode, in seconds, by all threads since the process started.
    pub cpu_user_seconds: f64,
    /// CPU time spent in the kernel on behalf of the process, in seconds.
    pub cpu_system_seconds: f64,
    /// Number of threads.
    pub threads: u64,
}

/// Reads this process's usage from `self/statm` and `self/stat` under `procfs`'s root.
pub fn own_usage(procfs: &ProcFs) -> Result<OwnUsage> {
    usage_with(procfs, "self", page_size(), clock_ticks_per_second())
}

/// Reads process `pid`'s usage from `PID/statm` and `PID/stat` under `procfs`'s root;
/// [`HostError::Read`] once it has exited.
pub fn process_usage(procfs: &ProcFs, pid: u32) -> Result<OwnUsage> {
    usage_with(
        procfs,
        &pid.to_string(),
        page_size(),
        clock_ticks_per_second(),
    )
}

/// The open file descriptors of process `pid` (entries of `/proc/PID/fd`).
pub fn open_fds(procfs: &ProcFs, pid: u32) -> Result<u64> {
    let path = procfs.root().join(pid.to_string()).join("fd");
    let entries = std::fs::read_dir(&path).map_err(|source| HostError::Read {
        path: path.clone(),
        source,
    })?;
    Ok(entries.filter(|e| e.is_ok()).count() as u64)
}

/// The usage of the process whose directory under `procfs`'s root is `dir`, with the page size
/// and clock tick rate given (tests use fixed ones).
fn usage_with(
    procfs: &ProcFs,
    dir: &str,
    page_size: u64,
    ticks_per_second: u64,
) -> Result<OwnUsage> {
    let own = procfs.root().join(dir);
    let mut buf = [0u8; STAT_BUFFER];

    let statm_path = own.join("statm");
    let statm = read(&statm_path, &mut buf)?;
    // size resident shared text lib data dt, in pages.
    let resident_pages = statm
        .split(|b| b.is_ascii_whitespace())
        .nth(1)
        .and_then(parse_u64)
        .ok_or_else(|| parse_error(&statm_path, "the second field (resident pages) is missing"))?;

    let stat_path = own.join("stat");
    let stat = read(&stat_path, &mut buf)?;
    let field = |number: usize, name: &str| {
        stat_field(stat, number)
            .and_then(parse_u64)
            .ok_or_else(|| parse_error(&stat_path, &format!("field {number} ({name}) is missing")))
    };
    let utime = field(14, "utime")?;
    let stime = field(15, "stime")?;
    let threads = field(20, "num_threads")?;

    let ticks = ticks_per_second.max(1) as f64;
    Ok(OwnUsage {
        rss_bytes: resident_pages.saturating_mul(page_size),
        cpu_user_seconds: utime as f64 / ticks,
        cpu_system_seconds: stime as f64 / ticks,
        threads,
    })
}

fn read<'b>(path: &Path, buf: &'b mut [u8]) -> Result<&'b [u8]> {
    read_small(path, buf).map_err(|source| HostError::Read {
        path: path.to_path_buf(),
        source,
    })
}

fn parse_error(path: &Path, reason: &str) -> HostError {
    HostError::Parse {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

/// The size of a memory page in bytes (4096 if the system will not say).
fn page_size() -> u64 {
    // SAFETY: sysconf only reads a system constant; it has no preconditions and touches no memory
    // of ours.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0).unwrap_or(4096)
}

/// The clock tick rate `/proc` counts CPU time in (100 if the system will not say).
fn clock_ticks_per_second() -> u64 {
    // SAFETY: as for `page_size`: a read of a system constant with no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    u64::try_from(ticks).ok().filter(|&t| t > 0).unwrap_or(100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testfs::FakeTree;

    #[test]
    fn reads_a_fake_self() {
        let tree = FakeTree::new("own-usage");
        tree.write("self/statm", "12345 2500 400 100 0 3000 0\n");
        // utime 250 ticks, stime 50 ticks, 7 threads; the name has a space and parentheses.
        tree.write(
            "self/stat",
            "99 (goro (x) scope) S 1 99 99 0 -1 4194560 500 0 0 0 250 50 0 0 20 0 7 0 1234 100000 2500\n",
        );
        let usage = usage_with(&ProcFs::new(tree.path()), "self", 4096, 100).unwrap();
        assert_eq!(
            usage,
            OwnUsage {
                rss_bytes: 2500 * 4096,
                cpu_user_seconds: 2.5,
                cpu_system_seconds: 0.5,
                threads: 7,
            }
        );
    }

    #[test]
    fn missing_or_malformed_files_are_errors_naming_the_file() {
        let tree = FakeTree::new("own-usage-bad");
        let procfs = ProcFs::new(tree.path());
        match own_usage(&procfs) {
            Err(HostError::Read { path, .. }) => assert!(path.ends_with("self/statm")),
            other => panic!("expected a read error, got {other:?}"),
        }
        tree.write("self/statm", "12345\n");
        assert!(matches!(own_usage(&procfs), Err(HostError::Parse { .. })));
        tree.write("self/statm", "1 2 3 4 5 6 7\n");
        tree.write("self/stat", "1 (x) S 1 2\n");
        match own_usage(&procfs) {
            Err(HostError::Parse { path, reason }) => {
                assert!(path.ends_with("self/stat"));
                assert!(reason.contains("utime"), "{reason}");
            }
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn reads_another_process_and_counts_its_fds() {
        let tree = FakeTree::new("process-usage");
        tree.write("42/statm", "100 10 0 0 0 0 0\n");
        tree.write(
            "42/stat",
            "42 (srv) S 1 42 42 0 -1 0 0 0 0 0 100 100 0 0 20 0 3 0 1 1 10\n",
        );
        for fd in ["0", "1", "2", "7"] {
            tree.write(&format!("42/fd/{fd}"), "");
        }
        let procfs = ProcFs::new(tree.path());
        let usage = usage_with(&procfs, "42", 4096, 100).unwrap();
        assert_eq!((usage.threads, usage.rss_bytes), (3, 10 * 4096));
        assert_eq!(open_fds(&procfs, 42).unwrap(), 4);
        assert!(open_fds(&procfs, 43).is_err());
        assert!(process_usage(&procfs, 43).is_err());
    }

    #[test]
    fn system_constants_are_sane() {
        assert!(page_size() >= 4096);
        assert!(clock_ticks_per_second() >= 1);
    }
}
