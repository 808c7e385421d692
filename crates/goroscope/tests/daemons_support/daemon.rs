//! The real daemons: installed once per test binary by scripts/install-daemons.sh, each started
//! by the test on loopback with free ports and a temporary directory for its data, config and
//! log, waited for until it serves, and killed (with its directory removed) on drop, or by the
//! kernel when the test process dies first.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::agent_support::{free_port, http_get};
use crate::common::unique_temp_path;

/// How long a daemon may take to serve after it starts.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a daemon is left alone after it serves, before anything is measured.
const SETTLE: Duration = Duration::from_secs(3);

/// The daemons under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Debian's `prometheus`.
    Prometheus,
    /// Debian's `etcd-server`.
    Etcd,
    /// Debian's `caddy`.
    Caddy,
    /// Debian's `prometheus-node-exporter`.
    NodeExporter,
}

impl Kind {
    /// The name used in reports.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Prometheus => "prometheus",
            Kind::Etcd => "etcd",
            Kind::Caddy => "caddy",
            Kind::NodeExporter => "node_exporter",
        }
    }

    fn program(self) -> &'static str {
        match self {
            Kind::Prometheus => "prometheus",
            Kind::Etcd => "etcd",
            Kind::Caddy => "caddy",
            Kind::NodeExporter => "prometheus-node-exporter",
        }
    }
}

/// Runs scripts/install-daemons.sh once for the whole test binary; every caller gets its
/// outcome, and a failed install fails every test with the script's own words.
#[track_caller]
pub fn ensure_installed() {
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    let outcome = INSTALLED.get_or_init(|| {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/install-daemons.sh");
        let output = Command::new("bash")
            .arg(&script)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(format!(
                "{} failed ({}); the real-daemon tests need Debian's prometheus, etcd-server, caddy \
                 and prometheus-node-exporter, installed as root with their services stopped:\n{}{}",
                script.display(),
                output.status,
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    });
    if let Err(e) = outcome {
        panic!("{e}");
    }
}

/// A running daemon, killed on drop.
pub struct Daemon {
    /// Which daemon.
    pub kind: Kind,
    child: Child,
    dir: PathBuf,
    /// Where it serves `/debug/pprof/` and `/metrics`.
    pub debug: SocketAddr,
    /// The other address its API is on (etcd's peer port is not one; caddy's site is), or
    /// `debug` again.
    pub site: SocketAddr,
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], free_port()))
}

