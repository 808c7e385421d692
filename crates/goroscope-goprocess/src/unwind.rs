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

#[derive(Debug, Clone, Copy)]
struct Cached {
    pc: u64,
    sp: u64,
    bp: u64,
    tracking_seq: Option<u8>,
    stack: u32,
    generation: u64,
}

struct Walk {
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
    by_goroutine: FastMap<u64, Cached>,
    ids: FastMap<Vec<u64>, u32>,
    local: FastMap<u32, u32>,
    stacks: Vec<Vec<u64>>,
    generation: u64,
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
            self.by_goroutine.clear();
            self.ids.clear();
            self.stacks.clear();
        }
        self.generation += 1;
        let generation = self.generation;
        let mut persistent: Vec<(usize, u32)> = Vec::with_capacity(requests.len());
        let mut walks = Vec::new();
        for request in requests {
            match self.by_goroutine.get_mut(&request.goid) {
                Some(cached)
                    if cached.pc == request.pc
                        && cached.sp == request.sp
                        && cached.bp == request.bp
                        && cached.tracking_seq == request.tracking_seq
                        && request.tracking_seq.is_some() =>
                {
                    cached.generation = generation;
                    persistent.push((request.record, cached.stack));
                }
                _ => walks.push(Walk {
                    request: *request,
                    pcs: vec![request.pc],
                    pc: request.pc,
                    sp: request.sp,
                    bp: request.bp,
                    done: max_frames <= 1,
                }),
            }
        }
        self.unwound_last = walks.len();
        self.walk(memory, table, &mut walks, max_frames)?;
        for walk in walks {
            let id = self.intern(walk.pcs);
            self.by_goroutine.insert(
                walk.request.goid,
                Cached {
                    pc: walk.request.pc,
                    sp: walk.request.sp,
                    bp: walk.request.bp,
                    tracking_seq: walk.request.tracking_seq,
                    stack: id,
                    generation,
                },
            );
            persistent.push((walk.request.record, id));
        }
        self.by_goroutine
            .retain(|_, cached| cached.generation == generation);

        // Number the stacks this snapshot uses densely.
        let local = &mut self.local;
        local.clear();
        let mut stacks = Vec::new();
        for (record, id) in persistent {
            let index = *local.entry(id).or_insert_with(|| {
                stacks.push(self.stacks.get(id as usize).cloned().unwrap_or_default());
                (stacks.len() - 1) as u32
            });
            if let Some(record) = records.get_mut(record) {
                record.stack = Some(index);
            }
        }
        Ok(stacks)
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
mod tests {
    use super::*;

    fn request(stack: &[u64], base: u64, bp: u64) -> UnwindRequest {
        UnwindRequest {
            record: 0,
            goid: 7,
            pc: 0x1000,
            sp: base,
            bp,
            tracking_seq: Some(1),
            stack_hi: base + stack.len() as u64 * 8,
        }
    }

    fn walk_of(words: &[u64], base: u64, pc: u64, bp: u64) -> Walk {
        Walk {
            request: request(words, base, bp),
            pcs: vec![pc],
            pc,
            sp: base,
            bp,
            done: false,
        }
    }

    fn bytes(words: &[u64]) -> Vec<u8> {
        words.iter().flat_map(|w: &u64| w.to_le_bytes()).collect()
    }

    fn layout(sp_delta: u64) -> Layout {
        Layout {
            sp_delta,
            last: false,
        }
    }

    const TOP: Layout = Layout {
        sp_delta: 0,
        last: true,
    };

    #[test]
    fn follows_frame_pointers_where_no_delta_is_known() {
        // Words of a fake stack at `base`: frames at word 2 and word 6; the outer frame's saved bp
        // is 0 and its return address is 0x3000.
        let base = 0x10_000u64;
        let words = [0, 0, base + 6 * 8, 0x2000, 0, 0, 0, 0x3000, 0, 0];
        let mut table = FrameTable::with_layouts(&[]);
        let mut walk = walk_of(&words, base, 0x1000, base + 16);
        step_within(&mut walk, &mut table, &bytes(&words), base, 32);
        assert_eq!(walk.pcs, vec![0x1000, 0x2000, 0x3000]);
        assert!(walk.done);
    }

    #[test]
    fn stops_on_a_chain_that_goes_down() {
        let base = 0x10_000u64;
        let words = [0, 0, base, 0x2000, 0, 0];
        let mut table = FrameTable::with_layouts(&[]);
        let mut walk = walk_of(&words, base, 0x1000, base + 16);
        step_within(&mut walk, &mut table, &bytes(&words), base, 32);
        assert_eq!(walk.pcs, vec![0x1000, 0x2000]);
        assert!(walk.done);
    }

