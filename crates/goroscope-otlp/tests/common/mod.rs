//! Helpers shared by the exporter's tests: configurations, requests of known content, and
//! waiting for counts.
#![allow(dead_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use goroscope_otlp::config::{DEFAULT_BATCH_BYTES, DEFAULT_INTERVAL, DEFAULT_QUEUE_BYTES};
use goroscope_otlp::{
    Batch, Compression, Endpoint, ExportStats, ExporterConfig, Protocol, Signal, SignalSnapshot,
    Tls,
};
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::{
    metric::Data, number_data_point::Value, Gauge, Metric, NumberDataPoint, ResourceMetrics,
    ScopeMetrics,
};
use prost::Message;

/// A configuration sending metrics only, to `url`.
pub fn config(protocol: Protocol, url: &str) -> ExporterConfig {
    let endpoint = Endpoint::parse(url).unwrap_or_else(|e| panic!("{e}"));
    ExporterConfig {
        protocol,
        endpoints: [Some(endpoint), None, None],
        headers: Vec::new(),
        compression: Compression::None,
        timeout: Duration::from_secs(3),
        interval: DEFAULT_INTERVAL,
        tls: Tls::default(),
        queue_bytes: DEFAULT_QUEUE_BYTES,
        batch_bytes: DEFAULT_BATCH_BYTES,
        max_elapsed: Duration::from_secs(60),
    }
}

/// A metrics request: one gauge named `name` with `points` points of known values.
pub fn gauge(name: &str, points: usize) -> ExportMetricsServiceRequest {
    ExportMetricsServiceRequest {
        resource_metrics: vec![ResourceMetrics {
            scope_metrics: vec![ScopeMetrics {
                metrics: vec![Metric {
                    name: name.to_owned(),
                    description: "a gauge the exporter tests send, compressible on purpose"
                        .to_owned(),
                    data: Some(Data::Gauge(Gauge {
                        data_points: (0..points)
                            .map(|i| NumberDataPoint {
                                time_unix_nano: 1_700_000_000_000_000_000 + i as u64,
                                value: Some(Value::AsInt(i as i64 * 7)),
                                ..Default::default()
                            })
                            .collect(),
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// The gauge names in received request bodies, in order.
pub fn names(bodies: &[Vec<u8>]) -> Vec<String> {
    bodies
        .iter()
        .flat_map(|body| {
            ExportMetricsServiceRequest::decode(body.as_slice())
                .unwrap_or_else(|e| panic!("a received body is not a metrics request: {e}"))
                .resource_metrics
        })
        .flat_map(|r| r.scope_metrics)
        .flat_map(|s| s.metrics)
        .map(|m| m.name)
        .collect()
}

/// Starts an exporter with fresh stats.
#[track_caller]
pub fn start(config: ExporterConfig) -> (goroscope_otlp::Exporter, Arc<ExportStats>) {
    let stats = Arc::new(ExportStats::new());
    let exporter = goroscope_otlp::Exporter::start(config, Arc::clone(&stats))
        .unwrap_or_else(|e| panic!("the exporter does not start: {e}"));
    (exporter, stats)
}

/// Waits up to `timeout` until the metrics counts satisfy `done`.
#[track_caller]
pub fn wait_stats(
    stats: &ExportStats,
    timeout: Duration,
    what: &str,
    done: impl Fn(&SignalSnapshot) -> bool,
) -> SignalSnapshot {
    let give_up = Instant::now() + timeout;
    loop {
        let now = stats.snapshot().signal(Signal::Metrics).clone();
        if done(&now) {
            return now;
        }
        if Instant::now() >= give_up {
            panic!("within {timeout:?}, never {what}; the counts: {now:#?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A metrics batch.
pub fn metrics(name: &str, points: usize) -> Batch {
    Batch::Metrics(gauge(name, points))
}
