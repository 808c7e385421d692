//! What the collection loop hands to the HTTP side: the latest exposition and whether the
//! first collection is done. Swapped whole under a short lock. Each format is rendered at most
//! once per collection, on the first scrape that asks for it, and every later scrape shares
//! those bytes: scrapes allocate nothing large and cost the same however often they come.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use std::sync::OnceLock;

use axum::body::Bytes;
use goroscope_export::{Exposition, Format};

/// One collection, and its renderings once asked for.
#[derive(Default)]
struct Published {
    exposition: Exposition,
    text: OnceLock<Bytes>,
    openmetrics: OnceLock<Bytes>,
}

impl Published {
    fn rendered(&self, format: Format) -> Bytes {
        let cell = match format {
            Format::PrometheusText => &self.text,
            Format::OpenMetrics => &self.openmetrics,
        };
        cell.get_or_init(|| {
            let mut body = Vec::with_capacity(self.exposition.series_count() * 96);
            self.exposition.render(format, &mut body);
            Bytes::from(body)
        })
        .clone()
    }
}

/// State shared between the collection loop and the HTTP server.
pub struct Shared {
    latest: RwLock<Arc<Published>>,
    ready: AtomicBool,
    started: Instant,
    /// Milliseconds after `started` of the last publish.
    published_ms: AtomicU64,
    /// Longest acceptable time between publishes, in ms (changes with the interval).
    stale_after_ms: AtomicU64,
}

impl Shared {
    /// Nothing published yet; healthy while publishes come at most `stale_after` apart.
    pub fn new(stale_after: Duration) -> Self {
        Self {
            latest: RwLock::default(),
            ready: AtomicBool::new(false),
            started: Instant::now(),
            published_ms: AtomicU64::new(0),
            stale_after_ms: AtomicU64::new(stale_after.as_millis() as u64),
        }
    }

    /// Changes how long collection may go without publishing before /healthz fails.
    pub fn set_stale_after(&self, stale_after: Duration) {
        self.stale_after_ms
            .store(stale_after.as_millis() as u64, Ordering::Relaxed);
    }

    /// None while collections keep coming; else how long since the last one.
    pub fn stalled_for(&self) -> Option<Duration> {
        let now = self.started.elapsed().as_millis() as u64;
        let since = now.saturating_sub(self.published_ms.load(Ordering::Relaxed));
        (since > self.stale_after_ms.load(Ordering::Relaxed)).then(|| Duration::from_millis(since))
    }

    /// Publishes a complete exposition; the agent is ready from the first one on.
    pub fn publish(&self, exposition: Exposition) {
        let exposition = Arc::new(Published {
            exposition,
            ..Published::default()
        });
        match self.latest.write() {
            Ok(mut latest) => *latest = exposition,
            Err(poisoned) => *poisoned.into_inner() = exposition,
        }
        self.published_ms
            .store(self.started.elapsed().as_millis() as u64, Ordering::Relaxed);
        self.ready.store(true, Ordering::Release);
    }

    /// True once a collection has been published.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The latest exposition in `format`.
    pub fn render(&self, format: Format) -> Bytes {
        let latest = match self.latest.read() {
            Ok(latest) => Arc::clone(&latest),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        };
        latest.rendered(format)
    }
}
