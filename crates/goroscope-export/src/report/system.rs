//! The process sections that need no Go runtime: `syscalls` (table and latency histograms),
//! `tcp` (directions and peers), `files` (opens and failures), `fds` (descriptors, threads,
//! memory and CPU over time) and `notes`.

use std::fmt::Write as _;

use goroscope_model::recording::{Ended, Recording, SyscallSummary};
use goroscope_model::{bucket_upper_bound_ns, LatencyHistogram};

use super::chart::{bar_chart, time_chart, Bar, Series, Unit};
use super::format::{format_bytes, format_count, format_duration_ns};
use super::html::{empty, text, Cell, Table};
use super::palette::series_colour;
use super::ReportError;

/// Syscalls whose latency histogram is drawn.
const HISTOGRAMS: usize = 3;

/// `(p50, p99)` of quarter-octave `buckets`, clamped to `max_ns`.
fn quantiles(buckets: &[u64], max_ns: u64) -> (Option<u64>, Option<u64>) {
    let mut histogram = LatencyHistogram::new();
    histogram.add_bucket_counts(buckets);
    (
        histogram.quantile_ns(0.5, max_ns),
        histogram.quantile_ns(0.99, max_ns),
    )
}

/// A latency cell, `–` when unknown.
fn latency(value: Option<u64>) -> Cell {
    match value {
        Some(ns) => Cell::number(format_duration_ns(ns), ns as f64),
        None => Cell::number("–".to_string(), -1.0),
    }
}

