//! Goroutine groups across snapshots: numeric keys (pcs and indices) mapped once to symbolic keys
//! (interned locations and names), per-group history over the window (sizes, blocked members,
//! releases), and the groups and leak suspects of the latest snapshot. See
//! [`health`](super::health) for the rules.

use super::health_report::{GoroutineGroup, LeakSuspect};
use super::leaks::{judge, reason_line, short_location, Evidence, WaitKind};
use super::snapshot::{GoroutineSnapshot, GoroutineState, Symbolizer};
use super::symbols::{FxHashMap, SymbolCache, NONE};
use super::trend::{Growth, Horizon, Releases};
use std::collections::HashMap;

/// All states, in the order of the per-state counters.
pub(super) const STATES: [GoroutineState; 10] = [
    GoroutineState::Idle,
    GoroutineState::Runnable,
    GoroutineState::Running,
    GoroutineState::Syscall,
    GoroutineState::Waiting,
    GoroutineState::Dead,
    GoroutineState::CopyStack,
    GoroutineState::Preempted,
    GoroutineState::Leaked,
    GoroutineState::DeadExtra,
];

pub(super) fn state_index(state: GoroutineState) -> usize {
    STATES.iter().position(|&s| s == state).unwrap_or(0)
}

/// Wait reason index of goroutines that are not waiting, in numeric keys.
pub(super) const NOT_WAITING: u16 = u16::MAX;
/// `seen_in` of a group never seen.
const NEVER: u64 = u64::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct NumericKey {
    /// `gopc`.
    pub(super) creation_pc: u64,
    /// `startpc`.
    pub(super) start_pc: u64,
    /// Interned blocking location.
    pub(super) blocking: u32,
    /// Wait reason index, [`NOT_WAITING`] when not waiting.
    pub(super) wait: u16,
}

/// Interned ids: creation location, start function, blocking location, wait reason name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct GroupKey {
    creation: u32,
    start: u32,
    blocking: u32,
    wait: u32,
}

/// One symbolic group across the window.
#[derive(Debug, Clone)]
pub(super) struct GroupHistory {
    key: GroupKey,
    /// The runtime's own goroutines (start function in package `runtime`, other than
    /// `runtime.main`): Go's `NumGoroutine` and its profiles leave them out, and so do the
    /// counts, groups and leak suspects.
    pub(super) runtime: bool,
    /// The main goroutine (start function `runtime.main`).
    main: bool,
    /// Its members wait inside a mutex or RWMutex lock call.
    lock_wait: bool,
    /// One member's stack (location ids, innermost first), from when the group was first seen.
    stack: Vec<u32>,
    /// Members in snapshot `seen_in`.
    count: u64,
    seen_in: u64,
    states: [u64; STATES.len()],
    long_blocked: u64,
    min_long_blocked_ns: u64,
    /// Members that had been blocked ≥ leak_after and then woke or exited, since first seen.
    pub(super) released: u64,
    /// `released` over the growth horizon.
    releases: Releases,
    /// Members in snapshot `seen_in` that joined during the growth horizon and have been
    /// blocked ≥ leak_after since.
    growth: Growth,
}

impl GroupHistory {
    fn new(key: GroupKey, runtime: bool, main: bool, lock_wait: bool, stack: Vec<u32>) -> Self {
        GroupHistory {
            key,
            runtime,
            main,
            lock_wait,
            stack,
            count: 0,
            seen_in: NEVER,
            states: [0; STATES.len()],
            long_blocked: 0,
            min_long_blocked_ns: u64::MAX,
            released: 0,
            releases: Releases::default(),
            growth: Growth::default(),
        }
    }

    /// Counts a member blocked at least `leak_after_ns`, for `blocked_ns`, since it started
    /// waiting in this group at `joined_ns`.
    pub(super) fn record_long_blocked(
        &mut self,
        blocked_ns: u64,
        joined_ns: u64,
        horizon: &Horizon,
    ) {
        self.long_blocked += 1;
        self.min_long_blocked_ns = self.min_long_blocked_ns.min(blocked_ns);
        horizon.count(joined_ns, &mut self.growth);
    }

