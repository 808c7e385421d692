//! The exporter the agent holds: [`Exporter::send`] queues a request and returns at once;
//! the sending thread ([`crate::worker`]) delivers it. A new configuration replaces the
//! endpoints and settings but keeps the queue and the counts.

use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::batch::Batch;
use crate::config::ExporterConfig;
use crate::error::ExportError;
use crate::log::Log;
use crate::queue::Queue;
use crate::split::split;
use crate::stats::{DropReason, ExportStats};
use crate::transport::Settings;
use crate::worker::{self, lock, Shared, State};

/// Delivers OTLP requests to their endpoints from a thread of its own.
pub struct Exporter {
    config: ExporterConfig,
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Exporter {
    /// Starts the sending thread (named `goroscope-otlp`; a tokio current-thread runtime
    /// inside). Fails on bad TLS files (unreadable, not PEM, a certificate without its key)
    /// with an error naming the file, on headers HTTP cannot carry, and on a plaintext
    /// endpoint off this host unless `tls.insecure` allows it. Connections are made when
    /// the first request is sent: a server that is down is not an error here.
    pub fn start(config: ExporterConfig, stats: Arc<ExportStats>) -> Result<Exporter, ExportError> {
        let settings = Settings::new(&config)?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| ExportError::Thread { source })?;
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            state: Mutex::new(State {
                config: config.clone(),
                settings,
                generation: 0,
                shutdown: None,
            }),
            stats,
            wake: [Notify::new(), Notify::new(), Notify::new()],
            log: Log::default(),
        });
        let sending = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("goroscope-otlp".to_owned())
            .spawn(move || {
                runtime.block_on(worker::run(sending));
                // Connections still closing and DNS look-ups in flight are abandoned.
                runtime.shutdown_background();
            })
            .map_err(|source| ExportError::Thread { source })?;
        Ok(Exporter {
            config,
            shared,
            thread: Some(thread),
        })
    }

    /// The configuration in force.
    pub fn config(&self) -> &ExporterConfig {
        &self.config
    }

    /// Queues a request and returns: encoding it and a short critical section, never the
    /// network. A request of a signal without an endpoint is counted dropped with reason
    /// `disabled` (so the counts show that data was produced for a signal that is off).
    /// When the queue is full, the oldest requests are dropped (reason `queue_full`).
    pub fn send(&self, batch: Batch) {
        let signal = batch.signal();
        let items = batch.items();
        if self.config.endpoint(signal).is_none() {
            self.shared
                .stats
                .dropped(signal, DropReason::Disabled, items);
            return;
        }
        // Servers refuse requests above a size (the Collector's gRPC receiver: 4 MiB) as not
        // retryable: a large one goes as several of at most `batch_bytes`.
        let pieces = split(batch, self.config.batch_bytes);
        let bodies: Vec<(Vec<u8>, u64)> = pieces
            .iter()
            .map(|piece| (piece.encode(), piece.items()))
            .collect();
        drop(pieces);
        debug_assert_eq!(bodies.iter().map(|(_, n)| n).sum::<u64>(), items);
        {
            let mut queue = lock(&self.shared.queue);
            for (body, items) in bodies {
                let dropped = queue.push(signal, body, items, self.config.queue_bytes);
                self.shared.account(&queue, &dropped);
            }
        }
        self.shared.wake[signal as usize].notify_one();
    }

    /// Takes a new configuration: endpoints, protocol, TLS, headers, compression, timeout
    /// and bounds. What is queued stays (trimmed to a smaller `queue_bytes`, oldest first)
    /// and goes to the new endpoints; a request being retried is tried again at once. On an
    /// error (see [`Exporter::start`]) the old configuration stays in force.
    pub fn reconfigure(&mut self, config: ExporterConfig) -> Result<(), ExportError> {
        let settings = Settings::new(&config)?;
        {
            let mut state = lock(&self.shared.state);
            state.config = config.clone();
            state.settings = settings;
            state.generation += 1;
        }
        {
            let mut queue = lock(&self.shared.queue);
            let dropped = queue.make_room(config.queue_bytes);
            self.shared.account(&queue, &dropped);
        }
        self.config = config;
        self.shared.wake_all();
        Ok(())
    }

    /// Delivers what is queued for at most `deadline`, then drops the rest (counted, reason
    /// `shutdown`) and joins the sending thread.
    pub fn shutdown(mut self, deadline: Duration) {
        self.stop(deadline);
    }

    fn stop(&mut self, deadline: Duration) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        lock(&self.shared.state).shutdown = Some(Instant::now() + deadline);
        self.shared.wake_all();
        // The thread never panics; if it did, there is nothing left to clean up.
        let _ = thread.join();
    }
}

/// Dropping an exporter without [`Exporter::shutdown`] drops what is queued at once.
impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop(Duration::ZERO);
    }
}

impl std::fmt::Debug for Exporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exporter")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}
