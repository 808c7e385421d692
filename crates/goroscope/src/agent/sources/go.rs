//! Goroutine health of every Go process the agent finds: each is discovered by its binary
//! (once per distinct executable), attached by reading its memory, and snapshotted every
//! `collectors.go.interval` into a health tracker. Nothing is injected, nothing is stopped.
//! What the families look like, and which of them add up, is `families.rs`.

mod families;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use goroscope_export::{BucketLayout, Exposition};
use goroscope_goprocess::{GoProcess, MemoryError, ProcessSymbolizer, SnapshotOptions};
use goroscope_host::GoDiscovery;
use goroscope_model::goroutines::health::{HealthSettings, HealthTracker};
use goroscope_model::goroutines::health_report::HealthReport;
use goroscope_model::LatencyHistogram;

use crate::agent::ledger::Owner;
use crate::agent::owners::Owners;
use crate::agent::probe::Source;
use crate::agent::series::LabelPlan;
use families::{ProcessView, Program, Retired};

/// Frames unwound per blocked goroutine: enough to find the blocking user frame.
const FRAMES: usize = 32;

/// What the Go collector is told by the config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoSettings {
    /// Time between snapshots of one process.
    pub interval: Duration,
    /// Time between scans of /proc for new Go processes.
    pub discover_every: Duration,
    /// Most processes watched at once.
    pub max_processes: usize,
    /// A goroutine blocked at least this long may be part of a leak suspect.
    pub leak_after: Duration,
}

/// One watched Go process.
struct Watched {
    process: GoProcess,
    symbolizer: ProcessSymbolizer,
    tracker: HealthTracker,
    owner: Owner,
    program: Program,
    go_version: String,
    next_snapshot: Instant,
    gc_cycles: Option<u32>,
    pauses: LatencyHistogram,
    pause_sum_ns: u64,
    report: Option<HealthReport>,
}

/// Go processes found, watched, and what went wrong.
pub struct GoSource {
    discovery: GoDiscovery,
    watched: HashMap<u32, Watched>,
    /// Processes that could not be attached, with why (not retried while they live).
    refused: HashMap<u32, String>,
    next_discovery: Instant,
    settings: GoSettings,
    /// GC pauses that fell out of the runtime's 256-entry ring between two snapshots.
    pub pauses_missed: u64,
    /// Snapshots that failed (the process was mid-change; the next one is tried as usual).
    pub snapshot_failures: u64,
    /// Go processes found at the last discovery but not watched: `max_processes` were.
    pub over_limit: u64,
    /// What ended processes counted, per process labels and program.
    retired: HashMap<(Owner, Program), Retired>,
}

/// Parked whole: its counters come from the targets' runtimes (absolute, so they continue by
/// themselves) and from what it retired and counted about itself, all of which it keeps. The
/// processes it watched stay attached; those that ended meanwhile are retired when it resumes.
impl Source for GoSource {
    type Kept = Option<GoSource>;

    fn park(self, _owners: &mut Owners) -> Option<GoSource> {
        Some(self)
    }
}

impl GoSource {
    /// A source that discovers on its first cycle.
    pub fn new(settings: GoSettings) -> Self {
        Self {
            discovery: GoDiscovery::default(),
            watched: HashMap::new(),
            refused: HashMap::new(),
            next_discovery: Instant::now(),
            settings,
            pauses_missed: 0,
            snapshot_failures: 0,
            over_limit: 0,
            retired: HashMap::new(),
        }
    }

    /// Applies reloaded settings; watched processes keep their history.
    pub fn set_settings(&mut self, settings: GoSettings) {
        self.settings = settings;
    }

