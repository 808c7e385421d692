//! The agent and the commands under what production throws at them, with real BPF programs and
//! real sockets: a storm of SIGHUPs (collection keeps its cadence, /healthz stays 200), thousands
//! of idle connections under a soft fd limit of 1,024 (/healthz, /metrics and collection go on,
//! idle ones are closed), and SIGINT/SIGTERM while stdout is a pipe nobody reads (the command
//! exits within about a second, detaches its programs and says what it could not write).

mod agent_support;
mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
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

/// What a poller saw at one moment: when, collections so far, /healthz status.
struct Seen {
    at: Instant,
    collections: f64,
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
                let collections = sample(&metrics.body, "goroscope_agent_collections_total", &[])
                    .expect("goroscope_agent_collections_total is exported");
                let healthz = http_get(address, "/healthz", None).status;
                seen.push(Seen {
                    at: Instant::now(),
                    collections,
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
    // When each new collection was first seen; the longest time between two of them.
    let mut changes = Vec::new();
    for pair in seen.windows(2) {
        if pair[1].collections > pair[0].collections {
            changes.push(pair[1].at);
        }
    }
    let longest = changes
        .windows(2)
        .map(|w| w[1] - w[0])
        .max()
        .unwrap_or(Duration::MAX);
    let span = seen.last().expect("polled").at - seen[0].at;
    let made = seen.last().expect("polled").collections - seen[0].collections;
    eprintln!(
        "reload storm: {made} collections in {span:?}, longest gap between new ones {longest:?}"
    );
    // One interval (1 s) between collections, and never a pause of more than one more interval
    // (plus the poller's 0.1 s step and the scrape itself).
    assert!(
        longest <= Duration::from_millis(2300),
        "collection paused for {longest:?} during the storm\n{stderr}"
    );
    assert!(
        made >= span.as_secs_f64().floor() - 1.0,
        "only {made} collections in {span:?}\n{stderr}"
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
