//! The scheduler collector against real threads and processes: needs root
//! (or CAP_BPF and CAP_PERFMON) and fails, never skips, without BPF.

use std::io::Write;
use std::mem::MaybeUninit;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use goroscope_bpf::sched::SchedCollector;
use goroscope_bpf::{choose_attach_mode, AttachMode, ProcessFilter};
use goroscope_model::sched_stats::SchedRow;
use libbpf_rs::OpenObject;

/// The tests share this process's row: run them one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn me() -> u32 {
    std::process::id()
}

fn only(pid: u32) -> ProcessFilter {
    ProcessFilter {
        pids: vec![pid],
        comm: None,
        include_self: true,
    }
}

#[track_caller]
fn attach_mode() -> AttachMode {
    goroscope_bpf::init();
    choose_attach_mode().unwrap_or_else(|e| panic!("no way to attach BPF programs here: {e}"))
}

#[track_caller]
fn start<'obj>(
    storage: &'obj mut MaybeUninit<OpenObject>,
    mode: AttachMode,
    filter: &ProcessFilter,
) -> SchedCollector<'obj> {
    let collector = SchedCollector::start(storage, mode, filter)
        .unwrap_or_else(|e| panic!("starting the scheduler collector ({mode}): {e}"));
    assert_eq!(collector.mode(), mode);
    collector
}

#[track_caller]
fn row_of(collector: &SchedCollector<'_>, pid: u32) -> Option<SchedRow> {
    let rows = collector
        .rows()
        .unwrap_or_else(|e| panic!("reading scheduler rows: {e}"));
    let mut mine = rows.iter().filter(|r| r.pid == pid);
    let row = mine.next().cloned();
    assert!(mine.next().is_none(), "more than one row for pid {pid}");
    row
}

/// The kernel's name for this process (its group leader's comm).
fn own_comm() -> String {
    std::fs::read_to_string("/proc/self/comm")
        .unwrap_or_else(|e| panic!("reading /proc/self/comm: {e}"))
        .trim_end()
        .to_owned()
}

const SLEEPS: u64 = 300;
const SLEEP: Duration = Duration::from_millis(2);

/// The calling thread's run-queue wait so far as the kernel's own
/// scheduler statistics count it (`run_delay` in ns), when available.
fn own_run_delay_ns() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    text.split_whitespace().nth(1)?.parse().ok()
}

/// 300 sleeps of 2 ms on one thread; returns the kernel's count of that
/// thread's run-queue wait meanwhile, when it keeps one.
fn sleepy_thread() -> Option<u64> {
    thread::spawn(|| {
        let before = own_run_delay_ns();
        for _ in 0..SLEEPS {
            thread::sleep(SLEEP); // nanosleep(2)
        }
        Some(own_run_delay_ns()? - before?)
    })
    .join()
    .unwrap_or_else(|_| panic!("the sleeping thread panicked"))
}

#[track_caller]
fn check_sleeps(collector: &SchedCollector<'_>, kernel_run_delay_ns: Option<u64>) {
    let row =
        row_of(collector, me()).unwrap_or_else(|| panic!("no scheduler row for this process"));
    eprintln!(
        "{}: voluntary {} involuntary {} blocked {} ns, run-queue waits {} total {} ns \
         (the kernel's run_delay of the sleeping thread: {kernel_run_delay_ns:?} ns)",
        collector.mode(),
        row.voluntary_switches,
        row.involuntary_switches,
        row.blocked_ns,
        row.runqueue_count(),
        row.runqueue_total_ns
    );
    let min_blocked = (SLEEPS as u128 * SLEEP.as_nanos() * 9 / 10) as u64;
    assert!(
        row.voluntary_switches >= SLEEPS,
        "voluntary switches {} < {SLEEPS}: {row:?}",
        row.voluntary_switches
    );
    assert!(
        row.blocked_ns >= min_blocked,
        "blocked {} ns < {min_blocked} ns",
        row.blocked_ns
    );
    // Every wakeup is one run-queue wait, but this kernel now and then reports neither a
    // thread's wakeup nor its switch-in (found by the off-CPU profiler, ~0.1 % of switches,
    // with tp_btf and perf tracepoints alike): a fresh-clone run saw 299 of 300 here. The
    // scheduler collector does not yet recover or count those (ARCHITECTURE, sched), so up to
    // 1 % may be missing; a broken run-queue path loses them all.
    let least = SLEEPS - SLEEPS / 100;
    assert!(
        row.runqueue_count() >= least,
        "run-queue waits {} < {least} (of {SLEEPS} wakeups)",
        row.runqueue_count()
    );
    assert!(row.runqueue_total_ns > 0, "no run-queue time: {row:?}");
    if let Some(kernel) = kernel_run_delay_ns {
        // The row also holds the other threads' waits: the kernel's figure
        // for the sleeping thread alone is a lower bound.
        assert!(
            row.runqueue_total_ns >= kernel / 10 * 9,
            "run-queue total {} ns, but the kernel counted {kernel} ns for the sleeping thread",
            row.runqueue_total_ns
        );
    }
    assert_eq!(row.comm, own_comm());
    let losses = collector
        .losses()
        .unwrap_or_else(|e| panic!("reading losses: {e}"));
    assert_eq!(
        losses.total(),
        0,
        "losses: {:?}",
        losses.nonzero().collect::<Vec<_>>()
    );
}

