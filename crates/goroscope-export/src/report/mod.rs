//! The HTML report of `goroscope record`: one self-contained HTML5 file rendered from a
//! [`Recording`], readable offline with nothing fetched.
//!
//! The page opens with the verdict ([`findings()`](findings::findings)), then one
//! `<section>` per subject: `goroutines`, `leaks`, `waits`, `cpu`, `gc`, `scheduler`,
//! `syscalls`, `tcp`, `files`, `fds`, `notes`. Charts are SVG drawn here with plotters (module
//! `chart`), flame graphs SVG drawn by inferno and inlined (module `flame`), with a little
//! inline script for sortable tables and flame-graph zoom and search. Every text that came from the process goes
//! through one escaping function (`html::text`); the script and style are constants, so
//! nothing from the recording ever lands inside `<script>`.
//!
//! DOM contract (tests and browser checks rely on it):
//! - findings: `<section id="summary">` with one `<li class="finding {ok|warn|bad}"
//!   data-kind="…">` each;
//! - leak suspects: `<tr class="leak-suspect" data-count="{count}"
//!   data-creation="{file}:{line}" data-start="{start_function}">`;
//! - flame graphs: `<div class="flamegraph" id="cpu-flamegraph">` and
//!   `<div class="flamegraph" id="wall-flamegraph">`, holding an `<svg class="fg">` or a
//!   `<p class="empty">`; the svg holds inferno's frames, `<g>` each with a `<title>`, a
//!   `<rect data-x="…" data-w="…">` (extent in value units) and a `<text>` label;
//! - charts: `<figure class="chart" id="chart-…">` with an inline `<svg>`.

mod chart;
mod fd_climb;
pub mod findings;
mod findings_go;
mod flame;
mod format;
mod goroutines;
mod html;
mod palette;
mod runtime;
mod system;

use std::fmt::Write as _;

use goroscope_model::profile::Profile;
use goroscope_model::recording::{Recording, RECORDING_FORMAT};

use format::{format_duration_ns, format_share};
use html::text;

pub use findings::{fd_climb, findings, FdClimb, Finding, FindingKind, Severity};

/// Why a report could not be rendered.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    /// The recording was written in a layout this goroscope does not read (a newer or older
    /// goroscope wrote it).
    #[error("the recording has format {found}; this goroscope renders format {supported} only")]
    UnsupportedFormat {
        /// The recording's `format`.
        found: u32,
        /// [`RECORDING_FORMAT`].
        supported: u32,
    },
    /// plotters failed to draw a chart.
    #[error("drawing the chart {chart} failed: {message}")]
    Chart {
        /// The chart's id (`goroutines`, `heap`, …).
        chart: String,
        /// plotters' error, as text (so plotters' types stay out of this crate's API).
        message: String,
    },
}

/// The sections after the summary: `(id, title)`, in page order.
pub const SECTIONS: [(&str, &str); 11] = [
    ("goroutines", "Goroutines"),
    ("leaks", "Leaks"),
    ("waits", "Where goroutines wait"),
    ("cpu", "CPU"),
    ("gc", "Garbage collector"),
    ("scheduler", "Scheduler"),
    ("syscalls", "Syscalls"),
    ("tcp", "TCP"),
    ("files", "Files"),
    ("fds", "Descriptors, threads and memory"),
    ("notes", "Notes"),
];

const STYLE: &str = include_str!("style.css");
const SCRIPT: &str = include_str!("script.js");

/// Renders `recording` as one self-contained HTML5 page.
pub fn render_html(recording: &Recording) -> Result<String, ReportError> {
    if recording.format != RECORDING_FORMAT {
        return Err(ReportError::UnsupportedFormat {
            found: recording.format,
            supported: RECORDING_FORMAT,
        });
    }
    let mut out = String::with_capacity(256 * 1024);
    head(recording, &mut out);
    header(recording, &mut out);
    out.push_str("<div class=\"layout\"><nav class=\"toc\" aria-label=\"Contents\"><ul><li><a href=\"#summary\">Summary</a></li>");
    for (id, title) in SECTIONS {
        let _ = write!(out, "<li><a href=\"#{id}\">{}</a></li>", text(title));
    }
    out.push_str("</ul></nav><main>");
    summary(recording, &mut out);
    for (id, title) in SECTIONS {
        let _ = write!(out, "<section id=\"{id}\"><h2>{}</h2>", text(title));
        match id {
            "goroutines" => goroutines::goroutines(recording, &mut out)?,
            "leaks" => goroutines::leaks(recording, &mut out),
            "waits" => runtime::waits(recording, &mut out)?,
            "cpu" => runtime::cpu(recording, &mut out),
            "gc" => runtime::gc(recording, &mut out)?,
            "scheduler" => runtime::scheduler(recording, &mut out)?,
            "syscalls" => system::syscalls(recording, &mut out)?,
            "tcp" => system::tcp(recording, &mut out),
            "files" => system::files(recording, &mut out),
            "fds" => system::fds(recording, &mut out)?,
            _ => system::notes(recording, &mut out),
        }
        out.push_str("</section>");
    }
    out.push_str("</main></div><script>");
    out.push_str(SCRIPT);
    out.push_str("</script></body></html>\n");
    Ok(out)
}

