//! The agent under production churn, as CI can afford it: `bench/agent-soak.sh` for 2 minutes
//! (the benchmark's default is 10) with every collector on, 200 process starts per second and
//! Debian's prometheus and etcd running as real Go services. The script checks that execs,
//! exits and syscalls are counted exactly, every series carries the spawner's cgroup, nothing is
//! dropped at any stage, both Go services are watched, the agent's anonymous memory stays within
//! 40 MB and its peak RSS within 50 MB plus what the debug build's code takes beyond the
//! release build's; it exits non-zero when one does not hold.
//!
//! A second, 1-minute run exports over OTLP every 10 s to a real OpenTelemetry Collector
//! (`OTLP=1`): the same counts must arrive there exactly, nothing may be dropped, and the
//! agent's anonymous memory stays within the same 40 MB (a resource per short-lived process
//! once took it to 173 MB). The two runs take turns: each needs the machine to itself.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// One soak at a time: both runs saturate the machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Runs `bench/agent-soak.sh` with `env` and panics with its report unless every check held.
#[track_caller]
fn soak(env: &[(&str, &str)]) {
    let _turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let install = Command::new("bash")
        .arg(root.join("scripts/install-daemons.sh"))
        .output()
        .unwrap_or_else(|e| panic!("cannot run scripts/install-daemons.sh: {e}"));
    assert!(
        install.status.success(),
        "scripts/install-daemons.sh failed ({}): the soak needs Debian's prometheus and etcd:\n{}{}",
        install.status,
        String::from_utf8_lossy(&install.stdout),
        String::from_utf8_lossy(&install.stderr)
    );
    let script = root.join("bench/agent-soak.sh");
    let output = Command::new("bash")
        .arg(&script)
        .env("RATE", "200")
        .env("MAX_ANON_MB", "40")
        .envs(env.iter().copied())
        .env("GOROSCOPE_BIN", common::goroscope_bin())
        .env("TESTLOAD_BIN", common::testload_bin())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("{report}");
    assert!(
        output.status.success(),
        "bench/agent-soak.sh failed ({}):\n{report}",
        output.status
    );
}

#[test]
fn two_minutes_of_churn_next_to_go_services_lose_nothing_within_50_mb() {
    // The debug build's code is resident at ~24 MB where the release build's is ~11 MB
    // (measured 2026-12-02 in this soak: file-backed RSS 23.8 vs 10.9 MB; anonymous memory
    // 29.0 vs 32.1 MB): the 50 MB goal is the release binary's (bench/agent-soak.sh checks it
    // by default); here the debug binary gets its code's difference, and what the agent
    // allocates is held to the same 40 MB either way.
    soak(&[("SOAK_S", "120"), ("MAX_RSS_MB", "63")]);
}

#[test]
fn a_minute_of_churn_arrives_exactly_at_an_opentelemetry_collector_within_40_mb_allocated() {
    // With OTLP the debug build's code is resident at ~26 MB (measured 2026-12-03: file-backed
    // 25.7 MB, anonymous 34.4 MB, peak 60.8 MB over 2 minutes; release: 12.2, 31.6 and
    // 45.7 MB): the bound that matters is the anonymous one; RSS gets the code's difference
    // and the release build's 50 MB goal rounded up.
    soak(&[("SOAK_S", "60"), ("OTLP", "1"), ("MAX_RSS_MB", "70")]);
}