/// (a) Sleeping is voluntary, its time is blocked time, and every wakeup is
/// followed by a run-queue wait.
#[test]
fn sleeps_are_voluntary_switches_with_blocked_time() {
    let _serial = serial();
    let mode = attach_mode();
    let mut storage = MaybeUninit::uninit();
    let collector = start(&mut storage, mode, &only(me()));
    let kernel_run_delay = sleepy_thread();
    check_sleeps(&collector, kernel_run_delay);
}

/// (a) again through the raw_tp fallback (tid-keyed stamps instead of task storage).
#[test]
fn raw_tp_fallback_measures_the_same() {
    let _serial = serial();
    goroscope_bpf::init();
    let mut storage = MaybeUninit::uninit();
    let collector = start(&mut storage, AttachMode::RawTp, &only(me()));
    let kernel_run_delay = sleepy_thread();
    check_sleeps(&collector, kernel_run_delay);
}

/// Pins the calling thread to `cpu`.
#[track_caller]
fn pin_to(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a valid cpu_set_t and `cpu` is below CPU_SETSIZE (checked by the caller).
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: pid 0 is the calling thread; `set` is valid for the call.
    let rc = unsafe { libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set) };
    assert_eq!(
        rc,
        0,
        "sched_setaffinity: {}",
        std::io::Error::last_os_error()
    );
}

/// The first CPU this process may run on.
fn first_allowed_cpu() -> usize {
    // SAFETY: as in pin_to.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: pid 0 is the calling thread; `set` is valid and writable for the call.
    let rc = unsafe { libc::sched_getaffinity(0, std::mem::size_of_val(&set), &mut set) };
    assert_eq!(
        rc,
        0,
        "sched_getaffinity: {}",
        std::io::Error::last_os_error()
    );
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `set` is initialised and i is below CPU_SETSIZE.
        .find(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .unwrap_or_else(|| panic!("no CPU allowed"))
}

/// (b) Two busy threads sharing one CPU preempt each other: involuntary
/// switches, and each waits in the run queue for the other.
#[test]
fn busy_threads_on_one_cpu_are_preempted() {
    let _serial = serial();
    let mode = attach_mode();
    let mut storage = MaybeUninit::uninit();
    let collector = start(&mut storage, mode, &only(me()));
    let before = row_of(&collector, me()).unwrap_or_default();

    let cpu = first_allowed_cpu();
    let stop = Arc::new(AtomicBool::new(false));
    let spinners: Vec<_> = (0..2)
        .map(|_| {
            let stop = Arc::clone(&stop);
            thread::spawn(move || {
                pin_to(cpu);
                let mut spins = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    spins = spins.wrapping_add(1);
                    std::hint::black_box(spins);
                }
            })
        })
        .collect();
    thread::sleep(Duration::from_millis(400));
    stop.store(true, Ordering::Relaxed);
    for t in spinners {
        t.join()
            .unwrap_or_else(|_| panic!("a busy thread panicked"));
    }

    let row =
        row_of(&collector, me()).unwrap_or_else(|| panic!("no scheduler row for this process"));
    eprintln!(
        "busy: involuntary {} run-queue waits {} total {} ns",
        row.involuntary_switches,
        row.runqueue_count(),
        row.runqueue_total_ns
    );
    assert!(
        row.involuntary_switches > before.involuntary_switches,
        "no involuntary switches: {row:?}"
    );
    assert!(
        row.runqueue_total_ns > before.runqueue_total_ns,
        "no run-queue time: {row:?}"
    );
}

/// A `cat` fed `lines` lines, one every few milliseconds, then closed.
fn run_cat(lines: usize) -> u32 {
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting cat: {e}"));
    let pid = child.id();
    if let Some(mut stdin) = child.stdin.take() {
        for i in 0..lines {
            writeln!(stdin, "line {i}").unwrap_or_else(|e| panic!("writing to cat: {e}"));
            thread::sleep(Duration::from_millis(3));
        }
    }
    let status = child
        .wait()
        .unwrap_or_else(|e| panic!("waiting for cat: {e}"));
    assert!(status.success(), "cat: {status}");
    pid
}

