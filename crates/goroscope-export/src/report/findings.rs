//! The report's verdict: what an engineer would say first after reading the recording, as
//! plain data (the renderer turns it into the summary list).
//!
//! Each [`Finding`] has a kind (what it is about), a severity and a sentence with the
//! evidence. Thresholds:
//! - leak suspects: `bad` when growing or stuck on an operation healthy code does not wait on,
//!   `warn` otherwise;
//! - waiting for a CPU: `warn` when runnable time is at least a quarter of running time;
//!   locks: `warn` from 20 % of all goroutine time;
//! - GC pauses: p99 `warn` from 1 ms, `bad` from 10 ms;
//! - run queues: mean backlog (global + local) `warn` above GOMAXPROCS, `bad` above four times;
//! - syscalls: `warn` when calls fail with an errno other than the routine ones (`EAGAIN`,
//!   `EINTR`, `EINPROGRESS`, `ETIMEDOUT`, which Go's netpoller and futexes return all day);
//! - open fds: `bad` on a steady climb ([`fd_climb`]);
//! - the window: `bad` when the process exited, `warn` when interrupted or replaced by exec.

use goroscope_model::recording::{Ended, Recording, SyscallSummary};

pub use super::fd_climb::{fd_climb, FdClimb, FD_CLIMB_MIN_POINTS, FD_CLIMB_WINDOWS};
use super::findings_go;
use super::format::{format_count, format_duration_ns, format_rate, format_share};
use super::time_value;
use crate::profile::function_totals;

/// How much a finding matters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Nothing wrong.
    Ok,
    /// Worth a look.
    Warn,
    /// Something is wrong.
    Bad,
}

impl Severity {
    /// The CSS class the report gives it: `ok`, `warn` or `bad`.
    pub fn class(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warn => "warn",
            Severity::Bad => "bad",
        }
    }
}

/// What a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FindingKind {
    /// How the recording ended (exit, exec, interruption).
    Ended,
    /// The process is not Go (or its runtime could not be read).
    NotGo,
    /// A group of goroutines that looks leaked.
    Leak,
    /// Where goroutine time went, by wait category.
    Waits,
    /// GC pauses and the heap.
    Gc,
    /// Run-queue backlog.
    Scheduler,
    /// The hottest functions on CPU.
    Cpu,
    /// Failing syscalls.
    Syscalls,
    /// Open file descriptors over time.
    Fds,
}

impl FindingKind {
    /// Its `data-kind` in the report.
    pub fn name(self) -> &'static str {
        match self {
            FindingKind::Ended => "ended",
            FindingKind::NotGo => "not-go",
            FindingKind::Leak => "leak",
            FindingKind::Waits => "waits",
            FindingKind::Gc => "gc",
            FindingKind::Scheduler => "scheduler",
            FindingKind::Cpu => "cpu",
            FindingKind::Syscalls => "syscalls",
            FindingKind::Fds => "fds",
        }
    }

    /// The report section with the details.
    pub fn section(self) -> &'static str {
        match self {
            FindingKind::Ended => "notes",
            FindingKind::NotGo => "goroutines",
            FindingKind::Leak => "leaks",
            FindingKind::Waits => "waits",
            FindingKind::Gc => "gc",
            FindingKind::Scheduler => "scheduler",
            FindingKind::Cpu => "cpu",
            FindingKind::Syscalls => "syscalls",
            FindingKind::Fds => "fds",
        }
    }
}

/// One conclusion with its evidence, in plain text (not escaped).
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// What it is about.
    pub kind: FindingKind,
    /// How much it matters.
    pub severity: Severity,
    /// The conclusion, one sentence.
    pub text: String,
}

/// Every finding of `recording`, worst first (in the order of the sections within a severity).
pub fn findings(recording: &Recording) -> Vec<Finding> {
    let mut out = Vec::new();
    ended(recording, &mut out);
    match &recording.go {
        None => out.push(Finding {
            kind: FindingKind::NotGo,
            severity: Severity::Warn,
            text: format!(
                "Not a Go process: {}. Goroutine, GC and scheduler figures are not available.",
                recording
                    .target
                    .not_go
                    .as_deref()
                    .unwrap_or("the Go runtime could not be read")
            ),
        }),
        Some(_) => {
            findings_go::leaks(recording, &mut out);
            findings_go::waits(recording, &mut out);
            findings_go::gc(recording, &mut out);
            findings_go::scheduler(recording, &mut out);
        }
    }
    cpu(recording, &mut out);
    syscalls(recording, &mut out);
    fds(recording, &mut out);
    out.sort_by_key(|finding| std::cmp::Reverse(finding.severity));
    out
}

pub(crate) fn push(out: &mut Vec<Finding>, kind: FindingKind, severity: Severity, text: String) {
    out.push(Finding {
        kind,
        severity,
        text,
    });
}

