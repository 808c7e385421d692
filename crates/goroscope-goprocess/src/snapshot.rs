//! Taking one snapshot of a Go process: the runtime's header state (goroutine list, goid generator,
//! scheduler, GC) in one batched read, then every `g` (coalesced into few large reads, since the
//! runtime allocates them side by side), then the stacks of blocked goroutines.
//!
//! The target keeps running while it is read, so every record is checked; one that is torn gets
//! one more read and is dropped (and counted) if it still does not make sense.

use std::time::Instant;

use goroscope_model::goroutines::{GcState, GoroutineRecord, GoroutineSnapshot, SchedulerState};

use crate::attach::GoProcess;
use crate::error::MemoryError;
use crate::frame_table::FrameTable;
use crate::g_record::{g_read_span, keep, parse_g, Parsed};
use crate::memory::{LeBytes, ReadRange};
use crate::unwind::{StackCache, UnwindRequest};

/// Largest goroutine list read (more means a torn or wrong read; it also bounds the buffers a
/// snapshot allocates: about 330 bytes per goroutine).
const MAX_GOROUTINES: u64 = 4_000_000;
/// Two `g`s closer than this are read in one range, gap included.
const COALESCE_GAP: u64 = 2048;
/// Longest single coalesced range.
const MAX_RANGE: u64 = 1 << 20;
/// Bytes of gs read before they are parsed: well inside a core's L2 cache.
const CHUNK: usize = 256 << 10;
/// Largest GOMAXPROCS accepted.
const MAX_PROCS: u64 = 1 << 16;

/// How to take snapshots.
#[derive(Debug, Clone, Copy)]
pub struct SnapshotOptions {
    /// Frames to unwind per blocked goroutine (0 turns unwinding off).
    pub max_frames: usize,
}

impl Default for SnapshotOptions {
    fn default() -> Self {
        SnapshotOptions { max_frames: 32 }
    }
}

/// Buffers and caches kept between snapshots so a steady-state snapshot allocates little.
pub(crate) struct ReaderState {
    header: Vec<u8>,
    pointers: Vec<u8>,
    order: Vec<(u64, u32)>,
    ranges: Vec<ReadRange>,
    ok: Vec<bool>,
    g_bytes: Vec<u8>,
    g_offsets: Vec<usize>,
    /// The goroutine list `order`, `ranges` and `g_offsets` were planned for.
    planned_for: Vec<u8>,
    pub(crate) stacks: StackCache,
    frames: FrameTable,
}

impl ReaderState {
    /// Empty buffers, and `frames` to unwind with.
    pub(crate) fn new(frames: FrameTable) -> ReaderState {
        ReaderState {
            header: Vec::new(),
            pointers: Vec::new(),
            order: Vec::new(),
            ranges: Vec::new(),
            ok: Vec::new(),
            g_bytes: Vec::new(),
            g_offsets: Vec::new(),
            planned_for: Vec::new(),
            stacks: StackCache::default(),
            frames,
        }
    }
}

/// Where each header field sits in the header buffer.
struct HeaderLayout {
    ranges: Vec<ReadRange>,
    required: usize,
}

const H_ALLGLEN: usize = 0;
const H_ALLGS: usize = 8;
const H_GOIDGEN: usize = 32;
const H_RUNQSIZE: usize = 40;
const H_NPIDLE: usize = 44;
const H_NMSPINNING: usize = 48;
const H_ALLP: usize = 56;
const H_NUMGC: usize = 80;
const H_PAUSE_TOTAL: usize = 88;
const H_HEAP_LIVE: usize = 96;
const H_HEAP_GOAL: usize = 104;
const H_LIMIT_GOAL: usize = 112;
const H_PAUSES: usize = 120;
const H_SIZE: usize = H_PAUSES + 256 * 8;

impl GoProcess {
    /// Reads one snapshot. Fails only when the process is gone, exec'd another program
    /// ([`MemoryError::Exec`], whatever the reads said: they may have come from the new image) or
    /// its memory may not be read; inconsistent records are retried or dropped and counted.
    pub fn snapshot(
        &mut self,
        options: &SnapshotOptions,
    ) -> Result<GoroutineSnapshot, MemoryError> {
        let snapshot = self.read_snapshot(options);
        self.image.check()?;
        if let Err(MemoryError::Exited { .. }) = &snapshot {
            // Maybe an exec in progress rather than an exit: let the kernel finish it.
            self.image.settle_after_vanished()?;
        }
        snapshot
    }

