//! Go targets that exec another program under the same pid (testdata/go/execer): the pid stays,
//! the memory becomes another program's, and nothing may be reported from it as the old one's.
//! `goroutines` must say "process PID exec'd into …", report only what it read before and exit 2;
//! the agent must count the exec, keep no series of the old program for that pid, and read the
//! new program anew when it is Go (and drop the pid when it is not).

mod agent_support;
mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use agent_support::{sample, unique_comm, Agent};
use gotest::{BuildMode, NEWEST_TOOLCHAIN};
use serde_json::Value;

/// Goroutines execer has in a channel receive: `Parked` (25, testdata/go/execer/main.go) and
/// main waiting for SIGUSR1.
const PARKED: f64 = 26.0;
/// Goroutines leaky plants blocked in a channel send (see testdata/go/leaky/main.go).
const LEAKY_CHAN_SEND: f64 = 37.0;
/// How long the agent may take to see a change (1 s discovery, 500 ms snapshots, slack).
const SEEN_WITHIN: Duration = Duration::from_secs(30);

fn execer() -> PathBuf {
    gotest::build("execer", NEWEST_TOOLCHAIN, BuildMode::Default)
}

fn leaky() -> PathBuf {
    gotest::build("leaky", NEWEST_TOOLCHAIN, BuildMode::Default)
}

/// `binary` copied under `name` into a fresh directory (so the comm is unique on the machine).
fn copy_named(binary: &Path, name: &str) -> PathBuf {
    let dir = common::unique_temp_path("go-exec");
    std::fs::create_dir_all(&dir).expect("creating a temp dir");
    let copy = dir.join(name);
    std::fs::copy(binary, &copy).expect("copying a test program");
    copy
}

/// Asks execer to exec, then waits for the new program's ready line when it prints one.
fn trigger_exec(target: &gotest::Running, expect_ready: bool) {
    common::send_signal(target.pid(), libc::SIGUSR1);
    if expect_ready {
        let line = target
            .next_line(Duration::from_secs(30))
            .expect("the exec'd program printed no ready line in 30 s");
        assert!(line.contains("\"ready\":true"), "{line}");
    } else {
        std::thread::sleep(Duration::from_millis(300));
    }
    let exe = std::fs::read_link(format!("/proc/{}/exe", target.pid())).expect("its exe");
    assert!(
        !exe.to_string_lossy().contains("execer"),
        "execer did not exec: {}",
        exe.display()
    );
}

