//! The Go processes a profile attributes samples in. Each is attached once (its executable read,
//! its runtime checked), told to the kernel side so samples carry the running goroutine, and
//! read now and then: which goroutines exist (to name each sample's goroutine by its start
//! function and creation site) and what their pprof labels hold.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use goroscope_bpf::profile::GoLayout;
use goroscope_goprocess::{GoProcess, MemoryError, ProcessSymbolizer, SnapshotOptions};
use goroscope_model::goroutines::GoroutineNames;
use goroscope_model::profile::Label;

/// Most Go processes attached by one profile.
const MAX_TARGETS: usize = 1024;
/// Most label sets remembered per process.
const MAX_LABEL_SETS: usize = 1 << 16;
/// Most goroutines remembered per process between reads (a bound on memory, not a limit on
/// what is profiled: goroutines beyond it are just not named).
const MAX_GOROUTINES: usize = 1 << 20;

/// What is known about a goroutine: where it started and who created it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Goroutine {
    start_pc: u64,
    creation_pc: u64,
}

/// One attached Go process.
struct Target {
    process: GoProcess,
    symbolizer: ProcessSymbolizer,
    names: GoroutineNames,
    goroutines: HashMap<u64, Goroutine>,
    /// The goroutine labels read so far, by the address of their label set.
    labels: HashMap<u64, Vec<(String, String)>>,
    gone: bool,
}

/// The Go processes of one profile.
pub struct GoTargets {
    proc_root: PathBuf,
    targets: HashMap<u32, Target>,
    /// Processes tried and found not to be Go (or not attachable).
    not_go: HashSet<u32>,
}

impl GoTargets {
    /// No targets yet; processes are under `proc_root`.
    pub fn new(proc_root: &Path) -> GoTargets {
        GoTargets {
            proc_root: proc_root.to_path_buf(),
            targets: HashMap::new(),
            not_go: HashSet::new(),
        }
    }

    /// Attaches to `pid` if it is a Go process goroscope can read, once: the layout to give the
    /// kernel side, or `None` (not Go, gone, already attached, or too many).
    pub fn attach(&mut self, pid: u32) -> Option<GoLayout> {
        if self.targets.contains_key(&pid)
            || self.not_go.contains(&pid)
            || self.targets.len() >= MAX_TARGETS
        {
            return None;
        }
        let process = match GoProcess::attach(&self.proc_root, pid) {
            Ok(process) => process,
            Err(_) => {
                self.not_go.insert(pid);
                return None;
            }
        };
        let g = process.g_layout();
        // Without the code's bounds the kernel side reads no return address at SP (0..0).
        let code = process.go_code().unwrap_or(0..0);
        let layout = GoLayout {
            goid_offset: u32::try_from(g.goid).ok()?,
            labels_offset: g.labels.and_then(|offset| u32::try_from(offset).ok()),
            text_start: code.start,
            text_end: code.end,
        };
        let symbolizer = process.symbolizer();
        self.targets.insert(
            pid,
            Target {
                process,
                symbolizer,
                names: GoroutineNames::new(),
                goroutines: HashMap::new(),
                labels: HashMap::new(),
                gone: false,
            },
        );
        self.refresh_one(pid);
        Some(layout)
    }

    /// Reads the label set at `labels` in process `pid` now, while a goroutine holds it (a
    /// set nobody holds any more may be freed and its memory reused), and keeps it for the
    /// samples that carry that address. A set that does not read as one is left out.
    pub fn read_labels(&mut self, pid: u32, labels: u64) {
        let Some(target) = self.targets.get_mut(&pid) else {
            return;
        };
        if labels == 0 || target.labels.contains_key(&labels) {
            return;
        }
        if let Ok(pairs) = target.process.read_labels(labels) {
            if target.labels.len() >= MAX_LABEL_SETS {
                target.labels.clear();
            }
            target.labels.insert(labels, pairs);
        }
    }

    /// True when `pid` is attached.
    pub fn is_attached(&self, pid: u32) -> bool {
        self.targets.contains_key(&pid)
    }

    /// Reads every attached process's goroutines again. Returns the processes found gone.
    pub fn refresh(&mut self) -> Vec<u32> {
        let pids: Vec<u32> = self.targets.keys().copied().collect();
        pids.into_iter()
            .filter(|&pid| !self.refresh_one(pid))
            .collect()
    }

    /// Reads one process's goroutines; false when it is gone.
    fn refresh_one(&mut self, pid: u32) -> bool {
        let Some(target) = self.targets.get_mut(&pid) else {
            return false;
        };
        if target.gone {
            return false;
        }
        match target.process.snapshot(&SnapshotOptions { max_frames: 0 }) {
            Ok(snapshot) => {
                if target.goroutines.len() + snapshot.goroutines.len() > MAX_GOROUTINES {
                    target.goroutines.clear();
                }
                for record in &snapshot.goroutines {
                    let goroutine = Goroutine {
                        start_pc: record.start_pc,
                        creation_pc: record.creation_pc,
                    };
                    if target.goroutines.insert(record.goid, goroutine) != Some(goroutine) {
                        // Named now, while the process lives: naming the callee of a `go f(x)`
                        // wrapper reads the wrapper's code from its memory, and a profile is
                        // often written after its process has exited.
                        target
                            .names
                            .start_function(record.start_pc, &target.symbolizer);
                    }
                }
                true
            }
            Err(MemoryError::Exited { .. } | MemoryError::Exec { .. }) => {
                target.gone = true;
                false
            }
            // A torn read: the next refresh tries again.
            Err(_) => true,
        }
    }

    /// The labels of a sample of goroutine `goid` in process `pid` whose label set is at
    /// `labels` (0: none): `goid`, the goroutine's start function and creation site, and the
    /// program's own pprof labels.
    pub fn labels(&mut self, pid: u32, goid: u64, labels: u64) -> Vec<Label> {
        let goroutine = self
            .targets
            .get(&pid)
            .and_then(|target| target.goroutines.get(&goid))
            .copied();
        self.describe(pid, goid, goroutine, labels)
    }

    /// Like [`GoTargets::labels`], for a goroutine whose start and creation pcs are known.
    pub fn labels_of(
        &mut self,
        pid: u32,
        goid: u64,
        start_pc: u64,
        creation_pc: u64,
        labels: u64,
    ) -> Vec<Label> {
        let goroutine = Goroutine {
            start_pc,
            creation_pc,
        };
        self.describe(pid, goid, Some(goroutine), labels)
    }

    fn describe(
        &mut self,
        pid: u32,
        goid: u64,
        goroutine: Option<Goroutine>,
        labels: u64,
    ) -> Vec<Label> {
        let mut out = Vec::new();
        if goid == 0 {
            return out;
        }
        out.push(Label::number(
            "goid",
            i64::try_from(goid).unwrap_or(i64::MAX),
        ));
        let Some(target) = self.targets.get_mut(&pid) else {
            return out;
        };
        if let Some(goroutine) = goroutine {
            let start = target
                .names
                .start_function(goroutine.start_pc, &target.symbolizer);
            if !start.is_empty() {
                out.push(Label::text("goroutine_start", &start));
            }
            if let Some(site) = target
                .names
                .creation_site(goroutine.creation_pc, &target.symbolizer)
            {
                let created = format!("{} {}:{}", site.function, site.file, site.line);
                out.push(Label::text("goroutine_created_at", &created));
            }
        }
        if labels != 0 {
            if let Some(pairs) = target.labels.get(&labels) {
                out.extend(pairs.iter().map(|(k, v)| Label::text(k, v)));
            }
        }
        out
    }
}
