//! The health model: a [`HealthTracker`] observes a series of [`GoroutineSnapshot`]s and reports
//! counts, lifetimes, groups, leak suspects, GC and scheduler summaries ([`HealthReport`]).
//!
//! # Groups
//!
//! Live goroutines are grouped by (creation site, start function, blocking frame, wait reason).
//! The creation site is the innermost frame at `creation_pc - 1` (none for the main goroutine);
//! the start function is the function the `go` statement named ([`Symbolizer::start_function`]:
//! the callee of the wrapper Go generates for `go f(x)`); the blocking frame is, walking the stack
//! innermost → outermost through inlined frames and skipping compiler-generated wrappers (as Go's
//! tracebacks and profiles do), the first frame in the program's own code (package `main`, a
//! package of one of the binary's modules, or a path whose first element contains a dot), else the
//! first frame outside `runtime`, `runtime/internal/…` and `internal/…`, else the innermost frame.
//! Grouping first uses numbers (creation pc, start pc, the blocking frame computed once per stack,
//! wait reason index), cached across snapshots; each new numeric key is symbolized once and mapped
//! to its symbolic key, so numeric groups with equal symbolic keys merge.
//!
//! # Counts as Go counts them
//!
//! Goroutines whose start function is in package `runtime` (other than `runtime.main`) are the
//! runtime's own — GC workers, sweeper, scavenger, forcegc, finalizer, … — and Go's
//! `NumGoroutine()`, its goroutine profile and `go_goroutines` leave them out. So do the report's
//! totals, states, wait reasons, groups and leak suspects; they are counted on their own
//! (`runtime_goroutines`).
//!
//! # Blocked time
//!
//! For a waiting goroutine: the larger of `now − waitsince` (the runtime's own stamp, when set)
//! and `now −` the first snapshot in which we saw it waiting in the same group, continuously
//! since. Sampling cannot see a goroutine that wakes and re-parks between snapshots, so when the
//! runtime does report `waitsince` values and two GC cycles have completed since we first saw the
//! goroutine waiting but its `waitsince` is still 0, it must have run (the GC stamps every blocked
//! goroutine it scans, and running clears the stamp): our observation restarts. A `trackingSeq`
//! that moved says the same.
//!
//! # Leak suspects
//!
//! See [`leaks`](super::leaks): groups stuck on an operation healthy code does not wait on for
//! long, or still growing over the growth horizon while their members stay. Long waits alone —
//! idle pools, select loops, accept loops, idle connections, timers — never make a suspect.

use super::groups::{
    sorted_counts, state_index, GroupTable, NumericKey, ReportContext, NOT_WAITING, STATES,
};
use super::health_report::{
    GcSummary, HealthReport, LifetimeSummary, ReadCost, SchedulerSummary, WindowSummary,
};
use super::lifetimes::{GoroutineTracks, SnapshotClock};
use super::quantiles::quantiles_of;
use super::snapshot::{GcState, GoroutineSnapshot, SchedulerState, Symbolizer};
use super::symbols::{BlockingFrame, SymbolCache, NONE};
use super::trend::Horizon;

/// Thresholds of the health model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// A waiting goroutine is a leak candidate once blocked at least this long (default 1 s).
    pub leak_after_ns: u64,
    /// Goroutines living at least this long count as long-lived (default 300 ms).
    pub long_lived_ns: u64,
    /// Growth of a group is judged over this much recent time (default 10 minutes).
    pub growth_window_ns: u64,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            leak_after_ns: 1_000_000_000,
            long_lived_ns: 300_000_000,
            growth_window_ns: 600_000_000_000,
        }
    }
}

/// The first and latest snapshots' scalar state.
#[derive(Debug, Clone, Default)]
struct Edge {
    taken_at_ns: u64,
    created_total: u64,
    gc: GcState,
    scheduler: SchedulerState,
    live: u64,
    states: [u64; STATES.len()],
    by_wait_reason: Vec<(String, u64)>,
    runtime_live: u64,
    runtime_by_wait_reason: Vec<(String, u64)>,
}

/// Snapshot gaps and read times kept for their quantiles: the most recent ones only, so a
/// tracker that runs for months (the agent's) stays the same size.
const RECENT_SNAPSHOTS: usize = 4096;

/// Appends `value`, dropping the oldest half once [`RECENT_SNAPSHOTS`] are kept.
fn push_recent(values: &mut Vec<u64>, value: u64) {
    if values.len() >= RECENT_SNAPSHOTS {
        values.drain(..RECENT_SNAPSHOTS / 2);
    }
    values.push(value);
}

