//! Whole-exposition tests: both formats' full output for a small exposition.

use crate::{BucketLayout, Exposition, Family, Format, HistogramValue, Labels};
use goroscope_model::LatencyHistogram;

/// A small exposition exercising every type, escaping, units, empty label
/// sets and empty HELP, pushed out of order.
fn small_exposition() -> Exposition {
    let mut exposition = Exposition::new();

    let mut syscalls = Family::counter(
        "goroscope_syscall_seconds_total",
        "Time spent in syscalls.\nPer process \\ comm.",
    );
    let process = |pid: &str, comm: &str| Labels::new().push("pid", pid).push("comm", comm);
    syscalls.add_counter(process("2", "b\"q\nx"), 0.25);
    syscalls.add_counter(process("10", "a\\b"), 3.0);
    exposition.push(syscalls);

    let mut latency = Family::histogram("goroscope_runqueue_latency_seconds", "Run queue latency.");
    let busy = HistogramValue {
        buckets: vec![(0.000001024, 3), (0.000002048, 5), (1.0, 6)],
        count: 7,
        sum: 1.5,
    };
    latency.add_histogram(Labels::new().push("cpu", "0"), &busy);
    let idle = HistogramValue {
        buckets: vec![(0.5, 0)],
        count: 0,
        sum: 0.0,
    };
    latency.add_histogram(Labels::new(), &idle);
    exposition.push(latency);

    let mut rss = Family::gauge("goroscope_rss_bytes", "");
    rss.add_gauge(Labels::new(), 1_048_576.0);
    exposition.push(rss);

    let mut goroutines = Family::gauge("goroscope_goroutines", "Goroutines by \"state\".");
    goroutines.add_gauge(Labels::new().push("state", "waiting"), 12.0);
    goroutines.add_gauge(Labels::new().push("state", "running"), 1.0);
    exposition.push(goroutines);

    exposition
}

#[track_caller]
fn rendered(exposition: &Exposition, format: Format) -> String {
    let mut out = Vec::new();
    exposition.render(format, &mut out);
    String::from_utf8(out).expect("exposition is UTF-8")
}

#[test]
fn prometheus_text_output() {
    let expected = r#"# HELP goroscope_goroutines Goroutines by "state".
# TYPE goroscope_goroutines gauge
goroscope_goroutines{state="running"} 1
goroscope_goroutines{state="waiting"} 12
# TYPE goroscope_rss_bytes gauge
goroscope_rss_bytes 1048576
# HELP goroscope_runqueue_latency_seconds Run queue latency.
# TYPE goroscope_runqueue_latency_seconds histogram
goroscope_runqueue_latency_seconds_bucket{le="0.5"} 0
goroscope_runqueue_latency_seconds_bucket{le="+Inf"} 0
goroscope_runqueue_latency_seconds_sum 0
goroscope_runqueue_latency_seconds_count 0
goroscope_runqueue_latency_seconds_bucket{cpu="0",le="1.024e-06"} 3
goroscope_runqueue_latency_seconds_bucket{cpu="0",le="2.048e-06"} 5
goroscope_runqueue_latency_seconds_bucket{cpu="0",le="1"} 6
goroscope_runqueue_latency_seconds_bucket{cpu="0",le="+Inf"} 7
goroscope_runqueue_latency_seconds_sum{cpu="0"} 1.5
goroscope_runqueue_latency_seconds_count{cpu="0"} 7
# HELP goroscope_syscall_seconds_total Time spent in syscalls.\nPer process \\ comm.
# TYPE goroscope_syscall_seconds_total counter
goroscope_syscall_seconds_total{pid="10",comm="a\\b"} 3
goroscope_syscall_seconds_total{pid="2",comm="b\"q\nx"} 0.25
"#;
    assert_eq!(
        rendered(&small_exposition(), Format::PrometheusText),
        expected
    );
}

#[test]
fn openmetrics_output() {
    let expected = r#"# TYPE goroscope_goroutines gauge
# HELP goroscope_goroutines Goroutines by \"state\".
goroscope_goroutines{state="running"} 1
goroscope_goroutines{state="waiting"} 12
# TYPE goroscope_rss_bytes gauge
# UNIT goroscope_rss_bytes bytes
goroscope_rss_bytes 1048576
# TYPE goroscope_runqueue_latency_seconds histogram
# UNIT goroscope_runqueue_latency_seconds seconds
# HELP goroscope_runqueue_latency_seconds Run queue latency.
goroscope_runqueue_latency_seconds_bucket{le="0.5"} 0
goroscope_runqueue_latency_seconds_bucket{le="+Inf"} 0
goroscope_runqueue_latency_seconds_count 0
goroscope_runqueue_latency_seconds_sum 0
goroscope_runqueue_latency_seconds_bucket{cpu="0",le="1.024e-06"} 3
goroscope_runqueue_latency_seconds_bucket{cpu="0",le="2.048e-06"} 5
goroscope_runqueue_latency_seconds_bucket{cpu="0",le="1.0"} 6
goroscope_runqueue_latency_seconds_bucket{cpu="0",le="+Inf"} 7
goroscope_runqueue_latency_seconds_count{cpu="0"} 7
goroscope_runqueue_latency_seconds_sum{cpu="0"} 1.5
# TYPE goroscope_syscall_seconds counter
# UNIT goroscope_syscall_seconds seconds
# HELP goroscope_syscall_seconds Time spent in syscalls.\nPer process \\ comm.
goroscope_syscall_seconds_total{pid="10",comm="a\\b"} 3
goroscope_syscall_seconds_total{pid="2",comm="b\"q\nx"} 0.25
# EOF
"#;
    assert_eq!(rendered(&small_exposition(), Format::OpenMetrics), expected);
}

