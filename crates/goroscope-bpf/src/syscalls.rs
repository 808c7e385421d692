//! The syscall collector: attaches bpf/syscalls.bpf.c and turns its shared
//! row maps, read in bounded batches, into one row per (process, syscall) when asked.

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
use crate::skel::syscalls::types::{syscall_error_key, syscall_key, syscall_stats};
use crate::skel::syscalls::{SyscallsSkel, SyscallsSkelBuilder};

const OBJECT: &str = "syscalls";

/// Syscall statistics being collected in the kernel. Dropping it detaches.
pub struct SyscallCollector<'obj> {
    skel: SyscallsSkel<'obj>,
    _links: Vec<Link>,
    mode: AttachMode,
    sizing: Sizing,
    reader: Mutex<BatchReader>,
}

impl<'obj> SyscallCollector<'obj> {
    /// Loads and attaches the syscall programs for the processes `filter` selects, with the
    /// maps sized for this machine ([`Sizing::for_cpus`]).
    pub fn start(
        storage: &'obj mut MaybeUninit<OpenObject>,
        mode: AttachMode,
        filter: &ProcessFilter,
    ) -> Result<Self, BpfError> {
        let cpus = libbpf_rs::num_possible_cpus().unwrap_or(1);
        Self::start_sized(storage, mode, filter, Sizing::for_cpus(cpus))
    }

    /// As [`start`](Self::start), with the maps sized by `sizing` (tests size them for a
    /// simulated host).
    pub fn start_sized(
        storage: &'obj mut MaybeUninit<OpenObject>,
        mode: AttachMode,
        filter: &ProcessFilter,
        sizing: Sizing,
    ) -> Result<Self, BpfError> {
        let mut open = SyscallsSkelBuilder::default()
            .open(storage)
            .map_err(|source| BpfError::Open {
                object: OBJECT,
                source,
            })?;
        let btf = mode == AttachMode::TpBtf;
        open.progs.handle__sys_enter.set_autoload(btf);
        open.progs.handle__sys_exit.set_autoload(btf);
        open.progs.handle__sys_enter_raw.set_autoload(!btf);
        open.progs.handle__sys_exit_raw.set_autoload(!btf);
        open.progs.floor__sys_enter.set_autoload(false);
        open.progs.floor__sys_exit.set_autoload(false);
        configure_filter!(open, OBJECT, filter);
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

        let progs = &skel.progs;
        let (enter, exit) = if btf {
            (&progs.handle__sys_enter, &progs.handle__sys_exit)
        } else {
            (&progs.handle__sys_enter_raw, &progs.handle__sys_exit_raw)
        };
        let links = attach_all(
            mode,
            &[("handle__sys_enter", enter), ("handle__sys_exit", exit)],
        )?;
        Ok(Self {
            skel,
            _links: links,
            mode,
            sizing,
            reader: Mutex::new(BatchReader::default()),
        })
    }

    /// How the kernel maps are sized.
    pub fn sizing(&self) -> Sizing {
        self.sizing
    }

    /// How the programs are attached.
    pub fn mode(&self) -> AttachMode {
        self.mode
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
        let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        // Errors first (few): (tgid, exec, nr) -> [(errno, count)].
        let mut errors: HashMap<(u32, u64, u32), Vec<(u32, u64)>> = HashMap::new();
        reader.for_each(
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
        reader.for_each(
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
        )
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
        let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let rows = reader.forget_by_tgid(&self.skel.maps.syscall_rows, "syscall_rows", &sorted)?;
        let errors =
            reader.forget_by_tgid(&self.skel.maps.syscall_errors, "syscall_errors", &sorted)?;
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
        progs.handle__sys_enter_raw.set_autoload(false);
        progs.handle__sys_exit_raw.set_autoload(false);
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sizing {
    /// (process, exec, syscall) rows.
    pub rows: u32,
    /// (process, exec, syscall, errno) error counts.
    pub error_rows: u32,
}

/// Rows the syscall map holds on any host.
pub const MAX_ROWS: u32 = 1 << 18;
/// Error counts the errno map holds on any host.
pub const MAX_ERROR_ROWS: u32 = 1 << 16;
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
        }
    }

    /// The most kernel memory the maps can take when full (they start nearly empty).
    pub fn max_kernel_bytes(&self) -> usize {
        let row = std::mem::size_of::<syscall_key>()
            + std::mem::size_of::<syscall_stats>()
            + HASH_ENTRY_OVERHEAD;
        let error = std::mem::size_of::<syscall_error_key>() + 8 + HASH_ENTRY_OVERHEAD;
        self.rows as usize * row + self.error_rows as usize * error
    }
}

fn add_stats(row: &mut SyscallRow, stats: &syscall_stats) {
    row.count = row.count.saturating_add(stats.count);
    row.error_count = row.error_count.saturating_add(stats.errors);
    row.total_ns = row.total_ns.saturating_add(stats.total_ns);
    row.max_ns = row.max_ns.max(stats.max_ns);
    row.histogram.add_bucket_counts(&stats.latency);
}
