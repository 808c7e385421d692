//! When a run stops: Ctrl-C (SIGINT), SIGTERM, or the end of `--duration`. Stop signals are
//! counted, not just flagged: the first ends collection; whatever waits on output after that
//! (see `sink.rs`) gives up on a signal that came after it began, so a report blocked by a
//! reader that does not read is abandoned by the next signal, with what was not written said.
//! A third signal ends the process at once, whatever it is doing (the kernel then detaches its
//! programs with its descriptors).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

/// How many SIGINT/SIGTERM have arrived, shared with whatever must stop waiting on them.
#[derive(Clone, Debug, Default)]
pub struct StopSignals(Arc<AtomicUsize>);

impl StopSignals {
    /// Signals so far.
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }

    /// True once any came.
    pub fn any(&self) -> bool {
        self.count() > 0
    }

    /// Counts SIGINT and SIGTERM from now on; the third exits the process at once with status
    /// 128 + the signal, as an unhandled one would.
    pub fn catch() -> anyhow::Result<StopSignals> {
        let signals = StopSignals::default();
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            let count = Arc::clone(&signals.0);
            let action = move || {
                if count.fetch_add(1, Ordering::SeqCst) >= 2 {
                    signal_hook::low_level::exit(128 + signal);
                }
            };
            // SAFETY: the action only does an atomic add and, at the third signal, _exit: both
            // are async-signal-safe.
            unsafe { signal_hook::low_level::register(signal, action) }
                .with_context(|| format!("installing a handler for signal {signal}"))?;
        }
        Ok(signals)
    }

    /// A signal that stands for "stop" (for tests of what waits on one).
    #[cfg(test)]
    pub fn raise(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// Tells a collection loop when to stop.
pub struct RunControl {
    signals: StopSignals,
    deadline: Option<Instant>,
}

impl RunControl {
    /// Catches SIGINT and SIGTERM from now on; stops after `duration` if given.
    pub fn start(duration: Option<Duration>) -> anyhow::Result<Self> {
        Ok(Self {
            signals: StopSignals::catch()?,
            deadline: duration.map(|d| Instant::now() + d),
        })
    }

    /// True once a signal came or the duration is over.
    pub fn should_stop(&self) -> bool {
        self.signals.any() || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// The stop signals, for whatever else must stop waiting on them (the output's writer).
    pub fn signals(&self) -> StopSignals {
        self.signals.clone()
    }

    /// How long to wait before checking again: at most `step`, less near the deadline.
    pub fn next_wait(&self, step: Duration) -> Duration {
        match self.deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(step),
            None => step,
        }
    }
}
