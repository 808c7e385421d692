//! The agent's OTLP export against a real OpenTelemetry Collector (built from its own Go modules
//! by scripts/otelcol.sh, see tests/otelcol): over gRPC and over OTLP/HTTP with gzip, the exact
//! counts known workloads produced arrive under each process's resource (a Go program's main
//! module or its own OTEL_SERVICE_NAME as `service.name`), latency histograms arrive as
//! exponential histograms with the kernel's counts, leak suspects arrive as log records, and a
//! Collector stopped for 20 s loses nothing the queue could hold: the data resumes and the
//! agent's counters say what was retried.

mod agent_support;
mod common;
mod otelcol;

use std::collections::BTreeMap;
use std::io::Read;
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use agent_support::{
    echo_server, leaky_named, named_testload, sample, unique_comm, Agent, LeakyCopy,
};
use otelcol::Collector;
use serde_json::Value;

/// How long the Collector may take to show what a workload did.
const SEEN_WITHIN: Duration = Duration::from_secs(40);

/// One data point as the Collector's file exporter wrote it.
#[derive(Clone, Debug)]
struct Point {
    resource: BTreeMap<String, String>,
    metric: String,
    unit: String,
    attributes: BTreeMap<String, String>,
    value: Value,
    kind: &'static str,
}

impl Point {
    /// A number point's value.
    fn number(&self) -> Option<f64> {
        self.value
            .get("asDouble")
            .and_then(Value::as_f64)
            .or_else(|| self.value.get("asInt").and_then(as_u64).map(|v| v as f64))
    }
}

/// A JSON integer, which OTLP/JSON writes as a string when it is 64-bit.
fn as_u64(value: &Value) -> Option<u64> {
    value
        .as_u64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
}

/// OTLP/JSON attributes as text.
fn attributes(list: Option<&Value>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for kv in list.and_then(Value::as_array).into_iter().flatten() {
        let key = kv["key"].as_str().unwrap_or_default().to_owned();
        let value = &kv["value"];
        let text = ["stringValue", "intValue", "boolValue", "doubleValue"]
            .iter()
            .find_map(|kind| value.get(*kind))
            .map(|v| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            })
            .unwrap_or_default();
        out.insert(key, text);
    }
    out
}

/// Every metric data point received, oldest first.
fn points(batches: &[Value]) -> Vec<Point> {
    let mut out = Vec::new();
    for batch in batches {
        for rm in batch["resourceMetrics"].as_array().into_iter().flatten() {
            let resource = attributes(rm["resource"].get("attributes"));
            for sm in rm["scopeMetrics"].as_array().into_iter().flatten() {
                for metric in sm["metrics"].as_array().into_iter().flatten() {
                    for kind in ["sum", "gauge", "histogram", "exponentialHistogram"] {
                        let Some(data) = metric.get(kind) else {
                            continue;
                        };
                        for point in data["dataPoints"].as_array().into_iter().flatten() {
                            out.push(Point {
                                resource: resource.clone(),
                                metric: metric["name"].as_str().unwrap_or_default().to_owned(),
                                unit: metric["unit"].as_str().unwrap_or_default().to_owned(),
                                attributes: attributes(point.get("attributes")),
                                value: point.clone(),
                                kind,
                            });
                        }
                    }
                }
            }
        }
    }
    out
}

/// Every log record received, with its resource.
fn log_records(batches: &[Value]) -> Vec<(BTreeMap<String, String>, Value)> {
    let mut out = Vec::new();
    for batch in batches {
        for rl in batch["resourceLogs"].as_array().into_iter().flatten() {
            let resource = attributes(rl["resource"].get("attributes"));
            for sl in rl["scopeLogs"].as_array().into_iter().flatten() {
                for record in sl["logRecords"].as_array().into_iter().flatten() {
                    out.push((resource.clone(), record.clone()));
                }
            }
        }
    }
    out
}

/// The newest point of `metric` whose resource and attributes include `resource` and `with`.
fn latest<'p>(
    points: &'p [Point],
    metric: &str,
    resource: &[(&str, &str)],
    with: &[(&str, &str)],
) -> Option<&'p Point> {
    let has = |map: &BTreeMap<String, String>, pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .all(|(k, v)| map.get(*k).is_some_and(|have| have == v))
    };
    points
        .iter()
        .rev()
        .find(|p| p.metric == metric && has(&p.resource, resource) && has(&p.attributes, with))
}

