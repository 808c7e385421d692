//! `goroscope goroutines` against real Go programs: testdata/go/leaky, built with every Go toolchain
//! (1.19 to 1.27) in every build mode (default, stripped, PIE, static, cgo), must report exactly
//! its planted groups with their wait reasons, creation sites, start functions and blocking frames;
//! exactly its leaks (stuck and growing) as leak suspects and none of its healthy long waits; and
//! bad targets must be refused with exit code 2.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use gotest::{BuildMode, Toolchain, BUILD_MODES, TOOLCHAINS};
use serde_json::Value;

/// Go's own goroutine dump, parsed (shared with the real-daemon tests).
#[allow(dead_code)]
#[path = "daemons_support/pprof.rs"]
mod pprof;

/// What goroscope must conclude about a planted group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// A leak suspect, stuck: exactly `count` members.
    Stuck,
    /// A long wait that is not a leak: one group of exactly `count`, never a suspect.
    LongWait,
    /// A long wait whose members wake now and then (a fed pool, a ticker loop): `count`
    /// members across the groups of its start function, never a suspect.
    Waking,
    /// In a system call: one group of exactly `count` in state `syscall`, never a suspect.
    Syscall,
}

/// A planted group: (kind, file of its markers, count, start function, blocking function, verdict).
type Planted = (
    &'static str,
    &'static str,
    u64,
    &'static str,
    &'static str,
    Verdict,
);

/// Every group leaky plants (see testdata/go/leaky/main.go).
const PLANTED: &[Planted] = &[
    (
        "chan-send",
        "main.go",
        37,
        "main.leakChanSend",
        "main.leakChanSend",
        Verdict::Stuck,
    ),
    (
        "nil-chan",
        "main.go",
        17,
        "main.leakNilChan",
        "main.leakNilChan",
        Verdict::Stuck,
    ),
    (
        "mutex",
        "main.go",
        13,
        "main.leakMutex",
        "main.leakMutex",
        Verdict::Stuck,
    ),
    (
        "empty-select",
        "main.go",
        9,
        "main.leakEmptySelect",
        "main.leakEmptySelect",
        Verdict::Stuck,
    ),
    (
        "chan-recv",
        "main.go",
        23,
        "main.leakChanRecv",
        "main.leakChanRecv",
        Verdict::LongWait,
    ),
    (
        "select",
        "main.go",
        19,
        "main.leakSelect",
        "main.leakSelect",
        Verdict::LongWait,
    ),
    (
        "waitgroup",
        "main.go",
        11,
        "main.leakWaitGroup",
        "main.leakWaitGroup",
        Verdict::LongWait,
    ),
    (
        "net-read",
        "main.go",
        7,
        "main.leakNetRead",
        "main.leakNetRead",
        Verdict::LongWait,
    ),
    (
        "sleep",
        "main.go",
        5,
        "main.leakSleep",
        "main.leakSleep",
        Verdict::LongWait,
    ),
    (
        "deep",
        "main.go",
        3,
        "main.deepStart",
        "main.deepRecurse",
        Verdict::LongWait,
    ),
    (
        "accept",
        "healthy.go",
        1,
        "main.acceptLoop",
        "main.acceptLoop",
        Verdict::LongWait,
    ),
    (
        "idle-conn",
        "healthy.go",
        6,
        "main.serveConn",
        "main.serveConn",
        Verdict::LongWait,
    ),
    (
        "pool",
        "healthy.go",
        15,
        "main.poolWorker",
        "main.poolWorker",
        Verdict::Waking,
    ),
    (
        "ticker",
        "healthy.go",
        4,
        "main.tickerLoop",
        "main.tickerLoop",
        Verdict::Waking,
    ),
    (
        "cond",
        "healthy.go",
        8,
        "main.condWaiter",
        "main.condWaiter",
        Verdict::Waking,
    ),
    (
        "syscall",
        "syscall.go",
        2,
        "main.leakSyscall",
        "main.leakSyscall",
        Verdict::Syscall,
    ),
];

