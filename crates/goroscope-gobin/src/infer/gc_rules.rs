//! Offsets of the GC figures goroscope reads: `runtime.mstats` fields (measured from the address of
//! `memstats.heapStats`, the receiver the allocator passes to `(*consistentHeapStats)` methods and
//! mstats' first field in every release so far) and `runtime.gcControllerState` fields (measured
//! from the receiver of its own methods, so they need no global's address).

use std::collections::BTreeSet;

use iced_x86::Mnemonic;

use super::steps::{offset_within, single, static_accesses, stores_into_root};
use crate::locate::decode::{FieldPath, Root, Step, Value};
use crate::locate::{rules, Functions};

/// Largest offset believed inside `mstats`.
const MSTATS_LIMIT: u64 = 1 << 15;

/// The linked address of `runtime.memstats`: the receiver of the `(*consistentHeapStats)` methods
/// the mcache calls (`memstats.heapStats.acquire()` / `release()`).
pub(super) fn memstats_base(code: &mut Functions) -> Result<u64, String> {
    let entries: Vec<u64> = ["acquire", "release"]
        .iter()
        .filter_map(|method| code.entry(&format!("runtime.(*consistentHeapStats).{method}")))
        .collect();
    if entries.is_empty() {
        return Err(
            "runtime.(*consistentHeapStats).acquire/release not in the function table".into(),
        );
    }
    let elf = code.elf();
    code.search(
        &[
            "runtime.(*mcache).refill",
            "runtime.(*mcache).releaseAll",
            "runtime.(*mcache).allocLarge",
        ],
        |steps| rules::method_receiver(elf, steps, &entries),
    )
}

/// The `mstats` fields `runtime.gcMarkTermination` records at the end of a cycle.
pub(super) struct PauseRecord {
    /// `numgc`.
    pub numgc: Result<u64, String>,
    /// `pause_ns` and `pause_total_ns`.
    pub pauses: Result<(u64, u64), String>,
    /// `last_gc_unix`.
    pub last_gc_unix: Result<u64, String>,
}

/// From `runtime.gcMarkTermination`, relative to `memstats`:
/// - `numgc`: read as the index of `pause_ns[numgc%256]` (one byte) and incremented by
///   `memstats.numgc++` (a plain 4-byte INC);
/// - `pause_ns` and `pause_total_ns`: `pause_ns[...] = work.pauseNS` is an indexed store into a
///   global array of a value loaded from a global, and `pause_total_ns += work.pauseNS` adds the
///   same global's value to another global;
/// - `last_gc_unix`: `atomic.Store64(&memstats.last_gc_unix, unixNow)` stores the very value that
///   `pause_end[...] = unixNow` stores into the other global array.
pub(super) fn pause_record(code: &mut Functions, memstats: u64) -> Result<PauseRecord, String> {
    let steps = code.steps("runtime.gcMarkTermination")?;
    let relative = |address: u64| offset_within(address, memstats, MSTATS_LIMIT);

    let mut read_narrow = static_accesses(steps, Mnemonic::Movzx, 1, None);
    read_narrow.extend(static_accesses(steps, Mnemonic::Mov, 4, None));
    let incremented = static_accesses(steps, Mnemonic::Inc, 4, Some(false));
    let numgc = single(
        read_narrow.intersection(&incremented).copied().collect(),
        "global read narrowly and incremented (numgc)",
    )
    .and_then(relative);

    let arrays = indexed_stores(steps);
    let totals: Vec<(u64, Value)> = steps
        .iter()
        .filter(|step| step.mnemonic == Mnemonic::Add)
        .filter_map(|step| {
            let memory = step.memory.filter(|m| m.write && m.size == 8)?;
            Some((memory.static_address()?, step.register_operand()?))
        })
        .collect();
    let pause_pairs: BTreeSet<(u64, u64)> = arrays
        .iter()
        .filter(|(_, value)| matches!(value, Value::LoadedFrom(_)))
        .flat_map(|(array, value)| {
            totals
                .iter()
                .filter(move |(_, added)| added.same_as(*value))
                .map(move |(total, _)| (*array, *total))
        })
        .collect();
    let pauses = match pause_pairs.len() {
        1 => pause_pairs
            .iter()
            .next()
            .copied()
            .ok_or_else(|| "no pair".to_string()),
        n => Err(format!(
            "{n} (array, total) pairs fed from the same global (pause_ns, pause_total_ns)"
        )),
    }
    .and_then(|(array, total)| Ok((relative(array)?, relative(total)?)));

    let pause_array = pause_pairs.iter().next().map(|(array, _)| *array);
    let unix_now: Vec<Value> = arrays
        .iter()
        .filter(|(array, _)| Some(*array) != pause_array)
        .map(|(_, value)| *value)
        .collect();
    let last: BTreeSet<u64> = steps
        .iter()
        .filter(|step| matches!(step.mnemonic, Mnemonic::Xchg | Mnemonic::Mov))
        .filter_map(|step| {
            let memory = step.memory.filter(|m| m.write && m.size == 8)?;
            let stored = step.stored_value()?;
            unix_now
                .iter()
                .any(|value| value.same_as(stored))
                .then_some(memory.static_address())
                .flatten()
        })
        .collect();
    let last_gc_unix = single(
        last,
        "global stored with the value of pause_end[...] (last_gc_unix)",
    )
    .and_then(relative);
    Ok(PauseRecord {
        numgc,
        pauses,
        last_gc_unix,
    })
}

