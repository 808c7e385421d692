//! Counters that survive the processes they count.
//!
//! The kernel keeps one row per live process; when a process exits the agent reads its row one
//! last time, adds it to the ledger under the process's owner (comm, cgroup, container) and
//! deletes the kernel row, so maps hold only live processes. A series without a `pid` label is
//! then "live rows of that owner + retired rows of that owner", which only ever grows: a
//! Prometheus counter that never resets while the agent runs, whatever the process churn.
//!
//! A collector turned off by a reload takes its kernel rows with it. What live processes had
//! counted then is *carried*: kept per (pid, key) and shown as part of that process's series
//! (with or without a `pid` label) until the process is retired, when it joins the ledger like
//! any retired row. So turning a collector off and on again resets nothing.

use std::collections::HashMap;
use std::hash::Hash;

use crate::agent::owners::{Fate, Owners};
use crate::agent::series::LiveRow;

/// Who a row belongs to, before the config decides which of it becomes labels.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Owner {
    /// The process's name (15 bytes at most).
    pub comm: String,
    /// Its cgroup v2 path ("" when unknown).
    pub cgroup: String,
    /// The container id found in the cgroup path ("" when none).
    pub container_id: String,
}

/// A value that can be summed: counters and histograms.
pub trait Tally: Clone + Default {
    /// Adds `other` into `self`.
    fn add(&mut self, other: &Self);
}

impl Tally for u64 {
    fn add(&mut self, other: &Self) {
        *self = self.saturating_add(*other);
    }
}

/// Retired values of one source, per owner and source-specific key (e.g. the syscall), and
/// values carried over from an earlier life of the collector, per live process.
#[derive(Debug)]
pub struct Ledger<K, V> {
    retired: HashMap<(Owner, K), V>,
    carried: HashMap<(u32, K), (Owner, V)>,
}

impl<K, V> Default for Ledger<K, V> {
    fn default() -> Self {
        Self {
            retired: HashMap::new(),
            carried: HashMap::new(),
        }
    }
}

impl<K: Clone + Eq + Hash, V: Tally> Ledger<K, V> {
    /// Adds a dead process's last values.
    pub fn retire(&mut self, owner: &Owner, key: &K, value: &V) {
        match self.retired.get_mut(&(owner.clone(), key.clone())) {
            Some(total) => total.add(value),
            None => {
                self.retired
                    .insert((owner.clone(), key.clone()), value.clone());
            }
        }
    }

    /// Every retired (owner, key, value).
    pub fn iter(&self) -> impl Iterator<Item = (&Owner, &K, &V)> {
        self.retired
            .iter()
            .map(|((owner, key), value)| (owner, key, value))
    }

    /// Every carried (pid, owner, key, value): what live processes counted in an earlier life
    /// of the collector.
    pub fn carried(&self) -> impl Iterator<Item = (u32, &Owner, &K, &V)> {
        self.carried
            .iter()
            .map(|((pid, key), (owner, value))| (*pid, owner, key, value))
    }

    /// Keeps only the retired and carried values of owners `keep` accepts.
    pub fn retain_owners(&mut self, mut keep: impl FnMut(&Owner) -> bool) {
        self.retired.retain(|(owner, _), _| keep(owner));
        self.carried.retain(|_, (owner, _)| keep(owner));
    }

    /// Keeps only the retired values `keep` accepts (e.g. edges idle too long are dropped).
    pub fn retain(&mut self, mut keep: impl FnMut(&Owner, &K, &V) -> bool) {
        self.retired
            .retain(|(owner, key), value| keep(owner, key, value));
    }

    /// Distinct retired (owner, key) pairs plus carried (pid, key) pairs.
    pub fn len(&self) -> usize {
        self.retired.len() + self.carried.len()
    }

    /// The collector is stopping: what its live rows counted is carried, per process, into its
    /// next life.
    pub fn carry(&mut self, live: impl IntoIterator<Item = LiveRow<K, V>>) {
        for row in live {
            match self.carried.get_mut(&(row.pid, row.key.clone())) {
                Some((_, total)) => total.add(&row.value),
                None => {
                    self.carried
                        .insert((row.pid, row.key), (row.owner, row.value));
                }
            }
        }
    }

    /// Retires carried values of processes that are gone (as rows are: one cycle after they
    /// were first seen gone) and drops those of processes the targets no longer include.
    pub fn settle(&mut self, owners: &mut Owners) {
        if self.carried.is_empty() {
            return;
        }
        let mut retiring = Vec::new();
        self.carried.retain(|(pid, key), (owner, value)| {
            let seen = owners.see(*pid, &owner.comm);
            if !seen.targeted {
                return false;
            }
            if seen.fate == Fate::Retire {
                retiring.push((owner.clone(), key.clone(), std::mem::take(value)));
                return false;
            }
            true
        });
        for (owner, key, value) in retiring {
            self.retire(&owner, &key, &value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retired_values_of_one_owner_add_up() {
        let mut ledger: Ledger<u32, u64> = Ledger::default();
        let web = Owner {
            comm: "web".into(),
            ..Owner::default()
        };
        ledger.retire(&web, &1, &5);
        ledger.retire(&web, &1, &7);
        ledger.retire(&web, &2, &1);
        let mut all: Vec<(u32, u64)> = ledger.iter().map(|(_, k, v)| (*k, *v)).collect();
        all.sort();
        assert_eq!(all, vec![(1, 12), (2, 1)]);
        assert_eq!(ledger.len(), 2);
    }
}
