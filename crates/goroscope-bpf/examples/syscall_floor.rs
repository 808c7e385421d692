//! Empty BPF programs on sys_enter and sys_exit (tp_btf) until SIGINT or SIGTERM: the floor
//! that `bench/syscall-overhead.sh` compares every syscall tracer with. Prints
//! "goroscope: attached" once both are live.
//!
//! Run as root: `cargo run --release -p goroscope-bpf --example syscall_floor`.

use std::mem::MaybeUninit;
use std::process::ExitCode;

use goroscope_bpf::syscalls::FloorPrograms;

fn main() -> ExitCode {
    goroscope_bpf::init();
    // SAFETY: an empty set filled with two valid signal numbers, then blocked for this thread
    // (before any other thread exists) so that sigwait receives them.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut());
        set
    };
    let mut storage = MaybeUninit::uninit();
    let floor = match FloorPrograms::start(&mut storage) {
        Ok(floor) => floor,
        Err(err) => {
            eprintln!("syscall_floor: {err}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("goroscope: attached (empty programs on sys_enter and sys_exit)");
    let mut signal = 0;
    // SAFETY: waits for one of the blocked signals of a valid set.
    unsafe { libc::sigwait(&set, &mut signal) };
    drop(floor);
    ExitCode::SUCCESS
}
