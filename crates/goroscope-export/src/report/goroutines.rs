//! The Go goroutine sections: `goroutines` (how many, in which state, created how fast, living
//! how long) and `leaks` (the suspects with their evidence and stacks, then the largest
//! groups).

use std::fmt::Write as _;

use goroscope_model::goroutines::{CodeLocation, GoroutineGroup, LeakSuspect};
use goroscope_model::recording::Recording;

use super::chart::{bar_chart, time_chart, Bar, Series, Unit};
use super::format::{format_count, format_duration_ns, format_rate};
use super::html::{empty, text, Cell, Table};
use super::palette::{series_colour, state_colour, STATE_ORDER};
use super::{not_go, ReportError};

/// Seconds since the start.
fn seconds(at_ns: u64) -> f64 {
    at_ns as f64 / 1e9
}

/// The `goroutines` section.
pub(crate) fn goroutines(recording: &Recording, out: &mut String) -> Result<(), ReportError> {
    let Some(go) = &recording.go else {
        not_go(recording, out);
        return Ok(());
    };
    let health = &go.health;
    let _ = write!(
        out,
        "<p class=\"lead\"><strong>{}</strong> goroutines at the end (and {} of the runtime's own); {} created since the process started",
        format_count(health.goroutines_total),
        format_count(health.runtime_goroutines),
        format_count(health.created_total),
    );
    if let Some(rate) = health.created_per_second {
        let _ = write!(
            out,
            ", {} during the recording",
            text(&format_rate(rate, "s"))
        );
    }
    out.push_str(".</p>");

    let points: Vec<_> = recording
        .timeline
        .iter()
        .filter_map(|p| p.go.as_ref().map(|go| (p.at_ns, go)))
        .collect();
    if points.is_empty() {
        empty(
            out,
            "No goroutine snapshot succeeded: nothing to chart over time.",
        );
    } else {
        let mut states: Vec<String> = Vec::new();
        for (_, point) in &points {
            for (state, _) in &point.by_state {
                if !states.contains(state) {
                    states.push(state.clone());
                }
            }
        }
        states.sort_by_key(|s| {
            (
                STATE_ORDER
                    .iter()
                    .position(|o| o == s)
                    .unwrap_or(STATE_ORDER.len()),
                s.clone(),
            )
        });
        let series = states
            .iter()
            .map(|state| Series {
                name: state.clone(),
                colour: state_colour(state),
                points: points
                    .iter()
                    .map(|(at, point)| {
                        let n = point
                            .by_state
                            .iter()
                            .find(|(s, _)| s == state)
                            .map_or(0, |&(_, n)| n);
                        (seconds(*at), n as f64)
                    })
                    .collect(),
            })
            .collect();
        out.push_str(&time_chart(
            "goroutines",
            "Live goroutines by state (stacked), the runtime's own included.",
            Unit::Count,
            series,
            true,
        )?);
        let rate: Vec<(f64, f64)> = points
            .windows(2)
            .filter_map(|pair| {
                let (t0, a) = pair[0];
                let (t1, b) = pair[1];
                let dt = seconds(t1.saturating_sub(t0));
                (dt > 0.0).then(|| {
                    (
                        seconds(t1),
                        b.created_total.saturating_sub(a.created_total) as f64 / dt,
                    )
                })
            })
            .collect();
        if !rate.is_empty() {
            out.push_str(&time_chart(
                "creation-rate",
                "Goroutines created per second.",
                Unit::Count,
                vec![Series {
                    name: "created/s".to_string(),
                    colour: series_colour(0),
                    points: rate,
                }],
                false,
            )?);
        }
    }
    lifetimes(recording, out)
}

/// The lifetimes histogram and what it can and cannot say.
fn lifetimes(recording: &Recording, out: &mut String) -> Result<(), ReportError> {
    let Some(go) = &recording.go else {
        return Ok(());
    };
    let life = &go.health.lifetimes;
    out.push_str("<h3>Lifetimes</h3>");
    if life.count == 0 {
        empty(
            out,
            "No goroutine was seen both starting and ending within the recording.",
        );
    } else {
        let bars: Vec<Bar> = life
            .histogram
            .iter()
            .map(|&(upper, count)| Bar {
                label: format!("<{}", format_duration_ns(upper)),
                value: count as f64,
                colour: series_colour(0),
            })
            .collect();
        out.push_str(&bar_chart(
            "lifetimes",
            "Observed lifetimes of goroutines born and ended during the recording, by power of two.",
            "observed lifetime",
            Unit::Count,
            &bars,
        )?);
        let quantile = |q: Option<u64>| q.map_or_else(|| "–".to_string(), format_duration_ns);
        let _ = write!(
            out,
            "<p>{} goroutines lived and ended during the recording: median {}, p90 {}, p99 {}, longest {}; {} were seen in a single snapshot.</p>",
            format_count(life.count),
            text(&quantile(life.p50_ns)),
            text(&quantile(life.p90_ns)),
            text(&quantile(life.p99_ns)),
            text(&quantile(life.max_ns)),
            format_count(life.seen_once),
        );
    }
    if let Some(share) = life.long_lived_share {
        let _ = write!(
            out,
            "<p>Of {} goroutines that appeared, {} ({:.1} %) lived at least {}.</p>",
            format_count(life.appeared),
            format_count(life.long_lived),
            share * 100.0,
            text(&format_duration_ns(life.long_lived_threshold_ns)),
        );
    }
    if let Some(resolution) = life.resolution_ns {
        let _ = write!(
            out,
            "<p class=\"hint\">Resolution: snapshots every {} — lifetimes are lower bounds (up to about two intervals short), and goroutines living less than one interval are mostly never seen.</p>",
            text(&format_duration_ns(resolution)),
        );
    }
    Ok(())
}

