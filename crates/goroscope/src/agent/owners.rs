//! Which process a kernel row belongs to: its owner (comm, cgroup, container) read once per
//! process from /proc and cached, whether it is still alive, and whether the config's targets
//! include it. Dead processes found in a cycle are retired by every source in that same cycle.

use std::collections::HashMap;

use goroscope_host::{ProcFs, ProcessCache};

use crate::agent::config::Targets;
use crate::agent::ledger::Owner;

/// What the agent knows about one process during one collection cycle.
#[derive(Clone, Debug)]
pub struct Seen {
    /// Its owner labels.
    pub owner: Owner,
    /// False once /proc no longer has it: its rows are read one last time and retired.
    pub alive: bool,
    /// Whether the config's targets include it.
    pub targeted: bool,
}

/// The agent's view of the process table, refreshed every cycle.
pub struct Owners {
    procfs: ProcFs,
    cache: ProcessCache,
    this_cycle: HashMap<u32, Seen>,
    targets: Targets,
}

impl Owners {
    /// Reads processes under `procfs`, selecting those `targets` names.
    pub fn new(procfs: ProcFs, targets: Targets) -> Self {
        Self {
            procfs,
            cache: ProcessCache::default(),
            this_cycle: HashMap::new(),
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

    /// Starts a cycle: forgets what the last one learned about liveness.
    pub fn begin_cycle(&mut self) {
        self.this_cycle.clear();
    }

    /// Ends a cycle: drops cached processes that are gone.
    pub fn end_cycle(&mut self) {
        let _gone = self.cache.retain_alive(&self.procfs);
    }

    /// The owner, liveness and targeting of `pid`; `kernel_comm` is the name the kernel row
    /// carries, used when the process is already gone and was never read.
    pub fn see(&mut self, pid: u32, kernel_comm: &str) -> &Seen {
        let Self {
            procfs,
            cache,
            this_cycle,
            targets,
        } = self;
        this_cycle.entry(pid).or_insert_with(|| {
            let alive = procfs.exists(pid);
            let owner = match cache.get_or_read(procfs, pid) {
                Some(info) => Owner {
                    comm: if info.comm.is_empty() {
                        kernel_comm.to_owned()
                    } else {
                        info.comm.clone()
                    },
                    cgroup: info.cgroup.clone(),
                    container_id: info.container_id.clone().unwrap_or_default(),
                },
                None => Owner {
                    comm: kernel_comm.to_owned(),
                    ..Owner::default()
                },
            };
            let targeted = targets.matches(pid, &owner.comm, &owner.cgroup);
            Seen {
                owner,
                alive,
                targeted,
            }
        })
    }
}
