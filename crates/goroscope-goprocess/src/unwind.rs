//! Unwinding the stacks of goroutines that are not running, with frame pointers, from the pc, sp
//! and bp the scheduler saved in their `g.sched`.
//!
//! Go on x86-64 keeps frame pointers: at a frame's bp sit the caller's bp and then the return
//! address. Each round reads one window of stack per goroutine still being walked (all goroutines
//! in one batched read), so a snapshot costs a few system calls however many goroutines there are.
//! A parked goroutine's frames do not change while it stays parked, so a stack is unwound once
//! and reused while the goroutine's saved (pc, sp, bp) and its `trackingSeq` (which moves every
//! time it stops running) stay the same. Without `trackingSeq` nothing is cached: (pc, sp, bp)
//! alone cannot tell two blocking calls at the same depth apart.

use goroscope_model::goroutines::GoroutineRecord;

use crate::error::MemoryError;
use crate::fasthash::FastMap;
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
    bp: u64,
    done: bool,
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
                    bp: request.bp,
                    done: max_frames <= 1,
                }),
            }
        }
        self.unwound_last = walks.len();
        self.walk(memory, &mut walks, max_frames)?;
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
                let request = &walk.request;
                if walk.bp < request.sp || walk.bp.saturating_add(16) > request.stack_hi {
                    walk.done = true;
                    continue;
                }
                let len = WINDOW.min(request.stack_hi - walk.bp) as usize;
                self.ranges.push(ReadRange {
                    address: walk.bp,
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
                step_within(walk, window, range.address, max_frames);
            }
        }
        Ok(())
    }
}

/// Follows the frame-pointer chain while it stays inside `window` (which starts at `base`).
fn step_within(walk: &mut Walk, window: &[u8], base: u64, max_frames: usize) {
    loop {
        let bp = walk.bp;
        if bp < base || bp + 16 > base + window.len() as u64 {
            return; // needs the next window
        }
        let at = bp - base;
        let saved_bp = window.u64_at(at);
        let return_address = window.u64_at(at + 8);
        if return_address == 0 {
            walk.done = true;
            return;
        }
        walk.pcs.push(return_address);
        if walk.pcs.len() >= max_frames
            || saved_bp <= bp
            || saved_bp.saturating_add(16) > walk.request.stack_hi
        {
            walk.done = true;
            return;
        }
        walk.bp = saved_bp;
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

    #[test]
    fn follows_frame_pointers_and_stops_at_the_top() {
        // Words of a fake stack at `base`: frames at word 2 and word 6; the outer frame's saved bp
        // is 0 and its return address is 0x3000.
        let base = 0x10_000u64;
        let words = [0, 0, base + 6 * 8, 0x2000, 0, 0, 0, 0x3000, 0, 0];
        let bytes: Vec<u8> = words.iter().flat_map(|w: &u64| w.to_le_bytes()).collect();
        let mut walk = Walk {
            request: request(&words, base, base + 16),
            pcs: vec![0x1000],
            bp: base + 16,
            done: false,
        };
        step_within(&mut walk, &bytes, base, 32);
        assert_eq!(walk.pcs, vec![0x1000, 0x2000, 0x3000]);
        assert!(walk.done);
    }

    #[test]
    fn stops_on_a_chain_that_goes_down() {
        let base = 0x10_000u64;
        let words = [0, 0, base, 0x2000, 0, 0];
        let bytes: Vec<u8> = words.iter().flat_map(|w: &u64| w.to_le_bytes()).collect();
        let mut walk = Walk {
            request: request(&words, base, base + 16),
            pcs: vec![0x1000],
            bp: base + 16,
            done: false,
        };
        step_within(&mut walk, &bytes, base, 32);
        assert_eq!(walk.pcs, vec![0x1000, 0x2000]);
        assert!(walk.done);
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
            .resolve(&mut memory, &[request(1)], 32, &mut records)
            .unwrap();
        assert_eq!(stacks, vec![vec![0x1000, 0x2000, 0x3000]]);
        // It blocked again elsewhere at the same depth, and its trackingSeq moved.
        words[3] = 0x2500;
        std::hint::black_box(&words);
        let stacks = cache
            .resolve(&mut memory, &[request(1)], 32, &mut records)
            .unwrap();
        assert_eq!(
            stacks,
            vec![vec![0x1000, 0x2000, 0x3000]],
            "same seq: cached"
        );
        let stacks = cache
            .resolve(&mut memory, &[request(2)], 32, &mut records)
            .unwrap();
        assert_eq!(
            stacks,
            vec![vec![0x1000, 0x2500, 0x3000]],
            "seq moved: unwound again"
        );
        assert_eq!(cache.unwound_last, 1);
    }
}
