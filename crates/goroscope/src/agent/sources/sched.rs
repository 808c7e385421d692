//! Scheduler statistics per process: run-queue latency, voluntary and involuntary context
//! switches, and off-CPU time, from the kernel's per-process rows.

use std::collections::HashSet;

use goroscope_bpf::sched::SchedCollector;
use goroscope_bpf::Losses;
use goroscope_export::{BucketLayout, Exposition, Family};
use goroscope_model::sched_stats::SchedRow;
use goroscope_model::LatencyHistogram;

use crate::agent::ledger::{Ledger, Owner, Tally};
use crate::agent::owners::{Fate, Owners};
use crate::agent::probe::Source;
use crate::agent::series::{sum_by_labels, LabelPlan, LiveRow};

/// One process's scheduler totals.
#[derive(Clone, Debug, Default)]
pub struct SchedTally {
    voluntary: u64,
    involuntary: u64,
    runqueue: LatencyHistogram,
    runqueue_ns: u64,
    blocked_ns: u64,
}

impl Tally for SchedTally {
    fn add(&mut self, other: &Self) {
        self.voluntary = self.voluntary.saturating_add(other.voluntary);
        self.involuntary = self.involuntary.saturating_add(other.involuntary);
        self.runqueue.merge(&other.runqueue);
        self.runqueue_ns = self.runqueue_ns.saturating_add(other.runqueue_ns);
        self.blocked_ns = self.blocked_ns.saturating_add(other.blocked_ns);
    }
}

impl From<&SchedRow> for SchedTally {
    fn from(row: &SchedRow) -> Self {
        Self {
            voluntary: row.voluntary_switches,
            involuntary: row.involuntary_switches,
            runqueue: row.runqueue.clone(),
            runqueue_ns: row.runqueue_total_ns,
            blocked_ns: row.blocked_ns,
        }
    }
}

/// The scheduler collector and what it has retired.
pub struct SchedSource {
    collector: SchedCollector<'static>,
    ledger: Ledger<(), SchedTally>,
    live: Vec<LiveRow<(), SchedTally>>,
}

impl Source for SchedSource {
    type Kept = Ledger<(), SchedTally>;

    fn losses(&self) -> Option<anyhow::Result<Losses>> {
        Some(SchedSource::losses(self))
    }

    fn park(mut self, owners: &mut Owners) -> Self::Kept {
        if let Err(error) = self.collect(owners) {
            eprintln!("goroscope: agent: last read of the scheduler collector failed: {error:#}");
        }
        self.ledger.carry(self.live);
        self.ledger
    }
}

impl SchedSource {
    /// Wraps a started collector, continuing from what an earlier one counted.
    pub fn new(collector: SchedCollector<'static>, ledger: Ledger<(), SchedTally>) -> Self {
        Self {
            collector,
            ledger,
            live: Vec::new(),
        }
    }

    /// Forgets what dead processes of owners the new targets exclude counted.
    pub fn retain_owners(&mut self, mut keep: impl FnMut(&Owner) -> bool) {
        self.ledger.retain_owners(|owner| keep(owner));
    }

    /// Kernel-side losses so far.
    pub fn losses(&self) -> anyhow::Result<Losses> {
        Ok(self.collector.losses()?)
    }

    /// Reads the kernel rows; retires and deletes those of processes gone since the last
    /// cycle, and deletes those of untargeted processes.
    pub fn collect(&mut self, owners: &mut Owners) -> anyhow::Result<()> {
        self.ledger.settle(owners);
        let rows = self.collector.rows()?;
        self.live.clear();
        let mut forget = Vec::new();
        let mut keep = std::collections::HashSet::new();
        let mut retiring = Vec::new();
        for row in &rows {
            let seen = owners.see(row.pid, &row.comm);
            if seen.fate == Fate::Pending {
                continue; // its place is not known yet: counted next cycle
            } else if !seen.targeted {
                forget.push(row.pid);
            } else if seen.fate == Fate::Retire {
                forget.push(row.pid);
                retiring.push((row.pid, seen.owner, SchedTally::from(row)));
            } else {
                keep.insert(row.pid);
                self.live.push(LiveRow {
                    pid: row.pid,
                    owner: seen.owner,
                    key: (),
                    value: SchedTally::from(row),
                });
            }
        }
        forget.sort_unstable();
        forget.dedup();
        // Delete by pid only when none of its rows is targeted: a process's rows from before
        // an exec carry the old name, which the targets may not name.
        forget.retain(|pid| !keep.contains(pid));
        if !forget.is_empty() {
            self.collector.forget(&forget)?;
        }
        for (pid, owner, tally) in retiring {
            self.ledger.retire_process(pid, &owner, &(), &tally);
        }
        Ok(())
    }

    /// Last values of ended processes not kept for an export (see the ledger), ever.
    pub fn departed_lost(&self) -> u64 {
        self.ledger.departed_lost()
    }

    /// Whether the last values of ended processes wait for an export (see the ledger).
    pub fn set_keep_departed(&mut self, keep: bool) {
        self.ledger.set_keep_departed(keep);
    }

    /// Forgets the last values of ended processes once exported (see the ledger).
    pub fn clear_departed(&mut self) {
        self.ledger.clear_departed();
    }

    /// The processes in `individual` have their own resource in an OTLP export (see the
    /// ledger).
    pub fn mark_exported(&mut self, individual: &HashSet<u32>) {
        self.ledger.mark_exported(individual);
    }

    /// The processes with live rows.
    pub fn live_pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.live.iter().map(|row| row.pid)
    }

    /// Adds the scheduler families.
    pub fn families(&self, plan: &LabelPlan, layout: &BucketLayout, out: &mut Exposition) {
        let mut latency = Family::histogram(
            "goroscope_runqueue_latency_seconds",
            "Time threads waited runnable for a CPU: from wakeup (or preemption) to running.",
        );
        let mut switches = Family::counter(
            "goroscope_context_switches_total",
            "Context switches of the process's threads: voluntary (blocked) or involuntary \
             (preempted).",
        );
        let mut offcpu = Family::counter(
            "goroscope_offcpu_seconds_total",
            "Time threads spent off CPU: blocked (sleeping, waiting on I/O or locks until \
             woken) or runqueue (runnable, waiting for a CPU).",
        );
        for ((labels, ()), t) in sum_by_labels(plan, &self.live, &self.ledger) {
            latency.add_latency(labels.clone(), layout, &t.runqueue, t.runqueue_ns);
            switches.add_counter(labels.clone().push("kind", "voluntary"), t.voluntary as f64);
            switches.add_counter(
                labels.clone().push("kind", "involuntary"),
                t.involuntary as f64,
            );
            offcpu.add_counter(
                labels.clone().push("state", "blocked"),
                t.blocked_ns as f64 / 1e9,
            );
            offcpu.add_counter(labels.push("state", "runqueue"), t.runqueue_ns as f64 / 1e9);
        }
        out.push(latency);
        out.push(switches);
        out.push(offcpu);
    }
}
