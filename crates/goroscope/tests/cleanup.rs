//! goroscope must leave no BPF program loaded once it is gone, whether it
//! stopped cleanly (SIGTERM) or was killed outright (SIGKILL): every program
//! is held only through goroscope's own file descriptors.
//!
//! Other test binaries may load programs at the same time, so this test only
//! looks at the programs that the goroscope it started holds (found through
//! `/proc/PID/fdinfo`, and bpftool's `pids` when bpftool reports them).

mod common;

use std::collections::BTreeSet;
use std::process::Command;
use std::thread::sleep;
use std::time::{Duration, Instant};

use common::{Finished, Goroscope};
use serde_json::Value;

/// How long the kernel may take to free programs after their last fd closed.
const UNLOAD_TIMEOUT: Duration = Duration::from_secs(10);

/// A loaded BPF program, as bpftool lists it.
#[derive(Debug)]
struct Program {
    id: u64,
    name: String,
    /// Processes holding it, when bpftool was built to report them.
    pids: Vec<u64>,
}

/// Every loaded BPF program, from `bpftool prog show -j`.
#[track_caller]
fn loaded_programs() -> Vec<Program> {
    let output = Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run bpftool ({e}); this test needs it on PATH \
                 (apt-get install bpftool, or linux-tools-$(uname -r))"
            )
        });
    assert!(
        output.status.success(),
        "bpftool prog show -j failed ({}); this test must run as root:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let json: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "bpftool printed something other than JSON ({e}):\n{}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    let list = json
        .as_array()
        .unwrap_or_else(|| panic!("bpftool prog show -j should print an array: {json}"));
    list.iter()
        .map(|p| Program {
            id: p["id"]
                .as_u64()
                .unwrap_or_else(|| panic!("program without an id: {p}")),
            name: p["name"].as_str().unwrap_or("").to_string(),
            pids: p["pids"]
                .as_array()
                .map(|a| a.iter().filter_map(|o| o["pid"].as_u64()).collect())
                .unwrap_or_default(),
        })
        .collect()
}

/// Ids of the BPF programs process `pid` holds through its file descriptors
/// (program fds, and the programs behind its link fds).
#[track_caller]
fn programs_held_by(pid: u32) -> BTreeSet<u64> {
    let dir = format!("/proc/{pid}/fdinfo");
    let entries =
        std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("cannot list {dir}: {e} (root?)"));
    let mut ids = BTreeSet::new();
    for entry in entries.flatten() {
        // The fd may close meanwhile; skip it then.
        let Ok(info) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        ids.extend(
            info.lines()
                .filter_map(|l| l.strip_prefix("prog_id:"))
                .filter_map(|v| v.trim().parse::<u64>().ok()),
        );
    }
    ids
}

/// Starts `goroscope ARGS` host-wide, waits until attached, and returns it
/// with the ids of the goroscope programs it holds (checked to be new).
#[track_caller]
fn start_and_find_programs(args: &[&str]) -> (Goroscope, BTreeSet<u64>) {
    let before: BTreeSet<u64> = loaded_programs().iter().map(|p| p.id).collect();
    let tracer = Goroscope::start(args);
    let pid = tracer.pid();
    let held = programs_held_by(pid);
    let after = loaded_programs();
    let ours: BTreeSet<u64> = after
        .iter()
        .filter(|p| held.contains(&p.id) || p.pids.contains(&u64::from(pid)))
        .filter(|p| p.name.starts_with("handle__"))
        .map(|p| p.id)
        .collect();
    assert!(
        !ours.is_empty(),
        "goroscope {args:?} (pid {pid}) is attached but holds no `handle__*` program; \
         it holds {held:?}; loaded: {after:?}"
    );
    let reused: Vec<&u64> = ours.intersection(&before).collect();
    assert!(
        reused.is_empty(),
        "programs {reused:?} were loaded before goroscope started, yet it holds them"
    );
    (tracer, ours)
}

/// Polls bpftool until none of `ids` is loaded; panics after [`UNLOAD_TIMEOUT`].
#[track_caller]
fn assert_unloaded(ids: &BTreeSet<u64>, what: &str, run: &Finished) {
    let deadline = Instant::now() + UNLOAD_TIMEOUT;
    loop {
        let left: Vec<Program> = loaded_programs()
            .into_iter()
            .filter(|p| ids.contains(&p.id))
            .collect();
        if left.is_empty() {
            return;
        }
        if Instant::now() >= deadline {
            panic!(
                "{what}: BPF programs still loaded {UNLOAD_TIMEOUT:?} after goroscope ended \
                 ({}): {left:?}\nstderr:\n{}",
                run.status, run.stderr
            );
        }
        sleep(Duration::from_millis(100));
    }
}

#[test]
fn no_bpf_program_outlives_goroscope() {
    let scenarios: [(&[&str], libc::c_int, &str); 4] = [
        (
            &["trace", "--format", "json"],
            libc::SIGKILL,
            "trace, SIGKILL",
        ),
        (
            &["trace", "--format", "json"],
            libc::SIGTERM,
            "trace, SIGTERM",
        ),
        (
            &["syscalls", "--format", "json"],
            libc::SIGKILL,
            "syscalls, SIGKILL",
        ),
        (
            &["syscalls", "--format", "json"],
            libc::SIGTERM,
            "syscalls, SIGTERM",
        ),
    ];
    for (args, signal, what) in scenarios {
        let (tracer, ours) = start_and_find_programs(args);
        let run = tracer.stop_with(signal);
        if signal == libc::SIGKILL {
            assert_eq!(
                std::os::unix::process::ExitStatusExt::signal(&run.status),
                Some(libc::SIGKILL),
                "{what}: goroscope should have been killed, ended with {}",
                run.status
            );
        } else {
            run.assert_code(0);
            run.assert_loss_line();
        }
        assert_unloaded(&ours, what, &run);
    }
}