/// The growing leaks leaky serves with `-leak-rate`: (kind, start function, wait reason,
/// evidence).
const GROWING: &[(&str, &str, &str, &str)] = &[
    (
        "reply-leak",
        "main.replyWorker",
        "chan send",
        "stuck and growing",
    ),
    ("watch-leak", "main.watch", "chan receive", "growing"),
];

/// Requests a second leaky serves (each leaks one goroutine of each growing kind).
const LEAK_RATE: &str = "20";

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
        "chan-recv" | "deep" | "pool" => "chan receive",
        "nil-chan" => "chan receive (nil chan)",
        "empty-select" => "select (no cases)",
        "select" | "ticker" => "select",
        "mutex" if minor >= 20 => "sync.Mutex.Lock",
        "waitgroup" if minor >= 24 => "sync.WaitGroup.Wait",
        "mutex" | "waitgroup" => "semacquire",
        "net-read" | "accept" | "idle-conn" => "IO wait",
        "sleep" => "sleep",
        "cond" => "sync.Cond.Wait",
        "syscall" => "",
        other => panic!("unknown kind {other}"),
    }
}

/// A running leaky program (see `gotest::Running`), killed on drop.
struct Leaky(gotest::Running);

impl Leaky {
    #[track_caller]
    fn start(binary: &Path, args: &[&str]) -> Leaky {
        Leaky(gotest::Running::start(binary, args))
    }

    fn pid(&self) -> u32 {
        self.0.pid()
    }

    /// Go's own dump of every goroutine, asked for with SIGUSR1.
    #[track_caller]
    fn go_dump(&self) -> String {
        let pid = libc::pid_t::try_from(self.pid()).expect("pid fits");
        // SAFETY: kill(2) with a valid signal on our own child.
        assert_eq!(
            unsafe { libc::kill(pid, libc::SIGUSR1) },
            0,
            "SIGUSR1 to leaky"
        );
        let mut dump = String::new();
        let mut inside = false;
        loop {
            let line = self
                .0
                .next_line(Duration::from_secs(10))
                .unwrap_or_else(|| panic!("leaky printed no complete dump in 10 s: {dump}"));
            match line.as_str() {
                "--- goroutine dump ---" => inside = true,
                "--- end of dump ---" if inside => return dump,
                _ if inside => {
                    dump.push_str(&line);
                    dump.push('\n');
                }
                _ => {}
            }
        }
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

/// The line of `file` in leaky carrying marker `goroscope:<what> <kind>`.
#[track_caller]
fn marker(file: &str, what: &str, kind: &str) -> u32 {
    gotest::marked_lines("leaky", file, &format!("goroscope:{what} {kind}"))[0]
}

/// The groups created at `file:line`.
fn groups_created_at<'a>(report: &'a Value, file: &str, line: u32) -> Vec<&'a Value> {
    report["groups"]
        .as_array()
        .map(|groups| {
            groups
                .iter()
                .filter(|g| {
                    g["creation"]["line"] == line
                        && g["creation"]["file"]
                            .as_str()
                            .is_some_and(|f| f.ends_with(&format!("leaky/{file}")))
                })
                .collect()
        })
        .unwrap_or_default()
}

