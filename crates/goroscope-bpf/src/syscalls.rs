//! The syscall collector: attaches bpf/syscalls.bpf.c and turns its shared
//! row maps, read in bounded batches, and the counts waiting in its per-thread
//! slots into one row per (process, syscall) when asked.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::sync::{Mutex, PoisonError};

use goroscope_model::{until_nul, SyscallRow};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, OpenObject};

use crate::attach::{attach_all, AttachMode};
use crate::batch::BatchReader;
use crate::error::BpfError;
use crate::evict;
use crate::filter::{configure_filter, fill_target_pids, ProcessFilter};
use crate::libbpf_log;
use crate::losses::Losses;
use crate::pod::{self, chars};
use crate::skel::syscalls::types::{syscall_error_key, syscall_key, syscall_stats, syscall_thread};
use crate::skel::syscalls::{SyscallsSkel, SyscallsSkelBuilder};
use crate::syscall_threads::{PendingCounts, ThreadSlots};

const OBJECT: &str = "syscalls";

/// Syscall statistics being collected in the kernel. Dropping it detaches.
pub struct SyscallCollector<'obj> {
    // Field order is drop order: detach first, then the maps.
    _links: Vec<Link>,
    threads: ThreadSlots,
    skel: SyscallsSkel<'obj>,
    options: SyscallOptions,
    reader: Mutex<Reader>,
}

/// What reading needs exclusively: the batch buffers and the counts swapped out of the slots.
#[derive(Default)]
struct Reader {
    batch: BatchReader,
    pending: PendingCounts,
}

/// How the syscall collector is set up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SyscallOptions {
    /// How big the kernel maps are.
    pub sizing: Sizing,
    /// Which calls are timed.
    pub timing: Timing,
}

/// Which calls have their latency measured. Every call is counted, with its errors, either
/// way; timing is what costs (two clock reads and a shared-row update per timed call).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timing {
    /// Every call (costs ~1.5× more than sampling on a thread making millions of calls per
    /// second; nothing on one making thousands).
    EveryCall,
    /// At most this many calls per second per thread, chosen at random; each stands for the
    /// calls since the previous one in the latency figures.
    PerThreadPerSecond(u32),
}

/// The default timing budget: calls timed per second per thread.
pub const DEFAULT_TIMED_PER_THREAD_PER_SECOND: u32 = 10_000;

impl Default for Timing {
    fn default() -> Self {
        Self::PerThreadPerSecond(DEFAULT_TIMED_PER_THREAD_PER_SECOND)
    }
}

impl Timing {
    /// The least time between two timed calls of one thread, in ns (0: every call).
    fn interval_ns(self) -> u64 {
        match self {
            Self::EveryCall => 0,
            Self::PerThreadPerSecond(0) => 1_000_000_000,
            Self::PerThreadPerSecond(n) => 1_000_000_000 / u64::from(n),
        }
    }
}

impl<'obj> SyscallCollector<'obj> {
    /// Loads and attaches the syscall programs for the processes `filter` selects, with the
    /// maps sized for this machine ([`Sizing::for_cpus`]) and the default [`Timing`].
    ///
    /// The handlers are raw tracepoints whatever `mode` says: they hash the address of the
    /// thread's syscall frame, which tp_btf would type as a pointer.
    pub fn start(
        storage: &'obj mut MaybeUninit<OpenObject>,
        mode: AttachMode,
        filter: &ProcessFilter,
    ) -> Result<Self, BpfError> {
        let _ = mode;
        Self::start_with(storage, filter, SyscallOptions::default())
    }

    /// As [`start`](Self::start), with the maps sized by `sizing` (tests size them for a
    /// simulated host).
    pub fn start_sized(
        storage: &'obj mut MaybeUninit<OpenObject>,
        mode: AttachMode,
        filter: &ProcessFilter,
        sizing: Sizing,
    ) -> Result<Self, BpfError> {
        let _ = mode;
        let options = SyscallOptions {
            sizing,
            ..SyscallOptions::default()
        };
        Self::start_with(storage, filter, options)
    }

