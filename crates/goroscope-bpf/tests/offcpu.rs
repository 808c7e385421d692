//! Off-CPU time against the real kernel (needs root; fails where BPF is unavailable): a thread
//! that sleeps in a known pattern shows that much blocked time, where it slept (its own
//! nanosleep at the top of its user stack, the kernel's nanosleep path in its kernel stack), in
//! both attach modes; two CPU-bound threads sharing one CPU each wait in the run queue; intervals
//! shorter than the minimum duration are not counted.

use std::arch::asm;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Barrier, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use goroscope_bpf::offcpu::{OffCpuSample, OffCpuSampler};
use goroscope_bpf::{AttachMode, ProcessFilter};

/// The workloads are this process's threads: one test at a time.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn ourselves() -> ProcessFilter {
    ProcessFilter {
        pids: vec![std::process::id()],
        comm: None,
        include_self: true,
    }
}

fn gettid() -> u32 {
    // SAFETY: gettid takes no arguments and cannot fail.
    unsafe { libc::syscall(libc::SYS_gettid) as u32 }
}

/// Sleeps `d` with a `nanosleep` system call made from this function itself, so the innermost
/// user frame of the sleep is in here (libc's wrappers would put it in libc).
#[inline(never)]
fn nanosleep_here(d: Duration) {
    let ts = libc::timespec {
        tv_sec: d.as_secs() as libc::time_t,
        tv_nsec: d.subsec_nanos() as libc::c_long,
    };
    let mut ret = libc::SYS_nanosleep;
    // SAFETY: nanosleep reads the timespec, which outlives the call; a null `rem` is allowed;
    // the syscall instruction clobbers only rax, rcx and r11.
    unsafe {
        asm!(
            "syscall",
            inout("rax") ret,
            in("rdi") &ts as *const libc::timespec,
            in("rsi") 0usize,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    assert_eq!(ret, 0, "nanosleep failed: {ret}");
}

/// Is `ip` inside `nanosleep_here`?
fn in_nanosleep_here(ip: u64) -> bool {
    let start = nanosleep_here as *const () as usize as u64;
    ip > start && ip < start + 512
}

fn spin(d: Duration) {
    let until = Instant::now() + d;
    while Instant::now() < until {
        std::hint::spin_loop();
    }
}

/// Runs `work` on a new thread while `sampler` runs; returns the thread id.
fn run_thread(work: impl FnOnce() + Send + 'static) -> u32 {
    let tid = Arc::new(AtomicU32::new(0));
    let worker = {
        let tid = Arc::clone(&tid);
        thread::spawn(move || {
            tid.store(gettid(), Ordering::SeqCst);
            work();
        })
    };
    worker
        .join()
        .unwrap_or_else(|_| panic!("the workload thread panicked"));
    tid.load(Ordering::SeqCst)
}

fn start(
    storage: &mut MaybeUninit<libbpf_rs::OpenObject>,
    mode: AttachMode,
    min: Duration,
) -> OffCpuSampler<'_> {
    goroscope_bpf::init();
    OffCpuSampler::start_in_mode(storage, mode, &ourselves(), min.as_nanos() as u64)
        .unwrap_or_else(|e| panic!("starting the off-CPU sampler ({mode}): {e}"))
}

/// The sampler's rows of thread `tid`, after checking no interval was lost.
fn rows_of(sampler: &OffCpuSampler<'_>, tid: u32) -> Vec<OffCpuSample> {
    let losses = sampler
        .losses()
        .unwrap_or_else(|e| panic!("reading losses: {e}"));
    // Stacks are keyed by a 64-bit hash of their frames: none may be lost to a collision.
    assert!(
        losses.rows == 0
            && losses.threads == 0
            && losses.user_stacks == 0
            && losses.kernel_stacks == 0,
        "the kernel lost intervals: {losses:?}"
    );
    let samples = sampler
        .samples()
        .unwrap_or_else(|e| panic!("reading samples: {e}"));
    assert!(
        samples.iter().all(|s| s.pid == std::process::id()),
        "rows of another process despite the filter"
    );
    samples.into_iter().filter(|s| s.tid == tid).collect()
}

/// The rows whose innermost user frame is in `nanosleep_here`.
fn nanosleep_rows(rows: &[OffCpuSample]) -> Vec<&OffCpuSample> {
    rows.iter()
        .filter(|s| s.user.first().is_some_and(|&ip| in_nanosleep_here(ip)))
        .collect()
}

/// The kernel's text symbols, by address.
struct Kallsyms(Vec<(u64, String)>);

impl Kallsyms {
    #[track_caller]
    fn read() -> Self {
        let text = std::fs::read_to_string("/proc/kallsyms")
            .unwrap_or_else(|e| panic!("reading /proc/kallsyms: {e}"));
        let mut symbols: Vec<(u64, String)> = text
            .lines()
            .filter_map(|line| {
                let mut fields = line.split_whitespace();
                let addr = u64::from_str_radix(fields.next()?, 16).ok()?;
                let kind = fields.next()?;
                let name = fields.next()?;
                (addr != 0 && matches!(kind, "t" | "T")).then(|| (addr, name.to_owned()))
            })
            .collect();
        symbols.sort_unstable();
        assert!(
            !symbols.is_empty(),
            "/proc/kallsyms shows no addresses (kptr_restrict?)"
        );
        Self(symbols)
    }

    fn name(&self, ip: u64) -> &str {
        match self.0.partition_point(|(addr, _)| *addr <= ip) {
            0 => "?",
            i => &self.0[i - 1].1,
        }
    }
}

const SLEEPS: u32 = 20;
const SLEEP: Duration = Duration::from_millis(50);

/// 20 × (spin 20 ms, sleep 50 ms) ≈ 1.4 s: 1 s blocked, in exactly 20 sleeps.
fn sleeping_thread_is_measured(mode: AttachMode) {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let mut storage = MaybeUninit::uninit();
    let sampler = start(&mut storage, mode, Duration::from_millis(1));
    assert_eq!(sampler.mode(), mode);
    let tid = run_thread(|| {
        for _ in 0..SLEEPS {
            spin(Duration::from_millis(20));
            nanosleep_here(SLEEP);
        }
    });
    let rows = rows_of(&sampler, tid);

    let planned = (SLEEP * SLEEPS).as_nanos() as f64;
    let blocked: u64 = rows.iter().map(|s| s.blocked_ns).sum();
    assert!(
        (blocked as f64 - planned).abs() <= planned * 0.1,
        "{mode}: {blocked} ns blocked, planned {planned} ns: {rows:#?}"
    );

    let sleeps = nanosleep_rows(&rows);
    let count: u64 = sleeps.iter().map(|s| s.count).sum();
    assert_eq!(
        count,
        u64::from(SLEEPS),
        "{mode}: sleeps counted under nanosleep_here's user stack: {rows:#?}"
    );
    let slept: u64 = sleeps.iter().map(|s| s.blocked_ns).sum();
    assert!(
        (slept as f64 - planned).abs() <= planned * 0.1,
        "{mode}: {slept} ns blocked in nanosleep_here, planned {planned} ns"
    );

    let kallsyms = Kallsyms::read();
    for s in &sleeps {
        assert!(
            s.kernel.iter().all(|&ip| ip >= 0xffff_8000_0000_0000),
            "{mode}: a kernel frame outside the kernel's half: {s:?}"
        );
        let names: Vec<&str> = s.kernel.iter().map(|&ip| kallsyms.name(ip)).collect();
        assert!(
            names.iter().any(|n| n.contains("do_nanosleep")),
            "{mode}: the kernel stack of a sleep does not pass do_nanosleep: {names:?}"
        );
        assert!(
            s.user
                .iter()
                .all(|&ip| ip > 0 && ip < 0x0000_8000_0000_0000),
            "{mode}: a user frame outside user space: {s:?}"
        );
    }
}

#[test]
fn a_sleeping_thread_shows_its_blocked_time_where_it_slept() {
    sleeping_thread_is_measured(AttachMode::TpBtf);
}

#[test]
fn the_raw_tp_fallback_measures_the_same() {
    sleeping_thread_is_measured(AttachMode::RawTp);
}

/// The first CPU this process may run on.
fn first_allowed_cpu() -> usize {
    // SAFETY: cpu_set_t is plain data; all-zero is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: set is a valid cpu_set_t of the size given; pid 0 is this thread.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    assert_eq!(
        rc,
        0,
        "sched_getaffinity: {}",
        std::io::Error::last_os_error()
    );
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: i is below CPU_SETSIZE.
        .find(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .unwrap_or_else(|| panic!("no CPU allowed"))
}

/// Pins the calling thread to `cpu`.
fn pin_to(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; all-zero is an empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: cpu is below CPU_SETSIZE (it came from sched_getaffinity).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: set is a valid cpu_set_t of the size given; pid 0 is this thread.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    assert_eq!(
        rc,
        0,
        "sched_setaffinity: {}",
        std::io::Error::last_os_error()
    );
}

#[test]
fn two_threads_sharing_one_cpu_each_wait_in_the_run_queue() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let mut storage = MaybeUninit::uninit();
    let sampler = start(&mut storage, AttachMode::TpBtf, Duration::ZERO);
    const BUSY: Duration = Duration::from_secs(1);
    let cpu = first_allowed_cpu();
    let ready = Arc::new(Barrier::new(2));
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let ready = Arc::clone(&ready);
            thread::spawn(move || {
                pin_to(cpu);
                ready.wait();
                spin(BUSY);
                gettid()
            })
        })
        .collect();
    let tids: Vec<u32> = spinners
        .into_iter()
        .map(|t| t.join().unwrap_or_else(|_| panic!("a spinner panicked")))
        .collect();
    for tid in tids {
        let rows = rows_of(&sampler, tid);
        let waited: u64 = rows.iter().map(|s| s.runqueue_ns).sum();
        let blocked: u64 = rows.iter().map(|s| s.blocked_ns).sum();
        // Each gets about half the CPU for BUSY, so waits about as long.
        assert!(
            waited as f64 >= BUSY.as_nanos() as f64 * 0.3,
            "thread {tid} waited {waited} ns for CPU {cpu} while sharing it for {BUSY:?}: {rows:#?}"
        );
        assert!(
            blocked < waited / 4,
            "thread {tid} spun but was blocked {blocked} ns (waited {waited} ns)"
        );
        let preempted: Vec<&OffCpuSample> = rows
            .iter()
            .filter(|s| s.runqueue_ns > 0 && s.blocked_ns == 0)
            .collect();
        assert!(
            preempted.iter().map(|s| s.count).sum::<u64>() >= 10,
            "thread {tid} was hardly preempted: {rows:#?}"
        );
        assert!(
            preempted
                .iter()
                .all(|s| !s.kernel.is_empty() || s.user.is_empty()),
            "a preemption without its kernel stack: {preempted:#?}"
        );
    }
}

