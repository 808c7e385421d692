//! Tests of the unwinder: frame pointers, pcsp deltas where they are missing or disagree, and
//! the stack cache.

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
        position: 0,
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
        labels: 0,
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
