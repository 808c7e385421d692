//! Syscalls and file opens, from the kernel's per-(process, syscall) rows: calls, errors by
//! errno and latency histograms. File opens are the open, openat and openat2 rows: no extra
//! probe, no per-open event.

use std::collections::HashSet;

use goroscope_bpf::{Losses, SyscallCollector};
use goroscope_export::{BucketLayout, Exposition, Family};
use goroscope_model::{errno_name, syscall_name, LatencyHistogram, SyscallRow};

use crate::agent::ledger::{Ledger, Owner, Tally};
use crate::agent::owners::{Fate, Owners};
use crate::agent::probe::Source;
use crate::agent::series::{sum_by_labels, LabelPlan, LiveRow};

/// x86_64 numbers of the syscalls that open files.
const OPEN_SYSCALLS: [u32; 3] = [2, 257, 437];

/// One process's totals for one syscall.
#[derive(Clone, Debug, Default)]
pub struct CallTally {
    calls: u64,
    total_ns: u64,
    latency: BucketRange,
}

impl Tally for CallTally {
    fn add(&mut self, other: &Self) {
        self.calls = self.calls.saturating_add(other.calls);
        self.total_ns = self.total_ns.saturating_add(other.total_ns);
        self.latency.merge(&other.latency);
    }
}

/// A latency histogram kept as its buckets from the first to the last non-empty one. One
/// process's syscall touches a few dozen of the 160 buckets, and under process churn tens of
/// thousands of (process, syscall) rows are alive at once: ~150 bytes each instead of 1.3 KB.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BucketRange {
    first: usize,
    counts: Vec<u64>,
}

impl BucketRange {
    fn from_histogram(histogram: &LatencyHistogram) -> Self {
        let buckets = histogram.buckets();
        let Some(first) = buckets.iter().position(|&n| n != 0) else {
            return Self::default();
        };
        let last = buckets.iter().rposition(|&n| n != 0).unwrap_or(first);
        Self {
            first,
            counts: buckets[first..=last].to_vec(),
        }
    }

    fn merge(&mut self, other: &Self) {
        if other.counts.is_empty() {
            return;
        }
        if self.counts.is_empty() {
            self.clone_from(other);
            return;
        }
        let first = self.first.min(other.first);
        let end = (self.first + self.counts.len()).max(other.first + other.counts.len());
        if first < self.first {
            let grow = self.first - first;
            self.counts.splice(0..0, std::iter::repeat_n(0, grow));
            self.first = first;
        }
        if self.counts.len() < end - first {
            self.counts.resize(end - first, 0);
        }
        let offset = other.first - self.first;
        for (mine, theirs) in self.counts[offset..].iter_mut().zip(&other.counts) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    fn to_histogram(&self) -> LatencyHistogram {
        let mut buckets = [0u64; goroscope_model::LATENCY_BUCKETS];
        if let Some(slots) = buckets.get_mut(self.first..self.first + self.counts.len()) {
            slots.copy_from_slice(&self.counts);
        }
        let mut histogram = LatencyHistogram::new();
        histogram.add_bucket_counts(&buckets);
        histogram
    }
}

/// The syscall collector and what it has retired.
pub struct SyscallSource {
    collector: SyscallCollector<'static>,
    calls: Ledger<u32, CallTally>,
    errors: Ledger<(u32, u32), u64>,
    live_calls: Vec<LiveRow<u32, CallTally>>,
    live_errors: Vec<LiveRow<(u32, u32), u64>>,
}

/// What the syscall source keeps while its collector is off (see `probe.rs`).
#[derive(Default)]
pub struct SyscallKept {
    calls: Ledger<u32, CallTally>,
    errors: Ledger<(u32, u32), u64>,
}

impl Source for SyscallSource {
    type Kept = SyscallKept;

    fn losses(&self) -> Option<anyhow::Result<Losses>> {
        Some(SyscallSource::losses(self))
    }

    fn park(mut self, owners: &mut Owners) -> SyscallKept {
        if let Err(error) = self.collect(owners) {
            eprintln!("goroscope: agent: last read of the syscall collector failed: {error:#}");
        }
        self.calls.carry(self.live_calls);
        self.errors.carry(self.live_errors);
        SyscallKept {
            calls: self.calls,
            errors: self.errors,
        }
    }
}

impl SyscallSource {
    /// Which calls its collector times.
    pub fn timing(&self) -> goroscope_bpf::syscalls::Timing {
        self.collector.timing()
    }

