//! Deleting map entries of processes that exited, shared by every collector whose rows are
//! keyed by a struct that starts with `__u32 tgid` (each collector asserts that at compile
//! time next to its key type).

use libbpf_rs::MapCore;

use crate::error::BpfError;

/// Deletes every entry of `map` whose key starts with a tgid in `sorted_pids` (sorted,
/// deduplicated). Returns the tgid of each entry deleted. Keys are collected first: deleting
/// the key an iteration stands on makes the kernel restart the walk from the first key. An
/// entry the kernel removed meanwhile is not an error.
pub(crate) fn forget_by_tgid(
    map: &dyn MapCore,
    name: &'static str,
    sorted_pids: &[u32],
) -> Result<Vec<u32>, BpfError> {
    let mut doomed: Vec<(u32, Vec<u8>)> = Vec::new();
    for key in map.keys() {
        let Some(tgid) = key
            .get(..4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_ne_bytes)
        else {
            return Err(BpfError::ShortRecord {
                map: name,
                len: key.len(),
                expected: 4,
            });
        };
        if sorted_pids.binary_search(&tgid).is_ok() {
            doomed.push((tgid, key));
        }
    }
    let mut deleted = Vec::with_capacity(doomed.len());
    for (tgid, key) in doomed {
        if delete(map, &key, name)? {
            deleted.push(tgid);
        }
    }
    Ok(deleted)
}

/// Deletes one key; false when it was already gone.
pub(crate) fn delete(map: &dyn MapCore, key: &[u8], name: &'static str) -> Result<bool, BpfError> {
    match map.delete(key) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == libbpf_rs::ErrorKind::NotFound => Ok(false),
        Err(source) => Err(BpfError::Map { map: name, source }),
    }
}

/// `pids` sorted and deduplicated, as [`forget_by_tgid`] wants them.
pub(crate) fn sorted(pids: &[u32]) -> Vec<u32> {
    let mut sorted = pids.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    sorted
}
