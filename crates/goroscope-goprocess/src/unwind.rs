//! Unwinding the stacks of goroutines that are not running, from the pc, sp and bp the scheduler
//! saved in their `g.sched` (or, for a goroutine in a system call, the `g.syscallpc` and
//! `g.syscallsp` it saved on the way in, where Go's own traceback starts such a stack).
//!
//! Go on x86-64 keeps frame pointers: at a frame's bp sit the caller's bp and then the return
//! address. That chain is the fast path, and every step of it is checked against the pclntab's
//! stack-pointer delta at the frame's pc (`pcsp`, the table Go's traceback unwinds with; decoded
//! once per distinct pc): the return address must sit where the delta says. Where the chain is
//! missing (before Go 1.23 nothing saves bp on syscall entry), leaves a frame out (a frameless
//! function keeps its caller's bp) or disagrees, the delta decides: the return address is at
//! `sp + delta`, the caller's sp 8 bytes above it, and its bp (when the function has a frame)
//! just below. The walk ends at the stack's top (`goexit`), at a function that writes SP, at
//! the stack's bounds or after `max_frames` frames.
//!
//! Each round reads one window of stack per goroutine still being walked (all goroutines in one
//! batched read), so a snapshot costs a few system calls however many goroutines there are. A
//! parked goroutine's frames do not change while it stays parked, so a stack is unwound once and
//! reused while the goroutine's saved (pc, sp, bp) and its `trackingSeq` (which moves every time
//! it stops running) stay the same. Without `trackingSeq` nothing is cached: (pc, sp, bp) alone
//! cannot tell two blocking calls at the same depth apart.

use goroscope_model::goroutines::GoroutineRecord;

use crate::error::MemoryError;
use crate::fasthash::FastMap;
use crate::frame_table::{FrameTable, Layout};
use crate::memory::{LeBytes, ProcessMemory, ReadRange};

/// Bytes of stack read per goroutine per round.
const WINDOW: u64 = 1024;
/// Distinct stacks kept before the cache starts over (bounds memory with pathological churn).
const MAX_INTERNED: usize = 200_000;

/// A goroutine to unwind.
#[derive(Debug, Clone, Copy)]
pub(crate) struct UnwindRequest {
    /// Index of its record in the snapshot.
    pub record: usize,
    pub goid: u64,
    pub pc: u64,
    pub sp: u64,
    /// The frame pointer, 0 when it was not saved.
    pub bp: u64,
    pub stack_hi: u64,
    /// The goroutine's `trackingSeq`: part of the cache key, because a goroutine that woke and
    /// parked again at the same depth can have the same (pc, sp, bp) and a different stack.
    pub tracking_seq: Option<u8>,
}

/// A goroutine's stack as last unwound, and the saved registers it was unwound from.
#[derive(Debug, Clone, Copy)]
struct Cached {
    goid: u64,
    pc: u64,
    sp: u64,
    bp: u64,
    tracking_seq: Option<u8>,
    stack: u32,
}

impl Cached {
    /// True when `request` is this goroutine, parked where it was (its stack is the same).
    fn still(&self, request: &UnwindRequest) -> bool {
        self.goid == request.goid
            && self.pc == request.pc
            && self.sp == request.sp
            && self.bp == request.bp
            && self.tracking_seq == request.tracking_seq
            && request.tracking_seq.is_some()
    }
}

struct Walk {
    /// Index of the request in this snapshot's list.
    position: usize,
    request: UnwindRequest,
    pcs: Vec<u64>,
    /// The current frame: its pc (the last one pushed), sp and bp (0 when unknown).
    pc: u64,
    sp: u64,
    bp: u64,
    done: bool,
}

/// Where the current frame's return address sits, and how that was found.
#[derive(Debug, Clone, Copy)]
struct Slot {
    address: u64,
    /// Found by the frame pointer (then the caller's bp is right below it).
    by_frame_pointer: bool,
    layout: Option<Layout>,
}

