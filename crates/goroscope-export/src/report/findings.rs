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

use std::collections::BTreeMap;

use goroscope_model::recording::{Ended, Recording, SyscallSummary, WaitCategory};

use super::format::{format_bytes, format_count, format_duration_ns, format_rate, format_share};
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

/// A steady climb of open file descriptors (see [`fd_climb`]).
#[derive(Clone, Debug, PartialEq)]
pub struct FdClimb {
    /// Open fds at the first point.
    pub from: u64,
    /// Open fds at the last point.
    pub to: u64,
    /// `(to - from)` per minute of the points' span.
    pub per_minute: f64,
    /// Window-to-window steps in which the floor rose.
    pub rising_steps: usize,
    /// Window-to-window steps looked at.
    pub steps: usize,
}

/// Fewest points [`fd_climb`] judges.
pub const FD_CLIMB_MIN_POINTS: usize = 10;
/// Windows [`fd_climb`] cuts the points into.
pub const FD_CLIMB_WINDOWS: usize = 10;

/// Whether open fds climb steadily over `points` (`(at_ns, fds)`, in time order): a leak of
/// descriptors, even when it is slow.
///
/// The rule: with at least [`FD_CLIMB_MIN_POINTS`] points, cut them into
/// [`FD_CLIMB_WINDOWS`] consecutive windows of (nearly) equal size and take each window's
/// *floor*, its lowest value. It is a climb when the floor rose in at least 80 % of the
/// window-to-window steps. Floors ignore the churn of descriptors opened and closed within a
/// window (a busy server's sockets), so a noisy flat series is not a climb, a leak under
/// churn is, and a single jump (a pool filled once) rises in only one step and is not.
pub fn fd_climb(points: &[(u64, u64)]) -> Option<FdClimb> {
    let n = points.len();
    if n < FD_CLIMB_MIN_POINTS {
        return None;
    }
    let floors: Vec<u64> = (0..FD_CLIMB_WINDOWS)
        .filter_map(|w| {
            let start = w * n / FD_CLIMB_WINDOWS;
            let end = (w + 1) * n / FD_CLIMB_WINDOWS;
            points[start..end].iter().map(|&(_, fds)| fds).min()
        })
        .collect();
    let steps = floors.len().saturating_sub(1);
    let rising_steps = floors.windows(2).filter(|pair| pair[1] > pair[0]).count();
    if steps == 0 || rising_steps * 5 < steps * 4 {
        return None;
    }
    let (first_ns, from) = points[0];
    let (last_ns, to) = points[n - 1];
    let minutes = last_ns.saturating_sub(first_ns) as f64 / 60e9;
    let per_minute = if minutes > 0.0 {
        (to as f64 - from as f64) / minutes
    } else {
        0.0
    };
    Some(FdClimb {
        from,
        to,
        per_minute,
        rising_steps,
        steps,
    })
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
            leaks(recording, &mut out);
            waits(recording, &mut out);
            gc(recording, &mut out);
            scheduler(recording, &mut out);
        }
    }
    cpu(recording, &mut out);
    syscalls(recording, &mut out);
    fds(recording, &mut out);
    out.sort_by_key(|finding| std::cmp::Reverse(finding.severity));
    out
}

