//! Measures how long rendering a large exposition takes, per format.
//!
//! `cargo run --release -p goroscope-export --example render_speed` builds an
//! exposition of 10,000 series (counters, gauges and kernel-bucket
//! histograms; series counted as sample lines, see
//! `Exposition::series_count`) and one of 10,000 label sets (half of them
//! histograms), renders each many times into a reused buffer and prints the
//! median time per format.
//!
//! `--print text|openmetrics` writes the 10,000-series exposition to stdout
//! instead, e.g. for `promtool check metrics`.

use std::hint::black_box;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use goroscope_export::{BucketLayout, Exposition, Family, Format, Labels};
use goroscope_model::LatencyHistogram;

/// Histogram layout of the benchmark: one bucket per octave, 1 us to 10 s.
fn layout() -> BucketLayout {
    match BucketLayout::new(1, 1_000, 10_000_000_000) {
        Ok(layout) => layout,
        Err(error) => panic!("benchmark layout: {error}"),
    }
}

/// A label set like the agent's: pid, command, and an escaped-looking value.
fn process(i: usize) -> Labels {
    Labels::new()
        .push("pid", (1000 + i).to_string())
        .push("comm", format!("service-{}", i % 97))
}

/// Builds an exposition with `counters` counter and gauge label sets each
/// and `histograms` histogram label sets.
fn build(counters: usize, gauges: usize, histograms: usize) -> Exposition {
    let layout = layout();
    let mut syscalls = Family::counter("goroscope_syscalls_total", "Syscalls made, by process.");
    for i in 0..counters {
        syscalls.add_counter(process(i), (i as f64) * 1_234_567.0);
    }
    let mut goroutines = Family::gauge("goroscope_goroutines", "Goroutines, by process.");
    for i in 0..gauges {
        goroutines.add_gauge(process(i), (i % 5000) as f64 + 0.5);
    }
    let mut latency = Family::histogram(
        "goroscope_syscall_latency_seconds",
        "Syscall latency, by process.",
    );
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for i in 0..histograms {
        let mut hist = LatencyHistogram::new();
        let mut sum_ns = 0u64;
        for _ in 0..200 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let ns = state >> (30 + state % 30);
            hist.record(ns);
            sum_ns = sum_ns.saturating_add(ns);
        }
        latency.add_histogram(process(i), &layout.histogram_from_ns(&hist, sum_ns));
    }
    let mut exposition = Exposition::new();
    exposition.push(syscalls);
    exposition.push(goroutines);
    exposition.push(latency);
    exposition
}

/// Renders `runs` times and returns the median duration.
fn median_render(
    exposition: &Exposition,
    format: Format,
    runs: usize,
    out: &mut Vec<u8>,
) -> Duration {
    exposition.render(format, out); // Warm up and size the buffer.
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            exposition.render(format, out);
            black_box(&out);
            start.elapsed()
        })
        .collect();
    times.sort();
    times[times.len() / 2]
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // 4,004 counters + 2,000 gauges + 148 histograms of 27 lines = 10,000.
    let ten_thousand_series = build(4_004, 2_000, 148);
    if let [flag, format] = args.as_slice() {
        let format = match (flag.as_str(), format.as_str()) {
            ("--print", "text") => Format::PrometheusText,
            ("--print", "openmetrics") => Format::OpenMetrics,
            _ => {
                eprintln!("usage: render_speed [--print text|openmetrics]");
                return ExitCode::FAILURE;
            }
        };
        let mut out = Vec::new();
        ten_thousand_series.render(format, &mut out);
        return match std::io::stdout().lock().write_all(&out) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("writing the exposition: {error}");
                ExitCode::FAILURE
            }
        };
    }
    if !args.is_empty() {
        eprintln!("usage: render_speed [--print text|openmetrics]");
        return ExitCode::FAILURE;
    }

    let ten_thousand_label_sets = build(5_000, 0, 5_000);
    let mut out = Vec::new();
    for (what, exposition, runs) in [
        ("10k series", &ten_thousand_series, 501),
        ("10k label sets", &ten_thousand_label_sets, 101),
    ] {
        for format in [Format::PrometheusText, Format::OpenMetrics] {
            let median = median_render(exposition, format, runs, &mut out);
            println!(
                "{what:>15} ({:>6} series) {format:?}: median {:>8.3} ms over {runs} runs, {} bytes",
                exposition.series_count(),
                median.as_secs_f64() * 1e3,
                out.len(),
            );
        }
    }
    ExitCode::SUCCESS
}
