//! Process lifecycle counts: execs, exits (by exit code or signal) and forks, from the kernel's
//! low-rate process events. The events are drained continuously between collections, so the
//! reader's queue never fills while the agent waits.

use std::collections::HashMap;
use std::time::Duration;

use goroscope_bpf::{EventCollector, EventStream, Losses};
use goroscope_export::{Exposition, Family};
use goroscope_model::{signal_name, EventDetail, ExitStatus};

use crate::agent::ledger::Owner;
use crate::agent::owners::Owners;
use crate::agent::probe::Source;
use crate::agent::series::LabelPlan;

/// What a counted event was.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Happened {
    Exec,
    Fork,
    /// Exit with its status label: the exit code, or the signal's name.
    Exit(String),
}

/// Counts kept per owner; bounded so a host that execs endlessly many distinct names cannot
/// grow the agent without limit (excess is counted as dropped).
const MAX_OWNERS: usize = 50_000;

/// The process event collector and its counts.
pub struct ProcessSource {
    collector: EventCollector<'static>,
    stream: EventStream,
    kept: ProcessKept,
}

/// What the process source counted, kept while its collector is off (see `probe.rs`).
#[derive(Default)]
pub struct ProcessKept {
    counts: HashMap<(Owner, Happened), u64>,
    decode_errors: u64,
    dropped_owners: u64,
    /// Reader queue drops of the collector's earlier lives.
    reader_drops: u64,
}

impl Source for ProcessSource {
    type Kept = ProcessKept;

    fn losses(&self) -> Option<anyhow::Result<Losses>> {
        Some(ProcessSource::losses(self))
    }

    fn park(mut self, owners: &mut Owners) -> ProcessKept {
        // Count what is already queued; what is still in the kernel's ring buffer is lost
        // with it (it is freed with the collector).
        if let Err(error) = self.drain(owners, Duration::from_millis(10)) {
            eprintln!("goroscope: agent: last read of process events failed: {error:#}");
        }
        self.kept.reader_drops = self.reader_drops();
        self.kept
    }
}

impl ProcessSource {
    /// Wraps a started collector and the stream of its events, continuing from what an earlier
    /// one counted.
    pub fn new(started: (EventCollector<'static>, EventStream), kept: ProcessKept) -> Self {
        let (collector, stream) = started;
        Self {
            collector,
            stream,
            kept,
        }
    }

    /// Forgets the counts of owners the new targets exclude.
    pub fn retain_owners(&mut self, mut keep: impl FnMut(&Owner) -> bool) {
        self.kept.counts.retain(|(owner, _), _| keep(owner));
    }

    /// Kernel-side losses so far.
    pub fn losses(&self) -> anyhow::Result<Losses> {
        Ok(self.collector.losses()?)
    }

    /// Events dropped between the ring buffer and the agent (the reader's queue was full).
    pub fn reader_drops(&self) -> u64 {
        self.stream
            .queue_drops()
            .saturating_add(self.kept.reader_drops)
    }

    /// Records the agent could not decode, plus counts not kept because of the owner cap.
    pub fn aggregation_drops(&self) -> u64 {
        self.kept
            .decode_errors
            .saturating_add(self.kept.dropped_owners)
    }

    /// Counts the events that arrive within `wait` (returns early when none are queued and
    /// the wait is over).
    pub fn drain(&mut self, owners: &mut Owners, wait: Duration) -> anyhow::Result<()> {
        let deadline = std::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let Some(raw) = self.stream.next(left)? else {
                // A timeout returns at the deadline; an early None means the reader is gone.
                if std::time::Instant::now() + Duration::from_millis(5) < deadline {
                    anyhow::bail!("the ring-buffer reader stopped");
                }
                return Ok(());
            };
            self.count(owners, &raw);
            if std::time::Instant::now() >= deadline {
                return Ok(());
            }
        }
    }

    /// Counts every event already queued, without waiting: a cycle starts with this, so the
    /// processes whose rows it reads are placed even when the last cycle overran the interval
    /// and left no time to wait.
    pub fn drain_queued(&mut self, owners: &mut Owners) -> anyhow::Result<()> {
        while let Some(raw) = self.stream.next(Duration::ZERO)? {
            self.count(owners, &raw);
        }
        Ok(())
    }

    fn count(&mut self, owners: &mut Owners, raw: &goroscope_bpf::RawEvent) {
        let Ok(event) = raw.decode() else {
            self.kept.decode_errors += 1;
            return;
        };
        let comm =
            String::from_utf8_lossy(goroscope_model::until_nul(event.header.comm)).into_owned();
        // Where it lives comes from the cgroup id the kernel stamped on the event: exact even
        // for a process that is gone before /proc could be read. A fork's child starts in its
        // parent's cgroup.
        let cgroup_id = event.header.cgroup_id;
        let happened = match event.detail {
            EventDetail::Exec { .. } => {
                owners.place_event(event.header.pid, cgroup_id);
                Happened::Exec
            }
            EventDetail::Fork { child_pid } => {
                owners.place_event(child_pid, cgroup_id);
                Happened::Fork
            }
            EventDetail::Exit { status, .. } => {
                owners.place_event(event.header.pid, cgroup_id);
                Happened::Exit(status_label(status))
            }
            _ => return,
        };
        let (owner, targeted) = owners.owner_of_event(event.header.pid, &comm);
        if !targeted {
            return;
        }
        let key = (owner, happened);
        let kept = &mut self.kept;
        if let Some(count) = kept.counts.get_mut(&key) {
            *count += 1;
        } else if kept.counts.len() < MAX_OWNERS {
            kept.counts.insert(key, 1);
        } else {
            kept.dropped_owners += 1;
        }
    }

    /// Adds the process families.
    pub fn families(&self, plan: &LabelPlan, out: &mut Exposition) {
        let plan = LabelPlan {
            pid: false,
            ..*plan
        };
        let mut execs = Family::counter(
            "goroscope_process_execs_total",
            "Programs executed (successful exec), by the name of the new program.",
        );
        let mut exits = Family::counter(
            "goroscope_process_exits_total",
            "Processes that exited, by name and status: the exit code, or the signal that \
             killed them.",
        );
        let mut forks = Family::counter(
            "goroscope_process_forks_total",
            "New processes created (fork, clone without CLONE_THREAD), by the parent's name.",
        );
        let mut sums: HashMap<(goroscope_export::Labels, &Happened), u64> = HashMap::new();
        for ((owner, happened), count) in &self.kept.counts {
            *sums
                .entry((plan.labels(owner, None), happened))
                .or_default() += count;
        }
        for ((labels, happened), count) in sums {
            match happened {
                Happened::Exec => execs.add_counter(labels, count as f64),
                Happened::Fork => forks.add_counter(labels, count as f64),
                Happened::Exit(status) => {
                    exits.add_counter(labels.push("status", status.clone()), count as f64)
                }
            }
        }
        out.push(execs);
        out.push(exits);
        out.push(forks);
    }
}

fn status_label(status: ExitStatus) -> String {
    if status.signal == 0 {
        status.exit_code.to_string()
    } else {
        signal_name(status.signal)
            .map_or_else(|| format!("signal_{}", status.signal), str::to_owned)
    }
}
