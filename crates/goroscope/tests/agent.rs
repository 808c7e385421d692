//! `goroscope agent` end to end, as root: a real Prometheus server (Debian's package, started
//! here on loopback) scrapes the agent while known workloads run, and PromQL queries through
//! its HTTP API must see exactly what the workloads did. Also: promtool accepts the output,
//! content negotiation, config reloads (valid and invalid), `--check` errors, bad input.

mod agent_support;
mod common;

use std::net::TcpListener;
use std::thread;
use std::time::{Duration, Instant};

use agent_support::{
    echo_server, http_get, leaky_named, named_testload, promtool_check, run_ok, sample,
    unique_comm, Agent, LeakyCopy, Prometheus,
};
use common::{run_goroscope, Finished};

/// How long PromQL may take to show a workload (1 s collection + 1 s scrape + slack).
const SEEN_WITHIN: Duration = Duration::from_secs(30);

/// Config for the tests: 1 s collection on a free port; Go off unless a test turns it on.
fn config(extra: &str) -> String {
    format!("listen: 127.0.0.1:0\ninterval: 1s\n{extra}")
}

const GO_OFF: &str = "collectors:\n  go: { enabled: false }\n";

#[test]
fn prometheus_sees_exactly_what_a_workload_did() {
    // A server listening before the agent starts (as every real service is): its listen() is
    // never seen, the agent finds it in /proc, and its accepted connections count.
    let early_server = echo_server();
    // Every call timed, so the latency histogram's count is exact too (sampling is tested in
    // goroscope-bpf's syscall_sampling tests).
    let agent = Agent::start(&config(
        "collectors:\n  go: { enabled: false }\n  network: { exclude: [] }\n  \
         syscalls: { timed_calls: all }\n",
    ));
    let prometheus = Prometheus::start(agent.address);
    // A process that lives across several collections, then exits: its series must neither
    // reset nor split when it is retired.
    let sleeper_comm = unique_comm("gsa-slp");
    let sleeper = named_testload(&sleeper_comm);
    let sleeping = thread::spawn(move || run_ok(&sleeper, &["sleep", "3500"]));
    let comm = unique_comm("gsa-work");
    let program = named_testload(&comm);
    let server = echo_server();
    run_ok(&program, &["connect", &server.to_string(), "20"]);
    let early_client = unique_comm("gsa-early");
    run_ok(
        &named_testload(&early_client),
        &["connect", &early_server.to_string(), "7"],
    );
    run_ok(&program, &["getppid", "1000"]);
    run_ok(
        &program,
        &["open-missing", "/nonexistent/goroscope-agent-test", "30"],
    );

    let q =
        |promql: String, expected: f64| prometheus.wait_for_value(&promql, expected, SEEN_WITHIN);
    let c = &comm;
    q(
        format!(
            r#"sum(goroscope_tcp_connections_total{{comm="{c}",direction="outbound",event="opened"}})"#
        ),
        20.0,
    );
    q(
        format!(
            r#"sum(goroscope_tcp_connections_total{{comm="{c}",direction="outbound",event="closed"}})"#
        ),
        20.0,
    );
    q(
        format!(r#"sum(goroscope_tcp_bytes_total{{comm="{c}",traffic="sent"}})"#),
        2000.0,
    );
    q(
        format!(r#"sum(goroscope_tcp_bytes_total{{comm="{c}",traffic="received"}})"#),
        1000.0,
    );
    q(
        format!(
            r#"sum(goroscope_tcp_connection_duration_seconds_count{{comm="{c}",direction="outbound"}})"#
        ),
        20.0,
    );
    q(
        format!(r#"sum(goroscope_tcp_connect_latency_seconds_count{{comm="{c}"}})"#),
        20.0,
    );
    q(
        format!(r#"sum(goroscope_tcp_rtt_seconds_count{{comm="{c}",direction="outbound"}})"#),
        20.0,
    );
    q(
        format!(r#"sum(goroscope_tcp_connect_failures_total{{comm="{c}"}})"#),
        0.0,
    );
    q(
        format!(
            r#"sum(goroscope_tcp_edge_connections_total{{comm="{c}",direction="outbound",remote="127.0.0.1",port="{}"}})"#,
            server.port()
        ),
        20.0,
    );
    // The port is this test's alone (other tests' agents see other servers of this process).
    q(
        format!(
            r#"sum(goroscope_tcp_edge_connections_total{{direction="inbound",remote="127.0.0.1",port="{}"}})"#,
            early_server.port()
        ),
        7.0,
    );
    q(
        format!(
            r#"sum(goroscope_tcp_edge_connections_total{{comm="{early_client}",direction="outbound",port="{}"}})"#,
            early_server.port()
        ),
        7.0,
    );
    q(
        format!(r#"sum(goroscope_syscalls_total{{comm="{c}",syscall="getppid"}})"#),
        1000.0,
    );
    q(
        format!(r#"sum(goroscope_syscall_duration_seconds_count{{comm="{c}",syscall="getppid"}})"#),
        1000.0,
    );
    q(
        format!(
            r#"sum(goroscope_syscall_errors_total{{comm="{c}",syscall="openat",errno="ENOENT"}})"#
        ),
        30.0,
    );
    q(
        format!(r#"sum(goroscope_file_opens_total{{comm="{c}",result="ENOENT"}})"#),
        30.0,
    );
    q(
        format!(r#"sum(goroscope_process_execs_total{{comm="{c}"}})"#),
        3.0,
    );
    q(
        format!(r#"sum(goroscope_process_exits_total{{comm="{c}",status="0"}})"#),
        3.0,
    );
    // The workload slept in connect and read: its threads switched voluntarily.
    q(
        format!(r#"sum(goroscope_context_switches_total{{comm="{c}",kind="voluntary"}}) > bool 0"#),
        1.0,
    );
    q(
        format!(r#"sum(goroscope_runqueue_latency_seconds_count{{comm="{c}"}}) > bool 0"#),
        1.0,
    );
    q(
        format!(r#"sum(goroscope_offcpu_seconds_total{{comm="{c}"}}) > bool 0"#),
        1.0,
    );
    q(
        r#"sum(goroscope_network_packets_total{interface="lo",direction="receive"}) > bool 0"#
            .into(),
        1.0,
    );
    q(r#"count(goroscope_probe_up == 1)"#.into(), 5.0);
    q(
        r#"sum(goroscope_events_dropped_total{stage="kernel"})"#.into(),
        0.0,
    );
    q(r#"up{job="goroscope"}"#.into(), 1.0);
    sleeping.join().expect("the sleeper ran");
    let s = &sleeper_comm;
    q(
        format!(r#"sum(goroscope_process_exits_total{{comm="{s}",status="0"}})"#),
        1.0,
    );
    q(
        format!(r#"count(goroscope_syscalls_total{{comm="{s}",syscall="nanosleep"}})"#),
        1.0,
    );
    // Scraped alive for ~3 s, then retired: still one series, never reset.
    thread::sleep(Duration::from_secs(3));
    q(
        format!(r#"max(resets(goroscope_syscalls_total{{comm="{s}"}}[5m]))"#),
        0.0,
    );
    q(
        format!(r#"count(goroscope_syscalls_total{{comm="{s}",syscall="nanosleep"}})"#),
        1.0,
    );
    q(
        format!(r#"max(resets(goroscope_context_switches_total{{comm="{s}"}}[5m]))"#),
        0.0,
    );
    let finished = agent.goroscope.stop_with(libc::SIGTERM);
    finished.assert_code(0);
    drop(prometheus);
}

#[test]
fn metrics_pass_promtool_and_openmetrics_is_negotiated() {
    // A Go program and a TCP workload, so that every family has samples.
    let leaky = LeakyCopy::start("gsa-prom");
    let agent = Agent::start(&config(
        "collectors:\n  go: { interval: 500ms, discover_every: 1s, leak_after: 1s }\n",
    ));
    let program = named_testload(&unique_comm("gsa-prom-w"));
    run_ok(&program, &["connect", &echo_server().to_string(), "3"]);
    wait_sample(
        &agent,
        "goroscope_go_processes",
        &[("comm", leaky.comm.as_str())],
        1.0,
    );
    thread::sleep(Duration::from_millis(1500));
    let text = agent.scrape();
    let (ok, said) = promtool_check(&text);
    assert!(
        ok && said.trim().is_empty(),
        "promtool check metrics complained:\n{said}"
    );
    for family in [
        "goroscope_syscalls_total",
        "goroscope_syscall_errors_total",
        "goroscope_syscall_duration_seconds",
        "goroscope_process_execs_total",
        "goroscope_process_exits_total",
        "goroscope_file_opens_total",
        "goroscope_runqueue_latency_seconds",
        "goroscope_context_switches_total",
        "goroscope_offcpu_seconds_total",
        "goroscope_tcp_connections_total",
        "goroscope_tcp_connection_duration_seconds",
        "goroscope_tcp_bytes_total",
        "goroscope_tcp_retransmits_total",
        "goroscope_tcp_rtt_seconds",
        "goroscope_tcp_connect_failures_total",
        "goroscope_network_packets_total",
        "goroscope_network_bytes_total",
        "goroscope_go_goroutines",
        "goroscope_go_runtime_goroutines",
        "goroscope_go_goroutines_created_total",
        "goroscope_go_leak_suspects",
        "goroscope_go_gc_pause_seconds",
        "goroscope_go_heap_bytes",
        "goroscope_events_dropped_total",
        "goroscope_probe_up",
        "goroscope_bpf_program_cpu_seconds_total",
        "goroscope_agent_resident_memory_bytes",
    ] {
        let declared = text
            .lines()
            .any(|l| l.starts_with("# TYPE ") && l.split_whitespace().nth(2) == Some(family));
        assert!(declared, "no `# TYPE {family}` in /metrics");
    }
    assert!(
        sample(&text, "goroscope_agent_resident_memory_bytes", &[]).is_some_and(|v| v > 1e6),
        "no plausible RSS in /metrics"
    );

    // Prometheus 2.x's own Accept header asks for OpenMetrics first.
    let accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let om = http_get(agent.address, "/metrics", Some(accept));
    assert_eq!(om.status, 200);
    assert!(
        om.content_type.starts_with("application/openmetrics-text"),
        "content type {:?}",
        om.content_type
    );
    assert!(
        om.body.ends_with("# EOF\n"),
        "OpenMetrics must end with # EOF"
    );
    assert!(om.body.contains("# TYPE goroscope_syscalls counter"));
    let plain = http_get(agent.address, "/metrics", Some("text/plain"));
    assert!(
        plain.content_type.starts_with("text/plain; version=0.0.4"),
        "{}",
        plain.content_type
    );
    assert!(!plain.body.contains("# EOF"));
    assert_eq!(http_get(agent.address, "/healthz", None).status, 200);
    assert_eq!(http_get(agent.address, "/readyz", None).status, 200);
    assert_eq!(http_get(agent.address, "/nothing-here", None).status, 404);
    agent.goroscope.stop_with(libc::SIGTERM).assert_code(0);
}

/// Polls /metrics until `name{labels}` equals `expected`.
#[track_caller]
fn wait_sample(agent: &Agent, name: &str, labels: &[(&str, &str)], expected: f64) -> String {
    let deadline = Instant::now() + SEEN_WITHIN;
    loop {
        let text = agent.scrape();
        let value = sample(&text, name, labels);
        if value == Some(expected) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{name}{labels:?} is {value:?}, expected {expected}\nlosses:\n{}\nagent stderr:\n{}",
            text.lines()
                .filter(|l| l.starts_with("goroscope_events_dropped_total{") && !l.ends_with(" 0"))
                .collect::<Vec<_>>()
                .join("\n"),
            agent.goroscope.stderr_so_far()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn reload_applies_a_valid_file_keeps_counters_and_refuses_an_invalid_one() {
    let comm = unique_comm("gsa-reload");
    let agent = Agent::start(&config(&format!("{GO_OFF}labels: [comm]\n")));
    let program = named_testload(&comm);
    run_ok(&program, &["getppid", "700"]);
    let calls = [("comm", comm.as_str()), ("syscall", "getppid")];
    let text = wait_sample(&agent, "goroscope_syscalls_total", &calls, 700.0);
    let bounds_before = bucket_bounds(&text, &comm);

    // A valid file: TCP off, finer buckets, only this comm. Counters carry on.
    agent.reload(&config(&format!(
        "collectors:\n  go: {{ enabled: false }}\n  tcp: {{ enabled: false }}\nlabels: [comm]\n\
         histograms: {{ buckets_per_octave: 2 }}\ntargets:\n  comms: [\"{comm}\"]\n"
    )));
    let text = wait_sample(
        &agent,
        "goroscope_config_reloads_total",
        &[("result", "applied")],
        1.0,
    );
    assert_eq!(
        sample(&text, "goroscope_syscalls_total", &calls),
        Some(700.0),
        "a reload reset the counter"
    );
    run_ok(&program, &["getppid", "300"]);
    let text = wait_sample(&agent, "goroscope_syscalls_total", &calls, 1000.0);
    assert!(
        !text.contains("goroscope_tcp_connections_total{"),
        "TCP series remain after turning the collector off"
    );
    assert_eq!(
        sample(&text, "goroscope_probe_up", &[("probe", "tcp")]),
        None
    );
    let other_comms = text
        .lines()
        .filter(|l| {
            l.starts_with("goroscope_syscalls_total{") && !l.contains(&format!("comm=\"{comm}\""))
        })
        .count();
    assert_eq!(other_comms, 0, "targets.comms did not restrict the series");
    // Between the default 1 µs and 100 s, one bound per octave is 2^10..=2^36 ns (27 bounds);
    // two per octave are 2^(j/2) ns for j in 20..=73 (54 bounds, 2^36.5 ns = 97 s included).
    assert_eq!(bounds_before, 27, "one bound per octave by default");
    assert_eq!(
        bucket_bounds(&text, &comm),
        54,
        "buckets_per_octave: 2 did not take effect"
    );

    // An invalid file: refused, said, counted; the running config stays.
    agent.reload("listen: 127.0.0.1:0\ninterval: 1s\ncollectors:\n  tcp: { enabled: maybe }\n");
    let text = wait_sample(&agent, "goroscope_config_last_reload_successful", &[], 0.0);
    assert_eq!(
        sample(
            &text,
            "goroscope_config_reloads_total",
            &[("result", "refused")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "goroscope_probe_up", &[("probe", "tcp")]),
        None,
        "the invalid file was applied"
    );
    let stderr = agent.goroscope.stderr_so_far();
    assert!(
        stderr.contains("reload refused")
            && stderr.contains(":4:")
            && stderr.contains("collectors.tcp.enabled"),
        "the refusal must point at line 4 and the field:\n{stderr}"
    );
    run_ok(&program, &["getppid", "5"]);
    wait_sample(&agent, "goroscope_syscalls_total", &calls, 1005.0);
    agent.goroscope.stop_with(libc::SIGTERM).assert_code(0);
}

#[test]
fn go_processes_are_found_and_their_goroutines_exported() {
    let leaky = LeakyCopy::start("gsa-leaky");
    let comm = leaky.comm.clone();
    let agent = Agent::start(&config(
        "collectors:\n  go: { interval: 500ms, discover_every: 1s, leak_after: 1s }\n",
    ));
    let by = |reason: &'static str| [("comm", comm.as_str()), ("wait_reason", reason)];
    let text = wait_sample(
        &agent,
        "goroscope_go_goroutines_waiting",
        &by("chan send"),
        37.0,
    );
    // 19 planted, plus whatever the runtime and main wait in select.
    let select = sample(&text, "goroscope_go_goroutines_waiting", &by("select"));
    assert!(select.is_some_and(|n| n >= 19.0), "select: {select:?}");
    let created = sample(
        &text,
        "goroscope_go_goroutines_created_total",
        &[("comm", comm.as_str())],
    );
    assert!(
        created.is_some_and(|v| v >= 118.0),
        "created_total {created:?}"
    );
    // What the process is, and which process: its name is unique and short, so the
    // executable is the comm.
    let pid = leaky.pid();
    assert_eq!(
        sample(
            &text,
            "goroscope_go_gomaxprocs",
            &[
                ("service", "example.com/leaky"),
                ("executable", comm.as_str()),
                ("comm", comm.as_str()),
                ("pid", pid.as_str()),
            ]
        ),
        Some(2.0),
        "GOMAXPROCS of pid {pid}"
    );
    // After leak_after, the planted chan-send goroutines form a suspect group of exactly 37.
    let deadline = Instant::now() + SEEN_WITHIN;
    loop {
        let text = agent.scrape();
        let suspects: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.starts_with("goroscope_go_leak_suspects{")
                    && l.contains(&format!("comm=\"{comm}\""))
            })
            .collect();
        if suspects.iter().any(|l| {
            l.contains("wait_reason=\"chan send\"")
                && l.contains("evidence=\"stuck")
                && l.contains("main.go:")
                && l.ends_with(" 37")
        }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no chan-send suspect of 37 in:\n{}",
            suspects.join("\n")
        );
        thread::sleep(Duration::from_millis(300));
    }
    assert!(
        sample(
            &text,
            "goroscope_go_heap_bytes",
            &[("comm", comm.as_str()), ("kind", "live")]
        )
        .is_some_and(|v| v > 0.0),
        "no live heap for the Go process"
    );
    assert!(
        text.contains("goroscope_go_gc_pause_seconds_bucket{"),
        "no GC pause histogram"
    );
    agent.goroscope.stop_with(libc::SIGTERM).assert_code(0);
}

#[test]
fn go_processes_are_told_apart_and_only_their_counters_add_up() {
    // Two names whose first 15 bytes, the comm, are the same: only `executable` tells them
    // apart. The first runs twice: two processes of one executable.
    let stem = format!("gsa-ident-{:05}", std::process::id() % 100_000);
    let (exe_one, exe_two) = (format!("{stem}-one"), format!("{stem}-two"));
    let one = leaky_named(&exe_one);
    let first = LeakyCopy::run(&one, 1, &[]);
    let second = LeakyCopy::run(&one, 2, &[]);
    let other = LeakyCopy::run(&leaky_named(&exe_two), 2, &[]);
    assert!(
        first.comm == stem && other.comm == stem,
        "comm is cut to 15 bytes"
    );
    let agent = Agent::start(&config(
        "collectors:\n  go: { interval: 500ms, discover_every: 1s, leak_after: 1s }\n",
    ));
    let prometheus = Prometheus::start(agent.address);
    let q =
        |promql: String, expected: f64| prometheus.wait_for_value(&promql, expected, SEEN_WITHIN);
    let one = format!(r#"service="example.com/leaky",executable="{exe_one}""#);

    // Gauges: one series per process, each with its own value, whatever `labels` says.
    q(format!("count(goroscope_go_gomaxprocs{{{one}}})"), 2.0);
    q(
        format!("count(count by (pid) (goroscope_go_gomaxprocs{{{one}}}))"),
        2.0,
    );
    let (p1, p2) = (first.pid(), second.pid());
    q(
        format!(r#"goroscope_go_gomaxprocs{{{one},pid="{p1}"}}"#),
        1.0,
    );
    q(
        format!(r#"goroscope_go_gomaxprocs{{{one},pid="{p2}"}}"#),
        2.0,
    );
    for p in [&p1, &p2] {
        let at = format!(r#"{one},pid="{p}""#);
        q(
            format!(r#"goroscope_go_goroutines_waiting{{{at},wait_reason="chan send"}}"#),
            37.0,
        );
        q(
            format!("sum(goroscope_go_goroutines{{{at}}}) >= bool 118"),
            1.0,
        );
        q(
            format!("goroscope_go_runtime_goroutines{{{at}}} > bool 0"),
            1.0,
        );
        q(
            format!(r#"goroscope_go_heap_bytes{{{at},kind="live"}} > bool 0"#),
            1.0,
        );
        q(
            format!(r#"goroscope_go_heap_bytes{{{at},kind="goal"}} > bool 0"#),
            1.0,
        );
        q(
            format!(r#"count(goroscope_go_runqueue_goroutines{{{at}}})"#),
            2.0,
        );
    }

    // Counters: one series for both processes (no pid configured), their sum: each created
    // at least the 118 goroutines it planted.
    q(
        format!("count(goroscope_go_goroutines_created_total{{{one}}})"),
        1.0,
    );
    q(
        format!(r#"count(goroscope_go_goroutines_created_total{{{one},pid!=""}}) or vector(0)"#),
        0.0,
    );
    q(
        format!("goroscope_go_goroutines_created_total{{{one}}} >= bool 236"),
        1.0,
    );
    q(format!("sum(goroscope_go_processes{{{one}}})"), 2.0);
    q(format!("count(goroscope_go_gc_cycles_total{{{one}}})"), 1.0);
    q(
        format!("count(goroscope_go_gc_pause_seconds_count{{{one}}})"),
        1.0,
    );

    // One comm, two executables: told apart.
    let both = format!(r#"service="example.com/leaky",executable=~"{exe_one}|{exe_two}""#);
    q(
        format!("count(count by (comm) (goroscope_go_gomaxprocs{{{both}}}))"),
        1.0,
    );
    q(
        format!("count(count by (executable) (goroscope_go_gomaxprocs{{{both}}}))"),
        2.0,
    );
    q(
        format!("count(goroscope_go_goroutines_created_total{{{both}}})"),
        2.0,
    );
    q(
        format!(
            r#"goroscope_go_gomaxprocs{{executable="{exe_two}",pid="{}"}}"#,
            other.pid()
        ),
        2.0,
    );

    // One process ends: its gauges go, the counters keep what it counted and never go back.
    let created = format!("goroscope_go_goroutines_created_total{{{one}}}");
    let before = prometheus.query(&created);
    assert_eq!(before.len(), 1, "{before:?}");
    drop(second);
    q(format!("sum(goroscope_go_processes{{{one}}})"), 1.0);
    q(format!("count(goroscope_go_gomaxprocs{{{one}}})"), 1.0);
    q(
        format!(r#"goroscope_go_gomaxprocs{{{one},pid="{p1}"}}"#),
        1.0,
    );
    q(format!("{created} >= bool {}", before[0].1), 1.0);
    for counter in [
        "goroscope_go_goroutines_created_total",
        "goroscope_go_gc_cycles_total",
        "goroscope_go_gc_pause_seconds_count",
    ] {
        q(format!("count({counter}{{{one}}})"), 1.0);
        q(format!("max(resets({counter}{{{one}}}[5m]))"), 0.0);
    }
    drop(first);
    drop(other);
    agent.goroscope.stop_with(libc::SIGTERM).assert_code(0);
    drop(prometheus);
}

/// How many finite `le` bounds the getppid duration histogram of `comm` has.
fn bucket_bounds(text: &str, comm: &str) -> usize {
    text.lines()
        .filter(|l| {
            l.starts_with("goroscope_syscall_duration_seconds_bucket{")
                && l.contains(&format!("comm=\"{comm}\""))
                && l.contains("syscall=\"getppid\"")
                && !l.contains("+Inf")
        })
        .count()
}

/// `agent --check --config FILE` with `yaml` in FILE.
fn check(yaml: &str) -> (Finished, String) {
    let path = common::unique_temp_path("check").with_extension("yaml");
    std::fs::write(&path, yaml).expect("writing a config");
    let path_text = path.to_str().expect("utf-8 path").to_owned();
    let finished = run_goroscope(
        &["agent", "--check", "--config", &path_text],
        Duration::from_secs(20),
    );
    (finished, path_text)
}

#[test]
fn check_accepts_the_example_and_points_at_each_error() {
    let example = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/agent.example.yaml"
    );
    let finished = run_goroscope(
        &["agent", "--check", "--config", example],
        Duration::from_secs(20),
    );
    finished.assert_code(0);
    assert!(finished.stdout.contains("valid"), "{}", finished.stdout);

    for (yaml, line, field) in [
        (
            "interval: 5s\ncollectors:\n  tpc: { enabled: true }\n",
            3,
            "collectors.tpc",
        ),
        ("interval: soon\n", 1, "interval"),
        ("labels: [comm, pod]\n", 1, "labels"),
        (
            "collectors:\n  tcp:\n    enabled: maybe\n",
            3,
            "collectors.tcp.enabled",
        ),
        (
            "histograms:\n  buckets_per_octave: 3\n",
            2,
            "histograms.buckets_per_octave",
        ),
        ("listen: localhost-ish\n", 1, "listen"),
        // An unclosed bracket: where it opens, not where the parser gave up (line 4).
        (
            "interval: 5s\ncollectors:\n  tcp: [oops\n",
            3,
            "collectors.tcp: unclosed '['",
        ),
    ] {
        let (finished, path) = check(yaml);
        finished.assert_code(2);
        let expected = format!("{path}:{line}:");
        assert!(
            finished.stderr.contains(&expected) && finished.stderr.contains(field),
            "for {yaml:?} expected `{expected}` and `{field}` in:\n{}",
            finished.stderr
        );
    }
    let finished = run_goroscope(
        &[
            "agent",
            "--check",
            "--config",
            "/nonexistent/goroscope.yaml",
        ],
        Duration::from_secs(20),
    );
    finished.assert_code(2);
    assert!(
        finished.stderr.contains("/nonexistent/goroscope.yaml"),
        "{}",
        finished.stderr
    );
}

#[test]
fn a_taken_port_is_refused_before_anything_is_attached() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("binding");
    let address = taken.local_addr().expect("address").to_string();
    let finished = run_goroscope(&["agent", "--listen", &address], Duration::from_secs(20));
    finished.assert_code(2);
    assert!(
        finished.stderr.contains("cannot listen on") && finished.stderr.contains("--listen"),
        "{}",
        finished.stderr
    );
    assert!(!finished.stderr.contains("attached"), "{}", finished.stderr);
}
