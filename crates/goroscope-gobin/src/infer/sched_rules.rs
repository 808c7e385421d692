//! Offsets of `runtime.p` fields and of the scheduler globals in `runtime.schedt`, from the
//! scheduler functions that touch them. Offsets in `schedt` are measured from `runtime.sched`,
//! which is found as `locate` finds it: the `LOCK XADDQ` on `sched.goidgen` minus the goidgen
//! offset (borrowed: it is schedt's first field in every release so far).

use std::collections::BTreeSet;

use iced_x86::Mnemonic;

use super::steps::{
    loads_from_root, offset_within, pointer_accesses, single, static_accesses, stores_into_root,
};
use crate::locate::decode::{Root, Value};
use crate::locate::{rules, Functions};

/// Largest offset believed inside `schedt`.
const SCHEDT_LIMIT: u64 = 1 << 12;

/// `p.status` from `runtime.(*p).init`: `pp.status = _Pgcstop` stores the constant 3 into the
/// receiver.
pub(super) fn p_status(code: &mut Functions) -> Result<u64, String> {
    let steps = code.steps("runtime.(*p).init")?;
    single(
        stores_into_root(steps, Root::Argument(0), 4, Mnemonic::Mov, Value::Const(3)),
        "store of _Pgcstop into the receiver",
    )
}

/// `p.id`: `runtime.(*p).init(id)` stores its argument into the receiver (`pp.id = id`, and from
/// Go 1.27 also `pp.gcw.id = id`); `runtime.pidleput(pp)` reads `pp.id` for the idle mask. The one
/// offset both do is `id`.
pub(super) fn p_id(code: &mut Functions) -> Result<u64, String> {
    let stored = stores_into_root(
        code.steps("runtime.(*p).init")?,
        Root::Argument(0),
        4,
        Mnemonic::Mov,
        Value::argument(1),
    );
    let read = loads_from_root(code.steps("runtime.pidleput")?, Root::Argument(0), 4);
    single(
        stored.intersection(&read).copied().collect(),
        "field set from the id argument in (*p).init and read in pidleput",
    )
}

/// `p.runqhead`, `p.runqtail` and `p.runnext` from `runtime.runqput`: `pp.runnext.cas(...)` is its
/// only 8-byte `LOCK CMPXCHG`, `atomic.StoreRel(&pp.runqtail, t+1)` its only 4-byte `XCHG`, and
/// `runqhead` the other 4-byte field it loads. `runtime.pidleput`'s inlined `runqempty(pp)` must
/// read the same three.
pub(super) fn run_queue(code: &mut Functions) -> Result<(u64, u64, u64), String> {
    let steps = code.steps("runtime.runqput")?;
    let runnext = single(
        pointer_accesses(steps, Mnemonic::Cmpxchg, 8, Some(true)),
        "8-byte LOCK CMPXCHG (runnext)",
    )?;
    let tail = single(
        pointer_accesses(steps, Mnemonic::Xchg, 4, None),
        "4-byte XCHG (store-release of runqtail)",
    )?;
    let mut loads = pointer_accesses(steps, Mnemonic::Mov, 4, None);
    loads.remove(&tail);
    let head = single(loads, "4-byte load other than runqtail (runqhead)")?;
    let empty_check = code.steps("runtime.pidleput")?;
    let words = loads_from_root(empty_check, Root::Argument(0), 4);
    let pointers = loads_from_root(empty_check, Root::Argument(0), 8);
    if !words.contains(&head) || !words.contains(&tail) || !pointers.contains(&runnext) {
        return Err(format!(
            "runtime.pidleput does not read runqhead {head}, runqtail {tail} and runnext {runnext}"
        ));
    }
    Ok((head, tail, runnext))
}

/// The linked address of `runtime.sched`, from the goid generator (see the module doc).
pub(super) fn sched_base(code: &mut Functions, goidgen: u64) -> Result<u64, String> {
    let elf = code.elf();
    code.search(&["runtime.newproc1"], |steps| {
        rules::sched(elf, steps, 16, goidgen)
    })
    .or_else(|first| {
        code.search(&["runtime.oneNewExtraM"], |steps| {
            rules::sched(elf, steps, 1, goidgen)
        })
        .map_err(|second| format!("{first} and {second}"))
    })
}

/// `schedt.npidle` from `runtime.pidleput`: `sched.npidle.Add(1)` is its only 4-byte `LOCK XADD` to
/// a global; `runtime.pidleget`'s `Add(-1)` must agree when it can be read.
pub(super) fn npidle(code: &mut Functions, sched: u64) -> Result<u64, String> {
    let put = single(
        static_accesses(
            code.steps("runtime.pidleput")?,
            Mnemonic::Xadd,
            4,
            Some(true),
        ),
        "4-byte LOCK XADD to a global",
    )?;
    if let Ok(steps) = code.steps("runtime.pidleget") {
        let get = static_accesses(steps, Mnemonic::Xadd, 4, Some(true));
        if !get.is_empty() && !get.contains(&put) {
            return Err(format!(
                "runtime.pidleget adds to {get:x?}, runtime.pidleput to {put:#x}"
            ));
        }
    }
    offset_within(put, sched, SCHEDT_LIMIT)
}

/// `schedt.nmspinning` from `runtime.wakep`: `sched.nmspinning.CompareAndSwap(0, 1)` is its only
/// 4-byte `LOCK CMPXCHG` on a global.
pub(super) fn nmspinning(code: &mut Functions, sched: u64) -> Result<u64, String> {
    let found = single(
        static_accesses(
            code.steps("runtime.wakep")?,
            Mnemonic::Cmpxchg,
            4,
            Some(true),
        ),
        "4-byte LOCK CMPXCHG on a global",
    )?;
    offset_within(found, sched, SCHEDT_LIMIT)
}

/// The global run queue's length (`schedt.runqsize`, or `runq.size` from Go 1.25) from
/// `runtime.goschedImpl`: the inlined `globrunqput(gp)` ends in `sched.runqsize++` (or
/// `q.size++`), its only plain 4-byte `INC` of a global; `runtime.(*p).destroy` increments the same.
pub(super) fn runqsize(code: &mut Functions, sched: u64) -> Result<u64, String> {
    let found = single(
        static_accesses(
            code.steps("runtime.goschedImpl")?,
            Mnemonic::Inc,
            4,
            Some(false),
        ),
        "plain 4-byte INC of a global",
    )?;
    if let Ok(steps) = code.steps("runtime.(*p).destroy") {
        let destroy: BTreeSet<u64> = static_accesses(steps, Mnemonic::Inc, 4, Some(false));
        if !destroy.is_empty() && !destroy.contains(&found) {
            return Err(format!(
                "runtime.(*p).destroy increments {destroy:x?}, runtime.goschedImpl {found:#x}"
            ));
        }
    }
    offset_within(found, sched, SCHEDT_LIMIT)
}
