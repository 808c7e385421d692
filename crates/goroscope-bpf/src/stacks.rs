//! Reading a `BPF_MAP_TYPE_STACK_TRACE` map (the CPU and off-CPU samplers' `stacks`): a stack id
//! from a sample row becomes its return addresses, each id read from the kernel once per pass.

use std::collections::HashMap;

use libbpf_rs::{MapCore, MapFlags};

use crate::error::BpfError;

/// The frames of the stacks one pass over a sampler's rows refers to.
pub(crate) struct StackReader<'m> {
    map: &'m dyn MapCore,
    name: &'static str,
    read: HashMap<i32, Vec<u64>>,
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

    /// The frames of stack `id`, innermost first; empty for a negative id (the kernel gave no
    /// stack) or an id no longer in the map.
    pub(crate) fn frames(&mut self, id: i32) -> Result<Vec<u64>, BpfError> {
        let Ok(key) = u32::try_from(id) else {
            return Ok(Vec::new());
        };
        if let Some(frames) = self.read.get(&id) {
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
        self.read.insert(id, frames.clone());
        Ok(frames)
    }
}
