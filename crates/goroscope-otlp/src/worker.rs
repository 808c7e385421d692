//! The sending thread: a tokio current-thread runtime running one sender per signal, so a
//! dead endpoint of one signal never holds up another. A sender takes the oldest waiting
//! requests of its signal (merged up to `batch_bytes`), delivers them, retrying with backoff
//! or after the server's delay until `max_elapsed`, and only then takes the next (so
//! requests arrive in order). It never panics and never makes the caller wait: the caller
//! only touches the queue under its mutex and wakes the sender.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Instant;

use bytes::Bytes;
use tokio::sync::Notify;

use crate::config::{ExporterConfig, Signal};
use crate::log::Log;
use crate::queue::{Dropped, Queue, Taken};
use crate::retry::{Backoff, Retry};
use crate::stats::{DropReason, ExportStats};
use crate::transport::{Outcome, Settings, Transport};

/// What the caller and the sending thread share.
pub(crate) struct Shared {
    pub queue: Mutex<Queue>,
    pub state: Mutex<State>,
    pub stats: Arc<ExportStats>,
    /// Wakes the sender of each signal: new requests, a new configuration, shutdown.
    pub wake: [Notify; 3],
    pub log: Log,
}

/// The configuration in force, and whether the exporter is shutting down.
pub(crate) struct State {
    pub config: ExporterConfig,
    pub settings: Settings,
    /// Bumped by every new configuration: senders then build new transports.
    pub generation: u64,
    /// When shutting down: the moment what is still waiting is dropped.
    pub shutdown: Option<Instant>,
}

/// A copy of the state one attempt needs.
struct Now {
    config: ExporterConfig,
    settings: Settings,
    generation: u64,
    shutdown: Option<Instant>,
}

/// What is left to count of a request once its body is on its way.
struct Done {
    items: u64,
}

/// Locks `mutex`, also after a panic elsewhere (the data stays consistent: every update
/// under these locks is a few plain assignments).
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    fn now(&self) -> Now {
        let state = lock(&self.state);
        Now {
            config: state.config.clone(),
            settings: state.settings.clone(),
            generation: state.generation,
            shutdown: state.shutdown,
        }
    }

    /// Counts what the queue dropped to make room and refreshes the queue gauges.
    pub fn account(&self, queue: &Queue, dropped: &[Dropped]) {
        for d in dropped {
            self.stats.dropped(d.signal, DropReason::QueueFull, d.items);
        }
        for signal in Signal::ALL {
            let held = queue.held(signal);
            self.stats.set_queued(signal, held.bytes, held.requests);
        }
    }

    /// Wakes every sender.
    pub fn wake_all(&self) {
        for wake in &self.wake {
            wake.notify_one();
        }
    }

    /// The sender of `signal` is done with its request; counts it dropped for `reason`
    /// unless the queue already dropped it.
    fn finish(&self, signal: Signal, taken: &Done, reason: Option<DropReason>) -> bool {
        let mut queue = lock(&self.queue);
        let ours = queue.finish(signal);
        if let (true, Some(reason)) = (ours, reason) {
            self.stats.dropped(signal, reason, taken.items);
        }
        self.account(&queue, &[]);
        ours
    }
}

/// Runs the senders until shutdown; then returns.
pub(crate) async fn run(shared: Arc<Shared>) {
    let senders = Signal::ALL.map(|signal| tokio::spawn(send_signal(Arc::clone(&shared), signal)));
    for sender in senders {
        // A sender that panicked has nothing left to do; the others go on.
        let _ = sender.await;
    }
}

/// The sender of one signal.
async fn send_signal(shared: Arc<Shared>, signal: Signal) {
    let mut transport: Option<(u64, Transport)> = None;
    loop {
        let now = shared.now();
        let taken = {
            let mut queue = lock(&shared.queue);
            if now.shutdown.is_some_and(|at| Instant::now() >= at) {
                let items = queue.drain(signal);
                shared.stats.dropped(signal, DropReason::Shutdown, items);
                shared.account(&queue, &[]);
                return;
            }
            let taken = queue.take(signal, now.config.batch_bytes);
            shared.account(&queue, &[]);
            taken
        };
        match taken {
            Some(taken) => deliver(&shared, signal, taken, &mut transport).await,
            None if now.shutdown.is_some() => return,
            None => shared.wake[signal as usize].notified().await,
        }
    }
}

