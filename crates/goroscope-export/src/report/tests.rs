//! Tests of the rendered report: the DOM contract, escaping, no URL anywhere, the non-Go
//! page, size bounds; one test also writes the sample report to `target/report-sample.html`.

use goroscope_model::profile::ProfileKind;
use goroscope_model::recording::{FileOpens, Recording, SyscallSummary};

use super::fixtures::{go_recording, not_go_recording, profile, HOSTILE};
use super::{render_html, ReportError, SCRIPT, SECTIONS};

#[track_caller]
fn render(recording: &Recording) -> String {
    render_html(recording).unwrap_or_else(|error| panic!("rendering failed: {error}"))
}

/// The values of every `name="…"` attribute.
fn attribute_values<'h>(html: &'h str, name: &str) -> Vec<&'h str> {
    let needle = format!(" {name}=\"");
    html.match_indices(&needle)
        .filter_map(|(at, _)| {
            let rest = &html[at + needle.len()..];
            rest.find('"').map(|end| &rest[..end])
        })
        .collect()
}

/// `html` without its tags: what a browser shows as text (entities left as they are).
fn text_of(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out
}

#[test]
fn every_section_is_there_once_in_order() {
    for recording in [go_recording(), not_go_recording()] {
        let html = render(&recording);
        assert!(html.starts_with("<!DOCTYPE html>\n<html lang=\"en\">"));
        assert!(html.ends_with("</html>\n"));
        let mut last = 0;
        for id in std::iter::once("summary").chain(SECTIONS.iter().map(|&(id, _)| id)) {
            let tag = format!("<section id=\"{id}\"><h2>");
            assert_eq!(html.matches(&tag).count(), 1, "section {id}");
            let at = html.find(&tag).unwrap_or(0);
            assert!(at > last, "section {id} out of order");
            last = at;
            assert!(
                html.contains(&format!("<a href=\"#{id}\">")),
                "no contents entry for {id}"
            );
        }
        assert_eq!(
            html.matches("<section").count(),
            html.matches("</section>").count()
        );
    }
}

#[test]
fn leak_suspect_rows_carry_exact_counts_and_creation_sites() {
    let html = render(&go_recording());
    assert!(
        html.contains("<tr class=\"leak-suspect\" data-count=\"1234\" data-creation=\"/src/app/workers.go:42\" data-start=\"main.worker\">"),
        "first suspect row missing"
    );
    assert!(
        html.contains("<tr class=\"leak-suspect\" data-count=\"17\" data-creation=\"/src/app/&lt;server&gt;&amp;.go:88\" data-start=\"&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;\\e[31m\">"),
        "second suspect row missing or not escaped"
    );
    assert_eq!(html.matches("<tr class=\"leak-suspect\"").count(), 2);
    // The count and creation site are shown as text too.
    let row = html
        .split("<tr class=\"leak-suspect\" data-count=\"1234\"")
        .nth(1)
        .and_then(|rest| rest.split("</tr>").next())
        .unwrap_or_default();
    assert!(row.contains(">1\u{202f}234</td>"), "{row}");
    assert!(text_of(row).contains("/src/app/workers.go:42"), "{row}");
    // With the stack of its group.
    assert!(html.contains("runtime.chansend1\n\t/usr/lib/go/src/runtime/chan.go:161"));
}

