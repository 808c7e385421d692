//! `goroscope record` and `goroscope report` end to end, as root, on real processes: the report
//! of testdata/go/leaky opened in headless chromium with no network (no console errors, the
//! planted leak suspects with their exact counts and creation lines, the flame graphs and every
//! section, a screenshot kept under target/test-artifacts), the JSON round trip, a process that
//! exits mid-run, a process that is not Go, and bad input.

mod browser;
mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{run_goroscope, unique_temp_path, Goroscope};
use goroscope_model::recording::Recording;
use gotest::{BuildMode, TOOLCHAINS};
use serde_json::Value;

/// How long the main recording runs: the yardstick for the report's size.
const RECORD_SECONDS: u64 = 30;
/// The report of a 30 s recording of the test program must stay below this.
const MAX_REPORT_BYTES: usize = 2 * 1024 * 1024;
/// Connections the test makes to each port leaky listens on.
const CONNECTIONS_PER_PORT: u64 = 5;
/// Every section of the report, by id.
const SECTIONS: &[&str] = &[
    "summary",
    "goroutines",
    "leaks",
    "waits",
    "cpu",
    "gc",
    "scheduler",
    "syscalls",
    "tcp",
    "files",
    "fds",
    "notes",
];
/// leaky's stuck groups (leak suspects from the start): kind and exact count.
const STUCK: &[(&str, u64)] = &[
    ("chan-send", 37),
    ("nil-chan", 17),
    ("mutex", 13),
    ("empty-select", 9),
];