/// Follows a process's goroutines over a series of snapshots; see the module docs.
#[derive(Debug, Default)]
pub struct HealthTracker {
    settings: HealthSettings,
    snapshots: u64,
    first: Option<Edge>,
    latest: Option<Edge>,
    gaps_ns: Vec<u64>,
    read_ns: Vec<u64>,
    dropped_records: u64,
    max_global_runqueue: u32,
    symbols: SymbolCache,
    wait_reasons: Vec<String>,
    groups: GroupTable,
    tracks: GoroutineTracks,
    /// Blocking frame of each stack of the current snapshot.
    stack_blocking: Vec<BlockingFrame>,
}

impl HealthTracker {
    /// A tracker that has seen nothing yet, for a binary whose modules are unknown (only package
    /// `main` and paths whose first element contains a dot count as the program's own code).
    pub fn new(settings: HealthSettings) -> Self {
        HealthTracker {
            settings,
            ..HealthTracker::default()
        }
    }

    /// A tracker for a binary built from `modules` (module paths, main module first, as its
    /// build info lists them): their packages are the program's own code for blocking frames.
    pub fn with_modules(settings: HealthSettings, modules: &[String]) -> Self {
        HealthTracker {
            settings,
            symbols: SymbolCache::with_modules(modules),
            ..HealthTracker::default()
        }
    }

    /// Snapshots observed so far.
    pub fn snapshots_seen(&self) -> u64 {
        self.snapshots
    }

    /// Adds one snapshot (taken after all earlier ones). O(goroutines + stack frames walked);
    /// only pcs never seen before are symbolized.
    pub fn observe(&mut self, snapshot: &GoroutineSnapshot, symbolizer: &dyn Symbolizer) {
        let index = self.snapshots;
        let now = snapshot.taken_at_ns;
        if let Some(latest) = &self.latest {
            push_recent(&mut self.gaps_ns, now.saturating_sub(latest.taken_at_ns));
        }
        push_recent(&mut self.read_ns, snapshot.read_duration_ns);
        self.dropped_records = self
            .dropped_records
            .saturating_add(snapshot.dropped_records);
        self.max_global_runqueue = self
            .max_global_runqueue
            .max(snapshot.scheduler.global_runqueue);
        let changed = snapshot.wait_reasons != self.wait_reasons;
        if changed {
            self.wait_reasons.clone_from(&snapshot.wait_reasons);
        }
        self.groups.begin_snapshot(changed);
        self.tracks.begin_snapshot(snapshot);

        self.stack_blocking.clear();
        for stack in &snapshot.stacks {
            let frame = self.symbols.blocking_frame(stack, symbolizer);
            self.stack_blocking.push(frame);
        }

        let clock = SnapshotClock {
            index,
            now_ns: now,
            gc_cycles: snapshot.gc.cycles,
        };
        let horizon = Horizon::at(
            now,
            self.first.as_ref().map_or(now, |first| first.taken_at_ns),
            self.settings.growth_window_ns,
            self.settings.leak_after_ns,
        );
        let mut states = [0u64; STATES.len()];
        let mut waits = [0u64; 256];
        let mut runtime_live = 0u64;
        let mut runtime_waits = [0u64; 256];
        let unknown = BlockingFrame {
            location: NONE,
            lock_wait: false,
        };
        for record in &snapshot.goroutines {
            if !record.state.is_live() {
                continue;
            }
            let state = state_index(record.state);
            let waiting = record.state.is_blocked();
            let blocking = record
                .stack
                .and_then(|i| self.stack_blocking.get(i as usize).copied())
                .unwrap_or(unknown);
            let key = NumericKey {
                creation_pc: record.creation_pc,
                start_pc: record.start_pc,
                blocking: blocking.location,
                wait: if waiting {
                    u16::from(record.wait_reason)
                } else {
                    NOT_WAITING
                },
            };
            let stack = record
                .stack
                .and_then(|i| snapshot.stacks.get(i as usize))
                .map_or(&[][..], Vec::as_slice);
            let gid = self.groups.group_of(
                key,
                blocking.lock_wait,
                stack,
                snapshot,
                &mut self.symbols,
                symbolizer,
            );
            if self.groups.is_runtime(gid) {
                runtime_live += 1;
                if waiting {
                    runtime_waits[usize::from(record.wait_reason)] += 1;
                }
            } else {
                states[state] += 1;
                if waiting {
                    waits[usize::from(record.wait_reason)] += 1;
                }
            }
            let sighting = self
                .tracks
                .observe(record, gid, clock, self.settings.leak_after_ns);
            if let Some(group) = self.groups.count_member(gid, index, state) {
                if let (Some(blocked), Some(joined)) =
                    (sighting.long_blocked_ns, sighting.joined_ns)
                {
                    group.record_long_blocked(blocked, joined, &horizon);
                }
            }
            if let Some(previous) = sighting.released_from.and_then(|g| self.groups.get_mut(g)) {
                previous.released += 1;
            }
        }
        let groups = &mut self.groups;
        self.tracks.end_snapshot(
            index,
            snapshot.dropped_records == 0,
            self.settings.long_lived_ns,
            |gid| {
                if let Some(group) = groups.get_mut(gid) {
                    group.released += 1;
                }
            },
        );
        self.groups.end_snapshot(&horizon);
        let named = |counts: &[u64; 256]| {
            sorted_counts(
                counts
                    .iter()
                    .enumerate()
                    .filter(|(_, &n)| n > 0)
                    .map(|(i, &n)| (snapshot.wait_reason_name(i as u8), n)),
            )
        };
        let by_wait_reason = named(&waits);
        let runtime_by_wait_reason = named(&runtime_waits);
        let edge = Edge {
            taken_at_ns: now,
            created_total: snapshot.created_total,
            gc: snapshot.gc.clone(),
            scheduler: snapshot.scheduler.clone(),
            live: states.iter().sum(),
            states,
            by_wait_reason,
            runtime_live,
            runtime_by_wait_reason,
        };
        if self.first.is_none() {
            self.first = Some(edge.clone());
        }
        self.latest = Some(edge);
        self.snapshots += 1;
    }

