//! CPU time spent in goroscope's own BPF programs: the kernel's per-program
//! run-time accounting (switched on with `BPF_ENABLE_STATS` while a
//! [`RunTimeStats`] is held) read for every program this process holds an fd to.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::sync::{Mutex, PoisonError};

use libbpf_rs::btf::types::Func;
use libbpf_rs::btf::TypeId;
use libbpf_rs::libbpf_sys;
use libbpf_rs::Btf;

use crate::error::BpfError;

/// Where this process's file descriptors are described.
const FDINFO_DIR: &str = "/proc/self/fdinfo";
/// Where its file descriptors link to what they are.
const FD_DIR: &str = "/proc/self/fd";
/// What a BPF program's fd links to.
const PROGRAM_FD_TARGET: &str = "anon_inode:bpf-prog";
/// The sysctl that turns accounting on for the whole host.
const STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Per-program run-time accounting, on while this is held. Dropping it turns
/// the accounting off again unless something else (the `kernel.bpf_stats_enabled`
/// sysctl, another holder) keeps it on: the kernel counts its enablers.
///
/// Accounting costs two clock reads per program run, host-wide, for every
/// BPF program, not only goroscope's.
#[derive(Debug)]
pub struct RunTimeStats {
    _fd: OwnedFd,
}

impl RunTimeStats {
    /// Turns the accounting on (`BPF_ENABLE_STATS` with `BPF_STATS_RUN_TIME`).
    /// Needs CAP_SYS_ADMIN.
    pub fn enable() -> Result<RunTimeStats, BpfError> {
        // SAFETY: bpf_enable_stats takes a plain integer and returns a new fd
        // or a negative errno; it touches no memory of ours.
        let ret = unsafe { libbpf_sys::bpf_enable_stats(libbpf_sys::BPF_STATS_RUN_TIME) };
        if ret < 0 {
            return Err(BpfError::EnableStats {
                source: io::Error::from_raw_os_error(-ret),
            });
        }
        // SAFETY: a non-negative return is a new fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(ret) };
        Ok(RunTimeStats { _fd: fd })
    }
}

/// Whether the `kernel.bpf_stats_enabled` sysctl is set. It reports only the
/// sysctl's own setting, not accounting switched on through [`RunTimeStats`].
pub fn sysctl_enabled() -> Result<bool, BpfError> {
    let text = std::fs::read_to_string(STATS_SYSCTL).map_err(|source| BpfError::Proc {
        path: STATS_SYSCTL,
        source,
    })?;
    Ok(text.trim() != "0")
}

/// One BPF program this process holds, and the CPU time it has used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProgramStats {
    /// The kernel's id of the program.
    pub id: u32,
    /// Its function name (from its BTF; the kernel's 15-byte name if that is unreadable).
    pub name: String,
    /// Time spent running it while accounting was on, in nanoseconds.
    pub run_time_ns: u64,
    /// Times it ran while accounting was on.
    pub run_count: u64,
}

/// What `/proc/self/fdinfo/N` says about a program fd.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct ProgramFdInfo {
    id: u32,
    run_time_ns: u64,
    run_count: u64,
}

/// Names of programs already resolved, by id (ids are not reused).
static NAMES: Mutex<Vec<(u32, String)>> = Mutex::new(Vec::new());

/// Every BPF program this process holds an fd to, once each, sorted by id.
/// The counters stay at zero unless accounting is on.
///
/// A program's name is looked up once (in its BTF) and remembered; later
/// calls cost one readlink per open fd and one read of `/proc/self/fdinfo/N`
/// per program fd (about 0.2 ms with 11 programs and 63 fds).
pub fn own_programs() -> Result<Vec<ProgramStats>, BpfError> {
    let dir_error = |source| BpfError::Proc {
        path: FDINFO_DIR,
        source,
    };
    let mut programs: Vec<(ProgramFdInfo, i32)> = Vec::new();
    let mut text = String::with_capacity(512);
    let mut path = String::with_capacity(FDINFO_DIR.len() + 12);
    for entry in std::fs::read_dir(FDINFO_DIR).map_err(dir_error)? {
        let entry = entry.map_err(dir_error)?;
        let Some(fd) = parse_fd(&entry.file_name()) else {
            continue;
        };
        // One readlink per fd is cheaper than reading every fd's fdinfo.
        path.clear();
        // Writing into a String cannot fail.
        let _ = write!(path, "{FD_DIR}/{fd}");
        match std::fs::read_link(&path) {
            Ok(target) if target.as_os_str() == PROGRAM_FD_TARGET => {}
            _ => continue, // not a program, or closed since the directory was read
        }
        path.clear();
        let _ = write!(path, "{FDINFO_DIR}/{fd}");
        text.clear();
        match File::open(&path).and_then(|mut f| f.read_to_string(&mut text)) {
            Ok(_) => {}
            // Closed since it was looked at.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(source) => return Err(dir_error(source)),
        }
        if let Some(info) = parse_fdinfo(&text) {
            if !programs.iter().any(|(p, _)| p.id == info.id) {
                programs.push((info, fd));
            }
        }
    }
    programs.sort_unstable_by_key(|(p, _)| p.id);

    let mut names = NAMES.lock().unwrap_or_else(PoisonError::into_inner);
    names.retain(|(id, _)| programs.iter().any(|(p, _)| p.id == *id));
    let mut out = Vec::with_capacity(programs.len());
    for (info, fd) in programs {
        let name = match names.iter().find(|(id, _)| *id == info.id) {
            Some((_, name)) => name.clone(),
            None => match program_name(fd, info.id) {
                Some(name) => {
                    names.push((info.id, name.clone()));
                    name
                }
                None => continue, // the fd was closed or reused meanwhile
            },
        };
        out.push(ProgramStats {
            id: info.id,
            name,
            run_time_ns: info.run_time_ns,
            run_count: info.run_count,
        });
    }
    Ok(out)
}

