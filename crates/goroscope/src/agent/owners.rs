//! Which process a kernel row belongs to: its owner (the comm the kernel recorded for the row,
//! plus the cgroup and container read once per process from /proc and cached), whether it is
//! still alive, and whether the config's targets include it.
//!
//! A process is retired one cycle after it was first seen dead, so its last increments (made
//! between a read and the check that found it gone) are in the final read.
//!
//! Short-lived processes are often gone before /proc can be read. Their place then comes from
//! the cgroup id the kernel stamped on their exec, fork or exit event (`place_event`), resolved
//! to a path by [`CgroupPaths`]. A dead process whose place is still unknown is `Pending` (its
//! events may still be on their way from the ring buffer) for up to `MAX_UNPLACED_CYCLES`
//! cycles, rather than shown under an empty cgroup and moved later, which would make that
//! series go back.

use std::collections::{HashMap, HashSet};

use goroscope_host::{container_id_from_cgroup, CgroupPaths, ProcFs, ProcessCache};

use crate::agent::config::Targets;
use crate::agent::ledger::Owner;

/// Cycles a dead process's rows wait for an event to say where it lived before they are
/// retired without a cgroup.
const MAX_UNPLACED_CYCLES: u32 = 5;

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
    /// Dead pids whose place was unknown when first seen, with the cycles since.
    unplaced: HashMap<u32, u32>,
    /// Whether process events arrive (the processes collector is up): only then is it worth
    /// waiting for one to place a dead process.
    events: bool,
    targets: Targets,
}

impl Owners {
    /// Reads processes under `procfs` (cgroup v2 mounted at `cgroup_root`), selecting those
    /// `targets` names.
    pub fn new(procfs: ProcFs, cgroup_root: &std::path::Path, targets: Targets) -> Self {
        Self {
            procfs,
            cache: ProcessCache::default(),
            cgroups: CgroupPaths::new(cgroup_root),
            this_cycle: HashMap::new(),
            departed: HashMap::new(),
            gone_before: HashSet::new(),
            gone_now: HashSet::new(),
            unplaced: HashMap::new(),
            events: true,
            targets,
        }
    }

    /// The process table this reads.
    pub fn procfs(&self) -> &ProcFs {
        &self.procfs
    }

