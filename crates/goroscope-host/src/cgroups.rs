//! cgroup v2 ids to paths. The kernel stamps events with `bpf_get_current_cgroup_id()`, which is
//! the inode number of the cgroup's directory in the cgroup v2 hierarchy; this finds the
//! directory with that inode under the mount point (normally `/sys/fs/cgroup`) and returns its
//! path as `/proc/PID/cgroup` writes it (`/` for the root, `/system.slice/x.service` below it).
//!
//! Ids are cached; an unknown id rescans the tree, at most once per `min_rescan`, so a storm of
//! ids of cgroups that are already gone costs one walk, not one per event. The cache is bounded:
//! a rescan rebuilds it from the tree and keeps entries of removed cgroups (their processes'
//! last events may still be on the way) only while the total stays under the cap.

use std::collections::HashMap;
use std::os::unix::fs::DirEntryExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The most ids kept (a few tens of bytes each).
pub const MAX_CGROUPS: usize = 65_536;

/// Deepest directory nesting walked (cgroup v2 itself limits depth; this bounds a bad mount).
const MAX_DEPTH: usize = 64;

/// cgroup v2 ids resolved to paths, with a bounded cache.
#[derive(Debug)]
pub struct CgroupPaths {
    root: PathBuf,
    paths: HashMap<u64, String>,
    last_scan: Option<Instant>,
    min_rescan: Duration,
    scans: u64,
    cap: usize,
}

impl CgroupPaths {
    /// Resolves ids of the cgroup v2 hierarchy mounted at `root`, walking it again for an unknown
    /// id at most once per `min_rescan`.
    pub fn new(root: impl Into<PathBuf>, min_rescan: Duration) -> CgroupPaths {
        CgroupPaths {
            root: root.into(),
            paths: HashMap::new(),
            last_scan: None,
            min_rescan,
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
            let due = self
                .last_scan
                .is_none_or(|at| at.elapsed() >= self.min_rescan);
            if !due {
                return None;
            }
            self.rescan();
        }
        self.paths.get(&id).map(String::as_str)
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
        self.last_scan = Some(Instant::now());
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
        let mut cgroups = CgroupPaths::new(tree.path(), Duration::ZERO);
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
        let mut cgroups = CgroupPaths::new(tree.path(), Duration::ZERO);
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
    fn unknown_ids_rescan_at_most_once_per_interval() {
        let tree = FakeTree::new("cgroups-storm");
        let mut cgroups = CgroupPaths::new(tree.path(), Duration::from_secs(3600));
        for id in 1_000_000_000..1_000_001_000u64 {
            assert_eq!(cgroups.path_of(id), None);
        }
        assert_eq!(cgroups.scans(), 1);
        // Found later only once the interval has passed.
        tree.mkdir("late");
        assert_eq!(cgroups.path_of(ino(&tree, "late")), None);
        assert_eq!(cgroups.scans(), 1);
    }

    #[test]
    fn the_cache_is_bounded() {
        let tree = FakeTree::new("cgroups-cap");
        for i in 0..20 {
            tree.mkdir(&format!("g{i}"));
        }
        let mut cgroups = CgroupPaths::new(tree.path(), Duration::ZERO).with_cap(8);
        let _ = cgroups.path_of(ino(&tree, "g0"));
        assert!(cgroups.len() <= 8, "{} ids cached", cgroups.len());
        // Remove everything and look up new ones: old entries never push it over the cap.
        for i in 0..20 {
            tree.remove(&[&format!("g{i}")]);
        }
        for i in 0..5 {
            tree.mkdir(&format!("n{i}"));
        }
        let n = ino(&tree, "n0");
        assert_eq!(cgroups.path_of(n), Some("/n0"));
        assert!(cgroups.len() <= 8, "{} ids cached", cgroups.len());
    }

    #[test]
    fn the_live_hierarchy_resolves_this_process_cgroup() {
        // The real /sys/fs/cgroup: this test process's own cgroup id (the inode of its
        // directory) must resolve to the path /proc/self/cgroup gives.
        let text = std::fs::read_to_string("/proc/self/cgroup").expect("/proc/self/cgroup");
        let own = text
            .lines()
            .find_map(|l| l.strip_prefix("0::"))
            .expect("a cgroup v2 line in /proc/self/cgroup");
        let dir = Path::new("/sys/fs/cgroup").join(own.trim_start_matches('/'));
        let id = std::fs::metadata(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .ino();
        let mut cgroups = CgroupPaths::new("/sys/fs/cgroup", Duration::ZERO);
        assert_eq!(cgroups.path_of(id), Some(own));
    }
}
