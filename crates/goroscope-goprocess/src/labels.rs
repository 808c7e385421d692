//! A goroutine's pprof labels (set by `pprof.Do` or `pprof.SetGoroutineLabels`, inherited by the
//! goroutines it starts), read from the target's memory behind the `g.labels` pointer a snapshot
//! records in [`GoroutineRecord::labels`](goroscope_model::goroutines::GoroutineRecord), and the
//! `runtime.g` offsets a sampler outside goroscope needs to find the same things.
//!
//! Where `g.labels` points (runtime/proflabel.go stores what runtime/pprof's
//! `SetGoroutineLabels` passes: `unsafe.Pointer(ctxLabels)`, a `*labelMap`, or nil):
//!
//! - Go 1.19–1.23: `type labelMap map[string]string`, so the pointer points at one word holding
//!   the map's `*hmap`: two loads from `g.labels` to the map header (`labels/go_map.rs`).
//! - Go 1.24 and later: `type labelMap struct{ LabelSet }` with `LabelSet{ list []label }`
//!   (`label.Set{ List []label.Label }` from Go 1.26, the same layout), so the pointer points at
//!   a slice header (pointer, length, capacity) of 32-byte `{key, value string}` pairs, sorted by
//!   key without duplicates (`pprof.Labels` sorts and dedups, `mergeLabelSets` keeps the order).
//!
//! Nothing read is believed on its own: at most [`MAX_LABELS`] labels, keys and values at most
//! [`MAX_LABEL_LEN`] bytes, aligned pointers, no duplicate keys, and for maps an entry count equal
//! to the map's own `count`. What fails is [`MemoryError::Implausible`], never a wrong label.
//! Keys and values are returned through [`goroscope_model::text::escape`], the one escaping rule
//! goroscope prints names with (exact bytes recoverable with `text::unescape`).

mod go_map;

use goroscope_gobin::GoVersion;
use goroscope_model::text;

use crate::attach::GoProcess;
use crate::error::MemoryError;
use crate::memory::{LeBytes, ProcessMemory, ReadRange};

/// Most labels accepted in one set (real services use a handful).
pub const MAX_LABELS: usize = 64;
/// Longest label key or value accepted, in bytes.
pub const MAX_LABEL_LEN: u64 = 1024;

/// Size of a Go string header (pointer, length).
const STRING_HEADER: u64 = 16;
/// Size of one `label{key, value string}` (Go 1.24+).
const LABEL_SIZE: u64 = 2 * STRING_HEADER;

/// How runtime/pprof keeps a goroutine's label set in one Go release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelSetLayout {
    /// Go 1.19–1.23: `g.labels` → a word holding a `map[string]string`'s `*hmap`.
    StringMap,
    /// Go 1.24 and later: `g.labels` → a `[]label{key, value string}` slice header, sorted by key.
    SortedList,
}

impl LabelSetLayout {
    /// The layout runtime/pprof of Go `version` uses (the newest known one for later releases).
    pub fn for_version(version: &GoVersion) -> LabelSetLayout {
        if version.at_least(1, 24) {
            LabelSetLayout::SortedList
        } else {
            LabelSetLayout::StringMap
        }
    }
}

/// The offsets in `runtime.g` that a sampler reading the current goroutine elsewhere (e.g. a BPF
/// program following the g pointer in R14, or the TLS slot) needs, with how the label set behind
/// `labels` is laid out. Every offset is in bytes from the start of the g.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GLayout {
    /// Size of a `runtime.g`.
    pub size: u64,
    /// `stack.lo`: lowest address of the goroutine's stack.
    pub stack_lo: u64,
    /// `stack.hi`: one past the highest address of its stack.
    pub stack_hi: u64,
    /// `goid` (8 bytes).
    pub goid: u64,
    /// `labels` (an 8-byte pointer, 0 when the goroutine has no labels); `None` when this
    /// target's layout does not say where it is.
    pub labels: Option<u64>,
    /// What `labels` points at in this target's Go release.
    pub label_set: LabelSetLayout,
}

/// One label's key and value bytes as read, before escaping.
type RawLabel = (Vec<u8>, Vec<u8>);

/// One Go string header as read: where its bytes are and how many.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StringHeader {
    address: u64,
    len: u64,
}

impl StringHeader {
    /// The header at `offset` of `bytes`.
    pub(crate) fn at(bytes: &[u8], offset: u64) -> StringHeader {
        StringHeader {
            address: bytes.u64_at(offset),
            len: bytes.u64_at(offset + 8),
        }
    }
}

impl GoProcess {
    /// The `runtime.g` offsets a kernel-side sampler needs (see [`GLayout`]).
    pub fn g_layout(&self) -> GLayout {
        let g = &self.offsets.g;
        GLayout {
            size: g.size,
            stack_lo: g.stack_lo,
            stack_hi: g.stack_hi,
            goid: g.goid,
            labels: g.labels,
            label_set: LabelSetLayout::for_version(&self.info.version),
        }
    }

