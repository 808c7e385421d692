//! Run-time accounting of goroscope's own BPF programs, against the real
//! kernel (needs root; fails where BPF is unavailable).

use std::mem::MaybeUninit;
use std::sync::Mutex;
use std::time::Instant;

use goroscope_bpf::bpf_stats::{self, own_programs, ProgramStats, RunTimeStats};
use goroscope_bpf::{
    choose_attach_mode, EventCollector, EventObjects, EventOptions, ProcessFilter, SyscallCollector,
};
use goroscope_model::EventKind;

const CALLS: u64 = 10_000;

fn getppid_calls(n: u64) {
    for _ in 0..n {
        // SAFETY: getppid takes no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
}

#[track_caller]
fn program<'a>(programs: &'a [ProgramStats], name: &str) -> &'a ProgramStats {
    programs
        .iter()
        .find(|p| p.name == name || p.name == format!("{name}_raw"))
        .unwrap_or_else(|| panic!("{name} (or {name}_raw) not among own programs: {programs:?}"))
}

/// Whether another process holds a `BPF_ENABLE_STATS` fd (it would keep
/// accounting on after ours is dropped).
fn others_enable_stats() -> bool {
    let me = std::process::id().to_string();
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return false;
    };
    procs.flatten().any(|p| {
        p.file_name() != me.as_str()
            && std::fs::read_dir(p.path().join("fd")).is_ok_and(|fds| {
                fds.flatten().any(|fd| {
                    std::fs::read_link(fd.path())
                        .is_ok_and(|l| l.as_os_str() == "anon_inode:bpf-stats")
                })
            })
    })
}

/// The tests load programs of the same names in one process: run one at a time, so each finds
/// its own collector's programs by name (in parallel, one read the other's count).
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

#[test]
fn own_programs_report_run_time_while_enabled() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    goroscope_bpf::init();
    let mode = choose_attach_mode().unwrap_or_else(|e| panic!("no attach mode: {e}"));
    let filter = ProcessFilter {
        pids: vec![std::process::id()],
        comm: None,
        include_self: true,
    };
    let mut storage = MaybeUninit::uninit();
    let _collector = SyscallCollector::start(&mut storage, mode, &filter)
        .unwrap_or_else(|e| panic!("starting the syscall collector: {e}"));
    let sysctl_before =
        bpf_stats::sysctl_enabled().unwrap_or_else(|e| panic!("reading the sysctl: {e}"));

    let stats = RunTimeStats::enable().unwrap_or_else(|e| panic!("enabling stats: {e}"));
    assert_eq!(
        bpf_stats::sysctl_enabled().ok(),
        Some(sysctl_before),
        "holding the fd must not change the sysctl"
    );
    let before = own_programs().unwrap_or_else(|e| panic!("own_programs: {e}"));
    getppid_calls(CALLS);
    let started = Instant::now();
    let after = own_programs().unwrap_or_else(|e| panic!("own_programs: {e}"));
    let took = started.elapsed();
    eprintln!(
        "own_programs() took {took:?} with {} programs: {after:?}",
        after.len()
    );

    let mut ids: Vec<u32> = after.iter().map(|p| p.id).collect();
    ids.dedup();
    assert_eq!(ids.len(), after.len(), "programs listed twice: {after:?}");
    for name in ["handle__sys_enter", "handle__sys_exit"] {
        let now = program(&after, name);
        let was = program(&before, name);
        assert!(
            now.run_count >= was.run_count + CALLS,
            "{name}: ran {} times over {CALLS} syscalls",
            now.run_count - was.run_count
        );
        assert!(now.run_time_ns > 0, "{name}: no run time: {now:?}");
    }

    drop(stats);
    if sysctl_before || others_enable_stats() {
        eprintln!("accounting is kept on by the sysctl or another process; not checking it stops");
        return;
    }
    let dropped = own_programs().unwrap_or_else(|e| panic!("own_programs: {e}"));
    getppid_calls(1000);
    let later = own_programs().unwrap_or_else(|e| panic!("own_programs: {e}"));
    for name in ["handle__sys_enter", "handle__sys_exit"] {
        assert_eq!(
            program(&later, name).run_count,
            program(&dropped, name).run_count,
            "{name} still counted after the stats fd was dropped"
        );
    }
}

/// Not a check: how long a scan takes with about ten programs loaded.
#[test]
fn own_programs_cost_with_ten_programs() {
    let _alone = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    goroscope_bpf::init();
    let mode = choose_attach_mode().unwrap_or_else(|e| panic!("no attach mode: {e}"));
    // Host-wide, goroscope excepted, as the agent runs: tracing this
    // process would make every syscall of the scan itself dearer.
    let filter = ProcessFilter::default();
    let mut storages: [MaybeUninit<_>; 3] = [const { MaybeUninit::uninit() }; 3];
    let _syscalls: Vec<SyscallCollector<'_>> = storages
        .iter_mut()
        .map(|s| {
            SyscallCollector::start(s, mode, &filter)
                .unwrap_or_else(|e| panic!("starting a syscall collector: {e}"))
        })
        .collect();
    let mut objects = EventObjects::default();
    let options = EventOptions {
        kinds: vec![
            EventKind::Exec,
            EventKind::Exit,
            EventKind::Fork,
            EventKind::Open,
        ],
        capture_args: false,
        filter: filter.clone(),
        ring_bytes: goroscope_bpf::RING_BYTES,
    };
    let _events = EventCollector::start(&mut objects, mode, &options)
        .unwrap_or_else(|e| panic!("starting the event collector: {e}"));
    let fds = std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count());

    let started = Instant::now();
    let programs = own_programs().unwrap_or_else(|e| panic!("own_programs: {e}"));
    let cold = started.elapsed();
    const ROUNDS: u32 = 100;
    let started = Instant::now();
    for _ in 0..ROUNDS {
        own_programs().unwrap_or_else(|e| panic!("own_programs: {e}"));
    }
    let warm = started.elapsed() / ROUNDS;
    eprintln!(
        "own_programs(): {} programs, {fds} open fds: first call {cold:?}, then {warm:?} per call",
        programs.len()
    );
    assert!(programs.len() >= 11, "{programs:?}");
    let names: Vec<&str> = programs.iter().map(|p| p.name.as_str()).collect();
    eprintln!("{names:?}");
}
