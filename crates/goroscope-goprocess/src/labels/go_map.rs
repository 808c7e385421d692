//! The entries of a Go 1.19–1.23 `map[string]string` (runtime/map.go's `hmap`), read from the
//! target: the label set of a goroutine in those releases.
//!
//! The layout (the same in every release from 1.19 to 1.23, checked against their DWARF):
//! `hmap` is `count int` (0), `flags uint8` (8), `B uint8` (9), `noverflow uint16` (10), `hash0
//! uint32` (12), `buckets` (16), `oldbuckets` (24), `nevacuate` (32), `extra` (40): 48 bytes.
//! There are `2^B` buckets side by side; a `map[string]string` bucket is 8 `tophash` bytes, 8
//! key headers, 8 value headers and an overflow-bucket pointer: 8 + 128 + 128 + 8 = 272 bytes.
//! A cell holds an entry when its tophash is at least `minTopHash` (5); 0 and 1 are empty cells,
//! 2–4 mark cells an evacuation moved.
//!
//! A label map is never written after `pprof.WithLabels` filled it, but filling it may have
//! started a growth that its last insertions did not finish (each insertion evacuates at most
//! two old buckets): then `oldbuckets` holds `2^(B-1)` buckets (`2^B` for a same-size growth,
//! flag 8), and each old bucket is either evacuated (its first tophash is 2–4, its entries are
//! in the new buckets) or not (its entries are only there). The entries are those of every new
//! bucket chain plus those of every old chain not yet evacuated, and they must add up to
//! `count`.

use super::{StringHeader, MAX_LABELS, STRING_HEADER};
use crate::error::MemoryError;
use crate::memory::{LeBytes, ProcessMemory};

/// Size of `runtime.hmap`.
const HMAP_SIZE: usize = 48;
/// `hmap.count`.
const HMAP_COUNT: u64 = 0;
/// `hmap.flags`.
const HMAP_FLAGS: u64 = 8;
/// `hmap.B`.
const HMAP_B: u64 = 9;
/// `hmap.buckets`.
const HMAP_BUCKETS: u64 = 16;
/// `hmap.oldbuckets`.
const HMAP_OLDBUCKETS: u64 = 24;
/// The `hmap.flags` bit of a growth to a table of the same size.
const SAME_SIZE_GROW: u8 = 8;

/// Cells per bucket (`abi.MapBucketCount`).
const CELLS: u64 = 8;
/// Where the key headers start in a bucket (after the tophash bytes).
const KEYS_AT: u64 = CELLS;
/// Where the value headers start.
const VALUES_AT: u64 = KEYS_AT + CELLS * STRING_HEADER;
/// Where the overflow pointer is.
const OVERFLOW_AT: u64 = VALUES_AT + CELLS * STRING_HEADER;
/// Size of one `map[string]string` bucket.
pub(super) const BUCKET_SIZE: u64 = OVERFLOW_AT + 8;

/// The smallest tophash of a filled cell; 2–4 are evacuation marks.
const MIN_TOP_HASH: u8 = 5;
/// Tophash values that mark an evacuated cell.
const EVACUATED: std::ops::RangeInclusive<u8> = 2..=4;

/// Largest `B` accepted: a map of [`MAX_LABELS`] entries has at most 16 buckets (`B` = 4).
const MAX_B: u8 = 5;
/// Most overflow buckets followed in one map (bounds a cycle in a torn chain).
const MAX_OVERFLOW: usize = MAX_LABELS;

