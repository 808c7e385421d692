//! A cache of what `/proc` says about each process (name, cgroup, container), keyed by pid and
//! checked against the process's start time so a reused pid is read again.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::path::PathBuf;

use crate::error::HostError;
use crate::procfs::{ProcFs, ProcessInfo};

/// Process information by pid, valid for as long as the process with that start time lives.
#[derive(Debug, Default)]
pub struct ProcessCache {
    entries: HashMap<u32, ProcessInfo>,
    /// Reused for building `/proc/PID/stat` paths, so a cache hit does not allocate.
    scratch: PathBuf,
    read_errors: u64,
}

impl ProcessCache {
    /// An empty cache.
    pub fn new() -> ProcessCache {
        ProcessCache::default()
    }

    /// The information of process `pid`, from the cache when the process there has the same start
    /// time as the live one, else read from `procfs` (and cached). Costs one read of
    /// `/proc/PID/stat` and no allocation on a hit. `None` when the process is gone or unreadable
    /// (the latter counted in [`ProcessCache::read_errors`]).
    pub fn get_or_read(&mut self, procfs: &ProcFs, pid: u32) -> Option<&ProcessInfo> {
        let start = match procfs.start_time_ticks_with(pid, &mut self.scratch) {
            Ok(start) => start,
            Err(error) => {
                self.note_error(&error);
                self.entries.remove(&pid);
                return None;
            }
        };
        let slot = match self.entries.entry(pid) {
            Entry::Occupied(entry) if entry.get().start_time_ticks == start => {
                return Some(entry.into_mut())
            }
            slot => slot,
        };
        match procfs.process(pid) {
            Ok(info) => Some(match slot {
                Entry::Occupied(mut entry) => {
                    entry.insert(info);
                    entry.into_mut()
                }
                Entry::Vacant(entry) => entry.insert(info),
            }),
            Err(error) => {
                self.read_errors += u64::from(!matches!(error, HostError::Gone { .. }));
                if let Entry::Occupied(entry) = slot {
                    entry.remove();
                }
                None
            }
        }
    }

    /// The cached information of `pid` without looking at `/proc` (it may describe a process that
    /// has since exited).
    pub fn get_cached(&self, pid: u32) -> Option<&ProcessInfo> {
        self.entries.get(&pid)
    }

    /// Drops the processes that exited (or whose pid now belongs to another process) and returns
    /// their pids, in no particular order. A process whose stat cannot be read for another reason
    /// is kept.
    pub fn retain_alive(&mut self, procfs: &ProcFs) -> Vec<u32> {
        let mut gone = Vec::new();
        let scratch = &mut self.scratch;
        self.entries.retain(|&pid, info| {
            let alive = match procfs.start_time_ticks_with(pid, scratch) {
                Ok(start) => start == info.start_time_ticks,
                Err(HostError::Gone { .. }) => false,
                Err(_) => true,
            };
            if !alive {
                gone.push(pid);
            }
            alive
        });
        gone
    }

    /// Number of processes cached.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the cache is empty.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// How many reads failed for a reason other than the process being gone (e.g. permissions or
    /// a malformed file), since the cache was made.
    pub fn read_errors(&self) -> u64 {
        self.read_errors
    }

    fn note_error(&mut self, error: &HostError) {
        self.read_errors += u64::from(!matches!(error, HostError::Gone { .. }));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testfs::FakeTree;

    fn fake_process(tree: &FakeTree, pid: u32, comm: &str, start: u64) {
        tree.write(
            &format!("{pid}/stat"),
            &format!("{pid} ({comm}) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 {start} 0 0\n"),
        );
        tree.write(&format!("{pid}/comm"), &format!("{comm}\n"));
        tree.write(&format!("{pid}/cgroup"), "0::/system.slice/x.service\n");
    }

    #[test]
    fn caches_until_the_pid_is_reused() {
        let tree = FakeTree::new("cache-reuse");
        let procfs = ProcFs::new(tree.path());
        fake_process(&tree, 10, "first", 100);
        let mut cache = ProcessCache::new();
        assert_eq!(cache.get_or_read(&procfs, 10).unwrap().comm, "first");
        // Same start time: the cached entry is used even though comm changed on disk.
        tree.write("10/comm", "renamed\n");
        assert_eq!(cache.get_or_read(&procfs, 10).unwrap().comm, "first");
        // A new process with the same pid: read again.
        fake_process(&tree, 10, "second", 200);
        let info = cache.get_or_read(&procfs, 10).unwrap();
        assert_eq!((info.comm.as_str(), info.start_time_ticks), ("second", 200));
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.get_cached(10).unwrap().comm, "second");
    }

    #[test]
    fn a_cache_hit_does_not_allocate() {
        let tree = FakeTree::new("cache-no-alloc");
        let procfs = ProcFs::new(tree.path());
        fake_process(&tree, 321, "hit", 7);
        let mut cache = ProcessCache::new();
        assert!(cache.get_or_read(&procfs, 321).is_some());
        let before = crate::testfs::alloc_count::allocations();
        for _ in 0..100 {
            assert_eq!(cache.get_or_read(&procfs, 321).map(|i| i.pid), Some(321));
        }
        assert_eq!(crate::testfs::alloc_count::allocations(), before);
        // The counter does see allocations (the check above is not vacuous).
        std::hint::black_box(vec![0u8; 16]);
        assert!(crate::testfs::alloc_count::allocations() > before);
    }

    #[test]
    fn retain_alive_reports_exited_and_reused_pids() {
        let tree = FakeTree::new("cache-retain");
        let procfs = ProcFs::new(tree.path());
        let mut cache = ProcessCache::new();
        for pid in [1, 2, 3] {
            fake_process(&tree, pid, "p", 50);
            assert!(cache.get_or_read(&procfs, pid).is_some());
        }
        tree.remove(&["2"]);
        fake_process(&tree, 3, "p", 51);
        let mut gone = cache.retain_alive(&procfs);
        gone.sort_unstable();
        assert_eq!(gone, vec![2, 3]);
        assert_eq!(cache.len(), 1);
        assert!(cache.get_cached(1).is_some());
        assert!(cache.retain_alive(&procfs).is_empty());
    }

    #[test]
    fn a_vanished_pid_is_none_and_not_an_error() {
        let tree = FakeTree::new("cache-gone");
        let procfs = ProcFs::new(tree.path());
        let mut cache = ProcessCache::new();
        fake_process(&tree, 4, "short-lived", 9);
        assert!(cache.get_or_read(&procfs, 4).is_some());
        tree.remove(&["4"]);
        assert!(cache.get_or_read(&procfs, 4).is_none());
        assert!(cache.is_empty());
        assert_eq!(cache.read_errors(), 0);
        // A malformed stat is counted.
        tree.write("5/stat", "garbage");
        assert!(cache.get_or_read(&procfs, 5).is_none());
        assert_eq!(cache.read_errors(), 1);
    }
}