    /// Wraps a started collector, continuing from what an earlier one counted.
    pub fn new(collector: SyscallCollector<'static>, kept: SyscallKept) -> Self {
        Self {
            collector,
            calls: kept.calls,
            errors: kept.errors,
            live_calls: Vec::new(),
            live_errors: Vec::new(),
        }
    }

    /// Forgets what dead processes of owners the new targets exclude counted.
    pub fn retain_owners(&mut self, mut keep: impl FnMut(&Owner) -> bool) {
        self.calls.retain_owners(|owner| keep(owner));
        self.errors.retain_owners(|owner| keep(owner));
    }

    /// Kernel-side losses so far.
    pub fn losses(&self) -> anyhow::Result<Losses> {
        Ok(self.collector.losses()?)
    }

    /// Reads the kernel rows; retires and deletes those of processes gone since the last
    /// cycle, and deletes those of untargeted processes.
    pub fn collect(&mut self, owners: &mut Owners) -> anyhow::Result<()> {
        self.calls.settle(owners);
        self.errors.settle(owners);
        self.live_calls.clear();
        self.live_errors.clear();
        let mut forget = Vec::new();
        let mut keep = std::collections::HashSet::new();
        let mut retiring = Vec::new();
        let Self {
            collector,
            live_calls,
            live_errors,
            ..
        } = self;
        // Rows are handled as they are read (no list of every row first): under process churn
        // tens of thousands of rows with a 1.3 KB histogram each are alive at once.
        collector.for_each_row(|row| {
            let seen = owners.see(row.pid, &row.comm);
            if seen.fate == Fate::Pending {
                return; // its place is not known yet: counted next cycle
            }
            if !seen.targeted {
                forget.push(row.pid);
                return;
            }
            if seen.fate == Fate::Retire {
                forget.push(row.pid);
                let errors: Vec<(u32, u64)> = row.errors.iter().map(|(&e, &n)| (e, n)).collect();
                let nr = row.syscall_nr;
                retiring.push((row.pid, seen.owner, nr, errors, call_tally(row)));
                return;
            }
            keep.insert(row.pid);
            for (&errno, &count) in &row.errors {
                live_errors.push(LiveRow {
                    pid: row.pid,
                    owner: seen.owner.clone(),
                    key: (row.syscall_nr, errno),
                    value: count,
                });
            }
            live_calls.push(LiveRow {
                pid: row.pid,
                owner: seen.owner,
                key: row.syscall_nr,
                value: call_tally(row),
            });
        })?;
        forget.sort_unstable();
        forget.dedup();
        // Delete by pid only when none of its rows is targeted: a process's rows from before
        // an exec carry the old name, which the targets may not name.
        forget.retain(|pid| !keep.contains(pid));
        if !forget.is_empty() {
            // Retired only once deleted: a failed delete leaves the rows for the next cycle.
            self.collector.forget(&forget)?;
        }
        for (pid, owner, nr, errors, tally) in retiring {
            for (errno, count) in errors {
                self.errors
                    .retire_process(pid, &owner, &(nr, errno), &count);
            }
            self.calls.retire_process(pid, &owner, &nr, &tally);
        }
        Ok(())
    }

    /// Last values of ended processes not kept for an export (see the ledger), ever.
    pub fn departed_lost(&self) -> u64 {
        self.calls.departed_lost() + self.errors.departed_lost()
    }

    /// Whether the last values of ended processes wait for an export (see the ledger).
    pub fn set_keep_departed(&mut self, keep: bool) {
        self.calls.set_keep_departed(keep);
        self.errors.set_keep_departed(keep);
    }

    /// Forgets the last values of ended processes once exported (see the ledger).
    pub fn clear_departed(&mut self) {
        self.calls.clear_departed();
        self.errors.clear_departed();
    }

    /// The processes in `individual` have their own resource in an OTLP export (see the
    /// ledger).
    pub fn mark_exported(&mut self, individual: &HashSet<u32>) {
        self.calls.mark_exported(individual);
        self.errors.mark_exported(individual);
    }

    /// The processes with live rows.
    pub fn live_pids(&self) -> impl Iterator<Item = u32> + '_ {
        let first = self.live_calls.iter().map(|row| row.pid);
        first.chain(self.live_errors.iter().map(|row| row.pid))
    }

