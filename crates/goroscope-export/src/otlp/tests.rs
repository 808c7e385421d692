//! Encodes families, decodes the request back with prost and checks exact
//! values.

use goroscope_model::LatencyHistogram;
use prost::Message;

use super::proto::common::{any_value, KeyValue};
use super::proto::metrics::{metric, AggregationTemporality, Metric, NumberDataPoint};
use super::*;
use crate::{BucketLayout, HistogramValue};

const START: u64 = 1_700_000_000_000_000_000;
const NOW: u64 = START + 15_000_000_000;

/// Encodes and decodes one resource of `families`, returning its metrics.
#[track_caller]
fn round_trip(attributes: Vec<KeyValue>, families: &[Family]) -> (Vec<KeyValue>, Vec<Metric>) {
    let request = metrics_request(
        &[ResourceFamilies {
            attributes,
            families,
        }],
        START,
        NOW,
    );
    let bytes = request.encode_to_vec();
    let decoded = ExportMetricsServiceRequest::decode(bytes.as_slice())
        .unwrap_or_else(|e| panic!("request does not decode: {e}"));
    assert_eq!(decoded, request);
    let [resource] = decoded.resource_metrics.as_slice() else {
        panic!("one resource expected: {decoded:?}");
    };
    let [scope] = resource.scope_metrics.as_slice() else {
        panic!("one scope expected: {resource:?}");
    };
    let name = scope
        .scope
        .as_ref()
        .map(|s| (s.name.as_str(), s.version.as_str()));
    assert_eq!(name, Some(("goroscope", env!("CARGO_PKG_VERSION"))));
    let attributes = resource
        .resource
        .clone()
        .map(|r| r.attributes)
        .unwrap_or_default();
    (attributes, scope.metrics.clone())
}

#[track_caller]
fn find<'a>(metrics: &'a [Metric], name: &str) -> &'a Metric {
    metrics
        .iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no metric {name} in {:?}", names(metrics)))
}

fn names(metrics: &[Metric]) -> Vec<&str> {
    metrics.iter().map(|m| m.name.as_str()).collect()
}

fn strings(attributes: &[KeyValue]) -> Vec<(String, String)> {
    attributes
        .iter()
        .map(|kv| {
            let value = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(any_value::Value::StringValue(s)) => s.clone(),
                Some(any_value::Value::IntValue(i)) => i.to_string(),
                other => panic!("unexpected value {other:?}"),
            };
            (kv.key.clone(), value)
        })
        .collect()
}

