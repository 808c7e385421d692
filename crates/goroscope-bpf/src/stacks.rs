//! Reading the CPU and off-CPU samplers' `stacks` map (bpf/stacks.h): the stack key a sample row
//! carries (a 64-bit hash of its frames) becomes its return addresses, each key read from the
//! kernel once per pass.

use std::collections::HashMap;

use libbpf_rs::{MapCore, MapFlags};

use crate::error::BpfError;

/// `NO_STACK` in bpf/stacks.h: a row without that stack.
const NO_STACK: u64 = 0;

/// The frames of the stacks one pass over a sampler's rows refers to.
pub(crate) struct StackReader<'m> {
    map: &'m dyn MapCore,
    name: &'static str,
    read: HashMap<u64, Vec<u64>>,
}

impl<'m> StackReader<'m> {
    /// Reads stacks from `map`, called `name` in errors.
    pub(crate) fn new(map: &'m dyn MapCore, name: &'static str) -> Self {
        Self {
            map,
            name,
            read: HashMap::new(),
        }
    }

    /// The frames of the stack stored under `key`, innermost first; empty for [`NO_STACK`] (no
    /// stack taken, or lost) or a key not in the map.
    pub(crate) fn frames(&mut self, key: u64) -> Result<Vec<u64>, BpfError> {
        if key == NO_STACK {
            return Ok(Vec::new());
        }
        if let Some(frames) = self.read.get(&key) {
            return Ok(frames.clone());
        }
        let bytes = self
            .map
            .lookup(&key.to_ne_bytes(), MapFlags::ANY)
            .map_err(|source| BpfError::Map {
                map: self.name,
                source,
            })?
            .unwrap_or_default();
        // The kernel zero-fills an entry past its last frame.
        let frames: Vec<u64> = bytes
            .chunks_exact(8)
            .filter_map(|b| b.try_into().ok())
            .map(u64::from_ne_bytes)
            .take_while(|&ip| ip != 0)
            .collect();
        self.read.insert(key, frames.clone());
        Ok(frames)
    }
}
