//! `goroscope goroutines` against real Go programs: testdata/go/leaky, built with every Go toolchain
//! (1.19 to 1.26) in every build mode (default, stripped, PIE, static, cgo), must report exactly
//! the planted leak groups with their wait reasons, creation sites and blocking frames; and bad
//! targets must be refused with exit code 2.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use gotest::{BuildMode, Toolchain, BUILD_MODES, TOOLCHAINS};
use serde_json::Value;

/// The planted groups: (kind, count, start function, blocking function).
const PLANTED: &[(&str, u64, &str, &str)] = &[
    ("chan-send", 37, "main.leakChanSend", "main.leakChanSend"),
    ("chan-recv", 23, "main.leakChanRecv", "main.leakChanRecv"),
    ("select", 19, "main.leakSelect", "main.leakSelect"),
    ("mutex", 13, "main.leakMutex", "main.leakMutex"),
    ("waitgroup", 11, "main.leakWaitGroup", "main.leakWaitGroup"),
    ("net-read", 7, "main.leakNetRead", "main.leakNetRead"),
    ("sleep", 5, "main.leakSleep", "main.leakSleep"),
    ("deep", 3, "main.deepStart", "main.deepRecurse"),
];

fn goroscope() -> Command {
    Command::new(env!("CARGO_BIN_EXE_goroscope"))
}

/// The wait reason a Go version gives each planted kind.
fn expected_wait_reason(kind: &str, toolchain: Toolchain) -> &'static str {
    let minor: u32 = toolchain.version["go1.".len()..]
        .split('.')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("bad toolchain version {}", toolchain.version));
    match kind {
        "chan-send" => "chan send",
        "chan-recv" | "deep" => "chan receive",
        "select" => "select",
        "mutex" if minor >= 20 => "sync.Mutex.Lock",
        "waitgroup" if minor >= 24 => "sync.WaitGroup.Wait",
        "mutex" | "waitgroup" => "semacquire",
        "net-read" => "IO wait",
        "sleep" => "sleep",
        other => panic!("unknown kind {other}"),
    }
}

/// A running leaky program, killed on drop.
struct Leaky {
    child: Child,
}

impl Leaky {
    #[track_caller]
    fn start(binary: &Path, args: &[&str]) -> Leaky {
        let mut child = Command::new(binary)
            .args(args)
            .env("GOMAXPROCS", "2")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        // Owned from here on: a program that never gets ready is still killed.
        let leaky = Leaky { child };
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("{} printed no ready line in 30 s", binary.display()));
        assert!(
            line.contains("\"ready\":true"),
            "{} did not get ready: {line:?}",
            binary.display()
        );
        leaky
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Leaky {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// testdata/go/leaky built by the newest supported toolchain.
#[track_caller]
fn newest_leaky(mode: BuildMode) -> std::path::PathBuf {
    gotest::build("leaky", TOOLCHAINS[TOOLCHAINS.len() - 1], mode)
}

#[track_caller]
fn run_json(pid: u32, extra: &[&str]) -> (Output, Value) {
    let output = goroscope()
        .args(["goroutines", "--pid", &pid.to_string(), "--format", "json"])
        .args(extra)
        .output()
        .expect("run goroscope");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "goroscope printed no JSON ({e}); status {:?}\nstdout: {stdout}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
    });
    (output, value)
}