#[track_caller]
fn check_leaky(toolchain: Toolchain, mode: BuildMode) {
    let what = format!("{} {}", toolchain.version, mode.name());
    let binary = gotest::build("leaky", toolchain, mode);
    let leaky = Leaky::start(&binary, &["-leak-rate", LEAK_RATE]);
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
    let planted_total: u64 = PLANTED.iter().map(|p| p.2).sum();
    let total = report["goroutines"]["total"].as_u64().unwrap_or(0);
    assert!(
        total >= planted_total,
        "{what}: {total} live goroutines, planted {planted_total}"
    );
    let runtime = report["goroutines"]["runtime"].as_u64().unwrap_or(0);
    assert!(
        (3..=20).contains(&runtime),
        "{what}: {runtime} runtime goroutines (GC workers, sweeper, scavenger, …)"
    );
    assert!(
        report["created_total"].as_u64().unwrap_or(0) >= total + runtime,
        "{what}: created_total {} < live {total} + {runtime}",
        report["created_total"]
    );
    let groups = report["groups"].as_array().cloned().unwrap_or_default();
    assert!(
        groups.iter().all(|g| {
            let start = g["start_function"].as_str().unwrap_or("");
            !start.starts_with("runtime.") || start == "runtime.main"
        }),
        "{what}: the runtime's own goroutines are counted apart, not in groups"
    );
    let main = groups
        .iter()
        .find(|g| g["start_function"] == "runtime.main")
        .unwrap_or_else(|| panic!("{what}: no main goroutine"));
    assert_eq!(
        main["creation"]["function"], "",
        "{what}: main has no creator"
    );
    let suspects = report["leak_suspects"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut expected_suspects = 0;
    for &(kind, file, count, start, blocking, verdict) in PLANTED {
        let (create_line, block_line) = (marker(file, "create", kind), marker(file, "block", kind));
        let wait_reason = expected_wait_reason(kind, toolchain);
        let created = groups_created_at(&report, file, create_line);
        let members: u64 = created
            .iter()
            .map(|g| g["count"].as_u64().unwrap_or(0))
            .sum();
        assert_eq!(members, count, "{what} {kind}: {created:#?}");
        // Members that wake now and then (tickers firing together, say) may all be runnable at
        // the last snapshot, still with the stack they parked with.
        let waking_now = |g: &&&Value| verdict == Verdict::Waking && g["wait_reason"] == "";
        let group = created
            .iter()
            .find(|g| {
                (g["wait_reason"] == wait_reason || waking_now(g))
                    && g["blocked_at"]["line"] == block_line
            })
            .unwrap_or_else(|| {
                panic!("{what} {kind}: no group in {wait_reason:?} at {file}:{block_line}: {created:#?}")
            });
        assert_eq!(group["start_function"], start, "{what} {kind}: {group}");
        assert_eq!(
            group["blocked_at"]["function"], blocking,
            "{what} {kind}: {group}"
        );
        assert!(
            group["blocked_at"]["file"]
                .as_str()
                .is_some_and(|f| f.ends_with(&format!("leaky/{file}"))),
            "{what} {kind}: {group}"
        );
        if verdict != Verdict::Waking {
            assert_eq!(group["count"], count, "{what} {kind}: {group}");
        }
        if verdict == Verdict::Syscall {
            assert_eq!(group["state"], "syscall", "{what} {kind}: {group}");
            // Unwound from g.syscallsp through the syscall package to the caller, as Go's own
            // traceback does, on every Go version (before 1.23 bp is not saved on the way in).
            let stack: Vec<&str> = group["stack"]
                .as_array()
                .map(|s| s.iter().filter_map(|f| f["function"].as_str()).collect())
                .unwrap_or_default();
            assert!(
                stack.first().is_some_and(|f| f.starts_with("syscall.")
                    || f.starts_with("internal/runtime/syscall.")
                    || f.starts_with("runtime/internal/syscall.")),
                "{what} {kind}: {stack:?}"
            );
            assert!(stack.contains(&"syscall.Read"), "{what} {kind}: {stack:?}");
            assert!(
                stack.contains(&"main.leakSyscall"),
                "{what} {kind}: {stack:?}"
            );
        }
        let suspect = suspects
            .iter()
            .find(|s| s["creation_line"] == create_line && s["start_function"] == start);
        if verdict != Verdict::Stuck {
            assert!(
                suspect.is_none(),
                "{what} {kind} is healthy, yet a suspect: {suspect:?}"
            );
            continue;
        }
        expected_suspects += 1;
        let suspect = suspect.unwrap_or_else(|| {
            panic!(
                "{what}: no leak suspect created at {file}:{create_line} ({kind}); suspects: {}",
                serde_json::to_string_pretty(&suspects).unwrap_or_default()
            )
        });
        assert_eq!(suspect["count"], count, "{what} {kind}: {suspect}");
        assert_eq!(
            suspect["wait_reason"], wait_reason,
            "{what} {kind}: {suspect}"
        );
        assert_eq!(suspect["evidence"], "stuck", "{what} {kind}: {suspect}");
        assert_eq!(suspect["creation_function"], "main.plant", "{what} {kind}");
        assert_eq!(
            suspect["blocked_at"]["function"], blocking,
            "{what} {kind}: {suspect}"
        );
        assert_eq!(
            suspect["blocked_at"]["line"], block_line,
            "{what} {kind}: {suspect}"
        );
        let score = suspect["leak_score"].as_f64().unwrap_or(-1.0);
        assert!((0.5..=1.0).contains(&score), "{what} {kind}: score {score}");
        assert!(
            suspect["min_blocked_seconds"].as_f64().unwrap_or(0.0) >= 0.5,
            "{what} {kind}: {suspect}"
        );
        assert!(!suspect["reason"].as_str().unwrap_or("").is_empty());
    }
    for &(kind, start, wait_reason, evidence) in GROWING {
        expected_suspects += 1;
        let create_line = marker("growing.go", "create", kind);
        let suspect = suspects
            .iter()
            .find(|s| s["creation_line"] == create_line)
            .unwrap_or_else(|| {
                panic!(
                    "{what}: the growing {kind} is not a suspect; suspects: {}",
                    serde_json::to_string_pretty(&suspects).unwrap_or_default()
                )
            });
        assert_eq!(
            suspect["start_function"], start,
            "{what} {kind}: started through a wrapper"
        );
        assert_eq!(
            suspect["wait_reason"], wait_reason,
            "{what} {kind}: {suspect}"
        );
        assert_eq!(suspect["evidence"], evidence, "{what} {kind}: {suspect}");
        assert_eq!(
            suspect["creation_function"], "main.handleRequest",
            "{what} {kind}"
        );
        assert_eq!(
            suspect["blocked_at"]["line"],
            marker("growing.go", "block", kind),
            "{what} {kind}: {suspect}"
        );
        assert!(
            suspect["growth"].as_u64().unwrap_or(0) >= 5,
            "{what} {kind}: {suspect}"
        );
        assert!(
            suspect["growth_per_minute"].as_f64().unwrap_or(0.0) > 300.0,
            "{what} {kind}: {suspect}"
        );
        assert_eq!(suspect["released"], 0, "{what} {kind}: {suspect}");
    }
    assert_eq!(
        suspects.len(),
        expected_suspects,
        "{what}: exactly the planted leaks are suspects: {}",
        serde_json::to_string_pretty(&suspects).unwrap_or_default()
    );
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
    leaks_are_found_exactly_with_go1_27 => 8,
}

/// True for the frames Go's own traceback prints (`showframe` at the default GOTRACEBACK):
/// everything but the runtime's unexported functions (wrappers are already left out).
fn shown_by_go(function: &str) -> bool {
    match function.strip_prefix("runtime.") {
        Some(rest) => rest.starts_with(|c: char| c.is_ascii_uppercase()),
        None => function.contains('.'),
    }
}

/// A planted group's stack as goroscope reports it equals, frame for frame (function and line),
/// the stack Go's own traceback prints for its members — including goroutines in a system call
/// on Go before 1.23, which are unwound from g.syscallsp by the pcsp table, and the 40-frame
/// recursion.
#[track_caller]
fn check_stacks_against_go(toolchain: Toolchain, mode: BuildMode) {
    let what = format!("{} {}", toolchain.version, mode.name());
    let binary = gotest::build("leaky", toolchain, mode);
    let leaky = Leaky::start(&binary, &[]);
    let (output, report) = run_json(
        leaky.pid(),
        &[
            "--duration",
            "300ms",
            "--interval",
            "100ms",
            "--frames",
            "64",
        ],
    );
    assert!(
        output.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let dump = leaky.go_dump();
    let goroutines = pprof::parse_dump(&dump).unwrap_or_else(|e| panic!("{what}: {e}\n{dump}"));
    for &(kind, file, _, _, _, verdict) in PLANTED {
        if verdict == Verdict::Waking {
            continue; // caught in other states now and then
        }
        let create_line = marker(file, "create", kind);
        let block_line = marker(file, "block", kind);
        let group = groups_created_at(&report, file, create_line)
            .into_iter()
            .find(|g| g["blocked_at"]["line"] == block_line)
            .unwrap_or_else(|| panic!("{what} {kind}: no group"));
        let ours: Vec<(String, u64)> = group["stack"]
            .as_array()
            .unwrap_or_else(|| panic!("{what} {kind}: no stack in {group}"))
            .iter()
            .map(|f| {
                (
                    f["function"].as_str().unwrap_or("").to_owned(),
                    f["line"].as_u64().unwrap_or(0),
                )
            })
            .filter(|(function, _)| shown_by_go(function))
            .collect();
        let theirs: Vec<Vec<(String, u64)>> = goroutines
            .iter()
            .filter(|g| {
                g.created_by.as_ref().is_some_and(|c| {
                    c.line == u64::from(create_line) && c.file.ends_with(&format!("leaky/{file}"))
                })
            })
            .map(|g| {
                g.frames
                    .iter()
                    .map(|f| (f.function.clone(), f.line))
                    .collect()
            })
            .collect();
        assert!(
            theirs.contains(&ours),
            "{what} {kind}: goroscope's stack\n{ours:#?}\nis none of Go's own for the group:\n{theirs:#?}"
        );
    }
}

#[test]
fn stacks_are_the_frames_go_prints() {
    // Go 1.19 and 1.22 do not save bp on syscall entry; 1.23 does; and the newest.
    let picks = ["go1.19.8", "go1.22.12", "go1.23.12"];
    let toolchains = TOOLCHAINS
        .iter()
        .filter(|t| picks.contains(&t.version))
        .chain(TOOLCHAINS.last());
    for &toolchain in toolchains {
        for mode in [BuildMode::Default, BuildMode::Stripped, BuildMode::Pie] {
            check_stacks_against_go(toolchain, mode);
        }
    }
}

#[test]
fn the_toolchain_list_is_the_one_the_tests_cover() {
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
    let stuck: u64 = PLANTED
        .iter()
        .filter(|p| p.5 == Verdict::Stuck)
        .map(|p| p.2)
        .sum();
    let suspected: u64 = suspects
        .iter()
        .map(|s| s["count"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(
        suspected, stuck,
        "only the stuck planted leaks are suspects: {suspects:#?}"
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
    leaky.0.kill();
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
    let output = goroscope()
        .args(["goroutines", "--pid", "1", "--frames", "100000"])
        .output()
        .expect("run goroscope");
    expect_usage_error(&output, "--frames");
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
    let line = marker("main.go", "create", "idle");
    let idle = groups_created_at(&report, "main.go", line);
    assert_eq!(idle.len(), 1, "{idle:#?}");
    assert_eq!(idle[0]["count"], 10_000, "{}", idle[0]);
    assert_eq!(idle[0]["blocked_at"]["function"], "main.idleWait");
    assert!(
        report["leak_suspects"]
            .as_array()
            .is_some_and(|s| s.iter().all(|s| s["creation_line"] != line)),
        "10,000 goroutines idle on one channel are a pool, not a leak"
    );
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
