//! The runtime sections: `waits` (where goroutine wall time goes, by wait category and reason,
//! and the wall-clock flame graph), `cpu` (the CPU flame graph and top functions), `gc`
//! (pauses and heap) and `scheduler` (run queues and idle Ps).

use std::fmt::Write as _;

use goroscope_model::recording::{Recording, WaitCategory};

use super::chart::{bar_chart, dot_chart, time_chart, Bar, Series, Unit};
use super::findings_go::{nearest_rank, time_by_category};
use super::flame::flame_graph_html;
use super::format::{format_bytes, format_count, format_duration_ns};
use super::html::{empty, text, Cell, Table};
use super::palette::{category_colour, category_short_name, css, series_colour};
use super::{not_go, share, time_value, ReportError};
use crate::profile::function_totals;

/// The `waits` section.
pub(crate) fn waits(recording: &Recording, out: &mut String) -> Result<(), ReportError> {
    match &recording.go {
        None => not_go(recording, out),
        Some(go) if go.wait_time.is_empty() => {
            empty(out, "No goroutine time was recorded.");
        }
        Some(go) => {
            let by_category = time_by_category(recording);
            let total: u64 = by_category.iter().map(|&(_, ns)| ns).sum();
            let bars: Vec<Bar> = by_category
                .iter()
                .map(|&(category, ns)| Bar {
                    label: category_short_name(category).to_string(),
                    value: ns as f64,
                    colour: category_colour(category),
                })
                .collect();
            out.push_str(&bar_chart(
                "wait-categories",
                "Goroutine wall time by wait category (goroutine-time: the sum over goroutines), the runtime's own goroutines included.",
                "wait category",
                Unit::Nanoseconds,
                &bars,
            )?);
            let mut table = Table::new(&[
                ("category", false),
                ("state or wait reason", false),
                ("goroutine time", true),
                ("share", true),
            ]);
            let mut reasons: Vec<_> = go.wait_time.iter().collect();
            reasons.sort_by_key(|wait| std::cmp::Reverse(wait.goroutine_ns));
            for wait in reasons {
                let category = WaitCategory::of(&wait.reason);
                table.row(
                    String::new(),
                    vec![
                        Cell::html(format!(
                            "<span class=\"swatch\" style=\"background:{}\"></span>{}",
                            css(category_colour(category)),
                            text(category.name())
                        )),
                        Cell::text(&wait.reason),
                        Cell::number(
                            format_duration_ns(wait.goroutine_ns),
                            wait.goroutine_ns as f64,
                        ),
                        Cell::number(share(wait.goroutine_ns, total), wait.goroutine_ns as f64),
                    ],
                );
            }
            table.render("waits", out);
        }
    }
    out.push_str("<h3>Goroutine wall-clock flame graph</h3><p class=\"hint\">Every goroutine's stack weighted by the time it spent so, under a root frame naming its state or wait reason.</p>");
    let missing = if recording.go.is_none() {
        "No wall-clock profile: the process is not Go."
    } else {
        "No wall-clock profile was recorded."
    };
    let profile = recording.wall_profile.as_ref();
    let value = profile.map_or(0, time_value);
    flame_graph_html("wall-flamegraph", profile, value, missing, out);
    Ok(())
}

/// The `cpu` section.
pub(crate) fn cpu(recording: &Recording, out: &mut String) {
    let profile = recording.cpu_profile.as_ref();
    let value = profile.map_or(0, time_value);
    flame_graph_html(
        "cpu-flamegraph",
        profile,
        value,
        "No CPU profile was recorded.",
        out,
    );
    let Some(profile) = profile else { return };
    let (rows, total) = function_totals(profile, value);
    if total <= 0 {
        return;
    }
    out.push_str("<h3>Top functions</h3>");
    let mut table = Table::new(&[
        ("function", false),
        ("flat", true),
        ("flat %", true),
        ("cum", true),
        ("cum %", true),
    ]);
    let total = total.unsigned_abs();
    for row in &rows {
        let (flat, cum) = (row.flat.unsigned_abs(), row.cum.unsigned_abs());
        table.row(
            String::new(),
            vec![
                Cell::code(&goroscope_model::escape(row.name.as_bytes())),
                Cell::number(format_duration_ns(flat), flat as f64),
                Cell::number(share(flat, total), flat as f64),
                Cell::number(format_duration_ns(cum), cum as f64),
                Cell::number(share(cum, total), cum as f64),
            ],
        );
    }
    table.render("top", out);
}

