//! Offsets of `runtime.g` fields, each read off the runtime function that reads or writes the field
//! in a way no other field is touched (the Go source line is quoted on each rule). Every rule
//! demands exactly one candidate and says why when it finds none or several.

use std::collections::BTreeSet;

use iced_x86::{Mnemonic, Register};

use super::steps::{pointer_accesses, pointer_stores, single, stores_into_root, through_pointer};
use crate::locate::decode::{FieldPath, Root, Step, Value};
use crate::locate::Functions;

/// `sizeof(runtime.g)` from `runtime.malg`: `newg := new(g)` passes g's type descriptor to
/// `runtime.newobject`, and a type descriptor starts with the type's size.
pub(super) fn size(code: &mut Functions) -> Result<u64, String> {
    let newobject = code
        .entry("runtime.newobject")
        .ok_or("runtime.newobject is not in the function table")?;
    let elf = code.elf();
    let types: BTreeSet<u64> = code
        .steps("runtime.malg")?
        .iter()
        .filter(|step| step.call_target == Some(newobject))
        .filter_map(|step| match step.first_argument {
            Value::Address(descriptor) => Some(descriptor),
            _ => None,
        })
        .collect();
    let descriptor = single(types, "type descriptor passed to runtime.newobject")?;
    elf.read_u64_at(descriptor)
        .filter(|size| (64..=1 << 16).contains(size))
        .ok_or_else(|| format!("the type descriptor at {descriptor:#x} holds no plausible size"))
}

/// `stack.lo` and `stack.hi` from `runtime.malg.func1`: `newg.stack = stackalloc(...)` stores the
/// two results of `runtime.stackalloc` (AX, BX) into the new g.
pub(super) fn stack_bounds(code: &mut Functions) -> Result<(u64, u64), String> {
    let stackalloc = code
        .entry("runtime.stackalloc")
        .ok_or("runtime.stackalloc is not in the function table")?;
    let steps = code.steps("runtime.malg.func1")?;
    let result = |index| {
        let value = Value::Path(FieldPath::root(Root::Returned {
            callee: stackalloc,
            index,
        }));
        let found: BTreeSet<u64> = pointer_stores(steps, 8)
            .filter(|(_, _, stored)| stored.same_as(value))
            .map(|(_, memory, _)| memory.displacement)
            .collect();
        single(
            found,
            &format!("store of runtime.stackalloc's result {index}"),
        )
    };
    let (lo, hi) = (result(0)?, result(1)?);
    if hi != lo + 8 {
        return Err(format!(
            "stack.lo at {lo} and stack.hi at {hi} are not adjacent"
        ));
    }
    Ok((lo, hi))
}

/// `sched.sp`, `sched.pc` and `sched.bp` (offsets in g) from the assembly of `gogo` and
/// `runtime.mcall`. `gogo` restores a gobuf: it loads SP and BP from it and jumps to the pc it
/// loads, which gives the gobuf's own layout. `runtime.mcall` saves the caller's pc, sp and bp into
/// `g.sched` (stores relative to R14) and then loads the g0's saved SP: the one shift K that maps
/// the gobuf layout onto those stores is `g.sched`'s offset.
pub(super) fn sched(code: &mut Functions) -> Result<(u64, u64, u64), String> {
    let (sp, pc, bp) = gobuf_layout(code.steps("gogo")?)?;
    let steps = code.steps("runtime.mcall")?;
    let saved: BTreeSet<u64> = steps
        .iter()
        .filter_map(|step| step.memory.filter(|m| m.write && m.size == 8 && !m.indexed))
        .filter(|memory| memory.base_register == Register::R14)
        .map(|memory| memory.displacement)
        .collect();
    let shifts: BTreeSet<u64> = loads_into(steps, Register::RSP)
        .filter(|(memory_base, _)| *memory_base == Register::R14)
        .filter_map(|(_, displacement)| displacement.checked_sub(sp))
        .filter(|shift| {
            [sp, pc, bp]
                .iter()
                .all(|field| saved.contains(&(shift + field)))
        })
        .collect();
    let shift = single(shifts, "offset of g.sched matching runtime.mcall's saves")?;
    Ok((shift + sp, shift + pc, shift + bp))
}

