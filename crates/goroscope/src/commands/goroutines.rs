//! `goroscope goroutines`: attach to one Go process, take a snapshot of its runtime every
//! `--interval`, feed the health model, and report (once at the end, or every `--report-every`
//! with `--watch`). Reading never stops or changes the target.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use goroscope_goprocess::{AttachError, GoProcess, MemoryError, SnapshotOptions};
use goroscope_model::goroutines::health::{HealthSettings, HealthTracker};

use crate::cli::{GoroutinesArgs, StreamFormat};
use crate::commands::{is_broken_pipe, PROC_ROOT};
use crate::output::goroutines::{globals_source, offsets_source, to_json, write_text, RunOutcome};
use crate::output::HumanNs;
use crate::run_control::RunControl;
use crate::settings::UsageError;
use crate::sink::{report_unwritten, Sink};

/// How long a one-shot report watches when no --duration is given.
const DEFAULT_DURATION: Duration = Duration::from_secs(5);
/// Shortest interval accepted: snapshots closer than this cost more than they tell.
const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// Most frames unwound per goroutine (Go's own traceback prints at most 100).
const MAX_FRAMES: usize = 1000;
/// Snapshots in a row that may fail on an unmapped read (a list being reallocated) before the
/// run gives up.
const MAX_SKIPPED_IN_A_ROW: u32 = 5;

