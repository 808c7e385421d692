//! cgroup v2 ids to paths. The kernel stamps events with `bpf_get_current_cgroup_id()`, which is
//! the inode number of the cgroup's directory in the cgroup v2 hierarchy; this finds the
//! directory with that inode under the mount point (normally `/sys/fs/cgroup`) and returns its
//! path as `/proc/PID/cgroup` writes it (`/` for the root, `/system.slice/x.service` below it).
//!
//! Ids are cached; an unknown id walks the tree again, once: cgroup ids are never reused, so an
//! id a walk did not find belongs to a cgroup that is already gone, and is remembered as such.
//! A cgroup made a moment ago is therefore always found on its first event. Both caches are
//! bounded: a walk rebuilds the cache from the tree and keeps entries of removed cgroups (their
//! processes' last events may still be on the way) only while the total stays under the cap.

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::DirEntryExt;
use std::path::{Path, PathBuf};

/// The most ids kept (a few tens of bytes each).
pub const MAX_CGROUPS: usize = 65_536;

/// Deepest directory nesting walked (cgroup v2 itself limits depth; this bounds a bad mount).
const MAX_DEPTH: usize = 64;

/// Where the cgroup v2 hierarchy is mounted, from `/proc/self/mountinfo` under `procfs`:
/// `/sys/fs/cgroup` on a pure v2 host, `/sys/fs/cgroup/unified` on a hybrid one. `None` when no
/// cgroup2 file system is mounted.
pub fn cgroup2_mount(procfs: &crate::ProcFs) -> Option<PathBuf> {
    let text = std::fs::read_to_string(procfs.root().join("self/mountinfo")).ok()?;
    parse_mountinfo(&text)
}

/// The mount point of the first `cgroup2` line of a mountinfo text, preferring
/// `/sys/fs/cgroup` itself.
fn parse_mountinfo(text: &str) -> Option<PathBuf> {
    let mut found: Option<PathBuf> = None;
    for line in text.lines() {
        let Some((mount, rest)) = line.split_once(" - ") else {
            continue;
        };
        if rest.split(' ').next() != Some("cgroup2") {
            continue;
        }
        let Some(point) = mount.split(' ').nth(4) else {
            continue;
        };
        let point = PathBuf::from(unescape(point));
        if point == Path::new("/sys/fs/cgroup") {
            return Some(point);
        }
        found.get_or_insert(point);
    }
    found
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)))
            .map(|d| d.iter().fold(0u32, |n, c| n * 8 + u32::from(c - b'0')));
        match octal.and_then(|n| u8::try_from(n).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// cgroup v2 ids resolved to paths, with a bounded cache.
#[derive(Debug)]
pub struct CgroupPaths {
    root: PathBuf,
    paths: HashMap<u64, String>,
    /// Ids a walk made after they were asked for did not find: cgroups already removed.
    gone: HashSet<u64>,
    scans: u64,
    cap: usize,
}

impl CgroupPaths {
    /// Resolves ids of the cgroup v2 hierarchy mounted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> CgroupPaths {
        CgroupPaths {
            root: root.into(),
            paths: HashMap::new(),
            gone: HashSet::new(),
            scans: 0,
            cap: MAX_CGROUPS,
        }
    }

    /// Keeps at most `cap` ids (tests use a small one).
    pub fn with_cap(mut self, cap: usize) -> CgroupPaths {
        self.cap = cap.max(1);
        self
    }

    /// The path of cgroup `id`, or `None` when no directory under the root has that inode (the
    /// cgroup was removed before it was ever seen, or the id is 0: no cgroup v2).
    pub fn path_of(&mut self, id: u64) -> Option<&str> {
        if id == 0 {
            return None;
        }
        if !self.paths.contains_key(&id) {
            if self.gone.contains(&id) {
                return None;
            }
            self.rescan();
            if !self.paths.contains_key(&id) {
                if self.gone.len() >= self.cap {
                    self.gone.clear();
                }
                self.gone.insert(id);
            }
        }
        self.paths.get(&id).map(String::as_str)
    }

    /// Where the hierarchy is mounted.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How many times the tree was walked.
    pub fn scans(&self) -> u64 {
        self.scans
    }

    /// Ids cached.
    pub fn len(&self) -> usize {
        self.paths.len()
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.paths.is_empty()
    }

    /// Walks the tree and rebuilds the cache: every directory now, then removed ones still
    /// cached while there is room.
    fn rescan(&mut self) {
        self.scans += 1;
        let mut found: HashMap<u64, String> = HashMap::new();
        if let Ok(meta) = std::fs::metadata(&self.root) {
            found.insert(std::os::unix::fs::MetadataExt::ino(&meta), "/".to_owned());
        }
        walk(&self.root, "", 0, self.cap, &mut found);
        for (id, path) in self.paths.drain() {
            if found.len() >= self.cap {
                break;
            }
            found.entry(id).or_insert(path);
        }
        self.paths = found;
    }
}