/// `file:line`, the leak-suspect rows' `data-creation`.
fn file_line(location: &CodeLocation) -> String {
    format!("{}:{}", location.file, location.line)
}

/// A location cell: `file:line` in code, the function below.
fn location_cell(location: &CodeLocation) -> Cell {
    if location.function.is_empty() && location.line == 0 {
        return Cell::text("unknown");
    }
    // Long paths may break after a `/`, not in the middle of a name.
    Cell::html(format!(
        "<code>{}</code><br><small><code>{}</code></small>",
        text(&file_line(location)).replace('/', "/<wbr>"),
        text(&location.function)
    ))
}

/// The group a suspect was drawn from.
fn group_of<'g>(groups: &'g [GoroutineGroup], suspect: &LeakSuspect) -> Option<&'g GoroutineGroup> {
    groups.iter().find(|g| {
        g.creation == suspect.creation
            && g.blocked_at == suspect.blocked_at
            && g.wait_reason == suspect.wait_reason
            && g.start_function == suspect.start_function
    })
}

/// The `leaks` section.
pub(crate) fn leaks(recording: &Recording, out: &mut String) {
    let Some(go) = &recording.go else {
        not_go(recording, out);
        return;
    };
    let health = &go.health;
    if health.leak_suspects.is_empty() {
        out.push_str("<p class=\"verdict ok\">No group of goroutines looks leaked.</p>");
    } else {
        let mut table = Table::new(&[
            ("goroutines", true),
            ("growth", true),
            ("wait reason", false),
            ("created at", false),
            ("start function", false),
            ("blocked at", false),
            ("blocked for at least", true),
            ("score", true),
        ]);
        for suspect in &health.leak_suspects {
            let attributes = format!(
                " class=\"leak-suspect\" data-count=\"{}\" data-creation=\"{}\" data-start=\"{}\"",
                suspect.count,
                text(&file_line(&suspect.creation)),
                text(&suspect.start_function)
            );
            let growth = if suspect.growing {
                format!(
                    "{} (growing)",
                    format_rate(suspect.growth_per_minute, "min")
                )
            } else {
                format_rate(suspect.growth_per_minute, "min")
            };
            table.row(
                attributes,
                vec![
                    Cell::count(suspect.count),
                    Cell::number(growth, suspect.growth_per_minute),
                    Cell::text(&suspect.wait_reason),
                    location_cell(&suspect.creation),
                    Cell::code(&suspect.start_function),
                    location_cell(&suspect.blocked_at),
                    Cell::number(
                        format_duration_ns(suspect.min_blocked_ns),
                        suspect.min_blocked_ns as f64,
                    ),
                    Cell::number(format!("{:.2}", suspect.leak_score), suspect.leak_score),
                ],
            );
        }
        table.render("leaks", out);
        for suspect in health.leak_suspects.iter().take(20) {
            let _ = write!(
                out,
                "<details class=\"stack\" open><summary>{} goroutines in <em>{}</em> at <code>{}</code></summary><p>{}</p>",
                format_count(suspect.count),
                text(&suspect.wait_reason),
                text(&file_line(&suspect.blocked_at)),
                text(&suspect.reason),
            );
            match group_of(&health.groups, suspect) {
                Some(group) if !group.stack.is_empty() => stack(&group.stack, out),
                _ => empty(out, "No stack was kept for this group."),
            }
            out.push_str("</details>");
        }
    }
    out.push_str("<h3>Largest groups</h3>");
    if health.groups.is_empty() {
        empty(out, "No goroutine groups.");
        return;
    }
    let mut table = Table::new(&[
        ("goroutines", true),
        ("states", false),
        ("wait reason", false),
        ("created at", false),
        ("start function", false),
        ("blocked at", false),
    ])
    .limit(50);
    for group in &health.groups {
        let states: Vec<String> = group
            .by_state
            .iter()
            .map(|(state, n)| format!("{state} {}", format_count(*n)))
            .collect();
        table.row(
            String::new(),
            vec![
                Cell::count(group.count),
                Cell::text(&states.join(", ")),
                Cell::text(&group.wait_reason),
                location_cell(&group.creation),
                Cell::code(&group.start_function),
                location_cell(&group.blocked_at),
            ],
        );
    }
    table.render("groups", out);
}

/// A stack as Go prints it: function, then `file:line` indented.
fn stack(frames: &[CodeLocation], out: &mut String) {
    out.push_str("<pre class=\"stack\">");
    for frame in frames.iter().take(64) {
        let _ = writeln!(
            out,
            "{}\n\t{}",
            text(&frame.function),
            text(&file_line(frame))
        );
    }
    if frames.len() > 64 {
        let _ = writeln!(out, "… {} more frames", frames.len() - 64);
    }
    out.push_str("</pre>");
}
