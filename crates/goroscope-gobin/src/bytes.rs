//! The bytes of a binary, shared without copies: the file mapped read-only into memory (pages are
//! read on first touch, belong to the page cache and count in RSS only while touched; a 50 MB Go
//! daemon's tables cost what symbolization reads of them, not 50 MB), or a vector already in
//! memory. Views ([`SharedBytes::view`]) keep the whole backing alive and cost one `Arc`.
//!
//! A mapped file must not shrink while mapped (touching a page past the new end raises SIGBUS).
//! goroscope maps the executables of running processes, which the kernel refuses to open for
//! writing (ETXTBSY) while any process runs them; keep a mapping no longer than the process it
//! was read for.

use std::fs::File;
use std::ops::Deref;
use std::sync::Arc;

/// What a [`SharedBytes`] points into.
#[derive(Debug)]
enum Backing {
    /// A read-only mapping of a whole file.
    Mapped(memmap2::Mmap),
    /// Bytes owned in memory.
    Owned(Vec<u8>),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mapped(map) => map,
            Backing::Owned(bytes) => bytes,
        }
    }
}

/// A cheaply cloned, read-only range of a file's bytes.
#[derive(Debug, Clone)]
pub struct SharedBytes {
    backing: Arc<Backing>,
    start: usize,
    end: usize,
}

impl SharedBytes {
    /// Maps all of `file` read-only.
    pub fn map(file: &File) -> std::io::Result<SharedBytes> {
        // SAFETY: the mapping is read-only and private to this process; its bytes are only read
        // as plain data (never as references to typed values). The one hazard, the file being
        // truncated while mapped (SIGBUS), is excluded for the executables goroscope maps by
        // the kernel's ETXTBSY rule while their process runs (see the module documentation).
        let map = unsafe { memmap2::Mmap::map(file) }?;
        let end = map.len();
        Ok(SharedBytes {
            backing: Arc::new(Backing::Mapped(map)),
            start: 0,
            end,
        })
    }

    /// Bytes already in memory.
    pub fn from_vec(bytes: Vec<u8>) -> SharedBytes {
        let end = bytes.len();
        SharedBytes {
            backing: Arc::new(Backing::Owned(bytes)),
            start: 0,
            end,
        }
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        self.backing
            .bytes()
            .get(self.start..self.end)
            .unwrap_or_default()
    }

    /// A view of `part`, which must be a sub-slice of these bytes (as returned by indexing
    /// them); `None` otherwise.
    pub fn view(&self, part: &[u8]) -> Option<SharedBytes> {
        let whole = self.as_slice();
        let offset = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
        let end = offset.checked_add(part.len())?;
        if end > whole.len() {
            return None;
        }
        Some(SharedBytes {
            backing: Arc::clone(&self.backing),
            start: self.start + offset,
            end: self.start + end,
        })
    }

    /// Hands the pages of the whole mapping that this process has touched back to the page
    /// cache, so they no longer count in its RSS; later reads fault them in again (a minor fault
    /// each, no disk read while the file is cached). Call it after passes that touch a lot (the
    /// linear scans of attaching to a process) and now and then while bytes are used. Does
    /// nothing for bytes owned in memory.
    pub fn release_resident(&self) {
        if let Backing::Mapped(map) = &*self.backing {
            // SAFETY: MADV_DONTNEED on a read-only, private, never-written file mapping only
            // drops page-table entries: the next read gets the same file bytes from the page
            // cache, so no reference into the mapping sees its contents change. Failure only
            // leaves the pages resident.
            let _ = unsafe { map.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }

    /// True when the bytes come from a mapped file, not a copy.
    pub fn is_mapped(&self) -> bool {
        matches!(*self.backing, Backing::Mapped(_))
    }
}

impl Deref for SharedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.as_slice()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn views_share_the_backing_and_refuse_foreign_slices() {
        let bytes = SharedBytes::from_vec((0..100u8).collect());
        let part = bytes.view(&bytes[10..20]).unwrap();
        assert_eq!(&*part, &(10..20u8).collect::<Vec<_>>()[..]);
        let inner = part.view(&part[2..4]).unwrap();
        assert_eq!(&*inner, &[12, 13]);
        let other = vec![0u8; 10];
        assert!(bytes.view(&other).is_none());
        assert!(!bytes.is_mapped());
    }

    #[test]
    fn a_mapped_file_reads_like_the_file() {
        let path = std::env::current_exe().unwrap();
        let file = File::open(&path).unwrap();
        let mapped = SharedBytes::map(&file).unwrap();
        assert!(mapped.is_mapped());
        assert_eq!(&mapped[..4], b"\x7fELF");
        assert_eq!(mapped.len() as u64, file.metadata().unwrap().len());
        let sum: u64 = mapped.iter().map(|&b| u64::from(b)).sum();
        mapped.release_resident();
        // Still the same bytes after the pages were given back.
        assert_eq!(&mapped[..4], b"\x7fELF");
        assert_eq!(mapped.iter().map(|&b| u64::from(b)).sum::<u64>(), sum);
    }
}
