//! The result of the health analysis: plain data, built by
//! [`HealthTracker::report`](super::health::HealthTracker::report) and rendered elsewhere.

use super::snapshot::{CodeLocation, SchedulerState};

/// Everything the health model concludes from the snapshots seen so far.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct HealthReport {
    /// The span of time covered.
    pub window: WindowSummary,
    /// Live goroutines (not dead or idle) of the latest snapshot as Go counts them
    /// (`runtime.NumGoroutine()`, pprof's total, `go_goroutines`): without the runtime's own.
    pub goroutines_total: u64,
    /// Those goroutines by state name, most frequent first.
    pub by_state: Vec<(String, u64)>,
    /// The waiting ones by wait reason name, most frequent first.
    pub by_wait_reason: Vec<(String, u64)>,
    /// The runtime's own live goroutines (GC workers, sweeper, scavenger, forcegc, finalizer,
    /// …: those whose start function is in package `runtime`, other than `runtime.main`).
    pub runtime_goroutines: u64,
    /// The waiting ones among them by wait reason name, most frequent first.
    pub runtime_by_wait_reason: Vec<(String, u64)>,
    /// Goroutines created since the process started (`sched.goidgen` of the latest snapshot).
    pub created_total: u64,
    /// Goroutine creation rate over the window; `None` with fewer than two snapshots.
    pub created_per_second: Option<f64>,
    /// Lifetimes of goroutines born and ended within the window.
    pub lifetimes: LifetimeSummary,
    /// Live goroutines of the latest snapshot (the runtime's own left out) grouped by creation
    /// site, start function, blocking frame and wait reason; largest first.
    pub groups: Vec<GoroutineGroup>,
    /// Groups that look leaked, most suspicious first.
    pub leak_suspects: Vec<LeakSuspect>,
    /// Garbage collector summary.
    pub gc: GcSummary,
    /// Scheduler summary.
    pub scheduler: SchedulerSummary,
    /// What reading the snapshots cost.
    pub read_cost: ReadCost,
}

/// The snapshots a report is built from.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct WindowSummary {
    /// `taken_at_ns` of the first snapshot (CLOCK_MONOTONIC).
    pub first_ns: u64,
    /// `taken_at_ns` of the latest snapshot.
    pub last_ns: u64,
    /// Snapshots seen.
    pub snapshots: u64,
    /// Median gap between consecutive snapshots: the time resolution of everything derived from
    /// appearances and disappearances. `None` with fewer than two snapshots.
    pub interval_ns: Option<u64>,
}

/// Lifetimes of goroutines whose birth and end both fell inside the window.
///
/// A goroutine counts when it was absent from the first snapshot, then seen, then gone. Its
/// lifetime is measured from the first to the last snapshot that showed it, so each value is a
/// lower bound: the true lifetime may be up to about two `resolution_ns` longer, and goroutines
/// living less than one interval are mostly never seen at all. Quantiles come from a log-linear
/// histogram and are at most 0.8 % low; `max_ns` is exact.
#[derive(Debug, Clone, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct LifetimeSummary {
    /// Goroutines whose birth and end were both seen.
    pub count: u64,
    /// Median observed lifetime.
    pub p50_ns: Option<u64>,
    /// 90th percentile.
    pub p90_ns: Option<u64>,
    /// 99th percentile.
    pub p99_ns: Option<u64>,
    /// Longest.
    pub max_ns: Option<u64>,
    /// The resolution of these numbers: the window's median snapshot interval.
    pub resolution_ns: Option<u64>,
    /// Of the `count`, those seen in a single snapshot: they lived less than about two
    /// intervals, and their observed lifetime (0) says nothing more.
    pub seen_once: u64,
    /// Goroutines that appeared during the window (absent from the first snapshot), ended or not.
    pub appeared: u64,
    /// Of those, how many lived at least `long_lived_threshold_ns` (observed age, for the ones
    /// still alive at the end).
    pub long_lived: u64,
    /// `long_lived / appeared`; `None` when nothing appeared.
    pub long_lived_share: Option<f64>,
    /// The threshold used (`HealthSettings::long_lived_ns`).
    pub long_lived_threshold_ns: u64,
    /// The `count` observed lifetimes by power of two: `(upper_ns, goroutines)` for lifetimes in
    /// `[upper_ns / 2, upper_ns)` (`[0, 1)` for the first), up to the longest.
    pub histogram: Vec<(u64, u64)>,
}

