//! Shared helpers for goroscope's integration tests: locating (and building)
//! the `testload` workload binary, running goroscope with piped output,
//! waiting for its `goroscope: attached` line, stopping it with a signal
//! and collecting what it printed, all with timeouts that fail loudly.
//!
//! Every test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long goroscope may take to load and attach its programs.
pub const ATTACH_TIMEOUT: Duration = Duration::from_secs(30);
/// How long goroscope may take to exit after a stop signal.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a workload may take to finish.
pub const WORKLOAD_TIMEOUT: Duration = Duration::from_secs(30);
/// The line prefix goroscope prints once its probes are attached.
pub const ATTACHED: &str = "goroscope: attached";
/// The loss line of a run that lost nothing.
pub const NOTHING_LOST: &str = "goroscope: nothing lost (kernel: 0, queue: 0)";
/// The prefix of the loss line of a run that lost something.
pub const LOST_DATA: &str = "goroscope: LOST DATA";

/// The goroscope binary under test.
pub fn goroscope_bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_goroscope"))
}

/// The workspace root (the directory holding the top-level Cargo.toml).
fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The `testload` binary, built once per test process with the same profile
/// and target directory as the goroscope binary under test.
#[track_caller]
pub fn testload_bin() -> &'static Path {
    static TESTLOAD: OnceLock<PathBuf> = OnceLock::new();
    TESTLOAD.get_or_init(build_testload)
}

#[track_caller]
fn build_testload() -> PathBuf {
    // The goroscope binary lives in <target dir>/<profile dir>/goroscope.
    let bin_dir = goroscope_bin()
        .parent()
        .expect("the goroscope binary has a parent directory")
        .to_path_buf();
    let profile_dir = bin_dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("debug")
        .to_string();
    let profile = if profile_dir == "debug" {
        "dev"
    } else {
        &profile_dir
    };
    let mut cargo = Command::new(env!("CARGO"));
    cargo.current_dir(workspace_root()).args([
        "build",
        "-q",
        "-p",
        "testload",
        "--profile",
        profile,
    ]);
    // Build into the same target directory as goroscope, wherever that is
    // (CARGO_TARGET_DIR, --target-dir or the default). Cargo marks the root
    // of a target directory with CACHEDIR.TAG.
    let target_root = bin_dir.parent().map(Path::to_path_buf);
    if let Some(root) = target_root
        .as_ref()
        .filter(|r| r.join("CACHEDIR.TAG").exists())
    {
        cargo.env("CARGO_TARGET_DIR", root);
    }
    let output = cargo
        .output()
        .unwrap_or_else(|e| panic!("cannot run `cargo build -p testload`: {e}"));
    if !output.status.success() {
        panic!(
            "`cargo build -q -p testload --profile {profile}` failed ({}); build it first: \
             cargo build -p testload\nstderr:\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let candidates = [
        Some(bin_dir.join("testload")),
        target_root.map(|r| r.join(&profile_dir).join("testload")),
    ];
    candidates
        .into_iter()
        .flatten()
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "testload not found next to {}; build it first: cargo build -p testload",
                goroscope_bin().display()
            )
        })
}

/// A unique, not yet existing path in the temp directory, for one test.
pub fn unique_temp_path(label: &str) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    std::env::temp_dir().join(format!(
        "goroscope-it-{label}-{}-{n}-{nanos}",
        std::process::id()
    ))
}

/// Sends `signal` to `pid`, panicking if it cannot be delivered.
#[track_caller]
pub fn send_signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("pid fits in pid_t");
    // SAFETY: kill has no memory-safety preconditions.
    let rc = unsafe { libc::kill(pid, signal) };
    if rc != 0 {
        panic!(
            "kill({pid}, {signal}) failed: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Everything a finished goroscope run left behind.
#[derive(Debug)]
pub struct Finished {
    /// How it exited.
    pub status: ExitStatus,
    /// All of stdout.
    pub stdout: String,
    /// All of stderr.
    pub stderr: String,
    /// How long it ran, from spawn to exit.
    pub elapsed: Duration,
}

impl Finished {
    /// Panics unless the run exited with `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) {
        if self.status.code() != Some(code) {
            panic!(
                "goroscope should exit with {code}, got {}\nstderr:\n{}\nstdout (first 4 KiB):\n{}",
                self.status,
                self.stderr,
                head(&self.stdout, 4096)
            );
        }
    }

    /// Panics unless stderr ends with the loss report of a run that lost nothing.
    #[track_caller]
    pub fn assert_nothing_lost(&self) {
        if !self.stderr.lines().any(|l| l == NOTHING_LOST) {
            panic!(
                "goroscope should report `{NOTHING_LOST}` on stderr\nstderr:\n{}",
                self.stderr
            );
        }
    }

    /// Panics unless stderr has a loss report, whichever it says.
    #[track_caller]
    pub fn assert_loss_line(&self) {
        if !self
            .stderr
            .lines()
            .any(|l| l == NOTHING_LOST || l.starts_with(LOST_DATA))
        {
            panic!(
                "goroscope should end with a loss line (`{NOTHING_LOST}` or `{LOST_DATA} ...`) \
                 on stderr\nstderr:\n{}",
                self.stderr
            );
        }
    }

    /// stdout parsed as JSON lines (`trace --format json`).
    #[track_caller]
    pub fn json_lines(&self) -> Vec<Value> {
        parse_json_lines(&self.stdout)
    }

    /// stdout parsed as one JSON array (`syscalls --format json`).
    #[track_caller]
    pub fn json_array(&self) -> Vec<Value> {
        match serde_json::from_str::<Value>(&self.stdout) {
            Ok(Value::Array(rows)) => rows,
            Ok(other) => panic!(
                "stdout should be one JSON array, got {}\nstderr:\n{}",
                head(&other.to_string(), 4096),
                self.stderr
            ),
            Err(e) => panic!(
                "stdout is not JSON: {e}\nstdout (first 4 KiB):\n{}\nstderr:\n{}",
                head(&self.stdout, 4096),
                self.stderr
            ),
        }
    }
}

/// The first `max` bytes of `text` (at a character boundary).
pub fn head(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Parses one JSON object per non-empty line; panics naming the bad line.
#[track_caller]
pub fn parse_json_lines(text: &str) -> Vec<Value> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| match serde_json::from_str::<Value>(l) {
            Ok(v @ Value::Object(_)) => v,
            Ok(other) => panic!("line {} is JSON but not an object: {other}", i + 1),
            Err(e) => panic!("line {} is not JSON ({e}): {l}", i + 1),
        })
        .collect()
}