/// Runs the command.
pub fn run(args: &GoroutinesArgs) -> anyhow::Result<()> {
    if args.interval < MIN_INTERVAL {
        return Err(UsageError(format!(
            "--interval {} is too short; use at least {}",
            humantime::format_duration(args.interval),
            humantime::format_duration(MIN_INTERVAL)
        ))
        .into());
    }
    if args.frames > MAX_FRAMES {
        return Err(UsageError(format!(
            "--frames {} is too many; use at most {MAX_FRAMES}",
            args.frames
        ))
        .into());
    }
    let duration = match (args.watch, args.duration) {
        (_, Some(duration)) => Some(duration),
        (true, None) => None,
        (false, None) => Some(DEFAULT_DURATION),
    };
    let mut process = GoProcess::attach(Path::new(PROC_ROOT), args.pid).map_err(attach_error)?;
    let info = process.info().clone();
    eprintln!(
        "goroscope: attached to PID {} ({}; struct offsets: {}; runtime globals: {}): a snapshot every {}; Ctrl-C to stop",
        info.pid,
        goroscope_model::text::escape(info.build.go_version.as_bytes()),
        offsets_source(info.offsets_source),
        globals_source(info.globals_source),
        humantime::format_duration(args.interval)
    );
    let control = RunControl::start(duration)?;
    let symbolizer = process.symbolizer();
    let mut tracker = HealthTracker::with_modules(
        HealthSettings {
            leak_after_ns: u64::try_from(args.leak_after.as_nanos()).unwrap_or(u64::MAX),
            long_lived_ns: u64::try_from(args.long_lived.as_nanos()).unwrap_or(u64::MAX),
            ..HealthSettings::default()
        },
        &info.build.module_paths(),
    );
    let options = SnapshotOptions {
        max_frames: args.frames,
    };
    let started = Instant::now();
    let mut next_snapshot = started;
    let mut last_report = started;
    let mut reported_snapshots = 0;
    let mut outcome = RunOutcome {
        exited_after_ns: None,
        skipped_snapshots: 0,
        exec: None,
    };
    let mut out = Sink::stdout(control.signals()).context("starting the output writer")?;
    let mut jitter = Jitter::seeded();
    let mut failed_in_a_row = 0u32;
    let mut failure: Option<anyhow::Error> = None;
    loop {
        match process.snapshot(&options) {
            Ok(snapshot) => {
                failed_in_a_row = 0;
                tracker.observe(&snapshot, &symbolizer);
            }
            Err(MemoryError::Exited { .. }) => {
                outcome.exited_after_ns = Some(started.elapsed().as_nanos() as u64);
                break;
            }
            // Never read on: the addresses learned at attach are another program's now.
            Err(MemoryError::Exec { into, .. }) => {
                outcome.exec = Some((started.elapsed().as_nanos() as u64, into));
                break;
            }
            Err(error) if !crate::settings::is_process(Path::new(PROC_ROOT), args.pid) => {
                drop(error);
                outcome.exited_after_ns = Some(started.elapsed().as_nanos() as u64);
                break;
            }
            // A list the runtime was just reallocating: that snapshot is skipped (and said),
            // the next one will read the new list.
            Err(MemoryError::Unmapped { .. }) if failed_in_a_row < MAX_SKIPPED_IN_A_ROW => {
                failed_in_a_row += 1;
                outcome.skipped_snapshots += 1;
            }
            Err(error @ MemoryError::PermissionDenied { .. }) => {
                failure = Some(UsageError(error.to_string()).into());
                break;
            }
            Err(error) => {
                failure = Some(anyhow::Error::new(error).context("taking a snapshot"));
                break;
            }
        }
        if args.watch && last_report.elapsed() >= args.report_every {
            last_report = Instant::now();
            reported_snapshots = tracker.snapshots_seen();
            if !print(&mut out, args, &info, &tracker, &symbolizer, &outcome)? {
                return Ok(());
            }
        }
        // Keep to the schedule, jittered by ±10% so snapshots never lock in phase with a periodic
        // workload (a 10 ms ticker sampled every 50 ms would otherwise be seen at the same point
        // of its cycle every time). When a snapshot overran, start the next one at once; the
        // report states the measured interval, so the resolution it gives stays honest.
        next_snapshot += jitter.around(args.interval);
        let now = Instant::now();
        if next_snapshot < now {
            next_snapshot = now;
        }
        while !control.should_stop() && Instant::now() < next_snapshot {
            let wait = next_snapshot.saturating_duration_since(Instant::now());
            std::thread::sleep(control.next_wait(wait.min(Duration::from_millis(50))));
        }
        if control.should_stop() {
            break;
        }
    }
    // Whatever ends the run, what was gathered is reported first (unless --watch just did).
    let unreported = tracker.snapshots_seen() > reported_snapshots
        || outcome.exited_after_ns.is_some()
        || outcome.exec.is_some();
    if tracker.snapshots_seen() > 0
        && unreported
        && !print(&mut out, args, &info, &tracker, &symbolizer, &outcome)?
    {
        return failure.map_or(Ok(()), Err);
    }
    match out.finish() {
        Ok(unwritten) => report_unwritten(unwritten, "lines"),
        Err(error) if is_broken_pipe(&error) => {}
        Err(error) => return Err(error).context("writing the report"),
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    if let Some((after, into)) = &outcome.exec {
        return Err(UsageError(format!(
            "process {} exec'd into {into} during observation, after {}; the report covers the {} snapshots read before",
            info.pid,
            HumanNs(*after),
            tracker.snapshots_seen()
        ))
        .into());
    }
    if let Some(after) = outcome.exited_after_ns {
        return Err(UsageError(format!(
            "process {} exited after {}; the report covers the {} snapshots read before",
            info.pid,
            HumanNs(after),
            tracker.snapshots_seen()
        ))
        .into());
    }
    Ok(())
}

/// Prints one report; false when stdout is closed (the run should end quietly).
fn print(
    out: &mut dyn Write,
    args: &GoroutinesArgs,
    info: &goroscope_goprocess::TargetInfo,
    tracker: &HealthTracker,
    symbolizer: &goroscope_goprocess::ProcessSymbolizer,
    outcome: &RunOutcome,
) -> anyhow::Result<bool> {
    let report = tracker.report(symbolizer);
    let written = match args.format {
        StreamFormat::Json => {
            let value = to_json(info, &report, outcome);
            let text = if args.watch {
                serde_json::to_string(&value)
            } else {
                serde_json::to_string_pretty(&value)
            }
            .context("encoding the report")?;
            writeln!(out, "{text}")
        }
        StreamFormat::Text => {
            let result = write_text(out, info, &report, outcome);
            if args.watch && result.is_ok() {
                writeln!(out, "----")
            } else {
                result
            }
        }
    }
    .and_then(|()| out.flush());
    match written {
        Ok(()) => Ok(true),
        Err(error) if is_broken_pipe(&error) => Ok(false),
        Err(error) => Err(error).context("writing the report"),
    }
}

/// Bad targets are the operator's to fix: exit code 2 with the reason. Failures of the read
/// itself (not permission, not a missing process) are run-time errors: exit code 1.
fn attach_error(error: AttachError) -> anyhow::Error {
    match error {
        AttachError::Memory(MemoryError::Io { .. } | MemoryError::BadRequest(_)) => {
            anyhow::Error::new(error).context("attaching")
        }
        other => UsageError(other.to_string()).into(),
    }
}

/// A tiny xorshift generator for schedule jitter (no need for a crate: quality barely matters).
struct Jitter(u64);

impl Jitter {
    fn seeded() -> Jitter {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x9e37_79b9_7f4a_7c15, |d| d.as_nanos() as u64);
        Jitter(seed | 1)
    }

    /// `interval` scaled by a factor uniform in [0.9, 1.1).
    fn around(&mut self, interval: Duration) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        let unit = (self.0 >> 11) as f64 / (1u64 << 53) as f64;
        interval.mul_f64(0.9 + 0.2 * unit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rejected_inferred_layout_is_a_usage_error() {
        let error = attach_error(AttachError::InferredLayoutRejected {
            pid: 7,
            version: "go1.28.1".into(),
            layout: "inferred (go1.27 layout + runtime code)".into(),
            what: "startpc is a function entry (goroutine 1 has startpc 0x0)".into(),
        });
        assert!(error.downcast_ref::<UsageError>().is_some(), "exit code 2");
        let message = error.to_string();
        assert!(
            message.contains("go1.28.1") && message.contains("startpc"),
            "{message}"
        );
    }

    #[test]
    fn jitter_stays_within_ten_percent_and_varies() {
        let mut jitter = Jitter(12345);
        let interval = Duration::from_millis(100);
        let samples: Vec<Duration> = (0..1000).map(|_| jitter.around(interval)).collect();
        assert!(samples
            .iter()
            .all(|d| *d >= Duration::from_millis(90) && *d < Duration::from_millis(110)));
        let distinct: std::collections::HashSet<_> = samples.iter().collect();
        assert!(distinct.len() > 900);
    }
}
