//! The scheduler collector: attaches bpf/sched.bpf.c and turns its shared
//! rows, read in bounded batches, into one [`SchedRow`] per process when asked.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::mem::MaybeUninit;
use std::sync::{Mutex, PoisonError};

use goroscope_model::sched_stats::SchedRow;
use goroscope_model::until_nul;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, OpenObject};

use crate::attach::{attach_all, AttachMode};
use crate::batch::BatchReader;
use crate::error::BpfError;
use crate::evict;
use crate::filter::{configure_filter, fill_target_pids, ProcessFilter};
use crate::libbpf_log;
use crate::losses::Losses;
use crate::pod::{self, chars, Pod};
use crate::skel::sched::types::{sched_key, sched_stats};
use crate::skel::sched::{SchedSkel, SchedSkelBuilder};

const OBJECT: &str = "sched";
const ROWS: &str = "sched_rows";

// SAFETY: generated from C structs of integers and integer arrays only.
unsafe impl Pod for sched_key {}
// SAFETY: as above.
unsafe impl Pod for sched_stats {}

// The C side asserts the same sizes (_Static_assert in bpf/sched.h).
const _: () = assert!(std::mem::size_of::<sched_key>() == 16);
const _: () =
    assert!(std::mem::size_of::<sched_stats>() == 48 + 8 * goroscope_model::LATENCY_BUCKETS);

/// Scheduler statistics being collected in the kernel. Dropping it detaches.
pub struct SchedCollector<'obj> {
    skel: SchedSkel<'obj>,
    _links: Vec<Link>,
    mode: AttachMode,
    reader: Mutex<BatchReader>,
}

impl<'obj> SchedCollector<'obj> {
    /// Loads and attaches the scheduler programs for the processes `filter` selects.
    pub fn start(
        storage: &'obj mut MaybeUninit<OpenObject>,
        mode: AttachMode,
        filter: &ProcessFilter,
    ) -> Result<Self, BpfError> {
        let cpus = libbpf_rs::num_possible_cpus().unwrap_or(1);
        Self::start_with_rows(storage, mode, filter, row_capacity(cpus))
    }

    /// As [`start`](Self::start), with room for `rows` (process, exec) rows.
    pub fn start_with_rows(
        storage: &'obj mut MaybeUninit<OpenObject>,
        mode: AttachMode,
        filter: &ProcessFilter,
        rows: u32,
    ) -> Result<Self, BpfError> {
        let mut open = SchedSkelBuilder::default()
            .open(storage)
            .map_err(|source| BpfError::Open {
                object: OBJECT,
                source,
            })?;
        let btf = mode == AttachMode::TpBtf;
        let progs = &mut open.progs;
        progs.handle__sched_switch.set_autoload(btf);
        progs.handle__sched_wakeup.set_autoload(btf);
        progs.handle__sched_wakeup_new.set_autoload(btf);
        progs.handle__sched_switch_raw.set_autoload(!btf);
        progs.handle__sched_wakeup_raw.set_autoload(!btf);
        progs.handle__sched_wakeup_new_raw.set_autoload(!btf);
        let rodata = configure_filter!(open, OBJECT, filter);
        rodata.typed_args = btf;
        open.maps
            .sched_rows
            .set_max_entries(rows)
            .map_err(|source| BpfError::Map { map: ROWS, source })?;
        if btf {
            // Task storage holds the stamps; the tid-keyed fallback is unused.
            open.maps
                .thread_times_by_tid
                .set_max_entries(1)
                .map_err(|source| BpfError::Map {
                    map: "thread_times_by_tid",
                    source,
                })?;
        }

        libbpf_log::clear();
        let skel = open.load().map_err(|source| BpfError::Load {
            object: OBJECT,
            mode,
            source,
            verifier_log: libbpf_log::take_trimmed(),
        })?;
        fill_target_pids(&skel.maps.target_pids, &filter.pids)?;

        let progs = &skel.progs;
        let handlers = if btf {
            [
                &progs.handle__sched_switch,
                &progs.handle__sched_wakeup,
                &progs.handle__sched_wakeup_new,
            ]
        } else {
            [
                &progs.handle__sched_switch_raw,
                &progs.handle__sched_wakeup_raw,
                &progs.handle__sched_wakeup_new_raw,
            ]
        };
        let names = [
            "handle__sched_switch",
            "handle__sched_wakeup",
            "handle__sched_wakeup_new",
        ];
        let named: Vec<_> = names.into_iter().zip(handlers).collect();
        let links = attach_all(mode, &named)?;
        Ok(Self {
            skel,
            _links: links,
            mode,
            reader: Mutex::new(BatchReader::default()),
        })
    }

