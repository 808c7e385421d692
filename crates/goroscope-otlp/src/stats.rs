//! What the exporter did, counted: cumulative counters per signal (atomics, so the sending
//! thread and readers never wait on each other), gauges of what is waiting, and the last
//! success and error. Shared through an `Arc` so the counts survive an exporter being
//! replaced; the agent turns a [`StatsSnapshot`] into its `goroscope_export_*` families.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::Signal;

/// Why items were dropped without being delivered.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// The queue was full: the oldest waiting requests made room for newer ones.
    QueueFull,
    /// The server kept failing with retryable errors until `max_elapsed` passed.
    RetriesExhausted,
    /// The server refused the request for good (e.g. HTTP 400, gRPC INVALID_ARGUMENT), or
    /// the TLS handshake failed.
    NotRetryable,
    /// The exporter shut down before they could be delivered.
    Shutdown,
    /// Their signal has no endpoint: it is not exported.
    Disabled,
}

impl DropReason {
    /// Every reason, in the order of [`SignalSnapshot::dropped_items`].
    pub const ALL: [DropReason; 5] = [
        DropReason::QueueFull,
        DropReason::RetriesExhausted,
        DropReason::NotRetryable,
        DropReason::Shutdown,
        DropReason::Disabled,
    ];

    /// Its name in counters (`reason` label).
    pub fn name(self) -> &'static str {
        match self {
            DropReason::QueueFull => "queue_full",
            DropReason::RetriesExhausted => "retries_exhausted",
            DropReason::NotRetryable => "not_retryable",
            DropReason::Shutdown => "shutdown",
            DropReason::Disabled => "disabled",
        }
    }
}

/// The counters of one signal.
#[derive(Default)]
struct SignalCounters {
    requests_sent: AtomicU64,
    items_sent: AtomicU64,
    items_rejected: AtomicU64,
    requests_retried: AtomicU64,
    items_dropped: [AtomicU64; 5],
    bytes_sent: AtomicU64,
    queued_bytes: AtomicU64,
    queued_requests: AtomicU64,
    /// Unix time of the last successful export in nanoseconds; 0 before the first.
    last_success_nanos: AtomicU64,
    texts: Mutex<Texts>,
}

/// The last messages of one signal.
#[derive(Default, Clone)]
struct Texts {
    last_error: Option<String>,
    last_rejection: Option<String>,
}

/// Cumulative counts of everything the exporter did, per signal.
#[derive(Default)]
pub struct ExportStats {
    signals: [SignalCounters; 3],
}

/// A copy of the counts of one signal at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SignalSnapshot {
    /// Requests the server accepted (a merged request counts once).
    pub requests_sent: u64,
    /// Items in accepted requests: data points (metrics), log records (logs), samples
    /// (profiles), including any the server then rejected.
    pub items_sent: u64,
    /// Items the server accepted the request of but rejected (OTLP partial success:
    /// `rejected_data_points`, `rejected_log_records`, `rejected_profiles` — for profiles
    /// the server counts profiles, not samples).
    pub items_rejected: u64,
    /// The server's message with the last partial success.
    pub last_rejection: Option<String>,
    /// Attempts that failed retryably and were tried again.
    pub requests_retried: u64,
    /// Items dropped, by reason, in [`DropReason::ALL`] order (see [`Self::dropped`]).
    pub dropped_items: [u64; 5],
    /// Bytes put on the wire: request bodies after compression (with gRPC's message
    /// framing), every attempt counted.
    pub bytes_sent: u64,
    /// Gauge: encoded bytes (before compression) waiting, including a request being sent.
    pub queued_bytes: u64,
    /// Gauge: requests waiting, including a request being sent.
    pub queued_requests: u64,
    /// When the last request was accepted.
    pub last_success: Option<SystemTime>,
    /// The last failure (a refused or failed attempt, retried or not).
    pub last_error: Option<String>,
}