#[track_caller]
fn check_leaky(toolchain: Toolchain, mode: BuildMode) {
    let what = format!("{} {}", toolchain.version, mode.name());
    let binary = gotest::build("leaky", toolchain, mode);
    let leaky = Leaky::start(&binary, &[]);
    let (output, report) = run_json(
        leaky.pid(),
        &[
            "--duration",
            "1500ms",
            "--interval",
            "100ms",
            "--leak-after",
            "500ms",
        ],
    );
    assert!(
        output.status.success(),
        "{what}: goroscope failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_eq!(report["go_version"], toolchain.version, "{what}");
    assert_eq!(report["main_module"], "example.com/leaky", "{what}");
    let planted_total: u64 = PLANTED.iter().map(|p| p.1).sum();
    let total = report["goroutines"]["total"].as_u64().unwrap_or(0);
    assert!(
        total >= planted_total,
        "{what}: {total} live goroutines, planted {planted_total}"
    );
    assert!(
        report["created_total"].as_u64().unwrap_or(0) >= total,
        "{what}: created_total {} < live {total}",
        report["created_total"]
    );
    let suspects = report["leak_suspects"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for &(kind, count, start, blocking) in PLANTED {
        let create_line =
            gotest::marked_lines("leaky", "main.go", &format!("goroscope:create {kind}"))[0];
        let block_line =
            gotest::marked_lines("leaky", "main.go", &format!("goroscope:block {kind}"))[0];
        let suspect = suspects
            .iter()
            .find(|s| s["creation_line"] == create_line && s["start_function"] == start)
            .unwrap_or_else(|| {
                panic!(
                    "{what}: no leak suspect created at main.go:{create_line} ({kind}); suspects: {}",
                    serde_json::to_string_pretty(&suspects).unwrap_or_default()
                )
            });
        assert_eq!(suspect["count"], count, "{what} {kind}: {suspect}");
        assert_eq!(
            suspect["wait_reason"],
            expected_wait_reason(kind, toolchain),
            "{what} {kind}: {suspect}"
        );
        assert_eq!(suspect["creation_function"], "main.plant", "{what} {kind}");
        assert!(
            suspect["creation_file"]
                .as_str()
                .is_some_and(|f| f.ends_with("leaky/main.go")),
            "{what} {kind}: {suspect}"
        );
        assert_eq!(
            suspect["blocked_at"]["function"], blocking,
            "{what} {kind}: {suspect}"
        );
        assert_eq!(
            suspect["blocked_at"]["line"], block_line,
            "{what} {kind}: {suspect}"
        );
        let score = suspect["leak_score"].as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&score), "{what} {kind}: score {score}");
        assert!(
            suspect["min_blocked_seconds"].as_f64().unwrap_or(0.0) >= 0.5,
            "{what} {kind}: {suspect}"
        );
        assert!(!suspect["reason"].as_str().unwrap_or("").is_empty());
    }
    let by_reason = &report["goroutines"]["by_wait_reason"];
    assert!(
        by_reason["chan send"].as_u64().unwrap_or(0) >= 37,
        "{what}: by_wait_reason {by_reason}"
    );
    assert!(
        report["gc"]["cycles"].as_u64().unwrap_or(0) >= 2,
        "{what}: {}",
        report["gc"]
    );
    assert!(
        report["gc"]["pause_seconds"]["max"].as_f64().unwrap_or(0.0) > 0.0,
        "{what}: {}",
        report["gc"]
    );
    assert_eq!(
        report["scheduler"]["gomaxprocs"], 2,
        "{what}: {}",
        report["scheduler"]
    );
    assert_eq!(
        report["scheduler"]["local_runqueues"]
            .as_array()
            .map(Vec::len),
        Some(2),
        "{what}"
    );
    assert!(
        report["snapshots"]["count"].as_u64().unwrap_or(0) >= 10,
        "{what}"
    );
}

macro_rules! every_mode {
    ($($name:ident => $index:expr),* $(,)?) => {$(
        #[test]
        fn $name() {
            let toolchain = TOOLCHAINS[$index];
            for &mode in BUILD_MODES {
                check_leaky(toolchain, mode);
            }
        }
    )*};
}

every_mode! {
    leaks_are_found_exactly_with_go1_19 => 0,
    leaks_are_found_exactly_with_go1_20 => 1,
    leaks_are_found_exactly_with_go1_21 => 2,
    leaks_are_found_exactly_with_go1_22 => 3,
    leaks_are_found_exactly_with_go1_23 => 4,
    leaks_are_found_exactly_with_go1_24 => 5,
    leaks_are_found_exactly_with_go1_25 => 6,
    leaks_are_found_exactly_with_go1_26 => 7,
}

#[test]
fn the_toolchain_list_is_the_one_the_tests_cover() {
    // go1.27 (TOOLCHAINS[8]) is read, stripped in every mode, by tests/newest_go.rs.
    assert_eq!(TOOLCHAINS.len(), 9, "add a test above for every toolchain");
}

