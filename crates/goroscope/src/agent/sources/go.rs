//! Goroutine health of every Go process the agent finds: each is discovered by its binary
//! (once per distinct executable), attached by reading its memory, and snapshotted every
//! `collectors.go.interval` into a health tracker. Nothing is injected, nothing is stopped.
//! What the families look like, and which of them add up, is `families.rs`.

mod families;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use goroscope_export::{BucketLayout, Exposition};
use goroscope_export::{Family, Labels};
use goroscope_goprocess::{
    AttachError, GoProcess, MemoryError, ProcessSymbolizer, SnapshotOptions,
};
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

/// A Go process that could not be attached, and why (not retried while it runs the same
/// executable).
struct Refused {
    /// The executable it ran when refused: an exec into another one is tried again.
    exe: PathBuf,
    /// Why, as a short label value (see [`refusal_reason`]).
    reason: &'static str,
}

/// Go processes found, watched, and what went wrong.
pub struct GoSource {
    discovery: GoDiscovery,
    watched: HashMap<u32, Watched>,
    /// Processes that could not be attached, with why (not retried while they run the same
    /// executable).
    refused: HashMap<u32, Refused>,
    /// Reasons already explained in the log (each is logged once, not once per process).
    explained: Vec<&'static str>,
    next_discovery: Instant,
    settings: GoSettings,
    /// GC pauses that fell out of the runtime's 256-entry ring between two snapshots.
    pub pauses_missed: u64,
    /// Snapshots that failed (the process was mid-change; the next one is tried as usual).
    pub snapshot_failures: u64,
    /// Go processes found at the last discovery but not watched: `max_processes` were.
    pub over_limit: u64,
    /// Watched processes that exec'd another program under the same pid (then dropped, and
    /// read anew at the next discovery if the new program is Go).
    pub execs: u64,
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
            explained: Vec::new(),
            next_discovery: Instant::now(),
            settings,
            pauses_missed: 0,
            snapshot_failures: 0,
            over_limit: 0,
            execs: 0,
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
        let mut execd = Vec::new();
        for (pid, w) in &mut self.watched {
            if Instant::now() < w.next_snapshot {
                continue;
            }
            w.next_snapshot = Instant::now() + self.settings.interval;
            match w.process.snapshot(&options) {
                Ok(snapshot) => {
                    w.tracker.observe(&snapshot, &w.symbolizer);
                    let gc = &snapshot.gc;
                    if let Some(before) = w.gc_cycles {
                        // A snapshot that could not read memstats says 0 cycles: skip it.
                        let Some((pauses, missed)) = gc.pauses_since(before) else {
                            continue;
                        };
                        self.pauses_missed += missed;
                        for &pause in pauses {
                            w.pauses.record(pause);
                            w.pause_sum_ns = w.pause_sum_ns.saturating_add(pause);
                        }
                    }
                    w.gc_cycles = Some(gc.cycles);
                    w.report = Some(w.tracker.report(&w.symbolizer));
                    // Symbolizing touched pages of the mapped executable: give them back, so
                    // the agent's RSS does not grow with the binaries it watches.
                    w.process.release_resident();
                }
                Err(MemoryError::Exited { .. }) => ended.push(*pid),
                // Nothing more is read with what was learned at attach: it describes the old
                // program. What it counted is kept like an exited process's.
                Err(MemoryError::Exec { into, .. }) => execd.push((*pid, into)),
                Err(_) => self.snapshot_failures += 1,
            }
        }
        for pid in ended {
            self.retire(pid);
        }
        if !execd.is_empty() {
            // Look at the new programs at the next cycle rather than a discovery period later.
            self.next_discovery = Instant::now();
        }
        for (pid, into) in execd {
            eprintln!(
                "goroscope: agent: Go process {pid} exec'd into {into}; its figures so far are kept, and it is read anew if it runs Go"
            );
            self.execs += 1;
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
        let denied = self.discovery.denied_last_scan();
        if denied > 0 && !self.explained.contains(&DISCOVERY_DENIED) {
            self.explained.push(DISCOVERY_DENIED);
            let has_ptrace = goroscope_bpf::Privileges::of_self(proc_root)
                .is_some_and(|privileges| privileges.sys_ptrace);
            let why = if has_ptrace {
                "they are in another user namespace or a security module refuses it"
            } else {
                "the agent lacks CAP_SYS_PTRACE, needed for other users' processes and those holding capabilities it lacks"
            };
            eprintln!(
                "goroscope: agent: not allowed to open the executables of {denied} processes, so Go processes among them are not watched: \
                 {why} (goroscope_go_discovery_denied_processes counts them)"
            );
        }
        for process in found {
            let pid = process.pid;
            if pid == std::process::id() || self.watched.contains_key(&pid) {
                continue;
            }
            match self.refused.get(&pid) {
                Some(refused) if refused.exe == process.exe => continue,
                // It exec'd since: try the new program.
                Some(_) => {
                    self.refused.remove(&pid);
                }
                None => {}
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
                    let reason = refusal_reason(&error);
                    if reason == PERMISSION && !self.explained.contains(&reason) {
                        self.explained.push(reason);
                        eprintln!(
                            "goroscope: agent: the Go collector cannot read Go processes' memory without CAP_SYS_PTRACE: \
                             run the agent as root or grant it (setcap cap_sys_ptrace,cap_bpf,cap_perfmon+ep \
                             \"$(command -v goroscope)\", or AmbientCapabilities=CAP_SYS_PTRACE in its systemd unit); \
                             goroscope_go_processes_unreadable{{reason=\"{PERMISSION}\"}} counts them"
                        );
                    }
                    self.refused.insert(
                        pid,
                        Refused {
                            exe: process.exe.clone(),
                            reason,
                        },
                    );
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

impl GoSource {
    /// What watched process `pid` runs: its program (main module) and Go version.
    pub fn identity(&self, pid: u32) -> Option<(&Program, &str)> {
        self.watched
            .get(&pid)
            .map(|w| (&w.program, w.go_version.as_str()))
    }

    /// The Go processes watched.
    pub fn watched_pids(&self) -> Vec<u32> {
        self.watched.keys().copied().collect()
    }

    /// The latest health report of every watched process that has one.
    pub fn reports(&self) -> impl Iterator<Item = (u32, &HealthReport)> + '_ {
        self.watched
            .iter()
            .filter_map(|(pid, w)| w.report.as_ref().map(|report| (*pid, report)))
    }

    /// The collector's own families: exec'd processes, and Go processes found but not read, by
    /// why (so an agent watching no Go process says so, e.g. for want of CAP_SYS_PTRACE).
    pub fn self_families(&self, out: &mut Exposition) {
        let mut execs = Family::counter(
            "goroscope_go_process_execs_total",
            "Watched Go processes that exec'd another program under the same pid; their figures \
             so far are kept and the pid is read anew if the new program is Go.",
        );
        execs.add_counter(Labels::new(), self.execs as f64);
        out.push(execs);
        let mut unreadable = Family::gauge(
            "goroscope_go_processes_unreadable",
            "Go processes found but not watched, by why: permission (the agent lacks \
             CAP_SYS_PTRACE), unsupported (Go release or architecture goroscope does not read), \
             implausible (a runtime layout that did not check out), other (see the agent's log).",
        );
        let mut by_reason: BTreeMap<&'static str, u64> =
            REASONS.iter().map(|reason| (*reason, 0)).collect();
        for refused in self.refused.values() {
            *by_reason.entry(refused.reason).or_default() += 1;
        }
        for (reason, count) in by_reason {
            unreadable.add_gauge(
                Labels::new().push("reason", reason.to_owned()),
                count as f64,
            );
        }
        out.push(unreadable);
        let mut hidden = Family::gauge(
            "goroscope_go_discovery_denied_processes",
            "Processes whose executable the agent was not allowed to open at the last Go \
             discovery, so it cannot tell whether they run Go (without CAP_SYS_PTRACE, other \
             users' processes).",
        );
        hidden.add_gauge(Labels::new(), self.discovery.denied_last_scan() as f64);
        out.push(hidden);
    }
}

/// Key in `explained` of the discovery's permission failures.
const DISCOVERY_DENIED: &str = "discovery denied";
/// The `reason` of a process goroscope may not read.
const PERMISSION: &str = "permission";
/// Every `reason` label value, each exported even at 0.
const REASONS: [&str; 4] = [PERMISSION, "unsupported", "implausible", "other"];

/// Why a Go process could not be attached, as a label value.
fn refusal_reason(error: &AttachError) -> &'static str {
    match error {
        AttachError::Memory(MemoryError::PermissionDenied { .. }) => PERMISSION,
        AttachError::Executable { source, .. }
            if source.kind() == std::io::ErrorKind::PermissionDenied =>
        {
            PERMISSION
        }
        AttachError::Binary { .. } => "unsupported",
        AttachError::Implausible { .. } | AttachError::InferredLayoutRejected { .. } => {
            "implausible"
        }
        _ => "other",
    }
}

fn duration_ns(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}
