//! The agent's HTTP connections, bounded so that no client can take the agent down: the open
//! files limit raised to its hard limit at start, at most [`HttpLimits::max_connections`] open
//! (a quarter of the open files limit at most, so collection always has descriptors left), a
//! deadline for each request's headers (which also ends idle keep-alive connections), and an
//! idle timeout for connections whose traffic stalled. At the cap, a new connection closes the
//! connection idle the longest (no request in progress); only when every connection is busy is
//! the new one refused. Every close and refusal is counted and exported.

use std::collections::HashMap;
use std::io;
use std::pin::{pin, Pin};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use goroscope_export::{Exposition, Family, Labels};
use hyper::body::Incoming;
use hyper::rt::{Read, ReadBufCursor, Write};
use hyper::Request;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tower_service::Service;

/// How long a client may take to send a complete request head, counted from the connection's
/// start or the end of the previous response: an idle keep-alive connection is closed then too.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a connection may go without any traffic while not answering a request: the
/// backstop for a client that stopped reading its response.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Most connections open at once, whatever the open files limit (scrapers need a handful).
const MAX_CONNECTIONS: usize = 256;
/// How long the accept loop pauses after a failed accept (out of descriptors, say).
const ACCEPT_PAUSE: Duration = Duration::from_millis(100);

/// Bounds on connections.
#[derive(Clone, Copy, Debug)]
pub struct HttpLimits {
    /// Most connections open at once.
    pub max_connections: usize,
    /// See [`HEADER_TIMEOUT`].
    pub header_timeout: Duration,
    /// See [`IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
}

