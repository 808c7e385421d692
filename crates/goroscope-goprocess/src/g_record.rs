//! Decoding one goroutine record (`runtime.g`) as read from the target: its state, id, wait
//! reason and times, creation and start pcs, its pprof labels pointer, and where to start unwinding its stack (the saved
//! scheduling registers, or for a goroutine in a system call the `syscallpc`/`syscallsp` it saved
//! on the way in). A record that does not make sense was torn by the running target.

use goroscope_model::goroutines::{GoroutineRecord, GoroutineState};

use crate::memory::LeBytes;
use crate::unwind::UnwindRequest;

/// How many bytes of each `g` to read: up to the end of the last field goroscope uses.
pub(crate) fn g_read_span(offsets: &goroscope_gobin::offsets::RuntimeOffsets) -> u64 {
    let g = &offsets.g;
    g.required_fields()
        .into_iter()
        .chain(g.tracking_seq)
        .chain(g.labels)
        .max()
        .unwrap_or(0)
        + 8
}

/// Adds a live record (and its unwind request) to the snapshot; false when the record was torn.
pub(crate) fn keep(
    parsed: Parsed,
    records: &mut Vec<GoroutineRecord>,
    pending: &mut Vec<UnwindRequest>,
) -> bool {
    match parsed {
        Parsed::Live(record, unwind) => {
            if let Some(mut request) = unwind {
                request.record = records.len();
                pending.push(request);
            }
            records.push(record);
            true
        }
        Parsed::NotLive => true,
        Parsed::Torn => false,
    }
}

pub(crate) enum Parsed {
    Live(GoroutineRecord, Option<UnwindRequest>),
    NotLive,
    Torn,
}

pub(crate) fn parse_g(
    bytes: &[u8],
    offsets: &goroscope_gobin::offsets::RuntimeOffsets,
    goid_limit: u64,
    syscall_bp: bool,
) -> Parsed {
    let g = &offsets.g;
    let Some(state) = GoroutineState::from_status(bytes.u32_at(g.atomicstatus)) else {
        return Parsed::Torn;
    };
    if !state.is_live() {
        return Parsed::NotLive;
    }
    let goid = bytes.u64_at(g.goid);
    if goid == 0 || goid > goid_limit {
        return Parsed::Torn;
    }
    let stack_lo = bytes.u64_at(g.stack_lo);
    let stack_hi = bytes.u64_at(g.stack_hi);
    if stack_lo >= stack_hi {
        return Parsed::Torn;
    }
    let record = GoroutineRecord {
        goid,
        state,
        wait_reason: bytes.u8_at(g.waitreason),
        wait_since_ns: bytes.u64_at(g.waitsince) as i64,
        creation_pc: bytes.u64_at(g.gopc),
        start_pc: bytes.u64_at(g.startpc),
        stack: None,
        tracking_seq: g.tracking_seq.map(|offset| bytes.u8_at(offset)),
        labels: g.labels.map_or(0, |offset| bytes.u64_at(offset)),
    };
    let unwindable = matches!(
        state,
        GoroutineState::Waiting
            | GoroutineState::Runnable
            | GoroutineState::Syscall
            | GoroutineState::Preempted
            | GoroutineState::Leaked
    );
    let syscall_sp = bytes.u64_at(g.syscallsp);
    let (mut pc, sp, bp) = if state == GoroutineState::Syscall && syscall_sp != 0 {
        // Where Go's own traceback starts a goroutine in a system call: the pc and sp of
        // entersyscall's caller. Before Go 1.23 nothing saved bp on the way in: the unwinder
        // goes by the pcsp table instead.
        let bp = if syscall_bp {
            bytes.u64_at(g.sched_bp)
        } else {
            0
        };
        (bytes.u64_at(g.syscallpc), syscall_sp, bp)
    } else {
        (
            bytes.u64_at(g.sched_pc),
            bytes.u64_at(g.sched_sp),
            bytes.u64_at(g.sched_bp),
        )
    };
    if pc != 0 && pc == record.start_pc {
        // Never run yet: the saved pc is its function's entry, not a return address. Every pc
        // of a stack is symbolized as `pc - 1`, so step past the entry to stay inside it.
        pc += 1;
    }
    let request = (unwindable && sp >= stack_lo && sp < stack_hi).then_some(UnwindRequest {
        record: 0,
        goid,
        pc,
        sp,
        bp,
        stack_hi,
        tracking_seq: record.tracking_seq,
    });
    Parsed::Live(record, request)
}
