//! Telling a sampler's BPF object which processes are Go and where their `runtime.g` keeps the
//! goroutine id and labels (the `go_processes` map of bpf/goroutine.h), so the kernel attributes
//! their samples to goroutines.

use libbpf_rs::{MapCore, MapFlags};

use crate::error::BpfError;

/// Where a Go process's `runtime.g` keeps what a sample is attributed by (the stack bounds are
/// its first two words in every Go release).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoLayout {
    /// Offset of `goid`.
    pub goid_offset: u32,
    /// Offset of `labels`, when known.
    pub labels_offset: Option<u32>,
}

const MAP: &str = "go_processes";

/// Puts `pid`'s layout in `map` (an object's `go_processes`). Fails when it is full
/// (`MAX_GO_PROCESSES`).
pub(crate) fn watch(map: &dyn MapCore, pid: u32, layout: GoLayout) -> Result<(), BpfError> {
    // struct go_layout, field by field (no padding; pod.rs asserts the offsets).
    let mut value = [0u8; 8];
    value[..4].copy_from_slice(&layout.goid_offset.to_ne_bytes());
    value[4..].copy_from_slice(&layout.labels_offset.unwrap_or(0).to_ne_bytes());
    map.update(&pid.to_ne_bytes(), &value, MapFlags::ANY)
        .map_err(|source| BpfError::Map { map: MAP, source })
}

/// Removes `pid` from `map`; a no-op when it is not there.
pub(crate) fn forget(map: &dyn MapCore, pid: u32) {
    let _ = map.delete(&pid.to_ne_bytes());
}