/// Waits until the newest point of `metric` for `resource` and `with` has `expected` as its
/// number; returns every point received then.
#[track_caller]
fn wait_number(
    collector: &Collector,
    metric: &str,
    resource: &[(&str, &str)],
    with: &[(&str, &str)],
    expected: f64,
) -> Vec<Point> {
    let what = format!("{metric} {resource:?} {with:?} = {expected}");
    let deadline = Instant::now() + SEEN_WITHIN;
    loop {
        let all = points(&collector.received());
        let found = latest(&all, metric, resource, with).and_then(Point::number);
        if found == Some(expected) {
            return all;
        }
        if Instant::now() >= deadline {
            let ours = |p: &&Point| {
                resource
                    .iter()
                    .all(|(k, v)| p.resource.get(*k).is_some_and(|have| have == v))
            };
            let mut near: Vec<&Point> = all
                .iter()
                .filter(ours)
                .filter(|p| p.metric == metric)
                .collect();
            if near.is_empty() {
                near = all.iter().filter(|p| p.metric == metric).collect();
            }
            let near: Vec<String> = near
                .iter()
                .rev()
                .take(12)
                .map(|p| format!("{:?} {:?} {}", p.resource, p.attributes, p.value))
                .collect();
            panic!(
                "the collector never received {what} (newest: {found:?}); newest points of that \
                 metric:\n{}\ncollector log:\n{}",
                near.join("\n"),
                collector.log()
            );
        }
        thread::sleep(Duration::from_millis(250));
    }
}

/// A child process killed when the test ends, passed or not.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The agent config: 1 s collections, every call timed, Go read every 500 ms with a 1 s leak
/// threshold, OTLP to `endpoint` every 5 s (longer than a collection, so a process that ends
/// between exports has its last values exported as departed rows).
fn config(protocol: &str, endpoint: &str, extra: &str) -> String {
    format!(
        "listen: 127.0.0.1:0\ninterval: 1s\n\
         collectors:\n  syscalls: {{ timed_calls: all }}\n  \
         go: {{ interval: 500ms, discover_every: 1s, leak_after: 1s }}\n\
         exporters:\n  otlp:\n    endpoint: {endpoint}\n    protocol: {protocol}\n    \
         interval: 5s\n{extra}"
    )
}

/// Runs testload as `comm` with `args`, waiting on stdin until `agent` has collected twice
/// (so one whole collection saw it running), and returns its pid once it exited successfully:
/// a process the agent saw running, whose last counts are exported under its own resource
/// although it ends between exports.
#[track_caller]
fn testload_pid(agent: &Agent, comm: &str, args: &[&str]) -> String {
    testload_pids(agent, &[(comm, args)]).remove(0)
}

/// [`testload_pid`] for several workloads at once (one wait for all).
#[track_caller]
fn testload_pids(agent: &Agent, workloads: &[(&str, &[&str])]) -> Vec<String> {
    let mut children: Vec<(Child, String)> = workloads
        .iter()
        .map(|(comm, args)| {
            let program = named_testload(comm);
            // Without cargo's LD_LIBRARY_PATH, whose directories the loader would probe
            // (failed opens).
            let mut child = Command::new(&program)
                .env_clear()
                .arg("--wait-stdin")
                .args(*args)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("starting testload");
            let mut line = String::new();
            let mut stdout = child.stdout.take().expect("testload's stdout");
            let mut byte = [0u8; 1];
            while stdout.read(&mut byte).expect("reading testload's pid") == 1 && byte[0] != b'\n' {
                line.push(char::from(byte[0]));
            }
            assert_eq!(
                line,
                child.id().to_string(),
                "testload announced another pid"
            );
            (child, line)
        })
        .collect();
    // The collection running when they started may have read the rows before they existed;
    // the next one starts after, while they wait.
    let collections =
        || sample(&agent.scrape(), "goroscope_agent_collections_total", &[]).unwrap_or(0.0);
    let started = collections();
    let deadline = Instant::now() + SEEN_WITHIN;
    while collections() < started + 2.0 {
        assert!(
            Instant::now() < deadline,
            "the agent did not collect twice within {SEEN_WITHIN:?}"
        );
        thread::sleep(Duration::from_millis(100));
    }
    for (child, _) in &mut children {
        // Closing stdin (EOF) lets it work.
        drop(child.stdin.take());
    }
    children
        .into_iter()
        .zip(workloads)
        .map(|((child, pid), (_, args))| {
            let output = child.wait_with_output().expect("waiting for testload");
            assert!(
                output.status.success(),
                "testload {args:?}: {}",
                output.status
            );
            pid
        })
        .collect()
}

