//! A real OpenTelemetry Collector for integration tests of goroscope's OTLP export:
//! [`Collector::start`] runs the collector that `scripts/otelcol.sh` builds from the
//! Collector's own Go modules (`testdata/otelcol`: the OTLP receiver on gRPC and
//! HTTP, the file and debug exporters, nothing else) on loopback, on free ports,
//! and [`Collector::received`] reads back what its file exporter wrote: one OTLP
//! JSON object (`resourceMetrics`, `resourceLogs`, `resourceSpans`, or
//! `resourceProfiles` with its `dictionary`) per batch; [`Collector::received_of`]
//! only those of one [`Signal`].
//!
//! Every signal has a pipeline, profiles included: the collector runs with the
//! `service.profilesSupport` feature gate ([`PROFILES_GATE`]), without which
//! Collector v0.165.0 refuses a `profiles` pipeline. Its OTLP/HTTP receiver then
//! takes profiles at `/v1development/profiles` (development version 1).
//!
//! [`Collector::stop`] and [`Collector::start_again`] take it down and bring it
//! back on the same ports, to test an exporter across an outage. The collector
//! runs in its own process group, killed whole on drop.
//!
//! The binary is built (or found cached under `target/otelcol/`) once per test
//! process; a failed build, a collector that exits or is not ready in time
//! panic with the script's or the collector's own output: tests never skip. A
//! collector whose free port was taken before it could bind it is started again
//! on new ports.
#![allow(dead_code)]

use std::fs::{self, File};
use std::io::ErrorKind;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use serde_json::Value;

mod http;

/// How long the collector may take to be ready after it is started.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How many times a collector whose port was taken is started again.
const PORT_ATTEMPTS: u32 = 5;
/// What the collector logs once every receiver listens and every pipeline runs.
const READY_LINE: &str = "Everything is ready. Begin running and processing data.";

/// How one run of the collector started.
#[derive(Debug, PartialEq, Eq)]
enum Started {
    /// It logged [`READY_LINE`] and both its ports accept connections.
    Ready,
    /// It exited because one of its ports was taken.
    PortTaken,
}
/// How long [`Collector::stop`] waits after SIGTERM before it kills the collector.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// The file exporter's flush interval: how stale [`Collector::received`] can be.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// The feature gate that lets the collector run a `profiles` pipeline (alpha,
/// off by default, at v0.165.0).
pub const PROFILES_GATE: &str = "service.profilesSupport";

/// An OTLP signal, as the file exporter's JSON names its batches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// `resourceMetrics`.
    Metrics,
    /// `resourceLogs`.
    Logs,
    /// `resourceSpans`.
    Traces,
    /// `resourceProfiles` (with the batch's `dictionary`).
    Profiles,
}

impl Signal {
    /// The top-level key of a batch of this signal.
    pub fn key(self) -> &'static str {
        match self {
            Signal::Metrics => "resourceMetrics",
            Signal::Logs => "resourceLogs",
            Signal::Traces => "resourceSpans",
            Signal::Profiles => "resourceProfiles",
        }
    }
}

/// The repository root.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The collector binary, built through `scripts/otelcol.sh` the first time it is
/// asked for in this test process.
#[track_caller]
pub fn binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let script = repo_root().join("scripts/otelcol.sh");
        let output = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "{} failed ({}), so there is no OpenTelemetry Collector to test against:\n{}",
            script.display(),
            output.status,
            tail(&stderr, 40)
        );
        let path = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        assert!(
            path.is_file(),
            "{} printed {:?}, which is not a file; its stderr:\n{}",
            script.display(),
            path,
            tail(&stderr, 40)
        );
        path
    })
}

/// What to run the collector with.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Also export everything through the debug exporter at `detailed`
    /// verbosity, into the collector's log ([`Collector::log`]).
    pub debug: bool,
}

/// A running (or stopped) OpenTelemetry Collector.
pub struct Collector {
    options: Options,
    dir: PathBuf,
    grpc_port: u16,
    http_port: u16,
    /// How many times it was started: run `n` writes `received-n.jsonl` and `log-n.txt`.
    runs: u32,
    child: Option<Child>,
}

impl Collector {
    /// Starts a collector with the file exporter only.
    #[track_caller]
    pub fn start() -> Collector {
        Collector::start_with(Options::default())
    }

