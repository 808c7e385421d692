//! When a run stops: Ctrl-C (SIGINT), SIGTERM, or the end of `--duration`. The first signal
//! asks the command to stop (it detaches, reports, exits); a second one ends the process at
//! once, whatever it is doing (the kernel detaches its programs with its descriptors).

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
        catch_stop_signals(&interrupted)?;
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

    /// The flag SIGINT and SIGTERM set, for whatever else must stop waiting on them (the
    /// output's writer).
    pub fn interrupted(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.interrupted)
    }

    /// How long to wait before checking again: at most `step`, less near the deadline.
    pub fn next_wait(&self, step: Duration) -> Duration {
        match self.deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).min(step),
            None => step,
        }
    }
}

/// Sets `flag` on SIGINT and SIGTERM; a signal that finds it already set exits the process
/// at once (status 128 + the signal), as an unhandled one would.
pub fn catch_stop_signals(flag: &Arc<AtomicBool>) -> anyhow::Result<()> {
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registered first, so it sees the flag as the previous signal left it.
        signal_hook::flag::register_conditional_shutdown(signal, 128 + signal, Arc::clone(flag))
            .with_context(|| format!("installing a handler for signal {signal}"))?;
        signal_hook::flag::register(signal, Arc::clone(flag))
            .with_context(|| format!("installing a handler for signal {signal}"))?;
    }
    Ok(())
}
