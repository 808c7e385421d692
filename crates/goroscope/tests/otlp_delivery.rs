//! goroscope-otlp's exporter against the real OpenTelemetry Collector (`tests/otelcol/`):
//! metrics sent over OTLP/gRPC and over OTLP/HTTP with gzip arrive with exactly the values
//! sent (read back from the collector's file exporter), and across a ~3 s outage
//! (`Collector::stop`, then `start_again`) the requests sent meanwhile arrive once it is
//! back, with the exporter's counts saying they were retried and nothing was dropped.

mod otelcol;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use goroscope_otlp::config::{
    DEFAULT_BATCH_BYTES, DEFAULT_INTERVAL, DEFAULT_MAX_ELAPSED, DEFAULT_QUEUE_BYTES,
};
use goroscope_otlp::{
    Batch, Compression, Endpoint, ExportStats, Exporter, ExporterConfig, Protocol, Signal,
    SignalSnapshot, Tls,
};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point::Value as Number, AggregationTemporality, Gauge, Metric,
    NumberDataPoint, ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;
use otelcol::Collector;
use serde_json::Value;

/// How long a request may take to reach the collector's file.
const ARRIVAL: Duration = Duration::from_secs(30);

/// One request of known content: a gauge and a cumulative monotonic sum of `service`.
struct Known {
    service: String,
    gauge: f64,
    sum: i64,
}

impl Known {
    fn new(service: &str, gauge: f64, sum: i64) -> Known {
        Known {
            service: service.to_owned(),
            gauge,
            sum,
        }
    }

