//! Reading another process's memory with `process_vm_readv(2)`: many ranges per system call, into
//! caller-owned buffers, never stopping or signalling the target. Addresses that are not mapped (or
//! were unmapped under us) come back as per-range failures, not errors of the whole read.

use std::io;

use crate::error::MemoryError;

/// Most iovecs the kernel takes in one call (`IOV_MAX` on Linux).
const IOV_MAX: usize = 1024;

/// One range to read: `len` bytes at `address` of the target, into `dest[offset..offset + len]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadRange {
    /// Address in the target.
    pub address: u64,
    /// Bytes to read.
    pub len: usize,
    /// Where in the destination buffer they go.
    pub offset: usize,
}

/// The memory of one live process.
#[derive(Debug)]
pub struct ProcessMemory {
    pid: u32,
    local: Vec<libc::iovec>,
    remote: Vec<libc::iovec>,
    /// System calls made so far (for cost reporting).
    pub syscalls: u64,
}

impl ProcessMemory {
    /// Memory of process `pid`. Nothing is read until asked.
    pub fn new(pid: u32) -> ProcessMemory {
        ProcessMemory {
            pid,
            local: Vec::with_capacity(IOV_MAX),
            remote: Vec::with_capacity(IOV_MAX),
            syscalls: 0,
        }
    }

    /// The process's id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Reads `dest.len()` bytes at `address`, all or nothing.
    pub fn read_exact(&mut self, address: u64, dest: &mut [u8]) -> Result<(), MemoryError> {
        let len = dest.len();
        let mut ok = [false];
        self.read_ranges(
            &[ReadRange {
                address,
                len,
                offset: 0,
            }],
            dest,
            &mut ok,
        )?;
        if ok[0] {
            Ok(())
        } else {
            Err(MemoryError::Unmapped {
                pid: self.pid,
                address,
                len,
            })
        }
    }

    /// Reads a little-endian u64 at `address`.
    pub fn read_u64(&mut self, address: u64) -> Result<u64, MemoryError> {
        let mut bytes = [0u8; 8];
        self.read_exact(address, &mut bytes)?;
        Ok(u64::from_le_bytes(bytes))
    }

    /// Reads every range into `dest`, setting `ok[i]` for each range read in full. Ranges that fail
    /// are zero-filled. Fails as a whole only when the process is gone or may not be read.
    pub fn read_ranges(
        &mut self,
        ranges: &[ReadRange],
        dest: &mut [u8],
        ok: &mut [bool],
    ) -> Result<(), MemoryError> {
        if ok.len() < ranges.len() {
            return Err(MemoryError::BadRequest("fewer result slots than ranges"));
        }
        for range in ranges {
            let end = range
                .offset
                .checked_add(range.len)
                .ok_or(MemoryError::BadRequest("range overflows"))?;
            if end > dest.len() {
                return Err(MemoryError::BadRequest("range outside the buffer"));
            }
        }
        // Empty ranges need no system call (and would fail with the range after them).
        if ranges.iter().any(|range| range.len == 0) {
            let mut sent = Vec::with_capacity(ranges.len());
            let mut positions = Vec::with_capacity(ranges.len());
            for (index, range) in ranges.iter().enumerate() {
                if range.len == 0 {
                    ok[index] = true;
                } else {
                    sent.push(*range);
                    positions.push(index);
                }
            }
            let mut sent_ok = vec![false; sent.len()];
            self.read_ranges(&sent, dest, &mut sent_ok)?;
            for (position, read) in positions.into_iter().zip(sent_ok) {
                ok[position] = read;
            }
            return Ok(());
        }
        let mut start = 0;
        while start < ranges.len() {
            let end = (start + IOV_MAX).min(ranges.len());
            let done = self.read_chunk(&ranges[start..end], dest, &mut ok[start..end])?;
            // `done` ranges were read (the first of the rest failed, or all succeeded).
            start += done.max(1);
        }
        Ok(())
    }

