//! Noticing that a target exec'd: its pid stays, but its memory becomes another program's, and
//! every address goroscope learned at attach (runtime globals, offsets, the function table) now
//! points into someone else's image.
//!
//! At attach goroscope opens `/proc/PID/mem`. The kernel binds that descriptor to the address
//! space the process had at open time (`mem_open` keeps a reference to its `mm`), and once that
//! address space is given up — exec replaces it, exit drops it — a read through the descriptor
//! returns 0 bytes, whatever the pid runs now. Snapshots are read with `process_vm_readv` (many
//! ranges per system call), which follows the pid; so after every snapshot one byte of a runtime
//! global is read through the attach-time descriptor. If it still reads, the address space the
//! snapshot came from is the one goroscope attached to (exec only ever replaces it, it never comes
//! back); if not, the snapshot is thrown away and the process's start time (unchanged by exec,
//! different for a reused pid) tells an exec from an exit. This also catches a process that exec's
//! its own binary again (a graceful-restart pattern), which the executable's identity would not.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::MemoryError;

/// The address space a [`crate::GoProcess`] was attached to.
#[derive(Debug)]
pub(crate) struct Image {
    pid: u32,
    proc_root: PathBuf,
    /// `/proc/PID/mem`, bound to the address space seen at attach.
    mem: File,
    /// A run-time address mapped in that address space (a runtime global); 0 until known.
    probe: u64,
    /// The process's start time in clock ticks since boot (field 22 of /proc/PID/stat).
    start_time: Option<u64>,
}

impl Image {
    /// Binds to the address space process `pid` has now. Open this before reading the executable:
    /// if the process exec's in between, [`Image::check`] sees it.
    pub(crate) fn open(proc_root: &Path, pid: u32) -> Result<Image, MemoryError> {
        let process = proc_root.join(pid.to_string());
        let mem = File::open(process.join("mem")).map_err(|error| match error.raw_os_error() {
            Some(libc::ENOENT) | Some(libc::ESRCH) => MemoryError::Exited { pid },
            Some(libc::EPERM) | Some(libc::EACCES) => MemoryError::PermissionDenied { pid },
            _ => MemoryError::Io { pid, source: error },
        })?;
        Ok(Image {
            pid,
            proc_root: proc_root.to_path_buf(),
            mem,
            probe: 0,
            start_time: start_time(proc_root, pid),
        })
    }

    /// Sets the address read by [`Image::check`]: one the runtime keeps mapped for its lifetime.
    pub(crate) fn set_probe(&mut self, address: u64) {
        self.probe = address;
    }

    /// Ok while the process still has the address space it had at attach. Otherwise
    /// [`MemoryError::Exec`] when the same process now runs another image, and
    /// [`MemoryError::Exited`] when it is gone.
    pub(crate) fn check(&self) -> Result<(), MemoryError> {
        let mut byte = [0u8; 1];
        // 0 bytes: the address space is gone. An error (EIO: that address is not mapped) comes
        // from an address space still alive, so still the one attached to.
        if !matches!(self.mem.read_at(&mut byte, self.probe), Ok(0)) {
            return Ok(());
        }
        let now = start_time(&self.proc_root, self.pid);
        if now.is_none() || now != self.start_time {
            return Err(MemoryError::Exited { pid: self.pid });
        }
        // An exited process its parent has not reaped yet keeps its pid and start time, but not
        // its executable: only a process that has one now exec'd.
        match std::fs::read_link(self.proc_root.join(self.pid.to_string()).join("exe")) {
            Ok(path) if !is_zombie(&self.proc_root, self.pid) => Err(MemoryError::Exec {
                pid: self.pid,
                into: printable(&path.display().to_string()),
            }),
            _ => Err(MemoryError::Exited { pid: self.pid }),
        }
    }
}