#[test]
fn flame_graphs_and_charts_follow_the_contract() {
    let html = render(&go_recording());
    for id in ["cpu-flamegraph", "wall-flamegraph"] {
        let tag = format!("<div class=\"flamegraph\" id=\"{id}\">");
        let body = html.split(&tag).nth(1).unwrap_or_default();
        assert!(
            body.starts_with("<div class=\"fg-controls\">"),
            "{id}: {}",
            &body[..body.len().min(200)]
        );
        assert!(
            body.contains("<svg class=\"fg\" role=\"img\" viewBox="),
            "{id}"
        );
        // inferno's frames, their extents kept without its URL-named namespace.
        assert!(body.contains(&format!("<svg id=\"{id}-frames\" ")), "{id}");
        assert!(body.contains("\" data-x=\"0\" data-w=\""), "{id}");
        assert!(!body.contains("fg:"), "{id}");
    }
    // Two graphs, one page: every id once.
    let ids = attribute_values(&html, "id");
    let mut unique = ids.clone();
    unique.sort_unstable();
    unique.dedup();
    assert_eq!(unique.len(), ids.len(), "an id twice on the page");
    for id in [
        "goroutines",
        "creation-rate",
        "lifetimes",
        "wait-categories",
        "gc-pauses",
        "heap",
        "scheduler",
        "fds",
        "rss",
        "cpu-use",
        "latency-1",
    ] {
        let tag = format!("<figure class=\"chart\" id=\"chart-{id}\"><svg ");
        assert_eq!(html.matches(&tag).count(), 1, "chart {id}");
    }
    // A browser logs an error for each negative size (plotters draws one for a lone bar).
    for attribute in ["width=\"-", "height=\"-"] {
        assert!(!html.contains(attribute), "a negative SVG size");
    }
    let not_go = render(&not_go_recording());
    assert!(not_go.contains("<div class=\"flamegraph\" id=\"wall-flamegraph\"><p class=\"empty\">"));
    assert!(not_go
        .contains("<div class=\"flamegraph\" id=\"cpu-flamegraph\"><div class=\"fg-controls\">"));
}

#[test]
fn nothing_is_fetched_no_url_anywhere() {
    for recording in [go_recording(), not_go_recording()] {
        let html = render(&recording);
        let lower = html.to_ascii_lowercase();
        for scheme in ["http:", "https:", "ws:", "wss:", "ftp:", "file:", "xmlns"] {
            // As a word of its own (`profile:` is no `file:`).
            for (at, _) in lower.match_indices(scheme) {
                let before = lower[..at].chars().next_back().unwrap_or(' ');
                assert!(
                    before.is_ascii_alphanumeric(),
                    "{scheme} in the page: {}",
                    &html[at.saturating_sub(80)..(at + 80).min(html.len())]
                );
            }
        }
        assert!(!lower.contains("://"), "a URL in the page");
        for name in ["src", "href", "xlink:href", "action", "poster"] {
            for value in attribute_values(&html, name) {
                assert!(
                    value.starts_with('#') || value.starts_with("data:"),
                    "{name}=\"{value}\""
                );
            }
        }
        assert!(!lower.contains("url("), "a CSS url()");
        assert!(!lower.contains("@import"));
    }
}

#[test]
fn hostile_names_appear_only_escaped() {
    let html = render(&go_recording());
    assert!(
        !html.contains("alert(1)</script>"),
        "a raw </script> from the process"
    );
    assert!(
        !html.contains("<script>alert"),
        "a raw <script> from the process"
    );
    assert!(!html.contains('\u{1b}'), "a raw ESC");
    assert!(!html.contains('\u{7}'), "a raw BEL");
    let escaped = "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;\\e[31m";
    // Leak table, group stack, CPU flame graph, wall flame graph, top table at least.
    assert!(
        html.matches(escaped).count() >= 5,
        "{}",
        html.matches(escaped).count()
    );
    assert!(html.contains("/var/cache/app/missing\\e]0;pwned\\x07"));
    // The only script is the page's own, unchanged.
    assert_eq!(html.matches("<script>").count(), 1);
    let script = html
        .split("<script>")
        .nth(1)
        .and_then(|rest| rest.split("</script>").next())
        .unwrap_or_default();
    assert_eq!(script, SCRIPT);
    // The title and header too.
    let mut recording = go_recording();
    recording.target.command = HOSTILE.to_string();
    let html = render(&recording);
    assert!(html.contains(&format!(
        "<title>goroscope report: {escaped} (pid 4242)</title>"
    )));
    assert_eq!(html.matches("<script>").count(), 1);
}

