//! A tiny forward data-flow pass over one function's x86-64 machine code: decodes it with
//! iced-x86 and, for each instruction, records which static addresses it touches and what the
//! registers it uses are known to hold (a constant, the address of a global, a value loaded from a
//! global, an element of a slice whose header is a global).
//!
//! The pass is linear (it follows the byte order, not the control flow), so register values are
//! "what was last written in program text". That is enough for the patterns the Go compiler emits
//! around the runtime globals (`LEAQ sym(SB), R; XCHGQ X, 0(R)` and the like), and the rules in
//! `rules.rs` cross-check every candidate. Nothing here can panic on odd bytes: undecodable
//! instructions only reset the state.

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic,
    OpAccess, OpKind, Register,
};

/// What a register is known to hold.
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
}

/// A memory operand, resolved as far as the known register values allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemoryOperand {
    /// The value of the base register; `Address(target)` for RIP-relative operands.
    pub base: Value,
    /// True when an index register takes part.
    pub indexed: bool,
    /// Displacement added to the base (0 for RIP-relative operands: it is folded into `base`).
    pub displacement: u64,
    /// Access width in bytes (0 for LEA and for operands without a size).
    pub size: usize,
    /// True if the instruction reads the memory operand.
    pub read: bool,
    /// True if the instruction writes the memory operand.
    pub write: bool,
}

impl MemoryOperand {
    /// The static address accessed, when the base is a known address and there is no index.
    pub fn static_address(&self) -> Option<u64> {
        match self.base {
            Value::Address(address) if !self.indexed => address.checked_add(self.displacement),
            _ => None,
        }
    }
}

/// One decoded instruction with what the pass knew when it ran.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// Its mnemonic.
    pub mnemonic: Mnemonic,
    /// True with a LOCK prefix.
    pub locked: bool,
    /// Its memory operand, if any (LEA included, with `size` 0).
    pub memory: Option<MemoryOperand>,
    /// Values of its register operands (before the instruction), in operand order.
    pub registers: Vec<(Register, Value)>,
    /// Its immediate operand, if any.
    pub immediate: Option<u64>,
    /// For direct calls: the callee's entry.
    pub call_target: Option<u64>,
    /// For calls: what AX (the first integer argument in Go's register ABI) held.
    pub first_argument: Value,
}

impl Step {
    /// The value of the first register operand that is not part of the memory operand.
    pub fn register_operand(&self) -> Option<Value> {
        self.registers.first().map(|(_, value)| *value)
    }
}

/// Register state: one slot per 64-bit general-purpose register.
struct Registers {
    values: [Value; 16],
}

impl Registers {
    fn new() -> Registers {
        Registers {
            values: [Value::Unknown; 16],
        }
    }

    fn slot(register: Register) -> Option<usize> {
        let full = register.full_register();
        if !full.is_gpr64() {
            return None;
        }
        Some((full as usize).wrapping_sub(Register::RAX as usize)).filter(|slot| *slot < 16)
    }

    fn get(&self, register: Register) -> Value {
        Registers::slot(register)
            .and_then(|slot| self.values.get(slot).copied())
            .unwrap_or(Value::Unknown)
    }

    fn set(&mut self, register: Register, value: Value) {
        if let Some(cell) = Registers::slot(register).and_then(|slot| self.values.get_mut(slot)) {
            *cell = value;
        }
    }

    fn clear(&mut self) {
        self.values = [Value::Unknown; 16];
    }
}

/// Decodes `code` (the bytes of one function linked at `entry`) into steps.
pub(crate) fn decode(code: &[u8], entry: u64) -> Vec<Step> {
    let mut decoder = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
    let mut factory = InstructionInfoFactory::new();
    let mut registers = Registers::new();
    let mut steps = Vec::with_capacity(code.len() / 4);
    let mut instruction = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.code() == Code::INVALID {
            registers.clear();
            continue;
        }
        let step = describe(&instruction, &registers);
        apply(&instruction, &step, &mut registers, &mut factory);
        steps.push(step);
    }
    steps
}