/// `(array, value)` of every 8-byte store indexed off a static array address.
fn indexed_stores(steps: &[Step]) -> Vec<(u64, Value)> {
    steps
        .iter()
        .filter(|step| step.mnemonic == Mnemonic::Mov)
        .filter_map(|step| {
            let memory = step
                .memory
                .filter(|m| m.write && m.size == 8 && m.indexed)?;
            let Value::Address(array) = memory.base else {
                return None;
            };
            (memory.displacement == 0).then_some((array, step.register_operand()?))
        })
        .collect()
}

/// `heapMarked` and `heapLive` from `runtime.(*gcControllerState).resetLive(bytesMarked)`:
/// `c.heapMarked = bytesMarked` is a plain store of the argument into the receiver and
/// `c.heapLive.Store(bytesMarked)` an `XCHG` of it.
pub(super) fn reset_live(code: &mut Functions) -> Result<(u64, u64), String> {
    let steps = code.steps("runtime.(*gcControllerState).resetLive")?;
    let into = |mnemonic, what: &str| {
        single(
            stores_into_root(steps, Root::Argument(0), 8, mnemonic, Value::argument(1)),
            what,
        )
    };
    Ok((
        into(
            Mnemonic::Mov,
            "plain store of bytesMarked into the receiver",
        )?,
        into(
            Mnemonic::Xchg,
            "atomic store of bytesMarked into the receiver",
        )?,
    ))
}

/// `gcPercentHeapGoal` from `runtime.(*gcControllerState).heapGoalInternal`: `goal =
/// c.gcPercentHeapGoal.Load()` is the receiver field compared with the result of
/// `c.memoryLimitHeapGoal()`.
pub(super) fn heap_goal(code: &mut Functions) -> Result<u64, String> {
    let limit = code
        .entry("runtime.(*gcControllerState).memoryLimitHeapGoal")
        .ok_or("runtime.(*gcControllerState).memoryLimitHeapGoal is not in the function table")?;
    let steps = code.steps("runtime.(*gcControllerState).heapGoalInternal")?;
    let limit_goal = Value::Path(FieldPath::root(Root::Returned {
        callee: limit,
        index: 0,
    }));
    let receiver = FieldPath::root(Root::Argument(0));
    let found: BTreeSet<u64> = steps
        .iter()
        .filter(|step| step.mnemonic == Mnemonic::Cmp && step.registers.len() == 2)
        .filter(|step| step.registers.iter().any(|(_, v)| v.same_as(limit_goal)))
        .filter_map(|step| {
            step.registers
                .iter()
                .find_map(|(_, value)| value.path()?.parent().filter(|(base, _)| *base == receiver))
                .map(|(_, offset)| offset)
        })
        .collect();
    single(found, "receiver field compared with memoryLimitHeapGoal()")
}

/// Cross-check of `heapLive` against `(*gcControllerState).update(dHeapLive, ...)`, whose
/// `gcController.heapLive.Add(dHeapLive)` is a `LOCK XADD` of the argument into the global.
/// Agreement is only demanded when both the global and the method can be read.
pub(super) fn heap_live_agrees(code: &mut Functions, heap_live: u64) -> Result<(), String> {
    let Ok(controller) = code.gc_controller() else {
        return Ok(());
    };
    let Ok(steps) = code.steps("runtime.(*gcControllerState).update") else {
        return Ok(());
    };
    let added: BTreeSet<u64> = steps
        .iter()
        .filter(|step| step.locked && step.mnemonic == Mnemonic::Xadd)
        .filter(|step| {
            step.register_operand()
                .is_some_and(|v| v.same_as(Value::argument(1)))
        })
        .filter_map(|step| step.memory?.static_address())
        .collect();
    if added.is_empty() || added.contains(&(controller + heap_live)) {
        Ok(())
    } else {
        Err(format!(
            "update adds dHeapLive to {added:x?}, not gcController+{heap_live}"
        ))
    }
}
