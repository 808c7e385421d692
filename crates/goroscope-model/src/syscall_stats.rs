//! Aggregated per-process, per-syscall statistics, independent of BPF.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::collections::BTreeMap;

use crate::histogram::LatencyHistogram;
use crate::syscall_names::syscall_name;

/// Aggregated statistics of one system call made by one process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SyscallRow {
    /// Process (thread group) id.
    pub pid: u32,
    /// Command name of the process, as text (bytes that are not UTF-8 become U+FFFD): for
    /// labels and grouping. Set both names with [`SyscallRow::set_comm`].
    pub comm: String,
    /// The command name's exact bytes (for output that must not lose them).
    pub comm_bytes: Vec<u8>,
    /// x86_64 system call number.
    pub syscall_nr: u32,
    /// Number of completed calls.
    pub count: u64,
    /// Number of calls that returned an error.
    pub error_count: u64,
    /// Number of failed calls per errno.
    pub errors: BTreeMap<u32, u64>,
    /// Sum of call latencies in nanoseconds: measured exactly while every call is timed, else
    /// estimated from the timed calls, each weighted by the calls it stands for.
    pub total_ns: u64,
    /// Largest latency of a timed call, in nanoseconds.
    pub max_ns: u64,
    /// Calls whose latency was measured (all of them unless timing was sampled).
    pub timed: u64,
    /// Distribution of call latencies, weighted like `total_ns`: its count is the number of
    /// calls up to the last timed one, and equals `count` while every call is timed.
    pub histogram: LatencyHistogram,
}

impl SyscallRow {
    /// Returns the system call's name, or `syscall_<nr>` when unknown.
    pub fn syscall_name(&self) -> Cow<'static, str> {
        match syscall_name(self.syscall_nr) {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(format!("syscall_{}", self.syscall_nr)),
        }
    }

    /// Sets the command name from the kernel's bytes: exact in `comm_bytes`, as text in
    /// `comm`.
    pub fn set_comm(&mut self, bytes: &[u8]) {
        self.comm = String::from_utf8_lossy(bytes).into_owned();
        self.comm_bytes = bytes.to_vec();
    }

    /// The command name's exact bytes: `comm_bytes`, or `comm` for a row built from text.
    pub fn exact_comm(&self) -> &[u8] {
        if self.comm_bytes.is_empty() {
            self.comm.as_bytes()
        } else {
            &self.comm_bytes
        }
    }

    /// Returns the estimated median latency in nanoseconds (an upper bound,
    /// see [`LatencyHistogram::quantile_ns`]), or `None` with no samples.
    pub fn p50_ns(&self) -> Option<u64> {
        self.histogram.quantile_ns(0.5, self.max_ns)
    }

    /// Returns the estimated 99th percentile latency in nanoseconds (an
    /// upper bound, see [`LatencyHistogram::quantile_ns`]), or `None` with
    /// no samples.
    pub fn p99_ns(&self) -> Option<u64> {
        self.histogram.quantile_ns(0.99, self.max_ns)
    }

    /// Adds the counts, errors, total time and histogram of `other` into
    /// `self` (saturating) and keeps the larger maximum. The identity fields
    /// (`pid`, `comm`, `syscall_nr`) of `self` are kept.
    pub fn merge(&mut self, other: &SyscallRow) {
        self.count = self.count.saturating_add(other.count);
        self.error_count = self.error_count.saturating_add(other.error_count);
        for (&errno, &count) in &other.errors {
            let entry = self.errors.entry(errno).or_insert(0);
            *entry = entry.saturating_add(count);
        }
        self.total_ns = self.total_ns.saturating_add(other.total_ns);
        self.max_ns = self.max_ns.max(other.max_ns);
        self.timed = self.timed.saturating_add(other.timed);
        self.histogram.merge(&other.histogram);
    }
}