/// Delivers one request, retrying while the rules allow.
async fn deliver(
    shared: &Shared,
    signal: Signal,
    taken: Taken,
    transport: &mut Option<(u64, Transport)>,
) {
    let body = Bytes::from(taken.body);
    let taken = &Done { items: taken.items };
    let started = Instant::now();
    let mut backoff = Backoff::new();
    loop {
        let now = shared.now();
        if lock(&shared.queue).is_cancelled(signal) {
            shared.finish(signal, taken, None);
            return;
        }
        let at = Instant::now();
        if now.shutdown.is_some_and(|deadline| at >= deadline) {
            shared.finish(signal, taken, Some(DropReason::Shutdown));
            return;
        }
        let Some(endpoint) = now.config.endpoint(signal) else {
            shared.finish(signal, taken, Some(DropReason::Disabled));
            return;
        };
        if transport.as_ref().is_none_or(|(g, _)| *g != now.generation) {
            let built = Transport::new(&now.settings, endpoint, signal, Arc::clone(&shared.stats));
            *transport = Some((now.generation, built));
        }
        let Some((_, client)) = transport.as_ref() else {
            return;
        };
        let timeout = match now.shutdown {
            Some(deadline) => now
                .config
                .timeout
                .min(deadline.saturating_duration_since(at)),
            None => now.config.timeout,
        };
        let outcome = tokio::select! {
            outcome = client.export(&body, timeout) => outcome,
            () = shutdown_passed(shared, signal) => {
                shared.finish(signal, taken, Some(DropReason::Shutdown));
                return;
            }
        };
        let failure = match outcome {
            Outcome::Delivered(partial) => {
                if shared.finish(signal, taken, None) {
                    shared.stats.sent(signal, taken.items);
                    if partial.rejected > 0 || !partial.message.is_empty() {
                        shared
                            .stats
                            .rejected(signal, partial.rejected, &partial.message);
                        let text = format!(
                            "{endpoint} accepted a request but rejected {} of its items: {}",
                            partial.rejected, partial.message
                        );
                        shared.log.say(signal, "partial success", &text);
                    }
                }
                return;
            }
            Outcome::Failed(failure) => failure,
        };
        shared.stats.error(signal, &failure.message);
        let delay = match failure.retry {
            Retry::No => {
                let text = format!("{} (dropped, not retryable)", failure.message);
                shared.log.say(signal, &failure.kind, &text);
                shared.finish(signal, taken, Some(DropReason::NotRetryable));
                return;
            }
            Retry::After(delay) => delay.unwrap_or_else(|| backoff.next_delay()),
        };
        if started.elapsed() + delay > now.config.max_elapsed {
            let text = format!(
                "{} (dropped: still failing after {:?})",
                failure.message, now.config.max_elapsed
            );
            shared.log.say(signal, &failure.kind, &text);
            shared.finish(signal, taken, Some(DropReason::RetriesExhausted));
            return;
        }
        let text = format!("{} (retrying in {delay:.1?})", failure.message);
        shared.log.say(signal, &failure.kind, &text);
        shared.stats.retried(signal);
        wait(shared, signal, Instant::now() + delay, now.generation).await;
    }
}

/// Waits until `retry_at`, or less: until the request is dropped from the queue, a new
/// configuration arrives (tried at once) or the shutdown deadline passes.
async fn wait(shared: &Shared, signal: Signal, retry_at: Instant, generation: u64) {
    loop {
        let (current, shutdown) = {
            let state = lock(&shared.state);
            (state.generation, state.shutdown)
        };
        if current != generation || lock(&shared.queue).is_cancelled(signal) {
            return;
        }
        let until = shutdown.map_or(retry_at, |deadline| deadline.min(retry_at));
        if Instant::now() >= until {
            return;
        }
        tokio::select! {
            () = tokio::time::sleep_until(until.into()) => {}
            () = shared.wake[signal as usize].notified() => {}
        }
    }
}

/// Returns once the exporter is shutting down and its deadline has passed (to cut an
/// attempt short).
async fn shutdown_passed(shared: &Shared, signal: Signal) {
    loop {
        let shutdown = lock(&shared.state).shutdown;
        match shutdown {
            Some(deadline) => {
                tokio::time::sleep_until(deadline.into()).await;
                return;
            }
            None => shared.wake[signal as usize].notified().await,
        }
    }
}
