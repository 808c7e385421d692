//! End-to-end tracing with real BPF programs (run as root): goroscope must
//! see exactly what the `testload` workload did, no more and no less.
//!
//! Tests run in parallel, each with its own goroscope and workload, so every
//! assertion filters by the workload's pid, and file paths are unique.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::thread::sleep;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{
    i64_field, run_goroscope, str_field, testload_bin, u64_field, unique_temp_path, Finished,
    Goroscope, Workload,
};
use serde_json::Value;

/// How long to let goroscope drain its buffers after the workload ended.
const SETTLE: Duration = Duration::from_millis(300);

/// `AT_FDCWD` as goroscope reports it in `dirfd`.
const AT_FDCWD: i64 = libc::AT_FDCWD as i64;

/// Removes a file when dropped, so failed tests clean up too.
struct TempFile(PathBuf);

impl TempFile {
    /// Creates a small file at a fresh unique path.
    #[track_caller]
    fn create(label: &str) -> Self {
        let path = unique_temp_path(label);
        std::fs::write(&path, b"goroscope test\n")
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()));
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("temp paths are UTF-8")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Now, in nanoseconds since the Unix epoch.
fn unix_now_ns() -> u64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    u64::try_from(d.as_nanos()).expect("fits until 2554")
}

/// The events of `kind` from process `pid`.
fn events_of<'a>(events: &'a [Value], kind: &str, pid: u32) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["event"] == kind && e["pid"] == pid)
        .collect()
}

/// The rows of a `syscalls --format json` report for `pid` and `syscall`.
#[track_caller]
fn syscall_row<'a>(rows: &'a [Value], pid: u32, syscall: &str, run: &Finished) -> &'a Value {
    let found: Vec<&Value> = rows
        .iter()
        .filter(|r| r["pid"] == pid && r["syscall"] == syscall)
        .collect();
    match found.as_slice() {
        [row] => row,
        _ => panic!(
            "expected exactly one {syscall} row for pid {pid}, found {}\nstdout:\n{}\nstderr:\n{}",
            found.len(),
            run.stdout,
            run.stderr
        ),
    }
}

/// Checks the internal consistency of one syscall row: percentiles ordered
/// and bounded by the maximum, latency buckets adding up to the count.
#[track_caller]
fn assert_row_consistent(row: &Value) {
    let count = u64_field(row, "count");
    let p50 = u64_field(row, "p50_ns");
    let p99 = u64_field(row, "p99_ns");
    let max = u64_field(row, "max_ns");
    let total = u64_field(row, "total_ns");
    assert!(
        p50 <= p99 && p99 <= max,
        "expected p50 <= p99 <= max in {row}"
    );
    assert!(max <= total, "the maximum exceeds the total time in {row}");
    assert!(total > 0, "{count} syscalls took no time at all in {row}");

    let buckets = row["latency_buckets"]
        .as_array()
        .unwrap_or_else(|| panic!("latency_buckets should be an array in {row}"));
    let mut sum = 0u64;
    let mut previous_bound = 0.0f64;
    for (i, bucket) in buckets.iter().enumerate() {
        let pair = bucket
            .as_array()
            .filter(|p| p.len() == 2)
            .unwrap_or_else(|| panic!("bucket {i} should be [upper_ns, count] in {row}"));
        let n = pair[1]
            .as_u64()
            .unwrap_or_else(|| panic!("bucket {i} count should be an integer in {row}"));
        assert!(n > 0, "bucket {i} is listed but empty in {row}");
        sum += n;
        match pair[0].as_f64() {
            Some(bound) => {
                assert!(
                    bound > previous_bound,
                    "bucket bounds should increase in {row}"
                );
                previous_bound = bound;
            }
            None => assert!(
                pair[0].is_null() && i + 1 == buckets.len(),
                "only the last bucket may have a null (+Inf) bound in {row}"
            ),
        }
    }
    let timed = u64_field(row, "timed");
    if timed == count {
        assert_eq!(
            sum, count,
            "latency bucket counts should add up to the count in {row}"
        );
    } else {
        // Sampled: each timed call stands for the calls since its thread's previous one, so
        // the buckets estimate the count (all but the calls after the last timed one).
        assert!(
            timed > 0 && timed < count,
            "timed {timed} of {count} in {row}"
        );
        let off = sum.abs_diff(count) as f64 / count as f64;
        assert!(
            off < 0.1,
            "latency bucket counts {sum} are {:.1}% off the count in {row}",
            off * 100.0
        );
    }
}

