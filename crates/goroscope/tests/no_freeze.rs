//! The agent and the commands under what production throws at them, with real BPF programs and
//! real sockets: a storm of SIGHUPs (collection keeps its cadence, /healthz stays 200), thousands
//! of idle connections under a soft fd limit of 1,024 (/healthz, /metrics and collection go on,
//! idle ones are closed), and SIGINT/SIGTERM while stdout is a pipe nobody reads (the command
//! exits within about a second, detaches its programs and says what it could not write).

mod agent_support;
mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use agent_support::{http_get, sample, Agent};

/// Rewrites the agent's config atomically (a reload deferred by coalescing may read the file at
/// any moment, so it must never see it half written) and sends SIGHUP.
fn reload_atomically(agent: &Agent, yaml: &str) {
    let temp = agent.config.with_extension("next");
    std::fs::write(&temp, yaml).expect("writing the next config");
    std::fs::rename(&temp, &agent.config).expect("replacing the config");
    common::send_signal(agent.goroscope.pid(), libc::SIGHUP);
}

/// What a poller saw at one moment: collections so far, when the latest began (Unix
/// seconds) and how long it took, and the /healthz status.
struct Seen {
    collections: f64,
    began: f64,
    took: f64,
    healthz: u16,
}

#[test]
fn a_reload_storm_never_pauses_collection() {
    // Two configs that each start and stop BPF collectors, the most expensive kind of reload.
    let with_tcp = "listen: 127.0.0.1:0\ninterval: 1s\ncollectors:\n  go: { enabled: false }\n";
    let without_tcp =
        "listen: 127.0.0.1:0\ninterval: 1s\ncollectors:\n  go: { enabled: false }\n  \
                       tcp: { enabled: false }\n  scheduler: { enabled: false }\n";
    let agent = Agent::start(with_tcp);
    let address = agent.address;
    let done = Arc::new(AtomicBool::new(false));
    let poller = {
        let done = Arc::clone(&done);
        thread::spawn(move || {
            let mut seen = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let metrics = http_get(address, "/metrics", None);
                assert_eq!(metrics.status, 200, "GET /metrics: {}", metrics.body);
                let value = |name: &str| {
                    sample(&metrics.body, name, &[])
                        .unwrap_or_else(|| panic!("{name} is not exported"))
                };
                let healthz = http_get(address, "/healthz", None).status;
                seen.push(Seen {
                    collections: value("goroscope_agent_collections_total"),
                    began: value("goroscope_agent_last_collection_timestamp_seconds"),
                    took: value("goroscope_agent_collection_duration_seconds"),
                    healthz,
                });
                thread::sleep(Duration::from_millis(100));
            }
            seen
        })
    };
    thread::sleep(Duration::from_secs(2));
    // The storm: 20 SIGHUPs 0.15 s apart, each with a changed file; the last one
    // (index 19) turns TCP back on.
    for i in 0..20 {
        reload_atomically(&agent, if i % 2 == 0 { without_tcp } else { with_tcp });
        thread::sleep(Duration::from_millis(150));
    }
    thread::sleep(Duration::from_secs(5));
    done.store(true, Ordering::Relaxed);
    let seen = poller.join().expect("the poller panicked");
    let stderr = agent.goroscope.stderr_so_far();

    assert!(
        seen.iter().all(|s| s.healthz == 200),
        "/healthz failed during the storm: {:?}\n{stderr}",
        seen.iter().map(|s| s.healthz).collect::<Vec<_>>()
    );
    // Consecutive collections (numbers n and n + 1) by when they began. The next one is due an
    // interval after the previous one began, or at once when that one overran: a pause is any
    // time beyond that, which is what reloads used to add.
    let mut longest_gap = 0.0f64;
    let mut longest_pause = 0.0f64;
    for pair in seen.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if b.collections == a.collections + 1.0 {
            let gap = b.began - a.began;
            longest_gap = longest_gap.max(gap);
            longest_pause = longest_pause.max(gap - a.took.max(1.0));
        }
    }
    let first = &seen[0];
    let last = seen.last().expect("polled");
    let span = last.began - first.began;
    let made = last.collections - first.collections;
    let reload_times: Vec<f64> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("goroscope: agent: reloaded "))
        .filter_map(|l| l.rsplit(" in ").next())
        .filter_map(|t| t.trim_end_matches(" s").parse().ok())
        .collect();
    eprintln!(
        "reload storm: {made} collections in {span:.2} s, longest time between the starts of two \
         {longest_gap:.3} s, longest pause beyond the cadence {longest_pause:.3} s; {} reloads \
         applied, taking {reload_times:?} s",
        reload_times.len()
    );
    // Scheduling slack: the loop's own work after a cycle (publishing, malloc_trim) and a
    // busy machine's latency; a reload that used to trigger a cycle and push the next one out
    // an interval made pauses of whole intervals.
    assert!(
        longest_pause <= 0.5,
        "collection paused {longest_pause:.3} s beyond its cadence during the storm\n{stderr}"
    );
    assert!(
        made >= 8.0,
        "only {made} collections in {span:.2} s\n{stderr}"
    );
    let text = agent.scrape();
    let applied = sample(
        &text,
        "goroscope_config_reloads_total",
        &[("result", "applied")],
    );
    let refused = sample(
        &text,
        "goroscope_config_reloads_total",
        &[("result", "refused")],
    );
    assert_eq!(refused, Some(0.0), "{stderr}");
    assert!(
        applied.is_some_and(|n| (2.0..=20.0).contains(&n)),
        "reloads applied: {applied:?}\n{stderr}"
    );
    assert_eq!(
        sample(&text, "goroscope_probe_up", &[("probe", "tcp")]),
        Some(1.0),
        "the last file of the storm (TCP on) is not the one in force\n{stderr}"
    );
    agent.goroscope.stop_with(libc::SIGTERM).assert_code(0);
}

