//! The findings about the Go runtime: leak suspects, where goroutine time goes, GC pauses and
//! heap, run-queue backlog. Thresholds are listed in [`super::findings`].

use std::collections::BTreeMap;

use goroscope_model::recording::{Recording, WaitCategory};

use super::findings::{push, FindingKind, Severity};
use super::format::{format_bytes, format_count, format_duration_ns, format_rate, format_share};
use super::Finding;

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

pub(crate) fn leaks(recording: &Recording, out: &mut Vec<Finding>) {
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

pub(crate) fn waits(recording: &Recording, out: &mut Vec<Finding>) {
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

pub(crate) fn gc(recording: &Recording, out: &mut Vec<Finding>) {
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

pub(crate) fn scheduler(recording: &Recording, out: &mut Vec<Finding>) {
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
