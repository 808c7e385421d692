//! Telling a sampler's BPF object which processes are Go and where their `runtime.g` keeps the
//! goroutine id and labels (the `go_processes` map of bpf/goroutine.h), so the kernel attributes
//! their samples to goroutines.

use libbpf_rs::{MapCore, MapFlags};

use crate::error::BpfError;

/// Where a Go process's `runtime.g` keeps what a sample is attributed by (the stack bounds are
/// its first two words in every Go release), and where its Go code is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GoLayout {
    /// Offset of `goid`.
    pub goid_offset: u32,
    /// Offset of `labels`, when known.
    pub labels_offset: Option<u32>,
    /// Run-time address of the first byte of Go code.
    pub text_start: u64,
    /// Run-time address just past the Go code.
    pub text_end: u64,
}

const MAP: &str = "go_processes";

/// Puts `pid`'s layout in `map` (an object's `go_processes`). Fails when it is full
/// (`MAX_GO_PROCESSES`).
pub(crate) fn watch(map: &dyn MapCore, pid: u32, layout: GoLayout) -> Result<(), BpfError> {
    // struct go_layout, field by field (no padding; pod.rs asserts the offsets).
    let mut value = [0u8; 24];
    value[..4].copy_from_slice(&layout.goid_offset.to_ne_bytes());
    value[4..8].copy_from_slice(&layout.labels_offset.unwrap_or(0).to_ne_bytes());
    value[8..16].copy_from_slice(&layout.text_start.to_ne_bytes());
    value[16..].copy_from_slice(&layout.text_end.to_ne_bytes());
    map.update(&pid.to_ne_bytes(), &value, MapFlags::ANY)
        .map_err(|source| BpfError::Map { map: MAP, source })
}

/// Removes `pid` from `map`; a no-op when it is not there.
pub(crate) fn forget(map: &dyn MapCore, pid: u32) {
    let _ = map.delete(&pid.to_ne_bytes());
}

/// Most label sets taken off the queue per call (the queue holds `MAX_LABEL_SETS_QUEUED`).
const MAX_POPPED: usize = 4096;

/// Takes the label sets queued since the last call (`new_label_sets` of bpf/goroutine.h): each
/// (process, label-set address) the first time a sample carried it.
pub(crate) fn new_label_sets(queue: &dyn MapCore) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    while out.len() < MAX_POPPED {
        // An empty queue answers "not found" (None) or ENOENT, depending on the libbpf path.
        let Ok(Some(value)) = queue.lookup_and_delete(&[]) else {
            break;
        };
        let (Some(tgid), Some(labels)) = (value.get(..4), value.get(8..16)) else {
            break;
        };
        let tgid = u32::from_ne_bytes(tgid.try_into().unwrap_or_default());
        let labels = u64::from_ne_bytes(labels.try_into().unwrap_or_default());
        out.push((tgid, labels));
    }
    out
}