    /// Adds the syscall families (when `syscalls`) and the file-open family (when `files`).
    pub fn families(
        &self,
        plan: &LabelPlan,
        layout: &BucketLayout,
        syscalls: bool,
        files: bool,
        out: &mut Exposition,
    ) {
        let calls = sum_by_labels(plan, &self.live_calls, &self.calls);
        let errors = sum_by_labels(plan, &self.live_errors, &self.errors);
        if syscalls {
            let mut total = Family::counter(
                "goroscope_syscalls_total",
                "System calls made, per process and syscall.",
            );
            let mut duration = Family::histogram(
                "goroscope_syscall_duration_seconds",
                "Time from syscall entry to return (exit and exit_group never return and are \
                 not timed).",
            );
            let mut failed = Family::counter(
                "goroscope_syscall_errors_total",
                "System calls that returned an error, per process, syscall and errno.",
            );
            for ((labels, nr), tally) in &calls {
                let name = syscall_label(*nr);
                total.add_counter(
                    labels.clone().push("syscall", name.to_string()),
                    tally.calls as f64,
                );
                duration.add_latency(
                    labels.clone().push("syscall", name.to_string()),
                    layout,
                    &tally.latency.to_histogram(),
                    tally.total_ns,
                );
            }
            for ((labels, (nr, errno)), count) in &errors {
                failed.add_counter(
                    labels
                        .clone()
                        .push("syscall", syscall_label(*nr))
                        .push("errno", errno_label(*errno)),
                    *count as f64,
                );
            }
            out.push(total);
            out.push(duration);
            out.push(failed);
        }
        if files {
            let mut opens = Family::counter(
                "goroscope_file_opens_total",
                "Files opened (open, openat, openat2), per process and result: ok or the errno.",
            );
            let mut ok: std::collections::HashMap<&goroscope_export::Labels, u64> =
                std::collections::HashMap::new();
            for ((labels, nr), tally) in &calls {
                if OPEN_SYSCALLS.contains(nr) {
                    let entry = ok.entry(labels).or_default();
                    *entry = entry.saturating_add(tally.calls);
                }
            }
            let mut failures: std::collections::HashMap<(&goroscope_export::Labels, u32), u64> =
                std::collections::HashMap::new();
            for ((labels, (nr, errno)), count) in &errors {
                if OPEN_SYSCALLS.contains(nr) {
                    if let Some(entry) = ok.get_mut(labels) {
                        *entry = entry.saturating_sub(*count);
                    }
                    let entry = failures.entry((labels, *errno)).or_default();
                    *entry = entry.saturating_add(*count);
                }
            }
            for (labels, count) in ok {
                opens.add_counter(labels.clone().push("result", "ok"), count as f64);
            }
            for ((labels, errno), count) in failures {
                opens.add_counter(
                    labels.clone().push("result", errno_label(errno)),
                    count as f64,
                );
            }
            out.push(opens);
        }
    }
}

/// The row's totals, its histogram kept as a bucket range.
fn call_tally(row: SyscallRow) -> CallTally {
    CallTally {
        calls: row.count,
        total_ns: row.total_ns,
        latency: BucketRange::from_histogram(&row.histogram),
    }
}

fn syscall_label(nr: u32) -> String {
    syscall_name(nr).map_or_else(|| format!("syscall_{nr}"), str::to_owned)
}

fn errno_label(errno: u32) -> String {
    errno_name(errno).map_or_else(|| format!("errno_{errno}"), str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(samples: &[u64]) -> LatencyHistogram {
        let mut h = LatencyHistogram::new();
        for &ns in samples {
            h.record(ns);
        }
        h
    }

    #[test]
    fn bucket_ranges_merge_like_full_histograms() {
        let cases: [&[u64]; 5] = [&[], &[1_000], &[50, 60, 70_000], &[1 << 40, 3], &[900, 901]];
        for a in cases {
            for b in cases {
                let mut range = BucketRange::from_histogram(&histogram(a));
                range.merge(&BucketRange::from_histogram(&histogram(b)));
                let mut full = histogram(a);
                full.merge(&histogram(b));
                assert_eq!(
                    range.to_histogram().buckets(),
                    full.buckets(),
                    "{a:?} + {b:?}"
                );
                assert_eq!(range, BucketRange::from_histogram(&full), "{a:?} + {b:?}");
            }
        }
    }
}
