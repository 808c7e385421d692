//! Finding the Go processes on the host: for each pid, the executable behind `/proc/PID/exe` is
//! identified by (device, inode) and read once to learn whether it is a Go program and which Go
//! built it. Reading through `/proc/PID/exe` works even when the file was deleted or lives in
//! another mount namespace (a container).

use std::collections::{HashMap, VecDeque};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use object::read::elf::{FileHeader, SectionHeader};
use object::{Endianness, FileKind, ReadCache, ReadRef};

use crate::error::HostError;
use crate::fsread::{is_gone, pid_path};
use crate::procfs::ProcFs;

/// A running Go program.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GoProcessFound {
    /// Process id.
    pub pid: u32,
    /// Command name (`/proc/PID/comm`).
    pub comm: String,
    /// The Go toolchain that built it, as `go version` prints it, e.g. `go1.26.8`.
    pub go_version: String,
    /// Path of the executable as the process sees it (the target of `/proc/PID/exe`; it ends in
    /// ` (deleted)` when the file was removed, and is relative to the process's mount namespace).
    pub exe: PathBuf,
}

/// What one executable file is, remembered by (device, inode).
#[derive(Debug)]
struct Binary {
    /// Size and modification time, to notice a different file that got the inode of a deleted one.
    size: u64,
    mtime: (i64, i64),
    /// The Go version, or `None` for a program Go did not build (or Go older than 1.18).
    go_version: Option<String>,
}

/// Finds Go processes, parsing each distinct executable once.
#[derive(Debug)]
pub struct GoDiscovery {
    binaries: HashMap<(u64, u64), Binary>,
    /// Keys of `binaries` in insertion order, oldest first, for eviction.
    order: VecDeque<(u64, u64)>,
    capacity: usize,
    scratch: PathBuf,
    scan_errors: u64,
    without_executable: u64,
    binaries_parsed: u64,
    /// Processes whose executable the last scan was not allowed to look at.
    denied_last_scan: u64,
}

/// Why a pid was passed over.
enum Skip {
    /// The process exited.
    Gone,
    /// The process has no executable: a kernel thread, or a zombie.
    NoExecutable,
    /// Permission denied: without CAP_SYS_PTRACE, other users' executables are hidden.
    Denied,
    /// Another error.
    Error,
}

impl Default for GoDiscovery {
    fn default() -> GoDiscovery {
        GoDiscovery::new()
    }
}

impl GoDiscovery {
    /// How many executables [`GoDiscovery::new`] remembers.
    pub const DEFAULT_CAPACITY: usize = 4096;

    /// A discovery remembering up to [`GoDiscovery::DEFAULT_CAPACITY`] executables.
    pub fn new() -> GoDiscovery {
        GoDiscovery::with_capacity(GoDiscovery::DEFAULT_CAPACITY)
    }

    /// A discovery remembering up to `capacity` (at least 1) executables; beyond that the oldest
    /// entries are forgotten and parsed again if seen again.
    pub fn with_capacity(capacity: usize) -> GoDiscovery {
        GoDiscovery {
            binaries: HashMap::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
            scratch: PathBuf::new(),
            scan_errors: 0,
            without_executable: 0,
            binaries_parsed: 0,
            denied_last_scan: 0,
        }
    }

    /// The Go processes among `pids`, in the order given. Processes that exit meanwhile are left
    /// out silently; kernel threads and zombies are counted in
    /// [`GoDiscovery::without_executable`], permission and other errors in
    /// [`GoDiscovery::scan_errors`].
    pub fn scan(
        &mut self,
        procfs: &ProcFs,
        pids: impl IntoIterator<Item = u32>,
    ) -> Vec<GoProcessFound> {
        let mut found = Vec::new();
        self.denied_last_scan = 0;
        for pid in pids {
            match self.check(procfs, pid) {
                Ok(Some(process)) => found.push(process),
                Ok(None) | Err(Skip::Gone) => {}
                Err(Skip::NoExecutable) => self.without_executable += 1,
                Err(Skip::Denied) => {
                    self.scan_errors += 1;
                    self.denied_last_scan += 1;
                }
                Err(Skip::Error) => self.scan_errors += 1,
            }
        }
        found
    }

    /// Processes whose executable the last scan was not allowed to open (they may run Go): an
    /// agent without CAP_SYS_PTRACE cannot see other users' executables.
    pub fn denied_last_scan(&self) -> u64 {
        self.denied_last_scan
    }

    /// Errors (permission denied, unreadable files) met by all scans so far.
    pub fn scan_errors(&self) -> u64 {
        self.scan_errors
    }

    /// Processes without an executable (kernel threads, zombies) met by all scans so far.
    pub fn without_executable(&self) -> u64 {
        self.without_executable
    }

