//! Symbolization of a live target's program counters through its `.gopclntab`, with the load bias
//! removed and results cached per pc (a process has few distinct creation sites and stacks).

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::Arc;

use goroscope_gobin::pclntab::Pclntab;
use goroscope_model::goroutines::{CodeLocation, Symbolizer};

/// Cached pcs kept before the caches start over (garbage pcs from torn stacks must not make a
/// long `--watch` run grow without bound).
const MAX_CACHED: usize = 1 << 20;

/// Symbolizes run-time pcs of one process.
pub struct ProcessSymbolizer {
    pclntab: Arc<Pclntab>,
    bias: u64,
    frames: RefCell<HashMap<u64, Vec<CodeLocation>>>,
    functions: RefCell<HashMap<u64, Option<String>>>,
}

impl ProcessSymbolizer {
    /// A symbolizer for pcs of a process whose executable is loaded `bias` bytes from its linked
    /// addresses.
    pub fn new(pclntab: Arc<Pclntab>, bias: u64) -> ProcessSymbolizer {
        ProcessSymbolizer {
            pclntab,
            bias,
            frames: RefCell::new(HashMap::new()),
            functions: RefCell::new(HashMap::new()),
        }
    }
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
            .map(|frame| CodeLocation {
                function: frame.function,
                file: frame.file,
                line: frame.line,
            })
            .collect();
        let mut cache = self.frames.borrow_mut();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(pc, frames.clone());
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
        let mut cache = self.functions.borrow_mut();
        if cache.len() >= MAX_CACHED {
            cache.clear();
        }
        cache.insert(pc, name.clone());
        name
    }
}
