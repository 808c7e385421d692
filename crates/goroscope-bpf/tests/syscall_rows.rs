//! The syscall rows under load, against the real kernel (needs root; fails, never skips, without
//! BPF): process churn at 200 starts per second counted exactly with no loss, and a simulated
//! 64-CPU host's sizing holding 5,000 live processes × 30 kinds of syscalls.
//!
//! Children are forked from this test process and make only raw syscalls (no allocation, no
//! locks) before `_exit`, so forking a multi-threaded process is safe.

use std::collections::HashMap;
use std::ffi::CString;
use std::mem::MaybeUninit;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use goroscope_bpf::sched::SchedCollector;
use goroscope_bpf::syscalls::Sizing;
use goroscope_bpf::{choose_attach_mode, AttachMode, ProcessFilter, SyscallCollector};
use goroscope_model::SyscallRow;

/// The tests fork hundreds of children each: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

const EBADF: u32 = 9;

#[track_caller]
fn attach_mode() -> AttachMode {
    goroscope_bpf::init();
    choose_attach_mode().unwrap_or_else(|e| panic!("no way to attach BPF programs here: {e}"))
}

/// This thread's name, which children it forks keep (libtest names threads after tests).
fn own_comm() -> String {
    std::fs::read_to_string("/proc/thread-self/comm")
        .unwrap_or_else(|e| panic!("reading /proc/thread-self/comm: {e}"))
        .trim_end()
        .to_owned()
}

/// Forks a child that runs `body` and then `_exit(0)`s; returns its pid.
fn fork_child(body: impl FnOnce()) -> u32 {
    // SAFETY: the child only makes raw syscalls (see `body`s below) and leaves with _exit.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0, "fork: {}", std::io::Error::last_os_error());
    if pid == 0 {
        body();
        // SAFETY: ends the child without running the parent's destructors or atexit handlers.
        unsafe { libc::_exit(0) };
    }
    pid as u32
}

/// Reaps exited children without waiting; returns their pids.
fn reap_exited() -> Vec<u32> {
    let mut reaped = Vec::new();
    loop {
        let mut status = 0;
        // SAFETY: waitpid with WNOHANG writes only `status`.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            return reaped;
        }
        assert!(
            libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
            "child {pid} ended with status {status:#x}"
        );
        reaped.push(pid as u32);
    }
}

fn raw(nr: i64, a: i64, b: i64, c: i64) {
    // SAFETY: callers pass only syscalls that touch the child's own state or fail (bad fd).
    unsafe { libc::syscall(nr, a, b, c) };
}

/// What one child did, per syscall number: calls, and EBADF failures.
#[derive(Debug, Default, PartialEq, Eq, Clone)]
struct Seen {
    calls: HashMap<u32, u64>,
    ebadf: HashMap<u32, u64>,
}

impl Seen {
    fn add(&mut self, row: &SyscallRow) {
        *self.calls.entry(row.syscall_nr).or_default() += row.count;
        if let Some(n) = row.errors.get(&EBADF) {
            *self.ebadf.entry(row.syscall_nr).or_default() += n;
        }
    }
}