    fn read_snapshot(
        &mut self,
        options: &SnapshotOptions,
    ) -> Result<GoroutineSnapshot, MemoryError> {
        let started = Instant::now();
        let taken_at_ns = monotonic_ns();
        let layout = self.header_layout();
        {
            let state = &mut self.reader;
            state.header.clear();
            state.header.resize(H_SIZE, 0);
            state.ok.clear();
            state.ok.resize(layout.ranges.len(), false);
            self.memory
                .read_ranges(&layout.ranges, &mut state.header, &mut state.ok)?;
        }
        if let Some(index) = self.reader.ok[..layout.required].iter().position(|ok| !ok) {
            let range = layout.ranges[index];
            return Err(MemoryError::Unmapped {
                pid: self.info.pid,
                address: range.address,
                len: range.len,
            });
        }
        let header = &self.reader.header;
        let allglen = header.u64_at(H_ALLGLEN as u64);
        let allgs_ptr = header.u64_at(H_ALLGS as u64);
        let allgs_cap = header.u64_at(H_ALLGS as u64 + 16);
        let goidgen = header.u64_at(H_GOIDGEN as u64);
        let count = allglen.min(allgs_cap).min(MAX_GOROUTINES);

        let scheduler_header = (
            header.u32_at(H_RUNQSIZE as u64),
            header.u32_at(H_NPIDLE as u64),
            header.u32_at(H_NMSPINNING as u64),
            header.u64_at(H_ALLP as u64),
            header.u64_at(H_ALLP as u64 + 8),
        );
        let gc = self.gc_state(&layout, &self.reader.ok);

        // The goroutine list.
        self.reader.pointers.clear();
        self.reader.pointers.resize((count * 8) as usize, 0);
        if count > 0 {
            self.memory
                .read_exact(allgs_ptr, &mut self.reader.pointers)?;
        }
        let (goroutines, pending, dropped) = self.read_gs(count, goidgen)?;
        let (goroutines, stacks) = self.attach_stacks(goroutines, pending, options)?;
        let scheduler = self.scheduler_state(scheduler_header)?;

        Ok(GoroutineSnapshot {
            taken_at_ns,
            read_duration_ns: started.elapsed().as_nanos() as u64,
            goroutines,
            stacks,
            wait_reasons: self.wait_reasons.clone(),
            created_total: goidgen,
            gc,
            scheduler,
            dropped_records: dropped,
        })
    }

    fn header_layout(&self) -> HeaderLayout {
        let o = &self.offsets;
        let g = &self.globals;
        let sched = g.sched;
        let mut ranges = vec![
            range(g.allglen, 8, H_ALLGLEN),
            range(g.allgs, 24, H_ALLGS),
            range(sched.wrapping_add(o.sched.goidgen), 8, H_GOIDGEN),
            range(sched.wrapping_add(o.sched.runqsize), 4, H_RUNQSIZE),
            range(sched.wrapping_add(o.sched.npidle), 4, H_NPIDLE),
            range(sched.wrapping_add(o.sched.nmspinning), 4, H_NMSPINNING),
            range(g.allp, 16, H_ALLP),
        ];
        let required = ranges.len();
        if let Some(memstats) = g.memstats {
            ranges.push(range(memstats.wrapping_add(o.memstats.numgc), 4, H_NUMGC));
            ranges.push(range(
                memstats.wrapping_add(o.memstats.pause_ns),
                256 * 8,
                H_PAUSES,
            ));
            if let Some(total) = o.memstats.pause_total_ns {
                ranges.push(range(memstats.wrapping_add(total), 8, H_PAUSE_TOTAL));
            }
        }
        if let Some(controller) = g.gc_controller {
            let c = &o.gc_controller;
            if let Some(live) = c.heap_live {
                ranges.push(range(controller.wrapping_add(live), 8, H_HEAP_LIVE));
            }
            if let Some(goal) = c.heap_goal {
                ranges.push(range(controller.wrapping_add(goal), 8, H_HEAP_GOAL));
            }
            if let Some(limit) = c.memory_limit_heap_goal {
                ranges.push(range(controller.wrapping_add(limit), 8, H_LIMIT_GOAL));
            }
        }
        HeaderLayout { ranges, required }
    }

    fn gc_state(&self, layout: &HeaderLayout, ok: &[bool]) -> GcState {
        let header = &self.reader.header;
        let read = |offset: usize| {
            layout
                .ranges
                .iter()
                .zip(ok)
                .any(|(range, ok)| *ok && range.offset == offset)
        };
        let mut gc = GcState::default();
        if read(H_NUMGC) && read(H_PAUSES) {
            gc.cycles = header.u32_at(H_NUMGC as u64);
            let kept = gc.cycles.min(256);
            gc.recent_pauses_ns = (gc.cycles - kept..gc.cycles)
                .map(|cycle| header.u64_at((H_PAUSES + (cycle % 256) as usize * 8) as u64))
                .collect();
        }
        if read(H_PAUSE_TOTAL) {
            gc.pause_total_ns = Some(header.u64_at(H_PAUSE_TOTAL as u64));
        }
        if read(H_HEAP_LIVE) {
            gc.heap_live_bytes = Some(header.u64_at(H_HEAP_LIVE as u64));
        }
        let goal = read(H_HEAP_GOAL).then(|| header.u64_at(H_HEAP_GOAL as u64));
        let limit = read(H_LIMIT_GOAL).then(|| header.u64_at(H_LIMIT_GOAL as u64));
        gc.heap_goal_bytes = match (goal.filter(|g| *g > 0), limit.filter(|l| *l > 0)) {
            (Some(goal), Some(limit)) => Some(goal.min(limit)),
            (goal, limit) => goal.or(limit),
        };
        gc
    }

