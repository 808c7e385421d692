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
//!
//! While an OTLP export of metrics is on (`set_keep_departed`), OTLP series are per process,
//! and a process's last counts must still leave the agent when it exits between two exports.
//! Which way they go is decided once per process, so no count is exported twice:
//!
//! - A process seen running at a collection ([`individual_processes`], then
//!   [`Ledger::mark_exported`]) has a resource of its own: its retired row is also kept as
//!   *departed*, with its pid, until the next export has sent it under that resource. At most
//!   [`MAX_DEPARTED`] rows wait per ledger; rows beyond are counted in
//!   [`Ledger::departed_lost`] (their values still reach the owner's total).
//! - A process that started and ended between two collections (the churn of short-lived
//!   commands) never had one: its retired row is *folded* into a per-owner total that only
//!   grows, sent under the host without a pid. Hundreds of such processes a second then cost
//!   one series per owner and key, in the agent's memory, in each request and in the user's
//!   backend, instead of a resource each.

use std::collections::{HashMap, HashSet};
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
    /// Keyed by owner too: a process's rows from before an exec carry the old name.
    carried: HashMap<(u32, Owner, K), V>,
    /// Rows retired since departed rows were last cleared, per process exported on its own.
    departed: HashMap<(u32, Owner, K), V>,
    /// Retired rows of processes never exported on their own, per owner, since departed rows
    /// were last turned on.
    folded: HashMap<(Owner, K), V>,
    /// Processes with a resource of their own, as of the last [`Ledger::mark_exported`].
    exported: HashSet<u32>,
    /// Departed rows not kept for want of room, ever.
    departed_lost: u64,
    /// Whether departed rows are kept at all (an OTLP export of metrics is on).
    keep_departed: bool,
}

/// The processes that have a resource of their own in an OTLP export, decided at every
/// collection from `live` (`(pid, alive)`: every process with live rows in any source, and
/// whether it still runs) and the `previous` decision: one seen running, or that already had
/// its own resource, keeps it while it has live rows; one found gone before it was ever seen
/// running never gets one. Deciding for the process, not per source, keeps all of a
/// process's series under one resource.
pub fn individual_processes(
    live: impl IntoIterator<Item = (u32, bool)>,
    previous: &HashSet<u32>,
) -> HashSet<u32> {
    live.into_iter()
        .filter(|(pid, alive)| *alive || previous.contains(pid))
        .map(|(pid, _)| pid)
        .collect()
}

/// Most departed rows one ledger keeps between two exports.
pub const MAX_DEPARTED: usize = 16_384;

