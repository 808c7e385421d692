//! The agent's `GET /debug/pprof/profile` as its users reach it: `go tool pprof` fetches CPU
//! and wall profiles itself (cpuburn's hot and cold functions in their proportion; leaky's
//! receivers under `[chan receive]`); bad requests get 400 with a reason; a second profile of
//! a process already being profiled gets 409, a fifth running profile 503, and slots come back
//! once profiles end.

mod agent_support;
mod common;
mod pprof_text;

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use agent_support::{http_get, Agent, Response};
use gotest::{BuildMode, Running, NEWEST_TOOLCHAIN};
use pprof_text::{
    assert_near, go_tool_pprof_saving, header_duration_ms, leaky_receivers, temp_dir, top,
    ReadyProgram, Sleepers, Top,
};

/// An agent serving on a free loopback port, collecting nothing from Go processes (the
/// endpoint does not need it).
fn agent() -> Agent {
    Agent::start("listen: 127.0.0.1:0\ninterval: 1s\ncollectors:\n  go: { enabled: false }\n")
}

/// The profile endpoint's URL for `query`.
fn profile_url(agent: SocketAddr, query: &str) -> String {
    format!("http://{agent}/debug/pprof/profile?{query}")
}

/// How long `go tool pprof` waits for a profile. Its default, 1.5 × the seconds asked for, is
/// too short for a debug build on a loaded machine: loading the programs and symbolizing take
/// seconds there (a 3 s CPU profile was measured taking 7.9 s at a load average of 18).
const FETCH_TIMEOUT: &str = "-timeout=120";

/// `go tool pprof FORMAT URL`, then `-top` of the profile it saved: (its report, the top).
#[track_caller]
fn fetch(format: &str, url: &str, label: &str) -> (String, Top) {
    let dir = temp_dir(label);
    let fetched = go_tool_pprof_saving(&[format, FETCH_TIMEOUT, url], &dir);
    let Some(saved) = fetched
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("Saved profile in "))
    else {
        panic!("go tool pprof saved nothing:\n{}", fetched.stderr);
    };
    let top = top(std::path::Path::new(saved.trim()), &[]);
    (fetched.stdout, top)
}

#[test]
fn go_tool_pprof_fetches_cpu_and_wall_profiles_from_the_agent() {
    let agent = agent();
    let cpuburn = gotest::build("cpuburn", NEWEST_TOOLCHAIN, BuildMode::Default);
    let burner = ReadyProgram::start(&cpuburn, &["split"]);
    let leaky = gotest::build("leaky", NEWEST_TOOLCHAIN, BuildMode::Default);
    let leaky = Running::start(&leaky, &[]);
    let receivers = leaky_receivers(&leaky);

    // Both at once: profiles of different processes run side by side.
    let cpu_url = profile_url(agent.address, &format!("pid={}&seconds=3", burner.pid()));
    let cpu = thread::spawn(move || fetch("-raw", &cpu_url, "agent-cpu"));
    let wall_url = profile_url(
        agent.address,
        &format!("pid={}&seconds=3&kind=wall", leaky.pid()),
    );
    let (wall_text, wall) = fetch("-top", &wall_url, "agent-wall");
    let (raw, cpu) = cpu.join().expect("the CPU fetch panicked");

    for function in ["main.hot", "main.cold"] {
        assert!(
            raw.contains(function),
            "the CPU profile of cpuburn split should name {function}:\n{raw}"
        );
    }
    // cpuburn split spends 3 units in hot for each in cold.
    let (hot, cold) = (cpu.cum("main.hot"), cpu.cum("main.cold"));
    eprintln!("cpuburn split: hot {hot:.1} ms, cold {cold:.1} ms");
    assert!(
        cold > 0.0 && (1.8..=5.0).contains(&(hot / cold)),
        "hot:cold should be about 3:1, the profile says {hot:.1} ms : {cold:.1} ms\n{}",
        cpu.text
    );

    assert!(
        wall_text.contains("[chan receive]") && wall.row("main.leakChanRecv").is_some(),
        "the wall profile of leaky should show [chan receive] and main.leakChanRecv:\n{wall_text}"
    );
    let window_ms = header_duration_ms(&wall.text);
    assert_near(
        "wall time of main.leakChanRecv through the agent (ms)",
        wall.cum("main.leakChanRecv"),
        receivers as f64 * window_ms,
        0.10,
        &wall.text,
    );
    let finished = agent.goroscope.stop_with(libc::SIGTERM);
    finished.assert_code(0);
}