#[test]
fn series_count_of_small_exposition() {
    // 2 goroutine gauges + 1 rss + histograms (1 + 3) + (3 + 3) + 2 counters.
    assert_eq!(small_exposition().series_count(), 2 + 1 + 4 + 6 + 2);
}

#[test]
fn render_is_deterministic_and_reuses_the_buffer() {
    let exposition = small_exposition();
    let mut out = Vec::new();
    exposition.render(Format::OpenMetrics, &mut out);
    let first = out.clone();
    let (capacity, pointer) = (out.capacity(), out.as_ptr());
    exposition.render(Format::OpenMetrics, &mut out);
    assert_eq!(out, first);
    assert_eq!((out.capacity(), out.as_ptr()), (capacity, pointer));
}

#[test]
fn kernel_histogram_end_to_end() {
    let mut hist = LatencyHistogram::new();
    for ns in [500, 1_500, 1_500, 3_000_000_000, 900_000_000_000] {
        hist.record(ns);
    }
    let layout = BucketLayout::new(1, 1_000, 2_000_000_000).expect("valid layout");
    let value = layout.histogram_from_ns(&hist, 903_000_003_500);
    let mut family = Family::histogram("goroscope_syscall_latency_seconds", "Latency.");
    family.add_histogram(Labels::new(), &value);
    let mut exposition = Exposition::new();
    exposition.push(family);
    let text = rendered(&exposition, Format::OpenMetrics);
    let lines: Vec<&str> = text.lines().collect();
    // 2^10 ns .. 2^30 ns: 21 bounds.
    assert_eq!(lines.len(), 3 + 21 + 3 + 1, "{text}");
    assert_eq!(
        lines[3],
        "goroscope_syscall_latency_seconds_bucket{le=\"1.024e-06\"} 1"
    );
    assert_eq!(
        lines[4],
        "goroscope_syscall_latency_seconds_bucket{le=\"2.048e-06\"} 3"
    );
    assert_eq!(
        lines[23],
        "goroscope_syscall_latency_seconds_bucket{le=\"1.073741824\"} 3"
    );
    assert_eq!(
        lines[24],
        "goroscope_syscall_latency_seconds_bucket{le=\"+Inf\"} 5"
    );
    assert_eq!(lines[25], "goroscope_syscall_latency_seconds_count 5");
    assert_eq!(
        lines[26],
        "goroscope_syscall_latency_seconds_sum 903.0000035"
    );
}

#[test]
fn a_family_partitioned_by_process_keeps_values_and_drops_the_process_labels() {
    let mut family = Family::counter("goroscope_syscalls_total", "Syscalls.");
    let series = |pid: &str, syscall: &str| {
        Labels::new()
            .push("comm", "api")
            .push("pid", pid)
            .push("syscall", syscall)
    };
    family.add_counter(series("7", "read"), 3.0);
    family.add_counter(series("9", "read"), 5.0);
    family.add_counter(series("7", "write"), 2.0);
    let parts = family.partition(|labels| (labels.get("pid").map(str::to_owned), &["comm", "pid"]));
    let rendered: Vec<(Option<String>, Vec<String>)> = parts
        .iter()
        .map(|(pid, part)| {
            let mut exposition = Exposition::new();
            exposition.push(part.clone());
            let mut text = Vec::new();
            exposition.render(Format::PrometheusText, &mut text);
            let lines = String::from_utf8_lossy(&text)
                .lines()
                .filter(|line| !line.starts_with('#'))
                .map(str::to_owned)
                .collect();
            (pid.clone(), lines)
        })
        .collect();
    assert_eq!(
        rendered,
        vec![
            (
                Some("7".to_owned()),
                vec![
                    r#"goroscope_syscalls_total{syscall="read"} 3"#.to_owned(),
                    r#"goroscope_syscalls_total{syscall="write"} 2"#.to_owned(),
                ]
            ),
            (
                Some("9".to_owned()),
                vec![r#"goroscope_syscalls_total{syscall="read"} 5"#.to_owned()]
            ),
        ]
    );
}