    /// Loads and attaches the syscall programs set up as `options` says.
    pub fn start_with(
        storage: &'obj mut MaybeUninit<OpenObject>,
        filter: &ProcessFilter,
        options: SyscallOptions,
    ) -> Result<Self, BpfError> {
        let mode = AttachMode::RawTp;
        let sizing = options.sizing;
        let mut open = SyscallsSkelBuilder::default()
            .open(storage)
            .map_err(|source| BpfError::Open {
                object: OBJECT,
                source,
            })?;
        open.progs.floor__sys_enter.set_autoload(false);
        open.progs.floor__sys_exit.set_autoload(false);
        let rodata = configure_filter!(open, OBJECT, filter);
        rodata.thread_slot_mask = sizing.thread_slots - 1;
        rodata.timing_interval_ns = options.timing.interval_ns();
        open.maps
            .threads
            .set_max_entries(sizing.thread_slots)
            .map_err(|source| BpfError::Map {
                map: "threads",
                source,
            })?;
        open.maps
            .syscall_rows
            .set_max_entries(sizing.rows)
            .map_err(|source| BpfError::Map {
                map: "syscall_rows",
                source,
            })?;
        open.maps
            .syscall_errors
            .set_max_entries(sizing.error_rows)
            .map_err(|source| BpfError::Map {
                map: "syscall_errors",
                source,
            })?;

        libbpf_log::clear();
        let skel = open.load().map_err(|source| BpfError::Load {
            object: OBJECT,
            mode,
            source,
            verifier_log: libbpf_log::take_trimmed(),
        })?;
        fill_target_pids(&skel.maps.target_pids, &filter.pids)?;

        let threads = ThreadSlots::new(&skel.maps.threads, sizing.thread_slots)?;
        let progs = &skel.progs;
        // The thread-exit handler first, so no thread ends unseen once calls are counted.
        let links = attach_all(
            mode,
            &[
                ("handle__thread_exit", &progs.handle__thread_exit),
                ("handle__sys_enter", &progs.handle__sys_enter),
                ("handle__sys_exit", &progs.handle__sys_exit),
            ],
        )?;
        Ok(Self {
            _links: links,
            threads,
            skel,
            options,
            reader: Mutex::new(Reader::default()),
        })
    }

    /// How the kernel maps are sized.
    pub fn sizing(&self) -> Sizing {
        self.options.sizing
    }

    /// Which calls are timed.
    pub fn timing(&self) -> Timing {
        self.options.timing
    }

    /// How the programs are attached: always raw tracepoints (see [`start`](Self::start)).
    pub fn mode(&self) -> AttachMode {
        AttachMode::RawTp
    }

    /// What was lost in the kernel so far.
    pub fn losses(&self) -> Result<Losses, BpfError> {
        Losses::read(&self.skel.maps.losses)
    }

    /// One row per (process, name, syscall) collected so far, unsorted.
    /// A process that exec'd the same program twice gets one row per syscall.
    pub fn rows(&self) -> Result<Vec<SyscallRow>, BpfError> {
        // Rows that differ only by exec generation but show the same name are merged: keyed
        // by (pid, name, syscall).
        let mut rows: HashMap<(u32, Vec<u8>, u32), SyscallRow> = HashMap::new();
        self.for_each_row(|row| {
            match rows.entry((row.pid, row.exact_comm().to_vec(), row.syscall_nr)) {
                std::collections::hash_map::Entry::Occupied(mut merged) => {
                    merged.get_mut().merge(&row)
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    slot.insert(row);
                }
            }
        })?;
        Ok(rows.into_values().collect())
    }