/// (c) forget() deletes an exited process's row, and its last switches do
/// not bring it back.
#[test]
fn forget_removes_an_exited_process() {
    let _serial = serial();
    let mode = attach_mode();
    // cat must exist before the filter names it: it waits for its first line.
    let mut child = Command::new("cat")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting cat: {e}"));
    let pid = child.id();
    let mut storage = MaybeUninit::uninit();
    let collector = start(&mut storage, mode, &only(pid));
    if let Some(mut stdin) = child.stdin.take() {
        for i in 0..20 {
            writeln!(stdin, "line {i}").unwrap_or_else(|e| panic!("writing to cat: {e}"));
            thread::sleep(Duration::from_millis(3));
        }
    }
    let status = child
        .wait()
        .unwrap_or_else(|e| panic!("waiting for cat: {e}"));
    assert!(status.success(), "cat: {status}");

    let row = row_of(&collector, pid).unwrap_or_else(|| panic!("no row for cat ({pid})"));
    assert_eq!(row.comm, "cat");
    assert!(row.voluntary_switches >= 20, "{row:?}");
    assert_eq!(forget(&collector, &[pid, 999_999_999]), 1);
    assert_eq!(row_of(&collector, pid), None);
    assert_eq!(forget(&collector, &[pid]), 0);
    assert_eq!(forget(&collector, &[]), 0);
    thread::sleep(Duration::from_millis(50));
    assert_eq!(
        row_of(&collector, pid),
        None,
        "the exited process came back"
    );
}

#[track_caller]
fn forget(collector: &SchedCollector<'_>, pids: &[u32]) -> usize {
    collector
        .forget(pids)
        .unwrap_or_else(|e| panic!("forgetting {pids:?}: {e}"))
}

/// (d) With a pid filter, other processes get no rows, however busy.
#[test]
fn pid_filter_keeps_other_processes_out() {
    let _serial = serial();
    let mode = attach_mode();
    let mut storage = MaybeUninit::uninit();
    let collector = start(&mut storage, mode, &only(me()));
    let other = run_cat(20);

    let rows = collector
        .rows()
        .unwrap_or_else(|e| panic!("reading scheduler rows: {e}"));
    assert!(
        rows.iter().any(|r| r.pid == me()),
        "no row for this process"
    );
    let strangers: Vec<_> = rows.iter().filter(|r| r.pid != me()).collect();
    assert!(
        strangers.is_empty(),
        "rows of other processes (cat was {other}): {strangers:?}"
    );
}

/// Without a pid filter every busy process shows up, and never the idle task.
#[test]
fn host_wide_sees_other_processes() {
    let _serial = serial();
    let mode = attach_mode();
    let mut storage = MaybeUninit::uninit();
    let collector = start(&mut storage, mode, &ProcessFilter::default());
    let other = run_cat(20);
    let rows = collector
        .rows()
        .unwrap_or_else(|e| panic!("reading scheduler rows: {e}"));
    assert!(rows.iter().all(|r| r.pid != 0), "a row for the idle task");
    assert!(
        rows.iter().all(|r| r.pid != me()),
        "goroscope's own process is traced without include_self"
    );
    let cat = rows
        .iter()
        .find(|r| r.pid == other)
        .unwrap_or_else(|| panic!("no row for cat ({other}) host-wide"));
    assert!(cat.voluntary_switches >= 20, "{cat:?}");
}

/// A name filter, in both attach modes: cat's rows only.
#[test]
fn comm_filter_selects_by_name() {
    let _serial = serial();
    let preferred = attach_mode();
    for mode in [preferred, AttachMode::RawTp] {
        let mut storage = MaybeUninit::uninit();
        let filter = ProcessFilter {
            pids: Vec::new(),
            comm: Some("cat".to_owned()),
            include_self: true,
        };
        let collector = start(&mut storage, mode, &filter);
        let other = run_cat(20);
        let rows = collector
            .rows()
            .unwrap_or_else(|e| panic!("reading scheduler rows ({mode}): {e}"));
        assert!(
            rows.iter().all(|r| r.comm == "cat"),
            "{mode}: rows of other names: {rows:?}"
        );
        assert!(
            rows.iter()
                .any(|r| r.pid == other && r.voluntary_switches >= 20),
            "{mode}: no row for cat ({other}): {rows:?}"
        );
    }
}