impl SignalSnapshot {
    /// Items dropped for `reason`.
    pub fn dropped(&self, reason: DropReason) -> u64 {
        self.dropped_items[reason as usize]
    }

    /// Items dropped for any reason.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_items.iter().sum()
    }
}

/// A copy of all counts at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Per signal, in [`Signal::ALL`] order (see [`Self::signal`]).
    pub signals: [SignalSnapshot; 3],
}

impl StatsSnapshot {
    /// The counts of `signal`.
    pub fn signal(&self, signal: Signal) -> &SignalSnapshot {
        &self.signals[signal as usize]
    }
}

impl ExportStats {
    /// All counts at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// A copy of every count now.
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            signals: Signal::ALL.map(|signal| self.signal_snapshot(signal)),
        }
    }

    fn signal_snapshot(&self, signal: Signal) -> SignalSnapshot {
        let c = self.counters(signal);
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let texts = c.texts.lock().map(|t| t.clone()).unwrap_or_default();
        let nanos = load(&c.last_success_nanos);
        SignalSnapshot {
            requests_sent: load(&c.requests_sent),
            items_sent: load(&c.items_sent),
            items_rejected: load(&c.items_rejected),
            last_rejection: texts.last_rejection,
            requests_retried: load(&c.requests_retried),
            dropped_items: DropReason::ALL.map(|r| load(&c.items_dropped[r as usize])),
            bytes_sent: load(&c.bytes_sent),
            queued_bytes: load(&c.queued_bytes),
            queued_requests: load(&c.queued_requests),
            last_success: (nanos != 0).then(|| UNIX_EPOCH + Duration::from_nanos(nanos)),
            last_error: texts.last_error,
        }
    }

    fn counters(&self, signal: Signal) -> &SignalCounters {
        &self.signals[signal as usize]
    }

    /// A request of `items` items was accepted.
    pub(crate) fn sent(&self, signal: Signal, items: u64) {
        let c = self.counters(signal);
        c.requests_sent.fetch_add(1, Ordering::Relaxed);
        c.items_sent.fetch_add(items, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        c.last_success_nanos.store(nanos.max(1), Ordering::Relaxed);
    }

    /// The server accepted a request but rejected `items` of it, saying `message`.
    pub(crate) fn rejected(&self, signal: Signal, items: u64, message: &str) {
        let c = self.counters(signal);
        c.items_rejected.fetch_add(items, Ordering::Relaxed);
        if let Ok(mut texts) = c.texts.lock() {
            texts.last_rejection = Some(message.to_owned());
        }
    }

    /// An attempt failed and will be retried.
    pub(crate) fn retried(&self, signal: Signal) {
        self.counters(signal)
            .requests_retried
            .fetch_add(1, Ordering::Relaxed);
    }

    /// `items` items were dropped for `reason`.
    pub(crate) fn dropped(&self, signal: Signal, reason: DropReason, items: u64) {
        self.counters(signal).items_dropped[reason as usize].fetch_add(items, Ordering::Relaxed);
    }

    /// `bytes` bytes went on the wire.
    pub(crate) fn bytes_sent(&self, signal: Signal, bytes: u64) {
        self.counters(signal)
            .bytes_sent
            .fetch_add(bytes, Ordering::Relaxed);
    }

    /// The queue now holds `bytes` bytes in `requests` requests of `signal`.
    pub(crate) fn set_queued(&self, signal: Signal, bytes: u64, requests: u64) {
        let c = self.counters(signal);
        c.queued_bytes.store(bytes, Ordering::Relaxed);
        c.queued_requests.store(requests, Ordering::Relaxed);
    }

    /// An attempt failed with `message`.
    pub(crate) fn error(&self, signal: Signal, message: &str) {
        if let Ok(mut texts) = self.counters(signal).texts.lock() {
            texts.last_error = Some(message.to_owned());
        }
    }
}

impl std::fmt::Debug for ExportStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportStats")
            .field("now", &self.snapshot())
            .finish()
    }
}