impl HttpLimits {
    /// Limits for a process allowed `open_files` descriptors: at most a quarter of them for
    /// connections, the rest for collection (BPF maps and programs, /proc, Go processes).
    pub fn for_open_files(open_files: u64) -> Self {
        let quarter = usize::try_from(open_files / 4).unwrap_or(usize::MAX);
        Self {
            max_connections: quarter.clamp(8, MAX_CONNECTIONS),
            header_timeout: HEADER_TIMEOUT,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// Raises the soft limit on open files to the hard limit; returns (before, after).
pub fn raise_open_files_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let before = limit.rlim_cur;
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit reads the struct we pass.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok((before, limit.rlim_cur))
}

/// Why connections ended, and how many are open.
#[derive(Debug, Default)]
pub struct HttpStats {
    open: AtomicU64,
    accepted: AtomicU64,
    refused: AtomicU64,
    accept_errors: AtomicU64,
    by_client: AtomicU64,
    idle: AtomicU64,
    header_timeout: AtomicU64,
    evicted: AtomicU64,
    errors: AtomicU64,
}

/// How a connection ended.
enum Ended {
    /// The client closed it, or asked to (`Connection: close`).
    ByClient,
    /// No traffic for the idle timeout.
    Idle,
    /// Headers not received in time.
    HeaderTimeout,
    /// Closed to make room for a new connection.
    Evicted,
    /// A protocol or I/O error.
    Error,
    /// The agent is stopping.
    Stopping,
}

impl HttpStats {
    fn ended(&self, how: &Ended) {
        let counter = match how {
            Ended::ByClient => &self.by_client,
            Ended::Idle => &self.idle,
            Ended::HeaderTimeout => &self.header_timeout,
            Ended::Evicted => &self.evicted,
            Ended::Error => &self.errors,
            Ended::Stopping => return,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Adds the HTTP families to an exposition.
    pub fn families(&self, limits: &HttpLimits, out: &mut Exposition) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64;
        let mut open = Family::gauge(
            "goroscope_http_connections_open",
            "HTTP connections open now.",
        );
        open.add_gauge(Labels::new(), get(&self.open));
        out.push(open);
        let mut max = Family::gauge(
            "goroscope_http_connections_max",
            "Most HTTP connections open at once (a quarter of the open files limit, at most 256).",
        );
        max.add_gauge(Labels::new(), limits.max_connections as f64);
        out.push(max);
        let mut accepted = Family::counter(
            "goroscope_http_connections_accepted_total",
            "HTTP connections accepted.",
        );
        accepted.add_counter(Labels::new(), get(&self.accepted));
        out.push(accepted);
        let mut refused = Family::counter(
            "goroscope_http_connections_refused_total",
            "HTTP connections closed at once: the cap was reached and every open connection \
             was busy, or accepting failed (out of file descriptors).",
        );
        refused.add_counter(
            Labels::new().push("reason", "every connection busy"),
            get(&self.refused),
        );
        refused.add_counter(
            Labels::new().push("reason", "accept failed"),
            get(&self.accept_errors),
        );
        out.push(refused);
        let mut closed = Family::counter(
            "goroscope_http_connections_closed_total",
            "HTTP connections closed, by reason: client (closed by the client or at its \
             request), header_timeout (no complete request within 10 s of connecting or of the \
             previous response: idle keep-alive connections end so), idle (no traffic at all for \
             30 s, e.g. a client that stopped reading its response), evicted (the idlest one, \
             to admit a new connection at the cap), error.",
        );
        for (reason, counter) in [
            ("client", &self.by_client),
            ("idle", &self.idle),
            ("header_timeout", &self.header_timeout),
            ("evicted", &self.evicted),
            ("error", &self.errors),
        ] {
            closed.add_counter(Labels::new().push("reason", reason), get(counter));
        }
        out.push(closed);
    }
}

/// One open connection, as the accept loop sees it.
struct Slot {
    /// Milliseconds since the server started, at the last read or write.
    last_active_ms: AtomicU64,
    /// Requests being answered.
    busy: AtomicU32,
    /// Chosen to be closed; no longer counted against the cap.
    evicting: AtomicBool,
    close: Notify,
}

/// The open connections.
struct Connections {
    slots: Mutex<HashMap<u64, Arc<Slot>>>,
    started: Instant,
    limits: HttpLimits,
    stats: Arc<HttpStats>,
}

impl Connections {
    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Makes room for one more connection: Some(true) when the idlest was told to close,
    /// Some(false) when there was room, None when every open connection is busy.
    fn make_room(&self) -> Option<bool> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let live = slots
            .values()
            .filter(|s| !s.evicting.load(Ordering::Relaxed))
            .count();
        if live < self.limits.max_connections {
            return Some(false);
        }
        let idlest = slots
            .values()
            .filter(|s| !s.evicting.load(Ordering::Relaxed) && s.busy.load(Ordering::Relaxed) == 0)
            .min_by_key(|s| s.last_active_ms.load(Ordering::Relaxed));
        match idlest {
            Some(slot) => {
                slot.evicting.store(true, Ordering::Relaxed);
                slot.close.notify_one();
                Some(true)
            }
            None => None,
        }
    }

    fn add(&self, id: u64) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            last_active_ms: AtomicU64::new(self.now_ms()),
            busy: AtomicU32::new(0),
            evicting: AtomicBool::new(false),
            close: Notify::new(),
        });
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Arc::clone(&slot));
        self.stats.open.fetch_add(1, Ordering::Relaxed);
        slot
    }

    fn remove(&self, id: u64, how: &Ended) {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&id);
        self.stats.open.fetch_sub(1, Ordering::Relaxed);
        self.stats.ended(how);
    }
}