#[test]
fn trace_by_pid_sees_every_open_exactly_once() {
    const N: usize = 37;
    let file = TempFile::create("open");
    let mut load = Workload::spawn_waiting(&["open", file.path(), &N.to_string()]);
    let pid = load.pid();
    let started_ns = unix_now_ns();
    let tracer = Goroscope::start(&[
        "trace",
        "--events",
        "open",
        "--format",
        "json",
        "--pid",
        &pid.to_string(),
    ]);
    load.go();
    load.wait_success();
    sleep(SETTLE);
    let run = tracer.stop();
    let ended_ns = unix_now_ns();
    run.assert_code(0);
    run.assert_nothing_lost();

    let events = run.json_lines();
    for e in &events {
        assert!(
            e["event"] == "open" && e["pid"] == pid,
            "with --events open --pid {pid}, got {e}"
        );
    }
    let opens: Vec<&Value> = events.iter().filter(|e| e["path"] == file.path()).collect();
    assert_eq!(
        opens.len(),
        N,
        "expected exactly {N} opens of {}\nstdout:\n{}\nstderr:\n{}",
        file.path(),
        run.stdout,
        run.stderr
    );
    assert_eq!(
        events.len(),
        N,
        "the workload opened nothing else once released\nstdout:\n{}",
        run.stdout
    );

    let mut previous_ts = 0;
    for e in opens {
        assert!(i64_field(e, "ret") >= 0, "the open should succeed: {e}");
        assert!(
            e.get("error").is_none(),
            "a successful open has no error: {e}"
        );
        assert_eq!(str_field(e, "syscall"), "openat", "{e}");
        let flags = str_field(e, "flags");
        assert!(
            flags.split('|').any(|f| f == "O_RDONLY") && flags.split('|').any(|f| f == "O_CLOEXEC"),
            "flags should be O_RDONLY|O_CLOEXEC: {e}"
        );
        assert_eq!(
            u64_field(e, "flags_raw"),
            (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
            "{e}"
        );
        assert_eq!(i64_field(e, "dirfd"), AT_FDCWD, "{e}");
        assert_eq!(u64_field(e, "tid"), u64::from(pid), "{e}");
        assert_eq!(str_field(e, "comm"), "testload", "{e}");
        let ts = u64_field(e, "ts_ns");
        assert!(
            ts + 1_000_000_000 >= started_ns && ts <= ended_ns + 1_000_000_000,
            "ts_ns {ts} should be wall-clock time between {started_ns} and {ended_ns}: {e}"
        );
        assert!(
            ts >= previous_ts,
            "one thread's events arrive in order: {e}"
        );
        previous_ts = ts;
    }
}

#[test]
fn trace_by_comm_reports_failed_opens_with_their_errno() {
    const N: usize = 11;
    let missing = unique_temp_path("missing");
    let missing = missing.to_str().expect("temp paths are UTF-8");
    let tracer = Goroscope::start(&[
        "trace", "--events", "open", "--format", "json", "--comm", "testload",
    ]);
    let load = Workload::spawn(&["open-missing", missing, &N.to_string()]);
    let pid = load.pid();
    load.wait_success();
    sleep(SETTLE);
    let run = tracer.stop();
    run.assert_code(0);
    run.assert_nothing_lost();

    let events = run.json_lines();
    for e in &events {
        assert_eq!(
            str_field(e, "comm"),
            "testload",
            "--comm testload let in {e}"
        );
    }
    let opens: Vec<&Value> = events.iter().filter(|e| e["path"] == missing).collect();
    assert_eq!(
        opens.len(),
        N,
        "expected exactly {N} failed opens of {missing}\nstdout:\n{}\nstderr:\n{}",
        run.stdout,
        run.stderr
    );
    for e in opens {
        assert_eq!(u64_field(e, "pid"), u64::from(pid), "{e}");
        assert_eq!(i64_field(e, "ret"), -i64::from(libc::ENOENT), "{e}");
        assert_eq!(str_field(e, "error"), "ENOENT", "{e}");
        assert_eq!(str_field(e, "syscall"), "openat", "{e}");
    }
}

#[test]
fn trace_flags_an_open_path_longer_than_the_kernel_buffer() {
    // 400 bytes: longer than the 255 the kernel copies.
    let base = unique_temp_path("long");
    let base = base.to_str().expect("temp paths are UTF-8");
    let long = format!("{base}/{}", "x".repeat(400 - base.len() - 1));
    assert_eq!(long.len(), 400);
    let tracer = Goroscope::start(&[
        "trace", "--events", "open", "--format", "json", "--comm", "testload",
    ]);
    let load = Workload::spawn(&["open-missing", &long, "1"]);
    let pid = load.pid();
    load.wait_success();
    sleep(SETTLE);
    let run = tracer.stop();
    run.assert_code(0);
    let events = run.json_lines();
    let opens: Vec<&Value> = events
        .iter()
        .filter(|e| e["pid"] == pid && str_field(e, "path").starts_with(base))
        .collect();
    assert_eq!(
        opens.len(),
        1,
        "expected one open of the long path\nstdout:\n{}",
        run.stdout
    );
    let e = opens[0];
    assert_eq!(str_field(e, "path"), &long[..255], "{e}");
    assert_eq!(e["path_truncated"], true, "a cut path must say so: {e}");

    // A short path carries no truncation mark.
    let short: Vec<&Value> = events
        .iter()
        .filter(|e| e["pid"] == pid && !str_field(e, "path").starts_with(base))
        .collect();
    for e in short {
        assert!(e.get("path_truncated").is_none(), "{e}");
    }
}

#[test]
fn trace_text_format_shows_the_opened_path() {
    let file = TempFile::create("text");
    let mut load = Workload::spawn_waiting(&["open", file.path(), "3"]);
    let pid = load.pid();
    let tracer = Goroscope::start(&[
        "trace",
        "--events",
        "open",
        "--format",
        "text",
        "--pid",
        &pid.to_string(),
    ]);
    load.go();
    load.wait_success();
    sleep(SETTLE);
    let run = tracer.stop();
    run.assert_code(0);

    let lines: Vec<&str> = run
        .stdout
        .lines()
        .filter(|l| l.contains(file.path()))
        .collect();
    assert_eq!(
        lines.len(),
        3,
        "expected 3 text lines naming {}\nstdout:\n{}\nstderr:\n{}",
        file.path(),
        run.stdout,
        run.stderr
    );
    for line in lines {
        assert!(
            !line.trim_start().starts_with('{'),
            "--format text printed JSON: {line}"
        );
        for needle in ["open", &pid.to_string(), "testload", "O_RDONLY", "fd"] {
            assert!(line.contains(needle), "{needle:?} missing from: {line}");
        }
    }
}

#[test]
fn syscalls_counts_every_getppid_with_consistent_latencies() {
    // Every call timed: the latency buckets add up to the count exactly.
    getppid_counted_and_timed(5_000, &["--timed-calls", "all"], |timed| timed == 5_000);
}

#[test]
fn syscalls_samples_the_latency_of_a_busy_thread_and_counts_every_call() {
    // Far more than 10,000 calls a second from one thread: a sample is timed.
    getppid_counted_and_timed(200_000, &[], |timed| timed < 200_000 / 10);
}

#[track_caller]
fn getppid_counted_and_timed(n: u64, flags: &[&str], timed_ok: impl Fn(u64) -> bool) {
    let mut load = Workload::spawn_waiting(&["getppid", &n.to_string()]);
    let pid = load.pid();
    let pid_arg = pid.to_string();
    let mut args = vec!["syscalls", "--pid", &pid_arg, "--format", "json"];
    args.extend_from_slice(flags);
    let tracer = Goroscope::start(&args);
    load.go();
    load.wait_success();
    sleep(SETTLE);
    // goroscope may already have stopped by itself (every --pid target has
    // exited); a SIGINT to the not yet reaped process is harmless then.
    let run = tracer.stop();
    run.assert_code(0);
    run.assert_nothing_lost();

    let rows = run.json_array();
    for r in &rows {
        assert_eq!(
            u64_field(r, "pid"),
            u64::from(pid),
            "--pid {pid} let in {r}"
        );
    }
    let row = syscall_row(&rows, pid, "getppid", &run);
    // The workload makes exactly n getppid calls once released, nothing else does.
    assert_eq!(u64_field(row, "count"), n, "{row}");
    assert!(timed_ok(u64_field(row, "timed")), "{row}");
    assert_eq!(u64_field(row, "error_count"), 0, "{row}");
    assert_eq!(row["errors"], serde_json::json!({}), "{row}");
    assert_eq!(
        u64_field(row, "syscall_nr"),
        libc::SYS_getppid as u64,
        "{row}"
    );
    assert_eq!(str_field(row, "comm"), "testload", "{row}");
    assert_row_consistent(row);
}

#[test]
fn syscalls_counts_errors_by_errno() {
    const N: u64 = 20;
    let missing = unique_temp_path("syscalls-missing");
    let missing = missing.to_str().expect("temp paths are UTF-8");
    let mut load = Workload::spawn_waiting(&["open-missing", missing, &N.to_string()]);
    let pid = load.pid();
    let tracer = Goroscope::start(&["syscalls", "--pid", &pid.to_string(), "--format", "json"]);
    load.go();
    load.wait_success();
    sleep(SETTLE);
    let run = tracer.stop();
    run.assert_code(0);
    run.assert_nothing_lost();

    let rows = run.json_array();
    let row = syscall_row(&rows, pid, "openat", &run);
    assert_eq!(u64_field(row, "count"), N, "{row}");
    assert_eq!(u64_field(row, "error_count"), N, "{row}");
    assert_eq!(
        row["errors"],
        serde_json::json!({ "ENOENT": N }),
        "every failed openat should be counted under ENOENT: {row}"
    );
    assert_row_consistent(row);
}

/// What [`trace_child`] saw.
struct ChildTrace {
    events: Vec<Value>,
    pid: u32,
    status: std::process::ExitStatus,
    /// From just before the child was spawned until it was reaped.
    elapsed: Duration,
}

/// Runs `testload ARGS` as a plain child while `goroscope trace ARGS` with
/// `--comm testload` runs.
#[track_caller]
fn trace_child(trace_args: &[&str], load_args: &[&str]) -> ChildTrace {
    let mut args = vec!["trace", "--format", "json", "--comm", "testload"];
    args.extend_from_slice(trace_args);
    let tracer = Goroscope::start(&args);
    let spawned = Instant::now();
    let load = Workload::spawn(load_args);
    let pid = load.pid();
    let status = load.wait();
    let elapsed = spawned.elapsed();
    sleep(SETTLE);
    let run = tracer.stop();
    run.assert_code(0);
    run.assert_nothing_lost();
    ChildTrace {
        events: run.json_lines(),
        pid,
        status,
        elapsed,
    }
}

/// The one event of `kind` from `pid`, panicking with all of them otherwise.
#[track_caller]
fn only_event<'a>(events: &'a [Value], kind: &str, pid: u32) -> &'a Value {
    match events_of(events, kind, pid).as_slice() {
        [e] => e,
        found => panic!(
            "expected exactly one {kind} event from pid {pid}, found {}: {found:?}",
            found.len()
        ),
    }
}

