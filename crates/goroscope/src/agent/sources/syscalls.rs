//! Syscalls and file opens, from the kernel's per-(process, syscall) rows: calls, errors by
//! errno and latency histograms. File opens are the open, openat and openat2 rows: no extra
//! probe, no per-open event.

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
    latency: LatencyHistogram,
}

impl Tally for CallTally {
    fn add(&mut self, other: &Self) {
        self.calls = self.calls.saturating_add(other.calls);
        self.total_ns = self.total_ns.saturating_add(other.total_ns);
        self.latency.merge(&other.latency);
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
        let rows = self.collector.rows()?;
        self.live_calls.clear();
        self.live_errors.clear();
        let mut forget = Vec::new();
        let mut keep = std::collections::HashSet::new();
        let mut retiring = Vec::new();
        for row in rows {
            let seen = owners.see(row.pid, &row.comm);
            if seen.fate == Fate::Pending {
                continue; // its place is not known yet: counted next cycle
            }
            if !seen.targeted {
                forget.push(row.pid);
                continue;
            }
            if seen.fate == Fate::Retire {
                forget.push(row.pid);
                retiring.push((seen.owner, row));
                continue;
            }
            keep.insert(row.pid);
            for (&errno, &count) in &row.errors {
                self.live_errors.push(LiveRow {
                    pid: row.pid,
                    owner: seen.owner.clone(),
                    key: (row.syscall_nr, errno),
                    value: count,
                });
            }
            self.live_calls.push(LiveRow {
                pid: row.pid,
                owner: seen.owner,
                key: row.syscall_nr,
                value: call_tally(row),
            });
        }
        forget.sort_unstable();
        forget.dedup();
        // Delete by pid only when none of its rows is targeted: a process's rows from before
        // an exec carry the old name, which the targets may not name.
        forget.retain(|pid| !keep.contains(pid));
        if !forget.is_empty() {
            // Retired only once deleted: a failed delete leaves the rows for the next cycle.
            self.collector.forget(&forget)?;
        }
        for (owner, row) in retiring {
            for (&errno, count) in &row.errors {
                self.errors.retire(&owner, &(row.syscall_nr, errno), count);
            }
            let nr = row.syscall_nr;
            self.calls.retire(&owner, &nr, &call_tally(row));
        }
        Ok(())
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
                duration.add_histogram(
                    labels.clone().push("syscall", name.to_string()),
                    &layout.histogram_from_ns(&tally.latency, tally.total_ns),
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

/// The row's totals, taking its histogram rather than copying it.
fn call_tally(row: SyscallRow) -> CallTally {
    CallTally {
        calls: row.count,
        total_ns: row.total_ns,
        latency: row.histogram,
    }
}

fn syscall_label(nr: u32) -> String {
    syscall_name(nr).map_or_else(|| format!("syscall_{nr}"), str::to_owned)
}

fn errno_label(errno: u32) -> String {
    errno_name(errno).map_or_else(|| format!("errno_{errno}"), str::to_owned)
}
