//! Syscall counting through the per-thread slots, against the real kernel (needs root; fails
//! where BPF is unavailable): every call counted exactly whether it was timed or not, counts
//! waiting in a live thread's slot read out, timing sampled on a busy thread and exact when
//! asked, and slots shared by more threads than they hold losing nothing uncounted.
//!
//! The workloads are this process's own threads, so the tests run one at a time.

use std::mem::MaybeUninit;
use std::sync::mpsc;
use std::sync::{Mutex, PoisonError};
use std::thread;

use goroscope_bpf::syscalls::{Sizing, SyscallOptions, Timing};
use goroscope_bpf::{ProcessFilter, SyscallCollector};
use goroscope_model::SyscallRow;

/// The kernel's loss reason for busy thread slots (`LOSS_SYSCALL_THREAD_SLOTS`).
const THREAD_SLOTS_LOSS: usize = 12;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn getppid_calls(n: u64) {
    for _ in 0..n {
        // SAFETY: getppid takes no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
}

fn ourselves() -> ProcessFilter {
    ProcessFilter {
        pids: vec![std::process::id()],
        comm: None,
        include_self: true,
    }
}

#[track_caller]
fn start<'a>(
    storage: &'a mut MaybeUninit<libbpf_rs::OpenObject>,
    options: SyscallOptions,
) -> SyscallCollector<'a> {
    goroscope_bpf::init();
    SyscallCollector::start_with(storage, &ourselves(), options)
        .unwrap_or_else(|e| panic!("starting the syscall collector: {e}"))
}

#[track_caller]
fn getppid_row(collector: &SyscallCollector<'_>) -> SyscallRow {
    let rows = collector
        .rows()
        .unwrap_or_else(|e| panic!("reading rows: {e}"));
    let me = std::process::id();
    let mut merged: Option<SyscallRow> = None;
    for row in rows
        .into_iter()
        .filter(|r| r.pid == me && i64::from(r.syscall_nr) == libc::SYS_getppid)
    {
        match &mut merged {
            Some(m) => m.merge(&row),
            None => merged = Some(row),
        }
    }
    merged.unwrap_or_else(|| panic!("no getppid row"))
}

#[test]
fn a_busy_thread_is_sampled_yet_counted_exactly() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let mut storage = MaybeUninit::uninit();
    let collector = start(&mut storage, SyscallOptions::default());
    const CALLS: u64 = 400_000;
    thread::spawn(|| getppid_calls(CALLS))
        .join()
        .unwrap_or_else(|_| panic!("the workload thread panicked"));

    let row = getppid_row(&collector);
    assert_eq!(row.count, CALLS, "{row:?}");
    // Far more calls than 10,000 a second: most were counted untimed.
    assert!(
        row.timed > 0 && row.timed < CALLS / 10,
        "timed {} of {CALLS}",
        row.timed
    );
    // Each timed call stands for the calls since the thread's previous one: the histogram
    // estimates all of them.
    let estimated = row.histogram.total();
    let error = estimated.abs_diff(CALLS) as f64 / CALLS as f64;
    assert!(
        error < 0.05,
        "histogram count {estimated} is {:.1}% off {CALLS}",
        error * 100.0
    );
    assert_eq!(
        collector.losses().map(|l| l.total()).ok(),
        Some(0),
        "the kernel lost data"
    );
}

#[test]
fn timing_every_call_is_exact() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let mut storage = MaybeUninit::uninit();
    let options = SyscallOptions {
        timing: Timing::EveryCall,
        ..SyscallOptions::default()
    };
    let collector = start(&mut storage, options);
    const CALLS: u64 = 50_000;
    thread::spawn(|| getppid_calls(CALLS))
        .join()
        .unwrap_or_else(|_| panic!("the workload thread panicked"));

    let row = getppid_row(&collector);
    assert_eq!(row.count, CALLS, "{row:?}");
    assert_eq!(row.timed, CALLS, "{row:?}");
    assert_eq!(row.histogram.total(), CALLS, "{row:?}");
    assert!(row.max_ns > 0 && row.total_ns >= row.max_ns, "{row:?}");
}