/// Orders rows by descending total time, then descending count, then
/// ascending pid, syscall number and command name, so the order is
/// deterministic.
fn total_time_order(a: &SyscallRow, b: &SyscallRow) -> Ordering {
    b.total_ns
        .cmp(&a.total_ns)
        .then_with(|| b.count.cmp(&a.count))
        .then_with(|| a.pid.cmp(&b.pid))
        .then_with(|| a.syscall_nr.cmp(&b.syscall_nr))
        .then_with(|| a.comm.cmp(&b.comm))
}

/// Sorts rows by descending total time; ties are broken by descending
/// count, then ascending pid, syscall number and command name.
pub fn sort_by_total_time(rows: &mut [SyscallRow]) {
    rows.sort_by(total_time_order);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(pid: u32, nr: u32, count: u64, total_ns: u64) -> SyscallRow {
        SyscallRow {
            pid,
            comm: format!("proc{pid}"),
            syscall_nr: nr,
            count,
            total_ns,
            ..SyscallRow::default()
        }
    }

    #[test]
    fn names() {
        assert_eq!(row(1, 0, 0, 0).syscall_name(), "read");
        assert_eq!(row(1, 257, 0, 0).syscall_name(), "openat");
        assert!(matches!(row(1, 257, 0, 0).syscall_name(), Cow::Borrowed(_)));
        assert_eq!(row(1, 9999, 0, 0).syscall_name(), "syscall_9999");
    }

    #[test]
    fn percentiles() {
        let mut r = row(1, 0, 0, 0);
        assert_eq!(r.p50_ns(), None);
        assert_eq!(r.p99_ns(), None);
        for ns in 1..=100u64 {
            r.histogram.record(ns * 1000);
            r.max_ns = r.max_ns.max(ns * 1000);
        }
        // Rank 50 is 50_000 in (2^15.5, 2^15.75] = (46340.95, 55108.99].
        assert_eq!(r.p50_ns(), Some(55_108));
        // Rank 99 is 99_000 in (2^16.5, 2^16.75] = (92681.90, 110217.97]: clamped.
        assert_eq!(r.p99_ns(), Some(100_000));
    }

    #[test]
    fn merge_sums_and_maxes() {
        let mut a = row(7, 257, 3, 300);
        a.error_count = 1;
        a.errors.insert(2, 1);
        a.max_ns = 200;
        a.histogram.record(200);
        let mut b = row(8, 0, 5, 1000);
        b.error_count = 3;
        b.errors.insert(2, 2);
        b.errors.insert(13, 1);
        b.max_ns = 150;
        b.histogram.record(150);
        b.histogram.record(150);

        a.merge(&b);
        assert_eq!(a.pid, 7);
        assert_eq!(a.comm, "proc7");
        assert_eq!(a.syscall_nr, 257);
        assert_eq!(a.count, 8);
        assert_eq!(a.error_count, 4);
        assert_eq!(a.errors, BTreeMap::from([(2, 3), (13, 1)]));
        assert_eq!(a.total_ns, 1300);
        assert_eq!(a.max_ns, 200);
        assert_eq!(a.histogram.total(), 3);
    }

    #[test]
    fn merge_saturates() {
        let mut a = row(1, 0, u64::MAX, u64::MAX);
        a.merge(&row(1, 0, 1, 1));
        assert_eq!(a.count, u64::MAX);
        assert_eq!(a.total_ns, u64::MAX);
    }

    #[test]
    fn sort_order_is_deterministic() {
        let mut rows = vec![
            row(2, 1, 10, 500),
            row(1, 0, 10, 500),
            row(1, 1, 10, 500),
            row(3, 0, 20, 500),
            row(9, 9, 1, 9000),
            row(1, 0, 1, 1),
        ];
        sort_by_total_time(&mut rows);
        let order: Vec<(u32, u32, u64)> = rows
            .iter()
            .map(|r| (r.pid, r.syscall_nr, r.total_ns))
            .collect();
        assert_eq!(
            order,
            vec![
                (9, 9, 9000),
                (3, 0, 500),
                (1, 0, 500),
                (1, 1, 500),
                (2, 1, 500),
                (1, 0, 1),
            ]
        );
    }
}
