//! The per-global rules: which runtime function to decode and which access pattern in it gives
//! away each global's address. Every rule was checked against Go 1.19 through 1.26 binaries (see
//! `tests/locate.rs`); each demands a single candidate and says why when it finds none or several.

use std::collections::BTreeSet;

use iced_x86::Mnemonic;

use super::decode::{Step, Value};
use crate::elf::ElfFile;

/// Sections the Go linker puts package-level variables in.
const DATA_SECTIONS: &[&str] = &[".data", ".noptrdata", ".bss", ".noptrbss"];

/// True if `address` lies in one of the sections holding Go variables.
pub(crate) fn is_variable_address(elf: &ElfFile, address: u64) -> bool {
    elf.sections().iter().any(|section| {
        DATA_SECTIONS.contains(&section.name.as_str())
            && address >= section.address
            && address - section.address < section.size
    })
}

/// The single element of `candidates`, or a reason naming what was found.
fn single(candidates: BTreeSet<u64>, what: &str) -> Result<u64, String> {
    let mut iter = candidates.iter();
    match (iter.next(), iter.next()) {
        (Some(&only), None) => Ok(only),
        (None, _) => Err(format!("no {what}")),
        (Some(_), Some(_)) => Err(format!(
            "{} candidates for {what}: {}",
            candidates.len(),
            candidates
                .iter()
                .map(|address| format!("{address:#x}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// Static addresses of the `width`-byte variables the steps read or write (not LEA).
fn accessed(elf: &ElfFile, steps: &[Step], width: usize) -> BTreeSet<u64> {
    steps
        .iter()
        .filter_map(|step| step.memory.filter(|memory| memory.size == width))
        .filter(|memory| memory.read || memory.write)
        .filter_map(|memory| memory.static_address())
        .filter(|address| is_variable_address(elf, *address))
        .collect()
}

/// Static addresses the steps mention at all (accesses of any width and LEAs).
fn referenced(steps: &[Step]) -> BTreeSet<u64> {
    steps
        .iter()
        .filter_map(|step| step.memory.and_then(|memory| memory.static_address()))
        .collect()
}

/// `runtime.allgs` in `runtime.allgadd`: `allgs = append(allgs, gp)` touches the slice header's
/// three words (ptr, len, cap) at A, A+8 and A+16; exactly one variable has all three, and the
/// rule keeps only those also written.
pub(crate) fn allgs(elf: &ElfFile, steps: &[Step]) -> Result<u64, String> {
    let words = accessed(elf, steps, 8);
    let headers: BTreeSet<u64> = words
        .iter()
        .copied()
        .filter(|a| words.contains(&a.wrapping_add(8)) && words.contains(&a.wrapping_add(16)))
        .collect();
    let written: BTreeSet<u64> = steps
        .iter()
        .filter_map(|step| {
            step.memory
                .filter(|memory| memory.write && memory.size == 8)
        })
        .filter_map(|memory| memory.static_address())
        .collect();
    let appended: BTreeSet<u64> = headers
        .iter()
        .copied()
        .filter(|a| (0..3).any(|word| written.contains(&a.wrapping_add(8 * word))))
        .collect();
    single(appended, "slice header (ptr, len, cap) appended to")
}

/// `runtime.allglen` in `runtime.allgadd`: `atomicstoreuintptr(&allglen, uintptr(len(allgs)))`
/// is an XCHG (or a plain store) to a variable of the value just loaded from `allgs+8`.
pub(crate) fn allglen(elf: &ElfFile, steps: &[Step], allgs: u64) -> Result<u64, String> {
    let stores: BTreeSet<u64> = steps
        .iter()
        .filter(|step| matches!(step.mnemonic, Mnemonic::Xchg | Mnemonic::Mov))
        .filter(|step| step.register_operand() == Some(Value::LoadedFrom(allgs.wrapping_add(8))))
        .filter_map(|step| {
            step.memory
                .filter(|memory| memory.write && memory.size == 8)
        })
        .filter_map(|memory| memory.static_address())
        .filter(|address| !(allgs..allgs.saturating_add(24)).contains(address))
        .filter(|address| is_variable_address(elf, *address))
        .collect();
    single(stores, "store of len(allgs) to a variable")
}

/// `runtime.sched` from the `LOCK XADDQ` on `sched.goidgen`: in `runtime.newproc1` it adds the
/// goid cache batch (16), in `runtime.oneNewExtraM` it adds 1. `sched = target - goidgen`.
pub(crate) fn sched(
    elf: &ElfFile,
    steps: &[Step],
    increment: u64,
    goidgen_offset: u64,
) -> Result<u64, String> {
    let targets: BTreeSet<u64> = steps
        .iter()
        .filter(|step| step.locked && step.mnemonic == Mnemonic::Xadd)
        .filter(|step| step.register_operand() == Some(Value::Const(increment)))
        .filter_map(|step| step.memory.filter(|memory| memory.size == 8))
        .filter_map(|memory| memory.static_address())
        .filter(|address| is_variable_address(elf, *address))
        .filter_map(|address| address.checked_sub(goidgen_offset))
        .collect();
    single(
        targets,
        &format!("LOCK XADDQ of {increment} to a variable (sched.goidgen)"),
    )
}

/// `runtime.waitReasonStrings` and its length in `runtime.waitReason.String`:
/// `if w >= waitReason(len(waitReasonStrings))` is a CMP of the byte with the length, and
/// `waitReasonStrings[w]` a LEAQ of the table used as the base of an indexed load.
pub(crate) fn wait_reason_strings(elf: &ElfFile, steps: &[Step]) -> Result<(u64, u64), String> {
    let count = steps
        .iter()
        .find(|step| step.mnemonic == Mnemonic::Cmp && step.memory.is_none())
        .and_then(|step| step.immediate)
        .filter(|count| (1..=256).contains(count))
        .ok_or_else(|| "no bounds check (CMP with a constant)".to_string())?;
    let tables: BTreeSet<u64> = steps
        .iter()
        .filter_map(|step| step.memory)
        .filter(|memory| memory.indexed && memory.read)
        .filter_map(|memory| match memory.base {
            Value::Address(address) => Some(address),
            _ => None,
        })
        .filter(|address| is_variable_address(elf, *address))
        .collect();
    let table = single(tables, "indexed load from a table variable")?;
    // Every entry is a Go string header whose length (not relocated, even in PIE) is short.
    let bytes = usize::try_from(count * 16)
        .ok()
        .and_then(|len| elf.read_at(table, len))
        .ok_or_else(|| format!("table at {table:#x} is not in the file"))?;
    let plausible = bytes.chunks_exact(16).all(|entry| {
        entry
            .get(8..16)
            .and_then(|len| <[u8; 8]>::try_from(len).ok())
            .is_some_and(|len| u64::from_le_bytes(len) < 256)
    });
    if !plausible {
        return Err(format!("table at {table:#x} does not hold short strings"));
    }
    Ok((table, count))
}

/// `runtime.allp` in a function that ranges over it (`runtime.preemptall`,
/// `runtime.gcMarkTinyAllocs`): the slice's pointer and length are loaded from A and A+8, and its
/// elements are `*p`s whose `status` field (`p_status_offset`) is read. When several slices
/// qualify, only those whose elements are used as `*p` count.
pub(crate) fn allp(elf: &ElfFile, steps: &[Step], p_status_offset: u64) -> Result<u64, String> {
    let words = accessed(elf, steps, 8);
    let headers: BTreeSet<u64> = words
        .iter()
        .copied()
        .filter(|a| words.contains(&a.wrapping_add(8)))
        .collect();
    if headers.len() <= 1 {
        return single(headers, "slice (ptr, len) loaded");
    }
    let used_as_p: BTreeSet<u64> = steps
        .iter()
        .filter_map(|step| step.memory)
        .filter(|memory| memory.displacement == p_status_offset && memory.size == 4)
        .filter_map(|memory| match memory.base {
            Value::Element(header) if headers.contains(&header) => Some(header),
            _ => None,
        })
        .collect();
    single(used_as_p, "slice whose elements' status field is read")
}

/// `runtime.memstats` in `runtime.gcMarkTermination`:
/// `memstats.pause_ns[memstats.numgc%uint32(len(memstats.pause_ns))] = ...` reads `numgc` (as a
/// byte or a uint32) at B+numgc and takes the address B+pause_ns; exactly one base B has both.
pub(crate) fn memstats(
    elf: &ElfFile,
    steps: &[Step],
    numgc_offset: u64,
    pause_ns_offset: u64,
) -> Result<u64, String> {
    let mentioned = referenced(steps);
    let mut narrow = accessed(elf, steps, 1);
    narrow.extend(accessed(elf, steps, 4));
    let bases: BTreeSet<u64> = narrow
        .iter()
        .filter_map(|address| address.checked_sub(numgc_offset))
        .filter(|base| {
            base.checked_add(pause_ns_offset)
                .is_some_and(|pause| mentioned.contains(&pause))
        })
        .filter(|base| is_variable_address(elf, *base))
        .collect();
    single(bases, "variable with both numgc and pause_ns used")
}

/// `runtime.gcController`: calls of `(*gcControllerState)` methods on it pass its address in AX
/// (`LEAQ runtime.gcController(SB), AX; CALL runtime.(*gcControllerState).init(SB)` in
/// `runtime.gcinit`).
pub(crate) fn method_receiver(
    elf: &ElfFile,
    steps: &[Step],
    method_entries: &[u64],
) -> Result<u64, String> {
    let receivers: BTreeSet<u64> = steps
        .iter()
        .filter(|step| {
            step.call_target
                .is_some_and(|target| method_entries.contains(&target))
        })
        .filter_map(|step| match step.first_argument {
            Value::Address(address) => Some(address),
            _ => None,
        })
        .filter(|address| is_variable_address(elf, *address))
        .collect();
    single(
        receivers,
        "method call with a variable's address as receiver",
    )
}
