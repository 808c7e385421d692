//! Progress of a recording on stderr: a bar redrawn in place on a terminal (elapsed, snapshots,
//! CPU samples), or a plain line every few seconds when stderr is a file or a pipe.

use std::io::{IsTerminal, Write};
use std::time::Duration;

/// Plain progress lines when stderr is not a terminal: one this often.
const LINE_EVERY: Duration = Duration::from_secs(5);
/// Width of the bar, in characters.
const BAR: usize = 24;

/// Shows the progress of one recording.
pub struct Progress {
    duration: Duration,
    terminal: bool,
    last_line: Duration,
    drawn: bool,
}

impl Progress {
    /// Progress towards `duration`.
    pub fn new(duration: Duration) -> Progress {
        Progress {
            duration,
            terminal: std::io::stderr().is_terminal(),
            last_line: Duration::ZERO,
            drawn: false,
        }
    }

    /// Shows the state after `elapsed`.
    pub fn show(&mut self, elapsed: Duration, points: usize, snapshots: u64, samples: u64) {
        let mut err = std::io::stderr().lock();
        if self.terminal {
            let _ = write!(
                err,
                "\r{} ",
                line(elapsed, self.duration, points, snapshots, samples)
            );
            let _ = err.flush();
            self.drawn = true;
        } else if elapsed >= self.last_line + LINE_EVERY {
            self.last_line = elapsed;
            let _ = writeln!(
                err,
                "goroscope: {}",
                line(elapsed, self.duration, points, snapshots, samples)
            );
        }
    }

    /// Ends the bar's line.
    pub fn done(&mut self) {
        if self.drawn {
            eprintln!();
            self.drawn = false;
        }
    }
}

/// One progress line: `[#####-----] 12s/30s  120 points  118 snapshots  2376 samples`.
fn line(
    elapsed: Duration,
    duration: Duration,
    points: usize,
    snapshots: u64,
    samples: u64,
) -> String {
    let share = (elapsed.as_secs_f64() / duration.as_secs_f64().max(1e-9)).clamp(0.0, 1.0);
    let filled = (share * BAR as f64).round() as usize;
    format!(
        "[{}{}] {:>3}s/{}s  {points} points  {snapshots} snapshots  {samples} CPU samples",
        "#".repeat(filled),
        "-".repeat(BAR - filled),
        elapsed.as_secs(),
        duration.as_secs(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_shows_elapsed_against_duration() {
        let text = line(
            Duration::from_secs(15),
            Duration::from_secs(30),
            150,
            149,
            1485,
        );
        assert_eq!(
            text,
            "[############------------]  15s/30s  150 points  149 snapshots  1485 CPU samples"
        );
        let over = line(Duration::from_secs(40), Duration::from_secs(30), 0, 0, 0);
        assert!(
            over.starts_with(&format!("[{}]", "#".repeat(BAR))),
            "{over}"
        );
    }
}
