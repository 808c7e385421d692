//! What the linear decoding pass (`decode.rs`) knows about a register or a stack slot: a constant,
//! a static address, a value loaded from a static address, a function argument, the current
//! goroutine, a call's result, a field loaded through any of those (up to three pointers deep), or
//! just "the value instruction X computed" — an identity that lets rules see that two instructions
//! use the same value without knowing what it is.

use iced_x86::Register;

/// Integer argument registers of Go's register ABI (ABIInternal), in argument order.
const ARGUMENT_REGISTERS: [Register; 9] = [
    Register::RAX,
    Register::RBX,
    Register::RCX,
    Register::RDI,
    Register::RSI,
    Register::R8,
    Register::R9,
    Register::R10,
    Register::R11,
];

/// How many loads deep a [`FieldPath`] follows pointers.
pub(crate) const MAX_DEPTH: usize = 3;

/// Where a chain of field loads starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Root {
    /// Integer argument `n` (0 = AX, 1 = BX, 2 = CX, ...) as the function received it.
    Argument(u8),
    /// The current goroutine: R14 in Go's register ABI.
    CurrentG,
    /// Result `index` (0 = AX, 1 = BX, ...) of a direct call to the function at `callee`.
    Returned {
        /// The callee's entry.
        callee: u64,
        /// Which result register.
        index: u8,
    },
    /// Whatever the instruction at this address computed (see [`Value::Computed`]).
    Computed(u64),
}

/// A root followed by up to [`MAX_DEPTH`] field loads: `root`, `root.f1`, `root.f1.f2`, ...
/// (`offsets[..depth]` are the byte offsets loaded from, in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FieldPath {
    /// Where the chain starts.
    pub root: Root,
    /// The offsets loaded from, outermost first; only the first `depth` count.
    pub offsets: [u64; MAX_DEPTH],
    /// How many loads were followed (0: the root itself).
    pub depth: u8,
}

impl FieldPath {
    /// The root itself.
    pub fn root(root: Root) -> FieldPath {
        FieldPath {
            root,
            offsets: [0; MAX_DEPTH],
            depth: 0,
        }
    }

    /// The value loaded from `offset` of this pointer, if the chain is not too deep yet.
    pub fn field(self, offset: u64) -> Option<FieldPath> {
        let depth = usize::from(self.depth);
        let mut offsets = self.offsets;
        *offsets.get_mut(depth)? = offset;
        Some(FieldPath {
            root: self.root,
            offsets,
            depth: self.depth + 1,
        })
    }

    /// The pointer this value was loaded from and the offset it was loaded at (`None` for a root).
    pub fn parent(self) -> Option<(FieldPath, u64)> {
        let last = usize::from(self.depth).checked_sub(1)?;
        let offset = *self.offsets.get(last)?;
        let mut offsets = self.offsets;
        offsets[last] = 0;
        Some((
            FieldPath {
                root: self.root,
                offsets,
                depth: self.depth - 1,
            },
            offset,
        ))
    }
}

/// What a register (or stack slot) is known to hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Value {
    /// Nothing known.
    Unknown,
    /// An integer constant (from `MOV reg, imm` or `XOR reg, reg`).
    Const(u64),
    /// A static address (from `LEAQ sym+off(SB), reg`).
    Address(u64),
    /// The 8-byte value loaded from a static address (`MOVQ sym+off(SB), reg`).
    LoadedFrom(u64),
    /// An 8-byte element of the slice whose data pointer was loaded from this static address
    /// (`MOVQ 0(base)(idx*8), reg` where `base` is `LoadedFrom(address)`).
    Element(u64),
    /// An argument, the current goroutine, a call's result, or a field loaded through one.
    Path(FieldPath),
    /// Whatever the instruction at this address computed: only its identity is known.
    Computed(u64),
}

impl Value {
    /// Integer argument `n`.
    pub fn argument(n: u8) -> Value {
        Value::Path(FieldPath::root(Root::Argument(n)))
    }

    /// The current goroutine.
    pub fn current_g() -> Value {
        Value::Path(FieldPath::root(Root::CurrentG))
    }

    /// The path, for values that are one (a computed value is the root of its own path).
    pub fn path(self) -> Option<FieldPath> {
        match self {
            Value::Path(path) => Some(path),
            Value::Computed(at) => Some(FieldPath::root(Root::Computed(at))),
            _ => None,
        }
    }