#[test]
fn counts_waiting_in_a_live_threads_slot_are_read_once() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let mut storage = MaybeUninit::uninit();
    let collector = start(&mut storage, SyscallOptions::default());
    const CALLS: u64 = 100_000;
    let (done_tx, done_rx) = mpsc::channel();
    let (exit_tx, exit_rx) = mpsc::channel::<()>();
    let worker = thread::spawn(move || {
        getppid_calls(CALLS);
        let _ = done_tx.send(());
        // Stays alive (blocked) with its last counts still in its slot.
        let _ = exit_rx.recv();
    });
    done_rx
        .recv()
        .unwrap_or_else(|_| panic!("the workload thread died"));

    // Read twice while the thread lives: exact both times, nothing counted twice.
    assert_eq!(getppid_row(&collector).count, CALLS);
    assert_eq!(getppid_row(&collector).count, CALLS);
    let _ = exit_tx.send(());
    worker
        .join()
        .unwrap_or_else(|_| panic!("the workload thread panicked"));
    // The thread's exit moved whatever was left to the rows; still exact.
    assert_eq!(getppid_row(&collector).count, CALLS);
}

#[test]
fn threads_that_exit_before_any_read_are_counted() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let mut storage = MaybeUninit::uninit();
    let collector = start(&mut storage, SyscallOptions::default());
    const THREADS: u64 = 50;
    const CALLS: u64 = 3_000;
    for _ in 0..THREADS {
        thread::spawn(|| getppid_calls(CALLS))
            .join()
            .unwrap_or_else(|_| panic!("a workload thread panicked"));
    }
    assert_eq!(getppid_row(&collector).count, THREADS * CALLS);
}

#[test]
fn more_threads_than_slots_lose_nothing_uncounted() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let mut storage = MaybeUninit::uninit();
    // One group of four slots for the whole host: eight threads fight over it.
    let options = SyscallOptions {
        sizing: Sizing {
            thread_slots: 4,
            ..Sizing::default()
        },
        ..SyscallOptions::default()
    };
    let collector = start(&mut storage, options);
    const THREADS: u64 = 8;
    const CALLS: u64 = 20_000;
    let workers: Vec<_> = (0..THREADS)
        .map(|_| thread::spawn(|| getppid_calls(CALLS)))
        .collect();
    for worker in workers {
        worker
            .join()
            .unwrap_or_else(|_| panic!("a workload thread panicked"));
    }
    let row = getppid_row(&collector);
    let lost = collector
        .losses()
        .unwrap_or_else(|e| panic!("reading losses: {e}"))
        .counts[THREAD_SLOTS_LOSS];
    // Every getppid call is counted or counted as lost. The loss counter also counts the
    // threads' other calls (start-up mmap, futex, exit…) that found no slot: a few dozen each.
    let accounted = row.count + lost;
    let calls = THREADS * CALLS;
    assert!(
        accounted >= calls && accounted <= calls + THREADS * 50,
        "counted {} and lost {lost}: {accounted} accounted for, {calls} getppid calls made",
        row.count
    );
    assert!(
        row.count >= THREADS * CALLS / 2,
        "counted only {} of {}",
        row.count,
        THREADS * CALLS
    );
}

#[test]
fn a_name_filter_follows_exec_into_the_named_program() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(PoisonError::into_inner);
    let mut storage = MaybeUninit::uninit();
    goroscope_bpf::init();
    // Each `true` is forked from this test (another name) and gets its name at exec.
    let filter = ProcessFilter {
        pids: Vec::new(),
        comm: Some("true".to_owned()),
        include_self: false,
    };
    let collector = SyscallCollector::start_with(&mut storage, &filter, SyscallOptions::default())
        .unwrap_or_else(|e| panic!("starting the syscall collector: {e}"));
    const RUNS: u64 = 20;
    let mut pids = Vec::new();
    for _ in 0..RUNS {
        let status = std::process::Command::new("true")
            .spawn()
            .and_then(|mut child| {
                pids.push(child.id());
                child.wait()
            })
            .unwrap_or_else(|e| panic!("running true: {e}"));
        assert!(status.success());
    }
    let rows = collector
        .rows()
        .unwrap_or_else(|e| panic!("reading rows: {e}"));
    let ours = |nr: i64| -> u64 {
        rows.iter()
            .filter(|r| pids.contains(&r.pid) && i64::from(r.syscall_nr) == nr)
            .map(|r| r.count)
            .sum()
    };
    assert!(
        rows.iter().all(|r| r.comm == "true"),
        "rows of other names: {rows:?}"
    );
    assert_eq!(ours(libc::SYS_execve), RUNS, "{rows:?}");
    assert_eq!(ours(libc::SYS_exit_group), RUNS, "{rows:?}");
}
