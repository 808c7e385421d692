//! Per-process scheduler statistics (context switches, run-queue latency,
//! blocked time), independent of BPF.

use crate::histogram::LatencyHistogram;

/// What the scheduler did with one process's threads.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SchedRow {
    /// Process (thread group) id.
    pub pid: u32,
    /// Command name of the process.
    pub comm: String,
    /// Times a thread left the CPU because it could not go on (it slept,
    /// blocked on I/O or a lock, or exited).
    pub voluntary_switches: u64,
    /// Times a thread left the CPU while it could have gone on (it was
    /// preempted or yielded).
    pub involuntary_switches: u64,
    /// Run-queue latency: how long a runnable thread waited for a CPU, in
    /// nanoseconds; its `total()` is the number of waits.
    pub runqueue: LatencyHistogram,
    /// Sum of the run-queue waits in nanoseconds.
    pub runqueue_total_ns: u64,
    /// Sum of the time threads spent blocked (off-CPU and not runnable,
    /// from a voluntary switch until woken) in nanoseconds.
    pub blocked_ns: u64,
}

impl SchedRow {
    /// Number of run-queue waits measured.
    pub fn runqueue_count(&self) -> u64 {
        self.runqueue.total()
    }

    /// Mean run-queue wait in nanoseconds, or `None` with no waits.
    pub fn runqueue_mean_ns(&self) -> Option<u64> {
        match self.runqueue_count() {
            0 => None,
            n => Some(self.runqueue_total_ns / n),
        }
    }

    /// Voluntary and involuntary switches together.
    pub fn switches(&self) -> u64 {
        self.voluntary_switches
            .saturating_add(self.involuntary_switches)
    }

    /// Adds the counters, sums and histogram of `other` into `self`
    /// (saturating). The identity fields (`pid`, `comm`) of `self` are kept.
    pub fn merge(&mut self, other: &SchedRow) {
        self.voluntary_switches = self
            .voluntary_switches
            .saturating_add(other.voluntary_switches);
        self.involuntary_switches = self
            .involuntary_switches
            .saturating_add(other.involuntary_switches);
        self.runqueue.merge(&other.runqueue);
        self.runqueue_total_ns = self
            .runqueue_total_ns
            .saturating_add(other.runqueue_total_ns);
        self.blocked_ns = self.blocked_ns.saturating_add(other.blocked_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: u32, voluntary: u64, involuntary: u64, waits: &[u64], blocked_ns: u64) -> SchedRow {
        let mut r = SchedRow {
            pid,
            comm: format!("proc{pid}"),
            voluntary_switches: voluntary,
            involuntary_switches: involuntary,
            blocked_ns,
            ..SchedRow::default()
        };
        for &ns in waits {
            r.runqueue.record(ns);
            r.runqueue_total_ns += ns;
        }
        r
    }

    #[test]
    fn merge_sums_and_keeps_identity() {
        let mut a = row(7, 3, 1, &[1000, 2000], 50);
        let b = row(8, 10, 20, &[4000], 1_000_000);
        a.merge(&b);
        assert_eq!(a.pid, 7);
        assert_eq!(a.comm, "proc7");
        assert_eq!(a.voluntary_switches, 13);
        assert_eq!(a.involuntary_switches, 21);
        assert_eq!(a.switches(), 34);
        assert_eq!(a.runqueue_count(), 3);
        assert_eq!(a.runqueue_total_ns, 7000);
        assert_eq!(a.runqueue_mean_ns(), Some(2333));
        assert_eq!(a.blocked_ns, 1_000_050);
        assert_eq!(a.runqueue.buckets()[40], 1); // 1000 ns: (861, 1024]
    }

    #[test]
    fn merge_with_empty_is_identity() {
        let a = row(1, 5, 6, &[300, 70_000], 9);
        let mut b = a.clone();
        b.merge(&SchedRow::default());
        assert_eq!(a, b);
        let mut empty = SchedRow::default();
        empty.merge(&a);
        assert_eq!(empty.pid, 0);
        assert_eq!(empty.runqueue, a.runqueue);
        assert_eq!(empty.voluntary_switches, 5);
    }

    #[test]
    fn merge_saturates() {
        let mut a = row(1, u64::MAX, u64::MAX, &[], u64::MAX);
        a.runqueue_total_ns = u64::MAX;
        a.merge(&row(1, 1, 1, &[5], 1));
        assert_eq!(a.voluntary_switches, u64::MAX);
        assert_eq!(a.involuntary_switches, u64::MAX);
        assert_eq!(a.switches(), u64::MAX);
        assert_eq!(a.runqueue_total_ns, u64::MAX);
        assert_eq!(a.blocked_ns, u64::MAX);
    }

    #[test]
    fn mean_of_no_waits_is_none() {
        assert_eq!(SchedRow::default().runqueue_mean_ns(), None);
        assert_eq!(SchedRow::default().runqueue_count(), 0);
    }
}
