//! Bad input and missing privileges: `goroscope trace` and `goroscope
//! syscalls` must refuse them with exit code 2 and a message saying what is
//! wrong, quickly, and before attaching a single probe.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use common::{goroscope_bin, run_goroscope, unique_temp_path, Finished, Goroscope, ATTACHED};

/// Bad input must be refused at once.
const REFUSAL_TIMEOUT: Duration = Duration::from_secs(5);

/// A PID above the kernel's PID_MAX_LIMIT (2^22): no process can ever have it.
const IMPOSSIBLE_PID: &str = "4194304";

/// Checks the common shape of a refusal: exit 2, within the timeout, nothing
/// attached, nothing on stdout, and stderr containing every `needles` entry.
#[track_caller]
fn assert_refused(run: &Finished, needles: &[&str]) {
    run.assert_code(2);
    assert!(
        run.elapsed < REFUSAL_TIMEOUT,
        "a refusal should be quick, took {:?}",
        run.elapsed
    );
    assert!(
        !run.stderr.contains(ATTACHED),
        "goroscope attached probes before refusing its input:\n{}",
        run.stderr
    );
    assert!(
        run.stdout.is_empty(),
        "a refusal should print nothing on stdout, printed:\n{}",
        run.stdout
    );
    for needle in needles {
        assert!(
            run.stderr.contains(needle),
            "stderr should mention {needle:?}:\n{}",
            run.stderr
        );
    }
}

/// Runs goroscope with `args`, expecting a refusal mentioning `needles`.
#[track_caller]
fn assert_args_refused(args: &[&str], needles: &[&str]) {
    let run = run_goroscope(args, REFUSAL_TIMEOUT * 2);
    assert_refused(&run, needles);
}

/// The PID of a process that has just exited (and been reaped).
fn exited_pid() -> String {
    let mut child = Command::new("true")
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `true`: {e}"));
    let pid = child.id();
    let status = child.wait().expect("waiting for `true`");
    assert!(status.success(), "`true` failed: {status}");
    pid.to_string()
}

#[test]
fn trace_refuses_an_exited_pid() {
    let pid = exited_pid();
    assert_args_refused(
        &["trace", "--pid", &pid, "--format", "json"],
        &[&format!("PID {pid}")],
    );
}

#[test]
fn syscalls_refuses_an_exited_pid() {
    let pid = exited_pid();
    assert_args_refused(&["syscalls", "--pid", &pid], &[&format!("PID {pid}")]);
}

#[test]
fn trace_and_syscalls_refuse_an_impossible_pid_among_valid_ones() {
    let me = std::process::id().to_string();
    for command in ["trace", "syscalls"] {
        assert_args_refused(
            &[command, "--pid", &me, "--pid", IMPOSSIBLE_PID],
            &[&format!("PID {IMPOSSIBLE_PID}")],
        );
    }
}

#[test]
fn trace_refuses_an_unknown_event_kind_and_lists_the_known_ones() {
    assert_args_refused(
        &["trace", "--events", "exec,bogus"],
        &["bogus", "exec", "exit", "fork", "open"],
    );
}

#[test]
fn trace_and_syscalls_refuse_a_malformed_duration() {
    for command in ["trace", "syscalls"] {
        assert_args_refused(&[command, "--duration", "ten"], &["--duration", "ten"]);
    }
}

#[test]
fn trace_and_syscalls_refuse_a_zero_duration() {
    for command in ["trace", "syscalls"] {
        assert_args_refused(&[command, "--duration", "0s"], &["--duration"]);
    }
}

/// A copy of the goroscope binary that any user can execute (the build
/// directory may not be traversable by an unprivileged user), in its own
/// directory, removed on drop.
struct WorldExecutableCopy {
    dir: PathBuf,
    binary: PathBuf,
}

impl WorldExecutableCopy {
    #[track_caller]
    fn new() -> Self {
        let dir = unique_temp_path("unprivileged");
        std::fs::create_dir(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.display()));
        let binary = dir.join("goroscope");
        std::fs::copy(goroscope_bin(), &binary)
            .unwrap_or_else(|e| panic!("copying goroscope to {}: {e}", binary.display()));
        std::fs::set_permissions(&binary, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", binary.display()));
        Self { dir, binary }
    }
}

impl Drop for WorldExecutableCopy {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `setpriv` arguments that drop every capability (and become user nobody
/// when `as_nobody`) for the command that follows `--`.
fn setpriv_args(as_nobody: bool) -> Vec<&'static str> {
    let mut args = Vec::new();
    if as_nobody {
        args.extend(["--reuid=65534", "--regid=65534", "--clear-groups"]);
    }
    args.extend(["--inh-caps=-all", "--bounding-set=-all", "--"]);
    args
}

/// Checks that `setpriv` really leaves a process without capabilities, so a
/// passing privilege test means something.
#[track_caller]
fn assert_setpriv_drops_everything(as_nobody: bool) {
    let output = Command::new("setpriv")
        .args(setpriv_args(as_nobody))
        .args(["cat", "/proc/self/status"])
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run setpriv (from util-linux) to drop privileges: {e}; \
                 these tests must run as root with setpriv installed"
            )
        });
    let status = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "setpriv failed ({}); these tests must run as root:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .map(str::trim);
    assert_eq!(
        cap_eff,
        Some("0000000000000000"),
        "setpriv should leave no effective capabilities:\n{status}"
    );
}

/// Runs the world-executable goroscope copy without capabilities.
#[track_caller]
fn run_unprivileged(as_nobody: bool, args: &[&str]) -> Finished {
    assert_setpriv_drops_everything(as_nobody);
    let copy = WorldExecutableCopy::new();
    // A test thread forking while the copy was being written can hold it open
    // for writing for a moment, and exec then fails with ETXTBSY: retry that.
    let mut attempts = 0;
    loop {
        let mut command = Command::new("setpriv");
        command.args(setpriv_args(as_nobody)).arg(&copy.binary);
        let run = Goroscope::spawn_command(command, args).wait_exit(REFUSAL_TIMEOUT * 2);
        attempts += 1;
        if run.stderr.contains("Text file busy") && attempts < 10 {
            std::thread::sleep(Duration::from_millis(100));
            continue;
        }
        return run;
    }
}

#[test]
fn trace_without_privileges_says_what_is_missing() {
    let run = run_unprivileged(true, &["trace", "--format", "json"]);
    assert_refused(&run, &["CAP_BPF", "root"]);
}

#[test]
fn syscalls_without_privileges_says_what_is_missing() {
    let run = run_unprivileged(true, &["syscalls", "--duration", "1s"]);
    assert_refused(&run, &["CAP_BPF", "root"]);
}

#[test]
fn root_without_capabilities_is_refused_too() {
    // uid 0 alone is not enough: what counts is the effective capabilities.
    for command in ["trace", "syscalls"] {
        let run = run_unprivileged(false, &[command]);
        assert_refused(&run, &["CAP_BPF", "root"]);
    }
}