#[test]
fn trace_reports_exec_and_exit_code_of_a_process() {
    let ChildTrace {
        events,
        pid,
        status,
        elapsed,
    } = trace_child(&["--events", "exec,exit,fork"], &["exit", "42"]);
    assert_eq!(
        status.code(),
        Some(42),
        "testload exit 42 ended with {status}"
    );
    let me = u64::from(std::process::id());

    let exec = only_event(&events, "exec", pid);
    let filename = str_field(exec, "filename");
    assert!(
        filename.ends_with("/testload"),
        "exec filename should be the testload binary: {exec}"
    );
    assert_eq!(u64_field(exec, "ppid"), me, "{exec}");
    assert_eq!(str_field(exec, "comm"), "testload", "{exec}");
    assert!(
        exec.get("args").is_none(),
        "without --args, exec events carry no arguments: {exec}"
    );

    let exit = only_event(&events, "exit", pid);
    assert_eq!(i64_field(exit, "exit_code"), 42, "{exit}");
    assert_eq!(u64_field(exit, "signal"), 0, "{exit}");
    assert!(exit.get("signal_name").is_none(), "no signal: {exit}");
    assert_eq!(exit["core_dumped"], false, "{exit}");
    assert_eq!(u64_field(exit, "ppid"), me, "{exit}");
    let lifetime = u64_field(exit, "lifetime_ns");
    assert!(
        lifetime > 0 && u128::from(lifetime) <= elapsed.as_nanos(),
        "lifetime_ns should be positive and at most the {elapsed:?} between spawn and reap: {exit}"
    );
    assert!(
        u64_field(exit, "ts_ns") >= u64_field(exec, "ts_ns"),
        "exit before exec: {exec} then {exit}"
    );
    assert!(
        events_of(&events, "fork", pid).is_empty(),
        "testload exit 42 forks nothing"
    );
}

