//! Reading the kernel's structs out of map values and ring-buffer records.
//! Only the skeleton-generated types of structs shared with the kernel may be
//! read this way, and their sizes are asserted against the C definitions.

use crate::error::BpfError;
use crate::skel::{files, offcpu, process, profile, syscalls};

/// Plain data shared with the kernel: every bit pattern is a valid value.
///
/// # Safety
/// Implement only for `#[repr(C)]` types made of integers and arrays of integers.
pub(crate) unsafe trait Pod: Copy {}

// SAFETY: generated from C structs of integers and integer arrays only.
unsafe impl Pod for syscalls::types::syscall_key {}
// SAFETY: as above.
unsafe impl Pod for syscalls::types::syscall_stats {}
// SAFETY: as above.
unsafe impl Pod for syscalls::types::syscall_error_key {}
// SAFETY: as above.
unsafe impl Pod for process::types::exec_event {}
// SAFETY: as above.
unsafe impl Pod for process::types::exit_event {}
// SAFETY: as above.
unsafe impl Pod for process::types::fork_event {}
// SAFETY: as above.
unsafe impl Pod for files::types::open_event {}
// SAFETY: as above.
unsafe impl Pod for process::types::event_header {}
// SAFETY: as above.
unsafe impl Pod for profile::types::profile_key {}
// SAFETY: as above.
unsafe impl Pod for offcpu::types::offcpu_key {}
// SAFETY: as above.
unsafe impl Pod for offcpu::types::offcpu_stats {}

// The C side asserts the same sizes (_Static_assert in bpf/*.h).
const _: () = assert!(std::mem::size_of::<process::types::event_header>() == 48);
const _: () = assert!(std::mem::size_of::<profile::types::profile_key>() == 48);
const _: () = assert!(std::mem::size_of::<offcpu::types::offcpu_key>() == 40);
const _: () = assert!(std::mem::size_of::<offcpu::types::offcpu_stats>() == 24);
// go_processes.rs writes struct go_layout as (goid_offset u32, labels_offset u32, text_start u64,
// text_end u64).
const _: () = assert!(std::mem::size_of::<profile::types::go_layout>() == 24);
const _: () = assert!(std::mem::offset_of!(profile::types::go_layout, labels_offset) == 4);
const _: () = assert!(std::mem::offset_of!(profile::types::go_layout, text_start) == 8);
const _: () = assert!(std::mem::offset_of!(profile::types::go_layout, text_end) == 16);
const _: () = assert!(std::mem::size_of::<offcpu::types::go_layout>() == 24);
const _: () = assert!(std::mem::offset_of!(offcpu::types::go_layout, text_end) == 16);
// go_processes.rs reads struct label_set_ref as (tgid at 0, labels at 8).
const _: () = assert!(std::mem::size_of::<profile::types::label_set_ref>() == 16);
const _: () = assert!(std::mem::offset_of!(profile::types::label_set_ref, labels) == 8);
const _: () = assert!(std::mem::size_of::<syscalls::types::syscall_key>() == 16);
const _: () = assert!(std::mem::size_of::<syscalls::types::syscall_error_key>() == 24);
const _: () = assert!(
    std::mem::size_of::<syscalls::types::syscall_stats>()
        == 56 + 8 * goroscope_model::LATENCY_BUCKETS
);
const _: () = assert!(std::mem::size_of::<syscalls::types::syscall_thread>() == 128);
const _: () = assert!(std::mem::size_of::<process::types::exec_event>() == 48 + 16 + 256 + 512);
const _: () = assert!(std::mem::size_of::<process::types::exit_event>() == 64);
const _: () = assert!(std::mem::size_of::<process::types::fork_event>() == 56);
const _: () = assert!(std::mem::size_of::<files::types::open_event>() == 48 + 32 + 256);

/// Copies a `T` out of the start of `bytes`.
pub(crate) fn read<T: Pod>(bytes: &[u8], map: &'static str) -> Result<T, BpfError> {
    let expected = std::mem::size_of::<T>();
    if bytes.len() < expected {
        return Err(BpfError::ShortRecord {
            map,
            len: bytes.len(),
            expected,
        });
    }
    // SAFETY: `bytes` holds at least size_of::<T>() bytes, T is Pod (any bit
    // pattern is valid), and read_unaligned does not require alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// Bytes of a C char array as u8 (the generated types use i8).
pub(crate) fn chars(field: &[i8]) -> &[u8] {
    // SAFETY: i8 and u8 have the same size, alignment and validity.
    unsafe { std::slice::from_raw_parts(field.as_ptr().cast::<u8>(), field.len()) }
}
