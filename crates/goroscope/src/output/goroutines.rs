//! The goroutine health report as text (leak suspects first) and as JSON. Text escapes every
//! name read from the target (function and file names, versions, paths) with goroscope-model's
//! rule; JSON gives the executable's exact bytes in `executable_base64` when they are not UTF-8.

use std::io::{self, Write};

use goroscope_gobin::locate::GlobalsSource;
use goroscope_gobin::offsets::OffsetSource;
use goroscope_goprocess::TargetInfo;
use goroscope_model::goroutines::health_report::HealthReport;
use goroscope_model::goroutines::CodeLocation;
use serde_json::{json, Map, Value};

use std::os::unix::ffi::OsStrExt;

use goroscope_model::base64_if_not_utf8;

use super::{safe, HumanNs};

/// How the run ended, for the report.
pub struct RunOutcome {
    /// Set when the target exited before the run was over.
    pub exited_after_ns: Option<u64>,
    /// Snapshots skipped because a runtime list moved while it was read.
    pub skipped_snapshots: u64,
    /// Set when the target exec'd another program before the run was over: when, and into what.
    pub exec: Option<(u64, String)>,
}

const NS_PER_S: f64 = 1e9;

fn seconds(ns: u64) -> f64 {
    ns as f64 / NS_PER_S
}

fn opt_seconds(ns: Option<u64>) -> Value {
    ns.map_or(Value::Null, |ns| json!(seconds(ns)))
}

fn location_json(location: &CodeLocation) -> Value {
    json!({"function": location.function, "file": location.file, "line": location.line})
}

fn pairs_json(pairs: &[(String, u64)]) -> Value {
    let mut map = Map::new();
    for (name, count) in pairs {
        map.insert(name.clone(), json!(count));
    }
    Value::Object(map)
}

/// Where the offsets came from, as the report says it.
pub fn offsets_source(source: OffsetSource) -> String {
    source.describe()
}

/// Where the globals came from, as the report says it.
pub fn globals_source(source: GlobalsSource) -> &'static str {
    match source {
        GlobalsSource::Symtab => "symbol table",
        GlobalsSource::Decoded => "decoded from runtime functions",
    }
}

/// A lifetime quantile in seconds, or null when it is below the resolution (the snapshot
/// interval): such a goroutine was seen in one snapshot only, and its lifetime is unknown
/// beyond "shorter than the resolution" (0 would be wrong).
fn lifetime_seconds(ns: Option<u64>, resolution_ns: Option<u64>) -> Value {
    match (ns, resolution_ns) {
        (Some(ns), Some(resolution)) if ns < resolution => Value::Null,
        (ns, _) => opt_seconds(ns),
    }
}

/// What made a group a leak suspect.
fn evidence(stuck: bool, growing: bool) -> &'static str {
    match (stuck, growing) {
        (true, true) => "stuck and growing",
        (true, false) => "stuck",
        _ => "growing",
    }
}

/// A group's wait reason, or for goroutines that are not waiting, their state(s) (`syscall`,
/// `running`, `runnable/running`).
fn group_state(group: &goroscope_model::goroutines::GoroutineGroup) -> String {
    if !group.wait_reason.is_empty() {
        return "waiting".into();
    }
    let states: Vec<&str> = group.by_state.iter().map(|(s, _)| s.as_str()).collect();
    states.join("/")
}