/// A JSON field as u64, panicking with the whole event when it is missing.
#[track_caller]
pub fn u64_field(v: &Value, name: &str) -> u64 {
    v.get(name)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("field `{name}` should be an unsigned integer in {v}"))
}

/// A JSON field as i64, panicking with the whole event when it is missing.
#[track_caller]
pub fn i64_field(v: &Value, name: &str) -> i64 {
    v.get(name)
        .and_then(Value::as_i64)
        .unwrap_or_else(|| panic!("field `{name}` should be an integer in {v}"))
}

/// A JSON field as a string, panicking with the whole event when it is missing.
#[track_caller]
pub fn str_field<'a>(v: &'a Value, name: &str) -> &'a str {
    v.get(name)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("field `{name}` should be a string in {v}"))
}

/// A running goroscope with its output being collected in the background.
pub struct Goroscope {
    child: Option<Child>,
    pid: u32,
    args: Vec<String>,
    started: Instant,
    stderr: Arc<Mutex<String>>,
    attached: mpsc::Receiver<()>,
    stdout_reader: Option<JoinHandle<Vec<u8>>>,
    stderr_reader: Option<JoinHandle<()>>,
}

impl Goroscope {
    /// Starts `goroscope ARGS` (stdin closed, stdout and stderr piped),
    /// without waiting for anything.
    #[track_caller]
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_command(Command::new(goroscope_bin()), args)
    }

    /// Starts `goroscope ARGS` and waits until it says it is attached.
    #[track_caller]
    pub fn start(args: &[&str]) -> Self {
        let g = Self::spawn(args);
        g.wait_attached();
        g
    }

    /// Starts `command ARGS` (a goroscope, possibly behind a wrapper).
    #[track_caller]
    pub fn spawn_command(mut command: Command, args: &[&str]) -> Self {
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {command:?}: {e}"));
        let pid = child.id();
        let mut stdout = child.stdout.take().expect("stdout is piped");
        let stderr_pipe = child.stderr.take().expect("stderr is piped");

        // Drain stdout continuously so goroscope never blocks on a full pipe.
        let stdout_reader = thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = stdout.read_to_end(&mut buf);
            buf
        });

        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, attached) = mpsc::channel();
        let stderr_reader = {
            let stderr = Arc::clone(&stderr);
            thread::spawn(move || {
                let mut reader = BufReader::new(stderr_pipe);
                let mut line = String::new();
                loop {
                    line.clear();
                    match reader.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {
                            stderr
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push_str(&line);
                            if line.starts_with(ATTACHED) {
                                let _ = tx.send(());
                            }
                        }
                    }
                }
            })
        };

        Self {
            child: Some(child),
            pid,
            args: args.iter().map(|a| a.to_string()).collect(),
            started: Instant::now(),
            stderr,
            attached,
            stdout_reader: Some(stdout_reader),
            stderr_reader: Some(stderr_reader),
        }
    }

    /// The goroscope process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// What it printed on stderr so far.
    pub fn stderr_so_far(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Blocks until the `goroscope: attached` line; panics after
    /// [`ATTACH_TIMEOUT`] or when goroscope exits first.
    #[track_caller]
    pub fn wait_attached(&self) {
        match self.attached.recv_timeout(ATTACH_TIMEOUT) {
            Ok(()) => {}
            Err(RecvTimeoutError::Timeout) => panic!(
                "goroscope {:?} did not print `{ATTACHED}` within {ATTACH_TIMEOUT:?} \
                 (is this root, with BPF available? see `goroscope doctor`)\nstderr so far:\n{}",
                self.args,
                self.stderr_so_far()
            ),
            Err(RecvTimeoutError::Disconnected) => {
                // stderr closed: goroscope is gone; give the reader a moment to
                // have stored the last lines.
                thread::sleep(Duration::from_millis(50));
                panic!(
                    "goroscope {:?} ended before printing `{ATTACHED}` (it must run as root \
                     with BPF available; see `goroscope doctor`)\nstderr:\n{}",
                    self.args,
                    self.stderr_so_far()
                )
            }
        }
    }

    /// Sends `signal`, then waits for the exit and collects the output.
    #[track_caller]
    pub fn stop_with(self, signal: libc::c_int) -> Finished {
        send_signal(self.pid, signal);
        self.wait_exit(STOP_TIMEOUT)
    }

    /// Stops it with SIGINT (Ctrl-C), then waits and collects the output.
    #[track_caller]
    pub fn stop(self) -> Finished {
        self.stop_with(libc::SIGINT)
    }

    /// Waits up to `timeout` for goroscope to exit on its own and collects
    /// its output; on timeout kills it with SIGKILL and panics.
    #[track_caller]
    pub fn wait_exit(mut self, timeout: Duration) -> Finished {
        let mut child = self.child.take().expect("the child is still owned");
        let deadline = Instant::now() + timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "goroscope {:?} did not exit within {timeout:?}; killed it\nstderr:\n{}",
                        self.args,
                        self.stderr_so_far()
                    );
                }
                Err(e) => panic!("waiting for goroscope failed: {e}"),
            }
        };
        let elapsed = self.started.elapsed();
        let stdout = self
            .stdout_reader
            .take()
            .expect("the stdout reader is still owned")
            .join()
            .expect("the stdout reader does not panic");
        self.stderr_reader
            .take()
            .expect("the stderr reader is still owned")
            .join()
            .expect("the stderr reader does not panic");
        Finished {
            status,
            stdout: String::from_utf8_lossy(&stdout).into_owned(),
            stderr: self.stderr_so_far(),
            elapsed,
        }
    }
}