/// The `gc` section.
pub(crate) fn gc(recording: &Recording, out: &mut String) -> Result<(), ReportError> {
    let Some(go) = &recording.go else {
        not_go(recording, out);
        return Ok(());
    };
    let summary = &go.health.gc;
    let mut pauses: Vec<u64> = go.gc_pauses.iter().map(|p| p.pause_ns).collect();
    let count = pauses.len();
    let p50 = nearest_rank(&mut pauses, 0.5);
    let p99 = nearest_rank(&mut pauses, 0.99);
    let max = pauses.last().copied();
    let show = |v: Option<u64>| v.map_or_else(|| "–".to_string(), format_duration_ns);
    out.push_str("<dl class=\"figures\">");
    let mut figure = |name: &str, value: String| {
        let _ = write!(
            out,
            "<div><dt>{}</dt><dd>{}</dd></div>",
            text(name),
            text(&value)
        );
    };
    figure("pauses in the recording", format_count(count as u64));
    figure("pause p50", show(p50));
    figure("pause p99", show(p99));
    figure("pause max", show(max));
    figure(
        "cycles (in the recording / since start)",
        format!("{} / {}", summary.cycles_in_window, summary.cycles),
    );
    if let Some(live) = summary.heap_live_bytes {
        figure("heap live", format_bytes(live));
    }
    if let Some(goal) = summary.heap_goal_bytes {
        figure("heap goal", format_bytes(goal));
    }
    out.push_str("</dl>");
    if summary.pauses_sampled > 0 {
        let _ = write!(
            out,
            "<p class=\"hint\">The runtime's ring of its last {} pauses: p50 {}, p99 {}, max {}.</p>",
            summary.pauses_sampled,
            text(&show(summary.pause_p50_ns)),
            text(&show(summary.pause_p99_ns)),
            text(&show(summary.pause_max_ns)),
        );
    }
    let x_max = recording.window.recorded_ns as f64 / 1e9;
    if go.gc_pauses.is_empty() {
        empty(out, "No GC pause during the recording.");
    } else {
        let points: Vec<(f64, f64)> = go
            .gc_pauses
            .iter()
            .map(|p| (p.seen_at_ns as f64 / 1e9, p.pause_ns as f64))
            .collect();
        out.push_str(&dot_chart(
            "gc-pauses",
            "Stop-the-world GC pauses, at the snapshot that first saw each.",
            Unit::Nanoseconds,
            series_colour(3),
            x_max,
            &points,
        )?);
    }
    let heap = |pick: fn(&goroscope_model::recording::GoPoint) -> Option<u64>| -> Vec<(f64, f64)> {
        recording
            .timeline
            .iter()
            .filter_map(|p| {
                let go = p.go.as_ref()?;
                Some((p.at_ns as f64 / 1e9, pick(go)? as f64))
            })
            .collect()
    };
    let live = heap(|g| g.heap_live_bytes);
    let goal = heap(|g| g.heap_goal_bytes);
    if live.is_empty() && goal.is_empty() {
        empty(out, "No heap figures were recorded.");
    } else {
        out.push_str(&time_chart(
            "heap",
            "Heap live (allocated since the last mark included) and the goal at which the next cycle starts.",
            Unit::Bytes,
            vec![
                Series {
                    name: "live".to_string(),
                    colour: series_colour(0),
                    points: live,
                },
                Series {
                    name: "goal".to_string(),
                    colour: series_colour(1),
                    points: goal,
                },
            ],
            false,
        )?);
    }
    Ok(())
}

/// The `scheduler` section.
pub(crate) fn scheduler(recording: &Recording, out: &mut String) -> Result<(), ReportError> {
    let Some(go) = &recording.go else {
        not_go(recording, out);
        return Ok(());
    };
    let latest = &go.health.scheduler.latest;
    let _ = write!(
        out,
        "<p class=\"lead\">GOMAXPROCS <strong>{}</strong>; at the end {} idle Ps, {} spinning Ms, {} goroutines in the global run queue and {} in local ones; the global run queue peaked at {}.</p>",
        latest.gomaxprocs,
        latest.idle_ps,
        latest.spinning_ms,
        latest.global_runqueue,
        latest.local_runqueues.iter().map(|&n| u64::from(n)).sum::<u64>(),
        go.health.scheduler.max_global_runqueue,
    );
    let points: Vec<_> = recording
        .timeline
        .iter()
        .filter_map(|p| p.go.as_ref().map(|go| (p.at_ns as f64 / 1e9, go)))
        .collect();
    if points.is_empty() {
        empty(out, "No scheduler figures were recorded over time.");
        return Ok(());
    }
    let series =
        |name: &str, i: usize, pick: fn(&goroscope_model::recording::GoPoint) -> u32| Series {
            name: name.to_string(),
            colour: series_colour(i),
            points: points
                .iter()
                .map(|(at, go)| (*at, f64::from(pick(go))))
                .collect(),
        };
    out.push_str(&time_chart(
        "scheduler",
        "Goroutines waiting in run queues, idle Ps and GOMAXPROCS.",
        Unit::Count,
        vec![
            series("global run queue", 3, |g| g.global_runqueue),
            series("local run queues", 1, |g| g.local_runqueues),
            series("idle Ps", 2, |g| g.idle_ps),
            series("GOMAXPROCS", 4, |g| g.gomaxprocs),
        ],
        false,
    )?);
    Ok(())
}
