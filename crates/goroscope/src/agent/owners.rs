//! Which process a kernel row belongs to: its owner (the comm the kernel recorded for the row,
//! plus the cgroup and container read once per process from /proc and cached), whether it is
//! still alive, and whether the config's targets include it.
//!
//! A process is retired one cycle after it was first seen dead, so its last increments (made
//! between a read and the check that found it gone) are in the final read.

use std::collections::{HashMap, HashSet};

use goroscope_host::{ProcFs, ProcessCache};

use crate::agent::config::Targets;
use crate::agent::ledger::Owner;

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
    /// Per pid this cycle: where it lives and whether it is alive.
    this_cycle: HashMap<u32, (Place, bool)>,
    /// Where processes that exited lived, for the cycle that retires them.
    departed: HashMap<u32, Place>,
    /// Pids found gone in the previous cycle: retired this cycle.
    gone_before: HashSet<u32>,
    /// Pids found gone in this cycle.
    gone_now: HashSet<u32>,
    targets: Targets,
}

impl Owners {
    /// Reads processes under `procfs`, selecting those `targets` names.
    pub fn new(procfs: ProcFs, targets: Targets) -> Self {
        Self {
            procfs,
            cache: ProcessCache::default(),
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

    /// The owner, fate and targeting of a row of `pid` whose kernel-recorded name is `comm`.
    pub fn see(&mut self, pid: u32, comm: &str) -> Seen {
        let (place, alive) = self.place(pid);
        let owner = Owner {
            comm: comm.to_owned(),
            cgroup: place.cgroup,
            container_id: place.container_id,
        };
        let fate = if !alive && self.gone_before.contains(&pid) {
            Fate::Retire
        } else {
            Fate::Live
        };
        let targeted = self.targets.matches(pid, comm, &owner.cgroup);
        Seen {
            owner,
            fate,
            targeted,
        }
    }

    fn place(&mut self, pid: u32) -> (Place, bool) {
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
            self.cache.get_cached(pid).map(|info| Place {
                cgroup: info.cgroup.clone(),
                container_id: info.container_id.clone().unwrap_or_default(),
            })
        };
        let place = match read {
            Some(place) => {
                self.departed.insert(pid, place.clone());
                place
            }
            None => self.departed.get(&pid).cloned().unwrap_or_default(),
        };
        if !alive && !self.gone_before.contains(&pid) {
            self.gone_now.insert(pid);
        }
        self.this_cycle.insert(pid, (place.clone(), alive));
        (place, alive)
    }
}
