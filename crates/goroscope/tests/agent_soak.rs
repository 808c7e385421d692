//! The agent under production churn, as CI can afford it: `bench/agent-soak.sh` for 2 minutes
//! (the benchmark's default is 10) with every collector on, 200 process starts per second and
//! Debian's prometheus and etcd running as real Go services. The script checks that execs,
//! exits and syscalls are counted exactly, every series carries the spawner's cgroup, nothing is
//! dropped at any stage, both Go services are watched, the agent's anonymous memory stays within
//! 40 MB and its peak RSS within 50 MB plus what the debug build's code takes beyond the
//! release build's; it exits non-zero when one does not hold.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn two_minutes_of_churn_next_to_go_services_lose_nothing_within_50_mb() {
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
        .env("SOAK_S", "120")
        .env("RATE", "200")
        // The debug build's code is resident at ~24 MB where the release build's is ~11 MB
        // (measured 2026-12-02 in this soak: file-backed RSS 23.8 vs 10.9 MB; anonymous
        // memory 29.0 vs 32.1 MB): the 50 MB goal is the release binary's (bench/agent-soak.sh
        // checks it by default); here the debug binary gets its code's difference, and what the
        // agent allocates is held to the same 40 MB either way.
        .env("MAX_RSS_MB", "63")
        .env("MAX_ANON_MB", "40")
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
