//! `GET /debug/pprof/profile?pid=PID&seconds=N[&kind=cpu|offcpu|wall][&hz=F]`: a pprof profile of one
//! process, as Go's own endpoint serves one of itself, so `go tool pprof` and pprof-scraping
//! continuous profilers (Parca, Pyroscope) can profile every process on the host through one
//! agent. A profile runs on a thread of its own, never on the collection or HTTP threads; one
//! at a time per process and a few at a time in all, each for a bounded time.

use std::collections::HashSet;
use std::mem::MaybeUninit;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use goroscope_bpf::profile::FREQUENCIES;
use goroscope_bpf::ProcessFilter;
use goroscope_model::profile::ProfileKind;
use goroscope_profiler::{Request, Session, SessionError};

use crate::settings::is_process;

/// Longest profile served.
pub const MAX_SECONDS: u64 = 300;
/// Profile length when the request gives none (Go's endpoint's default).
const DEFAULT_SECONDS: u64 = 30;
/// Shortest time off CPU an off-CPU profile counts.
const DEFAULT_MIN_OFF_CPU_NS: u64 = 1_000_000;
/// Profiles running at once, over all processes.
const MAX_RUNNING: usize = 4;

/// The profiles running, shared by the handlers.
pub struct Profiles {
    busy: Mutex<HashSet<u32>>,
    proc_root: &'static Path,
}

impl Profiles {
    /// None running; processes are under `proc_root`.
    pub fn new(proc_root: &'static Path) -> Profiles {
        Profiles {
            busy: Mutex::new(HashSet::new()),
            proc_root,
        }
    }

    /// Marks `pid` busy, or says why it cannot be.
    fn claim(self: &Arc<Self>, pid: u32) -> Result<Claim, (StatusCode, String)> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        if busy.contains(&pid) {
            return Err((
                StatusCode::CONFLICT,
                format!("a profile of PID {pid} is already running; try again when it ends"),
            ));
        }
        if busy.len() >= MAX_RUNNING {
            return Err((
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{MAX_RUNNING} profiles are already running; try again when one ends"),
            ));
        }
        busy.insert(pid);
        Ok(Claim {
            profiles: Arc::clone(self),
            pid,
        })
    }
}

/// A process's profile slot, given back when dropped.
struct Claim {
    profiles: Arc<Profiles>,
    pid: u32,
}

impl Drop for Claim {
    fn drop(&mut self) {
        let mut busy = self.profiles.busy.lock().unwrap_or_else(|e| e.into_inner());
        busy.remove(&self.pid);
    }
}

/// A request's parameters, checked.
struct Params {
    pid: u32,
    seconds: u64,
    kind: ProfileKind,
    frequency: u32,
}

/// Parses and checks the query string.
fn params(query: Option<&str>, proc_root: &Path) -> Result<Params, String> {
    let mut pid = None;
    let mut seconds = DEFAULT_SECONDS;
    let mut kind = ProfileKind::Cpu;
    let mut frequency = None;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "pid" => {
                pid = Some(
                    value
                        .parse::<u32>()
                        .map_err(|_| format!("pid={value} is not a process id"))?,
                )
            }
            "seconds" => {
                seconds = value
                    .parse::<u64>()
                    .ok()
                    .filter(|s| (1..=MAX_SECONDS).contains(s))
                    .ok_or_else(|| format!("seconds={value}: give 1 to {MAX_SECONDS}"))?
            }
            "kind" => {
                kind = ProfileKind::parse(value)
                    .ok_or_else(|| format!("kind={value}: give cpu, offcpu or wall"))?
            }
            "hz" => {
                frequency = Some(
                    value
                        .parse::<u32>()
                        .ok()
                        .filter(|f| FREQUENCIES.contains(f))
                        .ok_or_else(|| {
                            format!(
                                "hz={value}: give {} to {}",
                                FREQUENCIES.start(),
                                FREQUENCIES.end()
                            )
                        })?,
                )
            }
            // Parameters other clients send (Go's `gc`, `debug`) are not ours to refuse.
            _ => {}
        }
    }
    let pid = pid.ok_or("give the process to profile: ?pid=PID&seconds=N")?;
    if !is_process(proc_root, pid) {
        return Err(format!(
            "no process with PID {pid} (it may have exited, or it is a thread id)"
        ));
    }
    let frequency = frequency.unwrap_or(match kind {
        ProfileKind::Wall => 10,
        _ => 99,
    });
    Ok(Params {
        pid,
        seconds,
        kind,
        frequency,
    })
}

/// The handler.
pub async fn profile(State(profiles): State<Arc<Profiles>>, RawQuery(query): RawQuery) -> Response {
    let params = match params(query.as_deref(), profiles.proc_root) {
        Ok(params) => params,
        Err(message) => return refuse(StatusCode::BAD_REQUEST, message),
    };
    let claim = match profiles.claim(params.pid) {
        Ok(claim) => claim,
        Err((status, message)) => return refuse(status, message),
    };
    // The profile ends `seconds` after the request came, loading included, as Go's own endpoint
    // does: clients such as `go tool pprof` time out at 1.5 × seconds.
    let arrived = Instant::now();
    let (done, result) = tokio::sync::oneshot::channel();
    let proc_root = profiles.proc_root;
    let spawned = std::thread::Builder::new()
        .name(format!("goroscope-profile-{}", params.pid))
        .spawn(move || {
            let result = run(&params, proc_root, arrived);
            drop(claim);
            let _ = done.send(result);
        });
    if let Err(e) = spawned {
        return refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot start a profiling thread: {e}"),
        );
    }
    match result.await {
        Ok(Ok(bytes)) => (
            [
                (header::CONTENT_TYPE, "application/octet-stream"),
                (
                    header::CONTENT_DISPOSITION,
                    "attachment; filename=\"profile\"",
                ),
            ],
            bytes,
        )
            .into_response(),
        Ok(Err((status, message))) => refuse(status, message),
        Err(_) => refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the profiling thread ended without a profile".into(),
        ),
    }
}

/// Takes the profile; the gzipped pprof bytes, or the status and message to answer with.
fn run(
    params: &Params,
    proc_root: &Path,
    arrived: Instant,
) -> Result<Vec<u8>, (StatusCode, String)> {
    let request = Request {
        kind: params.kind,
        filter: ProcessFilter {
            pids: vec![params.pid],
            comm: None,
            include_self: false,
        },
        frequency: params.frequency,
        min_off_cpu_ns: DEFAULT_MIN_OFF_CPU_NS,
    };
    let mut storage = MaybeUninit::uninit();
    let failed = |e: SessionError| match e {
        SessionError::Request(message) => (StatusCode::BAD_REQUEST, message),
        e => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("profiling failed: {e}"),
        ),
    };
    let mut session = Session::start(&mut storage, &request, proc_root).map_err(failed)?;
    let end = arrived + Duration::from_secs(params.seconds);
    let period = session.period();
    let mut next = Instant::now() + period;
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        std::thread::sleep(next.min(end).saturating_duration_since(now));
        if Instant::now() < next {
            continue;
        }
        next += period;
        let gone = session.tick().map_err(failed)?;
        if gone || !is_process(proc_root, params.pid) {
            break;
        }
    }
    let (profile, _) = session.finish().map_err(failed)?;
    Ok(goroscope_export::pprof(&profile))
}

fn refuse(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{message}\n"),
    )
        .into_response()
}
