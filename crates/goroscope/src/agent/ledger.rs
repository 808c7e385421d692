//! Counters that survive the processes they count.
//!
//! The kernel keeps one row per live process; when a process exits the agent reads its row one
//! last time, adds it to the ledger under the process's owner (comm, cgroup, container) and
//! deletes the kernel row, so maps hold only live processes. A series without a `pid` label is
//! then "live rows of that owner + retired rows of that owner", which only ever grows: a
//! Prometheus counter that never resets while the agent runs, whatever the process churn.

use std::collections::HashMap;
use std::hash::Hash;

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

/// Retired values of one source, per owner and source-specific key (e.g. the syscall).
#[derive(Debug)]
pub struct Ledger<K, V> {
    retired: HashMap<(Owner, K), V>,
}

impl<K, V> Default for Ledger<K, V> {
    fn default() -> Self {
        Self {
            retired: HashMap::new(),
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

    /// Keeps only the retired values of owners `keep` accepts.
    pub fn retain_owners(&mut self, mut keep: impl FnMut(&Owner) -> bool) {
        self.retired.retain(|(owner, _), _| keep(owner));
    }

    /// Distinct retired (owner, key) pairs.
    pub fn len(&self) -> usize {
        self.retired.len()
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
