//! A tiny forward data-flow pass over one function's x86-64 machine code: decodes it with
//! iced-x86 and, for each instruction, records what it touches (memory operand, registers) and
//! what those are known to hold (see `value.rs`): constants, static addresses and what was loaded
//! from them, the function's arguments, the current goroutine (R14), call results, fields loaded
//! through any of those, and values spilled to and reloaded from the function's own stack frame.
//!
//! The pass is linear (it follows the byte order, not the control flow), so register values are
//! "what was last written in program text". That is enough for the patterns the Go compiler emits
//! around the runtime globals (`LEAQ sym(SB), R; XCHGQ X, 0(R)` and the like) and around the fields
//! of runtime structs (`MOVQ gp+8(SP), AX; MOVQ CX, 0x120(AX)`), and the rules in `rules.rs` and in
//! `infer/` cross-check every candidate. Nothing here can panic on odd bytes: undecodable
//! instructions only reset the state.

use iced_x86::{
    Code, Decoder, DecoderOptions, FlowControl, Instruction, InstructionInfoFactory, Mnemonic,
    OpAccess, OpKind, Register,
};

pub(crate) use super::value::{FieldPath, Root, Value};
use super::value::{Registers, StackSlots};

/// A memory operand, resolved as far as the known register values allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MemoryOperand {
    /// The value of the base register; `Address(target)` for RIP-relative operands.
    pub base: Value,
    /// The base register itself (`Register::None` without one, `RIP` for RIP-relative operands).
    pub base_register: Register,
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
    /// For an SP-relative operand without index, while the stack pointer is tracked: its offset
    /// from the stack pointer at the function's entry.
    pub stack_slot: Option<i64>,
}

impl MemoryOperand {
    /// The static address accessed, when the base is a known address and there is no index.
    pub fn static_address(&self) -> Option<u64> {
        match self.base {
            Value::Address(address) if !self.indexed => address.checked_add(self.displacement),
            _ => None,
        }
    }

    /// `(base path, offset)` when the operand is a field of a known pointer (no index).
    pub fn field_of(&self) -> Option<(FieldPath, u64)> {
        if self.indexed || self.base_register == Register::RSP {
            return None;
        }
        Some((self.base.path()?, self.displacement))
    }
}

/// One decoded instruction with what the pass knew when it ran.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    /// Where it is.
    pub address: u64,
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
    /// The register it writes as its first operand, if any (loads, moves, arithmetic).
    pub destination: Option<Register>,
    /// What `destination` holds afterwards, when known.
    pub result: Value,
}

impl Step {
    /// The value of the first register operand that is not part of the memory operand.
    pub fn register_operand(&self) -> Option<Value> {
        self.registers.first().map(|(_, value)| *value)
    }

    /// For an instruction writing its memory operand: the value written, when it is a register
    /// or an immediate (`MOV mem, reg`, `XCHG reg, mem`, `MOV mem, imm`).
    pub fn stored_value(&self) -> Option<Value> {
        self.memory.filter(|memory| memory.write)?;
        self.register_operand()
            .or_else(|| self.immediate.map(Value::Const))
    }
}

/// Callees that are known to leave the general-purpose registers alone except R11: the write
/// barrier helpers (`runtime.gcWriteBarrier*`), called in the middle of ordinary stores.
#[derive(Debug, Default, Clone)]
pub(crate) struct CallFacts {
    /// Entries of the register-preserving callees.
    pub preserving: Vec<u64>,
}

/// Where the stack pointer is relative to its value at the function's entry.
struct StackPointer {
    /// Current offset from the entry value, when known.
    delta: Option<i64>,
    /// The lowest offset seen: the frame's, which is where the stack pointer is in the body
    /// again after an early return.
    frame: i64,
}

impl StackPointer {
    fn key(&self, displacement: u64) -> Option<i64> {
        self.delta
            .map(|delta| delta.wrapping_add(displacement as i64))
    }