#[test]
fn trace_reports_the_signal_that_killed_a_process() {
    let ChildTrace {
        events,
        pid,
        status,
        ..
    } = trace_child(&["--events", "exit"], &["kill-self", "9"]);
    assert_eq!(
        status.signal(),
        Some(9),
        "testload kill-self 9 ended with {status}"
    );
    assert!(
        events.iter().all(|e| e["event"] == "exit"),
        "--events exit let in other kinds: {events:?}"
    );
    let exit = only_event(&events, "exit", pid);
    assert_eq!(u64_field(exit, "signal"), 9, "{exit}");
    assert_eq!(str_field(exit, "signal_name"), "SIGKILL", "{exit}");
    assert_eq!(exit["core_dumped"], false, "{exit}");
    assert!(u64_field(exit, "lifetime_ns") > 0, "{exit}");
}

#[test]
fn trace_with_args_reports_the_command_line() {
    let ChildTrace {
        events,
        pid,
        status,
        ..
    } = trace_child(&["--events", "exec", "--args"], &["exit", "3"]);
    assert_eq!(
        status.code(),
        Some(3),
        "testload exit 3 ended with {status}"
    );
    let exec = only_event(&events, "exec", pid);
    let expected: Vec<String> = vec![
        testload_bin().to_str().expect("UTF-8 path").to_string(),
        "exit".into(),
        "3".into(),
    ];
    assert_eq!(
        exec["args"],
        serde_json::json!(expected),
        "exec args should be the whole command line: {exec}"
    );
    assert!(
        exec.get("args_truncated").is_none_or(|t| t == false),
        "a short command line is not truncated: {exec}"
    );
}