    /// Reads every `g` named by the goroutine list. Returns live records, the unwind requests of
    /// goroutines whose stacks can be walked, and how many records were dropped.
    fn read_gs(
        &mut self,
        count: u64,
        goidgen_before: u64,
    ) -> Result<(Vec<GoroutineRecord>, Vec<UnwindRequest>, u64), MemoryError> {
        let span = g_read_span(&self.offsets);
        let state = &mut self.reader;
        // The goroutine list rarely changes between snapshots (the runtime reuses dead gs): then
        // so do the sorted order and the coalesced ranges.
        if state.pointers == state.planned_for {
            return self.read_planned_gs(span, goidgen_before);
        }
        state.planned_for.clone_from(&state.pointers);
        state.order.clear();
        for index in 0..count {
            let address = state.pointers.u64_at(index * 8);
            if address != 0 {
                state.order.push((address, index as u32));
            }
        }
        state.order.sort_unstable();
        state.order.dedup_by_key(|(address, _)| *address);

        // Coalesce neighbouring gs into large reads.
        state.ranges.clear();
        state.g_offsets.clear();
        let mut total = 0usize;
        for &(address, _) in &state.order {
            match state.ranges.last_mut() {
                Some(last)
                    if address >= last.address
                        && address
                            <= last.address.saturating_add(last.len as u64 + COALESCE_GAP)
                        && address.saturating_add(span) - last.address <= MAX_RANGE =>
                {
                    let new_len = (address.saturating_add(span) - last.address) as usize;
                    total += new_len - last.len;
                    last.len = new_len;
                    state
                        .g_offsets
                        .push(last.offset + (address - last.address) as usize);
                }
                _ => {
                    state.ranges.push(ReadRange {
                        address,
                        len: span as usize,
                        offset: total,
                    });
                    state.g_offsets.push(total);
                    total += span as usize;
                }
            }
        }
        // No clearing: every byte is overwritten by the read, and failed ranges are zero-filled.
        state.g_bytes.resize(total, 0);
        self.read_planned_gs(span, goidgen_before)
    }

    /// Reads and parses the gs of the planned ranges (`reader.order`, `ranges`, `g_offsets`).
    fn read_planned_gs(
        &mut self,
        span: u64,
        goidgen_before: u64,
    ) -> Result<(Vec<GoroutineRecord>, Vec<UnwindRequest>, u64), MemoryError> {
        // Before Go 1.23, entering a syscall saved pc and sp but not bp.
        let syscall_bp = self.info.version.at_least(1, 23);
        let state = &mut self.reader;
        state.ok.clear();
        state.ok.resize(state.ranges.len(), false);
        let mut records = Vec::with_capacity(state.order.len());
        let mut pending = Vec::with_capacity(state.order.len());
        let mut dropped = 0u64;
        let mut retry = Vec::new();
        let mut goid_limit = goidgen_before;
        let mut position = 0usize;
        let mut first = 0usize;
        // Read and parse a chunk at a time: parsing what was just copied, while it is still in
        // the CPU's cache, costs a fraction of parsing megabytes that have left it.
        while first < self.reader.ranges.len() {
            let mut end = first + 1;
            let mut bytes = self.reader.ranges[first].len;
            while end < self.reader.ranges.len() && bytes + self.reader.ranges[end].len <= CHUNK {
                bytes += self.reader.ranges[end].len;
                end += 1;
            }
            self.memory.read_ranges(
                &self.reader.ranges[first..end],
                &mut self.reader.g_bytes,
                &mut self.reader.ok[first..end],
            )?;
            // Goroutines created while this chunk was read have ids up to the generator's
            // value now.
            goid_limit = goid_limit.max(self.read_goidgen().unwrap_or(goid_limit));
            let state = &self.reader;
            let chunk_end = state
                .ranges
                .get(end)
                .map_or(state.g_bytes.len(), |next| next.offset);
            let mut range_index = first;
            while let Some(&(address, _)) = state.order.get(position) {
                let start = state.g_offsets[position];
                if start >= chunk_end {
                    break;
                }
                position += 1;
                while range_index + 1 < end && state.ranges[range_index + 1].offset <= start {
                    range_index += 1;
                }
                if !state.ok.get(range_index).copied().unwrap_or(false) {
                    retry.push(address);
                    continue;
                }
                let g = &state.g_bytes[start..start + span as usize];
                if !keep(
                    parse_g(g, &self.offsets, goid_limit, syscall_bp),
                    &mut records,
                    &mut pending,
                ) {
                    retry.push(address);
                }
            }
            first = end;
        }
        // One more look at records that were torn or unreadable, against a fresh goid bound
        // (goroutines created since are not torn).
        let goid_limit = if retry.is_empty() {
            goid_limit
        } else {
            goid_limit.max(self.read_goidgen().unwrap_or(goid_limit))
        };
        let mut bytes = vec![0u8; span as usize];
        for address in retry {
            let parsed = match self.memory.read_exact(address, &mut bytes) {
                Ok(()) => parse_g(&bytes, &self.offsets, goid_limit, syscall_bp),
                Err(MemoryError::Unmapped { .. }) => Parsed::Torn,
                Err(other) => return Err(other),
            };
            if !keep(parsed, &mut records, &mut pending) {
                dropped += 1;
            }
        }
        Ok((records, pending, dropped))
    }

