//! The agent's HTTP side: `/metrics` (Prometheus text or OpenMetrics, by the scraper's
//! `Accept` header), `/healthz` and `/readyz`, served by a single-threaded tokio runtime on
//! its own thread. Scrapes render the latest collected exposition; they never touch the
//! kernel, so scrape latency does not depend on what is being collected.

use std::net::SocketAddr;
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

use crate::agent::shared::Shared;
use crate::settings::UsageError;

/// The running server; [`Server::stop`] shuts it down and waits.
pub struct Server {
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<anyhow::Result<()>>>,
    address: SocketAddr,
}

impl Server {
    /// Binds `address` now (so a taken port is reported at start) and serves on a thread.
    pub fn start(address: SocketAddr, shared: Arc<Shared>) -> anyhow::Result<Server> {
        let listener = std::net::TcpListener::bind(address).map_err(|error| {
            UsageError(format!(
                "cannot listen on {address}: {error}; choose another address with --listen or \
                 `listen:` in the config file"
            ))
        })?;
        listener
            .set_nonblocking(true)
            .context("making the listening socket non-blocking")?;
        let address = listener.local_addr().context("reading the bound address")?;
        let (stop, mut stopped) = watch::channel(false);
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
                    let app = Router::new()
                        .route("/metrics", get(metrics))
                        .route("/healthz", get(healthz))
                        .route("/readyz", get(readyz))
                        .route("/", get(index))
                        .with_state(shared);
                    axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.wait_for(|stop| *stop).await;
                        })
                        .await
                        .context("serving HTTP")
                })
            })
            .context("starting the HTTP thread")?;
        Ok(Server {
            stop,
            thread: Some(thread),
            address,
        })
    }

    /// The address actually bound (a `:0` port resolved).
    pub fn address(&self) -> SocketAddr {
        self.address
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
        "goroscope agent: /metrics (Prometheus, OpenMetrics), /healthz, /readyz\n",
    )
        .into_response()
}