/// The (sp, pc, bp) offsets in a gobuf, from `gogo`.
fn gobuf_layout(steps: &[Step]) -> Result<(u64, u64, u64), String> {
    let field = |register| {
        let found: BTreeSet<(Register, u64)> = loads_into(steps, register).collect();
        match found.len() {
            1 => found
                .into_iter()
                .next()
                .ok_or_else(|| "no load".to_string()),
            n => Err(format!("{n} loads into {register:?} in gogo")),
        }
    };
    let (sp_base, sp) = field(Register::RSP)?;
    let (bp_base, bp) = field(Register::RBP)?;
    // JMP reg, where reg was loaded from the gobuf: the pc.
    let pcs: BTreeSet<u64> = steps
        .iter()
        .filter(|step| step.mnemonic == Mnemonic::Jmp)
        .filter_map(|step| step.register_operand()?.path()?.parent())
        .map(|(_, offset)| offset)
        .collect();
    let pc = single(pcs, "jump through a register loaded from the gobuf")?;
    if sp_base != bp_base {
        return Err("SP and BP are restored from different registers".into());
    }
    Ok((sp, pc, bp))
}

/// `(base register, displacement)` of every 8-byte load into `destination`.
fn loads_into(steps: &[Step], destination: Register) -> impl Iterator<Item = (Register, u64)> + '_ {
    steps
        .iter()
        .filter(move |step| step.mnemonic == Mnemonic::Mov && step.destination == Some(destination))
        .filter_map(|step| step.memory.filter(|m| m.read && m.size == 8 && !m.indexed))
        .map(|memory| (memory.base_register, memory.displacement))
}

/// `syscallsp` and `syscallpc` from `runtime.reentersyscall(pc, sp, ...)`: `gp.syscallsp = sp` and
/// `gp.syscallpc = pc` store the arguments into the current g (ignoring `g.sched`, which an
/// inlined `save(pc, sp)` also writes).
pub(super) fn syscall_frame(
    code: &mut Functions,
    sched_sp: u64,
    sched_pc: u64,
) -> Result<(u64, u64), String> {
    let steps = code.steps("runtime.reentersyscall")?;
    let into_g = |argument, skip: u64, what: &str| {
        let mut found = stores_into_root(
            steps,
            Root::CurrentG,
            8,
            Mnemonic::Mov,
            Value::argument(argument),
        );
        found.remove(&skip);
        single(found, what)
    };
    Ok((
        into_g(1, sched_sp, "store of the sp argument into the current g")?,
        into_g(0, sched_pc, "store of the pc argument into the current g")?,
    ))
}

/// `atomicstatus` from `runtime.casgstatus`: `gp.atomicstatus.CompareAndSwap(oldval, newval)` is
/// its only 4-byte `LOCK CMPXCHG` through a pointer.
pub(super) fn atomicstatus(code: &mut Functions) -> Result<u64, String> {
    let steps = code.steps("runtime.casgstatus")?;
    single(
        pointer_accesses(steps, Mnemonic::Cmpxchg, 4, Some(true)),
        "4-byte LOCK CMPXCHG through a pointer",
    )
}

/// `waitreason` from `runtime.gopark(unlockf, lock, reason, ...)`: `gp.waitreason = reason` is the
/// one-byte store of the third argument into `mp.curg` (a pointer loaded through another).
pub(super) fn waitreason(code: &mut Functions) -> Result<u64, String> {
    let steps = code.steps("runtime.gopark")?;
    let found: BTreeSet<u64> = pointer_stores(steps, 1)
        .filter(|(_, _, stored)| stored.same_as(Value::argument(2)))
        .filter(|(_, memory, _)| memory.field_of().is_some_and(|(base, _)| base.depth >= 1))
        .map(|(_, memory, _)| memory.displacement)
        .collect();
    single(
        found,
        "one-byte store of the reason argument into a loaded g",
    )
}

