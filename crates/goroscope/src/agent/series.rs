//! From rows to series: the process part of every label set (which of comm, pid, cgroup and
//! container id the config asks for), and the sum of live and retired rows per label set.

use std::collections::HashMap;
use std::hash::Hash;

use goroscope_export::{Family, Labels};

use crate::agent::config::LabelSet;
use crate::agent::ledger::{Ledger, Owner, Tally};

/// Which process labels series carry, in this order: comm, pid, cgroup, container_id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LabelPlan {
    /// A `pid` label (one series per process instead of per name).
    pub pid: bool,
    /// A `cgroup` label.
    pub cgroup: bool,
    /// A `container_id` label.
    pub container_id: bool,
    /// With `pid`: series of processes that ended since the last export are kept (their last
    /// values; see the ledger's departed rows), and processes never exported on their own are
    /// summed per owner under an empty pid (the ledger's folded rows).
    pub departed: bool,
}

impl LabelPlan {
    /// The plan the config's label set describes.
    pub fn from_config(labels: &LabelSet) -> Self {
        Self {
            pid: labels.pid,
            cgroup: labels.cgroup,
            container_id: labels.container_id,
            departed: false,
        }
    }

    /// Every process label: one series per process, for an export that turns them into the
    /// process's resource (OTLP).
    pub fn every_label() -> Self {
        Self {
            pid: true,
            cgroup: true,
            container_id: true,
            departed: true,
        }
    }

    /// The process labels of a row of `owner`'s process `pid`.
    pub fn labels(&self, owner: &Owner, pid: Option<u32>) -> Labels {
        self.extend(Labels::new(), owner, pid)
    }

    /// `labels` followed by the process labels of a row of `owner`'s process `pid`.
    pub fn extend(&self, labels: Labels, owner: &Owner, pid: Option<u32>) -> Labels {
        let mut labels = labels.push("comm", owner.comm.clone());
        if self.pid {
            labels = labels.push("pid", pid.map_or_else(String::new, |p| p.to_string()));
        }
        if self.cgroup {
            labels = labels.push("cgroup", owner.cgroup.clone());
        }
        if self.container_id {
            labels = labels.push("container_id", owner.container_id.clone());
        }
        labels
    }
}

/// A live process's value for one key.
#[derive(Clone, Debug)]
pub struct LiveRow<K, V> {
    /// The process.
    pub pid: u32,
    /// Its owner.
    pub owner: Owner,
    /// The source's own key (syscall, direction, …).
    pub key: K,
    /// The value read from the kernel this cycle.
    pub value: V,
}

/// Sums live rows, values carried from an earlier life of the collector (per pid, like live
/// rows) and, unless series are per pid, retired rows, per (process labels, key).
/// With a `pid` label, the series of a process ends with it (it goes stale in Prometheus),
/// which is what a per-process series means.
pub fn sum_by_labels<K: Clone + Eq + Hash, V: Tally>(
    plan: &LabelPlan,
    live: &[LiveRow<K, V>],
    ledger: &Ledger<K, V>,
) -> HashMap<(Labels, K), V> {
    let mut out: HashMap<(Labels, K), V> = HashMap::with_capacity(live.len() + ledger.len());
    let per_export = plan.pid && plan.departed;
    for row in live {
        if per_export && !ledger.exports_on_its_own(row.pid) {
            // Found gone before a collection saw it running: it folds when retired, next cycle.
            continue;
        }
        out.entry((plan.labels(&row.owner, Some(row.pid)), row.key.clone()))
            .or_default()
            .add(&row.value);
    }
    if plan.pid && plan.departed {
        for (pid, owner, key, value) in ledger.departed() {
            out.entry((plan.labels(owner, Some(pid)), key.clone()))
                .or_default()
                .add(value);
        }
        // Processes never exported on their own: one series per owner, with an empty pid.
        for (owner, key, value) in ledger.folded() {
            out.entry((plan.labels(owner, None), key.clone()))
                .or_default()
                .add(value);
        }
    }
    for (pid, owner, key, value) in ledger.carried() {
        out.entry((plan.labels(owner, Some(pid)), key.clone()))
            .or_default()
            .add(value);
    }
    if !plan.pid {
        for (owner, key, value) in ledger.iter() {
            out.entry((plan.labels(owner, None), key.clone()))
                .or_default()
                .add(value);
        }
    }
    out
}

/// A family whose samples are summed per label set before they are added (several processes
/// can share a label set when series are not per pid).
pub struct Summed {
    family: Family,
    counter: bool,
    values: HashMap<Labels, f64>,
}

impl Summed {
    /// A summed counter family.
    pub fn counter(name: &'static str, help: &'static str) -> Self {
        Self {
            family: Family::counter(name, help),
            counter: true,
            values: HashMap::new(),
        }
    }

    /// A summed gauge family.
    pub fn gauge(name: &'static str, help: &'static str) -> Self {
        Self {
            family: Family::gauge(name, help),
            counter: false,
            values: HashMap::new(),
        }
    }

    /// Adds `value` to the sample of `labels`.
    pub fn add(&mut self, labels: Labels, value: f64) {
        *self.values.entry(labels).or_default() += value;
    }

    /// The family with one sample per label set.
    pub fn finish(mut self) -> Family {
        for (labels, value) in self.values {
            if self.counter {
                self.family.add_counter(labels, value);
            } else {
                self.family.add_gauge(labels, value);
            }
        }
        self.family
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(comm: &str) -> Owner {
        Owner {
            comm: comm.into(),
            cgroup: "/system.slice/web.service".into(),
            container_id: String::new(),
        }
    }

    #[test]
    fn live_and_retired_rows_of_one_name_make_one_series() {
        let plan = LabelPlan {
            pid: false,
            cgroup: true,
            container_id: false,
            departed: false,
        };
        let live = vec![
            LiveRow {
                pid: 10,
                owner: owner("web"),
                key: 0u32,
                value: 3u64,
            },
            LiveRow {
                pid: 11,
                owner: owner("web"),
                key: 0u32,
                value: 4u64,
            },
        ];
        let mut ledger = Ledger::default();
        ledger.retire(&owner("web"), &0u32, &5u64);
        let sums = sum_by_labels(&plan, &live, &ledger);
        assert_eq!(sums.len(), 1);
        let ((labels, _), total) = sums.into_iter().next().unwrap();
        assert_eq!(total, 12);
        let names: Vec<&str> = labels.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["comm", "cgroup"]);
    }

    #[test]
    fn with_a_pid_label_retired_rows_are_not_shown() {
        let plan = LabelPlan {
            pid: true,
            cgroup: false,
            container_id: false,
            departed: false,
        };
        let live = vec![LiveRow {
            pid: 10,
            owner: owner("web"),
            key: 0u32,
            value: 3u64,
        }];
        let mut ledger = Ledger::default();
        ledger.retire(&owner("web"), &0u32, &5u64);
        let sums = sum_by_labels(&plan, &live, &ledger);
        assert_eq!(sums.values().copied().collect::<Vec<u64>>(), vec![3]);
    }
}