/// Stacks unwound so far, interned, and which goroutine had which.
#[derive(Default)]
pub(crate) struct StackCache {
    /// The previous snapshot's goroutines, by request position: the runtime's goroutine list
    /// keeps its order, so a goroutine is usually found at the same position without hashing.
    previous: Vec<Cached>,
    /// Goroutine id → position in `previous`, built when a position did not match.
    by_goroutine: FastMap<u64, usize>,
    by_goroutine_built: bool,
    ids: FastMap<Vec<u64>, u32>,
    /// Per interned stack, its index in the current snapshot's list (`u32::MAX`: not yet).
    local: Vec<u32>,
    persistent: Vec<(usize, u32)>,
    stacks: Vec<Vec<u64>>,
    window: Vec<u8>,
    ranges: Vec<ReadRange>,
    ok: Vec<bool>,
    /// Goroutines whose stacks were unwound (not reused) in the last snapshot.
    pub unwound_last: usize,
}

impl StackCache {
    /// Gives every request's record a stack (index into the returned per-snapshot stack list).
    pub fn resolve(
        &mut self,
        memory: &mut ProcessMemory,
        table: &mut FrameTable,
        requests: &[UnwindRequest],
        max_frames: usize,
        records: &mut [GoroutineRecord],
    ) -> Result<Vec<Vec<u64>>, MemoryError> {
        if self.stacks.len() > MAX_INTERNED {
            self.previous.clear();
            self.ids.clear();
            self.stacks.clear();
            self.local.clear();
        }
        self.by_goroutine.clear();
        self.by_goroutine_built = false;
        let mut persistent = std::mem::take(&mut self.persistent);
        persistent.clear();
        let mut current = Vec::with_capacity(requests.len());
        let mut walks = Vec::new();
        for (position, request) in requests.iter().enumerate() {
            let cached = self.previous_of(position, request.goid);
            match cached {
                Some(cached) if cached.still(request) => {
                    persistent.push((request.record, cached.stack));
                    current.push(cached);
                }
                _ => {
                    walks.push(Walk {
                        position,
                        request: *request,
                        pcs: vec![request.pc],
                        pc: request.pc,
                        sp: request.sp,
                        bp: request.bp,
                        done: max_frames <= 1,
                    });
                    // A placeholder until the walk is done.
                    current.push(Cached {
                        goid: request.goid,
                        pc: 0,
                        sp: 0,
                        bp: 0,
                        tracking_seq: None,
                        stack: u32::MAX,
                    });
                }
            }
        }
        self.unwound_last = walks.len();
        self.walk(memory, table, &mut walks, max_frames)?;
        for walk in walks {
            let id = self.intern(walk.pcs);
            if let Some(slot) = current.get_mut(walk.position) {
                *slot = Cached {
                    goid: walk.request.goid,
                    pc: walk.request.pc,
                    sp: walk.request.sp,
                    bp: walk.request.bp,
                    tracking_seq: walk.request.tracking_seq,
                    stack: id,
                };
            }
            persistent.push((walk.request.record, id));
        }
        self.previous = current;

        // Number the stacks this snapshot uses densely.
        self.local.resize(self.stacks.len(), u32::MAX);
        let mut stacks = Vec::new();
        let mut used = Vec::new();
        for &(record, id) in &persistent {
            let Some(slot) = self.local.get_mut(id as usize) else {
                continue;
            };
            if *slot == u32::MAX {
                *slot = stacks.len() as u32;
                stacks.push(self.stacks.get(id as usize).cloned().unwrap_or_default());
                used.push(id);
            }
            let index = *slot;
            if let Some(record) = records.get_mut(record) {
                record.stack = Some(index);
            }
        }
        for id in used {
            if let Some(slot) = self.local.get_mut(id as usize) {
                *slot = u32::MAX;
            }
        }
        self.persistent = persistent;
        Ok(stacks)
    }

    /// The previous snapshot's entry for goroutine `goid`, looked for at `position` first.
    fn previous_of(&mut self, position: usize, goid: u64) -> Option<Cached> {
        if let Some(cached) = self.previous.get(position).filter(|c| c.goid == goid) {
            return Some(*cached);
        }
        if !self.by_goroutine_built {
            self.by_goroutine_built = true;
            for (index, cached) in self.previous.iter().enumerate() {
                self.by_goroutine.insert(cached.goid, index);
            }
        }
        let index = *self.by_goroutine.get(&goid)?;
        self.previous.get(index).copied()
    }

    fn intern(&mut self, pcs: Vec<u64>) -> u32 {
        if let Some(&id) = self.ids.get(&pcs) {
            return id;
        }
        let id = self.stacks.len() as u32;
        self.stacks.push(pcs.clone());
        self.ids.insert(pcs, id);
        id
    }

