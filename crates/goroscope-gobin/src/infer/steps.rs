//! Small queries over decoded steps that the inference rules share: stores and their values,
//! accesses to fields of known pointers, and "exactly one candidate" with a reason otherwise.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use iced_x86::Mnemonic;

use crate::locate::decode::{FieldPath, MemoryOperand, Root, Step, Value};

/// The single element of `candidates`, or a reason naming what was found.
pub(super) fn single(candidates: BTreeSet<u64>, what: &str) -> Result<u64, String> {
    let mut iter = candidates.iter();
    match (iter.next(), iter.next()) {
        (Some(&only), None) => Ok(only),
        (None, _) => Err(format!("no {what}")),
        (Some(_), Some(_)) => {
            let mut listed = String::new();
            for (index, candidate) in candidates.iter().enumerate() {
                let _ = write!(
                    listed,
                    "{}{candidate:#x}",
                    if index > 0 { ", " } else { "" }
                );
            }
            Err(format!(
                "{} candidates for {what}: {listed}",
                candidates.len()
            ))
        }
    }
}

/// True for an operand that is neither a static address nor the function's own stack frame.
pub(super) fn through_pointer(memory: &MemoryOperand) -> bool {
    memory.static_address().is_none()
        && memory.stack_slot.is_none()
        && !matches!(memory.base, Value::Address(_))
        && memory.base_register != iced_x86::Register::RSP
        && memory.base_register != iced_x86::Register::None
}

/// Steps writing `size` bytes through a pointer (not static, not the stack), with the value written.
pub(super) fn pointer_stores(
    steps: &[Step],
    size: usize,
) -> impl Iterator<Item = (&Step, MemoryOperand, Value)> {
    steps.iter().filter_map(move |step| {
        let memory = step.memory.filter(|memory| {
            memory.write && memory.size == size && !memory.indexed && through_pointer(memory)
        })?;
        Some((step, memory, step.stored_value()?))
    })
}

/// Displacements of `size`-byte plain loads (`MOV`, `MOVZX`) from fields of `root` itself.
pub(super) fn loads_from_root(steps: &[Step], root: Root, size: usize) -> BTreeSet<u64> {
    steps
        .iter()
        .filter(|step| matches!(step.mnemonic, Mnemonic::Mov | Mnemonic::Movzx))
        .filter_map(|step| step.memory.filter(|m| m.read && !m.write && m.size == size))
        .filter_map(|memory| memory.field_of())
        .filter(|(path, _)| *path == FieldPath::root(root))
        .map(|(_, offset)| offset)
        .collect()
}

/// Displacements of `size`-byte stores into fields of `root` itself whose value is `value`, with
/// instruction `mnemonic`.
pub(super) fn stores_into_root(
    steps: &[Step],
    root: Root,
    size: usize,
    mnemonic: Mnemonic,
    value: Value,
) -> BTreeSet<u64> {
    pointer_stores(steps, size)
        .filter(|(step, _, stored)| step.mnemonic == mnemonic && stored.same_as(value))
        .filter_map(|(_, memory, _)| memory.field_of())
        .filter(|(path, _)| *path == FieldPath::root(root))
        .map(|(_, offset)| offset)
        .collect()
}

/// Static addresses the steps access with `mnemonic` at width `size` (optionally only locked).
pub(super) fn static_accesses(
    steps: &[Step],
    mnemonic: Mnemonic,
    size: usize,
    locked: Option<bool>,
) -> BTreeSet<u64> {
    steps
        .iter()
        .filter(|step| step.mnemonic == mnemonic)
        .filter(|step| locked.is_none_or(|locked| step.locked == locked))
        .filter_map(|step| step.memory.filter(|memory| memory.size == size))
        .filter_map(|memory| memory.static_address())
        .collect()
}

/// Displacements of `size`-byte `mnemonic` accesses (optionally only locked) through pointers.
pub(super) fn pointer_accesses(
    steps: &[Step],
    mnemonic: Mnemonic,
    size: usize,
    locked: Option<bool>,
) -> BTreeSet<u64> {
    steps
        .iter()
        .filter(|step| step.mnemonic == mnemonic)
        .filter(|step| locked.is_none_or(|locked| step.locked == locked))
        .filter_map(|step| step.memory)
        .filter(|memory| memory.size == size && !memory.indexed && through_pointer(memory))
        .map(|memory| memory.displacement)
        .collect()
}

/// `address - base` when it lies within the first `limit` bytes after `base`.
pub(super) fn offset_within(address: u64, base: u64, limit: u64) -> Result<u64, String> {
    address
        .checked_sub(base)
        .filter(|offset| *offset < limit)
        .ok_or_else(|| format!("{address:#x} is not within {limit} bytes after {base:#x}"))
}