/// A fresh directory for one test's files.
fn temp_dir(label: &str) -> PathBuf {
    let dir = unique_temp_path(label);
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

fn arg(path: &Path) -> &str {
    path.to_str().expect("temp paths are UTF-8")
}

#[track_caller]
fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// leaky built by the newest toolchain.
fn leaky() -> PathBuf {
    let newest = *TOOLCHAINS.last().expect("at least one toolchain");
    gotest::build("leaky", newest, BuildMode::Default)
}

/// The line of leaky's main.go carrying `goroscope:create KIND`.
#[track_caller]
fn creation_line(kind: &str) -> u32 {
    gotest::marked_lines("leaky", "main.go", &format!("goroscope:create {kind}"))[0]
}

/// Panics if `html` references anything on a network.
#[track_caller]
fn assert_no_network_reference(html: &str) {
    for scheme in ["http://", "https://", "ws://", "wss://", "ftp://"] {
        if let Some(at) = html.find(scheme) {
            let around = &html[at.saturating_sub(80)..(at + 80).min(html.len())];
            panic!("the report references {scheme}: …{around}…");
        }
    }
    for attribute in ["src=\"//", "href=\"//", "src='//", "href='//", "url(//"] {
        assert!(
            !html.contains(attribute),
            "the report has a protocol-relative reference ({attribute})"
        );
    }
}

/// Waits until `record` says it is recording (everything attached).
#[track_caller]
fn wait_recording(recorder: &Goroscope) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !recorder.stderr_so_far().contains("goroscope: recording") {
        assert!(
            Instant::now() < deadline,
            "record did not start: {}",
            recorder.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn report_of_leaky_opens_offline_with_its_leaks_flame_graphs_and_every_section() {
    let dir = temp_dir("record-leaky");
    let program = leaky();
    let leaky = gotest::Running::start(&program, &[]);
    let pid = leaky.pid().to_string();
    let json = dir.join("leaky.json");
    let started = Instant::now();
    let duration = format!("{RECORD_SECONDS}s");
    let recorder = Goroscope::spawn(&[
        "record",
        "--pid",
        &pid,
        "--duration",
        &duration,
        "--output",
        arg(&json),
    ]);
    wait_recording(&recorder);
    // Connections to the ports leaky listened on before the recording began: inbound, and
    // counted only because record finds those listeners in /proc.
    let procfs = goroscope_host::ProcFs::new("/proc");
    let ports: Vec<u16> = goroscope_host::listening_sockets(&procfs, leaky.pid())
        .unwrap_or_else(|e| panic!("reading leaky's listening sockets: {e}"))
        .iter()
        .map(|l| l.port)
        .collect();
    assert!(!ports.is_empty(), "leaky listens on no TCP port");
    for &port in &ports {
        for _ in 0..CONNECTIONS_PER_PORT {
            let conn = std::net::TcpStream::connect(("127.0.0.1", port))
                .unwrap_or_else(|e| panic!("connecting to leaky's port {port}: {e}"));
            drop(conn);
        }
    }
    let run = recorder.wait_exit(Duration::from_secs(RECORD_SECONDS + 60));
    run.assert_code(0);
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(RECORD_SECONDS)
            && took < Duration::from_secs(RECORD_SECONDS + 30),
        "a {RECORD_SECONDS}s recording took {took:?}\n{}",
        run.stderr
    );

    // The JSON is the whole recording: read back and written again, it is the same.
    let text = read(&json);
    let value: Value = serde_json::from_slice(&text).expect("the recording is JSON");
    let recording: Recording =
        serde_json::from_value(value.clone()).expect("the JSON is a recording");
    let again = serde_json::to_value(&recording).expect("serializes");
    assert!(
        value == again,
        "the recording changed on its way through JSON"
    );
    assert_eq!(
        recording.target.main_module.as_deref(),
        Some("example.com/leaky")
    );
    let inbound: u64 = recording
        .tcp
        .directions
        .iter()
        .filter(|d| d.direction == "inbound")
        .map(|d| d.opened)
        .sum();
    assert_eq!(
        inbound,
        CONNECTIONS_PER_PORT * ports.len() as u64,
        "inbound connections to leaky's ports {ports:?}: {:?}",
        recording.tcp
    );
    let points = recording.timeline.len() as u64;
    assert!(
        // A loaded machine may delay snapshots (the next is then taken at once, not twice).
        (RECORD_SECONDS * 8..=RECORD_SECONDS * 10 + 2).contains(&points),
        "{points} timeline points at 100 ms over {RECORD_SECONDS}s"
    );

    // `report` renders it, the same bytes every time.
    let html = dir.join("leaky.html");
    run_goroscope(
        &["report", arg(&json), "--output", arg(&html)],
        Duration::from_secs(60),
    )
    .assert_code(0);
    let second = dir.join("leaky-again.html");
    run_goroscope(
        &["report", arg(&json), "--output", arg(&second)],
        Duration::from_secs(60),
    )
    .assert_code(0);
    let bytes = read(&html);
    assert!(
        bytes == read(&second),
        "two renderings of one recording differ"
    );
    println!(
        "report of a {RECORD_SECONDS}s recording of leaky: {} bytes (JSON {} bytes)",
        bytes.len(),
        text.len()
    );
    assert!(
        bytes.len() < MAX_REPORT_BYTES,
        "the report is {} bytes, over {MAX_REPORT_BYTES}",
        bytes.len()
    );
    let page_text = String::from_utf8(bytes).expect("the report is UTF-8");
    assert_no_network_reference(&page_text);

    // In a real browser with no network.
    let page = browser::open(&html, "record-leaky");
    println!("screenshot: {}", page.screenshot.display());
    let errors = page.errors();
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    for id in SECTIONS {
        assert!(page.has_id(id), "the report has no section #{id}");
    }
    let rows = page.elements_with_class("tr", "leak-suspect");
    for &(kind, count) in STUCK {
        let line = creation_line(kind);
        let at = format!("testdata/go/leaky/main.go:{line}");
        let found = rows.iter().any(|row| {
            row.attr("data-count") == Some(&count.to_string())
                && row.attr("data-creation").is_some_and(|c| c.ends_with(&at))
                && row.text.contains(&count.to_string())
                && row.text.contains(&format!("main.go:{line}"))
        });
        assert!(
            found,
            "no leak suspect row with {count} goroutines created at {at} ({kind}); rows: {:#?}",
            rows.iter()
                .map(|r| (r.attr("data-count"), r.attr("data-creation")))
                .collect::<Vec<_>>()
        );
    }
    for id in ["cpu-flamegraph", "wall-flamegraph"] {
        assert!(page.has_id(id), "the report has no #{id}");
    }
    // The wall-clock flame graph holds the planted goroutines' blocking functions.
    assert!(
        page.dom.contains("main.leakChanSend") && page.dom.contains("leakNilChan"),
        "the wall-clock flame graph does not show leaky's blocked goroutines"
    );
    drop(leaky);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_go_process_that_exits_mid_run_still_gets_its_report() {
    let dir = temp_dir("record-exit");
    let program = leaky();
    let mut leaky = gotest::Running::start(&program, &[]);
    let pid = leaky.pid().to_string();
    let html = dir.join("exit.html");
    let recorder = Goroscope::spawn(&[
        "record",
        "--pid",
        &pid,
        "--duration",
        "60s",
        "--output",
        arg(&html),
    ]);
    wait_recording(&recorder);
    std::thread::sleep(Duration::from_secs(3));
    let killed = Instant::now();
    leaky.kill();
    let run = recorder.wait_exit(Duration::from_secs(30));
    run.assert_code(0);
    assert!(
        killed.elapsed() < Duration::from_secs(10),
        "record went on {:?} after its process died",
        killed.elapsed()
    );
    assert!(
        run.stderr.contains(&format!("process {pid} exited")),
        "record did not say the process exited:\n{}",
        run.stderr
    );
    let page = String::from_utf8(read(&html)).expect("UTF-8");
    assert!(
        page.contains("exited"),
        "the report does not say the process exited"
    );
    for id in SECTIONS {
        assert!(
            page.contains(&format!("id=\"{id}\"")),
            "the report of an exited process has no section #{id}"
        );
    }
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("readable")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "files left beside the report: {leftovers:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_process_that_is_not_go_gets_syscalls_and_files_and_is_said_not_go() {
    const OPENS: u64 = 500;
    let dir = temp_dir("record-native");
    let json = dir.join("native.json");
    let missing = dir.join("no-such-file");
    let opens = OPENS.to_string();
    let mut workload = common::Workload::spawn_waiting(&["open-missing", arg(&missing), &opens]);
    let pid = workload.pid().to_string();
    let recorder = Goroscope::spawn(&[
        "record",
        "--pid",
        &pid,
        "--duration",
        "60s",
        "--output",
        arg(&json),
    ]);
    wait_recording(&recorder);
    workload.go();
    let run = recorder.wait_exit(Duration::from_secs(40));
    run.assert_code(0);
    let recording: Recording = serde_json::from_slice(&read(&json)).expect("the recording is JSON");
    assert!(recording.go.is_none(), "testload is not Go");
    assert!(
        recording.target.not_go.is_some(),
        "no reason given for not Go"
    );
    assert!(
        matches!(
            recording.window.ended,
            goroscope_model::recording::Ended::Exited { .. }
        ),
        "ended: {:?}",
        recording.window.ended
    );
    let path = arg(&missing);
    let file = recording
        .files
        .paths
        .iter()
        .find(|p| p.path == path)
        .unwrap_or_else(|| panic!("no opens of {path}: {:?}", recording.files.paths));
    assert_eq!(file.opens, OPENS);
    assert_eq!(file.failures, vec![("ENOENT".to_string(), OPENS)]);
    let openat = recording
        .syscalls
        .iter()
        .find(|s| s.name == "openat")
        .unwrap_or_else(|| panic!("no openat among {:?}", recording.syscalls));
    assert_eq!(openat.errors_by_errno, vec![("ENOENT".to_string(), OPENS)]);
    assert_eq!(openat.count, OPENS);

    let html = dir.join("native.html");
    run_goroscope(
        &["report", arg(&json), "--output", arg(&html)],
        Duration::from_secs(60),
    )
    .assert_code(0);
    let page = browser::open(&html, "record-not-go");
    let errors = page.errors();
    assert!(errors.is_empty(), "the page logged errors: {errors:#?}");
    for id in SECTIONS {
        assert!(
            page.has_id(id),
            "the report of a non-Go process has no section #{id}"
        );
    }
    assert!(
        page.dom.contains("not a Go process") || page.dom.contains("not Go"),
        "the report does not say the process is not Go"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_input_is_refused_with_exit_2_and_nothing_written() {
    let dir = temp_dir("record-bad");
    let out = dir.join("r.html");
    let me = std::process::id().to_string();
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec!["record", "--pid", "4194304", "--output", arg(&out)]
                .into_iter()
                .map(String::from)
                .collect(),
            "no process with PID 4194304",
        ),
        (
            vec![
                "record",
                "--pid",
                &me,
                "--interval",
                "1ms",
                "--output",
                arg(&out),
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            "--interval",
        ),
        (
            vec!["record", "--pid", &me, "--output", arg(&dir)]
                .into_iter()
                .map(String::from)
                .collect(),
            "is a directory",
        ),
        (
            vec![
                "record",
                "--pid",
                &me,
                "--output",
                "/nonexistent-goroscope-dir/r.html",
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            "choose a writable path",
        ),
        (
            vec!["record", "--pid", &me, "--format", "pdf"]
                .into_iter()
                .map(String::from)
                .collect(),
            "unknown format",
        ),
        (
            vec![
                "report",
                arg(&dir.join("missing.json")),
                "--output",
                arg(&out),
            ]
            .into_iter()
            .map(String::from)
            .collect(),
            "cannot read the recording",
        ),
    ];
    for (args, message) in cases {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let run = run_goroscope(&args, Duration::from_secs(30));
        run.assert_code(2);
        assert!(
            run.stderr.contains(message),
            "goroscope {args:?} should say {message:?}:\n{}",
            run.stderr
        );
    }
    let garbage = dir.join("garbage.json");
    std::fs::write(&garbage, b"{\"format\": 1, \"target\": 7}").expect("writable");
    let run = run_goroscope(
        &["report", arg(&garbage), "--output", arg(&out)],
        Duration::from_secs(30),
    );
    run.assert_code(2);
    assert!(
        run.stderr.contains("is not a goroscope recording"),
        "{}",
        run.stderr
    );
    let left: Vec<_> = std::fs::read_dir(&dir)
        .expect("readable")
        .map(|e| e.expect("entry").file_name())
        .filter(|name| name != "garbage.json")
        .collect();
    assert!(left.is_empty(), "bad input left files behind: {left:?}");
    let _ = std::fs::remove_dir_all(&dir);
}
