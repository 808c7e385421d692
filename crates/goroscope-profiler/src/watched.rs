//! What every sampling profile keeps about the processes it sees: their code mappings (captured
//! on first sight, so they symbolize after they exit), the Go processes among them (attached,
//! and told to the kernel side so samples carry goroutines) and the label sets samples point at
//! (read while their goroutines hold them).

use std::collections::HashSet;
use std::path::Path;

use goroscope_bpf::profile::GoLayout;
use goroscope_bpf::BpfError;

use crate::symbols::Symbols;
use crate::targets::GoTargets;

/// Processes seen by one profile.
pub(crate) struct Watched {
    pub symbols: Symbols,
    pub targets: GoTargets,
    seen: HashSet<u32>,
    label_sets: HashSet<(u32, u64)>,
}

impl Watched {
    /// Nothing seen yet; processes are under `proc_root`.
    pub fn new(proc_root: &Path) -> Watched {
        Watched {
            symbols: Symbols::new(proc_root),
            targets: GoTargets::new(proc_root),
            seen: HashSet::new(),
            label_sets: HashSet::new(),
        }
    }

    /// Records process `pid` the first time it is seen; `watch` tells the kernel side about a
    /// Go process's layout.
    pub fn see(
        &mut self,
        pid: u32,
        watch: impl FnOnce(u32, GoLayout) -> Result<(), BpfError>,
    ) -> Result<(), BpfError> {
        match self.first_sight(pid) {
            Some(layout) => watch(pid, layout),
            None => Ok(()),
        }
    }

    /// Records process `pid` if it was not seen before: its mappings, and, for a Go process,
    /// the layout to give the kernel side.
    pub fn first_sight(&mut self, pid: u32) -> Option<GoLayout> {
        if !self.seen.insert(pid) {
            return None;
        }
        self.symbols.capture(pid);
        self.targets.attach(pid)
    }

    /// Reads label set `labels` of process `pid` the first time a sample points at it.
    pub fn saw_labels(&mut self, pid: u32, labels: u64) {
        if labels != 0 && self.label_sets.insert((pid, labels)) {
            self.targets.read_labels(pid, labels);
        }
    }
}