/// `(errno, count)` pairs as `EAGAIN 12, ENOENT 3`.
fn errnos(pairs: &[(String, u64)]) -> String {
    pairs
        .iter()
        .map(|(errno, n)| format!("{errno} {}", format_count(*n)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The `syscalls` section.
pub(crate) fn syscalls(recording: &Recording, out: &mut String) -> Result<(), ReportError> {
    if recording.syscalls.is_empty() {
        empty(out, "No syscalls were recorded.");
        return Ok(());
    }
    let mut table = Table::new(&[
        ("syscall", false),
        ("calls", true),
        ("errors", true),
        ("errors by errno", false),
        ("total", true),
        ("mean", true),
        ("max", true),
        ("p50", true),
        ("p99", true),
    ]);
    for call in &recording.syscalls {
        let (p50, p99) = quantiles(&call.latency_buckets, call.max_ns);
        let mean = call.total_ns.checked_div(call.timed);
        table.row(
            String::new(),
            vec![
                Cell::code(&call.name),
                Cell::count(call.count),
                Cell::count(call.errors),
                Cell::text(&errnos(&call.errors_by_errno)),
                Cell::number(format_duration_ns(call.total_ns), call.total_ns as f64),
                latency(mean),
                latency(Some(call.max_ns)),
                latency(p50),
                latency(p99),
            ],
        );
    }
    table.render("syscalls", out);
    out.push_str("<p class=\"hint\">p50 and p99 come from quarter-octave buckets: each is an upper bound at most 19 % above the true value. Mean and percentiles are over the calls timed.</p>");
    let mut by_time: Vec<&SyscallSummary> = recording.syscalls.iter().collect();
    by_time.sort_by_key(|call| std::cmp::Reverse(call.total_ns));
    for (i, call) in by_time.into_iter().take(HISTOGRAMS).enumerate() {
        let bars = octaves(&call.latency_buckets, i);
        if bars.is_empty() {
            continue;
        }
        let id = format!("latency-{}", i + 1);
        out.push_str(&bar_chart(
            &id,
            &format!(
                "Latency of {} ({} calls timed), by octave.",
                goroscope_model::escape(call.name.as_bytes()),
                format_count(call.timed)
            ),
            "latency up to",
            Unit::Count,
            &bars,
        )?);
    }
    Ok(())
}

/// Quarter-octave `buckets` merged into octaves, from two before the first non-empty one to
/// two after the last.
fn octaves(buckets: &[u64], colour: usize) -> Vec<Bar> {
    let mut merged: Vec<(usize, u64)> = Vec::new();
    for (i, &count) in buckets.iter().enumerate() {
        let octave = i.div_ceil(4);
        match merged.last_mut() {
            Some((last, sum)) if *last == octave => *sum += count,
            _ => merged.push((octave, count)),
        }
    }
    let first = merged.iter().position(|&(_, n)| n > 0);
    let last = merged.iter().rposition(|&(_, n)| n > 0);
    let (Some(first), Some(last)) = (first, last) else {
        return Vec::new();
    };
    // Two empty octaves on each side, so a narrow distribution still reads as one.
    let (first, last) = (
        first.saturating_sub(2),
        (last + 2).min(merged.len().saturating_sub(1)),
    );
    merged[first..=last]
        .iter()
        .map(|&(octave, count)| {
            let upper = bucket_upper_bound_ns(octave * 4);
            Bar {
                label: if upper.is_finite() {
                    format!("≤{}", format_duration_ns(upper as u64))
                } else {
                    "more".to_string()
                },
                value: count as f64,
                colour: series_colour(colour),
            }
        })
        .collect()
}

/// The `tcp` section.
pub(crate) fn tcp(recording: &Recording, out: &mut String) {
    let section = &recording.tcp;
    if section.directions.is_empty() && section.peers.is_empty() {
        empty(out, "No TCP activity was recorded.");
        return;
    }
    let mut table = Table::new(&[
        ("direction", false),
        ("opened", true),
        ("closed", true),
        ("connect failures", true),
        ("resets sent", true),
        ("resets received", true),
        ("retransmits", true),
        ("sent", true),
        ("received", true),
        ("connect p50", true),
        ("connect p99", true),
    ]);
    for d in &section.directions {
        let (p50, p99) = quantiles(&d.connect_latency_buckets, u64::MAX);
        table.row(
            String::new(),
            vec![
                Cell::text(&d.direction),
                Cell::count(d.opened),
                Cell::count(d.closed),
                Cell::count(d.connect_failures),
                Cell::count(d.resets_sent),
                Cell::count(d.resets_received),
                Cell::count(d.retransmits),
                Cell::number(format_bytes(d.bytes_sent), d.bytes_sent as f64),
                Cell::number(format_bytes(d.bytes_received), d.bytes_received as f64),
                latency(p50),
                latency(p99),
            ],
        );
    }
    table.render("tcp", out);
    out.push_str("<h3>Peers</h3>");
    if section.peers.is_empty() {
        empty(out, "No peers.");
        return;
    }
    let mut peers = Table::new(&[
        ("direction", false),
        ("address", false),
        ("port", true),
        ("connections", true),
        ("sent", true),
        ("received", true),
    ]);
    for peer in &section.peers {
        peers.row(
            String::new(),
            vec![
                Cell::text(&peer.direction),
                Cell::code(&peer.address),
                Cell::number(peer.port.to_string(), f64::from(peer.port)),
                Cell::count(peer.connections),
                Cell::number(format_bytes(peer.bytes_sent), peer.bytes_sent as f64),
                Cell::number(
                    format_bytes(peer.bytes_received),
                    peer.bytes_received as f64,
                ),
            ],
        );
    }
    peers.render("peers", out);
}

/// The `files` section.
pub(crate) fn files(recording: &Recording, out: &mut String) {
    let files = &recording.files;
    let _ = write!(
        out,
        "<p class=\"lead\"><strong>{}</strong> opens, {} failed.</p>",
        format_count(files.opens),
        format_count(files.failures)
    );
    if files.lost > 0 {
        let _ = write!(
            out,
            "<p class=\"verdict warn\">{} open events were lost (the kernel's buffer was full): the counts miss them.</p>",
            format_count(files.lost)
        );
    }
    if files.paths.is_empty() {
        empty(out, "No file opens were recorded.");
        return;
    }
    let mut table = Table::new(&[
        ("path", false),
        ("opens", true),
        ("failures", true),
        ("failures by errno", false),
    ]);
    for path in &files.paths {
        let failed: u64 = path.failures.iter().map(|(_, n)| n).sum();
        table.row(
            String::new(),
            vec![
                Cell::code(&path.path),
                Cell::count(path.opens),
                Cell::count(failed),
                Cell::text(&errnos(&path.failures)),
            ],
        );
    }
    table.render("files", out);
    if files.other_paths > 0 {
        let _ = write!(
            out,
            "<p class=\"hint\">{} more opens of other paths.</p>",
            format_count(files.other_paths)
        );
    }
}

/// The `fds` section.
pub(crate) fn fds(recording: &Recording, out: &mut String) -> Result<(), ReportError> {
    let line =
        |pick: fn(&goroscope_model::recording::TimePoint) -> Option<u64>| -> Vec<(f64, f64)> {
            recording
                .timeline
                .iter()
                .filter_map(|p| Some((p.at_ns as f64 / 1e9, pick(p)? as f64)))
                .collect()
        };
    let fds = line(|p| p.fds);
    let threads = line(|p| p.threads);
    if fds.is_empty() && threads.is_empty() {
        empty(out, "No descriptor or thread counts were recorded.");
    } else {
        out.push_str(&time_chart(
            "fds",
            "Open file descriptors and threads of the process.",
            Unit::Count,
            vec![
                Series {
                    name: "open fds".to_string(),
                    colour: series_colour(0),
                    points: fds,
                },
                Series {
                    name: "threads".to_string(),
                    colour: series_colour(1),
                    points: threads,
                },
            ],
            false,
        )?);
    }
    let rss = line(|p| p.rss_bytes);
    if !rss.is_empty() {
        out.push_str(&time_chart(
            "rss",
            "Resident memory (RSS).",
            Unit::Bytes,
            vec![Series {
                name: "RSS".to_string(),
                colour: series_colour(2),
                points: rss,
            }],
            false,
        )?);
    }
    let cpu: Vec<(u64, u64)> = recording
        .timeline
        .iter()
        .filter_map(|p| Some((p.at_ns, p.cpu_ns?)))
        .collect();
    let use_: Vec<(f64, f64)> = cpu
        .windows(2)
        .filter_map(|pair| {
            let dt = pair[1].0.saturating_sub(pair[0].0);
            (dt > 0).then(|| {
                (
                    pair[1].0 as f64 / 1e9,
                    pair[1].1.saturating_sub(pair[0].1) as f64 / dt as f64,
                )
            })
        })
        .collect();
    if !use_.is_empty() {
        out.push_str(&time_chart(
            "cpu-use",
            "CPU use (user + system), in CPUs.",
            Unit::Count,
            vec![Series {
                name: "CPUs".to_string(),
                colour: series_colour(3),
                points: use_,
            }],
            false,
        )?);
    }
    Ok(())
}

/// The `notes` section.
pub(crate) fn notes(recording: &Recording, out: &mut String) {
    let mut notes: Vec<String> = Vec::new();
    match &recording.window.ended {
        Ended::Completed => {}
        Ended::Interrupted { after_ns } => notes.push(format!(
            "The recording was interrupted after {}.",
            format_duration_ns(*after_ns)
        )),
        Ended::Exited { after_ns } => notes.push(format!(
            "The process exited after {}.",
            format_duration_ns(*after_ns)
        )),
        Ended::Exec { after_ns, into } => notes.push(format!(
            "The process ran exec ({}) after {}.",
            if into.is_empty() {
                "program unknown"
            } else {
                into
            },
            format_duration_ns(*after_ns)
        )),
    }
    if let Some(go) = &recording.go {
        if go.skipped_snapshots > 0 {
            notes.push(format!(
                "{} goroutine snapshots failed and were skipped.",
                format_count(go.skipped_snapshots)
            ));
        }
        let cost = &go.health.read_cost;
        if let Some(mean) = cost.mean_read_ns {
            notes.push(format!(
                "Reading a goroutine snapshot took {} on average ({} at most); {} goroutine records changed while read and were dropped.",
                format_duration_ns(mean),
                format_duration_ns(cost.max_read_ns.unwrap_or(mean)),
                format_count(cost.dropped_records)
            ));
        }
    }
    for (name, profile) in [
        ("CPU profile", &recording.cpu_profile),
        ("wall-clock profile", &recording.wall_profile),
    ] {
        if let Some(profile) = profile {
            notes.extend(profile.comments.iter().map(|c| format!("{name}: {c}")));
        }
    }
    notes.extend(recording.notes.iter().cloned());
    if notes.is_empty() {
        empty(out, "Nothing to note: everything was recorded.");
        return;
    }
    out.push_str("<ul class=\"notes\">");
    for note in notes {
        let _ = write!(out, "<li>{}</li>", text(&note));
    }
    out.push_str("</ul>");
}
