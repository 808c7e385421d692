//! What reading real Go services costs in memory: Debian's prometheus (a 50 MB stripped go1.19
//! binary with a 14 MB function table) and etcd, started idle on loopback. goroscope maps their
//! executables instead of reading them, never copies the function table, and gives the pages its
//! scans touched back; before that, `goroutines` on prometheus peaked at 73 MB and an agent
//! watching both daemons at 93 MB (54 MB steady), in release builds. The tests run the debug
//! build, whose own code is bigger, so they measure what the daemons add: the peak reading
//! prometheus against the peak reading a small Go program, and the agent's peak watching the two
//! daemons against its peak watching two small Go programs. bench/go-memory.sh prints the absolute
//! figures of a release build (peak 38 MB for the whole agent).

mod agent_support;
mod common;
#[allow(dead_code)]
mod daemons_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use agent_support::sample;
use common::Goroscope;
use daemons_support::daemon::{Daemon, Kind};

/// What reading prometheus may add to the peak of `goroutines` over reading a small Go program
/// (it added about 57 MB; it adds about 3 MB in a release build, 9 MB in the debug one).
const GOROUTINES_EXTRA_KB: i64 = 20 * 1024;
/// What watching prometheus and etcd may add to the agent's peak (it added about 59 MB, for a
/// 93 MB peak; now about 4 MB in a release build, 9 MB in the debug one; the goal for the whole
/// agent is 50 MB).
const AGENT_EXTRA_KB: u64 = 20 * 1024;

/// Peak RSS in KB of `goroscope goroutines` reading `pid` for 2 s.
// The child is reaped by wait4, which also gives its resource usage.
#[allow(clippy::zombie_processes)]
fn goroutines_peak_kb(pid: u32) -> i64 {
    let child = Command::new(env!("CARGO_BIN_EXE_goroscope"))
        .args(["goroutines", "--pid", &pid.to_string()])
        .args([
            "--duration",
            "2s",
            "--interval",
            "100ms",
            "--format",
            "json",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run goroscope");
    let pid = libc::pid_t::try_from(child.id()).expect("pid fits");
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in; zeroed is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 on our own child, with valid pointers to locals.
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid, "wait4: {}", std::io::Error::last_os_error());
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "goroscope failed: status {status:#x}"
    );
    // ru_maxrss is in kilobytes on Linux.
    usage.ru_maxrss
}

#[test]
fn goroutines_on_a_big_go_daemon_peaks_far_below_the_size_of_its_binary() {
    let small = gotest::build(
        "execer",
        gotest::NEWEST_TOOLCHAIN,
        gotest::BuildMode::Stripped,
    );
    let baseline = {
        let target = gotest::Running::start(&small, &["/bin/true"]);
        goroutines_peak_kb(target.pid())
    };
    let daemon = Daemon::start(Kind::Prometheus);
    let peak = goroutines_peak_kb(daemon.pid());
    eprintln!("goroutines peak: {peak} KB on prometheus, {baseline} KB on a small Go program");
    assert!(
        peak - baseline < GOROUTINES_EXTRA_KB,
        "goroutines peaked at {peak} KB reading prometheus, {baseline} KB reading a small Go program (limit: {GOROUTINES_EXTRA_KB} KB more)"
    );
}

/// Runs an agent targeting only `pids` (so other Go programs on the machine do not count) for
/// 10 s after it watches both (their comms are `comms`); returns its peak RSS in KB.
fn agent_peak_kb(pids: [u32; 2], comms: [&str; 2]) -> u64 {
    let config = common::unique_temp_path("agent-config").with_extension("yaml");
    std::fs::write(
        &config,
        format!(
            "listen: 127.0.0.1:0\ninterval: 1s\ncollectors:\n  go: {{ interval: 1s, discover_every: 1s }}\n\
             targets: {{ pids: [{}, {}] }}\n",
            pids[0], pids[1]
        ),
    )
    .expect("writing the agent config");
    let config_arg = config.to_str().expect("UTF-8 temp path");
    let agent = Goroscope::spawn(&["agent", "--config", config_arg]);
    agent.wait_attached();
    let stderr = agent.stderr_so_far();
    let address: std::net::SocketAddr = stderr
        .split("serving http://")
        .nth(1)
        .and_then(|rest| rest.split("/metrics").next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no `serving http://ADDR/metrics` in:\n{stderr}"));
    // Both watched, then ten more snapshots of each.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let text = agent_support::http_get(address, "/metrics", None).body;
        let mut distinct = comms.to_vec();
        distinct.dedup();
        let watched: f64 = distinct
            .iter()
            .filter_map(|comm| sample(&text, "goroscope_go_processes", &[("comm", comm)]))
            .sum();
        if watched == 2.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent did not watch both {comms:?}:\n{}",
            agent.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(10));
    let status = std::fs::read_to_string(format!("/proc/{}/status", agent.pid()))
        .expect("the agent's /proc status");
    let peak: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/PID/status");
    agent.stop_with(libc::SIGTERM).assert_code(0);
    peak
}

#[test]
fn an_agent_watching_two_real_go_daemons_costs_little_more_than_one_watching_small_programs() {
    let small = {
        let built = gotest::build(
            "execer",
            gotest::NEWEST_TOOLCHAIN,
            gotest::BuildMode::Stripped,
        );
        let dir = common::unique_temp_path("go-memory");
        std::fs::create_dir_all(&dir).expect("creating a temp dir");
        let copy = dir.join("gomemsmall");
        std::fs::copy(built, &copy).expect("copying execer");
        copy
    };
    let (one, two) = (
        gotest::Running::start(&small, &["/bin/true"]),
        gotest::Running::start(&small, &["/bin/true"]),
    );
    let baseline = agent_peak_kb([one.pid(), two.pid()], ["gomemsmall", "gomemsmall"]);
    drop((one, two));
    let prometheus = Daemon::start(Kind::Prometheus);
    let etcd = Daemon::start(Kind::Etcd);
    let peak = agent_peak_kb([prometheus.pid(), etcd.pid()], ["prometheus", "etcd"]);
    eprintln!(
        "agent peak: {peak} KB with prometheus and etcd, {baseline} KB with two small Go programs"
    );
    assert!(
        peak.saturating_sub(baseline) < AGENT_EXTRA_KB,
        "the agent peaked at {peak} KB watching prometheus and etcd, {baseline} KB watching two small Go programs (limit: {AGENT_EXTRA_KB} KB more)"
    );
}