    #[test]
    fn unwinds_by_the_sp_delta_without_a_frame_pointer() {
        // A syscall goroutine before Go 1.23: no bp. 0x1000 has a 24-byte frame (bp saved at
        // +16), 0x2000 is frameless, 0x3000 is goexit.
        let base = 0x10_000u64;
        let words = [0, 0, base + 0x100, 0x2000, 0x3000, 0, 0, 0];
        let mut table =
            FrameTable::with_layouts(&[(0x1000, layout(24)), (0x2000, layout(0)), (0x3000, TOP)]);
        let mut walk = walk_of(&words, base, 0x1000, 0);
        step_within(&mut walk, &mut table, &bytes(&words), base, 32);
        assert_eq!(walk.pcs, vec![0x1000, 0x2000, 0x3000]);
        assert!(walk.done, "goexit ends the stack");
    }

    #[test]
    fn the_delta_wins_over_a_frame_pointer_that_disagrees() {
        // bp points at an old frame (words 4–5) holding a stale return address 0x9999; the delta
        // says the return address is at sp + 8.
        let base = 0x10_000u64;
        let words = [0, 0x2000, 0, 0, base + 0x40, 0x9999, 0, 0];
        let mut table = FrameTable::with_layouts(&[(0x1000, layout(8)), (0x2000, TOP)]);
        let mut walk = walk_of(&words, base, 0x1000, base + 32);
        step_within(&mut walk, &mut table, &bytes(&words), base, 32);
        assert_eq!(walk.pcs, vec![0x1000, 0x2000]);
    }

    #[test]
    fn a_frameless_function_in_the_middle_is_not_skipped() {
        // C (0x1000, 24-byte frame, bp chain to A's frame) was called by frameless B (0x2000),
        // called by A (0x3000, 24-byte frame), called from goexit (0x4000). Following bp alone
        // would go from C straight to A's caller and lose A.
        let base = 0x10_000u64;
        let a_bp = base + 56;
        let words = [0, 0, a_bp, 0x2000, 0x3000, 0, 0, 0, 0x4000];
        let mut table = FrameTable::with_layouts(&[
            (0x1000, layout(24)),
            (0x2000, layout(0)),
            (0x3000, layout(24)),
            (0x4000, TOP),
        ]);
        let mut walk = walk_of(&words, base, 0x1000, base + 16);
        step_within(&mut walk, &mut table, &bytes(&words), base, 32);
        assert_eq!(walk.pcs, vec![0x1000, 0x2000, 0x3000, 0x4000]);
    }

    fn record() -> GoroutineRecord {
        GoroutineRecord {
            goid: 7,
            state: goroscope_model::goroutines::GoroutineState::Waiting,
            wait_reason: 0,
            wait_since_ns: 0,
            creation_pc: 0,
            start_pc: 0,
            stack: None,
            tracking_seq: None,
        }
    }

    #[test]
    fn a_goroutine_that_ran_is_unwound_again_even_at_the_same_depth() {
        // A fake stack in our own memory: one frame whose return address we change.
        let mut words: Vec<u64> = vec![0; 8];
        let base = words.as_ptr() as u64;
        words[2] = base + 6 * 8; // saved bp -> outer frame
        words[3] = 0x2000; // return address
        words[6] = 0;
        words[7] = 0x3000;
        let mut memory = ProcessMemory::new(std::process::id());
        let mut table = FrameTable::with_layouts(&[]);
        let mut cache = StackCache::default();
        let request = |seq: u8| UnwindRequest {
            record: 0,
            goid: 7,
            pc: 0x1000,
            sp: base,
            bp: base + 16,
            stack_hi: base + 8 * 8,
            tracking_seq: Some(seq),
        };
        let mut records = [record()];
        let stacks = cache
            .resolve(&mut memory, &mut table, &[request(1)], 32, &mut records)
            .unwrap();
        assert_eq!(stacks, vec![vec![0x1000, 0x2000, 0x3000]]);
        // It blocked again elsewhere at the same depth, and its trackingSeq moved.
        words[3] = 0x2500;
        std::hint::black_box(&words);
        let stacks = cache
            .resolve(&mut memory, &mut table, &[request(1)], 32, &mut records)
            .unwrap();
        assert_eq!(
            stacks,
            vec![vec![0x1000, 0x2000, 0x3000]],
            "same seq: cached"
        );
        let stacks = cache
            .resolve(&mut memory, &mut table, &[request(2)], 32, &mut records)
            .unwrap();
        assert_eq!(
            stacks,
            vec![vec![0x1000, 0x2500, 0x3000]],
            "seq moved: unwound again"
        );
        assert_eq!(cache.unwound_last, 1);
    }
}
