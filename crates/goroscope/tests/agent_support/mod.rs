//! What the agent's tests need beyond the common helpers: a minimal HTTP client, a running
//! agent with its address, a real Prometheus server on loopback that scrapes it, PromQL
//! queries through Prometheus's HTTP API, `promtool check metrics`, and running copies of
//! testdata/go/leaky.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{unique_temp_path, Goroscope};

/// An HTTP response, as far as the tests look at it.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The Content-Type header, lowercased ("" when absent).
    pub content_type: String,
    /// The body.
    pub body: String,
}

/// GET `path` from `address` with an optional Accept header (HTTP/1.1, connection closed).
#[track_caller]
pub fn http_get(address: SocketAddr, path: &str, accept: Option<&str>) -> Response {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("cannot connect to {address}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("setting a read timeout");
    let accept = accept.map_or_else(String::new, |a| format!("Accept: {a}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\n{accept}Connection: close\r\n\r\n"
    )
    .expect("sending the request");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("reading the response");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no header/body separator in {text:?}"));
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {head:?}"));
    let mut content_type = String::new();
    let mut chunked = false;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            let name = name.trim().to_ascii_lowercase();
            if name == "content-type" {
                content_type = value.trim().to_ascii_lowercase();
            }
            if name == "transfer-encoding" && value.trim().eq_ignore_ascii_case("chunked") {
                chunked = true;
            }
        }
    }
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Response {
        status,
        content_type,
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    loop {
        let Some((size, rest)) = body.split_once("\r\n") else {
            return out;
        };
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            return out;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
}

/// A comm no other process on the machine has: `prefix` plus this test process's pid.
pub fn unique_comm(prefix: &str) -> String {
    let name = format!("{prefix}{}", std::process::id() % 100_000);
    name[..name.len().min(15)].to_owned()
}

/// A TCP server that reads each connection to EOF, answers 50 bytes and closes.
pub fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding a test server");
    let address = listener.local_addr().expect("its address");
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut request = Vec::new();
            let _ = stream.read_to_end(&mut request);
            let _ = stream.write_all(&[b'y'; 50]);
        }
    });
    address
}

/// A running agent and the address it serves on.
pub struct Agent {
    /// The process.
    pub goroscope: Goroscope,
    /// Where /metrics is.
    pub address: SocketAddr,
    /// Its config file.
    pub config: PathBuf,
}

impl Agent {
    /// Writes `config_yaml` (which should say `listen: 127.0.0.1:0`) to a file and starts
    /// `goroscope agent --config FILE`, waiting until it serves and is ready.
    #[track_caller]
    pub fn start(config_yaml: &str) -> Agent {
        let config = unique_temp_path("agent-config").with_extension("yaml");
        std::fs::write(&config, config_yaml).expect("writing the agent config");
        let config_arg = config.to_str().expect("utf-8 temp path").to_owned();
        let goroscope = Goroscope::spawn(&["agent", "--config", &config_arg]);
        Agent::attached(goroscope, config)
    }

    /// An agent already spawned with `config`: waits until it has attached, finds the address it
    /// serves on in its log, and waits until it is ready.
    #[track_caller]
    pub fn attached(goroscope: Goroscope, config: PathBuf) -> Agent {
        goroscope.wait_attached();
        let stderr = goroscope.stderr_so_far();
        let address = stderr
            .split("serving http://")
            .nth(1)
            .and_then(|rest| rest.split("/metrics").next())
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| panic!("no `serving http://ADDR/metrics` in:\n{stderr}"));
        let agent = Agent {
            goroscope,
            address,
            config,
        };
        agent.wait_ready();
        agent
    }

    /// Waits until /readyz says ready.
    #[track_caller]
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if http_get(self.address, "/readyz", None).status == 200 {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the agent never became ready\nstderr:\n{}",
                self.goroscope.stderr_so_far()
            );
            sleep(Duration::from_millis(100));
        }
    }

    /// One scrape in the Prometheus text format.
    #[track_caller]
    pub fn scrape(&self) -> String {
        let r = http_get(self.address, "/metrics", None);
        assert_eq!(r.status, 200, "GET /metrics: {}", r.body);
        r.body
    }

    /// Rewrites the config file and sends SIGHUP.
    #[track_caller]
    pub fn reload(&self, config_yaml: &str) {
        std::fs::write(&self.config, config_yaml).expect("rewriting the agent config");
        crate::common::send_signal(self.goroscope.pid(), libc::SIGHUP);
    }
}

