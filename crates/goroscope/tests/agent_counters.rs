//! `goroscope agent` end to end, as root: counters that never go back and series that carry
//! the right cgroup. A collector turned off and on again by real SIGHUP reloads must continue
//! every counter it had (checked sample by sample and with Prometheus's own `resets()`), and
//! hundreds of processes that live far less than one collection interval, run inside a cgroup
//! made for the test, must all land in series labelled with that cgroup.

mod agent_support;
mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread;
use std::time::Duration;

use agent_support::{echo_server, named_testload, run_ok, sample, unique_comm, Agent, Prometheus};
use common::unique_temp_path;

/// How long PromQL may take to show a workload (1 s collection + 1 s scrape + slack).
const SEEN_WITHIN: Duration = Duration::from_secs(30);

/// Every monotonic sample of a scrape (counters, and histograms' buckets, counts and sums),
/// by its full series text (name and labels).
fn monotonic_samples(text: &str) -> HashMap<String, f64> {
    let mut kinds: HashMap<&str, &str> = HashMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            if let Some((name, kind)) = rest.split_once(' ') {
                kinds.insert(name, kind);
            }
        }
    }
    let mut out = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        let family = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|f| kinds.get(f) == Some(&"histogram"))
            })
            .unwrap_or(name);
        if matches!(kinds.get(family), Some(&"counter") | Some(&"histogram")) {
            out.insert(series.to_owned(), value.parse().unwrap_or(f64::NAN));
        }
    }
    out
}