    /// The label set behind a `g.labels` pointer as a snapshot recorded it
    /// ([`GoroutineRecord::labels`](goroscope_model::goroutines::GoroutineRecord)): `(key,
    /// value)` pairs sorted by key, escaped for printing; empty for 0. Goroutines that share a
    /// label set share the pointer, so a caller reading many goroutines reads each distinct
    /// pointer once per snapshot — and not across snapshots: once no goroutine holds a set, the
    /// GC may reuse its memory for another one.
    ///
    /// Fails with [`MemoryError::Implausible`] when what is there is not a label set this reader
    /// believes (the goroutine changed its labels and the old set was freed since the snapshot,
    /// or the layout is unknown), [`MemoryError::Unmapped`] when it is not mapped, and like
    /// [`GoProcess::snapshot`] when the process exited or exec'd.
    pub fn read_labels(&mut self, labels: u64) -> Result<Vec<(String, String)>, MemoryError> {
        let layout = LabelSetLayout::for_version(&self.info.version);
        let read = read_label_set(&mut self.memory, layout, labels);
        // Whatever was read may have come from another program's image after an exec.
        self.image.check()?;
        read
    }
}

/// The label set at `labels` (a `g.labels` value) laid out as `layout`.
pub(crate) fn read_label_set(
    memory: &mut ProcessMemory,
    layout: LabelSetLayout,
    labels: u64,
) -> Result<Vec<(String, String)>, MemoryError> {
    if labels == 0 {
        return Ok(Vec::new());
    }
    let pid = memory.pid();
    let implausible = |address: u64, what: String| MemoryError::Implausible { pid, address, what };
    if !labels.is_multiple_of(8) {
        return Err(implausible(
            labels,
            "a label set that is not 8-byte aligned".into(),
        ));
    }
    let pairs = match layout {
        LabelSetLayout::StringMap => {
            let hmap = memory.read_u64(labels)?;
            go_map::entries(memory, hmap)?
        }
        LabelSetLayout::SortedList => list_entries(memory, labels)?,
    };
    let raw = read_strings(memory, &pairs)?;
    finish(raw).map_err(|what| implausible(labels, what))
}

/// The (key, value) headers of a Go 1.24+ `labelMap` at `address`: a slice header whose elements
/// are 32-byte labels.
fn list_entries(
    memory: &mut ProcessMemory,
    address: u64,
) -> Result<Vec<(StringHeader, StringHeader)>, MemoryError> {
    let pid = memory.pid();
    let implausible = |what: String| MemoryError::Implausible { pid, address, what };
    let mut header = [0u8; 24];
    memory.read_exact(address, &mut header)?;
    let (array, len, cap) = (header.u64_at(0), header.u64_at(8), header.u64_at(16));
    if len > MAX_LABELS as u64 {
        return Err(implausible(format!(
            "{len} labels, more than the {MAX_LABELS} accepted"
        )));
    }
    if len > cap {
        return Err(implausible(format!(
            "a label list of length {len} and capacity {cap}"
        )));
    }
    if len == 0 {
        return Ok(Vec::new());
    }
    if array == 0 || !array.is_multiple_of(8) {
        return Err(implausible(format!("{len} labels stored at {array:#x}")));
    }
    let mut elements = vec![0u8; (len * LABEL_SIZE) as usize];
    memory.read_exact(array, &mut elements)?;
    Ok((0..len)
        .map(|index| {
            let at = index * LABEL_SIZE;
            (
                StringHeader::at(&elements, at),
                StringHeader::at(&elements, at + STRING_HEADER),
            )
        })
        .collect())
}

/// Reads the bytes of every key and value in one batch, checking their headers first.
fn read_strings(
    memory: &mut ProcessMemory,
    pairs: &[(StringHeader, StringHeader)],
) -> Result<Vec<RawLabel>, MemoryError> {
    let pid = memory.pid();
    let mut ranges = Vec::with_capacity(pairs.len() * 2);
    let mut total = 0usize;
    for header in pairs.iter().flat_map(|(key, value)| [key, value]) {
        if header.len > MAX_LABEL_LEN || (header.len > 0 && header.address == 0) {
            return Err(MemoryError::Implausible {
                pid,
                address: header.address,
                what: format!(
                    "a label string of {} bytes at {:#x} (at most {MAX_LABEL_LEN} accepted)",
                    header.len, header.address
                ),
            });
        }
        ranges.push(ReadRange {
            address: header.address,
            len: header.len as usize,
            offset: total,
        });
        total += header.len as usize;
    }
    let mut bytes = vec![0u8; total];
    let mut ok = vec![false; ranges.len()];
    memory.read_ranges(&ranges, &mut bytes, &mut ok)?;
    if let Some((range, _)) = ranges.iter().zip(&ok).find(|(_, read)| !**read) {
        return Err(MemoryError::Unmapped {
            pid,
            address: range.address,
            len: range.len,
        });
    }
    let text = |range: &ReadRange| bytes[range.offset..range.offset + range.len].to_vec();
    Ok(ranges
        .chunks_exact(2)
        .map(|pair| (text(&pair[0]), text(&pair[1])))
        .collect())
}

/// Sorts the pairs by key, refuses duplicate keys, and escapes both sides.
fn finish(mut raw: Vec<RawLabel>) -> Result<Vec<(String, String)>, String> {
    raw.sort();
    if let Some(pair) = raw.windows(2).find(|pair| pair[0].0 == pair[1].0) {
        return Err(format!(
            "the label key \"{}\" appears twice",
            text::escaped(&pair[0].0)
        ));
    }
    Ok(raw
        .iter()
        .map(|(key, value)| {
            (
                text::escape(key).into_owned(),
                text::escape(value).into_owned(),
            )
        })
        .collect())
}

#[cfg(test)]
mod tests;