    /// One system call for up to IOV_MAX ranges. Returns how many ranges were handled: all of them,
    /// or those before and including the first one that failed (which is marked failed).
    fn read_chunk(
        &mut self,
        ranges: &[ReadRange],
        dest: &mut [u8],
        ok: &mut [bool],
    ) -> Result<usize, MemoryError> {
        self.local.clear();
        self.remote.clear();
        let base = dest.as_mut_ptr();
        for range in ranges {
            self.local.push(libc::iovec {
                // SAFETY: read_ranges checked offset + len <= dest.len(), so the pointer stays
                // inside `dest`, which outlives the call below.
                iov_base: unsafe { base.add(range.offset) }.cast(),
                iov_len: range.len,
            });
            self.remote.push(libc::iovec {
                iov_base: range.address as *mut libc::c_void,
                iov_len: range.len,
            });
        }
        self.syscalls += 1;
        // SAFETY: both iovec arrays are valid for their lengths; every local iovec points into
        // `dest`, exclusively borrowed for this call; the remote ones are only read by the kernel.
        let read = unsafe {
            libc::process_vm_readv(
                self.pid as libc::pid_t,
                self.local.as_ptr(),
                self.local.len() as libc::c_ulong,
                self.remote.as_ptr(),
                self.remote.len() as libc::c_ulong,
                0,
            )
        };
        if read < 0 {
            let error = io::Error::last_os_error();
            return match error.raw_os_error() {
                Some(libc::ESRCH) => Err(MemoryError::Exited { pid: self.pid }),
                Some(libc::EPERM) | Some(libc::EACCES) => {
                    Err(MemoryError::PermissionDenied { pid: self.pid })
                }
                Some(libc::EFAULT) => {
                    // The first remote range is not mapped: nothing was read.
                    ok[0] = false;
                    zero(dest, ranges[0]);
                    Ok(1)
                }
                _ => Err(MemoryError::Io {
                    pid: self.pid,
                    source: error,
                }),
            };
        }
        // Transfers stop at the first range that cannot be read in full.
        let mut remaining = read as usize;
        for (index, range) in ranges.iter().enumerate() {
            if remaining >= range.len {
                remaining -= range.len;
                ok[index] = true;
            } else {
                ok[index] = false;
                zero(dest, *range);
                return Ok(index + 1);
            }
        }
        Ok(ranges.len())
    }
}

fn zero(dest: &mut [u8], range: ReadRange) {
    if let Some(part) = dest.get_mut(range.offset..range.offset + range.len) {
        part.fill(0);
    }
}

/// Little-endian integer reads from a byte buffer that never panic: out-of-range gives 0.
pub trait LeBytes {
    /// u64 at `offset`.
    fn u64_at(&self, offset: u64) -> u64;
    /// u32 at `offset`.
    fn u32_at(&self, offset: u64) -> u32;
    /// u8 at `offset`.
    fn u8_at(&self, offset: u64) -> u8;
}

impl LeBytes for [u8] {
    fn u64_at(&self, offset: u64) -> u64 {
        let start = offset as usize;
        self.get(start..start.saturating_add(8))
            .and_then(|bytes| bytes.try_into().ok())
            .map(u64::from_le_bytes)
            .unwrap_or(0)
    }

    fn u32_at(&self, offset: u64) -> u32 {
        let start = offset as usize;
        self.get(start..start.saturating_add(4))
            .and_then(|bytes| bytes.try_into().ok())
            .map(u32::from_le_bytes)
            .unwrap_or(0)
    }

    fn u8_at(&self, offset: u64) -> u8 {
        self.get(offset as usize).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_memory_in_batches_and_marks_unmapped_ranges() {
        let source: Vec<u8> = (0..=255u8).cycle().take(5000).collect();
        let address = source.as_ptr() as u64;
        let mut memory = ProcessMemory::new(std::process::id());
        let mut ranges = Vec::new();
        for i in 0..2000usize {
            ranges.push(ReadRange {
                address: address + (i % 4000) as u64,
                len: 8,
                offset: i * 8,
            });
        }
        // One unmapped range in the middle: the page at address 8 is never mapped.
        ranges[1500].address = 8;
        let mut dest = vec![0u8; 2000 * 8];
        let mut ok = vec![false; ranges.len()];
        memory.read_ranges(&ranges, &mut dest, &mut ok).unwrap();
        for (i, range) in ranges.iter().enumerate() {
            if i == 1500 {
                assert!(!ok[i]);
                assert_eq!(&dest[i * 8..i * 8 + 8], &[0u8; 8]);
            } else {
                assert!(ok[i], "range {i} not read");
                let at = (range.address - address) as usize;
                assert_eq!(&dest[i * 8..i * 8 + 8], &source[at..at + 8]);
            }
        }
        assert!(memory.syscalls >= 2);
    }

    #[test]
    fn a_gone_process_is_reported_as_exited() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        let mut memory = ProcessMemory::new(pid);
        let error = memory.read_u64(0x1000).unwrap_err();
        assert!(matches!(error, MemoryError::Exited { .. }), "{error}");
    }
}