    /// Where the cgroup v2 hierarchy is mounted (what `cgroup` labels are relative to).
    pub fn cgroup_root(&self) -> &std::path::Path {
        self.cgroups.root()
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
            unplaced,
            procfs,
            ..
        } = self;
        // Placed now (so retired this cycle), or waited long enough (retired without a place).
        unplaced.retain(|pid, cycles| {
            *cycles += 1;
            !departed.contains_key(pid) && *cycles < MAX_UNPLACED_CYCLES
        });
        departed.retain(|pid, _| {
            gone_before.contains(pid) || unplaced.contains_key(pid) || procfs.exists(*pid)
        });
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
        let fate = if alive && (known || !self.events) {
            Fate::Live
        } else if alive {
            // It exists but /proc could not be read (it is exiting): its exit event will say.
            Fate::Pending
        } else if !known && self.events {
            let waited = *self.unplaced.entry(pid).or_insert(0);
            if waited + 1 < MAX_UNPLACED_CYCLES {
                Fate::Pending
            } else {
                Fate::Retire
            }
        } else if self.gone_before.contains(&pid) || self.unplaced.contains_key(&pid) {
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

    /// Says whether process events arrive. Without them a dead process's place will not
    /// become known, and its rows are retired at once (without a cgroup) rather than kept
    /// waiting in the kernel maps.
    pub fn set_events(&mut self, arrive: bool) {
        self.events = arrive;
    }

    /// Whether `pid` was already found gone in an earlier cycle (its rows' final read is due,
    /// whatever its place).
    pub fn gone_before(&self, pid: u32) -> bool {
        self.gone_before.contains(&pid)
    }

    /// The owner of an event of `pid` (comm as recorded), and whether the targets include it,
    /// without counting the process as seen gone (events arrive between cycles).
    pub fn owner_of_event(&mut self, pid: u32, comm: &str) -> (Owner, bool) {
        let (place, _) = self.lookup(pid);
        let place = place.unwrap_or_default();
        let targeted = self.targets.matches(pid, comm, &place.cgroup);
        let owner = Owner {
            comm: comm.to_owned(),
            cgroup: place.cgroup,
            container_id: place.container_id,
        };
        (owner, targeted)
    }

    fn place(&mut self, pid: u32) -> (Option<Place>, bool) {
        if let Some((place, alive)) = self.this_cycle.get(&pid) {
            return (place.clone(), *alive);
        }
        let (place, alive) = self.lookup(pid);
        if !alive && !self.gone_before.contains(&pid) {
            self.gone_now.insert(pid);
        }
        self.this_cycle.insert(pid, (place.clone(), alive));
        (place, alive)
    }

    /// Where `pid` lives (None: unknown) and whether it is alive.
    fn lookup(&mut self, pid: u32) -> (Option<Place>, bool) {
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
        // Alive but gone before /proc could be read: an event may have placed it.
        let read = read.or_else(|| self.departed.get(&pid).cloned());
        if let Some(place) = &read {
            self.departed.insert(pid, place.clone());
        }
        (read, alive)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    /// A fake /proc (empty: every pid is gone) and a fake cgroup tree with `/web`.
    fn fake(label: &str) -> (std::path::PathBuf, Owners, u64) {
        let dir =
            std::env::temp_dir().join(format!("goroscope-owners-{label}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("proc")).unwrap();
        std::fs::create_dir_all(dir.join("cgroup/web")).unwrap();
        let web = std::fs::metadata(dir.join("cgroup/web")).unwrap().ino();
        let owners = Owners::new(
            ProcFs::new(dir.join("proc")),
            &dir.join("cgroup"),
            Targets::default(),
        );
        (dir, owners, web)
    }

    #[test]
    fn a_dead_process_placed_by_its_event_keeps_its_cgroup() {
        let (dir, mut owners, web) = fake("placed");
        owners.place_event(42, web);
        owners.begin_cycle();
        let first = owners.see(42, "true");
        assert_eq!(
            (first.owner.cgroup.as_str(), first.fate),
            ("/web", Fate::Live)
        );
        owners.end_cycle();
        owners.begin_cycle();
        let second = owners.see(42, "true");
        assert_eq!(
            (second.owner.cgroup.as_str(), second.fate),
            ("/web", Fate::Retire)
        );
        owners.end_cycle();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn an_unplaced_dead_process_waits_for_its_event_then_gives_up() {
        let (dir, mut owners, web) = fake("pending");
        // Seen before its event arrives: pending, not shown under an empty cgroup.
        owners.begin_cycle();
        assert_eq!(owners.see(7, "true").fate, Fate::Pending);
        owners.end_cycle();
        owners.begin_cycle();
        assert_eq!(owners.see(7, "true").fate, Fate::Pending);
        owners.end_cycle();
        // The event comes: retired at once, with its cgroup.
        owners.place_event(7, web);
        owners.begin_cycle();
        let seen = owners.see(7, "true");
        assert_eq!(
            (seen.owner.cgroup.as_str(), seen.fate),
            ("/web", Fate::Retire)
        );
        owners.end_cycle();
        // One that never gets an event is retired without a cgroup after a few cycles.
        let mut fates = Vec::new();
        for _ in 0..MAX_UNPLACED_CYCLES {
            owners.begin_cycle();
            fates.push(owners.see(8, "true").fate);
            owners.end_cycle();
        }
        assert_eq!(fates.last(), Some(&Fate::Retire), "{fates:?}");
        assert!(fates[..fates.len() - 1].iter().all(|f| *f == Fate::Pending));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn without_process_events_nothing_waits() {
        let (dir, mut owners, _) = fake("no-events");
        owners.set_events(false);
        let mut fates = Vec::new();
        for _ in 0..2 {
            owners.begin_cycle();
            fates.push(owners.see(9, "true").fate);
            owners.end_cycle();
        }
        assert_eq!(fates, [Fate::Live, Fate::Retire]);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