/// Records what `instruction` touches, given the register state before it.
fn describe(instruction: &Instruction, registers: &Registers) -> Step {
    let mut memory = None;
    let mut register_values = Vec::new();
    let mut immediate = None;
    for operand in 0..instruction.op_count() {
        match instruction.op_kind(operand) {
            OpKind::Memory => memory = Some(memory_operand(instruction, registers)),
            OpKind::Register => {
                let register = instruction.op_register(operand);
                register_values.push((register, registers.get(register)));
            }
            _ => {
                if let Ok(value) = instruction.try_immediate(operand) {
                    immediate = Some(value);
                }
            }
        }
    }
    let call_target = match instruction.flow_control() {
        FlowControl::Call if instruction.op_kind(0) == OpKind::NearBranch64 => {
            Some(instruction.near_branch_target())
        }
        _ => None,
    };
    Step {
        mnemonic: instruction.mnemonic(),
        locked: instruction.has_lock_prefix(),
        memory,
        registers: register_values,
        immediate,
        call_target,
        first_argument: if call_target.is_some() {
            registers.get(Register::RAX)
        } else {
            Value::Unknown
        },
    }
}

fn memory_operand(instruction: &Instruction, registers: &Registers) -> MemoryOperand {
    let (base, displacement) = if instruction.is_ip_rel_memory_operand() {
        (Value::Address(instruction.ip_rel_memory_address()), 0)
    } else if instruction.memory_base() == Register::None {
        (Value::Unknown, instruction.memory_displacement64())
    } else {
        (
            registers.get(instruction.memory_base()),
            instruction.memory_displacement64(),
        )
    };
    let (read, write) = memory_access(instruction);
    MemoryOperand {
        base,
        indexed: instruction.memory_index() != Register::None,
        displacement,
        size: instruction.memory_size().size(),
        read,
        write,
    }
}

/// Whether the instruction reads and/or writes its memory operand, from its mnemonic (enough for
/// the handful of instructions the rules look at; everything else counts as a read).
fn memory_access(instruction: &Instruction) -> (bool, bool) {
    let memory_first = instruction.op_count() > 0 && instruction.op_kind(0) == OpKind::Memory;
    match instruction.mnemonic() {
        Mnemonic::Lea => (false, false),
        Mnemonic::Mov | Mnemonic::Movups | Mnemonic::Movaps | Mnemonic::Movsd => {
            (!memory_first, memory_first)
        }
        Mnemonic::Xchg | Mnemonic::Xadd | Mnemonic::Cmpxchg | Mnemonic::Inc | Mnemonic::Dec => {
            (true, true)
        }
        Mnemonic::Add | Mnemonic::Sub | Mnemonic::And | Mnemonic::Or | Mnemonic::Xor => {
            (true, memory_first)
        }
        _ => (true, false),
    }
}

/// Updates the register state after `instruction`.
fn apply(
    instruction: &Instruction,
    step: &Step,
    registers: &mut Registers,
    factory: &mut InstructionInfoFactory,
) {
    if instruction.flow_control() == FlowControl::Call {
        registers.clear();
        return;
    }
    // The value the destination gets, computed before clobbering anything.
    let destination = instruction.op0_register();
    let new_value = match (instruction.mnemonic(), instruction.op_kind(0)) {
        (Mnemonic::Lea, OpKind::Register) => step.memory.and_then(|memory| {
            memory
                .static_address()
                .map(Value::Address)
                .filter(|_| destination.size() == 8)
        }),
        (Mnemonic::Mov, OpKind::Register) => mov_value(instruction, step, destination),
        (Mnemonic::Xor, OpKind::Register)
            if instruction.op_kind(1) == OpKind::Register
                && instruction.op1_register() == destination =>
        {
            Some(Value::Const(0))
        }
        _ => None,
    };
    let info = factory.info(instruction);
    for used in info.used_registers() {
        if matches!(
            used.access(),
            OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
        ) {
            registers.set(used.register(), Value::Unknown);
        }
    }
    if let Some(value) = new_value {
        registers.set(destination, value);
    }
}

/// What `MOV destination, source` leaves in the destination, when known.
fn mov_value(instruction: &Instruction, step: &Step, destination: Register) -> Option<Value> {
    let width = destination.size();
    match instruction.op_kind(1) {
        OpKind::Immediate32 | OpKind::Immediate64 | OpKind::Immediate32to64 if width >= 4 => {
            instruction.try_immediate(1).ok().map(Value::Const)
        }
        OpKind::Register if width == 8 => step.registers.get(1).map(|(_, value)| *value),
        OpKind::Memory if width == 8 => {
            let memory = step.memory?;
            if let Some(address) = memory.static_address() {
                return Some(Value::LoadedFrom(address));
            }
            match memory.base {
                Value::LoadedFrom(header) if memory.indexed && memory.displacement == 0 => {
                    (instruction.memory_index_scale() == 8).then_some(Value::Element(header))
                }
                _ => None,
            }
        }
        _ => None,
    }
}