/// The `<head>`: a policy that forbids every fetch, the style.
fn head(recording: &Recording, out: &mut String) {
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:\">\
         <link rel=\"icon\" href=\"data:,\">\
         <title>goroscope report: {} (pid {})</title><style>{STYLE}</style></head><body>",
        text(&recording.target.command),
        recording.target.pid
    );
}

/// The page header: what was recorded, where, when and for how long.
fn header(recording: &Recording, out: &mut String) {
    let target = &recording.target;
    let window = &recording.window;
    let _ = write!(
        out,
        "<header><h1>goroscope report <code>{}</code> <span class=\"pid\">pid {}</span></h1><dl class=\"meta\">",
        text(&target.command),
        target.pid
    );
    let mut item = |name: &str, value: String| {
        let _ = write!(out, "<div><dt>{}</dt><dd>{}</dd></div>", text(name), value);
    };
    if !target.command_line.is_empty() {
        item(
            "command line",
            format!("<code>{}</code>", text(&target.command_line)),
        );
    }
    if !target.executable.is_empty() {
        item(
            "executable",
            format!("<code>{}</code>", text(&target.executable)),
        );
    }
    match (&target.go_version, &target.main_module) {
        (Some(version), Some(module)) => item(
            "Go",
            format!("{} · <code>{}</code>", text(version), text(module)),
        ),
        (Some(version), None) => item("Go", text(version)),
        _ => item("Go", "not Go".to_string()),
    }
    item(
        "host",
        format!("{} · {} CPUs", text(&target.host), target.cpus),
    );
    item("started", text(&utc(window.started_unix_ns)));
    item(
        "recorded",
        format!(
            "{} of {} asked, every {}",
            text(&format_duration_ns(window.recorded_ns)),
            text(&format_duration_ns(window.requested_ns)),
            text(&format_duration_ns(window.interval_ns))
        ),
    );
    item("goroscope", text(&recording.goroscope_version));
    out.push_str("</dl></header>");
}

/// The verdict: one list item per finding, worst first, each linking to its section.
fn summary(recording: &Recording, out: &mut String) {
    out.push_str("<section id=\"summary\"><h2>Summary</h2><ul class=\"findings\">");
    for finding in findings(recording) {
        let _ = write!(
            out,
            "<li class=\"finding {sev}\" data-kind=\"{kind}\"><span class=\"badge\">{sev}</span> {body} <a class=\"more\" href=\"#{section}\">details</a></li>",
            sev = finding.severity.class(),
            kind = finding.kind.name(),
            body = text(&finding.text),
            section = finding.kind.section(),
        );
    }
    out.push_str("</ul></section>");
}

/// The paragraph a Go-only section shows for a process that is not Go.
fn not_go(recording: &Recording, out: &mut String) {
    html::empty(
        out,
        &format!(
            "Not a Go process, or its runtime could not be read: {}.",
            recording
                .target
                .not_go
                .as_deref()
                .unwrap_or("no reason was recorded")
        ),
    );
}

/// The index of the time value of `profile` (the first in nanoseconds), else its default.
pub(crate) fn time_value(profile: &Profile) -> usize {
    profile
        .sample_types
        .iter()
        .position(|t| t.unit == "nanoseconds")
        .unwrap_or(profile.default_sample_type)
}

/// `part` of `whole` as the report prints shares.
fn share(part: u64, whole: u64) -> String {
    format_share(part as f64, whole as f64)
}

/// Nanoseconds since the Unix epoch as `YYYY-MM-DD hh:mm:ss UTC`.
fn utc(unix_ns: i64) -> String {
    let seconds = unix_ns.div_euclid(1_000_000_000);
    let days = seconds.div_euclid(86_400);
    let of_day = seconds.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod tests;