fn parse_fd(name: &OsStr) -> Option<i32> {
    name.to_str()?.parse().ok()
}

/// The program's id and counters, if the fd is a BPF program.
fn parse_fdinfo(text: &str) -> Option<ProgramFdInfo> {
    let mut info = ProgramFdInfo::default();
    let mut is_program = false;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match key {
            "prog_id" => {
                info.id = value.parse().ok()?;
                is_program = true;
            }
            "run_time_ns" => info.run_time_ns = value.parse().ok()?,
            "run_cnt" => info.run_count = value.parse().ok()?,
            _ => {}
        }
    }
    is_program.then_some(info)
}

/// The program's full function name from its BTF, else the kernel's
/// truncated name; `None` if `fd` no longer holds program `id`.
fn program_name(fd: i32, id: u32) -> Option<String> {
    let mut func = libbpf_sys::bpf_func_info::default();
    let mut info = libbpf_sys::bpf_prog_info {
        nr_func_info: 1,
        func_info_rec_size: std::mem::size_of::<libbpf_sys::bpf_func_info>() as u32,
        func_info: std::ptr::addr_of_mut!(func) as u64,
        ..Default::default()
    };
    let mut len = std::mem::size_of::<libbpf_sys::bpf_prog_info>() as u32;
    // SAFETY: `info` and `len` are valid for writes of `len` bytes, and
    // `info.func_info` points to room for the one record `nr_func_info` asks
    // for. A stale fd makes the call fail or describe another object, which
    // the id check below catches.
    let ret = unsafe { libbpf_sys::bpf_prog_get_info_by_fd(fd, &mut info, &mut len) };
    if ret != 0 || info.id != id {
        return None;
    }
    let full = (info.nr_func_info > 0)
        .then(|| btf_func_name(id, func.type_id))
        .flatten();
    Some(full.unwrap_or_else(|| {
        let bytes: Vec<u8> = info
            .name
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }))
}

/// The name of function `type_id` in program `id`'s BTF (needs CAP_SYS_ADMIN).
fn btf_func_name(id: u32, type_id: u32) -> Option<String> {
    let btf = Btf::from_prog_id(id).ok()?;
    let func: Func<'_> = btf.type_by_id(TypeId::from(type_id))?;
    let name = func.name()?.to_str()?;
    (!name.is_empty()).then(|| name.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_fdinfo_is_parsed() {
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t16\nino:\t1057\nprog_type:\t26\n\
                    prog_jited:\t1\nprog_tag:\t0123456789abcdef\nmemlock:\t4096\n\
                    prog_id:\t42\nrun_time_ns:\t1234\nrun_cnt:\t56\nrecursion_misses:\t0\n\
                    verified_insns:\t99\n";
        assert_eq!(
            parse_fdinfo(text),
            Some(ProgramFdInfo {
                id: 42,
                run_time_ns: 1234,
                run_count: 56
            })
        );
    }

    #[test]
    fn other_fds_are_not_programs() {
        let map = "pos:\t0\nflags:\t02000002\nmap_type:\t1\nkey_size:\t4\nmap_id:\t7\n";
        assert_eq!(parse_fdinfo(map), None);
        assert_eq!(parse_fdinfo("pos:\t0\nflags:\t0100000\n"), None);
        assert_eq!(parse_fd(OsStr::new("12")), Some(12));
        assert_eq!(parse_fd(OsStr::new(".")), None);
    }
}