    /// How many executables have been opened and parsed so far (cache misses).
    pub fn binaries_parsed(&self) -> u64 {
        self.binaries_parsed
    }

    /// How many executables are remembered.
    pub fn cached_binaries(&self) -> usize {
        self.binaries.len()
    }

    /// Whether `pid` runs a Go program, and if so what it is.
    fn check(&mut self, procfs: &ProcFs, pid: u32) -> Result<Option<GoProcessFound>, Skip> {
        let exe = pid_path(procfs.root(), pid, "exe", &mut self.scratch);
        let metadata = std::fs::metadata(exe).map_err(|e| classify(procfs, pid, &e))?;
        let key = (metadata.dev(), metadata.ino());
        let known = self
            .binaries
            .get(&key)
            .filter(|binary| same_file(binary, &metadata))
            .map(|binary| binary.go_version.clone());
        let go_version = match known {
            Some(go_version) => go_version,
            None => {
                // Identify the file actually opened: the pid may have exec'd since the stat.
                let file = File::open(exe).map_err(|e| classify(procfs, pid, &e))?;
                let metadata = file.metadata().map_err(|_| Skip::Error)?;
                self.binaries_parsed += 1;
                let go_version = go_version_of(&file);
                self.remember(
                    (metadata.dev(), metadata.ino()),
                    &metadata,
                    go_version.clone(),
                );
                go_version
            }
        };
        let Some(go_version) = go_version else {
            return Ok(None);
        };
        let exe_path = std::fs::read_link(pid_path(procfs.root(), pid, "exe", &mut self.scratch))
            .map_err(|e| classify(procfs, pid, &e))?;
        let comm = procfs.comm(pid).map_err(|error| match error {
            HostError::Gone { .. } => Skip::Gone,
            _ => Skip::Error,
        })?;
        Ok(Some(GoProcessFound {
            pid,
            comm,
            go_version,
            exe: exe_path,
        }))
    }

    /// Remembers what the file `key` is, forgetting the oldest file when full.
    fn remember(&mut self, key: (u64, u64), metadata: &std::fs::Metadata, go: Option<String>) {
        let binary = Binary {
            size: metadata.size(),
            mtime: (metadata.mtime(), metadata.mtime_nsec()),
            go_version: go,
        };
        if self.binaries.insert(key, binary).is_some() {
            return; // Replaced a stale entry; it keeps its place in the order.
        }
        self.order.push_back(key);
        while self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.binaries.remove(&oldest);
            }
        }
    }
}

/// Whether the remembered `binary` is the file described by `metadata`.
fn same_file(binary: &Binary, metadata: &std::fs::Metadata) -> bool {
    binary.size == metadata.size() && binary.mtime == (metadata.mtime(), metadata.mtime_nsec())
}

/// Sorts a failure to look at `pid`'s executable into gone, no executable, or error.
fn classify(procfs: &ProcFs, pid: u32, error: &std::io::Error) -> Skip {
    if error.kind() == std::io::ErrorKind::PermissionDenied {
        Skip::Denied
    } else if !is_gone(error) {
        Skip::Error
    } else if procfs.exists(pid) {
        // `/proc/PID/exe` of a kernel thread or zombie is a link to nothing.
        Skip::NoExecutable
    } else {
        Skip::Gone
    }
}

/// The Go version recorded in the executable `file`, or `None` when it is not a Go program (or
/// was built by Go older than 1.18, whose build information goroscope does not read). Reads only
/// the ELF and section headers and `.go.buildinfo`; a file without section headers is read
/// whole and searched by `goroscope_gobin`.
fn go_version_of(file: &File) -> Option<String> {
    let cache = ReadCache::new(file);
    let section = match FileKind::parse(&cache) {
        Ok(FileKind::Elf64) => {
            buildinfo_section::<object::elf::FileHeader64<Endianness>, _>(&cache)
        }
        Ok(FileKind::Elf32) => {
            buildinfo_section::<object::elf::FileHeader32<Endianness>, _>(&cache)
        }
        _ => return None,
    };
    match section {
        Section::Found(bytes) => goroscope_gobin::buildinfo::parse(bytes)
            .ok()
            .map(|info| info.go_version),
        Section::Absent => None,
        Section::NoSectionHeaders => {
            drop(cache);
            whole_file_go_version(file)
        }
    }
}

/// The outcome of looking for `.go.buildinfo` in the section headers.
enum Section<'data> {
    Found(&'data [u8]),
    Absent,
    NoSectionHeaders,
}