/// The whole report as one JSON object.
pub fn to_json(info: &TargetInfo, report: &HealthReport, outcome: &RunOutcome) -> Value {
    let window = &report.window;
    let suspects: Vec<Value> = report
        .leak_suspects
        .iter()
        .map(|s| {
            json!({
                "count": s.count,
                "recently_blocked": s.recently_blocked,
                "wait_reason": s.wait_reason,
                "start_function": s.start_function,
                "creation_function": s.creation.function,
                "creation_file": s.creation.file,
                "creation_line": s.creation.line,
                "blocked_at": location_json(&s.blocked_at),
                "min_blocked_seconds": seconds(s.min_blocked_ns),
                "leak_score": s.leak_score,
                "evidence": evidence(s.stuck, s.growing),
                "growth": s.growth,
                "growth_per_minute": s.growth_per_minute,
                "released": s.released,
                "reason": s.reason,
            })
        })
        .collect();
    let groups: Vec<Value> = report
        .groups
        .iter()
        .map(|g| {
            json!({
                "count": g.count,
                "state": group_state(g),
                "wait_reason": g.wait_reason,
                "start_function": g.start_function,
                "creation": location_json(&g.creation),
                "blocked_at": location_json(&g.blocked_at),
                "by_state": pairs_json(&g.by_state),
                "stack": g.stack.iter().map(location_json).collect::<Vec<_>>(),
            })
        })
        .collect();
    let lifetimes = &report.lifetimes;
    let gc = &report.gc;
    let scheduler = &report.scheduler.latest;
    let cost = &report.read_cost;
    let mut object = json!({
        "pid": info.pid,
        "executable": info.executable.display().to_string(),
        "go_version": info.build.go_version,
        "main_module": info.build.main_module.as_ref().or(info.build.main_path.as_ref()),
        "main_package": info.build.main_path,
        "position_independent": info.position_independent,
        "offsets_source": offsets_source(info.offsets_source),
        "globals_source": globals_source(info.globals_source),
        "warnings": info.warnings,
        "process_exited": outcome.exited_after_ns.is_some(),
        "process_exec": outcome.exec.as_ref().map_or(Value::Null, |(after, into)| json!({
            "after_seconds": seconds(*after),
            "into": into,
        })),
        "window": {
            "seconds": seconds(window.last_ns.saturating_sub(window.first_ns)),
            "snapshots": window.snapshots,
            "interval_seconds": opt_seconds(window.interval_ns),
        },
        "goroutines": {
            "total": report.goroutines_total,
            "by_state": pairs_json(&report.by_state),
            "by_wait_reason": pairs_json(&report.by_wait_reason),
            "runtime": report.runtime_goroutines,
            "runtime_by_wait_reason": pairs_json(&report.runtime_by_wait_reason),
        },
        "created_total": report.created_total,
        "created_per_second": report.created_per_second,
        "lifetimes": {
            "ended": lifetimes.count,
            "p50_seconds": lifetime_seconds(lifetimes.p50_ns, lifetimes.resolution_ns),
            "p90_seconds": lifetime_seconds(lifetimes.p90_ns, lifetimes.resolution_ns),
            "p99_seconds": lifetime_seconds(lifetimes.p99_ns, lifetimes.resolution_ns),
            "max_seconds": lifetime_seconds(lifetimes.max_ns, lifetimes.resolution_ns),
            "resolution_seconds": opt_seconds(lifetimes.resolution_ns),
            "appeared": lifetimes.appeared,
            "long_lived": lifetimes.long_lived,
            "long_lived_share": lifetimes.long_lived_share,
            "long_lived_threshold_seconds": seconds(lifetimes.long_lived_threshold_ns),
            "seen_in_one_snapshot": lifetimes.seen_once,
        },
        "leak_suspects": suspects,
        "groups": groups,
        "gc": {
            "cycles": gc.cycles,
            "cycles_in_window": gc.cycles_in_window,
            "pauses_sampled": gc.pauses_sampled,
            "pause_seconds": {
                "p50": opt_seconds(gc.pause_p50_ns),
                "p99": opt_seconds(gc.pause_p99_ns),
                "max": opt_seconds(gc.pause_max_ns),
            },
            "pause_total_seconds": opt_seconds(gc.pause_total_ns),
            "heap_live_bytes": gc.heap_live_bytes,
            "heap_goal_bytes": gc.heap_goal_bytes,
        },
        "scheduler": {
            "gomaxprocs": scheduler.gomaxprocs,
            "idle_ps": scheduler.idle_ps,
            "spinning_ms": scheduler.spinning_ms,
            "global_runqueue": scheduler.global_runqueue,
            "max_global_runqueue": report.scheduler.max_global_runqueue,
            "local_runqueues": scheduler.local_runqueues,
        },
        "snapshots": {
            "count": window.snapshots,
            "read_seconds": {
                "mean": opt_seconds(cost.mean_read_ns),
                "p50": opt_seconds(cost.p50_read_ns),
                "max": opt_seconds(cost.max_read_ns),
            },
            "dropped_records": cost.dropped_records,
            "skipped": outcome.skipped_snapshots,
        },
    });
    // The exact bytes of a path that is not UTF-8 (`executable` shows them with U+FFFD).
    if let Some(b64) = base64_if_not_utf8(info.executable.as_os_str().as_bytes()) {
        object["executable_base64"] = Value::String(b64);
    }
    object
}