/// Runs `copies` testloads as `comm` with `args` at once, without waiting: processes that
/// start and end between two collections.
#[track_caller]
fn short_lived(comm: &str, args: &[&str], copies: usize) {
    let program = named_testload(comm);
    let children: Vec<Child> = (0..copies)
        .map(|_| {
            Command::new(&program)
                .env_clear()
                .args(args)
                .stdin(Stdio::null())
                .spawn()
                .expect("starting testload")
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().expect("waiting for testload");
        assert!(
            output.status.success(),
            "testload {args:?}: {}",
            output.status
        );
    }
}

/// Everything one protocol must deliver exactly.
#[track_caller]
fn delivers_exactly(protocol: &str, extra: &str) {
    let collector = Collector::start();
    let endpoint = match protocol {
        "grpc" => collector.grpc_endpoint(),
        _ => collector.http_endpoint(),
    };
    let named = LeakyCopy::start("gso-named");
    let checkout = LeakyCopy::run(
        &leaky_named(&unique_comm("gso-svc")),
        2,
        &[
            ("OTEL_SERVICE_NAME", "checkout"),
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "deployment.environment.name=test",
            ),
        ],
    );
    let agent = Agent::start(&config(protocol, &endpoint, extra));
    let server: SocketAddr = echo_server();
    // Processes the agent saw running, which work and exit between two exports: their last
    // counts still arrive under their own resources.
    let comm = unique_comm("gso-work");
    let server_address = server.to_string();
    let pids = testload_pids(
        &agent,
        &[
            (&comm, &["connect", &server_address, "20"]),
            (&comm, &["getppid", "1000"]),
            (
                &comm,
                &["open-missing", "/nonexistent/goroscope-otlp-test", "30"],
            ),
        ],
    );
    let (connect_pid, getppid_pid, open_pid) = (&pids[0], &pids[1], &pids[2]);
    // Processes that start and end between two collections fold into the host's series of
    // their comm (one series, not a resource each), exactly.
    let folded_comm = unique_comm("gso-fold");
    short_lived(&folded_comm, &["getppid", "700"], 5);

    // A pid's rows from before its exec (the test's forked child) are another resource.
    let connect = [
        ("process.pid", connect_pid.as_str()),
        ("process.executable.name", comm.as_str()),
    ];
    wait_number(
        &collector,
        "goroscope.tcp.connections",
        &connect,
        &[("direction", "outbound"), ("event", "opened")],
        20.0,
    );
    let all = wait_number(
        &collector,
        "goroscope.tcp.io",
        &connect,
        &[("traffic", "sent")],
        2000.0,
    );
    let resource = &latest(&all, "goroscope.tcp.io", &connect, &[])
        .expect("a tcp.io point")
        .resource;
    assert_eq!(resource.get("service.name"), Some(&comm), "{resource:?}");
    assert_eq!(resource.get("process.executable.name"), Some(&comm));
    for label in ["comm", "pid", "cgroup"] {
        let point = latest(&all, "goroscope.tcp.io", &connect, &[]).expect("a point");
        assert!(
            !point.attributes.contains_key(label),
            "`{label}` is the resource's, not the point's: {:?}",
            point.attributes
        );
    }
    let getppid = [
        ("process.pid", getppid_pid.as_str()),
        ("process.executable.name", comm.as_str()),
    ];
    wait_number(
        &collector,
        "goroscope.syscalls",
        &getppid,
        &[("syscall", "getppid")],
        1000.0,
    );
    // The latency histogram: exponential, scale 2, in ns, counting every call.
    let deadline = Instant::now() + SEEN_WITHIN;
    let histogram = loop {
        let all = points(&collector.received());
        let found = latest(
            &all,
            "goroscope.syscall.duration",
            &getppid,
            &[("syscall", "getppid")],
        )
        .cloned();
        if let Some(p) = found.filter(|p| as_u64(&p.value["count"]) == Some(1000)) {
            break p;
        }
        assert!(
            Instant::now() < deadline,
            "no getppid duration histogram of 1000 calls"
        );
        thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(histogram.kind, "exponentialHistogram", "{histogram:?}");
    assert_eq!(histogram.unit, "ns");
    assert_eq!(histogram.value["scale"].as_i64(), Some(2));
    let in_buckets: u64 = histogram.value["positive"]["bucketCounts"]
        .as_array()
        .expect("positive buckets")
        .iter()
        .filter_map(as_u64)
        .sum::<u64>()
        + histogram
            .value
            .get("zeroCount")
            .and_then(as_u64)
            .unwrap_or(0);
    assert_eq!(in_buckets, 1000, "bucket counts add up to the count");
    let open = [
        ("process.pid", open_pid.as_str()),
        ("process.executable.name", comm.as_str()),
    ];
    wait_number(
        &collector,
        "goroscope.syscall.errors",
        &open,
        &[("syscall", "openat"), ("errno", "ENOENT")],
        30.0,
    );
    // The five short-lived copies: what the host's series of their comm holds and what any
    // of them caught running by a collection (rarely: each lives for milliseconds) holds
    // under its own resource add up to every call, and the host's series exists.
    let deadline = Instant::now() + SEEN_WITHIN;
    loop {
        let all = points(&collector.received());
        let folded = latest(
            &all,
            "goroscope.syscalls",
            &[],
            &[("comm", folded_comm.as_str()), ("syscall", "getppid")],
        )
        .filter(|p| !p.resource.contains_key("process.pid"))
        .and_then(Point::number);
        let mut own: BTreeMap<&str, f64> = BTreeMap::new();
        for p in all.iter().filter(|p| {
            p.metric == "goroscope.syscalls"
                && p.resource.get("process.executable.name") == Some(&folded_comm)
                && p.attributes.get("syscall").is_some_and(|s| s == "getppid")
        }) {
            let pid = p.resource.get("process.pid").map_or("", String::as_str);
            own.insert(pid, p.number().unwrap_or(0.0));
        }
        let total = folded.unwrap_or(0.0) + own.values().sum::<f64>();
        if folded.is_some() && total == 3500.0 {
            assert!(
                own.len() < 5,
                "every short-lived copy got a resource: {own:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the short-lived {folded_comm} copies' 3500 getppid calls never added up: host's \
             series {folded:?}, own resources {own:?}"
        );
        thread::sleep(Duration::from_millis(250));
    }

    // Go: the main module names one process, its own OTEL_SERVICE_NAME the other; the planted
    // stuck groups arrive with their exact sizes, as metrics and as leak events.
    let named_pid = named.pid();
    let named_resource = [
        ("service.name", "example.com/leaky"),
        ("process.pid", named_pid.as_str()),
        ("process.runtime.name", "go"),
    ];
    let all = wait_number(
        &collector,
        "goroscope.go.leak.suspects",
        &named_resource,
        &[("wait_reason", "chan send")],
        37.0,
    );
    for (reason, count) in [
        ("chan receive (nil chan)", 17.0),
        ("sync.Mutex.Lock", 13.0),
        ("select (no cases)", 9.0),
    ] {
        let found = latest(
            &all,
            "goroscope.go.leak.suspects",
            &named_resource,
            &[("wait_reason", reason)],
        );
        assert_eq!(found.and_then(Point::number), Some(count), "{reason}");
    }
    let goroutines = latest(&all, "go.goroutine.count", &named_resource, &[]);
    assert!(
        goroutines.is_some_and(|p| p.kind == "sum"),
        "go.goroutine.count: {goroutines:?}"
    );
    let checkout_pid = checkout.pid();
    wait_number(
        &collector,
        "goroscope.go.leak.suspects",
        &[
            ("service.name", "checkout"),
            ("deployment.environment.name", "test"),
            ("process.pid", checkout_pid.as_str()),
        ],
        &[("wait_reason", "chan send")],
        37.0,
    );
    let deadline = Instant::now() + SEEN_WITHIN;
    loop {
        let records = log_records(&collector.received());
        let event = records.iter().find(|(resource, record)| {
            resource.get("process.pid") == Some(&named_pid)
                && attributes(record.get("attributes"))
                    .get("goroscope.goroutine.wait_reason")
                    .is_some_and(|r| r == "chan send")
        });
        if let Some((resource, record)) = event {
            assert_eq!(
                resource.get("service.name").map(String::as_str),
                Some("example.com/leaky")
            );
            let attrs = attributes(record.get("attributes"));
            assert_eq!(
                attrs.get("goroscope.goroutine.count").map(String::as_str),
                Some("37"),
                "{record}"
            );
            assert_eq!(record["severityText"].as_str(), Some("WARN"), "{record}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no chan-send leak event for pid {named_pid}: {records:?}"
        );
        thread::sleep(Duration::from_millis(250));
    }
    // The agent counts what it sent, and nothing was dropped.
    let text = agent.scrape();
    let sent = sample(
        &text,
        "goroscope_export_sent_items_total",
        &[("signal", "metrics")],
    );
    assert!(sent.is_some_and(|n| n > 0.0), "sent items: {sent:?}");
    for signal in ["metrics", "logs"] {
        for reason in ["queue_full", "retries_exhausted", "not_retryable"] {
            assert_eq!(
                sample(
                    &text,
                    "goroscope_export_dropped_items_total",
                    &[("signal", signal), ("reason", reason)]
                ),
                Some(0.0),
                "{signal} dropped for {reason}"
            );
        }
    }
    agent.goroscope.stop_with(libc::SIGTERM).assert_code(0);
}

#[test]
fn a_collector_receives_exactly_what_workloads_did_over_grpc() {
    delivers_exactly("grpc", "");
}

#[test]
fn a_collector_receives_exactly_what_workloads_did_over_http_with_gzip() {
    delivers_exactly("http/protobuf", "    compression: gzip\n");
}

#[test]
fn a_collector_down_for_20_seconds_loses_nothing_the_queue_holds() {
    let mut collector = Collector::start();
    let agent = Agent::start(&config(
        "grpc",
        &collector.grpc_endpoint(),
        "    timeout: 2s\n",
    ));
    let comm = unique_comm("gso-out");
    let before = testload_pid(&agent, &comm, &["getppid", "300"]);
    wait_number(
        &collector,
        "goroscope.syscalls",
        &[
            ("process.pid", before.as_str()),
            ("process.executable.name", comm.as_str()),
        ],
        &[("syscall", "getppid")],
        300.0,
    );
    collector.stop();
    let down_since = Instant::now();
    // Work done while the Collector is down: its counts wait in the queue.
    let during = testload_pid(&agent, &comm, &["getppid", "700"]);
    while down_since.elapsed() < Duration::from_secs(20) {
        thread::sleep(Duration::from_millis(500));
    }
    let text = agent.scrape();
    let retried = sample(
        &text,
        "goroscope_export_retried_requests_total",
        &[("signal", "metrics")],
    );
    assert!(
        retried.is_some_and(|n| n > 0.0),
        "no retries counted while the collector was down: {retried:?}"
    );
    collector.start_again();
    wait_number(
        &collector,
        "goroscope.syscalls",
        &[
            ("process.pid", during.as_str()),
            ("process.executable.name", comm.as_str()),
        ],
        &[("syscall", "getppid")],
        700.0,
    );
    // New work after the outage arrives too.
    let after = testload_pid(&agent, &comm, &["getppid", "50"]);
    wait_number(
        &collector,
        "goroscope.syscalls",
        &[
            ("process.pid", after.as_str()),
            ("process.executable.name", comm.as_str()),
        ],
        &[("syscall", "getppid")],
        50.0,
    );
    let text = agent.scrape();
    for reason in ["queue_full", "retries_exhausted", "not_retryable"] {
        assert_eq!(
            sample(
                &text,
                "goroscope_export_dropped_items_total",
                &[("signal", "metrics"), ("reason", reason)]
            ),
            Some(0.0),
            "metrics dropped for {reason} (20 s of exports fit the default queue)"
        );
    }
    agent.goroscope.stop_with(libc::SIGTERM).assert_code(0);
}

/// Profiles received for process `pid`: (samples, function names in the batches' dictionaries).
/// The Collector writes a profiles batch's resource attributes as references into the batch's
/// string table (`keyStrindex`, `stringValueStrindex`).
fn profiles_of(batches: &[Value], pid: u32) -> (usize, Vec<String>) {
    let mut samples = 0;
    let mut functions = Vec::new();
    for batch in batches {
        let strings: Vec<&str> = batch["dictionary"]["stringTable"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| s.as_str().unwrap_or_default())
            .collect();
        let text = |v: &Value| {
            v.as_str().map(str::to_owned).or_else(|| {
                as_u64(v).and_then(|i| strings.get(i as usize).map(|s| (*s).to_owned()))
            })
        };
        for rp in batch["resourceProfiles"].as_array().into_iter().flatten() {
            let ours = rp["resource"]["attributes"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|kv| {
                    let key = kv
                        .get("key")
                        .and_then(text)
                        .or_else(|| kv.get("keyStrindex").and_then(text));
                    key.as_deref() == Some("process.pid")
                        && kv["value"].get("intValue").and_then(as_u64) == Some(u64::from(pid))
                });
            if !ours {
                continue;
            }
            for sp in rp["scopeProfiles"].as_array().into_iter().flatten() {
                for profile in sp["profiles"].as_array().into_iter().flatten() {
                    samples += profile["samples"].as_array().map_or(0, Vec::len);
                }
            }
            for function in batch["dictionary"]["functionTable"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(name) = function.get("nameStrindex").and_then(text) {
                    functions.push(name);
                }
            }
        }
    }
    (samples, functions)
}

#[test]
fn continuous_profiles_arrive_per_process_and_a_reload_moves_the_export() {
    let toolchain = gotest::TOOLCHAINS[gotest::TOOLCHAINS.len() - 1];
    let cpuburn = gotest::build("cpuburn", toolchain, gotest::BuildMode::Stripped);
    let mut burner = KillOnDrop(
        Command::new(&cpuburn)
            .arg("split")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("starting cpuburn"),
    );
    let mut ready = [0u8; 64];
    let read = burner
        .0
        .stdout
        .as_mut()
        .map_or(0, |s| s.read(&mut ready).unwrap_or(0));
    assert!(
        String::from_utf8_lossy(&ready[..read]).contains("ready"),
        "cpuburn did not get ready"
    );
    let first = Collector::start();
    let profiled = "    signals: { metrics: true, logs: true, profiles: true }\n    \
                    profiles: { every: 3s, duration: 2s }\n";
    let agent = Agent::start(&config("http/protobuf", &first.http_endpoint(), profiled));
    let deadline = Instant::now() + SEEN_WITHIN;
    loop {
        let (samples, functions) =
            profiles_of(&first.received_of(otelcol::Signal::Profiles), burner.0.id());
        if samples > 0 && functions.iter().any(|f| f == "main.hot") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no CPU profile of cpuburn with main.hot arrived ({samples} samples; functions \
             {functions:?})\nagent:\n{}",
            agent.goroscope.stderr_so_far()
        );
        thread::sleep(Duration::from_millis(250));
    }

    // A reload that names a CA file that does not exist is refused; export goes on as before.
    let second = Collector::start();
    let bad = format!(
        "{}    tls: {{ ca_file: /nonexistent/goroscope-ca.pem }}\n",
        config("grpc", &second.grpc_endpoint(), "")
    );
    agent.reload(&bad);
    let deadline = Instant::now() + SEEN_WITHIN;
    while !agent.goroscope.stderr_so_far().contains("reload refused") {
        assert!(Instant::now() < deadline, "the bad reload was not refused");
        thread::sleep(Duration::from_millis(100));
    }
    // A good one moves every signal to the second collector, over gRPC.
    agent.reload(&config("grpc", &second.grpc_endpoint(), ""));
    let comm = unique_comm("gso-rel");
    let moved = testload_pid(&agent, &comm, &["getppid", "123"]);
    wait_number(
        &second,
        "goroscope.syscalls",
        &[
            ("process.pid", moved.as_str()),
            ("process.executable.name", comm.as_str()),
        ],
        &[("syscall", "getppid")],
        123.0,
    );
    assert!(
        points(&first.received())
            .iter()
            .all(|p| p.resource.get("process.pid") != Some(&moved)),
        "the first collector still got metrics after the reload"
    );
    let text = agent.scrape();
    assert_eq!(
        sample(
            &text,
            "goroscope_config_reloads_total",
            &[("result", "refused")]
        ),
        Some(1.0),
        "{text}"
    );
    drop(burner);
    agent.goroscope.stop_with(libc::SIGTERM).assert_code(0);
}