    /// Calls `each` with one row per (process image, syscall), errors included, as the rows
    /// are read: nothing is collected first, so memory stays at one batch (the agent sums rows
    /// by its labels anyway). Rows of one process's exec generations come separately, even
    /// under the same name; [`rows`](Self::rows) merges them.
    pub fn for_each_row(&self, mut each: impl FnMut(SyscallRow)) -> Result<(), BpfError> {
        let mut guard = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let Reader { batch, pending } = &mut *guard;
        // The slots first: a count moves from a slot either to a row (the kernel) or here,
        // never both, so reading the rows after the slots sees each call once.
        pending.begin_read();
        self.threads.drain(pending)?;
        // Errors next (few): (tgid, exec, nr) -> [(errno, count)].
        let mut errors: HashMap<(u32, u64, u32), Vec<(u32, u64)>> = HashMap::new();
        batch.for_each(
            &self.skel.maps.syscall_errors,
            "syscall_errors",
            |key, value| {
                let key: syscall_error_key = pod::read(key, "syscall_errors")?;
                let count = value
                    .get(..8)
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u64::from_ne_bytes);
                errors
                    .entry((key.tgid, key.exec_id, key.nr))
                    .or_default()
                    .push((key.err, count));
                Ok(())
            },
        )?;
        batch.for_each(
            &self.skel.maps.syscall_rows,
            "syscall_rows",
            |key, value| {
                let key: syscall_key = pod::read(key, "syscall_rows")?;
                let stats: syscall_stats = pod::read(value, "syscall_rows")?;
                let mut row = SyscallRow {
                    pid: key.tgid,
                    syscall_nr: key.nr,
                    ..SyscallRow::default()
                };
                row.set_comm(until_nul(chars(&stats.comm)));
                add_stats(&mut row, &stats);
                let swapped = pending.merge_into_row(key.tgid, key.exec_id, key.nr);
                row.count = row.count.saturating_add(swapped);
                for (err, count) in errors
                    .remove(&(key.tgid, key.exec_id, key.nr))
                    .unwrap_or_default()
                {
                    let entry = row.errors.entry(err).or_insert(0);
                    *entry = entry.saturating_add(count);
                }
                each(row);
                Ok(())
            },
        )?;
        // Calls swapped out of the slots whose row the kernel never made (all were untimed
        // and successful) or has since lost.
        for (&(tgid, exec_id, nr), swapped) in pending.unmerged() {
            let mut row = SyscallRow {
                pid: tgid,
                syscall_nr: nr,
                count: swapped.count,
                ..SyscallRow::default()
            };
            row.set_comm(until_nul(&swapped.comm));
            for (err, count) in errors.remove(&(tgid, exec_id, nr)).unwrap_or_default() {
                row.errors.insert(err, count);
                row.error_count = row.error_count.saturating_add(count);
            }
            each(row);
        }
        Ok(())
    }

    /// Deletes every row of the processes `pids` (which should have exited):
    /// their syscall statistics and error counts. Returns how many map
    /// entries were deleted. A pid that is still running starts new rows with
    /// its next syscalls.
    pub fn forget(&self, pids: &[u32]) -> Result<usize, BpfError> {
        if pids.is_empty() {
            return Ok(0);
        }
        let sorted = evict::sorted(pids);
        let mut guard = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let Reader { batch, pending } = &mut *guard;
        pending.forget(&sorted);
        let rows = batch.forget_by_tgid(&self.skel.maps.syscall_rows, "syscall_rows", &sorted)?;
        let errors =
            batch.forget_by_tgid(&self.skel.maps.syscall_errors, "syscall_errors", &sorted)?;
        Ok(rows.len() + errors.len())
    }
}

/// Empty programs on sys_enter and sys_exit (tp_btf): the least any syscall timer costs, for
/// benchmarks to compare with. Dropping it detaches.
pub struct FloorPrograms<'obj> {
    _skel: SyscallsSkel<'obj>,
    _links: Vec<Link>,
}