#[test]
fn churn_is_never_a_suspect_and_lifetimes_are_measured() {
    let binary = newest_leaky(BuildMode::Default);
    let leaky = Leaky::start(&binary, &["-churn", "2000"]);
    let (output, report) = run_json(
        leaky.pid(),
        &[
            "--duration",
            "2s",
            "--interval",
            "50ms",
            "--leak-after",
            "500ms",
        ],
    );
    assert!(output.status.success());
    let suspects = report["leak_suspects"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let planted: u64 = PLANTED.iter().map(|p| p.1).sum();
    let suspected: u64 = suspects
        .iter()
        .map(|s| s["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        suspected, planted,
        "only planted leaks are suspects: {suspects:#?}"
    );
    assert!(
        report["created_per_second"].as_f64().unwrap_or(0.0) > 500.0,
        "churn of 2000/s not seen: {}",
        report["created_per_second"]
    );
    assert!(
        report["lifetimes"]["appeared"].as_u64().unwrap_or(0) > 0,
        "{}",
        report["lifetimes"]
    );
}

#[test]
fn text_report_puts_leak_suspects_first_with_file_and_line() {
    let binary = newest_leaky(BuildMode::Stripped);
    let leaky = Leaky::start(&binary, &[]);
    let output = goroscope()
        .args([
            "goroutines",
            "--pid",
            &leaky.pid().to_string(),
            "--duration",
            "1200ms",
        ])
        .args(["--leak-after", "500ms"])
        .output()
        .expect("run goroscope");
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}");
    let suspects_at = text
        .find("LEAK SUSPECTS (")
        .unwrap_or_else(|| panic!("{text}"));
    let goroutines_at = text.find("GOROUTINES:").unwrap_or_else(|| panic!("{text}"));
    assert!(suspects_at < goroutines_at, "{text}");
    let line = gotest::marked_lines("leaky", "main.go", "goroscope:block chan-send")[0];
    assert!(text.contains(&format!("leaky/main.go:{line})")), "{text}");
}

#[track_caller]
fn expect_usage_error(output: &Output, needle: &str) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "stderr: {stderr}");
    assert!(stderr.contains(needle), "expected {needle:?} in: {stderr}");
}

#[test]
fn a_process_that_is_not_go_is_refused() {
    let mut sleeper = Command::new("sleep").arg("30").spawn().expect("sleep");
    let output = goroscope()
        .args([
            "goroutines",
            "--pid",
            &sleeper.id().to_string(),
            "--duration",
            "1s",
        ])
        .output()
        .expect("run goroscope");
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    expect_usage_error(&output, "is not a Go program");
}

#[test]
fn a_go_version_without_offsets_is_refused_by_name() {
    // With every table line hidden there is no layout to infer the newest Go's from: a stripped
    // build is refused, by version, with exit code 2.
    let binary = gotest::build("leaky", gotest::NEWEST_TOOLCHAIN, BuildMode::Stripped);
    let leaky = Leaky::start(&binary, &[]);
    let output = goroscope()
        .args([
            "goroutines",
            "--pid",
            &leaky.pid().to_string(),
            "--duration",
            "1s",
        ])
        .env(gotest::HIDE_OFFSET_TABLE_ENV, "all")
        .output()
        .expect("run goroscope");
    expect_usage_error(&output, gotest::NEWEST_TOOLCHAIN.version);
    expect_usage_error(&output, "no runtime struct offsets");
    expect_usage_error(&output, "without -ldflags=-w");
}

#[test]
fn a_newer_go_with_dwarf_is_read_from_its_own_debug_info() {
    // The newest Go with its table line hidden plays a release newer than the tables.
    let binary = gotest::build("leaky", gotest::NEWEST_TOOLCHAIN, BuildMode::Default);
    let leaky = Leaky::start(&binary, &[]);
    let output = goroscope()
        .args(["goroutines", "--pid", &leaky.pid().to_string()])
        .args(["--format", "json", "--duration", "300ms"])
        .env(
            gotest::HIDE_OFFSET_TABLE_ENV,
            gotest::NEWEST_TOOLCHAIN.line(),
        )
        .output()
        .expect("run goroscope");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).expect("JSON report");
    assert_eq!(report["offsets_source"], "dwarf");
    assert_eq!(report["go_version"], gotest::NEWEST_TOOLCHAIN.version);
}

#[test]
fn a_missing_process_is_refused() {
    let mut child = Command::new("true").spawn().expect("true");
    let pid = child.id();
    child.wait().expect("wait");
    let output = goroscope()
        .args(["goroutines", "--pid", &pid.to_string()])
        .output()
        .expect("run goroscope");
    expect_usage_error(&output, &format!("no process with PID {pid}"));
}

