//! The health model: a [`HealthTracker`] observes a series of [`GoroutineSnapshot`]s and reports
//! counts, lifetimes, groups, leak suspects, GC and scheduler summaries ([`HealthReport`]).
//!
//! # Groups
//!
//! Live goroutines are grouped by (creation site, start function, blocking frame, wait reason).
//! The creation site is the innermost frame at `creation_pc - 1`; the start function is
//! `function_at(start_pc)`; the blocking frame is, walking the stack innermost → outermost and
//! expanding inlined frames, the first frame in user code (package `main`, or a package path whose
//! first element contains a dot such as `github.com/…`), else the first frame outside `runtime`,
//! `runtime/internal/…` and `internal/…`, else the innermost frame. Grouping first uses numbers
//! (creation pc, start pc, the blocking frame computed once per stack, wait reason index), cached
//! across snapshots; each new numeric key is symbolized once and mapped to its symbolic key, so
//! numeric groups with equal symbolic keys merge.
//!
//! # Blocked time
//!
//! For a waiting goroutine: the larger of `now − waitsince` (the runtime's own stamp, when set)
//! and `now −` the first snapshot in which we saw it waiting in the same group, continuously
//! since. Sampling cannot see a goroutine that wakes and re-parks between snapshots, so when the
//! runtime does report `waitsince` values and two GC cycles have completed since we first saw the
//! goroutine waiting but its `waitsince` is still 0, it must have run (the GC stamps every blocked
//! goroutine it scans, and running clears the stamp): our observation restarts.
//!
//! # Leak suspects
//!
//! A group of the latest snapshot is a suspect when its members are waiting (it has a wait
//! reason), at least one has a known blocked time ≥ `leak_after_ns`, its size in the latest
//! snapshot is at least its size in every earlier snapshot of the window (it never shrank below
//! the current size), and it is not a runtime goroutine (start function `runtime.*`). `count` is
//! the number of members blocked ≥ `leak_after_ns`. Goroutines that churn (each blocked briefly)
//! never reach the threshold and are never counted.
//!
//! # Leak score
//!
//! `leak_score = kind × released × duration × evidence`, each in `[0, 1]`:
//! - `kind`: 1.0 for channel, `select`, `sync.*`, `semacquire` and coroutine waits; 0.3 for
//!   `sleep`, single-goroutine `IO wait` (a listener's accept) and runtime housekeeping waits; 0.6
//!   for `IO wait` with several goroutines; 0.7 otherwise.
//! - `released = count / (count + released)`, `released` being members that had been blocked
//!   past the threshold and then woke or exited during the window (the wait does end).
//! - `duration = 1 − 2^(−min_blocked / leak_after)`: 0.5 at the threshold, saturating to 1.
//! - `evidence = 0.2 + 0.8 × (1 − (1 − 0.8 × size) × (1 − growth))` with
//!   `size = 1 − 2^(−count / 4)` and `growth = 1 − 2^(−max(growth, 0) / 2)`.
//!
//! It is monotone in growth, blocked duration and count: one goroutine stuck on a channel scores
//! about 0.15–0.3, dozens stuck with a growing count close to 1.

use super::groups::{
    sorted_counts, state_index, GroupTable, NumericKey, ReportContext, NOT_WAITING, STATES,
};
use super::health_report::{
    GcSummary, HealthReport, LifetimeSummary, ReadCost, SchedulerSummary, WindowSummary,
};
use super::lifetimes::{GoroutineTracks, SnapshotClock};
use super::quantiles::quantiles_of;
use super::snapshot::{GcState, GoroutineSnapshot, SchedulerState, Symbolizer};
use super::symbols::{SymbolCache, NONE};

/// Thresholds of the health model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HealthSettings {
    /// A waiting goroutine is a leak candidate once blocked at least this long (default 1 s).
    pub leak_after_ns: u64,
    /// Goroutines living at least this long count as long-lived (default 300 ms).
    pub long_lived_ns: u64,
}

impl Default for HealthSettings {
    fn default() -> Self {
        HealthSettings {
            leak_after_ns: 1_000_000_000,
            long_lived_ns: 300_000_000,
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
    /// Blocking location of each stack of the current snapshot.
    stack_blocking: Vec<u32>,
}

impl HealthTracker {
    /// A tracker that has seen nothing yet.
    pub fn new(settings: HealthSettings) -> Self {
        HealthTracker {
            settings,
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
            let id = self.symbols.blocking_frame(stack, symbolizer);
            self.stack_blocking.push(id);
        }

        let clock = SnapshotClock {
            index,
            now_ns: now,
            gc_cycles: snapshot.gc.cycles,
        };
        let mut states = [0u64; STATES.len()];
        let mut waits = [0u64; 256];
        for record in &snapshot.goroutines {
            if !record.state.is_live() {
                continue;
            }
            let state = state_index(record.state);
            states[state] += 1;
            let waiting = record.state.is_blocked();
            if waiting {
                waits[usize::from(record.wait_reason)] += 1;
            }
            let blocking = record
                .stack
                .and_then(|i| self.stack_blocking.get(i as usize).copied())
                .unwrap_or(NONE);
            let key = NumericKey {
                creation_pc: record.creation_pc,
                start_pc: record.start_pc,
                blocking,
                wait: if waiting {
                    u16::from(record.wait_reason)
                } else {
                    NOT_WAITING
                },
            };
            let gid = self
                .groups
                .group_of(key, snapshot, &mut self.symbols, symbolizer);
            let sighting = self
                .tracks
                .observe(record, gid, clock, self.settings.leak_after_ns);
            if let Some(group) = self.groups.count_member(gid, index, state) {
                if let Some(blocked) = sighting.long_blocked_ns {
                    group.record_long_blocked(blocked);
                }
            }
            if let Some(previous) = sighting.released_from.and_then(|g| self.groups.get_mut(g)) {
                previous.released += 1;
            }
        }
        self.groups.end_snapshot(index, now);
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
        let by_wait_reason = sorted_counts(
            waits
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .map(|(i, &n)| (snapshot.wait_reason_name(i as u8), n)),
        );
        let edge = Edge {
            taken_at_ns: now,
            created_total: snapshot.created_total,
            gc: snapshot.gc.clone(),
            scheduler: snapshot.scheduler.clone(),
            live: states.iter().sum(),
            states,
            by_wait_reason,
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
                window_ns: span_ns,
                now_ns: latest.taken_at_ns,
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
