//! What the table says about frames: the source frames at a pc (with inlined calls expanded and
//! compiler-generated wrappers marked, as Go's own traceback needs them), the stack-pointer delta
//! at a pc (the `pcsp` table Go's traceback unwinds with when there is no frame pointer to
//! follow), and the function a wrapper calls (what a `go f(x)` statement really started).

use std::collections::HashMap;

use iced_x86::{Decoder, DecoderOptions, FlowControl, OpKind};

use super::{
    FuncData, Pclntab, RawFunc, FUNCDATA_INL_TREE, MAX_INLINE_DEPTH, PCDATA_INL_TREE_INDEX,
};
use crate::pclntab::Frame;

/// `funcFlag` bit of functions at the top of a stack (`goexit`, `mstart`, …): unwinding ends there.
const FLAG_TOP_FRAME: u8 = 1;
/// `funcFlag` bit of functions that write SP arbitrarily: no unwinding past them.
const FLAG_SP_WRITE: u8 = 2;
/// Most bytes of a wrapper decoded to find what it calls (wrappers are a few dozen instructions).
const MAX_WRAPPER_BYTES: usize = 1024;
/// Wrappers followed when a wrapper calls another one (a promoted method through embedding).
const MAX_WRAPPER_CHAIN: usize = 4;

/// How to unwind through the frame of the function containing one pc.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLayout {
    /// Linked entry of the function.
    pub entry: u64,
    /// Bytes from the stack pointer, at this pc, to the slot holding the return address (the
    /// `pcsp` value): the caller's frame starts 8 bytes above that slot.
    pub sp_delta: u32,
    /// The function's `funcID`.
    pub func_id: u8,
    /// The stack ends in this function (`runtime.goexit`, `runtime.mstart`, …).
    pub top_frame: bool,
    /// The function sets SP to arbitrary values: its frame cannot be unwound.
    pub sp_write: bool,
}

/// The parts of an inline-tree entry the frames need.
#[derive(Debug, Clone, Copy)]
struct InlinedCall {
    name_off: u32,
    parent_pc: u32,
    func_id: u8,
}

impl Pclntab {
    /// The source frames at linked address `pc`, innermost first: one per inlined call, then the
    /// physical function. Empty if no function contains `pc`. `pc` is used as given (pass a return
    /// address minus one for callers' frames).
    pub fn frames_at(&self, pc: u64) -> Vec<Frame> {
        let Some(index) = self.index_at(pc) else {
            return Vec::new();
        };
        let Some(func) = self.raw_func(index) else {
            return Vec::new();
        };
        let end = self.entry_of(index + 1).unwrap_or(func.entry);
        let wrapper = self.wrapper_func_id();
        let mut frames = Vec::new();
        let mut at = pc;
        while frames.len() < MAX_INLINE_DEPTH {
            let Some(call) = self.inlined_call(&func, at) else {
                break;
            };
            let (file, line) = self.file_line(&func, at);
            frames.push(Frame {
                function: self.name(call.name_off),
                file,
                line,
                inlined: true,
                wrapper: wrapper == Some(call.func_id),
            });
            match func.entry.checked_add(u64::from(call.parent_pc)) {
                Some(parent) if parent < end => at = parent,
                _ => break,
            }
        }
        let (file, line) = self.file_line(&func, at);
        frames.push(Frame {
            function: self.name(func.name_off),
            file,
            line,
            inlined: false,
            wrapper: wrapper == Some(func.func_id),
        });
        frames
    }

    /// The `funcID` the runtime gives compiler-generated wrappers (`abi.FuncIDWrapper`: 21 in Go
    /// 1.19–1.21, 22 in 1.22–1.24, 23 from 1.25). It is found from the table itself rather than
    /// from a per-release list, so future releases need no update: every other special `funcID`
    /// marks one runtime function, while every binary has many wrappers (at least the
    /// hash/equality functions), so it is the most common non-zero `funcID`. `None` for a table
    /// without any.
    pub fn wrapper_func_id(&self) -> Option<u8> {
        *self.wrapper_id.get_or_init(|| {
            let mut counts = [0u32; 256];
            for index in 0..self.nfunc {
                if let Some(func) = self.raw_func(index) {
                    counts[usize::from(func.func_id)] += 1;
                }
            }
            let (id, count) = counts
                .iter()
                .enumerate()
                .skip(1)
                .max_by_key(|(_, count)| **count)?;
            (*count >= 2).then_some(id as u8)
        })
    }

    /// True when `func_id` marks a compiler-generated wrapper.
    pub fn is_wrapper(&self, func_id: u8) -> bool {
        self.wrapper_func_id() == Some(func_id)
    }

    /// How to unwind through the frame at linked address `pc`; `None` when no function contains
    /// it or its `pcsp` table has no value there.
    pub fn frame_layout(&self, pc: u64) -> Option<FrameLayout> {
        let func = self.raw_func(self.index_at(pc)?)?;
        let sp_delta = u32::try_from(self.pc_value(func.pcsp, func.entry, pc)?).ok()?;
        Some(FrameLayout {
            entry: func.entry,
            sp_delta,
            func_id: func.func_id,
            top_frame: func.flag & FLAG_TOP_FRAME != 0,
            sp_write: func.flag & FLAG_SP_WRITE != 0,
        })
    }