#[test]
fn a_process_exiting_mid_run_still_gets_its_report() {
    let binary = newest_leaky(BuildMode::Default);
    let mut leaky = Leaky::start(&binary, &[]);
    let pid = leaky.pid();
    let mut goroscope = goroscope()
        .args(["goroutines", "--pid", &pid.to_string(), "--format", "json"])
        .args(["--duration", "30s", "--interval", "100ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run goroscope");
    // Wait until goroscope has attached, then let it take a few snapshots.
    let stderr = goroscope.stderr.take().expect("piped stderr");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stderr).lines();
        let mut all = Vec::new();
        for line in lines.by_ref().map_while(Result::ok) {
            if line.starts_with("goroscope: attached") {
                let _ = sender.send(None);
            }
            all.push(line);
        }
        let _ = sender.send(Some(all.join("\n")));
    });
    match receiver.recv_timeout(Duration::from_secs(30)) {
        Ok(None) => {}
        other => panic!("goroscope did not attach: {other:?}"),
    }
    std::thread::sleep(Duration::from_millis(600));
    let _ = leaky.child.kill();
    let _ = leaky.child.wait();
    let status = goroscope.wait().expect("goroscope exits");
    let stderr = receiver
        .recv_timeout(Duration::from_secs(30))
        .ok()
        .flatten()
        .unwrap_or_default();
    let mut stdout = String::new();
    use std::io::Read;
    goroscope
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    assert_eq!(status.code(), Some(2), "stderr: {stderr}");
    assert!(
        stderr.contains(&format!("process {pid} exited after")),
        "{stderr}"
    );
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["process_exited"], true);
    assert!(
        report["snapshots"]["count"].as_u64().unwrap_or(0) >= 3,
        "{report}"
    );
    assert!(report["goroutines"]["total"].as_u64().unwrap_or(0) >= 118);
}

#[test]
fn permission_denied_names_the_capability() {
    // An unprivileged user may not read another user's process: run goroscope as `nobody`
    // against a process of ours (root).
    let binary = newest_leaky(BuildMode::Default);
    let leaky = Leaky::start(&binary, &[]);
    let goroscope_path = env!("CARGO_BIN_EXE_goroscope");
    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
        ])
        .args(["--bounding-set=-all", goroscope_path, "goroutines", "--pid"])
        .arg(leaky.pid().to_string())
        .output()
        .expect("setpriv (util-linux) runs goroscope as nobody");
    expect_usage_error(&output, "CAP_SYS_PTRACE");
}

#[test]
fn bad_intervals_are_refused() {
    let output = goroscope()
        .args(["goroutines", "--pid", "1", "--interval", "1ms"])
        .output()
        .expect("run goroscope");
    expect_usage_error(&output, "--interval");
}

#[test]
fn ten_thousand_goroutines_are_counted_exactly() {
    let binary = newest_leaky(BuildMode::Stripped);
    let leaky = Leaky::start(&binary, &["-idle", "10000"]);
    let (output, report) = run_json(
        leaky.pid(),
        &["--duration", "1500ms", "--leak-after", "500ms"],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let line = gotest::marked_lines("leaky", "main.go", "goroscope:create idle")[0];
    let idle = report["leak_suspects"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["creation_line"] == line).cloned())
        .unwrap_or_else(|| panic!("no suspect for the idle group: {}", report["leak_suspects"]));
    assert_eq!(idle["count"], 10_000, "{idle}");
    assert_eq!(idle["blocked_at"]["function"], "main.idleWait");
    assert_eq!(
        report["snapshots"]["dropped_records"], 0,
        "{}",
        report["snapshots"]
    );
}

#[test]
fn watch_prints_a_report_per_period_as_json_lines() {
    let binary = newest_leaky(BuildMode::Pie);
    let leaky = Leaky::start(&binary, &[]);
    let output = goroscope()
        .args([
            "goroutines",
            "--pid",
            &leaky.pid().to_string(),
            "--watch",
            "--format",
            "json",
        ])
        .args(["--report-every", "300ms", "--duration", "1400ms"])
        .output()
        .expect("run goroscope");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let reports: Vec<Value> = stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(reports.len() >= 4, "{} reports: {stdout}", reports.len());
    let counts: Vec<u64> = reports
        .iter()
        .map(|r| r["snapshots"]["count"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        counts.windows(2).all(|w| w[0] < w[1]),
        "snapshot counts {counts:?}"
    );
}