#[test]
fn a_process_that_is_not_go_says_so_in_its_go_sections() {
    let html = render(&not_go_recording());
    for id in ["goroutines", "leaks", "gc", "scheduler"] {
        let body = html
            .split(&format!("<section id=\"{id}\">"))
            .nth(1)
            .and_then(|rest| rest.split("</section>").next())
            .unwrap_or_default();
        assert!(
            body.contains("Not a Go process, or its runtime could not be read: no Go build info in /usr/sbin/nginx."),
            "{id}: {body}"
        );
    }
    assert!(html.contains("<li class=\"finding warn\" data-kind=\"not-go\">"));
    assert!(html.contains("<li class=\"finding bad\" data-kind=\"ended\">"));
    assert!(!html.contains("<tr class=\"leak-suspect\""));
}

#[test]
fn findings_open_the_page_worst_first() {
    let html = render(&go_recording());
    let summary = html
        .split("<section id=\"summary\">")
        .nth(1)
        .and_then(|rest| rest.split("</section>").next())
        .unwrap_or_default();
    let first = summary
        .find("<li class=\"finding bad\"")
        .unwrap_or(usize::MAX);
    let ok = summary.find("<li class=\"finding ok\"").unwrap_or(0);
    assert!(first < ok, "{summary}");
    assert!(summary.contains("data-kind=\"leak\""));
    assert!(summary.contains("data-kind=\"fds\""));
    assert!(summary.contains("1\u{202f}234 goroutines blocked in chan send"));
}

#[test]
fn the_page_stays_small_and_big_inputs_are_capped() {
    let html = render(&go_recording());
    assert!(
        html.len() < 400_000,
        "{} bytes for a 30 s recording",
        html.len()
    );

    // A worst case: 20 000 distinct CPU stacks, 3 000 syscalls, 500 paths, 5 000 points.
    let mut recording = go_recording();
    let names: Vec<String> = (0..20_000).map(|i| format!("main.f{i}")).collect();
    let stacks: Vec<(Vec<&str>, i64)> = names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            (
                vec![name.as_str(), "main.loop", "main.main"],
                1_000_000 + i as i64,
            )
        })
        .collect();
    recording.cpu_profile = Some(profile(ProfileKind::Cpu, &stacks));
    recording.syscalls = (0..3000)
        .map(|i| SyscallSummary {
            name: format!("syscall_{i}"),
            count: 10,
            ..SyscallSummary::default()
        })
        .collect();
    recording.files.paths = (0..500)
        .map(|i| FileOpens {
            path: format!("/data/file-{i}"),
            opens: 1,
            failures: vec![],
        })
        .collect();
    let template = recording.timeline[0].clone();
    recording.timeline = (0..5000u64)
        .map(|i| {
            let mut point = template.clone();
            point.at_ns = i * 10_000_000;
            point.fds = Some(i);
            point
        })
        .collect();
    let html = render(&recording);
    assert!(html.len() < 2_000_000, "{} bytes", html.len());
    assert!(
        html.contains("2\u{202f}800 more not shown"),
        "syscall table not capped"
    );
    assert!(html.contains("300 more not shown"), "file table not capped");
    let more: Vec<&str> = html
        .match_indices(" more not shown")
        .map(|(at, _)| &html[at.saturating_sub(12)..at])
        .collect();
    assert!(
        html.contains("19\u{202f}802 more not shown"),
        "top table not capped: {more:?}"
    );
    let frames = html.matches(" data-w=\"").count();
    assert!(frames > 0, "no flame graph frames");
    assert!(
        frames <= 2 * super::flame::MAX_FRAMES_FOR_TESTS,
        "{frames} flame graph frames"
    );
}

#[test]
fn recordings_of_another_format_are_refused() {
    let mut recording = go_recording();
    recording.format = 99;
    match render_html(&recording) {
        Err(ReportError::UnsupportedFormat {
            found: 99,
            supported,
        }) => {
            assert_eq!(supported, goroscope_model::recording::RECORDING_FORMAT);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn writes_the_sample_report_for_inspection() {
    let html = render(&go_recording());
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    if let Err(error) = std::fs::create_dir_all(&target)
        .and_then(|()| std::fs::write(target.join("report-sample.html"), &html))
        .and_then(|()| {
            std::fs::write(
                target.join("report-sample-not-go.html"),
                render(&not_go_recording()),
            )
        })
    {
        panic!("writing the sample into {}: {error}", target.display());
    }
}