/// The value of the one sample of `text` (Prometheus text format) whose name is `name` and
/// whose labels include every `name="value"` in `labels`; None if absent.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (metric, label_text) = match series.split_once('{') {
            Some((m, l)) => (m, l),
            None => (series, ""),
        };
        if metric != name {
            continue;
        }
        if labels
            .iter()
            .all(|(k, v)| label_text.contains(&format!("{k}=\"{v}\"")))
        {
            let v: f64 = value.parse().unwrap_or(f64::NAN);
            assert!(
                found.is_none(),
                "more than one sample of {name} matches {labels:?}"
            );
            found = Some(v);
        }
    }
    found
}

/// A free loopback port (bound, then released: a tiny race, acceptable in tests).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("finding a free port")
}

/// How many times a server whose free port was taken is started again.
const PORT_ATTEMPTS: u32 = 5;
/// What Prometheus logs once its web server serves.
const PROMETHEUS_READY: &str = "Server is ready to receive web requests.";

/// A real Prometheus server on loopback, scraping one target every second.
pub struct Prometheus {
    child: Child,
    /// Its HTTP API.
    pub address: SocketAddr,
    dir: PathBuf,
}

impl Prometheus {
    /// Starts `prometheus` (Debian's package) scraping `target` every second.
    #[track_caller]
    pub fn start(target: SocketAddr) -> Prometheus {
        let dir = unique_temp_path("prometheus");
        std::fs::create_dir_all(&dir).expect("creating the Prometheus directory");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: goroscope\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .expect("writing prometheus.yml");
        // A free port can be taken before Prometheus binds it (by another
        // test's server): it then exits with "address already in use" and is
        // started again on another port. Only its own log's ready line proves
        // that the server answering on the port is this one.
        for _ in 0..PORT_ATTEMPTS {
            let address: SocketAddr = format!("127.0.0.1:{}", free_port())
                .parse()
                .expect("a loopback address");
            let log = std::fs::File::create(dir.join("prometheus.log")).expect("creating the log");
            let child = Command::new("prometheus")
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join("data").display()
                ))
                .arg(format!("--web.listen-address={address}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| {
                    panic!(
                        "cannot start prometheus ({e}); the agent tests need Debian's \
                         `prometheus` package (scripts/install-deps.sh installs it)"
                    )
                });
            let mut child = child;
            if prometheus_ready(&mut child, address, &dir) {
                return Prometheus {
                    child,
                    address,
                    dir,
                };
            }
        }
        panic!(
            "prometheus found its port taken {PORT_ATTEMPTS} times in a row; its last log:\n{}",
            std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default()
        );
    }

    /// What Prometheus logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("prometheus.log")).unwrap_or_default()
    }

    /// Runs an instant PromQL query; returns (labels, value) per result series.
    #[track_caller]
    pub fn query(&self, promql: &str) -> Vec<(serde_json::Map<String, Value>, f64)> {
        let r = http_get(
            self.address,
            &format!("/api/v1/query?query={}", url_encode(promql)),
            None,
        );
        assert_eq!(r.status, 200, "query {promql:?} failed: {}", r.body);
        let v: Value = serde_json::from_str(&r.body)
            .unwrap_or_else(|e| panic!("query {promql:?}: bad JSON ({e}): {}", r.body));
        v["data"]["result"]
            .as_array()
            .unwrap_or_else(|| panic!("query {promql:?}: no result array: {}", r.body))
            .iter()
            .map(|s| {
                let labels = s["metric"].as_object().cloned().unwrap_or_default();
                let value = s["value"][1]
                    .as_str()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(f64::NAN);
                (labels, value)
            })
            .collect()
    }

    /// Polls `promql` until its single result equals `expected` (within 1e-9), or panics after
    /// `timeout` with what it last saw.
    #[track_caller]
    pub fn wait_for_value(&self, promql: &str, expected: f64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut last = Vec::new();
        while Instant::now() < deadline {
            last = self.query(promql);
            if last.len() == 1 && (last[0].1 - expected).abs() < 1e-9 {
                return;
            }
            sleep(Duration::from_millis(500));
        }
        panic!(
            "PromQL {promql:?} never gave exactly {expected} within {timeout:?}; last result: \
             {last:?}\nlosses: {:?}\nscrape targets: {}",
            self.query("goroscope_events_dropped_total > 0"),
            http_get(self.address, "/api/v1/targets", None).body
        );
    }
}