/// Adds every directory below `dir` (whose path relative to the root is `relative`) to `found`,
/// depth first, until `cap` entries.
fn walk(dir: &Path, relative: &str, depth: usize, cap: usize, found: &mut HashMap<u64, String>) {
    if depth >= MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else {
        return; // removed meanwhile, or unreadable: its ids stay unknown
    };
    for entry in entries.flatten() {
        if found.len() >= cap {
            return;
        }
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if !kind.is_dir() {
            continue;
        }
        let name = entry.file_name();
        let path = format!("{relative}/{}", name.to_string_lossy());
        found.insert(entry.ino(), path.clone());
        walk(&entry.path(), &path, depth + 1, cap, found);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testfs::FakeTree;
    use std::os::unix::fs::MetadataExt;

    fn ino(tree: &FakeTree, relative: &str) -> u64 {
        std::fs::metadata(tree.path().join(relative)).unwrap().ino()
    }

    #[test]
    fn ids_resolve_to_paths_as_proc_writes_them() {
        let tree = FakeTree::new("cgroups-resolve");
        tree.mkdir("system.slice/web.service");
        tree.write("system.slice/cgroup.procs", "");
        let mut cgroups = CgroupPaths::new(tree.path());
        let root = std::fs::metadata(tree.path()).unwrap().ino();
        assert_eq!(cgroups.path_of(root), Some("/"));
        let web = ino(&tree, "system.slice/web.service");
        assert_eq!(cgroups.path_of(web), Some("/system.slice/web.service"));
        assert_eq!(
            cgroups.path_of(ino(&tree, "system.slice")),
            Some("/system.slice")
        );
        // A file's inode is not a cgroup.
        assert_eq!(
            cgroups.path_of(ino(&tree, "system.slice/cgroup.procs")),
            None
        );
        assert_eq!(cgroups.path_of(0), None);
    }

    #[test]
    fn a_new_cgroup_is_found_by_a_rescan_and_a_removed_one_is_remembered() {
        let tree = FakeTree::new("cgroups-rescan");
        tree.mkdir("a");
        let mut cgroups = CgroupPaths::new(tree.path());
        assert_eq!(cgroups.path_of(ino(&tree, "a")), Some("/a"));
        let scans = cgroups.scans();
        // Known ids cost no walk.
        assert_eq!(cgroups.path_of(ino(&tree, "a")), Some("/a"));
        assert_eq!(cgroups.scans(), scans);
        tree.mkdir("b/c");
        let c = ino(&tree, "b/c");
        let a = ino(&tree, "a");
        tree.remove(&["a"]);
        assert_eq!(cgroups.path_of(c), Some("/b/c"));
        assert_eq!(cgroups.scans(), scans + 1);
        // "a" is gone from the tree, but its late events still get its path.
        assert_eq!(cgroups.path_of(a), Some("/a"));
    }

    #[test]
    fn an_unknown_id_costs_one_walk_and_a_new_cgroup_is_found_at_once() {
        let tree = FakeTree::new("cgroups-storm");
        let mut cgroups = CgroupPaths::new(tree.path());
        for _ in 0..1000 {
            assert_eq!(cgroups.path_of(1_000_000_000), None);
        }
        assert_eq!(cgroups.scans(), 1);
        // A cgroup made right after a walk is found on its first lookup.
        tree.mkdir("late");
        assert_eq!(cgroups.path_of(ino(&tree, "late")), Some("/late"));
        assert_eq!(cgroups.scans(), 2);
    }

    #[test]
    fn the_cache_is_bounded() {
        let tree = FakeTree::new("cgroups-cap");
        for i in 0..20 {
            tree.mkdir(&format!("g{i}"));
        }
        let mut cgroups = CgroupPaths::new(tree.path()).with_cap(8);
        // (The root: a g* left out by the cap would be remembered as gone, and this file system,
        // unlike cgroupfs, reuses the inode numbers of removed directories.)
        let root = std::fs::metadata(tree.path()).unwrap().ino();
        assert_eq!(cgroups.path_of(root), Some("/"));
        assert!(cgroups.len() <= 8, "{} ids cached", cgroups.len());
        // Remove everything and look up new ones: old entries never push it over the cap.
        for i in 0..20 {
            tree.remove(&[&format!("g{i}")]);
        }
        for i in 0..5 {
            tree.mkdir(&format!("n{i}"));
        }
        // An unknown id makes it walk again; the tree's own entries win over remembered ones
        // (this file system may have given n0 the inode of a removed g*).
        assert_eq!(cgroups.path_of(u64::MAX - 1), None);
        assert!(cgroups.len() <= 8, "{} ids cached", cgroups.len());
        let n = ino(&tree, "n0");
        assert_eq!(cgroups.path_of(n), Some("/n0"));
    }

    #[test]
    fn mountinfo_gives_the_cgroup2_mount_point() {
        let hybrid = "30 1 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
                      31 30 0:27 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n\
                      41 30 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            parse_mountinfo(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let pure = "7 1 0:5 / /mnt/odd\\040place rw - cgroup2 cgroup2 rw\n\
                    8 1 0:6 / /sys/fs/cgroup rw shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(parse_mountinfo(pure), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(
            parse_mountinfo("7 1 0:5 / /mnt/odd\\040place rw - cgroup2 cgroup2 rw\n"),
            Some(PathBuf::from("/mnt/odd place"))
        );
        assert_eq!(parse_mountinfo("9 1 0:2 / /proc rw - proc proc rw\n"), None);
    }

    #[test]
    fn the_live_hierarchy_resolves_a_new_cgroup_and_the_root() {
        // The real cgroup2 mount (found in /proc/self/mountinfo): the id of a cgroup made here
        // (its directory's inode, what bpf_get_current_cgroup_id returns) resolves to its path,
        // and the root (id 1) to "/".
        let mount = cgroup2_mount(&crate::ProcFs::host()).expect("a cgroup2 mount");
        let name = format!("goroscope-host-test-{}", std::process::id());
        let dir = mount.join(&name);
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let id = std::fs::metadata(&dir).map(|m| m.ino());
        let mut cgroups = CgroupPaths::new(&mount);
        let found = id
            .as_ref()
            .ok()
            .and_then(|id| cgroups.path_of(*id).map(str::to_owned));
        let root = cgroups.path_of(1).map(str::to_owned);
        std::fs::remove_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        assert_eq!(found, Some(format!("/{name}")), "{id:?}");
        assert_eq!(root.as_deref(), Some("/"));
    }
}