fn buildinfo_section<'data, Elf, R>(data: R) -> Section<'data>
where
    Elf: FileHeader<Endian = Endianness>,
    R: ReadRef<'data>,
{
    let Ok(header) = Elf::parse(data) else {
        return Section::Absent;
    };
    let Ok(endian) = header.endian() else {
        return Section::Absent;
    };
    let Ok(sections) = header.sections(endian, data) else {
        return Section::Absent;
    };
    if sections.is_empty() {
        return Section::NoSectionHeaders;
    }
    match sections.section_by_name(endian, b".go.buildinfo") {
        Some((_, section)) => match section.data(endian, data) {
            Ok(bytes) => Section::Found(bytes),
            Err(_) => Section::Absent,
        },
        None => Section::Absent,
    }
}

/// The Go version of an ELF file without section headers, searching its loadable segments.
fn whole_file_go_version(mut file: &File) -> Option<String> {
    let mut bytes = Vec::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_end(&mut bytes).ok()?;
    let elf = goroscope_gobin::ElfFile::from_bytes(bytes, Path::new("/proc/PID/exe")).ok()?;
    goroscope_gobin::buildinfo::read(&elf)
        .ok()
        .map(|info| info.go_version)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testfs::FakeTree;

    #[test]
    fn each_distinct_executable_is_parsed_once() {
        let tree = FakeTree::new("discovery-once");
        tree.write("bin/script", "#!/bin/sh\necho not elf\n");
        tree.write("bin/other", "\x7fELF but truncated");
        for pid in [1, 2, 3] {
            tree.symlink(&format!("{pid}/exe"), &tree.path().join("bin/script"));
        }
        tree.symlink("4/exe", &tree.path().join("bin/other"));
        let procfs = ProcFs::new(tree.path());
        let mut discovery = GoDiscovery::new();
        assert!(discovery.scan(&procfs, [1, 2, 3, 4]).is_empty());
        assert_eq!(discovery.binaries_parsed(), 2);
        assert!(discovery.scan(&procfs, [1, 2, 3, 4]).is_empty());
        assert_eq!(discovery.binaries_parsed(), 2);
        assert_eq!(discovery.cached_binaries(), 2);
        assert_eq!(discovery.scan_errors(), 0);
    }

    #[test]
    fn a_rewritten_file_is_parsed_again() {
        let tree = FakeTree::new("discovery-rewritten");
        tree.write("bin/prog", "version one");
        tree.symlink("1/exe", &tree.path().join("bin/prog"));
        let procfs = ProcFs::new(tree.path());
        let mut discovery = GoDiscovery::new();
        discovery.scan(&procfs, [1]);
        // Same inode, new size.
        std::fs::write(tree.path().join("bin/prog"), "version two, longer").unwrap();
        discovery.scan(&procfs, [1]);
        assert_eq!(discovery.binaries_parsed(), 2);
        assert_eq!(discovery.cached_binaries(), 1);
    }

    #[test]
    fn kernel_threads_are_counted_and_vanished_pids_ignored() {
        let tree = FakeTree::new("discovery-kthread");
        // A kernel thread: the directory exists, `exe` points nowhere.
        tree.mkdir("2");
        tree.symlink("3/exe", Path::new("/nonexistent/goroscope/kthread"));
        let procfs = ProcFs::new(tree.path());
        let mut discovery = GoDiscovery::new();
        assert!(discovery.scan(&procfs, [2, 3, 999_999]).is_empty());
        assert_eq!(discovery.without_executable(), 2);
        assert_eq!(discovery.scan_errors(), 0);
        assert_eq!(discovery.binaries_parsed(), 0);
    }

    #[test]
    fn the_cache_is_capped_and_forgets_the_oldest() {
        let tree = FakeTree::new("discovery-cap");
        for pid in 1..=5u32 {
            tree.write(&format!("bin/p{pid}"), &format!("program {pid}"));
            tree.symlink(
                &format!("{pid}/exe"),
                &tree.path().join(format!("bin/p{pid}")),
            );
        }
        let procfs = ProcFs::new(tree.path());
        let mut discovery = GoDiscovery::with_capacity(3);
        discovery.scan(&procfs, 1..=5);
        assert_eq!(discovery.cached_binaries(), 3);
        assert_eq!(discovery.binaries_parsed(), 5);
        // 3, 4 and 5 are remembered; 1 was forgotten.
        discovery.scan(&procfs, [3, 4, 5]);
        assert_eq!(discovery.binaries_parsed(), 5);
        discovery.scan(&procfs, [1]);
        assert_eq!(discovery.binaries_parsed(), 6);
        assert_eq!(discovery.cached_binaries(), 3);
    }

    #[test]
    fn a_non_go_elf_is_not_go() {
        // This test binary is ELF, built by rustc: no .go.buildinfo.
        let exe = std::env::current_exe().unwrap();
        let file = File::open(&exe).unwrap();
        assert_eq!(go_version_of(&file), None);
    }
}