#[test]
fn churn_at_200_starts_per_second_is_counted_exactly_without_loss() {
    let _serial = serial();
    let mode = attach_mode();
    let host_wide = ProcessFilter {
        pids: Vec::new(),
        comm: None,
        include_self: true,
    };
    let mut sys_storage = MaybeUninit::uninit();
    let syscalls = SyscallCollector::start(&mut sys_storage, mode, &host_wide)
        .unwrap_or_else(|e| panic!("starting the syscall collector ({mode}): {e}"));
    let mut sched_storage = MaybeUninit::uninit();
    let sched = SchedCollector::start(&mut sched_storage, mode, &host_wide)
        .unwrap_or_else(|e| panic!("starting the scheduler collector ({mode}): {e}"));

    let truebin = CString::new("/bin/true").unwrap_or_default();
    let argv = [truebin.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];

    const STARTS_PER_SECOND: u64 = 200;
    const SECONDS: u64 = 20;
    // The machine is shared with builds that keep a load of 30+ on 2 CPUs; the load generator
    // (this thread and the children it forks) gets a larger share so that it really starts 200
    // processes per second. What is tested is the kernel side, which runs in the children.
    // SAFETY: changes only this thread's nice value.
    unsafe { libc::setpriority(libc::PRIO_PROCESS, libc::gettid() as libc::id_t, -10) };
    let comm = own_comm();
    // pid -> what it was told to do: (getppid calls, bad closes, exec'd /bin/true)
    let mut planned: HashMap<u32, (u64, u64, bool)> = HashMap::new();
    let mut planned_pids = std::collections::HashSet::new();
    let mut seen: HashMap<u32, Seen> = HashMap::new();
    let mut reaped: Vec<u32> = Vec::new();
    let started = Instant::now();
    let mut next_cycle = started + Duration::from_secs(1);
    let total = STARTS_PER_SECOND * SECONDS;
    let mut fork_time = Duration::ZERO;
    let collect = |reaped: &mut Vec<u32>,
                   seen: &mut HashMap<u32, Seen>,
                   planned_pids: &std::collections::HashSet<u32>| {
        // Like the agent: rows of processes reaped before this read are final; read, then
        // forget them.
        let done: Vec<u32> = std::mem::take(reaped);
        let began = Instant::now();
        let rows = syscalls
            .rows()
            .unwrap_or_else(|e| panic!("reading syscall rows: {e}"));
        let mut done_sorted = done.clone();
        done_sorted.sort_unstable();
        for row in &rows {
            if done_sorted.binary_search(&row.pid).is_ok()
                && (row.comm == comm || row.comm == "true")
            {
                seen.entry(row.pid).or_default().add(row);
            }
        }
        // Like the agent, also forget the rows of other processes that have exited (the
        // collectors are host-wide); ours are forgotten only once reaped and read.
        let mut gone = done.clone();
        gone.extend(rows.iter().map(|r| r.pid).filter(|pid| {
            !planned_pids.contains(pid) && !std::path::Path::new(&format!("/proc/{pid}")).exists()
        }));
        gone.sort_unstable();
        gone.dedup();
        syscalls
            .forget(&gone)
            .unwrap_or_else(|e| panic!("forgetting syscall rows: {e}"));
        sched
            .rows()
            .unwrap_or_else(|e| panic!("reading scheduler rows: {e}"));
        sched
            .forget(&gone)
            .unwrap_or_else(|e| panic!("forgetting scheduler rows: {e}"));
        eprintln!(
            "cycle: {} syscall rows host-wide, {} children final, {:?}",
            rows.len(),
            done.len(),
            began.elapsed()
        );
    };
    for i in 0..total {
        let due = started + Duration::from_micros(i * 1_000_000 / STARTS_PER_SECOND);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        // Every fourth start is forked and makes a known number of getppid and failing close
        // calls (half of those then exec /bin/true); the others are spawned with posix_spawn
        // (std's Command), which is much cheaper than forking this test process, and exec.
        let forked = i % 4 == 0;
        let getppids = if forked { i % 37 + 1 } else { 0 };
        let bad_closes = if forked { i % 5 } else { 0 };
        let exec = !forked || i % 8 == 0;
        let fork_began = Instant::now();
        let pid = if forked {
            fork_child(|| {
                for _ in 0..getppids {
                    raw(libc::SYS_getppid, 0, 0, 0);
                }
                for _ in 0..bad_closes {
                    raw(libc::SYS_close, -1, 0, 0);
                }
                if exec {
                    // SAFETY: argv and envp are NULL-terminated arrays of C strings made
                    // before fork.
                    unsafe { libc::execve(truebin.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
                    // SAFETY: only reached when execve failed; the parent sees status 127.
                    unsafe { libc::_exit(127) };
                }
            })
        } else {
            std::process::Command::new("/bin/true")
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("spawning /bin/true: {e}"))
                .id()
        };
        fork_time += fork_began.elapsed();
        planned.insert(pid, (getppids, bad_closes, exec));
        planned_pids.insert(pid);
        reaped.extend(reap_exited());
        if Instant::now() >= next_cycle {
            collect(&mut reaped, &mut seen, &planned_pids);
            next_cycle += Duration::from_secs(1);
        }
    }
    let elapsed = started.elapsed();
    eprintln!("forking took {fork_time:?} of {elapsed:?}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while reaped.len() + seen.len() < planned.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        reaped.extend(reap_exited());
        if reaped.len() + seen.len() >= planned.len() {
            break;
        }
    }
    collect(&mut reaped, &mut seen, &planned_pids);
    let rate = total as f64 / elapsed.as_secs_f64();
    assert!(
        rate >= STARTS_PER_SECOND as f64 * 0.9,
        "only {rate:.0} starts per second (wanted {STARTS_PER_SECOND}): the test did not drive \
         the load it claims"
    );

    let losses = syscalls
        .losses()
        .unwrap_or_else(|e| panic!("reading losses: {e}"));
    let sched_losses = sched
        .losses()
        .unwrap_or_else(|e| panic!("reading losses: {e}"));
    assert_eq!(
        losses.total(),
        0,
        "syscall losses: {:?}",
        losses.nonzero().collect::<Vec<_>>()
    );
    assert_eq!(
        sched_losses.total(),
        0,
        "scheduler losses: {:?}",
        sched_losses.nonzero().collect::<Vec<_>>()
    );

    let mut wrong = Vec::new();
    let (mut execs, mut exits) = (0u64, 0u64);
    for (pid, &(getppids, bad_closes, exec)) in &planned {
        let got = seen.get(pid).cloned().unwrap_or_default();
        let calls = |nr: i64| got.calls.get(&(nr as u32)).copied().unwrap_or(0);
        let ebadf = got
            .ebadf
            .get(&(libc::SYS_close as u32))
            .copied()
            .unwrap_or(0);
        execs += calls(libc::SYS_execve);
        exits += calls(libc::SYS_exit_group);
        // Spawned children's own getppid and close calls (in posix_spawn) are not counted.
        let exact_calls =
            getppids == 0 || (calls(libc::SYS_getppid) == getppids && ebadf == bad_closes);
        let ok = exact_calls
            && calls(libc::SYS_execve) == u64::from(exec)
            && calls(libc::SYS_exit_group) == 1;
        if !ok {
            wrong.push((*pid, getppids, bad_closes, exec, got));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} children counted wrong, e.g. {:?}",
        wrong.len(),
        planned.len(),
        wrong.first()
    );
    assert_eq!(execs, total * 3 / 4 + total / 8);
    assert_eq!(exits, total);
    eprintln!(
        "{total} processes in {:.1} s ({rate:.0}/s): every getppid, close error, execve and \
         exit_group counted exactly, no loss",
        elapsed.as_secs_f64()
    );
}

/// 30 harmless syscalls a child makes: its own ids and limits, or failures on a bad fd.
const THIRTY: [i64; 30] = [
    libc::SYS_getppid,
    libc::SYS_getpid,
    libc::SYS_getuid,
    libc::SYS_geteuid,
    libc::SYS_getgid,
    libc::SYS_getegid,
    libc::SYS_gettid,
    libc::SYS_getpgrp,
    libc::SYS_getsid,
    libc::SYS_getpgid,
    libc::SYS_sched_yield,
    libc::SYS_getpriority,
    libc::SYS_sched_getscheduler,
    libc::SYS_umask,
    libc::SYS_close,
    libc::SYS_dup,
    libc::SYS_fstat,
    libc::SYS_lseek,
    libc::SYS_fsync,
    libc::SYS_fdatasync,
    libc::SYS_fchdir,
    libc::SYS_fchmod,
    libc::SYS_fchown,
    libc::SYS_flock,
    libc::SYS_ftruncate,
    libc::SYS_syncfs,
    libc::SYS_getgroups,
    libc::SYS_personality,
    libc::SYS_alarm,
    libc::SYS_prctl,
];

/// The arguments that make `nr` harmless: a bad fd (-1) where it takes one, else zeros (own
/// process), `personality(0xffffffff)` only queries, `prctl(PR_GET_DUMPABLE)` only reads.
fn harmless_args(nr: i64) -> (i64, i64, i64) {
    match nr {
        libc::SYS_close
        | libc::SYS_dup
        | libc::SYS_fstat
        | libc::SYS_lseek
        | libc::SYS_fsync
        | libc::SYS_fdatasync
        | libc::SYS_fchdir
        | libc::SYS_fchmod
        | libc::SYS_flock
        | libc::SYS_ftruncate
        | libc::SYS_syncfs => (-1, 0, 0),
        libc::SYS_fchown => (-1, -1, -1),
        libc::SYS_umask => (0o022, 0, 0),
        libc::SYS_personality => (0xffff_ffff, 0, 0),
        libc::SYS_prctl => (libc::PR_GET_DUMPABLE as i64, 0, 0),
        _ => (0, 0, 0),
    }
}

#[test]
fn sizing_is_the_same_for_any_cpu_count_and_bounded() {
    let small = Sizing::for_cpus(2);
    let big = Sizing::for_cpus(64);
    assert_eq!(small, big, "row maps must not depend on the CPU count");
    assert_eq!(Sizing::for_cpus(1024), big);
    // 5,000 processes × (30 syscalls + read + write + exit_group), plus ~60,000 rows of
    // exited processes awaiting retirement at 200 starts/s.
    assert!(big.rows >= 5_000 * 33 + 60_000, "{big:?}");
    assert!(
        big.max_kernel_bytes() <= 400 << 20,
        "full maps would take {} MiB",
        big.max_kernel_bytes() >> 20
    );
    assert_eq!(
        goroscope_bpf::sched::row_capacity(64),
        goroscope_bpf::sched::row_capacity(2)
    );
}

#[test]
fn a_64_cpu_host_with_5000_processes_of_30_syscalls_loses_nothing() {
    let _serial = serial();
    let mode = attach_mode();
    const PROCESSES: usize = 5_000;
    let comm = own_comm();
    let ours = ProcessFilter {
        pids: Vec::new(),
        comm: Some(comm.clone()),
        include_self: true,
    };
    let mut storage = MaybeUninit::uninit();
    let collector = SyscallCollector::start_sized(&mut storage, mode, &ours, Sizing::for_cpus(64))
        .unwrap_or_else(|e| panic!("starting the syscall collector sized for 64 CPUs: {e}"));
    let mut sched_storage = MaybeUninit::uninit();
    let sched = SchedCollector::start_with_rows(
        &mut sched_storage,
        mode,
        &ours,
        goroscope_bpf::sched::row_capacity(64),
    )
    .unwrap_or_else(|e| panic!("starting the scheduler collector sized for 64 CPUs: {e}"));

    // Each child makes syscall j of THIRTY (j + pid) % 3 + 1 times, tells the parent it is done
    // (one write) and stays alive, blocked reading `release`, until every child is done.
    let (done_r, done_w) = pipe();
    let (release_r, release_w) = pipe();
    let mut children = Children(Vec::with_capacity(PROCESSES));
    for _ in 0..PROCESSES {
        let pid = fork_child(|| {
            // SAFETY: closing the child's copies of the parent-side ends, so that the parent
            // closing its own ends is seen; getpid cannot fail (and is counted once more).
            let me = unsafe {
                libc::close(done_r);
                libc::close(release_w);
                libc::getpid()
            } as usize;
            for (j, &nr) in THIRTY.iter().enumerate() {
                let (a, b, c) = harmless_args(nr);
                for _ in 0..(j + me) % 3 + 1 {
                    raw(nr, a, b, c);
                }
            }
            let byte = [1u8];
            // SAFETY: writes one byte from a live buffer; reads into one.
            unsafe { libc::write(done_w, byte.as_ptr().cast(), 1) };
            let mut buf = [0u8];
            // SAFETY: as above.
            unsafe { libc::read(release_r, buf.as_mut_ptr().cast(), 1) };
        });
        children.0.push(pid);
    }
    // SAFETY: closing our copies of the child-side ends.
    unsafe {
        libc::close(done_w);
        libc::close(release_r);
    }
    let mut done = 0usize;
    let mut buf = [0u8; 4096];
    while done < PROCESSES {
        // SAFETY: reads into a live buffer of its length.
        let n = unsafe { libc::read(done_r, buf.as_mut_ptr().cast(), buf.len()) };
        assert!(
            n > 0,
            "children stopped reporting after {done} of {PROCESSES}"
        );
        done += n as usize;
    }

    let rows = collector
        .rows()
        .unwrap_or_else(|e| panic!("reading syscall rows: {e}"));
    let losses = collector
        .losses()
        .unwrap_or_else(|e| panic!("reading losses: {e}"));
    // Every child has blocked (reading `release`) at least once: a voluntary switch in its row.
    let sched_rows = sched
        .rows()
        .unwrap_or_else(|e| panic!("reading scheduler rows: {e}"));
    let sched_losses = sched
        .losses()
        .unwrap_or_else(|e| panic!("reading losses: {e}"));
    let switched: std::collections::HashSet<u32> = sched_rows
        .iter()
        .filter(|r| r.voluntary_switches > 0)
        .map(|r| r.pid)
        .collect();
    let unswitched = children.0.iter().filter(|p| !switched.contains(p)).count();
    // SAFETY: closing the release pipe ends every child's read.
    unsafe { libc::close(release_w) };

    let mut by_pid: HashMap<u32, HashMap<u32, u64>> = HashMap::new();
    for row in &rows {
        by_pid
            .entry(row.pid)
            .or_default()
            .insert(row.syscall_nr, row.count);
    }
    let mut wrong = Vec::new();
    let mut checked = 0usize;
    for &pid in &children.0 {
        let got = by_pid.remove(&pid).unwrap_or_default();
        for (j, &nr) in THIRTY.iter().enumerate() {
            // The child's own getpid() and its two close()s of the parent-side pipe ends.
            let extra = match nr {
                libc::SYS_getpid => 1,
                libc::SYS_close => 2,
                _ => 0,
            };
            let want = ((j + pid as usize) % 3 + 1) as u64 + extra;
            let count = got.get(&(nr as u32)).copied().unwrap_or(0);
            checked += 1;
            if count != want {
                wrong.push((pid, nr, want, count));
            }
        }
    }
    let mut left = PROCESSES;
    let deadline = Instant::now() + Duration::from_secs(60);
    while left > 0 && Instant::now() < deadline {
        let n = reap_exited().len();
        left -= n.min(left);
        if n == 0 {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    // SAFETY: closing our read end.
    unsafe { libc::close(done_r) };
    assert_eq!(
        losses.total(),
        0,
        "losses: {:?}",
        losses.nonzero().collect::<Vec<_>>()
    );
    assert_eq!(
        sched_losses.total(),
        0,
        "scheduler losses: {:?}",
        sched_losses.nonzero().collect::<Vec<_>>()
    );
    assert_eq!(unswitched, 0, "children without a scheduler row");
    assert!(
        wrong.is_empty(),
        "{} of {checked} (process, syscall) rows wrong, e.g. (pid, nr, want, got) {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    assert_eq!(checked, PROCESSES * THIRTY.len());
    assert_eq!(left, 0, "{left} children did not exit");
    children.0.clear();
    eprintln!(
        "{} rows read, {PROCESSES} processes × 30 syscalls exact with maps sized for 64 CPUs \
         ({} MiB at most)",
        rows.len(),
        Sizing::for_cpus(64).max_kernel_bytes() >> 20
    );
}

/// Children still to reap: killed and reaped if the test fails half-way.
struct Children(Vec<u32>);

impl Drop for Children {
    fn drop(&mut self) {
        for &pid in &self.0 {
            // SAFETY: signals and reaps our own children only.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
                libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
            }
        }
    }
}

fn pipe() -> (i32, i32) {
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two fds into the array.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    assert_eq!(rc, 0, "pipe2: {}", std::io::Error::last_os_error());
    (fds[0], fds[1])
}
