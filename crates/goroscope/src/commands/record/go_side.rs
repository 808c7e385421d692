//! The Go runtime's side of a recording: one goroutine snapshot per interval feeds the
//! wall-clock profile, the goroutine health model (leak suspects, groups, lifetimes), the
//! timeline's goroutine, GC and scheduler figures, the GC pauses, and the goroutine time by
//! state and wait reason.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::path::Path;

use goroscope_goprocess::{AttachError, MemoryError, ProcessSymbolizer};
use goroscope_model::goroutines::health::{HealthSettings, HealthTracker};
use goroscope_model::goroutines::{Activity, GoroutineSnapshot};
use goroscope_model::profile::Profile;
use goroscope_model::recording::{GcPause, GoPoint, GoSection, WaitTime};
use goroscope_profiler::{WallError, WallProfile};
use libbpf_rs::OpenObject;

use super::kernel::CPU_FREQUENCY;

/// Why the Go side could not start.
pub enum GoStart<'s> {
    /// Reading the Go runtime works.
    Go(Box<GoRecorder<'s>>),
    /// Not a Go process, or its runtime cannot be read: the reason, for the report.
    NotGo(String),
}

/// What ended the Go side before the recording did.
pub enum GoEnd {
    /// The process exited.
    Exited,
    /// The process replaced its program.
    Exec(String),
}

/// Reading one Go process's runtime through the recording.
pub struct GoRecorder<'s> {
    wall: WallProfile<'s>,
    symbolizer: ProcessSymbolizer,
    tracker: HealthTracker,
    /// The previous snapshot's GC cycle count, to tell new pauses.
    gc_cycles: Option<u32>,
    gc_pauses: Vec<GcPause>,
    pauses_missed: u64,
    /// Goroutine-nanoseconds by state or wait reason.
    wait_ns: HashMap<String, u64>,
    last_taken_ns: Option<u64>,
    interval_ns: u64,
    skipped: u64,
    pub go_version: String,
    pub main_module: Option<String>,
}

