//! Reading a shared (not per-CPU) hash map in bounded chunks with `BPF_MAP_LOOKUP_BATCH`: one
//! syscall per chunk of entries, into key and value buffers that live as long as the reader and
//! are reused every cycle. Iterating key by key costs two syscalls and two allocations per
//! entry; reading a per-CPU map allocates one buffer per entry and CPU. Both made the agent's
//! memory spike every cycle under process churn.

use std::os::fd::AsRawFd;

use libbpf_rs::libbpf_sys;
use libbpf_rs::MapCore;

use crate::error::BpfError;

/// Entries fetched per syscall: bounds the buffers (256 rows of 1.3 KB ≈ 340 KB).
pub(crate) const DEFAULT_CHUNK: u32 = 256;
/// A hash bucket holding more entries than the chunk makes the kernel answer ENOSPC; the chunk
/// then doubles up to this.
const MAX_CHUNK: u32 = 1 << 16;

/// Reusable buffers for reading maps in chunks.
#[derive(Debug, Default)]
pub(crate) struct BatchReader {
    keys: Vec<u8>,
    values: Vec<u8>,
    token_in: Vec<u8>,
    token_out: Vec<u8>,
}

impl BatchReader {
    /// Calls `each(key, value)` for every entry of `map` (a shared hash map), chunk by chunk.
    /// Entries inserted or deleted meanwhile may or may not be seen; every entry present for
    /// the whole walk is seen exactly once.
    pub(crate) fn for_each(
        &mut self,
        map: &dyn MapCore,
        name: &'static str,
        mut each: impl FnMut(&[u8], &[u8]) -> Result<(), BpfError>,
    ) -> Result<(), BpfError> {
        let key_size = map.key_size() as usize;
        let value_size = map.value_size() as usize;
        // The kernel's batch token for hash maps is a u32 bucket index.
        let token_size = key_size.max(4);
        self.token_in.resize(token_size, 0);
        self.token_out.resize(token_size, 0);
        // The struct may have padding fields on some platforms.
        #[allow(clippy::needless_update)]
        let opts = libbpf_sys::bpf_map_batch_opts {
            sz: std::mem::size_of::<libbpf_sys::bpf_map_batch_opts>() as _,
            elem_flags: 0,
            flags: 0,
            ..Default::default()
        };
        let mut chunk = DEFAULT_CHUNK;
        let mut first = true;
        loop {
            self.keys.resize(chunk as usize * key_size, 0);
            self.values.resize(chunk as usize * value_size, 0);
            let mut count = chunk;
            let in_batch = if first {
                std::ptr::null_mut()
            } else {
                self.token_in.as_mut_ptr().cast()
            };
            // SAFETY: the key and value buffers hold `count` entries of the map's key and
            // value sizes (a shared map: one value per entry), the tokens hold at least
            // max(key size, 4) bytes, and the fd is the map's, borrowed for the call.
            let ret = unsafe {
                libbpf_sys::bpf_map_lookup_batch(
                    map.as_fd().as_raw_fd(),
                    in_batch,
                    self.token_out.as_mut_ptr().cast(),
                    self.keys.as_mut_ptr().cast(),
                    self.values.as_mut_ptr().cast(),
                    &mut count,
                    &opts,
                )
            };
            let errno = if ret < 0 { -ret } else { 0 };
            match errno {
                0 | libc::ENOENT => {}
                libc::EINTR => continue,
                libc::ENOSPC if chunk < MAX_CHUNK => {
                    chunk *= 2;
                    continue;
                }
                _ => {
                    return Err(BpfError::Map {
                        map: name,
                        source: libbpf_rs::Error::from_raw_os_error(errno),
                    })
                }
            }
            let n = (count as usize).min(chunk as usize);
            for (key, value) in self.keys[..n * key_size]
                .chunks_exact(key_size)
                .zip(self.values[..n * value_size].chunks_exact(value_size))
            {
                each(key, value)?;
            }
            if errno == libc::ENOENT {
                return Ok(());
            }
            std::mem::swap(&mut self.token_in, &mut self.token_out);
            first = false;
        }
    }

    /// Deletes every entry of `map` whose key starts with a tgid in `sorted_pids` (sorted,
    /// deduplicated); returns the tgid of each entry deleted. Keys are collected first (the
    /// walk would otherwise lose its place); an entry gone meanwhile is not an error.
    pub(crate) fn forget_by_tgid(
        &mut self,
        map: &dyn MapCore,
        name: &'static str,
        sorted_pids: &[u32],
    ) -> Result<Vec<u32>, BpfError> {
        let mut doomed: Vec<u8> = Vec::new();
        let key_size = map.key_size() as usize;
        self.for_each(map, name, |key, _| {
            let tgid = key
                .get(..4)
                .and_then(|b| b.try_into().ok())
                .map(u32::from_ne_bytes)
                .ok_or(BpfError::ShortRecord {
                    map: name,
                    len: key.len(),
                    expected: 4,
                })?;
            if sorted_pids.binary_search(&tgid).is_ok() {
                doomed.extend_from_slice(key);
            }
            Ok(())
        })?;
        let mut deleted = Vec::with_capacity(doomed.len() / key_size.max(1));
        for key in doomed.chunks_exact(key_size.max(1)) {
            if crate::evict::delete(map, key, name)? {
                deleted.push(u32::from_ne_bytes([key[0], key[1], key[2], key[3]]));
            }
        }
        Ok(deleted)
    }
}