/// Runs `goroutines` on execer, makes it exec `into` mid-run, and returns (exit code, stdout,
/// stderr, pid).
fn goroutines_across_exec(
    into: &[&str],
    format: &str,
    expect_ready: bool,
) -> (Option<i32>, String, String, u32) {
    let target = gotest::Running::start(&execer(), into);
    let pid = target.pid();
    let mut goroscope = Command::new(env!("CARGO_BIN_EXE_goroscope"))
        .args(["goroutines", "--pid", &pid.to_string(), "--format", format])
        .args(["--duration", "60s", "--interval", "100ms"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run goroscope");
    let stderr = goroscope.stderr.take().expect("piped stderr");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
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
    std::thread::sleep(Duration::from_millis(700));
    let asked = Instant::now();
    trigger_exec(&target, expect_ready);
    let mut stdout = String::new();
    goroscope
        .stdout
        .take()
        .expect("piped stdout")
        .read_to_string(&mut stdout)
        .expect("read stdout");
    let status = goroscope.wait().expect("goroscope exits");
    // Stopped by the exec, not by --duration.
    assert!(
        asked.elapsed() < Duration::from_secs(20),
        "goroscope ran on for {:?} after the exec",
        asked.elapsed()
    );
    let stderr = receiver
        .recv_timeout(Duration::from_secs(30))
        .ok()
        .flatten()
        .unwrap_or_default();
    (status.code(), stdout, stderr, pid)
}

#[test]
fn goroutines_stops_with_what_it_had_when_the_target_execs_into_another_go_program() {
    let _serial = one_at_a_time();
    let leaky = std::fs::canonicalize(leaky()).expect("leaky's path");
    let leaky_arg = leaky.to_str().expect("a UTF-8 path");
    let (code, stdout, stderr, pid) = goroutines_across_exec(&[leaky_arg], "json", true);
    assert_eq!(code, Some(2), "stderr: {stderr}\nstdout: {stdout}");
    let said = format!("process {pid} exec'd into {leaky_arg} during observation");
    assert!(stderr.contains(&said), "{said:?} not in:\n{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(report["process_exec"]["into"], leaky_arg, "{report}");
    assert_eq!(report["process_exited"], false);
    assert!(
        report["snapshots"]["count"].as_u64().unwrap_or(0) >= 3,
        "{report}"
    );
    // Only execer's goroutines (25 parked, main, the runtime's): none of leaky's 184, no
    // function of leaky, and figures of a real runtime.
    let total = report["goroutines"]["total"].as_u64().unwrap_or(0);
    assert!((26..60).contains(&total), "total {total}: {report}");
    let created = report["created_total"].as_u64();
    assert!(
        created.is_some_and(|n| (26..1000).contains(&n)),
        "created since start {created:?}: {report}"
    );
    assert!(!stdout.contains("main.leak"), "leaky's functions: {stdout}");
    assert!(
        stdout.contains("main.park"),
        "execer's goroutines: {stdout}"
    );
}

#[test]
fn goroutines_says_the_target_exec_d_into_a_program_that_is_not_go() {
    let _serial = one_at_a_time();
    let (code, stdout, stderr, pid) =
        goroutines_across_exec(&["/bin/sleep", "3600"], "text", false);
    assert_eq!(code, Some(2), "stderr: {stderr}\nstdout: {stdout}");
    assert!(
        stderr.contains(&format!("process {pid} exec'd into /usr/bin/sleep"))
            || stderr.contains(&format!("process {pid} exec'd into /bin/sleep")),
        "{stderr}"
    );
    assert!(!stderr.contains("not mapped"), "{stderr}");
    assert!(
        stdout.contains("!! the process exec'd into") && stdout.contains("main.park"),
        "{stdout}"
    );
}

/// One test of this file at a time: the agents watch the whole host, so one test's exec would
/// be counted by another test's agent.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Waits until `check` holds on a scrape; panics with the last scrape and the agent's log.
#[track_caller]
fn wait_for(agent: &Agent, what: &str, check: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + SEEN_WITHIN;
    loop {
        let text = agent.scrape();
        if check(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "never saw {what}\nscrape (go lines):\n{}\nagent stderr:\n{}",
            text.lines()
                .filter(|l| l.starts_with("goroscope_go"))
                .collect::<Vec<_>>()
                .join("\n"),
            agent.goroscope.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

const AGENT_CONFIG: &str = "listen: 127.0.0.1:0\ninterval: 1s\ncollectors:\n  go: { interval: 500ms, discover_every: 1s, leak_after: 1s }\n";

#[test]
fn the_agent_counts_an_exec_and_reads_the_new_go_program_anew() {
    let _serial = one_at_a_time();
    let old = unique_comm("gxe");
    let new = unique_comm("gxl");
    let execer = copy_named(&execer(), &old);
    let leaky = copy_named(&leaky(), &new);
    let target = gotest::Running::start(&execer, &[leaky.to_str().expect("UTF-8 path")]);
    let pid = target.pid().to_string();
    let agent = Agent::start(AGENT_CONFIG);
    let parked = [
        ("comm", old.as_str()),
        ("pid", pid.as_str()),
        ("wait_reason", "chan receive"),
    ];
    wait_for(&agent, "execer's 26 goroutines in chan receive", |text| {
        sample(text, "goroscope_go_goroutines_waiting", &parked) == Some(PARKED)
    });
    trigger_exec(&target, true);
    let sent = [
        ("comm", new.as_str()),
        ("pid", pid.as_str()),
        ("wait_reason", "chan send"),
    ];
    let text = wait_for(&agent, "leaky read anew under the same pid", |text| {
        sample(text, "goroscope_go_goroutines_waiting", &sent) == Some(LEAKY_CHAN_SEND)
    });
    assert_eq!(
        sample(&text, "goroscope_go_process_execs_total", &[]),
        Some(1.0)
    );
    // No gauge of the old program remains for the pid, and the new one's are a runtime's.
    assert_eq!(
        sample(&text, "goroscope_go_goroutines_waiting", &parked),
        None,
        "execer's series outlived its exec"
    );
    assert_eq!(
        sample(
            &text,
            "goroscope_go_gomaxprocs",
            &[("comm", new.as_str()), ("pid", pid.as_str())]
        ),
        Some(2.0)
    );
    assert_eq!(
        sample(&text, "goroscope_go_snapshot_failures_total", &[]),
        Some(0.0)
    );
    let log = agent.goroscope.stderr_so_far();
    assert!(
        log.contains(&format!("Go process {pid} exec'd into {}", leaky.display())),
        "{log}"
    );
    agent.goroscope.stop_with(libc::SIGTERM).assert_code(0);
}

#[test]
fn the_agent_drops_a_pid_that_execs_into_a_program_that_is_not_go() {
    let _serial = one_at_a_time();
    let old = unique_comm("gxs");
    let execer = copy_named(&execer(), &old);
    let target = gotest::Running::start(&execer, &["/bin/sleep", "3600"]);
    let pid = target.pid().to_string();
    let agent = Agent::start(AGENT_CONFIG);
    let by_pid = [("pid", pid.as_str())];
    wait_for(&agent, "execer watched", |text| {
        sample(text, "goroscope_go_gomaxprocs", &by_pid) == Some(2.0)
    });
    trigger_exec(&target, false);
    let text = wait_for(&agent, "the exec counted", |text| {
        sample(text, "goroscope_go_process_execs_total", &[]) == Some(1.0)
    });
    // Nothing of the pid is exported any more, and it was not a snapshot failure.
    let of_pid: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("goroscope_go") && l.contains(&format!("pid=\"{pid}\"")))
        .collect();
    assert!(of_pid.is_empty(), "still exported: {of_pid:?}");
    assert_eq!(
        sample(&text, "goroscope_go_snapshot_failures_total", &[]),
        Some(0.0)
    );
    // It stays dropped.
    std::thread::sleep(Duration::from_secs(3));
    let text = agent.scrape();
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("goroscope_go") && l.contains(&format!("pid=\"{pid}\""))),
        "the pid came back after exec'ing into sleep"
    );
    agent.goroscope.stop_with(libc::SIGTERM).assert_code(0);
}