impl Image {
    /// After a read said the process is gone: whether it really is. A process that exec's from
    /// a thread other than its leader has its pid moved to that thread, and for that moment
    /// `process_vm_readv` by pid fails with ESRCH while the old address space is still alive
    /// ([`Image::check`] still reads). Waits (up to a second) until the address space is given
    /// up or the pid is gone, so the caller reports an exec as an exec and an exit as an exit;
    /// Ok when the process is still there with its attach-time memory (the read may be retried).
    pub(crate) fn settle_after_vanished(&self) -> Result<(), MemoryError> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(1);
        loop {
            self.check()?;
            if start_time(&self.proc_root, self.pid) != self.start_time {
                return Err(MemoryError::Exited { pid: self.pid });
            }
            if std::time::Instant::now() >= deadline {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }
}

/// `text` with control characters written as `\xNN`, so a hostile file name cannot drive the
/// operator's terminal from an error message.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.push_str(&format!("\\x{:02x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Field 22 (`starttime`) of `/proc/PID/stat`: set at fork, kept across exec.
fn start_time(proc_root: &Path, pid: u32) -> Option<u64> {
    let stat = std::fs::read(proc_root.join(pid.to_string()).join("stat")).ok()?;
    parse_start_time(&stat)
}

/// Whether the process has exited and waits to be reaped (state Z or X in /proc/PID/stat).
fn is_zombie(proc_root: &Path, pid: u32) -> bool {
    std::fs::read(proc_root.join(pid.to_string()).join("stat")).is_ok_and(|stat| {
        let state = stat
            .iter()
            .rposition(|&byte| byte == b')')
            .and_then(|close| stat.get(close + 2));
        matches!(state, Some(b'Z' | b'X'))
    })
}

/// Field 22 of a `/proc/PID/stat` text; the command name (field 2) may hold spaces and `)`.
fn parse_start_time(stat: &[u8]) -> Option<u64> {
    let close = stat.iter().rposition(|&byte| byte == b')')?;
    let rest = std::str::from_utf8(stat.get(close + 1..)?).ok()?;
    // After the name: field 3 (state) is the first, so field 22 is the 20th.
    rest.split_ascii_whitespace().nth(19)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_is_field_22_even_with_a_hostile_name() {
        let stat = b"42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_start_time(stat), Some(987654));
        assert_eq!(parse_start_time(b"42 (x"), None);
        let own = start_time(Path::new("/proc"), std::process::id());
        assert!(own.is_some_and(|ticks| ticks > 0), "{own:?}");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(printable("/tmp/a\u{1b}[2Jb\nc"), "/tmp/a\\x1b[2Jb\\x0ac");
    }

    #[test]
    fn own_address_space_reads_and_a_gone_child_is_exited() {
        let value = 7u64;
        let mut image = Image::open(Path::new("/proc"), std::process::id()).unwrap();
        image.set_probe(&value as *const u64 as u64);
        image.check().unwrap();

        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let image = Image::open(Path::new("/proc"), child.id()).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let error = image.check().unwrap_err();
        assert!(matches!(error, MemoryError::Exited { .. }), "{error}");
    }

    /// The image of `pid`, probing its first mapping, checked once.
    fn checked_image(pid: u32) -> Image {
        let mut image = Image::open(Path::new("/proc"), pid).unwrap();
        let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap();
        let first = maps.split('-').next().unwrap();
        image.set_probe(u64::from_str_radix(first, 16).unwrap());
        image.check().unwrap();
        image
    }

    #[test]
    fn an_exited_child_not_yet_reaped_is_exited_not_exec_d() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let image = checked_image(child.id());
        child.kill().unwrap();
        // Not waited for: a zombie keeps its pid and start time, not its memory.
        let stat = format!("/proc/{}/stat", child.id());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !is_zombie(Path::new("/proc"), child.id()) {
            assert!(
                std::time::Instant::now() < deadline,
                "never a zombie: {stat}"
            );
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        let error = image.check().unwrap_err();
        child.wait().unwrap();
        assert!(matches!(error, MemoryError::Exited { .. }), "{error}");
    }

    #[test]
    fn an_exec_under_the_same_pid_is_told_from_an_exit() {
        let mut child = std::process::Command::new("sh")
            .args(["-c", "sleep 0.5; exec sleep 30"])
            .spawn()
            .unwrap();
        let image = checked_image(child.id());
        std::thread::sleep(std::time::Duration::from_millis(1500));
        let error = image.check().unwrap_err();
        child.kill().unwrap();
        child.wait().unwrap();
        match error {
            MemoryError::Exec { pid, into } => {
                assert_eq!(pid, child.id());
                assert!(into.ends_with("/sleep"), "{into}");
            }
            other => panic!("expected an exec, got {other}"),
        }
    }
}
