//! Processes as `/proc` describes them: the list of pids, and for one process its name, cgroup,
//! container and start time. The root is a parameter so tests can point it at a fake tree.

use std::path::{Path, PathBuf};

use crate::error::{HostError, Result};
use crate::fsread::{is_gone, parse_u64, pid_path, read_small};

/// Size of the buffer `/proc/PID/stat` is read into: 52 fields of at most 20 digits plus a name.
pub(crate) const STAT_BUFFER: usize = 2048;

/// A procfs mount (normally `/proc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcFs {
    root: PathBuf,
}

/// What goroscope knows about a process from `/proc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// Process id (the thread group id).
    pub pid: u32,
    /// Command name from `/proc/PID/comm` (at most 15 bytes, set by the kernel or `prctl`).
    pub comm: String,
    /// The cgroup v2 path from the `0::` line of `/proc/PID/cgroup`, e.g.
    /// `/system.slice/docker-<id>.scope`; empty when there is no such line.
    pub cgroup: String,
    /// The container id found in the cgroup path (the last 64-hex-digit component), if any.
    pub container_id: Option<String>,
    /// Start time in clock ticks after boot (field 22 of `/proc/PID/stat`). Together with the pid
    /// it identifies a process even when pids are reused.
    pub start_time_ticks: u64,
}