/// Accepts and serves connections with `app` until `stopped` turns true.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: HttpLimits,
    stats: Arc<HttpStats>,
    mut stopped: watch::Receiver<bool>,
) {
    let connections = Arc::new(Connections {
        slots: Mutex::new(HashMap::new()),
        started: Instant::now(),
        limits,
        stats: Arc::clone(&stats),
    });
    let mut next_id = 0u64;
    let mut said_accept_error = false;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopped.wait_for(|stop| *stop) => return,
        };
        let stream = match accepted {
            Ok((stream, _)) => stream,
            Err(error) => {
                // Out of descriptors, most likely: count it, say it once, and pause rather
                // than spin (the pending connection stays queued).
                stats.accept_errors.fetch_add(1, Ordering::Relaxed);
                if !said_accept_error {
                    said_accept_error = true;
                    eprintln!(
                        "goroscope: agent: accepting an HTTP connection failed: {error}; \
                         counted in goroscope_http_connections_refused_total (said once)"
                    );
                }
                tokio::time::sleep(ACCEPT_PAUSE).await;
                continue;
            }
        };
        match connections.make_room() {
            None => {
                stats.refused.fetch_add(1, Ordering::Relaxed);
                drop(stream);
                continue;
            }
            // Let the evicted connection's task close its socket before the next accept: a
            // burst must not hold more descriptors than the cap while evictions are pending.
            Some(true) => tokio::task::yield_now().await,
            Some(false) => {}
        }
        stats.accepted.fetch_add(1, Ordering::Relaxed);
        next_id += 1;
        let id = next_id;
        let slot = connections.add(id);
        let connections = Arc::clone(&connections);
        let app = app.clone();
        let stopped = stopped.clone();
        tokio::spawn(async move {
            let how = serve_one(stream, &slot, &connections, app, stopped).await;
            connections.remove(id, &how);
        });
    }
}

/// Serves one connection until it ends; says how it ended.
async fn serve_one(
    stream: TcpStream,
    slot: &Arc<Slot>,
    connections: &Connections,
    app: axum::Router,
    mut stopped: watch::Receiver<bool>,
) -> Ended {
    let limits = connections.limits;
    let io = Tracked {
        io: TokioIo::new(stream),
        slot: Arc::clone(slot),
        started: connections.started,
    };
    let busy_slot = Arc::clone(slot);
    let service = hyper::service::service_fn(move |request: Request<Incoming>| {
        let busy = Busy::start(&busy_slot);
        let mut app = app.clone();
        async move {
            let response = app.call(request).await;
            drop(busy);
            response
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let mut conn = pin!(builder.serve_connection(io, service));
    loop {
        let idle_ms = connections
            .now_ms()
            .saturating_sub(slot.last_active_ms.load(Ordering::Relaxed));
        let idle_for = Duration::from_millis(idle_ms);
        if idle_for >= limits.idle_timeout && slot.busy.load(Ordering::Relaxed) == 0 {
            return Ended::Idle;
        }
        let check_again = limits
            .idle_timeout
            .saturating_sub(idle_for)
            .max(Duration::from_millis(100));
        tokio::select! {
            result = conn.as_mut() => {
                return match result {
                    Ok(()) => Ended::ByClient,
                    Err(error) if error.is_timeout() => Ended::HeaderTimeout,
                    Err(_) => Ended::Error,
                };
            }
            () = slot.close.notified() => return Ended::Evicted,
            _ = stopped.wait_for(|stop| *stop) => return Ended::Stopping,
            () = tokio::time::sleep(check_again) => {}
        }
    }
}

/// Marks a connection busy while a request is answered.
struct Busy(Arc<Slot>);

impl Busy {
    fn start(slot: &Arc<Slot>) -> Self {
        slot.busy.fetch_add(1, Ordering::Relaxed);
        Busy(Arc::clone(slot))
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A connection's socket that notes when traffic last went through it.
struct Tracked {
    io: TokioIo<TcpStream>,
    slot: Arc<Slot>,
    started: Instant,
}

impl Tracked {
    fn note<T>(&self, result: &Poll<io::Result<T>>) {
        if matches!(result, Poll::Ready(Ok(_))) {
            self.slot
                .last_active_ms
                .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        }
    }
}

impl Read for Tracked {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_read(cx, buf);
        this.note(&result);
        result
    }
}

impl Write for Tracked {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write(cx, buf);
        this.note(&result);
        result
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.io).poll_write_vectored(cx, bufs);
        this.note(&result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_take_at_most_a_quarter_of_the_descriptors() {
        assert_eq!(HttpLimits::for_open_files(1024).max_connections, 256);
        assert_eq!(HttpLimits::for_open_files(1_048_576).max_connections, 256);
        assert_eq!(HttpLimits::for_open_files(200).max_connections, 50);
        assert_eq!(HttpLimits::for_open_files(0).max_connections, 8);
    }
}
