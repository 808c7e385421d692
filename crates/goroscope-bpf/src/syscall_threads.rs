//! The syscall collector's per-thread slots (`struct syscall_thread` in bpf/syscalls.h),
//! mapped into this process: the counts of untimed calls that wait in a slot are swapped out
//! atomically into [`PendingCounts`], so every call is counted exactly once, either in the
//! kernel's rows or here, and a thread that went quiet is never left behind.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use libbpf_rs::MapCore;

use crate::error::BpfError;
use crate::skel::syscalls::types::syscall_thread;

const OWNER_CLAIMING: u64 = 1;
const OWNER_IN_CALL: u64 = 1;
const COMM_BYTES: usize = 16;
const COUNT_MASK: u64 = 0xffff_ffff;
const TAG_SHIFT: u32 = 48;
const SLOT_BYTES: usize = std::mem::size_of::<syscall_thread>();

const _: () = assert!(SLOT_BYTES == 128);
const _: () = assert!(std::mem::offset_of!(syscall_thread, owner) % 8 == 0);
const _: () = assert!(std::mem::offset_of!(syscall_thread, gen) % 4 == 0);
const _: () = assert!(std::mem::offset_of!(syscall_thread, pending) % 8 == 0);

/// Counts of calls swapped out of the slots, per (process, image, syscall), kept until the
/// process is forgotten.
#[derive(Debug, Default)]
pub(crate) struct PendingCounts {
    counts: HashMap<(u32, u64, u32), Pending>,
    /// Reads so far; an entry merged into a kernel row during a read is marked with it.
    reads: u64,
}

/// What one (process, image, syscall) has had swapped out.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pending {
    /// Calls.
    pub count: u64,
    /// The process's name when its thread claimed the slot.
    pub comm: [u8; 16],
    /// The last read in which it was merged into a kernel row.
    merged_in: u64,
}

impl PendingCounts {
    /// Starts a read: no entry is merged yet.
    pub fn begin_read(&mut self) {
        self.reads += 1;
    }

    /// The calls swapped out for (tgid, exec_id, nr), marked as merged into its row this read.
    pub fn merge_into_row(&mut self, tgid: u32, exec_id: u64, nr: u32) -> u64 {
        match self.counts.get_mut(&(tgid, exec_id, nr)) {
            Some(pending) => {
                pending.merged_in = self.reads;
                pending.count
            }
            None => 0,
        }
    }

    /// The entries no kernel row took this read: ((tgid, exec_id, nr), pending).
    pub fn unmerged(&self) -> impl Iterator<Item = (&(u32, u64, u32), &Pending)> {
        let reads = self.reads;
        self.counts
            .iter()
            .filter(move |(_, p)| p.merged_in != reads)
    }

    /// Drops the entries of the processes in `sorted_tgids` (sorted).
    pub fn forget(&mut self, sorted_tgids: &[u32]) {
        self.counts
            .retain(|&(tgid, _, _), _| sorted_tgids.binary_search(&tgid).is_err());
    }

    fn add(&mut self, tgid: u32, exec_id: u64, nr: u32, count: u64, comm: [u8; 16]) {
        let entry = self.counts.entry((tgid, exec_id, nr)).or_insert(Pending {
            count: 0,
            comm,
            merged_in: 0,
        });
        entry.count = entry.count.saturating_add(count);
    }
}

/// The `threads` array map (`BPF_F_MMAPABLE`), mapped a window at a time while it is read:
/// mapping all of it would add its whole size (8 MiB) to this process's resident memory, since
/// the kernel maps every page of a BPF array at once.
pub(crate) struct ThreadSlots {
    fd: OwnedFd,
    slots: usize,
}

/// Bytes mapped at a time (a multiple of the page size and of the slot size).
const WINDOW_BYTES: usize = 64 * 1024;
const _: () = assert!(WINDOW_BYTES.is_multiple_of(SLOT_BYTES));

impl ThreadSlots {
    /// Keeps a descriptor of `map`, which holds `slots` entries.
    pub fn new(map: &impl MapCore, slots: u32) -> Result<Self, BpfError> {
        let fd = map
            .as_fd()
            .try_clone_to_owned()
            .map_err(|source| BpfError::MapMemory {
                map: "threads",
                source,
            })?;
        Ok(Self {
            fd,
            slots: slots as usize,
        })
    }

    /// Moves every count waiting in a slot into `into`. A slot that is changing owner
    /// meanwhile is skipped: the kernel moves its counts to the rows itself.
    pub fn drain(&self, into: &mut PendingCounts) -> Result<(), BpfError> {
        let total = self.slots * SLOT_BYTES;
        let mut offset = 0;
        while offset < total {
            let window = Window::map(&self.fd, offset, WINDOW_BYTES.min(total - offset))?;
            for i in 0..window.len / SLOT_BYTES {
                // SAFETY: slot `i` lies wholly inside the window.
                let slot = unsafe { window.base.as_ptr().add(i * SLOT_BYTES) };
                drain_slot(slot, into);
            }
            offset += WINDOW_BYTES;
        }
        Ok(())
    }
}