impl<'obj> FloorPrograms<'obj> {
    /// Loads and attaches the two empty programs.
    pub fn start(storage: &'obj mut MaybeUninit<OpenObject>) -> Result<Self, BpfError> {
        let mut open = SyscallsSkelBuilder::default()
            .open(storage)
            .map_err(|source| BpfError::Open {
                object: OBJECT,
                source,
            })?;
        let progs = &mut open.progs;
        progs.handle__sys_enter.set_autoload(false);
        progs.handle__sys_exit.set_autoload(false);
        progs.handle__thread_exit.set_autoload(false);
        libbpf_log::clear();
        let skel = open.load().map_err(|source| BpfError::Load {
            object: OBJECT,
            mode: AttachMode::TpBtf,
            source,
            verifier_log: libbpf_log::take_trimmed(),
        })?;
        let links = attach_all(
            AttachMode::TpBtf,
            &[
                ("floor__sys_enter", &skel.progs.floor__sys_enter),
                ("floor__sys_exit", &skel.progs.floor__sys_exit),
            ],
        )?;
        Ok(Self {
            _skel: skel,
            _links: links,
        })
    }
}

const _: () = assert!(std::mem::offset_of!(syscall_key, tgid) == 0);
const _: () = assert!(std::mem::offset_of!(syscall_error_key, tgid) == 0);

/// How many entries the kernel's syscall maps may hold.
///
/// Rows are shared by all CPUs and allocated on demand, so the sizing does not depend on the
/// CPU count and a host pays only for the rows it has. The capacity covers a host of 5,000 live
/// processes making 30 kinds of syscalls each (150,000 rows) with room for the rows of exited
/// processes the agent has not retired yet (at 200 process starts per second, ~30 rows each,
/// two 5 s cycles: ~60,000).
///
/// The per-thread slots are an array: 65,536 slots of 128 bytes (8 MiB), four ways per
/// thread, enough for tens of thousands of threads inside calls at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizing {
    /// (process, exec, syscall) rows.
    pub rows: u32,
    /// (process, exec, syscall, errno) error counts.
    pub error_rows: u32,
    /// Per-thread slots (a power of two, at least 4).
    pub thread_slots: u32,
}

impl Default for Sizing {
    fn default() -> Self {
        Self::for_cpus(1)
    }
}

/// Rows the syscall map holds on any host.
pub const MAX_ROWS: u32 = 1 << 18;
/// Error counts the errno map holds on any host.
pub const MAX_ERROR_ROWS: u32 = 1 << 16;
/// Per-thread slots on any host.
pub const THREAD_SLOTS: u32 = 1 << 16;
/// The kernel's per-entry overhead in a hash map (`struct htab_elem` header, 48 bytes on
/// x86_64) plus its share of the bucket array (16 bytes per bucket, one bucket per entry).
const HASH_ENTRY_OVERHEAD: usize = 48 + 16;

impl Sizing {
    /// The sizing for a host with `cpus` CPUs: the same for every count.
    pub fn for_cpus(cpus: usize) -> Self {
        let _ = cpus; // Shared rows: nothing is per CPU.
        Self {
            rows: MAX_ROWS,
            error_rows: MAX_ERROR_ROWS,
            thread_slots: THREAD_SLOTS,
        }
    }

    /// The most kernel memory the maps can take when full (they start nearly empty).
    pub fn max_kernel_bytes(&self) -> usize {
        let row = std::mem::size_of::<syscall_key>()
            + std::mem::size_of::<syscall_stats>()
            + HASH_ENTRY_OVERHEAD;
        let error = std::mem::size_of::<syscall_error_key>() + 8 + HASH_ENTRY_OVERHEAD;
        let slots = self.thread_slots as usize * std::mem::size_of::<syscall_thread>();
        self.rows as usize * row + self.error_rows as usize * error + slots
    }
}

fn add_stats(row: &mut SyscallRow, stats: &syscall_stats) {
    row.count = row.count.saturating_add(stats.count);
    row.error_count = row.error_count.saturating_add(stats.errors);
    row.total_ns = row.total_ns.saturating_add(stats.total_ns);
    row.max_ns = row.max_ns.max(stats.max_ns);
    row.timed = row.timed.saturating_add(stats.timed);
    row.histogram.add_bucket_counts(&stats.latency);
}