    /// Updates the offset after `instruction`, which writes RSP.
    fn moved_by(&mut self, instruction: &Instruction) {
        let immediate = instruction.try_immediate(1).ok().map(|value| value as i64);
        let change = match (instruction.mnemonic(), immediate) {
            (Mnemonic::Push | Mnemonic::Pushfq, _) => Some(-8),
            (Mnemonic::Pop | Mnemonic::Popfq, _) => Some(8),
            (Mnemonic::Sub, Some(amount)) if instruction.op0_register() == Register::RSP => {
                Some(amount.wrapping_neg())
            }
            (Mnemonic::Add, Some(amount)) if instruction.op0_register() == Register::RSP => {
                Some(amount)
            }
            _ => None,
        };
        self.delta = match (self.delta, change) {
            (Some(delta), Some(change)) => Some(delta.wrapping_add(change)),
            _ => None,
        };
        if let Some(delta) = self.delta {
            self.frame = self.frame.min(delta);
        }
    }

    /// After a return or an unconditional jump, the next instruction in byte order is body code
    /// reached some other way, with the frame set up.
    fn back_in_body(&mut self) {
        self.delta = Some(self.frame);
    }
}

/// Decodes `code` (the bytes of one function linked at `entry`) into steps.
pub(crate) fn decode(code: &[u8], entry: u64, facts: &CallFacts) -> Vec<Step> {
    let mut decoder = Decoder::with_ip(64, code, entry, DecoderOptions::NONE);
    let mut factory = InstructionInfoFactory::new();
    let mut registers = Registers::at_entry();
    let mut slots = StackSlots::default();
    let mut stack = StackPointer {
        delta: Some(0),
        frame: 0,
    };
    let mut steps = Vec::with_capacity(code.len() / 4);
    let mut instruction = Instruction::default();
    while decoder.can_decode() {
        decoder.decode_out(&mut instruction);
        if instruction.code() == Code::INVALID {
            registers = Registers::at_entry();
            slots.clear();
            continue;
        }
        let mut step = describe(&instruction, &registers, &stack);
        apply(
            &instruction,
            &mut step,
            &mut registers,
            &mut slots,
            &mut stack,
            &mut factory,
            facts,
        );
        steps.push(step);
    }
    steps
}