    /// Walks every unfinished stack one window per round.
    fn walk(
        &mut self,
        memory: &mut ProcessMemory,
        table: &mut FrameTable,
        walks: &mut [Walk],
        max_frames: usize,
    ) -> Result<(), MemoryError> {
        for _round in 0..max_frames {
            self.ranges.clear();
            let mut active = Vec::new();
            let mut total = 0usize;
            for (index, walk) in walks.iter_mut().enumerate() {
                if walk.done {
                    continue;
                }
                let Some(slot) = next_slot(walk, table) else {
                    walk.done = true;
                    continue;
                };
                let start = slot.address - 8;
                let len = WINDOW.min(walk.request.stack_hi - start) as usize;
                self.ranges.push(ReadRange {
                    address: start,
                    len,
                    offset: total,
                });
                total += len;
                active.push(index);
            }
            if active.is_empty() {
                return Ok(());
            }
            self.window.clear();
            self.window.resize(total, 0);
            self.ok.clear();
            self.ok.resize(self.ranges.len(), false);
            memory.read_ranges(&self.ranges, &mut self.window, &mut self.ok)?;
            for (slot, &index) in active.iter().enumerate() {
                let range = self.ranges[slot];
                let walk = &mut walks[index];
                if !self.ok[slot] {
                    walk.done = true;
                    continue;
                }
                let window = &self.window[range.offset..range.offset + range.len];
                step_within(walk, table, window, range.address, max_frames);
            }
        }
        Ok(())
    }
}

/// Where the return address of `walk`'s current frame is: at bp + 8 when the frame pointer is
/// known and agrees with the pcsp delta (or there is no delta to check it against), else at
/// sp + delta. `None` (the walk is over) at the stack's top, past its bounds, or with neither.
fn next_slot(walk: &Walk, table: &mut FrameTable) -> Option<Slot> {
    let layout = table.layout(walk.pc);
    if layout.is_some_and(|l| l.last) {
        return None;
    }
    let by_delta = layout.map(|l| walk.sp.saturating_add(l.sp_delta));
    let by_bp = (walk.bp != 0).then(|| walk.bp.saturating_add(8));
    let (address, by_frame_pointer) = match (by_bp, by_delta) {
        (Some(fp), Some(delta)) if fp == delta => (fp, true),
        (_, Some(delta)) => (delta, false),
        (Some(fp), None) => (fp, true),
        (None, None) => return None,
    };
    let in_stack = address >= walk.sp.max(8) && address.saturating_add(8) <= walk.request.stack_hi;
    in_stack.then_some(Slot {
        address,
        by_frame_pointer,
        layout,
    })
}

/// Steps out of frames while their return address slots lie inside `window` (which starts at
/// `base`).
fn step_within(
    walk: &mut Walk,
    table: &mut FrameTable,
    window: &[u8],
    base: u64,
    max_frames: usize,
) {
    loop {
        if walk.pcs.len() >= max_frames {
            walk.done = true;
            return;
        }
        let Some(slot) = next_slot(walk, table) else {
            walk.done = true;
            return;
        };
        let end = base + window.len() as u64;
        if slot.address - 8 < base || slot.address + 8 > end {
            return; // needs the next window
        }
        let at = slot.address - base;
        let return_address = window.u64_at(at);
        let saved_bp = window.u64_at(at - 8);
        if return_address == 0 {
            walk.done = true;
            return;
        }
        walk.pcs.push(return_address);
        // A function with a frame saved its caller's bp right below the return address; a
        // frameless one (delta 0) left it in place.
        let framed = slot.by_frame_pointer || slot.layout.is_some_and(|l| l.sp_delta >= 16);
        let caller_bp = if framed { saved_bp } else { walk.bp };
        walk.pc = return_address;
        walk.sp = slot.address + 8;
        walk.bp = if caller_bp > walk.sp && caller_bp.saturating_add(16) <= walk.request.stack_hi {
            caller_bp
        } else {
            0
        };
        if walk.sp >= walk.request.stack_hi {
            walk.done = true;
            return;
        }
    }
}

#[cfg(test)]
#[path = "unwind_tests.rs"]
mod tests;
