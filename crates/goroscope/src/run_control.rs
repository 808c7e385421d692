//! When a run stops: Ctrl-C (SIGINT), SIGTERM, or the end of `--duration`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;

/// Tells a collection loop when to stop.
pub struct RunControl {
    interrupted: Arc<AtomicBool>,
    deadline: Option<Instant>,
}

impl RunControl {
    /// Catches SIGINT and SIGTERM from now on; stops after `duration` if given.
    pub fn start(duration: Option<Duration>) -> anyhow::Result<Self> {
        let interrupted = Arc::new(AtomicBool::new(false));
        for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
            signal_hook::flag::register(signal, Arc::clone(&interrupted))
                .with_context(|| format!("installing a handler for signal {signal}"))?;
        }
        Ok(Self {
            interrupted,
            deadline: duration.map(|d| Instant::now() + d),
        })
    }

    /// True once a signal came or the duration is over.
    pub fn should_stop(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed)
            || self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// How long to wait before checking again: at most `step`, less near the deadline.
    pub fn next_wait(&self, step: Duration) -> Duration {
        match self.deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(step),
            None => step,
        }
    }
}