/// `waitsince` from `runtime.markroot`: `if ... && gp.waitsince == 0 { gp.waitsince = work.tstart }`
/// compares the field with 0 and then stores a value loaded from a global into it.
pub(super) fn waitsince(code: &mut Functions) -> Result<u64, String> {
    let steps = code.steps("runtime.markroot")?;
    let mut found = BTreeSet::new();
    for (index, step) in steps.iter().enumerate() {
        let Some(memory) = step.memory.filter(|m| m.write && m.size == 8 && !m.indexed) else {
            continue;
        };
        if !matches!(step.stored_value(), Some(Value::LoadedFrom(_))) || !through_pointer(&memory) {
            continue;
        }
        let compared = steps[..index].iter().rev().take(8).any(|earlier| {
            earlier.mnemonic == Mnemonic::Cmp
                && earlier.immediate == Some(0)
                && earlier.memory.is_some_and(|m| {
                    m.size == 8
                        && m.displacement == memory.displacement
                        && m.base_register == memory.base_register
                        && m.base.same_as(memory.base)
                })
        });
        if compared {
            found.insert(memory.displacement);
        }
    }
    single(found, "store of a global into a field just compared with 0")
}

/// What `runtime.newproc1(fn, callergp, callerpc, ...)` reveals about the new g.
pub(super) struct NewprocFields {
    /// `newg.gopc = callerpc`.
    pub gopc: u64,
    /// `newg.startpc = fn.fn`.
    pub startpc: u64,
    /// `newg.goid`, or why it was not found.
    pub goid: Result<u64, String>,
    /// `newg.parentGoid = callergp.goid` (Go 1.21+), or why it was not found.
    pub parent_goid: Result<u64, String>,
    /// `newg.trackingSeq = uint8(cheaprand())`, or why it was not found.
    pub tracking_seq: Result<u64, String>,
    /// `newg.labels = mp.curg.labels`, or why it was not found.
    pub labels: Result<u64, String>,
}

/// The new g's fields from `runtime.newproc1`. The new g is the pointer `callerpc` (third
/// argument) is stored into; the other rules only look at stores into that same pointer.
pub(super) fn newproc(code: &mut Functions) -> Result<NewprocFields, String> {
    let steps = code.steps("runtime.newproc1")?;
    let stores: Vec<(&Step, FieldPath, u64, Value)> = pointer_stores(steps, 8)
        .filter_map(|(step, memory, stored)| {
            let (base, offset) = memory.field_of()?;
            Some((step, base, offset, stored))
        })
        .collect();
    let gopc_stores: Vec<(FieldPath, u64)> = stores
        .iter()
        .filter(|(_, _, _, stored)| stored.same_as(Value::argument(2)))
        .map(|(_, base, offset, _)| (*base, *offset))
        .collect();
    let (newg, gopc) = match gopc_stores.as_slice() {
        [only] => *only,
        [] => return Err("no store of the callerpc argument through a pointer".into()),
        more => return Err(format!("{} stores of the callerpc argument", more.len())),
    };
    let into_newg = || stores.iter().filter(move |(_, base, _, _)| *base == newg);

    let fn_fn = FieldPath::root(Root::Argument(0)).field(0);
    let startpc: BTreeSet<u64> = into_newg()
        .filter(|(_, _, _, stored)| stored.path().is_some() && stored.path() == fn_fn)
        .map(|(_, _, offset, _)| *offset)
        .collect();
    let startpc = single(startpc, "store of fn.fn into the new g")?;

    // newg.parentGoid = callergp.goid: a field of the second argument copied to another offset.
    let copies: BTreeSet<(u64, u64)> = into_newg()
        .filter_map(|(_, _, offset, stored)| {
            let (from, source) = stored.path()?.parent()?;
            (from == FieldPath::root(Root::Argument(1)) && source != *offset)
                .then_some((source, *offset))
        })
        .collect();
    let copy = match copies.len() {
        1 => copies
            .into_iter()
            .next()
            .ok_or_else(|| "no copy".to_string()),
        0 => Err("no field of callergp copied into the new g (before Go 1.21)".to_string()),
        n => Err(format!("{n} fields of callergp copied into the new g")),
    };

    // newg.goid = pp.goidcache; pp.goidcache++: a field stored into the new g that is then
    // incremented where it was loaded from.
    let increments: Vec<(FieldPath, u64)> = steps
        .iter()
        .filter(|step| step.mnemonic == Mnemonic::Inc)
        .filter_map(|step| step.memory.filter(|m| m.write && m.size == 8))
        .filter_map(|memory| memory.field_of())
        .collect();
    let goid_cache: BTreeSet<u64> = into_newg()
        .filter(|(_, _, _, stored)| {
            stored
                .path()
                .and_then(FieldPath::parent)
                .is_some_and(|loaded| increments.contains(&loaded))
        })
        .map(|(_, _, offset, _)| *offset)
        .collect();
    let from_cache = single(
        goid_cache,
        "store of an incremented per-P counter into the new g",
    );
    let goid = match (&copy, from_cache) {
        (Ok((goid, _)), Ok(cached)) if *goid != cached => Err(format!(
            "callergp.goid at {goid} but the goid cache is stored at {cached}"
        )),
        (Ok((goid, _)), _) => Ok(*goid),
        (Err(_), cached) => cached,
    };
    Ok(NewprocFields {
        gopc,
        startpc,
        goid,
        parent_goid: copy.map(|(_, parent)| parent),
        tracking_seq: tracking_seq(steps, newg),
        labels: single(
            into_newg()
                .filter(|(_, _, offset, stored)| copied_from_current_curg(*stored, *offset))
                .map(|(_, _, offset, _)| *offset)
                .collect(),
            "store of a field of getg().m.curg into the same field of the new g",
        ),
    })
}