    /// Starts counting for snapshot `index`; returns true on the first touch in it.
    fn touch(&mut self, index: u64) -> bool {
        if self.seen_in == index {
            return false;
        }
        if self.seen_in.wrapping_add(1) != index {
            // Absent from the snapshot before: its history starts over.
            self.releases.clear();
        }
        self.seen_in = index;
        self.growth = Growth::default();
        self.count = 0;
        self.states = [0; STATES.len()];
        self.long_blocked = 0;
        self.min_long_blocked_ns = u64::MAX;
        true
    }
}

/// What [`GroupTable::report`] needs besides the groups.
#[derive(Debug, Clone, Copy)]
pub(super) struct ReportContext {
    /// Index of the latest snapshot.
    pub(super) latest_index: u64,
    /// The leak threshold.
    pub(super) leak_after_ns: u64,
}

/// All groups seen in the window.
#[derive(Debug, Default)]
pub(super) struct GroupTable {
    numeric: FxHashMap<NumericKey, u32>,
    ids: HashMap<GroupKey, u32>,
    groups: Vec<GroupHistory>,
    /// Groups present in the latest snapshot.
    touched: Vec<u32>,
}

impl GroupTable {
    /// Starts a snapshot; numeric keys are forgotten when the wait reason table changed.
    pub(super) fn begin_snapshot(&mut self, wait_reasons_changed: bool) {
        self.touched.clear();
        if wait_reasons_changed {
            self.numeric.clear();
        }
    }

    /// The group id of a numeric key, symbolizing it the first time.
    pub(super) fn group_of(
        &mut self,
        key: NumericKey,
        lock_wait: bool,
        stack: &[u64],
        snapshot: &GoroutineSnapshot,
        symbols: &mut SymbolCache,
        symbolizer: &dyn Symbolizer,
    ) -> u32 {
        if let Some(&gid) = self.numeric.get(&key) {
            return gid;
        }
        let start = symbols.start_function(key.start_pc, symbolizer);
        let start_name = symbols.strings.get(start);
        let main = start_name == "runtime.main";
        let runtime = is_runtime_start(start_name);
        // The main goroutine has no creator (the runtime's bootstrap is not a `go` statement).
        let creation = if main {
            NONE
        } else {
            symbols.creation_site(key.creation_pc, symbolizer)
        };
        let wait = match u8::try_from(key.wait) {
            Ok(index) => symbols.strings.intern(&snapshot.wait_reason_name(index)),
            Err(_) => NONE,
        };
        let group_key = GroupKey {
            creation,
            start,
            blocking: key.blocking,
            wait,
        };
        let gid = match self.ids.get(&group_key) {
            Some(&gid) => gid,
            None => {
                let stack = symbols.stack_locations(stack, symbolizer);
                self.groups.push(GroupHistory::new(
                    group_key, runtime, main, lock_wait, stack,
                ));
                let gid = self.groups.len() as u32 - 1;
                self.ids.insert(group_key, gid);
                gid
            }
        };
        self.numeric.insert(key, gid);
        gid
    }

    /// Counts a member of group `gid` in snapshot `index`.
    pub(super) fn count_member(
        &mut self,
        gid: u32,
        index: u64,
        state: usize,
    ) -> Option<&mut GroupHistory> {
        let group = self.groups.get_mut(gid as usize)?;
        if group.touch(index) {
            self.touched.push(gid);
        }
        group.count += 1;
        if let Some(n) = group.states.get_mut(state) {
            *n += 1;
        }
        Some(group)
    }

    /// True when group `gid` holds the runtime's own goroutines.
    pub(super) fn is_runtime(&self, gid: u32) -> bool {
        self.groups.get(gid as usize).is_some_and(|g| g.runtime)
    }

    /// Group `gid`.
    pub(super) fn get_mut(&mut self, gid: u32) -> Option<&mut GroupHistory> {
        self.groups.get_mut(gid as usize)
    }

    /// Ends a snapshot: every group present records its releases so far (kept over `horizon`)
    /// and the span its growth was counted over.
    pub(super) fn end_snapshot(&mut self, horizon: &Horizon) {
        for &gid in &self.touched {
            if let Some(group) = self.groups.get_mut(gid as usize) {
                group
                    .releases
                    .push(horizon.now_ns, group.released, horizon.start_ns);
                group.growth.span_ns = horizon.join_span_ns();
            }
        }
    }