/// Panics unless `response` has `status` and its body says `says`.
#[track_caller]
fn assert_refused(query: &str, response: &Response, status: u16, says: &str) {
    assert!(
        response.status == status && response.body.contains(says),
        "?{query} should be answered {status} saying {says:?}, got {} {:?}",
        response.status,
        response.body
    );
}

#[test]
fn bad_requests_are_answered_400_with_the_reason() {
    let agent = agent();
    let sleeper = Sleepers::start(1);
    let pid = sleeper.pids()[0];
    // Process ids are below pid_max: pid_max itself never names a process.
    let pid_max = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("reading /proc/sys/kernel/pid_max")
        .trim()
        .to_owned();
    let cases = [
        ("seconds=1".to_owned(), "give the process"),
        ("pid=abc&seconds=1".to_owned(), "not a process id"),
        (format!("pid={pid_max}&seconds=1"), "no process with PID"),
        (format!("pid={pid}&seconds=0"), "seconds=0"),
        (format!("pid={pid}&seconds=301"), "seconds=301"),
        (format!("pid={pid}&seconds=1&kind=bogus"), "kind=bogus"),
        (format!("pid={pid}&seconds=1&hz=0"), "hz=0"),
        // Asking is fine; what cannot be done for this process is still the asker's error.
        (format!("pid={pid}&seconds=1&kind=wall"), "not a Go program"),
    ];
    for (query, says) in &cases {
        let response = http_get(
            agent.address,
            &format!("/debug/pprof/profile?{query}"),
            None,
        );
        assert_refused(query, &response, 400, says);
    }
    drop(sleeper);
    let finished = agent.goroscope.stop_with(libc::SIGTERM);
    finished.assert_code(0);
}

/// Starts GET `query` on a thread of its own.
fn get_later(address: SocketAddr, query: String) -> thread::JoinHandle<Response> {
    thread::spawn(move || http_get(address, &format!("/debug/pprof/profile?{query}"), None))
}

/// Waits until the agent runs exactly `count` profiles: each runs on a thread named
/// `goroscope-profile-PID` (`goroscope-prof` as the kernel keeps it), spawned once the request
/// has claimed its slot.
#[track_caller]
fn wait_running_profiles(agent: &Agent, count: usize) {
    let tasks = format!("/proc/{}/task", agent.goroscope.pid());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let listing = match std::fs::read_dir(&tasks) {
            Ok(listing) => listing,
            Err(e) => panic!("cannot list {tasks}: {e}"),
        };
        let running = listing
            .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
            .filter(|comm| comm.starts_with("goroscope-prof"))
            .count();
        if running == count {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the agent runs {running} profiles, not {count}, after 30 s\nstderr:\n{}",
            agent.goroscope.stderr_so_far()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn one_profile_per_process_and_four_at_once() {
    let agent = agent();
    let sleepers = Sleepers::start(5);
    let pids = sleepers.pids();
    let address = agent.address;

    // A second profile of a process being profiled: 409 while the first runs.
    let first = get_later(address, format!("pid={}&seconds=3&kind=offcpu", pids[0]));
    wait_running_profiles(&agent, 1);
    let query = format!("pid={}&seconds=1", pids[0]);
    let second = http_get(address, &format!("/debug/pprof/profile?{query}"), None);
    assert_refused(&query, &second, 409, "already running");
    let first = first.join().expect("the first request panicked");
    assert_eq!(first.status, 200, "the first profile: {}", first.body);
    // Its slot came back.
    let query = format!("pid={}&seconds=1", pids[0]);
    let again = http_get(address, &format!("/debug/pprof/profile?{query}"), None);
    assert_eq!(
        again.status, 200,
        "a profile after the first ended: {}",
        again.body
    );

    // Four at once over all processes: a fifth gets 503.
    wait_running_profiles(&agent, 0);
    let running: Vec<_> = pids[..4]
        .iter()
        .map(|pid| get_later(address, format!("pid={pid}&seconds=3")))
        .collect();
    wait_running_profiles(&agent, 4);
    let query = format!("pid={}&seconds=1", pids[4]);
    let fifth = http_get(address, &format!("/debug/pprof/profile?{query}"), None);
    assert_refused(&query, &fifth, 503, "already running");
    for (pid, request) in pids.iter().zip(running) {
        let response = request.join().expect("a request panicked");
        assert_eq!(
            response.status, 200,
            "the profile of {pid}: {}",
            response.body
        );
    }
    let fifth = http_get(address, &format!("/debug/pprof/profile?{query}"), None);
    assert_eq!(
        fifth.status, 200,
        "the fifth once the four ended: {}",
        fifth.body
    );

    let finished = agent.goroscope.stop_with(libc::SIGTERM);
    finished.assert_code(0);
}