impl<K, V> Default for Ledger<K, V> {
    fn default() -> Self {
        Self {
            retired: HashMap::new(),
            carried: HashMap::new(),
            departed: HashMap::new(),
            folded: HashMap::new(),
            exported: HashSet::new(),
            departed_lost: 0,
            keep_departed: false,
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

    /// Adds the last values of process `pid`, which has ended; they stay departed (see the
    /// module doc) until [`Ledger::clear_departed`], or are folded when the process was never
    /// exported on its own.
    pub fn retire_process(&mut self, pid: u32, owner: &Owner, key: &K, value: &V) {
        self.retire(owner, key, value);
        if !self.keep_departed {
            return;
        }
        if !self.exported.contains(&pid) {
            match self.folded.get_mut(&(owner.clone(), key.clone())) {
                Some(total) => total.add(value),
                None => {
                    self.folded
                        .insert((owner.clone(), key.clone()), value.clone());
                }
            }
            return;
        }
        let room = self.departed.len() < MAX_DEPARTED;
        let at = (pid, owner.clone(), key.clone());
        match self.departed.get_mut(&at) {
            Some(total) => total.add(value),
            None if room => {
                self.departed.insert(at, value.clone());
            }
            None => self.departed_lost += 1,
        }
    }

    /// Departed rows not kept (more than [`MAX_DEPARTED`] waited), ever.
    pub fn departed_lost(&self) -> u64 {
        self.departed_lost
    }

    /// Every departed (pid, owner, key, value): rows of processes that ended since
    /// [`Ledger::clear_departed`].
    pub fn departed(&self) -> impl Iterator<Item = (u32, &Owner, &K, &V)> {
        self.departed
            .iter()
            .map(|((pid, owner, key), value)| (*pid, owner, key, value))
    }

    /// Every folded (owner, key, value): what processes never exported on their own counted.
    pub fn folded(&self) -> impl Iterator<Item = (&Owner, &K, &V)> {
        self.folded
            .iter()
            .map(|((owner, key), value)| (owner, key, value))
    }

    /// The processes in `individual` (see [`individual_processes`]) have their own resource:
    /// their rows are exported per process and, when they end, their last values are departed
    /// rows, not folded. Carried rows are exported per process too, and the processes whose
    /// departed rows wait now keep theirs until those are sent; any other process marked
    /// before has ended and been sent, and is forgotten.
    pub fn mark_exported(&mut self, individual: &HashSet<u32>) {
        if !self.keep_departed {
            return;
        }
        let mut exported = individual.clone();
        exported.extend(self.carried.keys().map(|(pid, _, _)| *pid));
        exported.extend(self.departed.keys().map(|(pid, _, _)| *pid));
        self.exported = exported;
    }

    /// Whether an export sends the rows of `pid` under its own resource: always, unless
    /// departed rows are kept (an OTLP export is on) and the last [`Ledger::mark_exported`]
    /// left it out (it was found gone before it was ever seen running: what it counted folds
    /// when it is retired).
    pub fn exports_on_its_own(&self, pid: u32) -> bool {
        !self.keep_departed || self.exported.contains(&pid)
    }

    /// Forgets departed rows (they were exported), and the room a burst of them took. Their
    /// processes stay marked until the next [`Ledger::mark_exported`], so a row of theirs
    /// retired before it still goes under their resource.
    pub fn clear_departed(&mut self) {
        if self.departed.capacity() > 1024 {
            self.departed = HashMap::new();
        } else {
            self.departed.clear();
        }
    }

    /// Whether rows of ended processes are kept as departed until [`Ledger::clear_departed`]
    /// or folded (only an OTLP export needs them); turning it off forgets those kept.
    pub fn set_keep_departed(&mut self, keep: bool) {
        self.keep_departed = keep;
        if !keep {
            self.departed = HashMap::new();
            self.folded = HashMap::new();
            self.exported = HashSet::new();
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
            .map(|((pid, owner, key), value)| (*pid, owner, key, value))
    }

    /// Keeps only the retired and carried values of owners `keep` accepts.
    pub fn retain_owners(&mut self, mut keep: impl FnMut(&Owner) -> bool) {
        self.retired.retain(|(owner, _), _| keep(owner));
        self.carried.retain(|(_, owner, _), _| keep(owner));
        self.departed.retain(|(_, owner, _), _| keep(owner));
        self.folded.retain(|(owner, _), _| keep(owner));
    }

    /// Keeps only the retired (and folded) values `keep` accepts (e.g. edges idle too long
    /// are dropped).
    pub fn retain(&mut self, mut keep: impl FnMut(&Owner, &K, &V) -> bool) {
        self.retired
            .retain(|(owner, key), value| keep(owner, key, value));
        self.folded
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
            self.carried
                .entry((row.pid, row.owner, row.key))
                .or_default()
                .add(&row.value);
        }
    }

    /// Retires carried values of processes that are gone (as rows are: one cycle after they
    /// were first seen gone) and drops those of processes the targets no longer include.
    pub fn settle(&mut self, owners: &mut Owners) {
        if self.carried.is_empty() {
            return;
        }
        let mut retiring = Vec::new();
        self.carried.retain(|(pid, owner, key), value| {
            let seen = owners.see(*pid, &owner.comm);
            if !seen.targeted {
                return false;
            }
            // The owner was fixed when the value was carried: no need to wait for a place.
            let gone = seen.fate == Fate::Pending && owners.gone_before(*pid);
            if seen.fate == Fate::Retire || gone {
                retiring.push((*pid, owner.clone(), key.clone(), std::mem::take(value)));
                return false;
            }
            true
        });
        for (pid, owner, key, value) in retiring {
            self.retire_process(pid, &owner, &key, &value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::config::Targets;
    use crate::agent::series::{sum_by_labels, LabelPlan};
    use goroscope_host::ProcFs;

    /// A /proc with nothing in it: every pid is gone.
    fn empty_proc(label: &str) -> (std::path::PathBuf, Owners) {
        let dir =
            std::env::temp_dir().join(format!("goroscope-ledger-{label}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let owners = Owners::new(ProcFs::new(&dir), &dir, Targets::default());
        (dir, owners)
    }

    fn row(pid: u32, comm: &str, key: u32, value: u64) -> LiveRow<u32, u64> {
        LiveRow {
            pid,
            owner: Owner {
                comm: comm.into(),
                cgroup: "/a".into(),
                ..Owner::default()
            },
            key,
            value,
        }
    }

    #[test]
    fn carried_values_stay_in_their_series_until_the_process_is_retired() {
        let (dir, mut owners) = empty_proc("carry");
        let mut ledger: Ledger<u32, u64> = Ledger::default();
        // Pid 7's rows from before (bash) and after (dd) an exec, same syscall: two owners.
        ledger.carry([row(7, "bash", 1, 3), row(7, "dd", 1, 5), row(7, "dd", 2, 1)]);
        ledger.carry([row(7, "dd", 1, 10)]);
        let per_pid = LabelPlan {
            pid: true,
            cgroup: true,
            container_id: false,
            departed: false,
        };
        let by_name = LabelPlan {
            pid: false,
            ..per_pid
        };
        let totals = |ledger: &Ledger<u32, u64>, plan: &LabelPlan| {
            let mut all: Vec<(String, u32, u64)> = sum_by_labels(plan, &[], ledger)
                .into_iter()
                .map(|((labels, key), v)| {
                    let comm = labels.iter().next().map(|(_, c)| c.to_owned()).unwrap();
                    (comm, key, v)
                })
                .collect();
            all.sort();
            all
        };
        let expected = vec![
            ("bash".to_owned(), 1, 3),
            ("dd".to_owned(), 1, 15),
            ("dd".to_owned(), 2, 1),
        ];
        assert_eq!(totals(&ledger, &per_pid), expected);
        assert_eq!(totals(&ledger, &by_name), expected);
        // Pid 7 is gone: the first cycle that sees it keeps it carried, the next retires it.
        for _ in 0..2 {
            owners.begin_cycle();
            ledger.settle(&mut owners);
            owners.end_cycle();
            assert_eq!(
                totals(&ledger, &by_name),
                expected,
                "a settle changed a total"
            );
        }
        assert_eq!(
            ledger.carried().count(),
            0,
            "still carried after two cycles"
        );
        assert!(
            totals(&ledger, &per_pid).is_empty(),
            "a dead pid's series remain"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn departed_rows_wait_for_an_export_up_to_a_bound_and_the_rest_are_counted() {
        let mut ledger: Ledger<u32, u64> = Ledger::default();
        let web = Owner {
            comm: "web".into(),
            ..Owner::default()
        };
        // Not kept unless asked for (no OTLP export).
        ledger.retire_process(7, &web, &1, &5);
        assert_eq!(ledger.departed().count(), 0);
        ledger.set_keep_departed(true);
        ledger.mark_exported(&HashSet::from([7]));
        ledger.retire_process(7, &web, &1, &5);
        ledger.retire_process(7, &web, &1, &2);
        let departed: Vec<(u32, u32, u64)> = ledger
            .departed()
            .map(|(pid, _, k, v)| (pid, *k, *v))
            .collect();
        assert_eq!(departed, vec![(7, 1, 7)]);
        ledger.clear_departed();
        assert_eq!(ledger.departed().count(), 0);
        let over = MAX_DEPARTED as u32 + 3;
        ledger.mark_exported(&(0..over).collect());
        for pid in 0..over {
            ledger.retire_process(pid, &web, &1, &1);
        }
        assert_eq!(ledger.departed().count(), MAX_DEPARTED);
        assert_eq!(ledger.departed_lost(), 3);
        // Every value still reaches the owner's retired total.
        let total: u64 = ledger.iter().map(|(_, _, v)| *v).sum();
        assert_eq!(total, 5 + 7 + u64::from(over));
    }

    #[test]
    fn processes_never_exported_on_their_own_fold_per_owner_and_no_count_goes_both_ways() {
        let mut ledger: Ledger<u32, u64> = Ledger::default();
        let web = Owner {
            comm: "web".into(),
            cgroup: "/a".into(),
            ..Owner::default()
        };
        let sh = Owner {
            comm: "sh".into(),
            cgroup: "/a".into(),
            ..Owner::default()
        };
        ledger.set_keep_departed(true);
        // Pid 7 was live at an export; 8 and 9 started and ended before the next one.
        ledger.mark_exported(&HashSet::from([7]));
        ledger.retire_process(7, &web, &1, &5);
        ledger.retire_process(8, &sh, &1, &3);
        ledger.retire_process(9, &sh, &1, &4);
        ledger.retire_process(9, &sh, &2, &1);
        let plan = LabelPlan::every_label();
        // (comm, pid, key, value) of every series `live` rows and the ledger make, sorted.
        let series_with = |ledger: &Ledger<u32, u64>, live: &[LiveRow<u32, u64>]| {
            let mut all: Vec<(String, String, u32, u64)> = sum_by_labels(&plan, live, ledger)
                .into_iter()
                .map(|((labels, key), v)| {
                    let get = |name| labels.get(name).unwrap_or("?").to_owned();
                    (get("comm"), get("pid"), key, v)
                })
                .collect();
            all.sort();
            all
        };
        let series = |ledger: &Ledger<u32, u64>| series_with(ledger, &[]);
        let s = |comm: &str, pid: &str, key, v| (comm.to_owned(), pid.to_owned(), key, v);
        assert_eq!(
            series(&ledger),
            vec![s("sh", "", 1, 7), s("sh", "", 2, 1), s("web", "7", 1, 5)]
        );
        // After the export: pid 7's last values are gone (sent), the folded totals stay and
        // only grow; the next collection no longer sees pid 7, so a new process given pid 7
        // that ends before a collection sees it folds.
        ledger.clear_departed();
        // Until the next collection marks again, a row of pid 7 retired late still goes under
        // its resource.
        ledger.retire_process(7, &web, &2, &1);
        let late: Vec<(u32, u32, u64)> = ledger
            .departed()
            .map(|(pid, _, k, v)| (pid, *k, *v))
            .collect();
        assert_eq!(late, vec![(7, 2, 1)]);
        ledger.clear_departed();
        ledger.mark_exported(&HashSet::new());
        ledger.retire_process(7, &web, &1, &2);
        ledger.retire_process(10, &sh, &1, &1);
        assert_eq!(
            series(&ledger),
            vec![s("sh", "", 1, 8), s("sh", "", 2, 1), s("web", "", 1, 2)]
        );
        // A process marked at one export that is not live at the next (and has nothing
        // departed) is forgotten: the set of exported pids does not grow with churn.
        ledger.mark_exported(&HashSet::from([20, 21]));
        ledger.mark_exported(&HashSet::from([21]));
        ledger.retire_process(20, &web, &1, &1);
        ledger.retire_process(21, &web, &1, &1);
        assert_eq!(
            series(&ledger),
            vec![
                s("sh", "", 1, 8),
                s("sh", "", 2, 1),
                s("web", "", 1, 3),
                s("web", "21", 1, 1)
            ]
        );
        // Every value still reaches the owner's retired total (Prometheus' series).
        let total: u64 = ledger.iter().map(|(_, _, v)| *v).sum();
        assert_eq!(total, 5 + 3 + 4 + 1 + 1 + 2 + 1 + 1 + 1);
        // Live rows: those of a process marked go under its pid; those of one left out (found
        // gone in the cycle the export reads) are not exported now, and fold when retired.
        ledger.mark_exported(&individual_processes(
            [(30, true), (31, false)],
            &HashSet::new(),
        ));
        let live = [row(30, "web", 1, 4), row(31, "web", 1, 6)];
        let with_live: Vec<_> = series_with(&ledger, &live)
            .into_iter()
            .filter(|(_, pid, _, _)| pid.starts_with('3'))
            .collect();
        assert_eq!(with_live, vec![s("web", "30", 1, 4)]);
        // Without an OTLP export every live row is shown, per pid when asked.
        let per_pid = LabelPlan {
            departed: false,
            ..plan
        };
        let mut off: Ledger<u32, u64> = Ledger::default();
        off.mark_exported(&HashSet::from([30]));
        assert_eq!(sum_by_labels(&per_pid, &live, &off).len(), 2);
        // A process exported on its own and then found gone stays exported on its own until
        // its last values are sent: nothing of it folds, so nothing is counted twice.
        let previous = HashSet::from([30]);
        ledger.mark_exported(&individual_processes([(30, false)], &previous));
        ledger.retire_process(30, &web, &1, &4);
        let departed: Vec<(u32, u64)> = ledger.departed().map(|(pid, _, _, v)| (pid, *v)).collect();
        assert!(departed.contains(&(30, 4)), "{departed:?}");
        assert!(
            !ledger
                .folded()
                .any(|(owner, _, v)| owner.comm == "web" && *v > 3),
            "pid 30 folded"
        );
        // Turning the export off forgets what only it needed.
        ledger.set_keep_departed(false);
        assert_eq!(ledger.folded().count(), 0);
        assert_eq!(ledger.departed().count(), 0);
    }

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
