//! What the real-daemon tests need: installing and running the daemons ([`daemon`]), parsing
//! Go's goroutine dumps ([`pprof`]), comparing them with goroscope's report ([`compare`]), a
//! request load ([`load`]); and here, reading a daemon's ground truth (its dump and its
//! `go_goroutines`), running goroscope on it, and each daemon's load.

pub mod compare;
pub mod daemon;
pub mod load;
pub mod pprof;
#[cfg(test)]
mod pprof_tests;

use std::process::Command;

use serde_json::Value;

use crate::agent_support::{http_get, sample};
use compare::Dump;
use daemon::{Daemon, Kind};
use load::Request;

/// The daemon's `/debug/pprof/goroutine?debug=2`, parsed.
#[track_caller]
pub fn dump(daemon: &Daemon) -> Dump {
    let response = http_get(daemon.debug, "/debug/pprof/goroutine?debug=2", None);
    assert_eq!(
        response.status,
        200,
        "{}: GET /debug/pprof/goroutine?debug=2: {}",
        daemon.kind.name(),
        response.body
    );
    let goroutines = pprof::parse_dump(&response.body).unwrap_or_else(|e| {
        panic!(
            "{}: cannot parse its goroutine dump ({e}):\n{}",
            daemon.kind.name(),
            response.body
        )
    });
    let dump = Dump::new(goroutines);
    let handlers = dump
        .all
        .iter()
        .filter(|g| g.has_frame_in("runtime/pprof"))
        .count();
    assert_eq!(
        handlers,
        1,
        "{}: expected exactly one goroutine writing the dump:\n{}",
        daemon.kind.name(),
        response.body
    );
    dump
}

/// `go_goroutines` from the daemon's `/metrics`.
#[track_caller]
pub fn go_goroutines(daemon: &Daemon) -> u64 {
    let response = http_get(daemon.debug, "/metrics", None);
    assert_eq!(
        response.status,
        200,
        "{}: GET /metrics: {}",
        daemon.kind.name(),
        response.body
    );
    let value = sample(&response.body, "go_goroutines", &[]).unwrap_or_else(|| {
        panic!(
            "{}: no go_goroutines in its /metrics:\n{}",
            daemon.kind.name(),
            response.body
        )
    });
    value as u64
}

/// Runs `goroscope goroutines --pid PID --format json` with `extra` arguments; the report, or
/// why there is none (exit status and stderr).
pub fn goroscope_report(pid: u32, extra: &[&str]) -> Result<Value, String> {
    let output = Command::new(env!("CARGO_BIN_EXE_goroscope"))
        .args(["goroutines", "--pid", &pid.to_string(), "--format", "json"])
        .args(extra)
        .output()
        .map_err(|e| format!("cannot run goroscope: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    if !output.status.success() {
        return Err(format!(
            "goroscope exited with {}\nstderr: {stderr}\nstdout: {stdout}",
            output.status
        ));
    }
    serde_json::from_str(&stdout)
        .map_err(|e| format!("goroscope printed no JSON ({e})\nstdout: {stdout}\nstderr: {stderr}"))
}

/// The real requests the load does against each daemon's API.
pub fn load_requests(daemon: &Daemon) -> Vec<Request> {
    let api = daemon.debug;
    match daemon.kind {
        Kind::Prometheus => vec![
            Request::get(api, "/api/v1/query?query=up"),
            Request::get(api, "/metrics"),
            Request::get(api, "/api/v1/query?query=sum(go_goroutines)"),
        ],
        // The v3 JSON gateway: keys and values base64 ("goroscope/a" → "Z29yb3Njb3BlL2E=").
        Kind::Etcd => vec![
            Request::post(
                api,
                "/v3/kv/put",
                r#"{"key":"Z29yb3Njb3BlL2E=","value":"aGVsbG8="}"#,
            ),
            Request::post(api, "/v3/kv/range", r#"{"key":"Z29yb3Njb3BlL2E="}"#),
            Request::post(
                api,
                "/v3/kv/put",
                r#"{"key":"Z29yb3Njb3BlL2I=","value":"d29ybGQ="}"#,
            ),
            Request::get(api, "/metrics"),
        ],
        Kind::Caddy => vec![
            Request::get(daemon.site, "/"),
            Request::get(api, "/config/"),
            Request::get(daemon.site, "/index.html"),
        ],
        Kind::NodeExporter => vec![Request::get(api, "/metrics")],
    }
}