/// The (key, value) headers of the `map[string]string` whose `hmap` is at `hmap` (0: a nil map).
pub(super) fn entries(
    memory: &mut ProcessMemory,
    hmap: u64,
) -> Result<Vec<(StringHeader, StringHeader)>, MemoryError> {
    let mut walk = Walk {
        pid: memory.pid(),
        hmap,
        entries: Vec::new(),
        overflow_followed: 0,
    };
    if hmap == 0 {
        return Ok(Vec::new());
    }
    if !hmap.is_multiple_of(8) {
        return Err(walk.implausible("a map header that is not 8-byte aligned".into()));
    }
    let mut header = [0u8; HMAP_SIZE];
    memory.read_exact(hmap, &mut header)?;
    let count = header.u64_at(HMAP_COUNT);
    let flags = header.u8_at(HMAP_FLAGS);
    let b = header.u8_at(HMAP_B);
    let buckets = header.u64_at(HMAP_BUCKETS);
    let oldbuckets = header.u64_at(HMAP_OLDBUCKETS);
    if count > MAX_LABELS as u64 {
        return Err(walk.implausible(format!(
            "a map of {count} labels, more than the {MAX_LABELS} accepted"
        )));
    }
    if b > MAX_B {
        return Err(walk.implausible(format!("a map of 2^{b} buckets for {count} labels")));
    }
    if buckets == 0 {
        // Nothing was ever inserted (Go allocates the buckets of a small map lazily).
        return if count == 0 && oldbuckets == 0 {
            Ok(Vec::new())
        } else {
            Err(walk.implausible(format!(
                "a map of {count} labels without buckets (old buckets at {oldbuckets:#x})"
            )))
        };
    }
    walk.table(memory, buckets, b, Table::New)?;
    if oldbuckets != 0 {
        let old_b = if flags & SAME_SIZE_GROW != 0 {
            Some(b)
        } else {
            b.checked_sub(1)
        };
        let Some(old_b) = old_b else {
            return Err(walk.implausible("a map growing from half of one bucket".into()));
        };
        walk.table(memory, oldbuckets, old_b, Table::Old)?;
    }
    if walk.entries.len() as u64 != count {
        return Err(walk.implausible(format!(
            "a map whose count is {count} but whose buckets hold {} entries",
            walk.entries.len()
        )));
    }
    Ok(walk.entries)
}

/// Which bucket array of a map is being read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Table {
    /// `buckets`.
    New,
    /// `oldbuckets`, during a growth.
    Old,
}

/// The state of one map's walk.
struct Walk {
    pid: u32,
    hmap: u64,
    entries: Vec<(StringHeader, StringHeader)>,
    overflow_followed: usize,
}

impl Walk {
    fn implausible(&self, what: String) -> MemoryError {
        MemoryError::Implausible {
            pid: self.pid,
            address: self.hmap,
            what,
        }
    }

    /// Collects the entries of the `2^b` bucket chains starting at `array`.
    fn table(
        &mut self,
        memory: &mut ProcessMemory,
        array: u64,
        b: u8,
        table: Table,
    ) -> Result<(), MemoryError> {
        if !array.is_multiple_of(8) {
            return Err(self.implausible(format!("buckets at {array:#x}, not 8-byte aligned")));
        }
        let mut bytes = vec![0u8; ((1u64 << b) * BUCKET_SIZE) as usize];
        memory.read_exact(array, &mut bytes)?;
        for bucket in bytes.chunks_exact(BUCKET_SIZE as usize) {
            if table == Table::Old && EVACUATED.contains(&bucket[0]) {
                continue; // its entries are in the new buckets
            }
            self.chain(memory, bucket)?;
        }
        Ok(())
    }

    /// Collects the entries of `first` and of the overflow buckets chained to it.
    fn chain(&mut self, memory: &mut ProcessMemory, first: &[u8]) -> Result<(), MemoryError> {
        let mut overflow_bytes = [0u8; BUCKET_SIZE as usize];
        let mut bucket = first;
        loop {
            for cell in 0..CELLS {
                let top = bucket.u8_at(cell);
                if top >= MIN_TOP_HASH {
                    if self.entries.len() >= MAX_LABELS {
                        return Err(self
                            .implausible(format!("a map holding more than {MAX_LABELS} entries")));
                    }
                    self.entries.push((
                        StringHeader::at(bucket, KEYS_AT + cell * STRING_HEADER),
                        StringHeader::at(bucket, VALUES_AT + cell * STRING_HEADER),
                    ));
                } else if EVACUATED.contains(&top) {
                    return Err(self.implausible(format!(
                        "an evacuation mark ({top}) in a bucket being read for entries"
                    )));
                }
            }
            let next = bucket.u64_at(OVERFLOW_AT);
            if next == 0 {
                return Ok(());
            }
            self.overflow_followed += 1;
            if self.overflow_followed > MAX_OVERFLOW || !next.is_multiple_of(8) {
                return Err(self.implausible(format!(
                    "overflow bucket {} at {next:#x}",
                    self.overflow_followed
                )));
            }
            memory.read_exact(next, &mut overflow_bytes)?;
            bucket = &overflow_bytes;
        }
    }
}