impl Drop for Goroscope {
    /// A failed test must not leave a tracer (and its BPF programs) behind.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Runs `goroscope ARGS` to completion; panics if it takes longer than `timeout`.
#[track_caller]
pub fn run_goroscope(args: &[&str], timeout: Duration) -> Finished {
    Goroscope::spawn(args).wait_exit(timeout)
}

/// A running `testload`.
pub struct Workload {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    pid: u32,
    args: Vec<String>,
}

impl Workload {
    /// Starts `testload ARGS` at once (no `--wait-stdin`).
    #[track_caller]
    pub fn spawn(args: &[&str]) -> Self {
        let child = Command::new(testload_bin())
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start testload {args:?}: {e}"));
        Self {
            pid: child.id(),
            child: Some(child),
            stdin: None,
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// Starts `testload --wait-stdin ARGS`: it prints its pid and waits for
    /// [`Workload::go`] before doing any work.
    #[track_caller]
    pub fn spawn_waiting(args: &[&str]) -> Self {
        let mut child = Command::new(testload_bin())
            .arg("--wait-stdin")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start testload {args:?}: {e}"));
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout is piped"))
            .read_line(&mut line)
            .unwrap_or_else(|e| panic!("reading testload's pid failed: {e}"));
        let announced: u32 = line.trim().parse().unwrap_or_else(|_| {
            panic!("testload {args:?} should print its pid first, printed {line:?}")
        });
        assert_eq!(
            announced,
            child.id(),
            "testload announced a pid other than its own"
        );
        Self {
            pid: announced,
            stdin: child.stdin.take(),
            child: Some(child),
            args: args.iter().map(|a| a.to_string()).collect(),
        }
    }

    /// The workload's process id.
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Lets a `--wait-stdin` workload start its work.
    #[track_caller]
    pub fn go(&mut self) {
        let mut stdin = self
            .stdin
            .take()
            .expect("go() is for workloads started with spawn_waiting, once");
        stdin
            .write_all(b"go\n")
            .unwrap_or_else(|e| panic!("cannot release testload {:?}: {e}", self.args));
    }

    /// Waits for the workload to end and returns how it ended.
    #[track_caller]
    pub fn wait(mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the child is still owned");
        let deadline = Instant::now() + WORKLOAD_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return status,
                Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Ok(None) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "testload {:?} did not finish within {WORKLOAD_TIMEOUT:?}",
                        self.args
                    );
                }
                Err(e) => panic!("waiting for testload failed: {e}"),
            }
        }
    }

    /// Waits for the workload and panics unless it exited 0.
    #[track_caller]
    pub fn wait_success(self) {
        let args = self.args.clone();
        let status = self.wait();
        assert!(
            status.success(),
            "testload {args:?} should succeed, ended with {status}"
        );
    }
}

impl Drop for Workload {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
