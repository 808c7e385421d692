//! The exporter's few lines on stderr (`goroscope: otlp: ...`): a failure is told once per
//! signal and kind of failure per [`QUIET`], with how many like it were not told, so an
//! outage costs a line a minute, not a line a request.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::config::Signal;

/// How long a kind of failure stays quiet after it was told.
pub(crate) const QUIET: Duration = Duration::from_secs(60);

/// Rate-limited lines on stderr.
#[derive(Default)]
pub(crate) struct Log {
    /// Per signal and kind: when it was last told, and how many were not told since.
    told: Mutex<HashMap<(Signal, String), (Instant, u64)>>,
}

impl Log {
    /// Tells `message` unless a line of the same signal and kind was told within [`QUIET`].
    pub fn say(&self, signal: Signal, kind: &str, message: &str) {
        let Ok(mut told) = self.told.lock() else {
            return;
        };
        let now = Instant::now();
        match told.get_mut(&(signal, kind.to_owned())) {
            Some((last, quiet)) if now.duration_since(*last) < QUIET => *quiet += 1,
            Some((last, quiet)) => {
                let more = match *quiet {
                    0 => String::new(),
                    n => format!(" ({n} more like it in the last {}s)", QUIET.as_secs()),
                };
                eprintln!("goroscope: otlp: {}: {message}{more}", signal.name());
                *last = now;
                *quiet = 0;
            }
            None => {
                eprintln!("goroscope: otlp: {}: {message}", signal.name());
                told.insert((signal, kind.to_owned()), (now, 0));
            }
        }
    }
}