    /// How the programs are attached.
    pub fn mode(&self) -> AttachMode {
        self.mode
    }

    /// What was lost in the kernel so far.
    pub fn losses(&self) -> Result<Losses, BpfError> {
        Losses::read(&self.skel.maps.losses)
    }

    /// One row per process, summed over CPUs, unsorted. A process that
    /// exec'd is one row carrying its newest name.
    pub fn rows(&self) -> Result<Vec<SchedRow>, BpfError> {
        let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        // pid -> (exec_id of the row that named it, row)
        let mut by_pid: HashMap<u32, (u64, SchedRow)> = HashMap::new();
        reader.for_each(&self.skel.maps.sched_rows, ROWS, |key, value| {
            let key: sched_key = pod::read(key, ROWS)?;
            let stats: sched_stats = pod::read(value, ROWS)?;
            let mut row = SchedRow {
                pid: key.tgid,
                ..SchedRow::default()
            };
            add_stats(&mut row, &stats);
            match by_pid.entry(key.tgid) {
                Entry::Vacant(e) => {
                    e.insert((key.exec_id, row));
                }
                Entry::Occupied(mut e) => {
                    let (exec_id, merged) = e.get_mut();
                    merged.merge(&row);
                    if key.exec_id > *exec_id || merged.comm.is_empty() {
                        *exec_id = key.exec_id;
                        merged.comm = row.comm;
                    }
                }
            }
            Ok(())
        })?;
        drop(reader);
        Ok(by_pid.into_values().map(|(_, row)| row).collect())
    }

    /// Deletes the rows of these processes (they exited; the caller has
    /// folded their last values). Returns the number of processes whose
    /// rows were deleted. The last context switch of an exiting thread never
    /// re-creates a deleted row.
    pub fn forget(&self, pids: &[u32]) -> Result<usize, BpfError> {
        if pids.is_empty() {
            return Ok(0);
        }
        let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let deleted =
            reader.forget_by_tgid(&self.skel.maps.sched_rows, ROWS, &evict::sorted(pids))?;
        let forgotten: HashSet<u32> = deleted.into_iter().collect();
        Ok(forgotten.len())
    }
}

// forget() reads the tgid from the first four bytes of each key.
const _: () = assert!(std::mem::offset_of!(sched_key, tgid) == 0);

/// Rows the kernel keeps on any host, whatever its CPU count: rows are shared by all CPUs and
/// preallocated (~1.46 KB each with the kernel's overhead: 23 MiB), one per live process image,
/// so 16,384 covers a host of 5,000 processes plus the exited ones the agent has not retired
/// yet (~2,000 at 200 process starts per second).
pub const MAX_ROWS: u32 = 1 << 14;

/// Rows the kernel keeps on a host of `cpus` CPUs: the same for every count.
pub fn row_capacity(cpus: usize) -> u32 {
    let _ = cpus; // Shared rows: nothing is per CPU.
    MAX_ROWS
}

fn add_stats(row: &mut SchedRow, stats: &sched_stats) {
    row.voluntary_switches = row
        .voluntary_switches
        .saturating_add(stats.voluntary_switches);
    row.involuntary_switches = row
        .involuntary_switches
        .saturating_add(stats.involuntary_switches);
    row.runqueue_total_ns = row
        .runqueue_total_ns
        .saturating_add(stats.runqueue_total_ns);
    row.blocked_ns = row.blocked_ns.saturating_add(stats.blocked_ns);
    row.runqueue.add_bucket_counts(&stats.runqueue);
    let comm = until_nul(chars(&stats.comm));
    if row.comm.is_empty() && !comm.is_empty() {
        row.comm = String::from_utf8_lossy(comm).into_owned();
    }
}