/// Waits until the Prometheus `child`, serving on `address` and logging into
/// `dir`, logged that it is ready and answers `/-/ready` with 200: true; false
/// when it exited because its port was taken; panics on any other exit or
/// after 60 s (killing it).
#[track_caller]
fn prometheus_ready(child: &mut Child, address: SocketAddr, dir: &Path) -> bool {
    let log = || std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            let log = log();
            if log.contains("address already in use") {
                return false;
            }
            panic!("prometheus exited ({status}) before it was ready; its log:\n{log}");
        }
        if log().contains(PROMETHEUS_READY)
            && TcpStream::connect(address).is_ok()
            && http_get(address, "/-/ready", None).status == 200
        {
            return true;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "prometheus did not become ready within 60 s; its log:\n{}",
                log()
            );
        }
        sleep(Duration::from_millis(200));
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn url_encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Runs `promtool check metrics` on `text`; returns (success, what it said).
pub fn promtool_check(text: &str) -> (bool, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run promtool ({e}); scripts/install-deps.sh installs prometheus")
        });
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(text.as_bytes())
        .expect("feeding promtool");
    let out = child.wait_with_output().expect("waiting for promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), said)
}

/// A copy of testload under a name of the test's choosing, so the series of one test's
/// workload carry a `comm` no other process has.
#[track_caller]
pub fn named_testload(name: &str) -> PathBuf {
    assert!(name.len() <= 15, "comm names are at most 15 bytes: {name}");
    let dir = unique_temp_path("named");
    std::fs::create_dir_all(&dir).expect("creating a directory for the named testload");
    let path = dir.join(name);
    std::fs::copy(crate::common::testload_bin(), &path).expect("copying testload");
    path
}

/// Runs a program to completion, panicking unless it succeeds. Its environment is emptied:
/// `cargo test` sets LD_LIBRARY_PATH, which makes the dynamic loader try (and fail to open)
/// files in many directories, syscalls a test counting ENOENT would see.
#[track_caller]
pub fn run_ok(program: &Path, args: &[&str]) {
    let status = Command::new(program)
        .env_clear()
        .args(args)
        .status()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    assert!(
        status.success(),
        "{} {args:?} failed: {status}",
        program.display()
    );
}

/// testdata/go/leaky (newest Go, stripped) copied to a fresh directory as `name`.
#[track_caller]
pub fn leaky_named(name: &str) -> std::path::PathBuf {
    let toolchain = gotest::TOOLCHAINS[gotest::TOOLCHAINS.len() - 1];
    let built = gotest::build("leaky", toolchain, gotest::BuildMode::Stripped);
    let dir = unique_temp_path("leaky");
    std::fs::create_dir_all(&dir).expect("creating a directory");
    let binary = dir.join(name);
    std::fs::copy(&built, &binary).expect("copying leaky");
    binary
}

/// A running copy of testdata/go/leaky; killed on drop.
pub struct LeakyCopy {
    /// The process.
    pub child: std::process::Child,
    /// Its name (the first 15 bytes of the file name).
    pub comm: String,
}

impl LeakyCopy {
    /// leaky under a unique name, with GOMAXPROCS=2.
    #[track_caller]
    pub fn start(prefix: &str) -> LeakyCopy {
        LeakyCopy::run(&leaky_named(&unique_comm(prefix)), 2, &[])
    }

    /// Runs `binary` (a copy of leaky) with GOMAXPROCS=`gomaxprocs` and `env` added to the
    /// environment, once its goroutines are planted.
    #[track_caller]
    pub fn run(binary: &std::path::Path, gomaxprocs: u32, env: &[(&str, &str)]) -> LeakyCopy {
        let name = binary
            .file_name()
            .and_then(|n| n.to_str())
            .expect("a UTF-8 file name");
        let comm = name[..name.len().min(15)].to_owned();
        let mut child = Command::new(binary)
            .envs(env.iter().copied())
            .env("GOMAXPROCS", gomaxprocs.to_string())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting leaky");
        // It prints one ready line once every planted goroutine is blocked.
        let mut ready = [0u8; 256];
        let read = child
            .stdout
            .as_mut()
            .map_or(0, |s| s.read(&mut ready).unwrap_or(0));
        assert!(
            String::from_utf8_lossy(&ready[..read]).contains("\"ready\":true"),
            "leaky did not get ready"
        );
        LeakyCopy { child, comm }
    }

    /// Its pid, as a label value.
    pub fn pid(&self) -> String {
        self.child.id().to_string()
    }
}

impl Drop for LeakyCopy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