    /// The function a wrapper starting at linked address `entry` hands over to: what Go's
    /// traceback shows in its place (for `go f(x)`, which Go 1.21+ compiles into a `gowrapN`
    /// wrapper, that is `f`). Found from the wrapper's inlined calls when the compiler inlined
    /// the callee, else by decoding the wrapper's direct calls (bytes from `read_code(entry,
    /// len)`) and taking the first one that is neither in the runtime nor itself a wrapper;
    /// wrappers calling wrappers are followed a few levels. `None` if nothing is found.
    pub fn wrapper_callee(
        &self,
        entry: u64,
        read_code: &mut dyn FnMut(u64, usize) -> Option<Vec<u8>>,
    ) -> Option<String> {
        let mut entry = entry;
        for _ in 0..MAX_WRAPPER_CHAIN {
            let index = self.index_at(entry)?;
            let func = self.raw_func(index)?;
            let end = self.entry_of(index + 1)?;
            if let Some(name) = self.top_inlined_call(&func, end) {
                return Some(name);
            }
            let len = usize::try_from(end.checked_sub(func.entry)?)
                .ok()?
                .min(MAX_WRAPPER_BYTES);
            let code = read_code(func.entry, len)?;
            let mut next = None;
            for target in direct_calls(&code, func.entry) {
                let Some(callee) = self.raw_func(self.index_at(target)?) else {
                    continue;
                };
                if callee.entry != target || self.name(callee.name_off).starts_with("runtime.") {
                    continue;
                }
                if self.is_wrapper(callee.func_id) {
                    next = Some(target);
                    break;
                }
                return Some(self.name(callee.name_off));
            }
            entry = next?;
        }
        None
    }

    /// The first call inlined directly into `func` (not into another inlined call) that is
    /// neither in the runtime nor a wrapper, walking its pcs in order.
    fn top_inlined_call(&self, func: &RawFunc, end: u64) -> Option<String> {
        if matches!(self.funcdata, FuncData::Missing) {
            return None;
        }
        let table = self.pcdata(func, PCDATA_INL_TREE_INDEX)?;
        let mut seen = HashMap::new();
        for (pc, index) in self.pc_values(table, func.entry, end) {
            if index < 0 || seen.insert(index, ()).is_some() {
                continue;
            }
            let frames = self.frames_at(pc);
            // Innermost first: the entry just before the physical frame is the top-level call.
            let Some(top) = frames.len().checked_sub(2).and_then(|i| frames.get(i)) else {
                continue;
            };
            if !top.wrapper && !top.function.starts_with("runtime.") {
                return Some(top.function.clone());
            }
        }
        None
    }

    /// The inline-tree entry active at `pc` in `func`, if `pc` is in inlined code.
    fn inlined_call(&self, func: &RawFunc, pc: u64) -> Option<InlinedCall> {
        if matches!(self.funcdata, FuncData::Missing) {
            return None;
        }
        let index = self.pc_value(self.pcdata(func, PCDATA_INL_TREE_INDEX)?, func.entry, pc)?;
        let index = usize::try_from(index).ok()?; // negative: not inlined
        let tree = usize::try_from(self.funcdata_offset(func, FUNCDATA_INL_TREE)?).ok()?;
        // Go 1.20+: {funcID u8, _ [3]u8, nameOff i32, parentPc i32, startLine i32}.
        // Go 1.18–1.19: {parent i16, funcID u8, _ u8, file i32, line i32, func_ i32, parentPc i32}.
        let (size, func_id_field, name_field, parent_field) = if self.go120 {
            (16, 0, 4, 8)
        } else {
            (20, 2, 12, 16)
        };
        let at = tree.checked_add(index.checked_mul(size)?)?;
        let parent_pc = self.funcdata_u32(at.checked_add(parent_field)?)?;
        let func_id = self.funcdata_u32(at)?.to_le_bytes()[func_id_field];
        Some(InlinedCall {
            name_off: self.funcdata_u32(at.checked_add(name_field)?)?,
            parent_pc,
            func_id,
        })
    }
}

/// Targets of the direct `CALL rel32` instructions in `code` (which starts at `address`), in
/// order. Decoding stops at the first undecodable byte.
fn direct_calls(code: &[u8], address: u64) -> Vec<u64> {
    let mut decoder = Decoder::with_ip(64, code, address, DecoderOptions::NONE);
    let mut targets = Vec::new();
    while decoder.can_decode() {
        let instruction = decoder.decode();
        if instruction.is_invalid() {
            break;
        }
        if instruction.flow_control() == FlowControl::Call
            && instruction.op0_kind() == OpKind::NearBranch64
        {
            targets.push(instruction.near_branch64());
        }
    }
    targets
}