/// Part of the map, mapped shared and writable until dropped.
struct Window {
    base: NonNull<u8>,
    len: usize,
}

impl Window {
    fn map(fd: &OwnedFd, offset: usize, len: usize) -> Result<Self, BpfError> {
        let failed = |source| BpfError::MapMemory {
            map: "threads",
            source,
        };
        let file_offset = libc::off_t::try_from(offset)
            .map_err(|_| failed(std::io::Error::other("offset out of range")))?;
        // SAFETY: maps part of a BPF array map's fd shared; the kernel checks the range and
        // the flags, and the result is checked below.
        let addr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                file_offset,
            )
        };
        if addr == libc::MAP_FAILED {
            return Err(failed(std::io::Error::last_os_error()));
        }
        let base = NonNull::new(addr.cast::<u8>())
            .ok_or_else(|| failed(std::io::Error::other("mmap returned a null address")))?;
        Ok(Self { base, len })
    }
}

impl Drop for Window {
    fn drop(&mut self) {
        // SAFETY: unmaps exactly the region `map` mapped; nothing refers to it any more.
        unsafe { libc::munmap(self.base.as_ptr().cast(), self.len) };
    }
}

/// A word of the slot at `slot`, `offset` bytes in, as an atomic.
///
/// # Safety
/// `slot` points at a mapped slot and `offset` is the offset of an aligned `T`-sized field.
unsafe fn field<'a, T>(slot: *mut u8, offset: usize) -> &'a T {
    // SAFETY: per the contract; atomics may alias memory the kernel writes.
    unsafe { &*slot.add(offset).cast::<T>() }
}

fn drain_slot(slot: *mut u8, into: &mut PendingCounts) {
    use std::mem::offset_of;
    // SAFETY (all field reads below): `slot` is a mapped slot and the offsets come from the
    // generated layout, asserted aligned above.
    let owner: &AtomicU64 = unsafe { field(slot, offset_of!(syscall_thread, owner)) };
    let gen: &AtomicU32 = unsafe { field(slot, offset_of!(syscall_thread, gen)) };
    let owner_before = owner.load(Ordering::Acquire);
    if owner_before <= OWNER_CLAIMING {
        return; // free (its counts were moved when it was freed) or changing owner
    }
    let gen_before = gen.load(Ordering::Acquire);
    let tgid: &AtomicU32 = unsafe { field(slot, offset_of!(syscall_thread, tgid)) };
    let exec_id: &AtomicU64 = unsafe { field(slot, offset_of!(syscall_thread, exec_id)) };
    let tgid = tgid.load(Ordering::Acquire);
    let exec_id = exec_id.load(Ordering::Acquire);
    let mut comm = [0u8; 16];
    let comm_at = offset_of!(syscall_thread, comm);
    for (j, byte) in comm.iter_mut().enumerate().take(COMM_BYTES) {
        // SAFETY: within the slot; a byte read that races a claim is discarded below.
        *byte = unsafe { std::ptr::read_volatile(slot.add(comm_at + j)) };
    }
    // The low bit of the owner says whether the thread is inside a call: not a change of owner.
    let same_owner = |now: u64| now & !OWNER_IN_CALL == owner_before & !OWNER_IN_CALL;
    if gen.load(Ordering::Acquire) != gen_before || !same_owner(owner.load(Ordering::Acquire)) {
        return; // changed owner while being read: next time
    }
    let tag = u64::from(gen_before & 0xffff);
    let pending_at = offset_of!(syscall_thread, pending);
    for k in 0..PENDING_WORDS {
        let word: &AtomicU64 = unsafe { field(slot, pending_at + k * 8) };
        let mut current = word.load(Ordering::Acquire);
        loop {
            let count = current & COUNT_MASK;
            if count == 0 || current >> TAG_SHIFT != tag {
                break; // empty, or another owner's: the kernel moves it
            }
            match word.compare_exchange(
                current,
                current & !COUNT_MASK,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => {
                    let nr = ((current >> 32) & 0xffff) as u32;
                    into.add(tgid, exec_id, nr, count, comm);
                    break;
                }
                Err(now) => current = now, // the thread counted another call meanwhile
            }
        }
    }
}

/// Pending words per slot (`PENDING_COUNTS` in bpf/syscalls.h).
const PENDING_WORDS: usize = 7;
const _: () = assert!(
    std::mem::size_of::<[u64; PENDING_WORDS]>()
        == SLOT_BYTES - std::mem::offset_of!(syscall_thread, pending)
);