/// Live goroutines of the latest snapshot sharing a creation site, start function, blocking frame
/// and wait reason. Unknown locations have an empty `function` and line 0.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct GoroutineGroup {
    /// Members in the latest snapshot.
    pub count: u64,
    /// The `go` statement that created them (innermost frame at `creation_pc - 1`); empty for
    /// the main goroutine, which no `go` statement created.
    pub creation: CodeLocation,
    /// The function the `go` statement started (the callee of the wrapper Go generates for
    /// `go f(x)`); empty when unknown.
    pub start_function: String,
    /// Where they are blocked: the innermost user-code frame of their stack (see the module
    /// docs of [`health`](super::health)); unknown for goroutines without a stack.
    pub blocked_at: CodeLocation,
    /// Wait reason name; empty for goroutines that are not waiting.
    pub wait_reason: String,
    /// Members by state name, most frequent first.
    pub by_state: Vec<(String, u64)>,
    /// The stack of one member as it was when the group was first seen, innermost frame first,
    /// inlined calls expanded and compiler-generated wrappers left out (as Go prints stacks);
    /// empty for goroutines without a stack (running ones).
    pub stack: Vec<CodeLocation>,
}

/// A group of goroutines that looks leaked. See [`leaks`](super::leaks) for the rule and the
/// score.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LeakSuspect {
    /// Members waiting with a known blocked time of at least `leak_after_ns`.
    pub count: u64,
    /// Further members of the group (same wait reason and frame) blocked for less than that so
    /// far: in a growing leak, the newest ones.
    pub recently_blocked: u64,
    /// Wait reason name.
    pub wait_reason: String,
    /// Function the goroutines started in; empty when unknown.
    pub start_function: String,
    /// The `go` statement that created them.
    pub creation: CodeLocation,
    /// Where they are blocked.
    pub blocked_at: CodeLocation,
    /// The shortest blocked time among the `count` members.
    pub min_blocked_ns: u64,
    /// How suspicious, in `[0, 1]`.
    pub leak_score: f64,
    /// One line for humans, with the evidence.
    pub reason: String,
    /// Stuck on an operation healthy code does not wait on for long (a send nobody receives, a
    /// nil channel, `select {}`, a lock) or proven leaked by the GC.
    pub stuck: bool,
    /// Kept growing over the growth horizon while its members stayed.
    pub growing: bool,
    /// Net change over the growth horizon of the members blocked past the threshold (0 when
    /// there were too few snapshots to tell).
    pub growth: i64,
    /// That change per minute.
    pub growth_per_minute: f64,
    /// Members that had been blocked past the threshold and left the group (woke or ended)
    /// during the horizon.
    pub released: u64,
}

/// Garbage collector summary.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct GcSummary {
    /// Completed cycles since start (latest snapshot).
    pub cycles: u32,
    /// Cycles completed during the window.
    pub cycles_in_window: u32,
    /// Pauses in the runtime's ring of recent pauses (at most 256, latest snapshot).
    pub pauses_sampled: u64,
    /// Median of those pauses (exact, nearest rank).
    pub pause_p50_ns: Option<u64>,
    /// 99th percentile.
    pub pause_p99_ns: Option<u64>,
    /// Longest.
    pub pause_max_ns: Option<u64>,
    /// Total pause time since start, when known.
    pub pause_total_ns: Option<u64>,
    /// Heap bytes live or allocated since the last mark.
    pub heap_live_bytes: Option<u64>,
    /// Heap size at which the next cycle starts.
    pub heap_goal_bytes: Option<u64>,
}

/// Scheduler summary.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct SchedulerSummary {
    /// The latest snapshot's scheduler state.
    pub latest: SchedulerState,
    /// Longest global run queue seen in any snapshot of the window.
    pub max_global_runqueue: u32,
}

/// The cost of taking the snapshots.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ReadCost {
    /// Goroutine records dropped (changed while read), summed over the window.
    pub dropped_records: u64,
    /// Mean `read_duration_ns`; `None` before the first snapshot.
    pub mean_read_ns: Option<u64>,
    /// Median `read_duration_ns`.
    pub p50_read_ns: Option<u64>,
    /// Longest `read_duration_ns`.
    pub max_read_ns: Option<u64>,
}