/// `if mp.curg != nil { newg.labels = mp.curg.labels }` (only user goroutines inherit pprof
/// labels; `mp` is `acquirem()`, i.e. `getg().m`): the value stored at `offset` of the new g was
/// loaded from the same offset of the g reached by two loads from R14. No other field of the new
/// g is copied from `getg().m.curg` (`parentGoid` and the synctest bubble come from `callergp`,
/// the second argument).
fn copied_from_current_curg(stored: Value, offset: u64) -> bool {
    stored
        .path()
        .filter(|path| path.root == Root::CurrentG && path.depth == 3)
        .and_then(FieldPath::parent)
        .is_some_and(|(_, source)| source == offset)
}

/// Where `runtime_setProfLabel` (pushed into runtime/pprof by `go:linkname`, so named
/// `runtime/pprof.runtime_setProfLabel`; linked only into programs that can set labels) stores
/// its argument: `getg().labels = labels` is its only 8-byte store of the argument into the
/// current g. `Ok(None)` when the function is not in the binary.
pub(super) fn set_prof_label(code: &mut Functions) -> Result<Option<u64>, String> {
    const SET_PROF_LABEL: &str = "runtime/pprof.runtime_setProfLabel";
    if code.entry(SET_PROF_LABEL).is_none() {
        return Ok(None);
    }
    let steps = code.steps(SET_PROF_LABEL)?;
    let stores = stores_into_root(steps, Root::CurrentG, 8, Mnemonic::Mov, Value::argument(0));
    single(stores, "store of the labels argument into the current g").map(Some)
}

/// `newg.trackingSeq = uint8(cheaprand()); if newg.trackingSeq%gTrackingPeriod == 0 {...}`: a
/// one-byte store into the new g of a value that is then tested against 7.
fn tracking_seq(steps: &[Step], newg: FieldPath) -> Result<u64, String> {
    let mut found = BTreeSet::new();
    for (index, step) in steps.iter().enumerate() {
        let Some(memory) = step.memory.filter(|m| m.write && m.size == 1) else {
            continue;
        };
        let Some(stored) = step.register_operand() else {
            continue;
        };
        if memory.field_of().map(|(base, _)| base) != Some(newg) {
            continue;
        }
        let tested = steps[index + 1..].iter().take(3).any(|later| {
            later.mnemonic == Mnemonic::Test
                && later.immediate == Some(7)
                && later.register_operand().is_some_and(|v| v.same_as(stored))
        });
        if tested {
            found.insert(memory.displacement);
        }
    }
    single(found, "one-byte store into the new g tested against 7")
}