    /// Discovers when due, drops processes that ended, and snapshots those that are due.
    pub fn collect(&mut self, owners: &mut Owners, proc_root: &Path) -> anyhow::Result<()> {
        let now = Instant::now();
        let ended: Vec<u32> = self
            .watched
            .keys()
            .copied()
            .filter(|pid| !owners.procfs().exists(*pid))
            .collect();
        for pid in ended {
            self.retire(pid);
        }
        self.refused.retain(|pid, _| owners.procfs().exists(*pid));
        if now >= self.next_discovery {
            self.next_discovery = now + self.settings.discover_every;
            self.discover(owners, proc_root)?;
        }
        let options = SnapshotOptions { max_frames: FRAMES };
        let mut ended = Vec::new();
        for (pid, w) in &mut self.watched {
            if Instant::now() < w.next_snapshot {
                continue;
            }
            w.next_snapshot = Instant::now() + self.settings.interval;
            match w.process.snapshot(&options) {
                Ok(snapshot) => {
                    w.tracker.observe(&snapshot, &w.symbolizer);
                    let gc = &snapshot.gc;
                    // A snapshot that could not read memstats says 0 cycles: skip it.
                    if w.gc_cycles.is_some_and(|before| gc.cycles < before) {
                        continue;
                    }
                    if let Some(before) = w.gc_cycles {
                        let new = (gc.cycles - before) as usize;
                        let kept = new.min(gc.recent_pauses_ns.len());
                        self.pauses_missed += (new - kept) as u64;
                        for &pause in &gc.recent_pauses_ns[gc.recent_pauses_ns.len() - kept..] {
                            w.pauses.record(pause);
                            w.pause_sum_ns = w.pause_sum_ns.saturating_add(pause);
                        }
                    }
                    w.gc_cycles = Some(gc.cycles);
                    w.report = Some(w.tracker.report(&w.symbolizer));
                }
                Err(MemoryError::Exited { .. }) => ended.push(*pid),
                Err(_) => self.snapshot_failures += 1,
            }
        }
        for pid in ended {
            self.retire(pid);
        }
        Ok(())
    }

    /// Forgets what ended processes of owners `keep` refuses counted.
    pub fn retain_owners(&mut self, mut keep: impl FnMut(&Owner) -> bool) {
        self.retired.retain(|(owner, _), _| keep(owner));
    }

    /// Stops watching a process that ended, keeping what its counters reached.
    fn retire(&mut self, pid: u32) {
        let Some(w) = self.watched.remove(&pid) else {
            return;
        };
        self.retired.entry((w.owner, w.program)).or_default().add(
            w.report.as_ref(),
            &w.pauses,
            w.pause_sum_ns,
        );
    }

    fn discover(&mut self, owners: &mut Owners, proc_root: &Path) -> anyhow::Result<()> {
        let pids = owners.procfs().pids()?;
        self.over_limit = 0;
        let found = self.discovery.scan(owners.procfs(), pids);
        for process in found {
            let pid = process.pid;
            if pid == std::process::id()
                || self.watched.contains_key(&pid)
                || self.refused.contains_key(&pid)
            {
                continue;
            }
            let seen = owners.see(pid, &process.comm);
            if !seen.targeted || !owners.procfs().exists(pid) {
                continue;
            }
            if self.watched.len() >= self.settings.max_processes {
                self.over_limit += 1;
                continue;
            }
            match GoProcess::attach(proc_root, pid) {
                Ok(attached) => {
                    let symbolizer = attached.symbolizer();
                    let go_version = attached.info().build.go_version.clone();
                    let modules = attached.info().build.module_paths();
                    let program = Program::new(&process.exe, &attached.info().build, &process.comm);
                    self.watched.insert(
                        pid,
                        Watched {
                            process: attached,
                            symbolizer,
                            tracker: HealthTracker::with_modules(
                                HealthSettings {
                                    leak_after_ns: duration_ns(self.settings.leak_after),
                                    long_lived_ns: duration_ns(self.settings.interval),
                                    ..HealthSettings::default()
                                },
                                &modules,
                            ),
                            owner: seen.owner,
                            program,
                            go_version,
                            next_snapshot: Instant::now(),
                            gc_cycles: None,
                            pauses: LatencyHistogram::new(),
                            pause_sum_ns: 0,
                            report: None,
                        },
                    );
                }
                Err(error) => {
                    eprintln!(
                        "goroscope: agent: not watching Go process {pid} ({}): {error}",
                        process.comm
                    );
                    self.refused.insert(pid, error.to_string());
                }
            }
        }
        Ok(())
    }

    /// Adds the Go families (see `families.rs` for which are per process and which add up).
    pub fn families(&self, plan: &LabelPlan, layout: &BucketLayout, out: &mut Exposition) {
        let processes = self.watched.iter().map(|(pid, w)| ProcessView {
            pid: *pid,
            owner: &w.owner,
            program: &w.program,
            go_version: &w.go_version,
            report: w.report.as_ref(),
            pauses: &w.pauses,
            pause_sum_ns: w.pause_sum_ns,
        });
        let retired = self
            .retired
            .iter()
            .map(|((owner, program), r)| (owner, program, r));
        families::add(processes, retired, plan, layout, out);
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