impl Daemon {
    /// Installs the daemons if needed, starts `kind` in a fresh temporary directory, waits until
    /// it serves, then lets it settle.
    #[track_caller]
    pub fn start(kind: Kind) -> Daemon {
        ensure_installed();
        let dir = unique_temp_path(kind.name());
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let debug = loopback();
        let mut site = debug;
        let mut command = Command::new(kind.program());
        match kind {
            Kind::Prometheus => {
                // Scraping itself at Prometheus's default interval: a scrape is rarely in flight
                // when a dump or a goroscope snapshot is taken.
                let config = dir.join("prometheus.yml");
                write(
                    &config,
                    &format!(
                        "global:\n  scrape_interval: 15s\n  evaluation_interval: 15s\n\
                         scrape_configs:\n  - job_name: prometheus\n    static_configs:\n      - targets: ['{debug}']\n"
                    ),
                );
                command
                    .arg(format!("--config.file={}", config.display()))
                    .arg(format!(
                        "--storage.tsdb.path={}",
                        dir.join("data").display()
                    ))
                    .arg(format!("--web.listen-address={debug}"));
            }
            Kind::Etcd => {
                let peer = loopback();
                command
                    .arg("--data-dir")
                    .arg(dir.join("data"))
                    .args(["--listen-client-urls", &format!("http://{debug}")])
                    .args(["--advertise-client-urls", &format!("http://{debug}")])
                    .args(["--listen-peer-urls", &format!("http://{peer}")])
                    .args(["--initial-advertise-peer-urls", &format!("http://{peer}")])
                    .args(["--initial-cluster", &format!("default=http://{peer}")])
                    .arg("--enable-pprof");
            }
            Kind::Caddy => {
                site = loopback();
                let config = dir.join("Caddyfile");
                write(
                    &config,
                    &format!(
                        "{{\n\tadmin {debug}\n\tauto_https off\n}}\n\n\
                         http://{site} {{\n\tbind 127.0.0.1\n\trespond \"hello from caddy\"\n}}\n"
                    ),
                );
                let home = dir.join("home");
                for sub in ["", "data", "config"] {
                    let path = home.join(sub);
                    std::fs::create_dir_all(&path)
                        .unwrap_or_else(|e| panic!("creating {}: {e}", path.display()));
                }
                command
                    .args(["run", "--adapter", "caddyfile", "--config"])
                    .arg(&config)
                    .env("HOME", &home)
                    .env("XDG_DATA_HOME", home.join("data"))
                    .env("XDG_CONFIG_HOME", home.join("config"));
            }
            Kind::NodeExporter => {
                command.arg(format!("--web.listen-address={debug}"));
            }
        }
        let log_path = dir.join("daemon.log");
        let log = std::fs::File::create(&log_path)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log_path.display()));
        let err_log = log
            .try_clone()
            .unwrap_or_else(|e| panic!("duplicating the log file: {e}"));
        // SAFETY: between fork and exec only prctl, which is async-signal-safe, runs.
        unsafe {
            command.pre_exec(|| {
                // A test binary killed outright (Ctrl-C, SIGKILL) takes its daemons with it.
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) == 0 {
                    Ok(())
                } else {
                    Err(std::io::Error::last_os_error())
                }
            });
        }
        let child = command
            .current_dir(&dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}); scripts/install-daemons.sh installs it",
                    kind.program()
                )
            });
        // Owned from here on: a daemon that never gets ready is still killed.
        let mut daemon = Daemon {
            kind,
            child,
            dir,
            debug,
            site,
        };
        daemon.wait_ready();
        sleep(SETTLE);
        daemon.assert_alive();
        daemon
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the daemon logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// Panics with the log if the daemon has exited.
    #[track_caller]
    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited ({status}); its log:\n{}",
                self.kind.name(),
                self.log()
            );
        }
    }

    #[track_caller]
    fn wait_ready(&mut self) {
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            self.assert_alive();
            let Some(problem) = self.not_ready() else {
                return;
            };
            assert!(
                Instant::now() < deadline,
                "{} did not serve within {READY_TIMEOUT:?} ({problem}); its log:\n{}",
                self.kind.name(),
                self.log()
            );
            sleep(Duration::from_millis(200));
        }
    }

    /// Why the daemon is not ready yet, or None when it is.
    fn not_ready(&self) -> Option<String> {
        let (address, path, needle) = match self.kind {
            Kind::Prometheus => (self.debug, "/-/ready", ""),
            Kind::Etcd => (self.debug, "/health", "true"),
            Kind::Caddy => (self.site, "/", "hello from caddy"),
            Kind::NodeExporter => (self.debug, "/metrics", "go_goroutines"),
        };
        for address in [address, self.debug] {
            if TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_err() {
                return Some(format!("{address} refuses connections"));
            }
        }
        let response = http_get(address, path, None);
        if response.status != 200 || !response.body.contains(needle) {
            return Some(format!(
                "GET {path}: {} {:?}",
                response.status, response.body
            ));
        }
        if self.kind == Kind::Prometheus {
            // Its first scrape of itself opens connections that then stay: wait for it.
            let up = http_get(self.debug, "/api/v1/query?query=up", None);
            let value: Value = serde_json::from_str(&up.body).unwrap_or(Value::Null);
            if value["data"]["result"][0]["value"][1] != "1" {
                return Some(format!("no first scrape yet: {}", up.body));
            }
        }
        let pprof = http_get(self.debug, "/debug/pprof/", None);
        if pprof.status != 200 {
            return Some(format!("GET /debug/pprof/: {}", pprof.status));
        }
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[track_caller]
fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}