fn ended(recording: &Recording, out: &mut Vec<Finding>) {
    let window = &recording.window;
    let (severity, text) = match &window.ended {
        Ended::Completed => (
            Severity::Ok,
            format!(
                "Recorded the full {} as asked.",
                format_duration_ns(window.recorded_ns)
            ),
        ),
        Ended::Interrupted { after_ns } => (
            Severity::Warn,
            format!(
                "Interrupted after {} of the {} asked: figures cover that part only.",
                format_duration_ns(*after_ns),
                format_duration_ns(window.requested_ns)
            ),
        ),
        Ended::Exited { after_ns } => (
            Severity::Bad,
            format!(
                "The process exited {} into the recording: figures stop there.",
                format_duration_ns(*after_ns)
            ),
        ),
        Ended::Exec { after_ns, into } => (
            Severity::Warn,
            format!(
                "The process replaced its program (exec{}) {} into the recording: figures stop there.",
                if into.is_empty() {
                    String::new()
                } else {
                    format!(" into {into}")
                },
                format_duration_ns(*after_ns)
            ),
        ),
    };
    push(out, FindingKind::Ended, severity, text);
}

fn cpu(recording: &Recording, out: &mut Vec<Finding>) {
    let Some(profile) = &recording.cpu_profile else {
        return;
    };
    let (rows, total) = function_totals(profile, time_value(profile));
    if total <= 0 {
        return;
    }
    let hottest: Vec<String> = rows
        .iter()
        .take(3)
        .map(|row| {
            format!(
                "{} {}",
                row.name,
                format_share(row.flat as f64, total as f64)
            )
        })
        .collect();
    let cores = if recording.window.recorded_ns > 0 {
        format!(
            " ({:.2} CPUs on average)",
            total as f64 / recording.window.recorded_ns as f64
        )
    } else {
        String::new()
    };
    push(
        out,
        FindingKind::Cpu,
        Severity::Ok,
        format!(
            "CPU: {} sampled{cores}; hottest functions (flat): {}.",
            format_duration_ns(total.unsigned_abs()),
            hottest.join(", ")
        ),
    );
}

/// Failures Go programs see all day: the netpoller's `EAGAIN`, interrupted and timed-out waits.
const ROUTINE_ERRNOS: [&str; 5] = ["EAGAIN", "EWOULDBLOCK", "EINTR", "EINPROGRESS", "ETIMEDOUT"];

fn syscalls(recording: &Recording, out: &mut Vec<Finding>) {
    if recording.syscalls.is_empty() {
        return;
    }
    let mut failing: Vec<_> = recording.syscalls.iter().filter(|s| s.errors > 0).collect();
    if failing.is_empty() {
        push(
            out,
            FindingKind::Syscalls,
            Severity::Ok,
            "No syscall failed.".to_string(),
        );
        return;
    }
    // Unusual failures first: a flood of routine EAGAIN must not hide twelve EPIPEs.
    let unusual_errors = |s: &SyscallSummary| -> u64 {
        s.errors_by_errno
            .iter()
            .filter(|(errno, _)| !ROUTINE_ERRNOS.contains(&errno.as_str()))
            .map(|(_, n)| n)
            .sum()
    };
    failing.sort_by(|a, b| {
        unusual_errors(b)
            .cmp(&unusual_errors(a))
            .then(b.errors.cmp(&a.errors))
    });
    let unusual = failing.iter().any(|s| unusual_errors(s) > 0);
    let listed: Vec<String> = failing
        .iter()
        .take(3)
        .map(|s| {
            let errnos: Vec<String> = s
                .errors_by_errno
                .iter()
                .take(3)
                .map(|(errno, n)| format!("{errno} ×{}", format_count(*n)))
                .collect();
            format!(
                "{} failed {} of {} calls ({})",
                s.name,
                format_count(s.errors),
                format_count(s.count),
                errnos.join(", ")
            )
        })
        .collect();
    let severity = if unusual {
        Severity::Warn
    } else {
        Severity::Ok
    };
    let tail = if unusual {
        ""
    } else {
        " — routine errnos only"
    };
    push(
        out,
        FindingKind::Syscalls,
        severity,
        format!("Failing syscalls: {}{tail}.", listed.join("; ")),
    );
}

fn fds(recording: &Recording, out: &mut Vec<Finding>) {
    let points: Vec<(u64, u64)> = recording
        .timeline
        .iter()
        .filter_map(|point| point.fds.map(|fds| (point.at_ns, fds)))
        .collect();
    let (Some(first), Some(last)) = (points.first(), points.last()) else {
        return;
    };
    match fd_climb(&points) {
        Some(climb) => push(
            out,
            FindingKind::Fds,
            Severity::Bad,
            format!(
                "Open fds climb steadily: {} → {}, {}; their floor rose in {} of {} steps between tenths of the recording. A descriptor leak.",
                format_count(climb.from),
                format_count(climb.to),
                format_rate(climb.per_minute, "min"),
                climb.rising_steps,
                climb.steps
            ),
        ),
        None => {
            let min = points.iter().map(|p| p.1).min().unwrap_or(0);
            let max = points.iter().map(|p| p.1).max().unwrap_or(0);
            push(
                out,
                FindingKind::Fds,
                Severity::Ok,
                format!(
                    "Open fds: no steady climb ({} → {}, between {} and {}).",
                    format_count(first.1),
                    format_count(last.1),
                    format_count(min),
                    format_count(max)
                ),
            );
        }
    }
}

#[cfg(test)]
#[path = "findings_tests.rs"]
mod tests;
