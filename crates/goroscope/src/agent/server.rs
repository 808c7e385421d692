//! The agent's HTTP side: `/metrics` (Prometheus text or OpenMetrics, by the scraper's
//! `Accept` header), `/healthz`, `/readyz` and `/debug/pprof/profile` (pprof.rs), served by a single-threaded tokio runtime on
//! its own thread. Scrapes render the latest collected exposition; they never touch the
//! kernel, so scrape latency does not depend on what is being collected.
//!
//! Connections are bounded so that clients can never starve collection of file descriptors or
//! memory (see `connections.rs`): at most [`HttpLimits::max_connections`] are open, a client
//! must send each request's headers within 10 s (of connecting or of the previous response,
//! so idle keep-alive connections end then), and a connection with no traffic at all for 30 s
//! is closed. When the cap is reached a new connection closes the one idle
//! the longest, so `/healthz` and scrapes are answered whatever idle clients hold.

use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;

use anyhow::Context;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use goroscope_export::Format;
use tokio::sync::watch;

use crate::agent::connections::serve;
pub use crate::agent::connections::{HttpLimits, HttpStats};
use crate::agent::pprof::{self, Profiles};
use crate::agent::shared::Shared;
use crate::settings::UsageError;

/// Connections the kernel queues before the agent accepts them.
const LISTEN_BACKLOG: libc::c_int = 1024;

/// The running server; [`Server::stop`] shuts it down and waits.
pub struct Server {
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    address: SocketAddr,
    stats: Arc<HttpStats>,
}

impl Server {
    /// Binds `address` now (so a taken port is reported at start) and serves on a thread.
    pub fn start(
        address: SocketAddr,
        shared: Arc<Shared>,
        limits: HttpLimits,
    ) -> anyhow::Result<Server> {
        let listener = std::net::TcpListener::bind(address).map_err(|error| {
            UsageError(format!(
                "cannot listen on {address}: {error}; choose another address with --listen or \
                 `listen:` in the config file"
            ))
        })?;
        listener
            .set_nonblocking(true)
            .context("making the listening socket non-blocking")?;
        // std listens with a backlog of 128: a burst of connections while the HTTP thread waits
        // for a CPU would have the kernel drop SYNs (a 1 s retransmit for the client). Linux
        // takes a second listen() as a new backlog (capped by net.core.somaxconn).
        // SAFETY: listen on a socket we own; no pointers.
        if unsafe { libc::listen(listener.as_raw_fd(), LISTEN_BACKLOG) } != 0 {
            return Err(std::io::Error::last_os_error()).context("enlarging the listen backlog");
        }
        let address = listener.local_addr().context("reading the bound address")?;
        let (stop, stopped) = watch::channel(false);
        let stats = Arc::new(HttpStats::default());
        let serving_stats = Arc::clone(&stats);
        let thread = std::thread::Builder::new()
            .name("goroscope-http".into())
            .spawn(move || -> anyhow::Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_io()
                    .enable_time()
                    .build()
                    .context("starting the HTTP runtime")?;
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)
                        .context("handing the socket to the HTTP runtime")?;
                    let profiles = Arc::new(Profiles::new(Path::new("/proc")));
                    let app = Router::new()
                        .route("/metrics", get(metrics))
                        .route("/healthz", get(healthz))
                        .route("/readyz", get(readyz))
                        .route("/", get(index))
                        .with_state(shared)
                        .merge(
                            Router::new()
                                .route("/debug/pprof/profile", get(pprof::profile))
                                .with_state(profiles),
                        );
                    serve(listener, app, limits, serving_stats, stopped).await;
                    Ok(())
                })
            })
            .context("starting the HTTP thread")?;
        Ok(Server {
            stop,
            thread: Some(thread),
            address,
            stats,
        })
    }

    /// The address actually bound (a `:0` port resolved).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// What happened to connections so far.
    pub fn stats(&self) -> &HttpStats {
        &self.stats
    }

    /// Stops serving and waits for the thread; returns the serving error, if any.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(anyhow::anyhow!("the HTTP thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

async fn metrics(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Response {
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|value| value.to_str().ok());
    let format = Format::negotiate(accept);
    let body = shared.render(format);
    ([(header::CONTENT_TYPE, format.content_type())], body).into_response()
}

async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.stalled_for() {
        None => (StatusCode::OK, "ok\n").into_response(),
        Some(stalled) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "unhealthy: no collection finished for {:.0} s\n",
                stalled.as_secs_f64()
            ),
        )
            .into_response(),
    }
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.is_ready() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the first collection has not finished\n",
        )
            .into_response()
    }
}

async fn index() -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "goroscope agent: /metrics (Prometheus, OpenMetrics), /healthz, /readyz, \
         /debug/pprof/profile?pid=PID&seconds=N[&kind=cpu|offcpu|wall] (pprof)\n",
    )
        .into_response()
}