/// Ids of the BPF programs process `pid` holds (through program and link fds).
fn programs_held_by(pid: u32) -> BTreeSet<u64> {
    let mut ids = BTreeSet::new();
    let dir = format!("/proc/{pid}/fdinfo");
    for entry in std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {dir}: {e}"))
        .flatten()
    {
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

/// Ids of every loaded BPF program, from `bpftool prog show -j`.
fn loaded_programs() -> BTreeSet<u64> {
    let output = Command::new("bpftool")
        .args(["prog", "show", "-j"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run bpftool ({e}); apt-get install bpftool"));
    assert!(output.status.success(), "bpftool prog show -j failed");
    let json: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("bpftool prints JSON");
    json.as_array()
        .expect("bpftool prints an array")
        .iter()
        .filter_map(|p| p["id"].as_u64())
        .collect()
}

/// `goroscope ARGS` with a stdout pipe that nobody reads (held open by the returned handle)
/// and stderr collected; returns once it says it is attached.
fn start_with_blocked_stdout(args: &[&str]) -> (Child, ChildStdout, Arc<Mutex<String>>) {
    let mut child = Command::new(common::goroscope_bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starting goroscope");
    let stdout = child.stdout.take().expect("piped stdout");
    let stderr_pipe = child.stderr.take().expect("piped stderr");
    let stderr = Arc::new(Mutex::new(String::new()));
    {
        let stderr = Arc::clone(&stderr);
        thread::spawn(move || {
            let mut reader = BufReader::new(stderr_pipe);
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                stderr.lock().expect("stderr lock").push_str(&line);
                line.clear();
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while !stderr
        .lock()
        .expect("stderr lock")
        .contains("goroscope: attached")
    {
        assert!(
            Instant::now() < deadline,
            "goroscope {args:?} never attached:\n{}",
            stderr.lock().expect("stderr lock")
        );
        thread::sleep(Duration::from_millis(50));
    }
    (child, stdout, stderr)
}

#[test]
fn trace_stops_at_once_on_a_signal_while_its_stdout_is_blocked() {
    let comm = format!("gsnf{}", std::process::id() % 100_000);
    let workload = agent_support::named_testload(&comm);
    for (signal, name) in [(libc::SIGINT, "SIGINT"), (libc::SIGTERM, "SIGTERM")] {
        let (mut child, mut stdout, stderr) =
            start_with_blocked_stdout(&["trace", "--events", "open", "--comm", &comm]);
        let pid = child.id();
        let ours = programs_held_by(pid);
        assert!(
            !ours.is_empty(),
            "{name}: the attached trace holds no program"
        );
        // 100,000 opens: some 10 MB of lines, far more than the pipe and the output queue hold.
        agent_support::run_ok(&workload, &["open", "/etc/hostname", "100000"]);
        thread::sleep(Duration::from_millis(500));
        assert!(
            child.try_wait().expect("polling goroscope").is_none(),
            "{name}: goroscope ended by itself:\n{}",
            stderr.lock().expect("stderr lock")
        );
        let (status, took) = signal_and_wait(
            &mut child,
            pid,
            signal,
            &format!("{name}: goroscope trace"),
            &stderr,
        );
        // What did reach the pipe: whole lines, since the writer never splits a pipe write.
        let mut reached = Vec::new();
        stdout.read_to_end(&mut reached).expect("reading the pipe");
        thread::sleep(Duration::from_millis(100)); // let the stderr reader finish
        let stderr = stderr.lock().expect("stderr lock").clone();
        eprintln!("{name}: exited {took:?} after the signal ({status}); stderr:\n{stderr}");
        assert!(
            took <= Duration::from_millis(1500),
            "{name}: took {took:?} to stop"
        );
        assert_eq!(status.code(), Some(0), "{name}: {status}\n{stderr}");
        let unwritten: u64 = stderr
            .lines()
            .find(|l| l.contains("events not written"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{name}: no `N events not written` line:\n{stderr}"));
        let lines = reached.iter().filter(|&&b| b == b'\n').count();
        assert!(
            unwritten > 0 && lines > 0,
            "{name}: {lines} lines reached the pipe"
        );
        assert!(
            reached.ends_with(b"\n"),
            "{name}: a partial line reached the pipe"
        );
        // Every event is accounted for: printed, not written, or lost (said on stderr). The
        // workload's own loader opens a few files besides its 100,000.
        let lost: u64 = stderr
            .lines()
            .find_map(|l| l.strip_prefix("goroscope: LOST DATA: kernel "))
            .map_or(0, |rest| {
                rest.split([' ', ','])
                    .filter_map(|w| w.parse::<u64>().ok())
                    .sum()
            });
        let total = lines as u64 + unwritten + lost;
        assert!(
            (100_000..100_100).contains(&total),
            "{name}: {lines} printed + {unwritten} not written + {lost} lost = {total}, \
             expected 100,000 and the loader's few"
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while !loaded_programs().is_disjoint(&ours) {
            assert!(
                Instant::now() < deadline,
                "{name}: programs {ours:?} still loaded after goroscope exited"
            );
            thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Sets this test process's soft open files limit to its hard limit (it holds 2,000 sockets).
fn raise_own_open_files_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the one struct we pass.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
    assert!(limit.rlim_max >= 4096, "this test needs 4,096 open files");
}

/// `goroscope agent` with an open files limit of `soft` (and `hard`), as a service gets it.
fn agent_with_open_files(yaml: &str, soft: u64, hard: u64) -> Agent {
    let config = common::unique_temp_path("agent-config").with_extension("yaml");
    std::fs::write(&config, yaml).expect("writing the agent config");
    let mut command = Command::new(common::goroscope_bin());
    // SAFETY: the closure only calls setrlimit, which is async-signal-safe.
    unsafe {
        command.pre_exec(move || {
            let limit = libc::rlimit {
                rlim_cur: soft,
                rlim_max: hard,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        });
    }
    let config_arg = config.to_str().expect("utf-8 temp path").to_owned();
    let goroscope = common::Goroscope::spawn_command(command, &["agent", "--config", &config_arg]);
    Agent::attached(goroscope, config)
}

fn max_connections(text: &str) -> f64 {
    sample(text, "goroscope_http_connections_max", &[]).expect("goroscope_http_connections_max")
}

/// Whether the server closed `stream` (EOF or reset), without waiting.
fn closed_by_server(mut stream: &TcpStream) -> bool {
    stream.set_nonblocking(true).expect("non-blocking");
    let mut buffer = [0u8; 4096];
    loop {
        // Whatever a response left unread is read first.
        match stream.read(&mut buffer) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => return e.kind() != std::io::ErrorKind::WouldBlock,
        }
    }
}

/// Opens 2,000 connections that send nothing; /healthz, /metrics and collection must go on,
/// and no descriptor shortage may reach collection. Returns the idle connections.
fn hold_idle_connections(agent: &Agent, what: &str) -> Vec<TcpStream> {
    let before = sample(&agent.scrape(), "goroscope_agent_collections_total", &[])
        .expect("collections_total");
    let began = Instant::now();
    let mut idle = Vec::with_capacity(2000);
    for i in 0..2000 {
        idle.push(
            TcpStream::connect(agent.address)
                .unwrap_or_else(|e| panic!("{what}: connection {i}: {e}")),
        );
    }
    thread::sleep(Duration::from_millis(500));
    let asked = Instant::now();
    let healthz = http_get(agent.address, "/healthz", None);
    let healthz_took = asked.elapsed();
    assert_eq!(
        healthz.status, 200,
        "{what}: /healthz under 2,000 idle connections"
    );
    thread::sleep(Duration::from_millis(3000));
    let text = agent.scrape();
    let span = began.elapsed();
    let after = sample(&text, "goroscope_agent_collections_total", &[]).expect("collections");
    // One a second (the interval), less the one being collected and one for scrape timing.
    assert!(
        after - before >= span.as_secs_f64().floor() - 2.0,
        "{what}: {} collections in {span:?} under 2,000 idle connections",
        after - before
    );
    let open = sample(&text, "goroscope_http_connections_open", &[]).expect("open");
    let max = sample(&text, "goroscope_http_connections_max", &[]).expect("max");
    assert!(open <= max, "{what}: {open} connections open, cap {max}");
    let evicted = sample(
        &text,
        "goroscope_http_connections_closed_total",
        &[("reason", "evicted")],
    )
    .expect("evicted");
    assert!(
        evicted >= 2000.0 - max,
        "{what}: only {evicted} idle connections closed to admit new ones"
    );
    eprintln!(
        "{what}: /healthz answered in {healthz_took:?} under 2,000 idle connections; {} \
         collections in {span:?}; {open} open (cap {max}); {evicted} evicted",
        after - before
    );
    let stderr = agent.goroscope.stderr_so_far();
    assert!(
        !stderr.contains("Too many open files") && !stderr.contains("failed"),
        "{what}: collection or the server ran short:\n{stderr}"
    );
    idle
}

#[test]
fn idle_connections_never_starve_health_checks_scrapes_or_collection() {
    raise_own_open_files_limit();
    let yaml = "listen: 127.0.0.1:0\ninterval: 1s\ncollectors:\n  go: { enabled: false }\n";

    // A hard limit of 1,024 too: nothing to raise; only the connection cap protects collection.
    let agent = agent_with_open_files(yaml, 1024, 1024);
    drop(hold_idle_connections(&agent, "hard limit 1,024"));
    agent.goroscope.stop_with(libc::SIGTERM).assert_code(0);

    // The usual service: soft 1,024, hard 8,192; the agent raises it and says so.
    let agent = agent_with_open_files(yaml, 1024, 8192);
    let stderr = agent.goroscope.stderr_so_far();
    assert!(
        stderr.contains("open files limit raised from 1024 to 8192"),
        "the soft limit was not raised:\n{stderr}"
    );
    let mut idle = hold_idle_connections(&agent, "soft limit 1,024");
    // A keep-alive client idle after its answer, and a slow one that never finishes its headers
    // (a header line every second, so it is never idle).
    let kept = TcpStream::connect(agent.address).expect("connecting");
    (&kept)
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: goroscope\r\n\r\n")
        .expect("sending a keep-alive request");
    let slow = TcpStream::connect(agent.address).expect("connecting");
    (&slow)
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: goroscope\r\n")
        .expect("sending half a request");
    {
        let slow = slow.try_clone().expect("cloning the slow socket");
        thread::spawn(move || {
            for _ in 0..45 {
                thread::sleep(Duration::from_secs(1));
                if (&slow).write_all(b"X-Slow: 1\r\n").is_err() {
                    return;
                }
            }
        });
    }
    idle.push(kept);
    idle.push(slow);
    // Connections that never send a complete request are closed by the header timeout (10 s,
    // also after a keep-alive answer); the test allows the 30 s idle timeout and some slack.
    let waiting = Instant::now();
    let deadline = waiting + Duration::from_secs(40);
    loop {
        let open = idle.iter().filter(|s| !closed_by_server(s)).count();
        if open == 0 {
            eprintln!(
                "every idle connection closed {:?} after the 2,000th was opened",
                waiting.elapsed() + Duration::from_millis(3500)
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{open} idle connections still open 40 s later"
        );
        thread::sleep(Duration::from_millis(500));
    }
    // The counts reach /metrics with the next collection.
    let deadline = Instant::now() + Duration::from_secs(10);
    let timed_out = loop {
        let text = agent.scrape();
        let count = |reason: &str| {
            sample(
                &text,
                "goroscope_http_connections_closed_total",
                &[("reason", reason)],
            )
            .unwrap_or(0.0)
        };
        let timed_out = count("header_timeout") + count("idle");
        if timed_out >= max_connections(&text) || Instant::now() >= deadline {
            break timed_out;
        }
        thread::sleep(Duration::from_millis(200));
    };
    assert!(
        timed_out >= 1.0,
        "no connection was closed by the header or idle timeout"
    );
    // A keep-alive client still gets answers after all that.
    assert_eq!(http_get(agent.address, "/healthz", None).status, 200);
    agent.goroscope.stop_with(libc::SIGTERM).assert_code(0);
}

#[test]
fn syscalls_detaches_before_its_report_and_a_second_signal_abandons_a_report_nobody_reads() {
    let (mut child, mut stdout, stderr) = start_with_blocked_stdout(&["syscalls"]);
    let pid = child.id();
    // The smallest pipe (one page): the host-wide report is larger.
    // SAFETY: fcntl on the pipe we hold; only its size changes.
    let rc = unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&stdout),
            libc::F_SETPIPE_SZ,
            4096,
        )
    };
    assert!(
        rc >= 4096,
        "F_SETPIPE_SZ: {}",
        std::io::Error::last_os_error()
    );
    let ours = programs_held_by(pid);
    assert!(!ours.is_empty(), "the attached syscalls holds no program");
    thread::sleep(Duration::from_secs(2));
    common::send_signal(pid, libc::SIGINT);
    // The first signal ends counting; the report waits for its reader, probes already gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !loaded_programs().is_disjoint(&ours) {
        assert!(
            Instant::now() < deadline,
            "programs {ours:?} still loaded while the report waits for its reader"
        );
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_millis(500));
    assert!(
        child.try_wait().expect("polling").is_none(),
        "syscalls ended without its reader taking the report:\n{}",
        stderr.lock().expect("stderr lock")
    );
    let (status, took) = signal_and_wait(&mut child, pid, libc::SIGINT, "syscalls", &stderr);
    let mut reached = Vec::new();
    stdout.read_to_end(&mut reached).expect("reading the pipe");
    thread::sleep(Duration::from_millis(100));
    let stderr = stderr.lock().expect("stderr lock").clone();
    eprintln!("second signal: exited {took:?} later ({status}); stderr:\n{stderr}");
    assert!(took <= Duration::from_millis(1500), "took {took:?}");
    assert_eq!(status.code(), Some(0), "{status}\n{stderr}");
    assert!(
        stderr.contains("lines not written"),
        "no `N lines not written`:\n{stderr}"
    );
    assert!(
        !reached.is_empty() && reached.len() <= 4096,
        "{} bytes reached a 4 KiB pipe",
        reached.len()
    );
}

#[test]
fn goroutines_watch_stops_at_once_on_a_signal_while_its_stdout_is_blocked() {
    let toolchain = gotest::TOOLCHAINS[gotest::TOOLCHAINS.len() - 1];
    let binary = gotest::build("leaky", toolchain, gotest::BuildMode::Default);
    let leaky = gotest::Running::start(&binary, &[]);
    let pid = leaky.pid().to_string();
    let (mut child, mut stdout, stderr) = start_with_blocked_stdout(&[
        "goroutines",
        "--pid",
        &pid,
        "--watch",
        "--interval",
        "50ms",
        "--report-every",
        "100ms",
    ]);
    // SAFETY: fcntl on the pipe we hold; only its size changes.
    let rc = unsafe {
        libc::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(&stdout),
            libc::F_SETPIPE_SZ,
            4096,
        )
    };
    assert!(
        rc >= 4096,
        "F_SETPIPE_SZ: {}",
        std::io::Error::last_os_error()
    );
    // Reports of several KiB every 100 ms: the one-page pipe is full within the first.
    thread::sleep(Duration::from_secs(2));
    assert!(
        child.try_wait().expect("polling").is_none(),
        "goroutines ended by itself:\n{}",
        stderr.lock().expect("stderr lock")
    );
    let pid = child.id();
    let (status, took) = signal_and_wait(&mut child, pid, libc::SIGINT, "goroutines", &stderr);
    let mut reached = Vec::new();
    stdout.read_to_end(&mut reached).expect("reading the pipe");
    thread::sleep(Duration::from_millis(100));
    let stderr = stderr.lock().expect("stderr lock").clone();
    eprintln!("goroutines: exited {took:?} after SIGINT ({status}); stderr:\n{stderr}");
    assert!(took <= Duration::from_millis(1500), "took {took:?}");
    assert_eq!(status.code(), Some(0), "{status}\n{stderr}");
    assert!(
        stderr.contains("lines not written"),
        "no `N lines not written`:\n{stderr}"
    );
    drop(leaky);
}

/// Sends `signal` to `child` (pid `pid`) and waits for it to exit, at most 5 s (then kills it
/// and panics, naming `what`); returns its status and how long it took.
#[track_caller]
fn signal_and_wait(
    child: &mut std::process::Child,
    pid: u32,
    signal: i32,
    what: &str,
    stderr: &Mutex<String>,
) -> (std::process::ExitStatus, Duration) {
    let signalled = Instant::now();
    common::send_signal(pid, signal);
    loop {
        if let Some(status) = child.try_wait().expect("polling goroscope") {
            return (status, signalled.elapsed());
        }
        if signalled.elapsed() > Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{what} still running 5 s after the signal with its stdout blocked:\n{}",
                stderr.lock().expect("stderr lock")
            );
        }
        thread::sleep(Duration::from_millis(20));
    }
}