    /// Starts a collector with `options`, on two free loopback ports, and waits
    /// until it is ready. A free port can be taken by someone else between the
    /// moment it is picked and the moment the collector binds it (another test's
    /// collector, say): the collector then exits with "address already in use"
    /// and is started again on new ports, up to [`PORT_ATTEMPTS`] times.
    #[track_caller]
    pub fn start_with(options: Options) -> Collector {
        let binary = binary();
        static UNIQUE: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "goroscope-otelcol-{}-{}",
            std::process::id(),
            UNIQUE.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
        let mut collector = Collector {
            options,
            dir,
            grpc_port: 0,
            http_port: 0,
            runs: 0,
            child: None,
        };
        for _ in 0..PORT_ATTEMPTS {
            // Both ports are held until both are known, so they differ.
            let grpc = free_port();
            let http = free_port();
            collector.grpc_port = grpc.local_addr().expect("local address").port();
            collector.http_port = http.local_addr().expect("local address").port();
            drop((grpc, http));
            if collector.spawn(binary) == Started::Ready {
                return collector;
            }
        }
        panic!(
            "the OpenTelemetry Collector found its ports taken {PORT_ATTEMPTS} times in a row; \
             its last log:\n{}",
            tail(&collector.log(), 60)
        );
    }

    /// The OTLP/gRPC endpoint, e.g. `http://127.0.0.1:41234`.
    pub fn grpc_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// The OTLP/HTTP endpoint (without the `/v1/metrics` path), e.g. `http://127.0.0.1:41235`.
    pub fn http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.http_port)
    }

    /// The OTLP/gRPC listening address.
    pub fn grpc_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.grpc_port))
    }

    /// The OTLP/HTTP listening address.
    pub fn http_addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.http_port))
    }

    /// Whether the collector process is running.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Everything the file exporter wrote so far, over every run, oldest first:
    /// one OTLP JSON object per exported batch. Up to [`FLUSH_INTERVAL`] stale; a
    /// line still being written is left out.
    #[track_caller]
    pub fn received(&self) -> Vec<Value> {
        let mut batches = Vec::new();
        for run in 1..=self.runs {
            let path = self.received_path(run);
            let text = match fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => panic!("cannot read {}: {e}", path.display()),
            };
            // Only whole lines: the exporter may be halfway through the last one.
            let whole = match text.rfind('\n') {
                Some(end) => &text[..end],
                None => continue,
            };
            for line in whole.lines().filter(|l| !l.trim().is_empty()) {
                let value = serde_json::from_str(line).unwrap_or_else(|e| {
                    panic!(
                        "the file exporter wrote a line of {} that is not JSON ({e}): {}",
                        path.display(),
                        tail(line, 1)
                    )
                });
                batches.push(value);
            }
        }
        batches
    }

    /// The batches of [`Collector::received`] that are of `signal`.
    #[track_caller]
    pub fn received_of(&self, signal: Signal) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|batch| batch.get(signal.key()).is_some())
            .collect()
    }

    /// Waits up to `timeout` until `done` holds for [`Collector::received`], and
    /// returns what was received then; panics with what was received and the
    /// collector's log if it never does.
    #[track_caller]
    pub fn wait_received(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Value]) -> bool,
    ) -> Vec<Value> {
        let give_up = Instant::now() + timeout;
        loop {
            let batches = self.received();
            if done(&batches) {
                return batches;
            }
            if Instant::now() >= give_up {
                panic!(
                    "the collector did not receive {what} within {timeout:?}; it has {} batches:\n{}\n\
                     its log:\n{}",
                    batches.len(),
                    tail(
                        &batches
                            .iter()
                            .map(Value::to_string)
                            .collect::<Vec<_>>()
                            .join("\n"),
                        20
                    ),
                    tail(&self.log(), 40)
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The collector's own output (stdout and stderr) over every run.
    pub fn log(&self) -> String {
        (1..=self.runs)
            .map(|run| {
                let text = fs::read_to_string(self.log_path(run)).unwrap_or_default();
                format!("--- run {run} ---\n{text}")
            })
            .collect()
    }

    /// Stops the collector: SIGTERM to its process group (it flushes and shuts
    /// down), SIGKILL to the group after [`STOP_TIMEOUT`]. Its ports then refuse
    /// connections. (The collector starts no processes of its own.)
    #[track_caller]
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            panic!("Collector::stop: the collector is not running");
        };
        let pid = child.id() as libc::pid_t;
        // SAFETY: kill(2) of the process group this harness started; its leader
        // is not reaped yet, so the group id cannot have been reused.
        unsafe { libc::kill(-pid, libc::SIGTERM) };
        let give_up = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < give_up => thread::sleep(Duration::from_millis(20)),
                _ => {
                    // SAFETY: as above (try_wait found it still running).
                    unsafe { libc::kill(-pid, libc::SIGKILL) };
                    let _ = child.wait();
                    break;
                }
            }
        }
    }

    /// Starts the stopped collector again, on the same ports and with the same
    /// configuration; what it receives is added to [`Collector::received`]. A
    /// port someone else holds for a moment is waited for, up to
    /// [`PORT_ATTEMPTS`] tries.
    #[track_caller]
    pub fn start_again(&mut self) {
        assert!(
            self.child.is_none(),
            "Collector::start_again: the collector is still running"
        );
        for _ in 0..PORT_ATTEMPTS {
            if self.spawn(binary()) == Started::Ready {
                return;
            }
            thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "the OpenTelemetry Collector could not take its ports {} and {} back \
             {PORT_ATTEMPTS} times in a row; its log:\n{}",
            self.grpc_port,
            self.http_port,
            tail(&self.log(), 60)
        );
    }

    fn received_path(&self, run: u32) -> PathBuf {
        self.dir.join(format!("received-{run}.jsonl"))
    }

    fn log_path(&self, run: u32) -> PathBuf {
        self.dir.join(format!("log-{run}.txt"))
    }

    /// The configuration of run `run`.
    fn config(&self, run: u32) -> String {
        let exporters = if self.options.debug {
            "[file, debug]"
        } else {
            "[file]"
        };
        // The collector's own telemetry is off: by default it would serve
        // Prometheus metrics on port 8888, which concurrent collectors share.
        format!(
            r#"receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{grpc}
      http:
        endpoint: 127.0.0.1:{http}
exporters:
  file:
    path: {received}
    format: json
    flush_interval: {flush}ms
  debug:
    verbosity: detailed
service:
  telemetry:
    metrics:
      level: none
    logs:
      level: info
  pipelines:
    metrics:
      receivers: [otlp]
      exporters: {exporters}
    logs:
      receivers: [otlp]
      exporters: {exporters}
    traces:
      receivers: [otlp]
      exporters: {exporters}
    profiles:
      receivers: [otlp]
      exporters: {exporters}
"#,
            grpc = self.grpc_port,
            http = self.http_port,
            received = self.received_path(run).display(),
            flush = FLUSH_INTERVAL.as_millis(),
        )
    }

    /// Runs the collector once more (run `runs + 1`) and waits until it is
    /// ready, or until it exits because one of its ports is taken.
    #[track_caller]
    fn spawn(&mut self, binary: &Path) -> Started {
        self.runs += 1;
        let run = self.runs;
        let config = self.dir.join(format!("config-{run}.yaml"));
        fs::write(&config, self.config(run))
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", config.display()));
        let log_path = self.log_path(run);
        let log = File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config)
            .arg(format!("--feature-gates={PROFILES_GATE}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("dup of the collector's log file"))
            .stderr(log)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        self.child = Some(child);
        self.wait_ready(run)
    }

    /// Waits until run `run` says it is ready ([`READY_LINE`]) and both ports
    /// accept connections. Only the log line proves the ports are this
    /// collector's: a port that accepts may be another process's, which took it
    /// first. A run that exits because a port is taken is [`Started::PortTaken`];
    /// any other exit, or [`START_TIMEOUT`] passing, panics with the log.
    #[track_caller]
    fn wait_ready(&mut self, run: u32) -> Started {
        let give_up = Instant::now() + START_TIMEOUT;
        let addrs = [self.grpc_addr(), self.http_addr()];
        loop {
            let child = self.child.as_mut().expect("a started collector");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                let log = fs::read_to_string(self.log_path(run)).unwrap_or_default();
                if log.contains("address already in use") {
                    return Started::PortTaken;
                }
                panic!(
                    "the OpenTelemetry Collector exited ({status}) before it was ready on \
                     {addrs:?}; its log:\n{}",
                    tail(&self.log(), 60)
                );
            }
            let ready = fs::read_to_string(self.log_path(run))
                .unwrap_or_default()
                .contains(READY_LINE);
            if ready
                && addrs
                    .iter()
                    .all(|a| TcpStream::connect_timeout(a, Duration::from_millis(200)).is_ok())
            {
                return Started::Ready;
            }
            if Instant::now() >= give_up {
                let log = self.log();
                self.kill();
                panic!(
                    "the OpenTelemetry Collector was not ready on {addrs:?} within \
                     {START_TIMEOUT:?}; its log:\n{}",
                    tail(&log, 60)
                );
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL to the collector's whole process group.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let pid = child.id() as libc::pid_t;
            // SAFETY: kill(2) of the process group this harness started, whose
            // leader is not reaped yet.
            unsafe { libc::kill(-pid, libc::SIGKILL) };
            let _ = child.wait();
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// A listener on a free loopback port (dropped to free the port for the collector).
#[track_caller]
fn free_port() -> TcpListener {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap_or_else(|e| panic!("cannot bind a free loopback port: {e}"))
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