/// Removes a directory tree when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn trace_reports_fork_with_the_child_pid() {
    // A shell under a name unique to this test process, so `--comm` selects
    // it alone: the kernel names a process after the file it executed.
    let dir = TempDir(unique_temp_path("fork"));
    std::fs::create_dir(&dir.0).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.0.display()));
    let name = format!("gsf{}", std::process::id());
    let shell = dir.0.join(&name);
    std::os::unix::fs::symlink("/bin/sh", &shell)
        .unwrap_or_else(|e| panic!("cannot link {} to /bin/sh: {e}", shell.display()));

    let tracer = Goroscope::start(&[
        "trace",
        "--events",
        "fork,exec,exit",
        "--format",
        "json",
        "--comm",
        &name,
    ]);
    // The shell forks once to start testload in the background and prints its pid.
    let output = std::process::Command::new(&shell)
        .args(["-c", "\"$1\" exit 7 & echo $!; wait", "sh"])
        .arg(testload_bin())
        .stderr(std::process::Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", shell.display()));
    assert!(
        output.status.success(),
        "the shell failed: {}",
        output.status
    );
    let child: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("the shell should print its child's pid: {output:?}"));
    sleep(SETTLE);
    let run = tracer.stop();
    run.assert_code(0);
    run.assert_nothing_lost();

    let events = run.json_lines();
    let forks: Vec<&Value> = events.iter().filter(|e| e["event"] == "fork").collect();
    match forks.as_slice() {
        [fork] => {
            assert_eq!(u64_field(fork, "child_pid"), child, "{fork}");
            assert_eq!(str_field(fork, "comm"), name, "{fork}");
            let shell_pid = u64_field(fork, "pid");
            assert_ne!(shell_pid, child, "a process does not fork itself: {fork}");
            let exits: Vec<&Value> = events
                .iter()
                .filter(|e| e["event"] == "exit" && e["pid"] == shell_pid)
                .collect();
            assert_eq!(
                exits.len(),
                1,
                "the forking shell should exit once: {events:?}"
            );
        }
        _ => panic!(
            "expected exactly one fork event from {name}, got {}\nstdout:\n{}\nstderr:\n{}",
            forks.len(),
            run.stdout,
            run.stderr
        ),
    }
}