fn short_file(file: &str) -> &str {
    // Keep the last two path elements: enough to find the file, short enough to read.
    let mut cut = file.len();
    for _ in 0..2 {
        match file[..cut].rfind('/') {
            Some(slash) => cut = slash,
            None => return file,
        }
    }
    &file[cut + 1..]
}

fn site(location: &CodeLocation) -> String {
    if location.function.is_empty() {
        return "(unknown)".into();
    }
    format!(
        "{} ({}:{})",
        safe(&location.function),
        safe(short_file(&location.file)),
        location.line
    )
}

/// The readable report.
pub fn write_text(
    out: &mut dyn Write,
    info: &TargetInfo,
    report: &HealthReport,
    outcome: &RunOutcome,
) -> io::Result<()> {
    let window = &report.window;
    writeln!(
        out,
        "PID {} · {} · {} · {} snapshots over {} (every {})",
        info.pid,
        safe(&info.build.go_version),
        safe(
            info.build
                .main_path
                .as_deref()
                .unwrap_or("(unknown module)")
        ),
        window.snapshots,
        HumanNs(window.last_ns.saturating_sub(window.first_ns)),
        window
            .interval_ns
            .map_or("-".to_string(), |ns| HumanNs(ns).to_string()),
    )?;
    if let Some(after) = outcome.exited_after_ns {
        writeln!(
            out,
            "!! the process exited after {}: this report covers what was read before",
            HumanNs(after)
        )?;
    }
    if let Some((after, into)) = &outcome.exec {
        writeln!(
            out,
            "!! the process exec'd into {into} after {}: this report covers what was read before",
            HumanNs(*after)
        )?;
    }
    for warning in &info.warnings {
        writeln!(out, "!! {}", safe(warning))?;
    }

    writeln!(out)?;
    if report.leak_suspects.is_empty() {
        writeln!(out, "LEAK SUSPECTS: none")?;
    } else {
        writeln!(out, "LEAK SUSPECTS ({})", report.leak_suspects.len())?;
        for suspect in &report.leak_suspects {
            writeln!(
                out,
                "  {:>6} × {:<20} score {:.2} ({})  {}",
                suspect.count,
                safe(&suspect.wait_reason),
                suspect.leak_score,
                evidence(suspect.stuck, suspect.growing),
                safe(&suspect.reason)
            )?;
            writeln!(out, "         created at  {}", site(&suspect.creation))?;
            writeln!(out, "         blocked at  {}", site(&suspect.blocked_at))?;
        }
    }

    writeln!(out)?;
    let created_rate = report
        .created_per_second
        .map_or(String::new(), |rate| format!(", {rate:.0}/s now"));
    writeln!(
        out,
        "GOROUTINES: {} live; {} created since start{created_rate}",
        report.goroutines_total, report.created_total
    )?;
    let states: Vec<String> = report
        .by_state
        .iter()
        .map(|(name, n)| format!("{} {n}", safe(name)))
        .collect();
    writeln!(out, "  by state:       {}", states.join(", "))?;
    let reasons: Vec<String> = report
        .by_wait_reason
        .iter()
        .map(|(name, n)| format!("{} {n}", safe(name)))
        .collect();
    if !reasons.is_empty() {
        writeln!(out, "  by wait reason: {}", reasons.join(", "))?;
    }
    let runtime: Vec<String> = report
        .runtime_by_wait_reason
        .iter()
        .map(|(name, n)| format!("{} {n}", safe(name)))
        .collect();
    writeln!(
        out,
        "  the runtime's own (not counted above, as Go does not count them): {}{}",
        report.runtime_goroutines,
        if runtime.is_empty() {
            String::new()
        } else {
            format!(" ({})", runtime.join(", "))
        }
    )?;
    let lifetimes = &report.lifetimes;
    if let (Some(p50), Some(p99), Some(max)) =
        (lifetimes.p50_ns, lifetimes.p99_ns, lifetimes.max_ns)
    {
        // Lifetimes are measured between snapshots: anything below one interval reads as
        // "shorter than the resolution", the rest as the lower bounds they are.
        let resolution = lifetimes.resolution_ns.unwrap_or(0);
        let lifetime = |ns: u64| {
            if ns < resolution {
                format!("<{}", HumanNs(resolution))
            } else {
                format!("≥{}", HumanNs(ns))
            }
        };
        writeln!(
            out,
            "  lifetimes of {} goroutines seen start and end: p50 {}, p99 {}, max {} (resolution {})",
            lifetimes.count,
            lifetime(p50),
            lifetime(p99),
            lifetime(max),
            HumanNs(resolution)
        )?;
    }
    if let Some(share) = lifetimes.long_lived_share {
        writeln!(
            out,
            "  {:.1}% of the {} goroutines seen starting lived ≥ {}",
            share * 100.0,
            lifetimes.appeared,
            HumanNs(lifetimes.long_lived_threshold_ns)
        )?;
    }

    writeln!(out)?;
    writeln!(out, "LARGEST GROUPS")?;
    for group in report.groups.iter().take(10) {
        let reason = if group.wait_reason.is_empty() {
            group_state(group)
        } else {
            group.wait_reason.clone()
        };
        writeln!(
            out,
            "  {:>6} × {:<20} start {}  ·  created at {}  ·  at {}",
            group.count,
            safe(&reason),
            safe(if group.start_function.is_empty() {
                "(unknown)"
            } else {
                &group.start_function
            }),
            site(&group.creation),
            site(&group.blocked_at)
        )?;
    }

    writeln!(out)?;
    let gc = &report.gc;
    let pause = |ns: Option<u64>| ns.map_or("-".to_string(), |ns| HumanNs(ns).to_string());
    writeln!(
        out,
        "GC: {} cycles ({} in window); pauses p50 {}, p99 {}, max {} (last {}); heap {} of goal {}",
        gc.cycles,
        gc.cycles_in_window,
        pause(gc.pause_p50_ns),
        pause(gc.pause_p99_ns),
        pause(gc.pause_max_ns),
        gc.pauses_sampled,
        gc.heap_live_bytes.map_or("-".into(), mib),
        gc.heap_goal_bytes.map_or("-".into(), mib),
    )?;
    let scheduler = &report.scheduler.latest;
    writeln!(
        out,
        "SCHEDULER: GOMAXPROCS {}, idle Ps {}, spinning Ms {}, global run queue {} (max {}), local run queues {:?}",
        scheduler.gomaxprocs,
        scheduler.idle_ps,
        scheduler.spinning_ms,
        scheduler.global_runqueue,
        report.scheduler.max_global_runqueue,
        scheduler.local_runqueues
    )?;
    let cost = &report.read_cost;
    writeln!(
        out,
        "READ COST: {} per snapshot (p50), max {}; {} records dropped as torn; {} snapshots skipped",
        pause(cost.p50_read_ns),
        pause(cost.max_read_ns),
        cost.dropped_records,
        outcome.skipped_snapshots
    )?;
    Ok(())
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::short_file;

    #[test]
    fn files_are_shortened_to_two_elements() {
        assert_eq!(short_file("/home/x/src/app/main.go"), "app/main.go");
        assert_eq!(short_file("main.go"), "main.go");
        assert_eq!(short_file("a/b.go"), "a/b.go");
    }
}