#[test]
fn intervals_shorter_than_the_minimum_are_not_counted() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let mut storage = MaybeUninit::uninit();
    let min = Duration::from_millis(20);
    let sampler = start(&mut storage, AttachMode::TpBtf, min);
    assert_eq!(sampler.min_duration_ns(), 20_000_000);
    const SHORT: u32 = 30;
    const LONG: u32 = 5;
    let tid = run_thread(|| {
        for _ in 0..SHORT {
            nanosleep_here(Duration::from_millis(2));
        }
        for _ in 0..LONG {
            nanosleep_here(Duration::from_millis(40));
        }
    });
    let rows = rows_of(&sampler, tid);
    let sleeps = nanosleep_rows(&rows);
    let count: u64 = sleeps.iter().map(|s| s.count).sum();
    let slept: u64 = sleeps.iter().map(|s| s.blocked_ns).sum();
    // A 2 ms sleep passes only when a run-queue wait of 18 ms follows it: allow two of those.
    assert!(
        (u64::from(LONG)..=u64::from(LONG) + 2).contains(&count),
        "{count} sleeps counted, expected the {LONG} long ones: {rows:#?}"
    );
    let long = Duration::from_millis(40 * u64::from(LONG)).as_nanos() as u64;
    assert!(
        slept >= long && slept < long + long / 10,
        "{slept} ns blocked in counted sleeps, expected about {long} ns (the short sleeps add 60 ms)"
    );
    assert!(
        rows.iter()
            .all(|s| s.count > 0
                && (s.blocked_ns + s.runqueue_ns) >= s.count * min.as_nanos() as u64),
        "a row holds intervals shorter than {min:?}: {rows:#?}"
    );
}