impl<'s> GoRecorder<'s> {
    /// Attaches to `pid` when it is a Go process whose runtime can be read.
    pub fn start(
        storage: &'s mut MaybeUninit<OpenObject>,
        proc_root: &Path,
        pid: u32,
        interval_ns: u64,
    ) -> Result<GoStart<'s>, anyhow::Error> {
        let wall = match WallProfile::start(storage, proc_root, pid, interval_ns, CPU_FREQUENCY) {
            Ok(wall) => wall,
            Err(WallError::Attach(
                e @ (AttachError::NoProcess { .. } | AttachError::Executable { .. }),
            )) => return Err(crate::settings::UsageError(e.to_string()).into()),
            Err(WallError::Attach(e)) => return Ok(GoStart::NotGo(e.to_string())),
            Err(WallError::Bpf(e)) => {
                return Err(anyhow::Error::new(e)
                    .context("starting CPU sampling for the goroutine wall-clock profile"))
            }
        };
        let info = wall.process().info().clone();
        let symbolizer = wall.process().symbolizer();
        let tracker =
            HealthTracker::with_modules(HealthSettings::default(), &info.build.module_paths());
        Ok(GoStart::Go(Box::new(GoRecorder {
            wall,
            symbolizer,
            tracker,
            gc_cycles: None,
            gc_pauses: Vec::new(),
            pauses_missed: 0,
            wait_ns: HashMap::new(),
            last_taken_ns: None,
            interval_ns,
            skipped: 0,
            go_version: info.build.go_version.clone(),
            main_module: info.build.main_module.clone(),
        })))
    }

    /// Takes a snapshot: the timeline's point, or `Err` when the process is gone. `since_ns`
    /// converts the snapshot's monotonic time to time since the recording started.
    pub fn snapshot(&mut self, started_mono_ns: u64) -> Result<Option<GoPoint>, GoEnd> {
        let snapshot = match self.wall.snapshot() {
            Ok(snapshot) => snapshot,
            Err(MemoryError::Exited { .. }) => return Err(GoEnd::Exited),
            Err(MemoryError::Exec { into, .. }) => return Err(GoEnd::Exec(into)),
            Err(_) => {
                // A list being reallocated while read: this snapshot is skipped and counted.
                self.skipped += 1;
                return Ok(None);
            }
        };
        self.tracker.observe(&snapshot, &self.symbolizer);
        let weight = match self.last_taken_ns {
            Some(last) => snapshot.taken_at_ns.saturating_sub(last),
            None => self.interval_ns,
        };
        self.last_taken_ns = Some(snapshot.taken_at_ns);
        let at_ns = snapshot.taken_at_ns.saturating_sub(started_mono_ns);
        self.count_pauses(&snapshot, at_ns);
        let point = self.weigh(&snapshot, weight);
        self.wall.process().release_resident();
        Ok(Some(point))
    }

    /// New GC pauses since the previous snapshot: the newest entries of the runtime's ring.
    fn count_pauses(&mut self, snapshot: &GoroutineSnapshot, at_ns: u64) {
        let gc = &snapshot.gc;
        if let Some(before) = self.gc_cycles {
            // A snapshot that could not read memstats says fewer cycles: skip it.
            let Some((pauses, missed)) = gc.pauses_since(before) else {
                return;
            };
            self.pauses_missed += missed;
            self.gc_pauses
                .extend(pauses.iter().map(|&pause_ns| GcPause {
                    seen_at_ns: at_ns,
                    pause_ns,
                }));
        }
        self.gc_cycles = Some(gc.cycles);
    }

    /// The snapshot's timeline point, and every live goroutine's time by what it was doing.
    fn weigh(&mut self, snapshot: &GoroutineSnapshot, weight: u64) -> GoPoint {
        let mut by_state: HashMap<&'static str, u64> = HashMap::new();
        let mut by_activity: HashMap<Activity, u64> = HashMap::new();
        for record in snapshot.goroutines.iter().filter(|r| r.state.is_live()) {
            *by_state.entry(record.state.name()).or_default() += 1;
            *by_activity.entry(record.activity()).or_default() += 1;
        }
        for (activity, goroutines) in by_activity {
            *self
                .wait_ns
                .entry(snapshot.activity_name(activity))
                .or_default() += goroutines * weight;
        }
        let mut by_state: Vec<(String, u64)> = by_state
            .into_iter()
            .map(|(s, n)| (s.to_string(), n))
            .collect();
        by_state.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        let scheduler = &snapshot.scheduler;
        GoPoint {
            by_state,
            created_total: snapshot.created_total,
            gc_cycles: snapshot.gc.cycles,
            heap_live_bytes: snapshot.gc.heap_live_bytes,
            heap_goal_bytes: snapshot.gc.heap_goal_bytes,
            global_runqueue: scheduler.global_runqueue,
            local_runqueues: scheduler.local_runqueues.iter().sum(),
            idle_ps: scheduler.idle_ps,
            gomaxprocs: scheduler.gomaxprocs,
        }
    }

    /// Snapshots taken so far.
    pub fn snapshots(&self) -> u64 {
        self.wall.snapshots()
    }

    /// Stops, and gathers the Go section, the wall-clock profile and notes for the report.
    pub fn finish(self) -> (GoSection, Option<Profile>, Vec<String>) {
        let mut notes = Vec::new();
        let health = self.tracker.report(&self.symbolizer);
        if self.pauses_missed > 0 {
            notes.push(format!(
                "{} GC pauses happened between snapshots beyond the runtime's ring of 256 and are not shown",
                self.pauses_missed
            ));
        }
        if self.skipped > 0 {
            notes.push(format!(
                "{} goroutine snapshots were skipped (a runtime list changed while it was read)",
                self.skipped
            ));
        }
        let wall_profile = match self.wall.finish() {
            Ok(profile) => Some(profile),
            Err(e) => {
                notes.push(format!(
                    "the goroutine wall-clock profile could not be built: {e}"
                ));
                None
            }
        };
        let mut wait_time: Vec<WaitTime> = self
            .wait_ns
            .into_iter()
            .map(|(reason, goroutine_ns)| WaitTime {
                reason,
                goroutine_ns,
            })
            .collect();
        wait_time.sort_by(|a, b| {
            b.goroutine_ns
                .cmp(&a.goroutine_ns)
                .then_with(|| a.reason.cmp(&b.reason))
        });
        let section = GoSection {
            health,
            gc_pauses: self.gc_pauses,
            wait_time,
            skipped_snapshots: self.skipped,
        };
        (section, wall_profile, notes)
    }
}