/// Runs goroscope `args` with `--duration 1s --pid <sleeping workload>` and
/// checks it stops by itself, cleanly, after about a second.
#[track_caller]
fn assert_stops_after_one_second(command: &str) -> Finished {
    let sleeper = Workload::spawn(&["sleep", "60000"]);
    let pid = sleeper.pid().to_string();
    let tracer = Goroscope::start(&[
        command,
        "--duration",
        "1s",
        "--pid",
        &pid,
        "--format",
        "json",
    ]);
    let run = tracer.wait_exit(Duration::from_secs(10));
    drop(sleeper);
    run.assert_code(0);
    run.assert_loss_line();
    assert!(
        run.elapsed >= Duration::from_millis(900),
        "--duration 1s stopped after only {:?}",
        run.elapsed
    );
    run
}

#[test]
fn syscalls_with_duration_stops_by_itself() {
    let run = assert_stops_after_one_second("syscalls");
    // The report is there, even if the sleeper made no syscall meanwhile.
    let _ = run.json_array();
}

#[test]
fn trace_with_duration_stops_by_itself() {
    let run = assert_stops_after_one_second("trace");
    let _ = run.json_lines();
}

#[test]
fn doctor_json_says_the_core_collectors_are_ready() {
    let run = run_goroscope(&["doctor", "--format", "json"], Duration::from_secs(60));
    run.assert_code(0);
    let report: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|e| panic!("doctor JSON does not parse ({e}):\n{}", run.stdout));
    assert_eq!(
        report["core_collectors_ok"], true,
        "this machine runs BPF: {report:#}"
    );
    assert!(
        report["attach_mode"].is_string(),
        "attach_mode should name a mode: {report:#}"
    );
    let checks = report["checks"]
        .as_array()
        .unwrap_or_else(|| panic!("checks should be an array: {report:#}"));
    assert!(!checks.is_empty(), "doctor checked nothing: {report:#}");
    for check in checks {
        for field in ["group", "name", "detail"] {
            assert!(check[field].is_string(), "check without {field}: {check}");
        }
        assert!(check["ok"].is_boolean(), "check without ok: {check}");
    }
    assert!(
        checks
            .iter()
            .any(|c| c["name"] == "privileges" && c["ok"] == true),
        "as root, the privileges check passes: {report:#}"
    );
    for collector in ["syscalls", "process", "files", "scheduler", "tcp"] {
        assert!(
            checks
                .iter()
                .any(|c| c["group"] == "collector" && c["name"] == collector && c["ok"] == true),
            "the {collector} self-test passes on this machine: {report:#}"
        );
    }
    // Loss counters are numbers (u64_field panics otherwise).
    u64_field(&report, "kernel_losses");
    u64_field(&report, "queue_drops");
}