/// Records what `instruction` touches, given the state before it.
fn describe(instruction: &Instruction, registers: &Registers, stack: &StackPointer) -> Step {
    let mut memory = None;
    let mut register_values = Vec::new();
    let mut immediate = None;
    for operand in 0..instruction.op_count() {
        match instruction.op_kind(operand) {
            OpKind::Memory => memory = Some(memory_operand(instruction, registers, stack)),
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
        address: instruction.ip(),
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
        destination: (instruction.op_count() > 0 && instruction.op_kind(0) == OpKind::Register)
            .then(|| instruction.op0_register()),
        result: Value::Unknown,
    }
}

fn memory_operand(
    instruction: &Instruction,
    registers: &Registers,
    stack: &StackPointer,
) -> MemoryOperand {
    let base_register = instruction.memory_base();
    let (base, displacement) = if instruction.is_ip_rel_memory_operand() {
        (Value::Address(instruction.ip_rel_memory_address()), 0)
    } else if base_register == Register::None {
        (Value::Unknown, instruction.memory_displacement64())
    } else {
        (
            registers.get(base_register),
            instruction.memory_displacement64(),
        )
    };
    let indexed = instruction.memory_index() != Register::None;
    let (read, write) = memory_access(instruction);
    MemoryOperand {
        base,
        base_register,
        indexed,
        displacement,
        size: instruction.memory_size().size(),
        read,
        write,
        stack_slot: (base_register == Register::RSP && !indexed)
            .then(|| stack.key(displacement))
            .flatten(),
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

/// Updates the register, stack-slot and stack-pointer state after `instruction`, and records in
/// `step` what its destination register got.
fn apply(
    instruction: &Instruction,
    step: &mut Step,
    registers: &mut Registers,
    slots: &mut StackSlots,
    stack: &mut StackPointer,
    factory: &mut InstructionInfoFactory,
    facts: &CallFacts,
) {
    let flow = instruction.flow_control();
    if flow == FlowControl::Call {
        match step.call_target {
            Some(callee) if facts.preserving.contains(&callee) => {
                // A write barrier helper works in its own frame, below the caller's: the
                // caller's stack slots (R14 spilled at 0(SP), say) keep their values.
                registers.set(Register::R11, Value::Computed(step.address));
                return;
            }
            callee => registers.after_call(callee, step.address),
        }
        // An ABI0 callee takes its arguments and leaves its result at 0(SP).
        if let Some(key) = stack.key(0) {
            slots.forget(key, 8);
        }
        return;
    }
    record_store(instruction, step, slots);
    // The value the destination gets, computed before clobbering anything.
    let destination = instruction.op0_register();
    let new_value = destination_value(instruction, step, slots, destination);
    let info = factory.info(instruction);
    let mut wrote_stack_pointer = false;
    for used in info.used_registers() {
        if matches!(
            used.access(),
            OpAccess::Write | OpAccess::CondWrite | OpAccess::ReadWrite | OpAccess::ReadCondWrite
        ) {
            if used.register().full_register() == Register::RSP {
                wrote_stack_pointer = true;
            }
            registers.set(used.register(), Value::Computed(step.address));
        }
    }
    if let Some(value) = new_value {
        registers.set(destination, value);
    }
    if step.destination.is_some() {
        step.result = registers.get(destination);
    }
    if wrote_stack_pointer {
        stack.moved_by(instruction);
    }
    if matches!(
        flow,
        FlowControl::Return | FlowControl::UnconditionalBranch | FlowControl::IndirectBranch
    ) {
        stack.back_in_body();
    }
}

/// Remembers what a store into the function's own frame put there.
fn record_store(instruction: &Instruction, step: &Step, slots: &mut StackSlots) {
    let Some(memory) = step.memory.filter(|memory| memory.write) else {
        return;
    };
    let Some(key) = memory.stack_slot else {
        return;
    };
    let len = memory.size as u64;
    let value = match instruction.mnemonic() {
        Mnemonic::Mov => step.stored_value().unwrap_or(Value::Unknown),
        _ => Value::Unknown,
    };
    slots.store(key, len, value);
}

/// What a load, move or LEA leaves in its destination register, when known.
fn destination_value(
    instruction: &Instruction,
    step: &Step,
    slots: &StackSlots,
    destination: Register,
) -> Option<Value> {
    if instruction.op_count() == 0 || instruction.op_kind(0) != OpKind::Register {
        return None;
    }
    match instruction.mnemonic() {
        Mnemonic::Lea => Some(
            step.memory
                .and_then(|memory| memory.static_address())
                .filter(|_| destination.size() == 8)
                .map_or(Value::Computed(step.address), Value::Address),
        ),
        Mnemonic::Mov | Mnemonic::Movzx | Mnemonic::Movsx | Mnemonic::Movsxd => {
            move_value(instruction, step, slots, destination)
        }
        Mnemonic::Xor
            if instruction.op_kind(1) == OpKind::Register
                && instruction.op1_register() == destination =>
        {
            Some(Value::Const(0))
        }
        _ => None,
    }
}

/// What `MOV destination, source` (or a zero/sign-extending load) leaves in the destination.
fn move_value(
    instruction: &Instruction,
    step: &Step,
    slots: &StackSlots,
    destination: Register,
) -> Option<Value> {
    let width = destination.size();
    if destination == Register::R14 && instruction.memory_segment() == Register::FS {
        // MOVQ FS:-8, R14: the runtime reloading the current goroutine after an ABI0 call.
        return Some(Value::current_g());
    }
    match instruction.op_kind(1) {
        OpKind::Immediate32 | OpKind::Immediate64 | OpKind::Immediate32to64 if width >= 4 => {
            instruction.try_immediate(1).ok().map(Value::Const)
        }
        OpKind::Register if width >= 4 => step.registers.get(1).map(|(_, value)| *value),
        OpKind::Memory => {
            let memory = step.memory?;
            if let Some(key) = memory.stack_slot {
                return Some(slots.get(key).unwrap_or(Value::Computed(step.address)));
            }
            if let Some(address) = memory.static_address() {
                return Some(if width == 8 {
                    Value::LoadedFrom(address)
                } else {
                    Value::Computed(step.address)
                });
            }
            if let Some((path, offset)) = memory.field_of() {
                return Some(
                    path.field(offset)
                        .map_or(Value::Computed(step.address), Value::Path),
                );
            }
            match memory.base {
                Value::LoadedFrom(header)
                    if memory.indexed && memory.displacement == 0 && width == 8 =>
                {
                    (instruction.memory_index_scale() == 8).then_some(Value::Element(header))
                }
                _ => None,
            }
        }
        _ => None,
    }
}