    fn read_goidgen(&mut self) -> Result<u64, MemoryError> {
        self.memory
            .read_u64(self.globals.sched + self.offsets.sched.goidgen)
    }

    fn attach_stacks(
        &mut self,
        mut records: Vec<GoroutineRecord>,
        pending: Vec<UnwindRequest>,
        options: &SnapshotOptions,
    ) -> Result<(Vec<GoroutineRecord>, Vec<Vec<u64>>), MemoryError> {
        if options.max_frames == 0 {
            return Ok((records, Vec::new()));
        }
        let stacks = self.reader.stacks.resolve(
            &mut self.memory,
            &mut self.reader.frames,
            &pending,
            options.max_frames,
            &mut records,
        )?;
        Ok((records, stacks))
    }

    fn scheduler_state(
        &mut self,
        (runqsize, npidle, nmspinning, allp_ptr, allp_len): (u32, u32, u32, u64, u64),
    ) -> Result<SchedulerState, MemoryError> {
        let mut scheduler = SchedulerState {
            gomaxprocs: allp_len.min(MAX_PROCS) as u32,
            idle_ps: npidle,
            spinning_ms: nmspinning,
            global_runqueue: runqsize,
            local_runqueues: Vec::new(),
        };
        if allp_len == 0 || allp_len > MAX_PROCS {
            return Ok(scheduler);
        }
        let mut pointers = vec![0u8; (allp_len * 8) as usize];
        self.memory.read_exact(allp_ptr, &mut pointers)?;
        let p = &self.offsets.p;
        let low =
            p.id.min(p.status)
                .min(p.runqhead)
                .min(p.runqtail)
                .min(p.runnext);
        let high =
            p.id.max(p.status)
                .max(p.runqhead)
                .max(p.runqtail)
                .max(p.runnext)
                + 8;
        let span = (high - low) as usize;
        let ranges: Vec<ReadRange> = (0..allp_len)
            .map(|index| ReadRange {
                address: pointers.u64_at(index * 8).wrapping_add(low),
                len: span,
                offset: index as usize * span,
            })
            .collect();
        let mut bytes = vec![0u8; span * allp_len as usize];
        let mut ok = vec![false; ranges.len()];
        self.memory.read_ranges(&ranges, &mut bytes, &mut ok)?;
        let mut idle = 0;
        for (index, read) in ok.iter().enumerate() {
            let at = |field: u64| (index * span) as u64 + field - low;
            if !read || bytes.u32_at(at(p.id)) as usize != index {
                // A P that is being resized or torn: report no per-P queues rather than wrong ones.
                scheduler.local_runqueues.clear();
                return Ok(scheduler);
            }
            let status = bytes.u32_at(at(p.status));
            if status == 0 {
                idle += 1;
            }
            let queued = bytes
                .u32_at(at(p.runqtail))
                .wrapping_sub(bytes.u32_at(at(p.runqhead)))
                .min(256);
            let next = u32::from(bytes.u64_at(at(p.runnext)) != 0);
            scheduler.local_runqueues.push(queued + next);
        }
        scheduler.idle_ps = idle;
        Ok(scheduler)
    }
}

fn range(address: u64, len: usize, offset: usize) -> ReadRange {
    ReadRange {
        address,
        len,
        offset,
    }
}

/// CLOCK_MONOTONIC in ns: the clock the Go runtime's nanotime reads.
pub fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid, exclusively borrowed `now`.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) };
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}
