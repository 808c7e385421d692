//! Which process a kernel row belongs to: its owner (the comm the kernel recorded for the row,
//! plus the cgroup and container read once per process from /proc and cached), whether it is
//! still alive, and whether the config's targets include it.
//!
//! A process is retired one cycle after it was first seen dead, so its last increments (made
//! between a read and the check that found it gone) are in the final read.
//!
//! Short-lived processes are often gone before /proc can be read. Their place then comes from
//! the cgroup id the kernel stamped on their exec, fork or exit event (`place_event`), resolved
//! to a path by [`CgroupPaths`]. A dead process whose place is still unknown is `Pending` for one
//! cycle (its exit event may still be on its way from the ring buffer) rather than shown under
//! an empty cgroup and moved later, which would make that series go back.

use std::collections::{HashMap, HashSet};

use std::time::Duration;

use goroscope_host::{container_id_from_cgroup, CgroupPaths, ProcFs, ProcessCache};

use crate::agent::config::Targets;
use crate::agent::ledger::Owner;

/// Shortest time between two walks of the cgroup tree for ids not seen before.
const CGROUP_RESCAN: Duration = Duration::from_millis(500);

/// What the agent knows about one process during one collection cycle.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Its owner labels.
    pub owner: Owner,
    /// What to do with its rows.
    pub fate: Fate,
    /// Whether the config's targets include it.
    pub targeted: bool,
}

/// What a source does with a process's rows this cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fate {
    /// Alive, or gone only since the last cycle: its rows are shown as they are.
    Live,
    /// Gone since before the last cycle: this read is final; retire and delete its rows.
    Retire,
    /// Gone before its place could be read, and no event has placed it yet: leave its rows in
    /// the kernel and out of this cycle's series; the next cycle retires them.
    Pending,
}

/// Where a process lives, as read from /proc (kept after it exits).
#[derive(Clone, Debug, Default)]
struct Place {
    cgroup: String,
    container_id: String,
}

/// The agent's view of the process table, refreshed every cycle.
pub struct Owners {
    procfs: ProcFs,
    cache: ProcessCache,
    cgroups: CgroupPaths,
    /// Per pid this cycle: where it lives (None: unknown) and whether it is alive.
    this_cycle: HashMap<u32, (Option<Place>, bool)>,
    /// Where processes that exited lived, for the cycle that retires them.
    departed: HashMap<u32, Place>,
    /// Pids found gone in the previous cycle: retired this cycle.
    gone_before: HashSet<u32>,
    /// Pids found gone in this cycle.
    gone_now: HashSet<u32>,
    targets: Targets,
}

impl Owners {
    /// Reads processes under `procfs` (cgroup v2 mounted at `cgroup_root`), selecting those
    /// `targets` names.
    pub fn new(procfs: ProcFs, cgroup_root: &std::path::Path, targets: Targets) -> Self {
        Self {
            procfs,
            cache: ProcessCache::default(),
            cgroups: CgroupPaths::new(cgroup_root, CGROUP_RESCAN),
            this_cycle: HashMap::new(),
            departed: HashMap::new(),
            gone_before: HashSet::new(),
            gone_now: HashSet::new(),
            targets,
        }
    }

    /// The process table this reads.
    pub fn procfs(&self) -> &ProcFs {
        &self.procfs
    }

    /// Applies reloaded targets from the next cycle on.
    pub fn set_targets(&mut self, targets: Targets) {
        self.targets = targets;
    }

    /// Starts a cycle.
    pub fn begin_cycle(&mut self) {
        self.this_cycle.clear();
    }

    /// Ends a cycle: processes found gone now are retired next cycle; those retired now are
    /// forgotten.
    pub fn end_cycle(&mut self) {
        for pid in &self.gone_before {
            self.departed.remove(pid);
        }
        self.gone_before = std::mem::take(&mut self.gone_now);
        let Self {
            departed,
            gone_before,
            procfs,
            ..
        } = self;
        departed.retain(|pid, _| gone_before.contains(pid) || procfs.exists(*pid));
        let _gone = self.cache.retain_alive(&self.procfs);
    }

    /// Reads where a process lives now, while it is alive (process events call this at exec and
    /// fork so short-lived processes are placed before they exit).
    pub fn place_now(&mut self, pid: u32) {
        if let Some(info) = self.cache.get_or_read(&self.procfs, pid) {
            let place = Place {
                cgroup: info.cgroup.clone(),
                container_id: info.container_id.clone().unwrap_or_default(),
            };
            self.departed.insert(pid, place);
        }
    }

    /// Places a process from the cgroup id the kernel stamped on one of its events (exec, exit,
    /// or fork for the child): exact at that moment, even when the process is already gone.
    /// Falls back to /proc when the id cannot be resolved.
    pub fn place_event(&mut self, pid: u32, cgroup_id: u64) {
        let Some(path) = self.cgroups.path_of(cgroup_id) else {
            self.place_now(pid);
            return;
        };
        let place = Place {
            container_id: container_id_from_cgroup(path)
                .map(str::to_owned)
                .unwrap_or_default(),
            cgroup: path.to_owned(),
        };
        // What this cycle saw for the pid (a previous process's place, or "unknown") is stale.
        if let Some((seen, _)) = self.this_cycle.get_mut(&pid) {
            *seen = Some(place.clone());
        }
        self.departed.insert(pid, place);
    }

    /// The owner, fate and targeting of a row of `pid` whose kernel-recorded name is `comm`.
    pub fn see(&mut self, pid: u32, comm: &str) -> Seen {
        let (place, alive) = self.place(pid);
        let known = place.is_some();
        let place = place.unwrap_or_default();
        let owner = Owner {
            comm: comm.to_owned(),
            cgroup: place.cgroup,
            container_id: place.container_id,
        };
        let fate = if alive {
            Fate::Live
        } else if self.gone_before.contains(&pid) {
            Fate::Retire
        } else if known {
            Fate::Live
        } else {
            Fate::Pending
        };
        let targeted = self.targets.matches(pid, comm, &owner.cgroup);
        Seen {
            owner,
            fate,
            targeted,
        }
    }

    fn place(&mut self, pid: u32) -> (Option<Place>, bool) {
        if let Some((place, alive)) = self.this_cycle.get(&pid) {
            return (place.clone(), *alive);
        }
        let alive = self.procfs.exists(pid);
        let read = if alive {
            self.cache.get_or_read(&self.procfs, pid).map(|info| Place {
                cgroup: info.cgroup.clone(),
                container_id: info.container_id.clone().unwrap_or_default(),
            })
        } else {
            // An event's place is newer than what /proc said while the process lived.
            self.departed.get(&pid).cloned().or_else(|| {
                self.cache.get_cached(pid).map(|info| Place {
                    cgroup: info.cgroup.clone(),
                    container_id: info.container_id.clone().unwrap_or_default(),
                })
            })
        };
        if let Some(place) = &read {
            self.departed.insert(pid, place.clone());
        }
        let place = read;
        if !alive && !self.gone_before.contains(&pid) {
            self.gone_now.insert(pid);
        }
        self.this_cycle.insert(pid, (place.clone(), alive));
        (place, alive)
    }
}
