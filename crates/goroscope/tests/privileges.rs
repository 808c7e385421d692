//! goroscope run with fewer privileges, for real (util-linux `setpriv`): `doctor` as `nobody`
//! must call a refused bpf(2) a permission failure, never "not supported by this kernel"; without
//! CAP_SYS_PTRACE it must say the Go reader cannot read a running Go process and how to grant it;
//! and an agent without CAP_SYS_PTRACE must export and log why its Go collector watches nothing.

mod agent_support;
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use agent_support::sample;
use common::Goroscope;
use gotest::{BuildMode, NEWEST_TOOLCHAIN};
use serde_json::Value;

/// `setpriv` arguments dropping CAP_SYS_PTRACE (and nothing else) from a root process.
const WITHOUT_PTRACE: [&str; 2] = ["--inh-caps=-sys_ptrace", "--bounding-set=-sys_ptrace"];
/// `setpriv` arguments making the process `nobody` with no capability at all.
const NOBODY: [&str; 5] = [
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
    "--inh-caps=-all",
    "--bounding-set=-all",
];

/// Runs `doctor --format json` behind `setpriv ARGS`; returns its exit code and checks.
fn doctor_as(setpriv: &[&str]) -> (Option<i32>, Vec<Value>, String) {
    let output = Command::new("setpriv")
        .args(setpriv)
        .arg(env!("CARGO_BIN_EXE_goroscope"))
        .args(["doctor", "--format", "json"])
        .output()
        .expect("setpriv (util-linux) runs goroscope");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let report: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("doctor printed no JSON ({e}): {stdout}"));
    let checks = report["checks"].as_array().cloned().unwrap_or_default();
    (
        output.status.code(),
        checks,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The check called `name`: (ok, detail).
#[track_caller]
fn check<'a>(checks: &'a [Value], name: &str) -> (bool, &'a str) {
    let found = checks
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {checks:?}"));
    (
        found["ok"].as_bool().unwrap_or(false),
        found["detail"].as_str().unwrap_or(""),
    )
}

#[test]
fn unprivileged_doctor_tells_a_permission_failure_from_a_missing_feature() {
    let (code, checks, stderr) = doctor_as(&NOBODY);
    assert_eq!(code, Some(2), "{stderr}");
    for name in [
        "ring buffer",
        "task storage",
        "per-CPU hash",
        "tp_btf",
        "raw_tp",
    ] {
        let (ok, detail) = check(&checks, name);
        assert!(!ok, "{name} passed as nobody: {detail}");
        assert!(
            detail.contains("permission denied") && !detail.contains("not supported"),
            "{name}: {detail}"
        );
    }
    let (ok, detail) = check(&checks, "CAP_SYS_PTRACE");
    assert!(!ok && detail.contains("setcap cap_sys_ptrace"), "{detail}");
    let (ok, detail) = check(&checks, "privileges");
    assert!(!ok && detail.contains("CAP_BPF"), "{detail}");
    // The same kernel, as root: every one of them is there.
    let (code, checks, stderr) = doctor_as(&[]);
    assert_eq!(code, Some(0), "{stderr}");
    for name in ["ring buffer", "task storage", "CAP_SYS_PTRACE", "Go reader"] {
        let (ok, detail) = check(&checks, name);
        assert!(ok, "{name} failed as root: {detail}");
    }
}

#[test]
fn doctor_without_cap_sys_ptrace_says_the_go_reader_cannot_read_a_running_go_process() {
    let leaky = gotest::build("leaky", NEWEST_TOOLCHAIN, BuildMode::Default);
    let target = gotest::Running::start(&leaky, &[]);
    let (_, checks, stderr) = doctor_as(&WITHOUT_PTRACE);
    let (ok, detail) = check(&checks, "CAP_SYS_PTRACE");
    assert!(!ok && detail.contains("setcap cap_sys_ptrace"), "{detail}");
    let (ok, detail) = check(&checks, "Go reader");
    assert!(
        !ok && detail.contains("CAP_SYS_PTRACE"),
        "Go reader: {detail}\n{stderr}"
    );
    // With it, the same process is read.
    let (_, checks, _) = doctor_as(&[]);
    let (ok, detail) = check(&checks, "Go reader");
    assert!(ok && detail.contains("read Go process"), "{detail}");
    drop(target);
}

#[test]
fn an_agent_without_cap_sys_ptrace_says_why_it_watches_no_go_process() {
    let leaky = gotest::build("leaky", NEWEST_TOOLCHAIN, BuildMode::Default);
    let _target = gotest::Running::start(&leaky, &[]);
    let config = common::unique_temp_path("agent-config").with_extension("yaml");
    std::fs::write(
        &config,
        "listen: 127.0.0.1:0\ninterval: 1s\ncollectors:\n  go: { interval: 500ms, discover_every: 1s }\n",
    )
    .expect("writing the agent config");
    let mut command = Command::new("setpriv");
    command
        .args(WITHOUT_PTRACE)
        .arg(env!("CARGO_BIN_EXE_goroscope"));
    let config_arg = config.to_str().expect("UTF-8 temp path");
    let goroscope = Goroscope::spawn_command(command, &["agent", "--config", config_arg]);
    goroscope.wait_attached();
    let stderr = goroscope.stderr_so_far();
    let address: std::net::SocketAddr = stderr
        .split("serving http://")
        .nth(1)
        .and_then(|rest| rest.split("/metrics").next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no `serving http://ADDR/metrics` in:\n{stderr}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let response = agent_support::http_get(address, "/metrics", None);
        let denied = sample(
            &response.body,
            "goroscope_go_discovery_denied_processes",
            &[],
        );
        if denied.is_some_and(|n| n >= 1.0) {
            break response.body;
        }
        assert!(
            Instant::now() < deadline,
            "goroscope_go_discovery_denied_processes is {denied:?}\n{}",
            goroscope.stderr_so_far()
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // The collector is up, sees no Go process, and says why.
    assert_eq!(
        sample(&text, "goroscope_probe_up", &[("probe", "go")]),
        Some(1.0)
    );
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("goroscope_go_gomaxprocs{")),
        "a Go process was read without CAP_SYS_PTRACE"
    );
    let log = goroscope.stderr_so_far();
    assert!(
        log.contains("CAP_SYS_PTRACE") && log.contains("goroscope_go_discovery_denied_processes"),
        "{log}"
    );
    goroscope.stop_with(libc::SIGTERM).assert_code(0);
}