impl ProcFs {
    /// A procfs mounted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> ProcFs {
        ProcFs { root: root.into() }
    }

    /// The host's procfs, `/proc`.
    pub fn host() -> ProcFs {
        ProcFs::new("/proc")
    }

    /// Where this procfs is mounted.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The pids of all processes (the numeric directories of the root), in ascending order.
    pub fn pids(&self) -> Result<Vec<u32>> {
        let entries = std::fs::read_dir(&self.root).map_err(|source| HostError::ReadDir {
            path: self.root.clone(),
            source,
        })?;
        let mut pids: Vec<u32> = entries
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse().ok())
            .collect();
        pids.sort_unstable();
        Ok(pids)
    }

    /// Whether process `pid` exists.
    pub fn exists(&self, pid: u32) -> bool {
        let mut scratch = PathBuf::new();
        std::fs::symlink_metadata(pid_path(&self.root, pid, "", &mut scratch)).is_ok()
    }

    /// Reads process `pid`: its stat line first (the start time that identifies it), then its
    /// name and cgroup. [`HostError::Gone`] when it exited meanwhile.
    pub fn process(&self, pid: u32) -> Result<ProcessInfo> {
        let mut scratch = PathBuf::new();
        let start_time_ticks = self.start_time_ticks_with(pid, &mut scratch)?;
        let comm = self.comm(pid)?;
        let (cgroup, container_id) = self.cgroup(pid)?;
        Ok(ProcessInfo {
            pid,
            comm,
            cgroup,
            container_id,
            start_time_ticks,
        })
    }

    /// The command name of `pid` from `/proc/PID/comm`, trailing newline removed.
    pub fn comm(&self, pid: u32) -> Result<String> {
        let mut scratch = PathBuf::new();
        let path = pid_path(&self.root, pid, "comm", &mut scratch);
        // The kernel's limit is 16 bytes; leave room for odd fakes.
        let mut buf = [0u8; 256];
        match read_small(path, &mut buf) {
            Ok(bytes) => {
                let bytes = bytes.strip_suffix(b"\n").unwrap_or(bytes);
                Ok(String::from_utf8_lossy(bytes).into_owned())
            }
            Err(source) => Err(self.read_error(pid, path, source)),
        }
    }

    /// The start time of `pid` in clock ticks after boot (field 22 of `/proc/PID/stat`).
    pub fn start_time_ticks(&self, pid: u32) -> Result<u64> {
        self.start_time_ticks_with(pid, &mut PathBuf::new())
    }

    /// [`ProcFs::start_time_ticks`] building the path in `scratch`: no allocation when it
    /// succeeds and `scratch` has grown to fit once.
    pub(crate) fn start_time_ticks_with(&self, pid: u32, scratch: &mut PathBuf) -> Result<u64> {
        let path = pid_path(&self.root, pid, "stat", scratch);
        let mut buf = [0u8; STAT_BUFFER];
        let stat = match read_small(path, &mut buf) {
            Ok(bytes) => bytes,
            Err(source) if is_gone(&source) => return Err(HostError::Gone { pid }),
            Err(source) => {
                return Err(HostError::Read {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        stat_field(stat, 22)
            .and_then(parse_u64)
            .ok_or_else(|| HostError::Parse {
                path: path.to_path_buf(),
                reason: "field 22 (starttime) is missing or not a number".to_string(),
            })
    }

    /// The cgroup v2 path of `pid` and the container id found in its cgroups.
    fn cgroup(&self, pid: u32) -> Result<(String, Option<String>)> {
        let path = self.root.join(pid.to_string()).join("cgroup");
        let text = match std::fs::read(&path) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            // A kernel without cgroups has no such file; a vanished process has no directory.
            Err(source) if source.kind() == std::io::ErrorKind::NotFound && self.exists(pid) => {
                String::new()
            }
            Err(source) => return Err(self.read_error(pid, &path, source)),
        };
        Ok(parse_cgroup(&text))
    }

    /// Maps a failed read of one of `pid`'s files to [`HostError::Gone`] when the process is gone.
    fn read_error(&self, pid: u32, path: &Path, source: std::io::Error) -> HostError {
        if is_gone(&source) && (source.kind() != std::io::ErrorKind::NotFound || !self.exists(pid))
        {
            HostError::Gone { pid }
        } else {
            HostError::Read {
                path: path.to_path_buf(),
                source,
            }
        }
    }
}

/// Field `number` (1-based, as in `man 5 proc`; 3 or more) of a `/proc/PID/stat` line. The name in
/// field 2 may hold spaces and parentheses, so the fields are counted after its last `)`.
pub(crate) fn stat_field(stat: &[u8], number: usize) -> Option<&[u8]> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat.get(close + 1..)?
        .split(|b| b.is_ascii_whitespace())
        .filter(|field| !field.is_empty())
        .nth(number.checked_sub(3)?)
}

/// Splits the text of `/proc/PID/cgroup` into the cgroup v2 path (the `0::` line, or empty) and
/// the container id: from the v2 path, or else from the v1 hierarchies' paths (older hosts).
fn parse_cgroup(text: &str) -> (String, Option<String>) {
    let mut unified = None;
    let mut v1_container = None;
    for line in text.lines() {
        if let Some(path) = line.strip_prefix("0::") {
            unified = Some(path);
        } else if let Some((_, path)) = line.split_once(':').and_then(|(_, r)| r.split_once(':')) {
            if let Some(id) = container_id_from_cgroup(path) {
                v1_container = Some(id);
            }
        }
    }
    let unified = unified.unwrap_or("");
    let container = container_id_from_cgroup(unified).or(v1_container);
    (unified.to_string(), container.map(str::to_string))
}

/// The container id in a cgroup path: the last component that is, or ends in, 64 hex digits.
/// Recognizes `docker-<id>.scope`, `cri-containerd-<id>.scope`, `crio-<id>.scope`,
/// `libpod-<id>.scope` (systemd driver), `/docker/<id>` and `/kubepods/…/pod<uid>/<id>` (cgroupfs
/// driver). The `conmon` monitors of CRI-O and Podman (`crio-conmon-<id>.scope`) are not in the
/// container and give `None`.
pub fn container_id_from_cgroup(path: &str) -> Option<&str> {
    path.split('/').rev().find_map(|component| {
        let name = component.strip_suffix(".scope").unwrap_or(component);
        if name.contains("conmon") {
            return None;
        }
        let id = name.rsplit('-').next().unwrap_or(name);
        (id.len() == 64 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testfs::FakeTree;

    const ID: &str = "3f4c2a9e8b7d6c5f4e3d2c1b0a998877665544332211ffeeddccbbaa00112233";

    fn stat_line(comm: &str, start: u64) -> String {
        // Fields 3..=21, then starttime (22), then a few more.
        format!(
            "4242 ({comm}) S 1 4242 4242 0 -1 4194560 100 0 0 0 7 3 0 0 20 0 5 0 {start} 1000 10 18446744073709551615\n"
        )
    }

    fn fake_process(tree: &FakeTree, pid: u32, comm: &str, cgroup: &str, start: u64) {
        tree.write(&format!("{pid}/stat"), &stat_line(comm, start));
        tree.write(&format!("{pid}/comm"), &format!("{comm}\n"));
        tree.write(&format!("{pid}/cgroup"), cgroup);
    }

    #[test]
    fn reads_a_process() {
        let tree = FakeTree::new("procfs-read");
        fake_process(
            &tree,
            4242,
            "server",
            &format!("0::/system.slice/docker-{ID}.scope\n"),
            987654,
        );
        tree.write("self/stat", "not a pid");
        tree.write("meminfo", "");
        tree.mkdir("17");
        let procfs = ProcFs::new(tree.path());
        assert_eq!(procfs.pids().unwrap(), vec![17, 4242]);
        let info = procfs.process(4242).unwrap();
        assert_eq!(
            info,
            ProcessInfo {
                pid: 4242,
                comm: "server".into(),
                cgroup: format!("/system.slice/docker-{ID}.scope"),
                container_id: Some(ID.into()),
                start_time_ticks: 987654,
            }
        );
        assert!(procfs.exists(4242));
        assert!(!procfs.exists(4243));
    }

    #[test]
    fn odd_command_names_do_not_shift_the_stat_fields() {
        let tree = FakeTree::new("procfs-odd-comm");
        for (pid, comm) in [(1, "a) b (c"), (2, "))"), (3, "x y z"), (4, "(")] {
            fake_process(&tree, pid, comm, "0::/\n", 1000 + u64::from(pid));
            let info = ProcFs::new(tree.path()).process(pid).unwrap();
            assert_eq!(info.comm, comm);
            assert_eq!(
                info.start_time_ticks,
                1000 + u64::from(pid),
                "comm {comm:?}"
            );
        }
    }

    #[test]
    fn stat_fields_are_counted_after_the_last_parenthesis() {
        let line = stat_line("a) b (c", 55);
        assert_eq!(stat_field(line.as_bytes(), 3), Some(&b"S"[..]));
        assert_eq!(stat_field(line.as_bytes(), 14), Some(&b"7"[..]));
        assert_eq!(stat_field(line.as_bytes(), 22), Some(&b"55"[..]));
        assert_eq!(stat_field(b"12 (x) S", 22), None);
        assert_eq!(stat_field(b"no parenthesis", 3), None);
        assert_eq!(stat_field(line.as_bytes(), 2), None);
    }

    #[test]
    fn a_malformed_stat_is_a_parse_error() {
        let tree = FakeTree::new("procfs-bad-stat");
        tree.write("9/stat", "9 (short) S 1\n");
        match ProcFs::new(tree.path()).process(9) {
            Err(HostError::Parse { path, .. }) => assert!(path.ends_with("9/stat")),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_cgroup_v2_line_gives_an_empty_path() {
        let tree = FakeTree::new("procfs-no-v2");
        fake_process(
            &tree,
            5,
            "old",
            "12:memory:/user.slice\n11:cpu,cpuacct:/user.slice\n",
            1,
        );
        let info = ProcFs::new(tree.path()).process(5).unwrap();
        assert_eq!(info.cgroup, "");
        assert_eq!(info.container_id, None);
        // No cgroup file at all (a kernel without cgroups) is the same.
        tree.remove(&["5/cgroup"]);
        let info = ProcFs::new(tree.path()).process(5).unwrap();
        assert_eq!((info.cgroup.as_str(), info.container_id), ("", None));
    }

    #[test]
    fn a_v1_only_host_still_gives_the_container_id() {
        let (unified, id) = parse_cgroup(&format!(
            "12:memory:/docker/{ID}\n1:name=systemd:/docker/{ID}\n"
        ));
        assert_eq!(unified, "");
        assert_eq!(id.as_deref(), Some(ID));
    }

    #[test]
    fn container_id_shapes() {
        let uid = "pod1b2c3d4e_5f60_7182_93a4_b5c6d7e8f901";
        let shapes = [
            format!("/system.slice/docker-{ID}.scope"),
            format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-{uid}.slice/cri-containerd-{ID}.scope"),
            format!("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-{uid}.slice/crio-{ID}.scope"),
            format!("/kubepods.slice/kubepods-{uid}.slice/crio-{ID}.scope/container"),
            format!("/machine.slice/libpod-{ID}.scope"),
            format!("/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container"),
            format!("/docker/{ID}"),
            format!("/kubepods/burstable/{uid}/{ID}"),
            format!("/kubepods/{uid}/{ID}"),
        ];
        for shape in &shapes {
            assert_eq!(container_id_from_cgroup(shape), Some(ID), "{shape}");
        }
    }

    #[test]
    fn the_last_container_id_wins_when_nested() {
        let inner = "aa".repeat(32);
        let path = format!("/system.slice/docker-{ID}.scope/kubepods/besteffort/podx/{inner}");
        assert_eq!(container_id_from_cgroup(&path), Some(inner.as_str()));
    }

    #[test]
    fn paths_without_a_container() {
        let short = &ID[..63];
        for path in [
            "/".to_string(),
            String::new(),
            "/user.slice/user-1000.slice/session-3.scope".to_string(),
            "/system.slice/sshd.service".to_string(),
            format!("/system.slice/docker-{short}.scope"),
            format!("/machine.slice/libpod-conmon-{ID}.scope"),
            format!("/system.slice/crio-conmon-{ID}.scope"),
            format!("/docker/{}", "g".repeat(64)),
        ] {
            assert_eq!(container_id_from_cgroup(&path), None, "{path}");
        }
    }

    #[test]
    fn a_vanished_process_is_gone() {
        let tree = FakeTree::new("procfs-gone");
        let procfs = ProcFs::new(tree.path());
        assert!(matches!(
            procfs.process(31337),
            Err(HostError::Gone { pid: 31337 })
        ));
        assert!(matches!(procfs.comm(77), Err(HostError::Gone { pid: 77 })));
        assert!(matches!(
            procfs.start_time_ticks(77),
            Err(HostError::Gone { pid: 77 })
        ));
        // A missing comm in a process that still exists is a read error, not Gone.
        tree.write("78/stat", &stat_line("x", 1));
        match procfs.process(78) {
            Err(HostError::Read { path, .. }) => assert!(path.ends_with("78/comm")),
            other => panic!("expected a read error, got {other:?}"),
        }
    }

    #[test]
    fn a_missing_root_is_a_read_dir_error() {
        let procfs = ProcFs::new("/nonexistent/goroscope-host/proc");
        assert!(matches!(procfs.pids(), Err(HostError::ReadDir { .. })));
    }
}