fn push(out: &mut Vec<Finding>, kind: FindingKind, severity: Severity, text: String) {
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

/// `function file:line`, or what is known of it.
fn place(location: &goroscope_model::goroutines::CodeLocation) -> String {
    match (location.function.is_empty(), location.line) {
        (true, 0) => "an unknown place".to_string(),
        (false, 0) => location.function.clone(),
        (_, line) => format!("{} ({}:{line})", location.function, location.file),
    }
}

/// Leak suspects shown one by one; the rest are counted.
const LEAKS_LISTED: usize = 3;

fn leaks(recording: &Recording, out: &mut Vec<Finding>) {
    let Some(go) = &recording.go else { return };
    let suspects = &go.health.leak_suspects;
    if suspects.is_empty() {
        push(
            out,
            FindingKind::Leak,
            Severity::Ok,
            "No goroutine leak suspects.".to_string(),
        );
        return;
    }
    for suspect in suspects.iter().take(LEAKS_LISTED) {
        let severity = if suspect.growing || suspect.stuck {
            Severity::Bad
        } else {
            Severity::Warn
        };
        let growth = if suspect.growth != 0 || suspect.growing {
            format!(
                "growing {} ({:+} over the horizon)",
                format_rate(suspect.growth_per_minute, "min"),
                suspect.growth
            )
        } else {
            "not growing".to_string()
        };
        let creator = if suspect.start_function.is_empty() {
            String::new()
        } else {
            format!(" running {}", suspect.start_function)
        };
        push(
            out,
            FindingKind::Leak,
            severity,
            format!(
                "Leak suspect: {} goroutines blocked in {} for at least {}, {growth}; created at {}{creator}, blocked at {}.",
                format_count(suspect.count),
                suspect.wait_reason,
                format_duration_ns(suspect.min_blocked_ns),
                place(&suspect.creation),
                place(&suspect.blocked_at),
            ),
        );
    }
    if suspects.len() > LEAKS_LISTED {
        push(
            out,
            FindingKind::Leak,
            Severity::Warn,
            format!(
                "{} more leak suspects (see Leaks).",
                suspects.len() - LEAKS_LISTED
            ),
        );
    }
}

/// Goroutine time by wait category, in [`WaitCategory::ALL`] order.
pub(crate) fn time_by_category(recording: &Recording) -> Vec<(WaitCategory, u64)> {
    let mut sums: BTreeMap<WaitCategory, u64> = BTreeMap::new();
    if let Some(go) = &recording.go {
        for wait in &go.wait_time {
            let sum = sums.entry(WaitCategory::of(&wait.reason)).or_default();
            *sum = sum.saturating_add(wait.goroutine_ns);
        }
    }
    WaitCategory::ALL
        .into_iter()
        .filter_map(|category| sums.get(&category).map(|&ns| (category, ns)))
        .collect()
}

fn waits(recording: &Recording, out: &mut Vec<Finding>) {
    let by_category = time_by_category(recording);
    let total: u64 = by_category.iter().map(|&(_, ns)| ns).sum();
    if total == 0 {
        return;
    }
    let mut ranked = by_category.clone();
    ranked.sort_by_key(|&(_, ns)| std::cmp::Reverse(ns));
    let shares: Vec<String> = ranked
        .iter()
        .take(4)
        .map(|&(category, ns)| {
            format!(
                "{} {}",
                format_share(ns as f64, total as f64),
                category.name()
            )
        })
        .collect();
    let of = |wanted: WaitCategory| {
        by_category
            .iter()
            .find(|&&(category, _)| category == wanted)
            .map_or(0, |&(_, ns)| ns)
    };
    let (running, runnable, locks) = (
        of(WaitCategory::Running),
        of(WaitCategory::Runnable),
        of(WaitCategory::Locks),
    );
    let mut severity = Severity::Ok;
    let mut text = format!("Goroutine time: {}.", shares.join(", "));
    if running > 0 && runnable * 4 >= running {
        severity = Severity::Warn;
        text.push_str(&format!(
            " Goroutines waited for a CPU {} as long as they ran: the process is short of CPU.",
            format_share(runnable as f64, running as f64)
        ));
    }
    if locks * 5 >= total {
        severity = Severity::Warn;
        text.push_str(" Lock contention takes a large share.");
    }
    push(out, FindingKind::Waits, severity, text);
}

/// The `q` quantile of `values` by nearest rank; `None` when empty.
pub(crate) fn nearest_rank(values: &mut [u64], q: f64) -> Option<u64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let rank = ((q * values.len() as f64).ceil() as usize).clamp(1, values.len());
    Some(values[rank - 1])
}

fn gc(recording: &Recording, out: &mut Vec<Finding>) {
    let Some(go) = &recording.go else { return };
    let summary = &go.health.gc;
    let mut pauses: Vec<u64> = go.gc_pauses.iter().map(|pause| pause.pause_ns).collect();
    let (p99, max) = if pauses.is_empty() {
        (summary.pause_p99_ns, summary.pause_max_ns)
    } else {
        (nearest_rank(&mut pauses, 0.99), pauses.last().copied())
    };
    let mut parts = Vec::new();
    if let Some(p99) = p99 {
        parts.push(format!(
            "pause p99 {}, max {}",
            format_duration_ns(p99),
            format_duration_ns(max.unwrap_or(p99))
        ));
    }
    let minutes = recording.window.recorded_ns as f64 / 60e9;
    if summary.cycles_in_window > 0 && minutes > 0.0 {
        parts.push(format!(
            "{} cycles ({:.0}/min)",
            summary.cycles_in_window,
            summary.cycles_in_window as f64 / minutes
        ));
    }
    if let (Some(live), Some(goal)) = (summary.heap_live_bytes, summary.heap_goal_bytes) {
        parts.push(format!(
            "heap {} live of a {} goal",
            format_bytes(live),
            format_bytes(goal)
        ));
    }
    if parts.is_empty() {
        return;
    }
    let severity = match p99 {
        Some(p99) if p99 >= 10_000_000 => Severity::Bad,
        Some(p99) if p99 >= 1_000_000 => Severity::Warn,
        _ => Severity::Ok,
    };
    push(
        out,
        FindingKind::Gc,
        severity,
        format!("GC: {}.", parts.join("; ")),
    );
}

fn scheduler(recording: &Recording, out: &mut Vec<Finding>) {
    let points: Vec<_> = recording
        .timeline
        .iter()
        .filter_map(|point| point.go.as_ref())
        .collect();
    let Some(last) = points.last() else { return };
    let queued: Vec<u64> = points
        .iter()
        .map(|p| u64::from(p.global_runqueue) + u64::from(p.local_runqueues))
        .collect();
    let max = queued.iter().copied().max().unwrap_or(0);
    let mean = queued.iter().sum::<u64>() as f64 / queued.len() as f64;
    let idle = points.iter().map(|p| f64::from(p.idle_ps)).sum::<f64>() / points.len() as f64;
    let procs = f64::from(last.gomaxprocs.max(1));
    let severity = if mean > 4.0 * procs {
        Severity::Bad
    } else if mean > procs {
        Severity::Warn
    } else {
        Severity::Ok
    };
    let verdict = match severity {
        Severity::Ok => "no backlog",
        _ => "a backlog: goroutines wait for a P",
    };
    push(
        out,
        FindingKind::Scheduler,
        severity,
        format!(
            "Run queues: {verdict} (mean {mean:.1}, max {} goroutines queued for GOMAXPROCS={}; {idle:.1} idle Ps on average).",
            format_count(max),
            last.gomaxprocs
        ),
    );
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
                "Open fds climb steadily: {} → {}, {}, rising in {} of {} tenths of the recording: a descriptor leak.",
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