    /// The groups of the latest snapshot and the leak suspects among them.
    pub(super) fn report(
        &self,
        symbols: &SymbolCache,
        context: &ReportContext,
    ) -> (Vec<GoroutineGroup>, Vec<LeakSuspect>) {
        let latest_index = context.latest_index;
        let mut groups = Vec::new();
        let mut suspects = Vec::new();
        for group in self
            .touched
            .iter()
            .filter_map(|&g| self.groups.get(g as usize))
        {
            if group.seen_in != latest_index || group.count == 0 || group.runtime {
                continue;
            }
            let key = group.key;
            let creation = symbols.location(key.creation);
            let blocked_at = symbols.location(key.blocking);
            let start_function = symbols.strings.get(key.start).to_owned();
            let wait_reason = symbols.strings.get(key.wait).to_owned();
            let leaked = group.states[state_index(GoroutineState::Leaked)] > 0;
            let evidence = Evidence {
                wait_reason: &wait_reason,
                kind: WaitKind::of(&wait_reason, group.lock_wait, group.main, leaked),
                count: group.long_blocked,
                min_blocked_ns: group.min_long_blocked_ns,
                released: group.releases.during_horizon(),
                growth: group.growth,
                leak_after_ns: context.leak_after_ns,
            };
            let verdict = if key.wait == NONE && !leaked {
                None
            } else {
                judge(&evidence)
            };
            if let Some(verdict) = verdict {
                let reason = reason_line(
                    &evidence,
                    &verdict,
                    &short_location(&creation.file, creation.line),
                    &short_location(&blocked_at.file, blocked_at.line),
                );
                suspects.push(LeakSuspect {
                    count: group.long_blocked,
                    recently_blocked: group.count - group.long_blocked,
                    wait_reason: wait_reason.clone(),
                    start_function: start_function.clone(),
                    creation: creation.clone(),
                    blocked_at: blocked_at.clone(),
                    min_blocked_ns: evidence.min_blocked_ns,
                    leak_score: verdict.score,
                    reason,
                    stuck: verdict.stuck,
                    growing: verdict.growing,
                    growth: i64::try_from(verdict.growth).unwrap_or(i64::MAX),
                    growth_per_minute: verdict.growth_per_minute,
                    released: evidence.released,
                });
            }
            groups.push(GoroutineGroup {
                stack: group.stack.iter().map(|&id| symbols.location(id)).collect(),
                count: group.count,
                creation,
                start_function,
                blocked_at,
                wait_reason,
                by_state: sorted_counts(
                    STATES
                        .iter()
                        .zip(group.states)
                        .filter(|(_, n)| *n > 0)
                        .map(|(s, n)| (s.name().to_owned(), n)),
                ),
            });
        }
        groups.sort_by(|a, b| {
            b.count
                .cmp(&a.count)
                .then_with(|| a.creation.cmp(&b.creation))
                .then_with(|| a.start_function.cmp(&b.start_function))
                .then_with(|| a.blocked_at.cmp(&b.blocked_at))
                .then_with(|| a.wait_reason.cmp(&b.wait_reason))
        });
        suspects.sort_by(|a, b| {
            b.leak_score
                .total_cmp(&a.leak_score)
                .then_with(|| b.count.cmp(&a.count))
                .then_with(|| a.creation.cmp(&b.creation))
                .then_with(|| a.blocked_at.cmp(&b.blocked_at))
        });
        (groups, suspects)
    }
}

/// True for the start function of a goroutine the runtime runs for itself, by Go's own rule
/// (`isSystemGoroutine`): any function of package `runtime` except `runtime.main` (the main
/// goroutine) and `runtime.corostart` (coroutines of `iter.Pull`, which run user code). The
/// finalizer goroutine counts as the runtime's, as it does for Go except while it runs a
/// finalizer.
pub(super) fn is_runtime_start(function: &str) -> bool {
    function.starts_with("runtime.")
        && function != "runtime.main"
        && function != "runtime.corostart"
}

/// Collects `(name, count)` pairs, most frequent first, ties by name.
pub(super) fn sorted_counts(items: impl Iterator<Item = (String, u64)>) -> Vec<(String, u64)> {
    let mut counts: Vec<(String, u64)> = items.collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts
}
