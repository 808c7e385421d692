//! Symbolization of a live target's program counters through its `.gopclntab`, with the load bias
//! removed and results cached per pc (a process has few distinct creation sites and stacks).
//! Frames read as Go's own tracebacks and profiles show them: compiler-generated wrappers are left
//! out, and a goroutine started through a wrapper (Go compiles `go f(x)` into one) is said to start
//! in the function the wrapper calls, found by reading the wrapper's code from the live process.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use goroscope_gobin::pclntab::Pclntab;
use goroscope_model::goroutines::{CodeLocation, Symbolizer};

use crate::memory::ProcessMemory;

/// Cached pcs kept before the caches start over (garbage pcs from torn stacks must not make a
/// long `--watch` run grow without bound).
const MAX_CACHED: usize = 1 << 20;

/// Symbolizes run-time pcs of one process.
pub struct ProcessSymbolizer {
    pclntab: Arc<Pclntab>,
    bias: u64,
    frames: RefCell<HashMap<u64, Vec<CodeLocation>>>,
    functions: RefCell<HashMap<u64, Option<String>>>,
    starts: RefCell<HashMap<u64, Option<String>>>,
    /// The target's memory, for the code of wrappers.
    memory: RefCell<ProcessMemory>,
}

impl ProcessSymbolizer {
    /// A symbolizer for pcs of process `pid`, whose executable is loaded `bias` bytes from its
    /// linked addresses.
    pub fn new(pclntab: Arc<Pclntab>, bias: u64, pid: u32) -> ProcessSymbolizer {
        ProcessSymbolizer {
            pclntab,
            bias,
            frames: RefCell::new(HashMap::new()),
            functions: RefCell::new(HashMap::new()),
            starts: RefCell::new(HashMap::new()),
            memory: RefCell::new(ProcessMemory::new(pid)),
        }
    }

    /// The function a wrapper at run-time address `pc` calls, read from the target's code.
    fn wrapper_callee(&self, pc: u64) -> Option<String> {
        let linked = pc.wrapping_sub(self.bias);
        let function = self.pclntab.function_at(linked)?;
        if !self.pclntab.is_wrapper(function.func_id) {
            return Some(function.name);
        }
        let bias = self.bias;
        let mut memory = self.memory.borrow_mut();
        let mut read_code = |address: u64, len: usize| {
            let mut code = vec![0u8; len];
            memory
                .read_exact(address.wrapping_add(bias), &mut code)
                .ok()
                .map(|()| code)
        };
        // A wrapper whose callee cannot be found is still named, as Go names it.
        Some(
            self.pclntab
                .wrapper_callee(function.entry, &mut read_code)
                .unwrap_or(function.name),
        )
    }
}

/// Inserts into a bounded cache (emptied when full).
fn remember<V: Clone>(cache: &RefCell<HashMap<u64, V>>, pc: u64, value: &V) {
    let mut cache = cache.borrow_mut();
    if cache.len() >= MAX_CACHED {
        cache.clear();
    }
    cache.insert(pc, value.clone());
}

impl Symbolizer for ProcessSymbolizer {
    fn frames_at(&self, pc: u64) -> Vec<CodeLocation> {
        if let Some(frames) = self.frames.borrow().get(&pc) {
            return frames.clone();
        }
        let frames: Vec<CodeLocation> = self
            .pclntab
            .frames_at(pc.wrapping_sub(self.bias))
            .into_iter()
            .filter(|frame| !frame.wrapper)
            .map(|frame| CodeLocation {
                function: frame.function,
                file: frame.file,
                line: frame.line,
            })
            .collect();
        remember(&self.frames, pc, &frames);
        frames
    }

    fn function_at(&self, pc: u64) -> Option<String> {
        if let Some(name) = self.functions.borrow().get(&pc) {
            return name.clone();
        }
        let name = self
            .pclntab
            .function_at(pc.wrapping_sub(self.bias))
            .map(|function| function.name);
        remember(&self.functions, pc, &name);
        name
    }

    fn start_function(&self, pc: u64) -> Option<String> {
        if let Some(name) = self.starts.borrow().get(&pc) {
            return name.clone();
        }
        let name = self.wrapper_callee(pc);
        remember(&self.starts, pc, &name);
        name
    }
}