/// Waits until `/metrics` has `name{labels}` (`Some`) or has no such sample (`None`).
#[track_caller]
fn wait_for(agent: &Agent, name: &str, labels: &[(&str, &str)], want: Option<f64>) -> String {
    let deadline = std::time::Instant::now() + SEEN_WITHIN;
    loop {
        let text = agent.scrape();
        let got = sample(&text, name, labels);
        if got == want {
            return text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{name}{labels:?} is {got:?}, expected {want:?}\nagent stderr:\n{}",
            agent.goroscope.stderr_so_far()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn counters_continue_across_a_collector_turned_off_and_on() {
    let all_on = "listen: 127.0.0.1:0\ninterval: 1s\ncollectors:\n  go: { enabled: false }\n";
    let all_off = "listen: 127.0.0.1:0\ninterval: 1s\ncollectors:\n  go: { enabled: false }\n  \
                   syscalls: { enabled: false }\n  files: { enabled: false }\n  \
                   processes: { enabled: false }\n  scheduler: { enabled: false }\n  \
                   tcp: { enabled: false }\n  network: { enabled: false }\n";
    let agent = Agent::start(all_on);
    let prometheus = Prometheus::start(agent.address);
    let work = unique_comm("gsc-work");
    let live = unique_comm("gsc-live");
    let program = named_testload(&work);
    let server = echo_server();
    run_ok(&program, &["getppid", "700"]);
    run_ok(&program, &["connect", &server.to_string(), "5"]);
    // A process alive across the whole off/on: what it counted before is carried.
    let sleeper = named_testload(&live);
    let sleeping = thread::spawn(move || run_ok(&sleeper, &["sleep", "20000"]));
    let calls = [("comm", work.as_str()), ("syscall", "getppid")];
    wait_for(&agent, "goroscope_syscalls_total", &calls, Some(700.0));
    let opened = [
        ("comm", work.as_str()),
        ("direction", "outbound"),
        ("event", "closed"),
    ];
    wait_for(
        &agent,
        "goroscope_tcp_connections_total",
        &opened,
        Some(5.0),
    );
    wait_for(
        &agent,
        "goroscope_process_execs_total",
        &[("comm", work.as_str())],
        Some(2.0),
    );
    wait_for(
        &agent,
        "goroscope_syscalls_total",
        &[("comm", live.as_str()), ("syscall", "execve")],
        Some(1.0),
    );
    // Let Prometheus scrape the values before they go away.
    thread::sleep(Duration::from_secs(3));
    let before = monotonic_samples(&agent.scrape());

    agent.reload(all_off);
    let reloaded = [("result", "applied")];
    wait_for(
        &agent,
        "goroscope_config_reloads_total",
        &reloaded,
        Some(1.0),
    );
    wait_for(&agent, "goroscope_syscalls_total", &calls, None);
    thread::sleep(Duration::from_secs(2));
    agent.reload(all_on);
    wait_for(
        &agent,
        "goroscope_config_reloads_total",
        &reloaded,
        Some(2.0),
    );
    let text = wait_for(
        &agent,
        "goroscope_probe_up",
        &[("probe", "syscalls")],
        Some(1.0),
    );
    assert_eq!(
        sample(&text, "goroscope_probe_up", &[("probe", "tcp")]),
        Some(1.0)
    );
    thread::sleep(Duration::from_secs(2));
    let after = monotonic_samples(&agent.scrape());

    // Sample by sample: the workloads' series and the agent's own counters are all back, none
    // lower than before.
    let ours = |series: &str| {
        series.contains(&format!("comm=\"{work}\""))
            || series.contains(&format!("comm=\"{live}\""))
            || series.starts_with("goroscope_events_dropped_total")
            || series.starts_with("goroscope_bpf_program_")
            || series.starts_with("goroscope_collection_errors_total")
    };
    let mut checked = 0;
    let mut problems = Vec::new();
    for (series, value) in before.iter().filter(|(s, _)| ours(s)) {
        checked += 1;
        match after.get(series) {
            None => problems.push(format!("{series}: was {value}, now missing")),
            Some(now) if now < value => problems.push(format!("{series}: {value} -> {now}")),
            Some(_) => {}
        }
    }
    assert!(checked > 50, "only {checked} series compared");
    assert!(
        problems.is_empty(),
        "{} of {checked} series went back or vanished:\n{}",
        problems.len(),
        problems.join("\n")
    );

    // Both kinds keep counting from where they were.
    run_ok(&program, &["getppid", "300"]);
    wait_for(&agent, "goroscope_syscalls_total", &calls, Some(1000.0));
    sleeping.join().expect("the sleeper ran");
    wait_for(
        &agent,
        "goroscope_process_exits_total",
        &[("comm", live.as_str()), ("status", "0")],
        Some(1.0),
    );

    // Prometheus's own view over the whole run, family by family (resets() drops the name):
    // no counter of these workloads reset.
    let mut names: Vec<&str> = before
        .keys()
        .filter(|s| ours(s) && s.contains("comm="))
        .filter_map(|s| s.split('{').next())
        .collect();
    names.sort_unstable();
    names.dedup();
    assert!(names.len() > 10, "too few families: {names:?}");
    let selector = format!(r#"comm=~"{work}|{live}""#);
    for name in names {
        let count = prometheus.query(&format!("count({name}{{{selector}}})"));
        assert!(
            count.first().is_some_and(|(_, n)| *n > 0.0),
            "Prometheus has no {name} of the workloads: {count:?}"
        );
        let resets = prometheus.query(&format!("sum(resets({name}{{{selector}}}[5m]))"));
        assert!(
            resets.len() == 1 && resets[0].1 == 0.0,
            "{name} reset in Prometheus: {resets:?}"
        );
    }
    agent.goroscope.stop_with(libc::SIGTERM).assert_code(0);
}

/// A cgroup v2 directory made for one test, removed (after its processes are gone) on drop.
struct TestCgroup {
    dir: PathBuf,
    path: String,
}

impl TestCgroup {
    /// Makes `name` at the top of the cgroup v2 hierarchy (`/sys/fs/cgroup`, or
    /// `/sys/fs/cgroup/unified` on a hybrid host).
    #[track_caller]
    fn new(name: &str) -> TestCgroup {
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("reading mountinfo");
        let root = mountinfo
            .lines()
            .filter_map(|l| l.split_once(" - "))
            .filter(|(_, fs)| fs.starts_with("cgroup2 "))
            .filter_map(|(mount, _)| mount.split(' ').nth(4))
            .map(PathBuf::from)
            .min_by_key(|p| p != Path::new("/sys/fs/cgroup"))
            .unwrap_or_else(|| panic!("no cgroup2 file system is mounted:\n{mountinfo}"));
        assert!(
            root.join("cgroup.procs").is_file(),
            "{} is not a cgroup v2 root",
            root.display()
        );
        let dir = root.join(name);
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("creating cgroup {}: {e}", dir.display()));
        TestCgroup {
            path: format!("/{name}"),
            dir,
        }
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
    }
}

#[test]
fn short_lived_processes_keep_their_cgroup() {
    const RUNS: u32 = 300;
    let agent = Agent::start(
        "listen: 127.0.0.1:0\ninterval: 1s\ncollectors:\n  go: { enabled: false }\n\
         labels: [comm, cgroup]\n",
    );
    let cgroup = TestCgroup::new(&format!("goroscope-test-{}", std::process::id()));
    // `true` under a name of its own: each run lives well under a millisecond.
    let comm = unique_comm("gsc-true");
    let dir = unique_temp_path("true");
    std::fs::create_dir_all(&dir).expect("creating a directory for true");
    let quick = dir.join(&comm);
    std::fs::copy("/bin/true", &quick).expect("copying /bin/true");
    // The spawner moves itself into the cgroup first; its children start there.
    let script = format!(
        "echo $$ > {procs} && i=0; while [ $i -lt {RUNS} ]; do {quick}; i=$((i+1)); done",
        procs = cgroup.dir.join("cgroup.procs").display(),
        quick = quick.display()
    );
    let status = Command::new("/bin/sh")
        .args(["-c", &script])
        .status()
        .expect("running the spawner");
    assert!(status.success(), "the spawner failed: {status}");

    let deadline = std::time::Instant::now() + SEEN_WITHIN;
    loop {
        let text = agent.scrape();
        let execs = [("comm", comm.as_str()), ("cgroup", cgroup.path.as_str())];
        if sample(&text, "goroscope_process_execs_total", &execs) == Some(f64::from(RUNS)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not {RUNS} execs of {comm} in {}:\n{}\nagent stderr:\n{}",
            cgroup.path,
            text.lines()
                .filter(|l| l.contains(&format!("comm=\"{comm}\""))
                    || l.starts_with("goroscope_events_dropped_total"))
                .collect::<Vec<_>>()
                .join("\n"),
            agent.goroscope.stderr_so_far()
        );
        thread::sleep(Duration::from_millis(200));
    }
    let exits = [
        ("comm", comm.as_str()),
        ("cgroup", cgroup.path.as_str()),
        ("status", "0"),
    ];
    wait_for(
        &agent,
        "goroscope_process_exits_total",
        &exits,
        Some(f64::from(RUNS)),
    );
    // Every run's exit_group, in the test's cgroup (rows of the last runs are placed a cycle
    // later).
    let exit_group = [
        ("comm", comm.as_str()),
        ("cgroup", cgroup.path.as_str()),
        ("syscall", "exit_group"),
    ];
    let deadline = std::time::Instant::now() + SEEN_WITHIN;
    loop {
        let text = agent.scrape();
        if sample(&text, "goroscope_syscalls_total", &exit_group) == Some(f64::from(RUNS)) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not {RUNS} exit_group of {comm} in {}:\n{}\nagent stderr:\n{}",
            cgroup.path,
            text.lines()
                .filter(|l| (l.contains(&format!("comm=\"{comm}\""))
                    && l.contains("syscall=\"exit_group\""))
                    || (l.starts_with("goroscope_events_dropped_total") && !l.ends_with(" 0")))
                .collect::<Vec<_>>()
                .join("\n"),
            agent.goroscope.stderr_so_far()
        );
        thread::sleep(Duration::from_millis(200));
    }
    // Rows whose place is still unknown wait up to five cycles before they are retired
    // without one: look after that.
    thread::sleep(Duration::from_secs(7));
    let text = agent.scrape();
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(&format!("comm=\"{comm}\"")))
        .collect();
    assert!(
        ours.len() > 10,
        "too few series of {comm}:\n{}",
        ours.join("\n")
    );
    let elsewhere: Vec<&&str> = ours
        .iter()
        .filter(|l| !l.contains(&format!("cgroup=\"{}\"", cgroup.path)))
        .collect();
    assert!(
        elsewhere.is_empty(),
        "series of {comm} outside {}:\n{}",
        cgroup.path,
        elsewhere
            .iter()
            .map(|l| l.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
    agent.goroscope.stop_with(libc::SIGTERM).assert_code(0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn idle_tcp_edges_age_out_and_their_series_end() {
    let me = std::process::id();
    let agent = Agent::start(&format!(
        "listen: 127.0.0.1:0\ninterval: 1s\ncollectors:\n  go: {{ enabled: false }}\n  \
         tcp: {{ enabled: true, edges: true, edge_idle: 3s }}\nlabels: [comm, pid]\n\
         targets: {{ pids: [{me}] }}\n"
    ));
    let server = echo_server();
    let connect = |n: u32| {
        for _ in 0..n {
            let mut stream = std::net::TcpStream::connect(server).expect("connecting");
            stream.write_all(b"hello").expect("writing");
            stream
                .shutdown(std::net::Shutdown::Write)
                .expect("shutting down");
            let mut answer = Vec::new();
            stream.read_to_end(&mut answer).expect("reading the answer");
        }
    };
    connect(3);
    let pid = me.to_string();
    let port = server.port().to_string();
    let edge = [
        ("pid", pid.as_str()),
        ("direction", "outbound"),
        ("port", port.as_str()),
    ];
    let opened = [
        ("pid", pid.as_str()),
        ("direction", "outbound"),
        ("event", "opened"),
    ];
    wait_for(
        &agent,
        "goroscope_tcp_edge_connections_total",
        &edge,
        Some(3.0),
    );
    // Unused for longer than edge_idle: out of the kernel map, and its series ends; the
    // process's connection counters are untouched.
    let text = wait_for(&agent, "goroscope_tcp_edge_connections_total", &edge, None);
    assert!(
        sample(&text, "goroscope_tcp_edges_aged_out_total", &[]).is_some_and(|n| n >= 1.0),
        "no edge counted as aged out"
    );
    // (The test's scrapes are connections of this process too: at least ours.)
    let opened_before = sample(&text, "goroscope_tcp_connections_total", &opened);
    assert!(opened_before.is_some_and(|n| n >= 3.0), "{opened_before:?}");
    // Used again: a new series from zero.
    connect(1);
    let text = wait_for(
        &agent,
        "goroscope_tcp_edge_connections_total",
        &edge,
        Some(1.0),
    );
    let opened_after = sample(&text, "goroscope_tcp_connections_total", &opened);
    assert!(
        opened_after >= opened_before.map(|n| n + 1.0),
        "{opened_before:?} -> {opened_after:?}"
    );
    agent.goroscope.stop_with(libc::SIGTERM).assert_code(0);
}

#[test]
fn changing_timed_calls_restarts_syscalls_with_its_counters() {
    let base = "listen: 127.0.0.1:0\ninterval: 1s\ncollectors:\n  go: { enabled: false }\n  \
                tcp: { enabled: false }\n  network: { enabled: false }\n";
    let agent = Agent::start(base);
    let work = unique_comm("gst-work");
    let program = named_testload(&work);
    run_ok(&program, &["getppid", "500"]);
    let calls = [("comm", work.as_str()), ("syscall", "getppid")];
    wait_for(&agent, "goroscope_syscalls_total", &calls, Some(500.0));
    let text = agent.scrape();
    let timed_before = sample(&text, "goroscope_syscall_duration_seconds_count", &calls)
        .unwrap_or_else(|| panic!("no latency histogram for {work}'s getppid:\n{text}"));

    // Every call timed from now on: the collector restarts, its counters continue.
    agent.reload(&format!("{base}  syscalls: {{ timed_calls: all }}\n"));
    wait_for(
        &agent,
        "goroscope_config_reloads_total",
        &[("result", "applied")],
        Some(1.0),
    );
    wait_for(
        &agent,
        "goroscope_probe_up",
        &[("probe", "syscalls")],
        Some(1.0),
    );
    let text = agent.scrape();
    assert_eq!(
        sample(&text, "goroscope_syscalls_total", &calls),
        Some(500.0),
        "the count went back or vanished across the restart"
    );

    run_ok(&program, &["getppid", "300"]);
    let text = wait_for(&agent, "goroscope_syscalls_total", &calls, Some(800.0));
    // The 300 new calls were each timed: the histogram grew by exactly 300.
    let timed_after = sample(&text, "goroscope_syscall_duration_seconds_count", &calls);
    assert_eq!(
        timed_after,
        Some(timed_before + 300.0),
        "histogram count before {timed_before}, after {timed_after:?}"
    );
}