    /// True when both are the same known value (two `Unknown`s are never the same).
    pub fn same_as(self, other: Value) -> bool {
        self != Value::Unknown && self == other
    }
}

/// Register state: one slot per 64-bit general-purpose register.
pub(crate) struct Registers {
    values: [Value; 16],
}

impl Registers {
    /// The state at a function's entry: argument registers hold the arguments, R14 the current
    /// goroutine.
    pub fn at_entry() -> Registers {
        let mut registers = Registers {
            values: [Value::Unknown; 16],
        };
        for (index, register) in (0u8..).zip(ARGUMENT_REGISTERS) {
            registers.set(register, Value::argument(index));
        }
        registers.set(Register::R14, Value::current_g());
        registers
    }

    fn slot(register: Register) -> Option<usize> {
        let full = register.full_register();
        if !full.is_gpr64() {
            return None;
        }
        Some((full as usize).wrapping_sub(Register::RAX as usize)).filter(|slot| *slot < 16)
    }

    /// What `register` (any width) holds.
    pub fn get(&self, register: Register) -> Value {
        Registers::slot(register)
            .and_then(|slot| self.values.get(slot).copied())
            .unwrap_or(Value::Unknown)
    }

    /// Records what `register` (any width) holds.
    pub fn set(&mut self, register: Register, value: Value) {
        if let Some(cell) = Registers::slot(register).and_then(|slot| self.values.get_mut(slot)) {
            *cell = value;
        }
    }

    /// After a call: nothing survives but the current goroutine (the ABI restores R14), and the
    /// result registers hold the results of a direct call.
    pub fn after_call(&mut self, callee: Option<u64>, call_site: u64) {
        self.values = [Value::Unknown; 16];
        for (index, register) in (0u8..).zip(ARGUMENT_REGISTERS) {
            let result = match callee {
                Some(callee) => Value::Path(FieldPath::root(Root::Returned { callee, index })),
                None => Value::Computed(call_site),
            };
            self.set(register, result);
        }
        self.set(Register::R14, Value::current_g());
    }
}

/// What the function stored in its own stack frame (spilled arguments and locals), keyed by the
/// offset from the stack pointer at the function's entry.
#[derive(Default)]
pub(crate) struct StackSlots {
    slots: Vec<(i64, u64, Value)>,
}

impl StackSlots {
    /// The value last stored at exactly `key`, if known.
    pub fn get(&self, key: i64) -> Option<Value> {
        self.slots
            .iter()
            .rev()
            .find(|(at, _, _)| *at == key)
            .map(|(_, _, value)| *value)
    }

    /// A store of `len` bytes at `key`: forgets whatever it overlaps, then remembers `value`.
    pub fn store(&mut self, key: i64, len: u64, value: Value) {
        self.forget(key, len);
        if value != Value::Unknown {
            self.slots.push((key, len.max(1), value));
        }
    }

    /// Forgets every slot overlapping `len` bytes at `key`.
    pub fn forget(&mut self, key: i64, len: u64) {
        let end = key.saturating_add(i64::try_from(len.max(1)).unwrap_or(i64::MAX));
        self.slots.retain(|(at, size, _)| {
            let slot_end = at.saturating_add(i64::try_from(*size).unwrap_or(i64::MAX));
            slot_end <= key || *at >= end
        });
    }

    /// Forgets everything.
    pub fn clear(&mut self) {
        self.slots.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_go_down_and_up() {
        let g = FieldPath::root(Root::CurrentG);
        let m = g.field(0x30).unwrap();
        let p = m.field(0xd0).unwrap();
        let cache = p.field(0x180).unwrap();
        assert!(cache.field(8).is_none(), "at most three loads deep");
        assert_eq!(cache.parent(), Some((p, 0x180)));
        assert_eq!(p.parent(), Some((m, 0xd0)));
        assert_eq!(g.parent(), None);
    }

    #[test]
    fn stack_slots_forget_what_a_store_overlaps() {
        let mut slots = StackSlots::default();
        slots.store(8, 8, Value::Const(1));
        slots.store(16, 1, Value::Const(2));
        slots.store(12, 8, Value::Const(3));
        assert_eq!(slots.get(8), None);
        assert_eq!(slots.get(16), None);
        assert_eq!(slots.get(12), Some(Value::Const(3)));
        slots.forget(0, 64);
        assert_eq!(slots.get(12), None);
        assert!(!Value::Unknown.same_as(Value::Unknown));
    }
}
