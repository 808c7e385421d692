//! The syscall collector: attaches bpf/syscalls.bpf.c and turns its per-CPU
//! maps into one row per (process, syscall) when asked.

use std::collections::HashMap;
use std::mem::MaybeUninit;

use goroscope_model::{until_nul, SyscallRow};
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, OpenObject};

use crate::attach::{attach_all, AttachMode};
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
}

impl<'obj> SyscallCollector<'obj> {
    /// Loads and attaches the syscall programs for the processes `filter` selects.
    pub fn start(
        storage: &'obj mut MaybeUninit<OpenObject>,
        mode: AttachMode,
        filter: &ProcessFilter,
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
        configure_filter!(open, OBJECT, filter);
        open.maps
            .syscall_rows
            .set_max_entries(row_capacity())
            .map_err(|source| BpfError::Map {
                map: "syscall_rows",
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

    /// One row per (process, name, syscall) collected so far, unsorted.
    /// A process that exec'd the same program twice gets one row per syscall.
    pub fn rows(&self) -> Result<Vec<SyscallRow>, BpfError> {
        let rows_map = &self.skel.maps.syscall_rows;
        let mut by_key: HashMap<(u32, u64, u32), SyscallRow> = HashMap::new();
        for key_bytes in rows_map.keys() {
            let key: syscall_key = pod::read(&key_bytes, "syscall_rows")?;
            let Some(per_cpu) =
                rows_map
                    .lookup_percpu(&key_bytes, MapFlags::ANY)
                    .map_err(|source| BpfError::Map {
                        map: "syscall_rows",
                        source,
                    })?
            else {
                continue; // the process's row vanished between keys() and lookup
            };
            let mut row = SyscallRow {
                pid: key.tgid,
                syscall_nr: key.nr,
                ..SyscallRow::default()
            };
            for cpu_bytes in &per_cpu {
                let stats: syscall_stats = pod::read(cpu_bytes, "syscall_rows")?;
                add_cpu_stats(&mut row, &stats);
            }
            by_key.insert((key.tgid, key.exec_id, key.nr), row);
        }
        self.add_errors(&mut by_key)?;

        // Merge rows that differ only by exec generation but show the same name.
        let mut merged: HashMap<(u32, String, u32), SyscallRow> = HashMap::new();
        for row in by_key.into_values() {
            match merged.entry((row.pid, row.comm.clone(), row.syscall_nr)) {
                std::collections::hash_map::Entry::Occupied(mut e) => e.get_mut().merge(&row),
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(row);
                }
            }
        }
        Ok(merged.into_values().collect())
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
        let rows = evict::forget_by_tgid(&self.skel.maps.syscall_rows, "syscall_rows", &sorted)?;
        let errors =
            evict::forget_by_tgid(&self.skel.maps.syscall_errors, "syscall_errors", &sorted)?;
        Ok(rows.len() + errors.len())
    }

    fn add_errors(&self, rows: &mut HashMap<(u32, u64, u32), SyscallRow>) -> Result<(), BpfError> {
        let errors_map = &self.skel.maps.syscall_errors;
        for key_bytes in errors_map.keys() {
            let key: syscall_error_key = pod::read(&key_bytes, "syscall_errors")?;
            let per_cpu = errors_map
                .lookup_percpu(&key_bytes, MapFlags::ANY)
                .map_err(|source| BpfError::Map {
                    map: "syscall_errors",
                    source,
                })?
                .unwrap_or_default();
            let count: u64 = per_cpu
                .iter()
                .filter_map(|b| b.get(..8).and_then(|b| b.try_into().ok()))
                .map(u64::from_ne_bytes)
                .sum();
            if let Some(row) = rows.get_mut(&(key.tgid, key.exec_id, key.nr)) {
                *row.errors.entry(key.err).or_insert(0) += count;
            }
        }
        Ok(())
    }
}

const _: () = assert!(std::mem::offset_of!(syscall_key, tgid) == 0);
const _: () = assert!(std::mem::offset_of!(syscall_error_key, tgid) == 0);

/// Kernel memory the preallocated per-CPU row map may take.
const ROW_MEMORY_BUDGET: usize = 32 << 20;

/// Rows the kernel keeps: as many as the budget allows on this machine's
/// CPU count, between 1024 and 16384 (process, exec, syscall) rows.
pub fn row_capacity() -> u32 {
    let cpus = libbpf_rs::num_possible_cpus().unwrap_or(1).max(1);
    let rows = ROW_MEMORY_BUDGET / (std::mem::size_of::<syscall_stats>() * cpus);
    rows.clamp(1024, 16384) as u32
}

fn add_cpu_stats(row: &mut SyscallRow, stats: &syscall_stats) {
    row.count = row.count.saturating_add(stats.count);
    row.error_count = row.error_count.saturating_add(stats.errors);
    row.total_ns = row.total_ns.saturating_add(stats.total_ns);
    row.max_ns = row.max_ns.max(stats.max_ns);
    row.histogram.add_bucket_counts(&stats.latency);
    let comm = until_nul(chars(&stats.comm));
    if row.comm.is_empty() && !comm.is_empty() {
        row.set_comm(comm);
    }
}