    /// The analysis of everything observed so far. Everything is symbolized and cached during
    /// [`observe`](Self::observe); `_symbolizer` is accepted for interface stability.
    pub fn report(&self, _symbolizer: &dyn Symbolizer) -> HealthReport {
        let (Some(first), Some(latest)) = (&self.first, &self.latest) else {
            return HealthReport {
                lifetimes: LifetimeSummary {
                    long_lived_threshold_ns: self.settings.long_lived_ns,
                    ..LifetimeSummary::default()
                },
                ..HealthReport::default()
            };
        };
        let interval_ns = quantiles_of(&self.gaps_ns, &[0.5])
            .first()
            .copied()
            .flatten();
        let span_ns = latest.taken_at_ns.saturating_sub(first.taken_at_ns);
        let created_per_second = (self.snapshots > 1 && span_ns > 0).then(|| {
            latest.created_total.saturating_sub(first.created_total) as f64 / (span_ns as f64 / 1e9)
        });
        let by_state = sorted_counts(
            STATES
                .iter()
                .zip(latest.states)
                .filter(|(_, n)| *n > 0)
                .map(|(s, n)| (s.name().to_owned(), n)),
        );
        let (groups, leak_suspects) = self.groups.report(
            &self.symbols,
            &ReportContext {
                latest_index: self.snapshots.saturating_sub(1),
                leak_after_ns: self.settings.leak_after_ns,
            },
        );
        HealthReport {
            window: WindowSummary {
                first_ns: first.taken_at_ns,
                last_ns: latest.taken_at_ns,
                snapshots: self.snapshots,
                interval_ns,
            },
            goroutines_total: latest.live,
            by_state,
            by_wait_reason: latest.by_wait_reason.clone(),
            runtime_goroutines: latest.runtime_live,
            runtime_by_wait_reason: latest.runtime_by_wait_reason.clone(),
            created_total: latest.created_total,
            created_per_second,
            lifetimes: self
                .tracks
                .summary(self.settings.long_lived_ns, interval_ns),
            groups,
            leak_suspects,
            gc: gc_summary(first, latest),
            scheduler: SchedulerSummary {
                latest: latest.scheduler.clone(),
                max_global_runqueue: self.max_global_runqueue,
            },
            read_cost: self.read_cost(),
        }
    }

    fn read_cost(&self) -> ReadCost {
        let n = self.read_ns.len() as u128;
        let sum: u128 = self.read_ns.iter().map(|&v| u128::from(v)).sum();
        let mean = (n > 0).then(|| u64::try_from(sum / n.max(1)).unwrap_or(u64::MAX));
        let q = quantiles_of(&self.read_ns, &[0.5, 1.0]);
        ReadCost {
            dropped_records: self.dropped_records,
            mean_read_ns: mean,
            p50_read_ns: q.first().copied().flatten(),
            max_read_ns: q.get(1).copied().flatten(),
        }
    }
}

fn gc_summary(first: &Edge, latest: &Edge) -> GcSummary {
    let pauses = &latest.gc.recent_pauses_ns;
    let q = quantiles_of(pauses, &[0.5, 0.99, 1.0]);
    GcSummary {
        cycles: latest.gc.cycles,
        cycles_in_window: latest.gc.cycles.saturating_sub(first.gc.cycles),
        pauses_sampled: pauses.len() as u64,
        pause_p50_ns: q.first().copied().flatten(),
        pause_p99_ns: q.get(1).copied().flatten(),
        pause_max_ns: q.get(2).copied().flatten(),
        pause_total_ns: latest.gc.pause_total_ns,
        heap_live_bytes: latest.gc.heap_live_bytes,
        heap_goal_bytes: latest.gc.heap_goal_bytes,
    }
}
