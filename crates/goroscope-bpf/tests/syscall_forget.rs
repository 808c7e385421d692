//! Forgetting a process's syscall rows, against the real kernel (needs root;
//! fails where BPF is unavailable).

use std::mem::MaybeUninit;

use goroscope_bpf::{choose_attach_mode, ProcessFilter, SyscallCollector};
use goroscope_model::SyscallRow;

const EBADF: u32 = 9;

fn getppid_calls(n: u64) {
    for _ in 0..n {
        // SAFETY: getppid takes no arguments and cannot fail.
        unsafe { libc::syscall(libc::SYS_getppid) };
    }
}

fn bad_close_calls(n: u64) {
    for _ in 0..n {
        // SAFETY: closing fd -1 touches nothing; it fails with EBADF.
        unsafe { libc::syscall(libc::SYS_close, -1) };
    }
}

#[track_caller]
fn own_row(collector: &SyscallCollector<'_>, nr: i64) -> Option<SyscallRow> {
    let rows = collector
        .rows()
        .unwrap_or_else(|e| panic!("reading rows: {e}"));
    let me = std::process::id();
    let mut matching = rows
        .into_iter()
        .filter(|r| r.pid == me && i64::from(r.syscall_nr) == nr);
    let row = matching.next();
    assert!(matching.next().is_none(), "two rows for syscall {nr}");
    row
}

#[test]
fn forgotten_rows_vanish_and_restart_from_zero() {
    goroscope_bpf::init();
    let mode = choose_attach_mode().unwrap_or_else(|e| panic!("no attach mode: {e}"));
    let me = std::process::id();
    let filter = ProcessFilter {
        pids: vec![me],
        comm: None,
        include_self: true,
    };
    let mut storage = MaybeUninit::uninit();
    let collector = SyscallCollector::start(&mut storage, mode, &filter)
        .unwrap_or_else(|e| panic!("starting the syscall collector: {e}"));

    getppid_calls(300);
    bad_close_calls(20);
    let getppid = own_row(&collector, libc::SYS_getppid).expect("no getppid row");
    assert!(getppid.count >= 300, "{getppid:?}");
    let close = own_row(&collector, libc::SYS_close).expect("no close row");
    assert!(
        close.errors.get(&EBADF).copied().unwrap_or(0) >= 20,
        "{close:?}"
    );

    // Another pid's rows (there are none) and an empty list change nothing.
    assert_eq!(collector.forget(&[]).ok(), Some(0));
    assert_eq!(collector.forget(&[u32::MAX]).ok(), Some(0));

    let deleted = collector
        .forget(&[me, me])
        .unwrap_or_else(|e| panic!("forget: {e}"));
    // At least getppid, close and close's EBADF entry.
    assert!(deleted >= 3, "deleted only {deleted} entries");
    assert_eq!(own_row(&collector, libc::SYS_getppid), None);
    assert_eq!(own_row(&collector, libc::SYS_close), None);

    getppid_calls(123);
    bad_close_calls(7);
    let getppid = own_row(&collector, libc::SYS_getppid).expect("no new getppid row");
    assert_eq!(getppid.count, 123, "{getppid:?}");
    let close = own_row(&collector, libc::SYS_close).expect("no new close row");
    // Other threads of the test harness may close real fds; only these fail with EBADF.
    assert!(close.count >= 7, "{close:?}");
    assert_eq!(close.errors.get(&EBADF).copied(), Some(7), "{close:?}");
    assert_eq!(
        collector.losses().map(|l| l.total()).ok(),
        Some(0),
        "the kernel lost data"
    );
}