    fn batch(&self) -> Batch {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let point = |value| NumberDataPoint {
            start_time_unix_nano: now - 60_000_000_000,
            time_unix_nano: now,
            value: Some(value),
            ..Default::default()
        };
        Batch::Metrics(ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                resource: Some(Resource {
                    attributes: vec![KeyValue {
                        key: "service.name".into(),
                        value: Some(AnyValue {
                            value: Some(any_value::Value::StringValue(self.service.clone())),
                        }),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![
                        Metric {
                            name: "delivery.gauge".into(),
                            data: Some(Data::Gauge(Gauge {
                                data_points: vec![point(Number::AsDouble(self.gauge))],
                            })),
                            ..Default::default()
                        },
                        Metric {
                            name: "delivery.sum".into(),
                            data: Some(Data::Sum(Sum {
                                data_points: vec![point(Number::AsInt(self.sum))],
                                aggregation_temporality: AggregationTemporality::Cumulative as i32,
                                is_monotonic: true,
                            })),
                            ..Default::default()
                        },
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        })
    }

    /// Whether the collector wrote this request's resource with exactly its values.
    fn found_in(&self, batches: &[Value]) -> bool {
        batches
            .iter()
            .flat_map(|b| list(b, "resourceMetrics"))
            .filter(|r| {
                list(&r["resource"], "attributes").iter().any(|a| {
                    a["key"] == "service.name" && a["value"]["stringValue"] == self.service.as_str()
                })
            })
            .any(|r| {
                let metrics: Vec<&Value> = list(r, "scopeMetrics")
                    .iter()
                    .flat_map(|s| list(s, "metrics"))
                    .collect();
                let gauge = metrics.iter().any(|m| {
                    m["name"] == "delivery.gauge"
                        && list(&m["gauge"], "dataPoints")
                            .iter()
                            .any(|p| p["asDouble"].as_f64() == Some(self.gauge))
                });
                let sum = metrics.iter().any(|m| {
                    m["name"] == "delivery.sum"
                        && m["sum"]["isMonotonic"] == true
                        && m["sum"]["aggregationTemporality"] == 2
                        && list(&m["sum"], "dataPoints")
                            .iter()
                            .any(|p| p["asInt"] == self.sum.to_string().as_str())
                });
                gauge && sum
            })
    }
}

/// The array at `key`, or nothing.
fn list<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key].as_array().map_or(&[], Vec::as_slice)
}

fn config(protocol: Protocol, endpoint: Endpoint, compression: Compression) -> ExporterConfig {
    ExporterConfig {
        protocol,
        endpoints: [Some(endpoint), None, None],
        headers: vec![("x-goroscope-test".into(), "otlp-delivery".into())],
        compression,
        timeout: Duration::from_secs(5),
        interval: DEFAULT_INTERVAL,
        tls: Tls::default(),
        queue_bytes: DEFAULT_QUEUE_BYTES,
        batch_bytes: DEFAULT_BATCH_BYTES,
        max_elapsed: DEFAULT_MAX_ELAPSED,
    }
}

#[track_caller]
fn endpoint(base: &str, protocol: Protocol) -> Endpoint {
    Endpoint::for_signal(base, protocol, Signal::Metrics)
        .unwrap_or_else(|e| panic!("the collector's endpoint {base}: {e}"))
}

#[track_caller]
fn start(config: ExporterConfig) -> (Exporter, Arc<ExportStats>) {
    let stats = Arc::new(ExportStats::new());
    let exporter = Exporter::start(config, Arc::clone(&stats))
        .unwrap_or_else(|e| panic!("the exporter does not start: {e}"));
    (exporter, stats)
}

fn metrics(stats: &ExportStats) -> SignalSnapshot {
    stats.snapshot().signal(Signal::Metrics).clone()
}

#[track_caller]
fn wait_arrived(collector: &Collector, known: &[&Known], what: &str) {
    collector.wait_received(ARRIVAL, what, |batches| {
        known.iter().all(|k| k.found_in(batches))
    });
}

#[test]
fn metrics_reach_the_collector_over_grpc_and_http_with_gzip_and_across_an_outage() {
    let mut collector = Collector::start();

    let grpc_base = collector.grpc_endpoint();
    let (grpc, grpc_stats) = start(config(
        Protocol::Grpc,
        endpoint(&grpc_base, Protocol::Grpc),
        Compression::None,
    ));
    let over_grpc = Known::new("otlp-delivery-grpc", 42.5, 1234);
    grpc.send(over_grpc.batch());

    let http_base = collector.http_endpoint();
    let (http, http_stats) = start(config(
        Protocol::HttpProtobuf,
        endpoint(&http_base, Protocol::HttpProtobuf),
        Compression::Gzip,
    ));
    let over_http = Known::new("otlp-delivery-http", -0.125, 987_654_321);
    http.send(over_http.batch());

    wait_arrived(
        &collector,
        &[&over_grpc, &over_http],
        "the gRPC and HTTP requests",
    );
    let counts = metrics(&http_stats);
    assert_eq!(
        (counts.requests_sent, counts.items_sent),
        (1, 2),
        "{counts:#?}"
    );
    assert!(counts.bytes_sent > 0);
    assert_eq!(metrics(&grpc_stats).items_sent, 2);

    // An outage of about 3 s: what is sent meanwhile waits and is retried.
    collector.stop();
    let during: Vec<Known> = (0..3)
        .map(|i| {
            Known::new(
                &format!("otlp-delivery-outage-{i}"),
                i as f64 + 0.5,
                100 + i,
            )
        })
        .collect();
    let outage = Instant::now();
    for known in &during {
        grpc.send(known.batch());
        http.send(known.batch());
        std::thread::sleep(Duration::from_secs(1));
    }
    for stats in [&grpc_stats, &http_stats] {
        let counts = metrics(stats);
        assert_eq!(
            counts.items_sent, 2,
            "sent while the collector was down: {counts:#?}"
        );
        assert!(counts.requests_retried >= 1, "nothing retried: {counts:#?}");
        assert!(counts.queued_requests >= 1, "nothing waiting: {counts:#?}");
        assert!(counts.last_error.is_some());
    }
    assert!(outage.elapsed() >= Duration::from_secs(3));
    collector.start_again();
    let after = Known::new("otlp-delivery-after", 7.0, 7);
    grpc.send(after.batch());

    let mut all: Vec<&Known> = during.iter().collect();
    all.push(&after);
    wait_arrived(
        &collector,
        &all,
        "the requests sent during and after the outage",
    );
    let give_up = Instant::now() + ARRIVAL;
    for (stats, items) in [(&grpc_stats, 2 + 6 + 2), (&http_stats, 2 + 6)] {
        while metrics(stats).items_sent < items && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(50));
        }
        let counts = metrics(stats);
        assert_eq!(counts.items_sent, items, "{counts:#?}");
        assert_eq!(counts.dropped_total(), 0, "{counts:#?}");
        assert!(counts.requests_retried >= 1, "{counts:#?}");
        assert_eq!((counts.queued_bytes, counts.queued_requests), (0, 0));
        assert!(counts.last_success.is_some());
    }
    grpc.shutdown(Duration::from_secs(2));
    http.shutdown(Duration::from_secs(2));
}
