//! CPU sampling against the real kernel (needs root; fails where BPF or perf events are
//! unavailable): a thread spinning in a known function is sampled at the asked frequency with
//! that function at the top of its user stacks; a syscall-heavy thread shows kernel stacks; a
//! frequency out of range is refused.

use std::hint::black_box;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use goroscope_bpf::profile::{CpuSampler, StackSample};
use goroscope_bpf::{BpfError, ProcessFilter};

const HZ: u32 = 99;
const SPIN: Duration = Duration::from_secs(2);

/// The workloads are this process's threads: one test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn ourselves() -> ProcessFilter {
    ProcessFilter {
        pids: vec![std::process::id()],
        comm: None,
        include_self: true,
    }
}

#[inline(never)]
fn spin_in_user_space(until: Instant) -> u64 {
    let mut rounds = 0u64;
    while Instant::now() < until {
        // A loop of two instructions and no calls (debug builds call even wrapping_mul): the
        // sampled instruction is in this function almost always.
        let mut n: u64 = 20_000_000;
        // SAFETY: only decrements a register until it reaches zero.
        unsafe { std::arch::asm!("2:", "dec {0}", "jnz 2b", inout(reg) n) };
        rounds += 1 + n;
    }
    rounds
}

#[inline(never)]
fn spin_in_syscalls(until: Instant) {
    while Instant::now() < until {
        for _ in 0..1_000 {
            // SAFETY: getppid takes no arguments and cannot fail.
            unsafe { libc::syscall(libc::SYS_getppid) };
        }
    }
}

/// Runs `work` on a new thread for SPIN while sampling; returns the thread id and the samples.
fn sample_while(work: fn(Instant)) -> (u32, Vec<StackSample>) {
    goroscope_bpf::init();
    let mut storage = MaybeUninit::uninit();
    let sampler = CpuSampler::start(&mut storage, &ourselves(), HZ)
        .unwrap_or_else(|e| panic!("starting the CPU sampler: {e}"));
    assert!(sampler.cpus() > 0, "no CPU is sampled");
    let tid = Arc::new(AtomicU32::new(0));
    let started = Arc::new(AtomicBool::new(false));
    let worker = {
        let tid = Arc::clone(&tid);
        let started = Arc::clone(&started);
        thread::spawn(move || {
            // SAFETY: gettid takes no arguments and cannot fail.
            let me = unsafe { libc::syscall(libc::SYS_gettid) } as u32;
            tid.store(me, Ordering::SeqCst);
            started.store(true, Ordering::SeqCst);
            work(Instant::now() + SPIN);
        })
    };
    worker
        .join()
        .unwrap_or_else(|_| panic!("the workload thread panicked"));
    assert!(started.load(Ordering::SeqCst));
    let samples = sampler
        .samples()
        .unwrap_or_else(|e| panic!("reading samples: {e}"));
    let losses = sampler
        .losses()
        .unwrap_or_else(|e| panic!("reading losses: {e}"));
    assert_eq!(losses.samples, 0, "samples dropped: {losses:?}");
    (tid.load(Ordering::SeqCst), samples)
}

#[test]
fn a_spinning_thread_is_sampled_at_the_frequency_in_its_function() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let (tid, samples) = sample_while(|until| {
        black_box(spin_in_user_space(until));
    });
    let mine: Vec<&StackSample> = samples.iter().filter(|s| s.tid == tid).collect();
    let count: u64 = mine.iter().map(|s| s.count).sum();
    // 2 s at 99 Hz on a CPU the thread has to itself most of the time.
    let expected = f64::from(HZ) * SPIN.as_secs_f64();
    assert!(
        (count as f64) > expected * 0.6 && (count as f64) < expected * 1.3,
        "{count} samples of the spinning thread, expected about {expected}"
    );
    assert!(mine.iter().all(|s| s.pid == std::process::id()));
    // The sampled instruction (the first user frame) is inside the spinning function.
    let start = spin_in_user_space as *const () as usize as u64;
    let inside: u64 = mine
        .iter()
        .filter(|s| {
            s.user
                .first()
                .is_some_and(|&ip| ip >= start && ip < start + 4096)
        })
        .map(|s| s.count)
        .sum();
    assert!(
        inside * 10 >= count * 8,
        "only {inside} of {count} samples have their first frame in spin_in_user_space \
         ({start:#x}): {mine:?}"
    );
}

#[test]
fn a_thread_in_syscalls_has_kernel_stacks() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let (tid, samples) = sample_while(spin_in_syscalls);
    let mine: Vec<&StackSample> = samples.iter().filter(|s| s.tid == tid).collect();
    let in_kernel: u64 = mine
        .iter()
        .filter(|s| !s.kernel.is_empty())
        .map(|s| s.count)
        .sum();
    assert!(in_kernel > 0, "no kernel stack among {mine:?}");
    for s in mine.iter().filter(|s| !s.kernel.is_empty()) {
        assert!(
            s.kernel.iter().all(|&ip| ip >= 0xffff_8000_0000_0000),
            "a kernel frame outside the kernel's half: {s:?}"
        );
        assert!(
            !s.user.is_empty(),
            "a syscall sample without its user stack: {s:?}"
        );
    }
}

#[test]
fn frequencies_outside_1_to_1000_hz_are_refused() {
    goroscope_bpf::init();
    for hz in [0, 1001] {
        let mut storage = MaybeUninit::uninit();
        let started = CpuSampler::start(&mut storage, &ourselves(), hz).map(|_| ());
        match started {
            Err(BpfError::Frequency { frequency }) => assert_eq!(frequency, hz),
            Err(other) => panic!("{hz} Hz: wrong error {other}"),
            Ok(()) => panic!("{hz} Hz was accepted"),
        }
    }
}