fn pairs(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[track_caller]
fn sum(metric: &Metric) -> (&[NumberDataPoint], bool) {
    match &metric.data {
        Some(metric::Data::Sum(sum)) => {
            assert_eq!(
                sum.aggregation_temporality,
                AggregationTemporality::Cumulative as i32
            );
            (&sum.data_points, sum.is_monotonic)
        }
        other => panic!("{} is not a sum: {other:?}", metric.name),
    }
}

fn double(point: &NumberDataPoint) -> f64 {
    match point.value {
        Some(number_data_point::Value::AsDouble(v)) => v,
        other => panic!("not a double: {other:?}"),
    }
}

use super::proto::metrics::number_data_point;

#[test]
fn counters_are_cumulative_monotonic_sums_from_the_start() {
    let mut syscalls = Family::counter("goroscope_syscalls_total", "Syscalls made.");
    syscalls.add_counter(Labels::new().push("comm", "api"), 1234.0);
    syscalls.add_counter(Labels::new().push("comm", "db"), 5.0);
    let (_, metrics) = round_trip(Vec::new(), &[syscalls]);
    assert_eq!(names(&metrics), ["goroscope.syscalls"]);
    let metric = &metrics[0];
    assert_eq!(
        (metric.description.as_str(), metric.unit.as_str()),
        ("Syscalls made.", "")
    );
    let (points, monotonic) = sum(metric);
    assert!(monotonic);
    assert_eq!(points.len(), 2);
    assert_eq!(double(&points[0]), 1234.0);
    assert_eq!(double(&points[1]), 5.0);
    assert_eq!(
        (points[0].start_time_unix_nano, points[0].time_unix_nano),
        (START, NOW)
    );
    assert_eq!(strings(&points[0].attributes), pairs(&[("comm", "api")]));
}

#[test]
fn gauges_are_gauges_without_a_start() {
    let mut waiting = Family::gauge("goroscope_go_goroutines_waiting", "Waiting.");
    waiting.add_gauge(
        Labels::new()
            .push("pid", "7")
            .push("wait_reason", "chan receive"),
        42.0,
    );
    let (_, metrics) = round_trip(Vec::new(), &[waiting]);
    let metric = find(&metrics, "goroscope.go.goroutines.waiting");
    let Some(metric::Data::Gauge(gauge)) = &metric.data else {
        panic!("not a gauge: {metric:?}");
    };
    let [point] = gauge.data_points.as_slice() else {
        panic!("one point expected");
    };
    assert_eq!(double(point), 42.0);
    assert_eq!((point.start_time_unix_nano, point.time_unix_nano), (0, NOW));
    assert_eq!(
        strings(&point.attributes),
        pairs(&[("pid", "7"), ("wait_reason", "chan receive")])
    );
}

#[test]
fn latency_histograms_are_the_kernel_buckets_at_scale_2() {
    let mut kernel = LatencyHistogram::new();
    // Zero bucket (0 and 1 ns), then kernel buckets 4 (2 ns), 40 (1024 ns),
    // 41 (1025 ns) and the overflow bucket.
    let values: [(u64, u64); 6] = [(0, 3), (1, 2), (2, 5), (1024, 7), (1025, 11), (1 << 41, 1)];
    let mut sum_ns = 0;
    for (ns, times) in values {
        for _ in 0..times {
            kernel.record(ns);
            sum_ns += ns;
        }
    }
    let layout = BucketLayout::new(1, 1_000, 1_000_000).expect("valid layout");
    let mut family = Family::histogram("goroscope_runqueue_latency_seconds", "Runqueue latency.");
    family.add_latency_histogram(Labels::new().push("comm", "api"), &layout, &kernel, sum_ns);
    let (_, metrics) = round_trip(Vec::new(), &[family]);
    let metric = find(&metrics, "goroscope.runqueue.latency");
    assert_eq!(metric.unit, "ns");
    let Some(metric::Data::ExponentialHistogram(histogram)) = &metric.data else {
        panic!("not exponential: {metric:?}");
    };
    assert_eq!(
        histogram.aggregation_temporality,
        AggregationTemporality::Cumulative as i32
    );
    let [point] = histogram.data_points.as_slice() else {
        panic!("one point expected");
    };
    assert_eq!(point.scale, 2);
    assert_eq!((point.zero_count, point.zero_threshold), (5, 1.0));
    assert_eq!(point.count, 29);
    assert_eq!(point.sum, Some(sum_ns as f64));
    assert_eq!(
        (point.start_time_unix_nano, point.time_unix_nano),
        (START, NOW)
    );
    assert_eq!(strings(&point.attributes), pairs(&[("comm", "api")]));
    let positive = point.positive.as_ref().expect("positive buckets");
    // Kernel bucket 4 holds (2^0.75, 2] ns: OTLP bucket 3 of scale 2.
    assert_eq!(positive.offset, 3);
    let counts = kernel.buckets();
    assert_eq!(positive.bucket_counts.len(), 159 - 4 + 1);
    for (j, &count) in positive.bucket_counts.iter().enumerate() {
        let i = j + 4;
        assert_eq!(count, counts[i], "kernel bucket {i}");
        // OTLP bucket offset + j is (base^(offset+j), base^(offset+j+1)].
        let upper = 2f64.powf((positive.offset as f64 + j as f64 + 1.0) / 4.0);
        if i < 159 {
            assert!((upper / goroscope_model::bucket_upper_bound_ns(i) - 1.0).abs() < 1e-12);
        }
    }
    assert_eq!(positive.bucket_counts[0], 5);
    assert_eq!(positive.bucket_counts[36], 7, "1024 ns is kernel bucket 40");
    assert_eq!(positive.bucket_counts[37], 11);
    assert_eq!(
        positive.bucket_counts[155], 1,
        "the overflow bucket is OTLP bucket 158"
    );
    let total: u64 = positive.bucket_counts.iter().sum::<u64>() + point.zero_count;
    assert_eq!(total, point.count);
}

#[test]
fn zero_only_and_empty_latency_histograms() {
    let layout = BucketLayout::new(4, 0, u64::MAX).expect("valid layout");
    let mut zeros = LatencyHistogram::new();
    zeros.record(0);
    zeros.record(1);
    let mut family = Family::histogram("goroscope_tcp_rtt_seconds", "RTT.");
    family.add_latency_histogram(Labels::new().push("a", "zeros"), &layout, &zeros, 1);
    family.add_latency_histogram(
        Labels::new().push("b", "empty"),
        &layout,
        &LatencyHistogram::new(),
        0,
    );
    let (_, metrics) = round_trip(Vec::new(), &[family]);
    let Some(metric::Data::ExponentialHistogram(histogram)) = &metrics[0].data else {
        panic!("not exponential");
    };
    let [zeros, empty] = histogram.data_points.as_slice() else {
        panic!("two points expected");
    };
    assert_eq!(
        (zeros.zero_count, zeros.count, zeros.sum),
        (2, 2, Some(1.0))
    );
    assert_eq!(zeros.positive, None);
    assert_eq!(
        (empty.zero_count, empty.count, empty.sum),
        (0, 0, Some(0.0))
    );
    assert_eq!(empty.positive, None);
}

#[test]
fn classic_histograms_keep_explicit_bounds() {
    let mut family = Family::histogram("goroscope_syscall_duration_seconds", "Syscalls.");
    let value = HistogramValue {
        buckets: vec![(0.001, 2), (0.01, 5), (0.1, 5)],
        count: 9,
        sum: 0.5,
    };
    family.add_histogram(Labels::new().push("syscall", "read"), &value);
    let (_, metrics) = round_trip(Vec::new(), &[family]);
    let metric = find(&metrics, "goroscope.syscall.duration");
    assert_eq!(metric.unit, "s");
    let Some(metric::Data::Histogram(histogram)) = &metric.data else {
        panic!("not a histogram: {metric:?}");
    };
    let [point] = histogram.data_points.as_slice() else {
        panic!("one point expected");
    };
    assert_eq!(point.explicit_bounds, [0.001, 0.01, 0.1]);
    assert_eq!(point.bucket_counts, [2, 3, 0, 4]);
    assert_eq!((point.count, point.sum), (9, Some(0.5)));
    assert_eq!(point.start_time_unix_nano, START);
}

#[test]
fn resource_attributes_and_empty_resources() {
    let mut goroutines = Family::gauge("goroscope_go_runtime_goroutines", "Runtime goroutines.");
    goroutines.add_gauge(Labels::new(), 9.0);
    let attributes = vec![
        string_attribute("service.name", "github.com/acme/api"),
        int_attribute("process.pid", 4242),
    ];
    let (resource, _) = round_trip(attributes, std::slice::from_ref(&goroutines));
    assert_eq!(
        strings(&resource),
        pairs(&[
            ("service.name", "github.com/acme/api"),
            ("process.pid", "4242")
        ])
    );
    let empty = [Family::gauge("goroscope_go_processes", "none")];
    let request = metrics_request(
        &[
            ResourceFamilies {
                attributes: Vec::new(),
                families: &empty,
            },
            ResourceFamilies {
                attributes: Vec::new(),
                families: std::slice::from_ref(&goroutines),
            },
        ],
        START,
        NOW,
    );
    assert_eq!(
        request.resource_metrics.len(),
        1,
        "the empty resource is left out"
    );
}

#[test]
fn go_runtime_families_get_the_conventions_names_and_units() {
    let pid = || Labels::new().push("pid", "10");
    let mut goroutines = Family::gauge("goroscope_go_goroutines", "Goroutines.");
    goroutines.add_gauge(pid().push("state", "running"), 3.0);
    goroutines.add_gauge(pid().push("state", "waiting"), 40.0);
    let mut heap = Family::gauge("goroscope_go_heap_bytes", "Heap.");
    heap.add_gauge(pid().push("kind", "goal"), 8e6);
    heap.add_gauge(pid().push("kind", "live"), 5e6);
    let mut procs = Family::gauge("goroscope_go_gomaxprocs", "GOMAXPROCS.");
    procs.add_gauge(pid(), 8.0);
    let (_, metrics) = round_trip(Vec::new(), &[goroutines, heap, procs]);
    assert_eq!(
        names(&metrics),
        [
            "go.goroutine.count",
            "go.memory.gc.goal",
            "goroscope.go.heap",
            "go.processor.limit"
        ]
    );

    let count = find(&metrics, "go.goroutine.count");
    assert_eq!(count.unit, "{goroutine}");
    let (points, monotonic) = sum(count);
    assert!(!monotonic, "an up-down counter");
    assert_eq!(points.iter().map(double).sum::<f64>(), 43.0);
    assert_eq!(
        strings(&points[1].attributes),
        pairs(&[("pid", "10"), ("state", "waiting")])
    );
    assert_eq!(points[0].start_time_unix_nano, START);

    let goal = find(&metrics, "go.memory.gc.goal");
    assert_eq!(goal.unit, "By");
    let (points, _) = sum(goal);
    assert_eq!(points.len(), 1);
    assert_eq!(double(&points[0]), 8e6);
    assert_eq!(
        strings(&points[0].attributes),
        pairs(&[("pid", "10")]),
        "kind dropped"
    );

    let live = find(&metrics, "goroscope.go.heap");
    assert_eq!(live.unit, "By");
    let Some(metric::Data::Gauge(gauge)) = &live.data else {
        panic!("live heap stays a gauge");
    };
    assert_eq!(
        strings(&gauge.data_points[0].attributes),
        pairs(&[("pid", "10"), ("kind", "live")])
    );

    let limit = find(&metrics, "go.processor.limit");
    assert_eq!(limit.unit, "{thread}");
    assert_eq!(double(&sum(limit).0[0]), 8.0);
}

#[test]
fn the_agents_own_process_gets_process_metrics() {
    let mut cpu = Family::counter("goroscope_agent_cpu_seconds_total", "CPU.");
    cpu.add_counter(Labels::new().push("mode", "user"), 1.5);
    cpu.add_counter(Labels::new().push("mode", "system"), 0.25);
    let mut rss = Family::gauge("goroscope_agent_resident_memory_bytes", "RSS.");
    rss.add_gauge(Labels::new(), 3e7);
    let mut uptime = Family::gauge("goroscope_agent_uptime_seconds", "Uptime.");
    uptime.add_gauge(Labels::new(), 60.0);
    let (_, metrics) = round_trip(Vec::new(), &[cpu, rss, uptime]);

    let cpu = find(&metrics, "process.cpu.time");
    assert_eq!(cpu.unit, "s");
    let (points, monotonic) = sum(cpu);
    assert!(monotonic);
    assert_eq!(
        strings(&points[0].attributes),
        pairs(&[("cpu.mode", "user")])
    );
    assert_eq!(double(&points[1]), 0.25);

    let rss = find(&metrics, "process.memory.usage");
    assert_eq!((rss.unit.as_str(), double(&sum(rss).0[0])), ("By", 3e7));
    let uptime = find(&metrics, "process.uptime");
    assert_eq!(uptime.unit, "s");
    assert!(
        matches!(&uptime.data, Some(metric::Data::Gauge(g)) if double(&g.data_points[0]) == 60.0)
    );
}

#[test]
fn the_response_decodes_partial_success() {
    use super::proto::{ExportMetricsPartialSuccess, ExportMetricsServiceResponse};
    let response = ExportMetricsServiceResponse {
        partial_success: Some(ExportMetricsPartialSuccess {
            rejected_data_points: 3,
            error_message: "bad unit".into(),
        }),
    };
    let decoded = ExportMetricsServiceResponse::decode(response.encode_to_vec().as_slice())
        .unwrap_or_else(|e| panic!("response does not decode: {e}"));
    assert_eq!(
        decoded.partial_success.map(|p| p.rejected_data_points),
        Some(3)
    );
}
