//! OTLP encoding of goroscope's outputs, in the messages of OTLP protocol
//! v1.10.0 (the `opentelemetry-proto` crate's, re-exported here as
//! [`proto`]): metrics here ([`metrics_request`]), goroutine leak events as
//! logs ([`logs_request`], in `logs.rs`) and profiles ([`profiles_request`],
//! in `profiles.rs`). Pure: no I/O, no clock; the caller sends the request
//! (protobuf over HTTP or gRPC) and reads the response.
//!
//! Metrics: goroscope's [`Family`]s as an `ExportMetricsServiceRequest`.
//! Each [`ResourceFamilies`] becomes one `ResourceMetrics` with one scope,
//! `goroscope` at this crate's version. Counters are cumulative monotonic
//! Sums, gauges Gauges, every point starting at the caller's start time
//! (when the agent began counting). Latency histograms added with
//! [`Family::add_latency_histogram`] are exponential histograms of scale 2
//! in nanoseconds, the kernel's buckets unchanged; other histograms are
//! histograms with explicit bounds. Labels are attributes. Families the
//! OpenTelemetry semantic conventions name are renamed by [`SEMCONV`], the
//! rest get a dotted goroscope name ([`dotted_name`]).

mod logs;
mod names;
mod points;
mod profiles;

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope, KeyValue};
use opentelemetry_proto::tonic::metrics::v1::{
    metric, AggregationTemporality, ExponentialHistogram, Gauge, Histogram, Metric,
    ResourceMetrics, ScopeMetrics, Sum,
};
use opentelemetry_proto::tonic::resource::v1::Resource;

use crate::family::{Family, MetricType, SampleValue};
use crate::labels::Labels;

pub use logs::{logs_request, LeakChange, LeakEvent, ResourceLeakEvents, LEAK_EVENT_NAME};
pub use names::{dotted_name, Instrument, SemconvMetric, SEMCONV};
pub use profiles::{profiles_request, ResourceProfiles};

/// The OTLP protobuf messages (protocol v1.10.0), from `opentelemetry-proto`.
pub mod proto {
    pub use opentelemetry_proto::tonic::collector::logs::v1::{
        ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
    };
    pub use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
    };
    pub use opentelemetry_proto::tonic::collector::profiles::v1development::{
        ExportProfilesPartialSuccess, ExportProfilesServiceRequest, ExportProfilesServiceResponse,
    };
    pub use opentelemetry_proto::tonic::common::v1 as common;
    pub use opentelemetry_proto::tonic::logs::v1 as logs;
    pub use opentelemetry_proto::tonic::metrics::v1 as metrics;
    /// Profiles, still in development: the messages of OTLP profiles
    /// development version 1 (see [`profiles_request`](super::profiles_request)).
    pub use opentelemetry_proto::tonic::profiles::v1development as profiles;
    pub use opentelemetry_proto::tonic::resource::v1 as resource;
}

/// The instrumentation scope every metric, log record and profile is
/// exported under.
pub const SCOPE_NAME: &str = "goroscope";

/// What one resource (a Go service's process, the host, the agent itself)
/// exports: its attributes (`service.name`, `process.pid`, `host.name`, ...)
/// and its families.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceFamilies<'a> {
    /// The resource's attributes, e.g. from [`string_attribute`].
    pub attributes: Vec<KeyValue>,
    /// Its families, e.g. [`crate::Exposition::families`] (sorted, label
    /// sets unique).
    pub families: &'a [Family],
}

/// A string attribute.
pub fn string_attribute(key: &str, value: &str) -> KeyValue {
    attribute(key, any_value::Value::StringValue(value.to_owned()))
}

/// An integer attribute (`process.pid`).
pub fn int_attribute(key: &str, value: i64) -> KeyValue {
    attribute(key, any_value::Value::IntValue(value))
}

/// A boolean attribute.
pub fn bool_attribute(key: &str, value: bool) -> KeyValue {
    attribute(key, any_value::Value::BoolValue(value))
}

/// A floating-point attribute.
pub fn double_attribute(key: &str, value: f64) -> KeyValue {
    attribute(key, any_value::Value::DoubleValue(value))
}

/// An attribute of any value.
fn attribute(key: &str, value: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..KeyValue::default()
    }
}

/// The scope everything is exported under: [`SCOPE_NAME`] at this crate's
/// version, with `attributes`.
fn scope(attributes: Vec<KeyValue>) -> InstrumentationScope {
    InstrumentationScope {
        name: SCOPE_NAME.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        attributes,
        ..InstrumentationScope::default()
    }
}

/// A resource of `attributes`.
fn resource(attributes: &[KeyValue]) -> Resource {
    Resource {
        attributes: attributes.to_vec(),
        ..Resource::default()
    }
}

/// The export request of `resources` at `now_unix_ns`, cumulative since
/// `start_unix_ns`. Families without samples and resources without metrics
/// are left out.
pub fn metrics_request(
    resources: &[ResourceFamilies<'_>],
    start_unix_ns: u64,
    now_unix_ns: u64,
) -> ExportMetricsServiceRequest {
    let scope = scope(Vec::new());
    let resource_metrics = resources
        .iter()
        .filter_map(|resource| {
            let metrics = metrics(resource.families, start_unix_ns, now_unix_ns);
            (!metrics.is_empty()).then(|| ResourceMetrics {
                resource: Some(self::resource(&resource.attributes)),
                scope_metrics: vec![ScopeMetrics {
                    scope: Some(scope.clone()),
                    metrics,
                    ..ScopeMetrics::default()
                }],
                ..ResourceMetrics::default()
            })
        })
        .collect();
    ExportMetricsServiceRequest { resource_metrics }
}

/// The metrics of one resource's families, in family order.
fn metrics(families: &[Family], start_unix_ns: u64, now_unix_ns: u64) -> Vec<Metric> {
    let mut out = Vec::new();
    for family in families.iter().filter(|family| !family.is_empty()) {
        match family.metric_type() {
            MetricType::Histogram => out.push(histogram(family, start_unix_ns, now_unix_ns)),
            MetricType::Counter | MetricType::Gauge => {
                numbers(family, start_unix_ns, now_unix_ns, &mut out)
            }
        }
    }
    out
}

/// Adds the points of a counter or gauge family to the metric they belong
/// to (one family can feed two metrics when the table renames some series).
fn numbers(family: &Family, start_unix_ns: u64, now_unix_ns: u64, out: &mut Vec<Metric>) {
    for sample in &family.samples {
        let SampleValue::Number(value) = sample.value else {
            continue;
        };
        let row = names::semconv(family.name(), &sample.labels);
        let (name, unit, instrument, attributes) = match row {
            Some(row) => (
                row.name.to_owned(),
                row.unit,
                row.instrument,
                attributes(&sample.labels, row),
            ),
            None => (
                dotted_name(family),
                names::suffix_unit(family),
                names::default_instrument(family.metric_type()).unwrap_or(Instrument::Gauge),
                plain_attributes(&sample.labels),
            ),
        };
        // Gauges have no start time.
        let start = if instrument == Instrument::Gauge {
            0
        } else {
            start_unix_ns
        };
        let point = points::number(attributes, value, start, now_unix_ns);
        let at = match out.iter().position(|metric| metric.name == name) {
            Some(at) => at,
            None => {
                out.push(Metric {
                    name,
                    description: family.help().to_owned(),
                    unit: unit.to_owned(),
                    data: Some(empty_number_data(instrument)),
                    ..Metric::default()
                });
                out.len() - 1
            }
        };
        match &mut out[at].data {
            Some(metric::Data::Sum(sum)) => sum.data_points.push(point),
            Some(metric::Data::Gauge(gauge)) => gauge.data_points.push(point),
            _ => {}
        }
    }
}

/// The empty data of a metric of `instrument`.
fn empty_number_data(instrument: Instrument) -> metric::Data {
    let cumulative = AggregationTemporality::Cumulative as i32;
    match instrument {
        Instrument::Counter => metric::Data::Sum(Sum {
            data_points: Vec::new(),
            aggregation_temporality: cumulative,
            is_monotonic: true,
        }),
        Instrument::UpDownCounter => metric::Data::Sum(Sum {
            data_points: Vec::new(),
            aggregation_temporality: cumulative,
            is_monotonic: false,
        }),
        Instrument::Gauge => metric::Data::Gauge(Gauge::default()),
    }
}

/// A histogram family: exponential in nanoseconds when every sample carries
/// the kernel's buckets, otherwise explicit bounds in the name's unit.
fn histogram(family: &Family, start_unix_ns: u64, now_unix_ns: u64) -> Metric {
    let cumulative = AggregationTemporality::Cumulative as i32;
    let kernel: Option<Vec<_>> = family
        .samples
        .iter()
        .map(|sample| sample.kernel.as_deref().map(|kernel| (sample, kernel)))
        .collect();
    let (unit, data) = match kernel {
        Some(samples) => {
            let data_points = samples
                .into_iter()
                .map(|(sample, kernel)| {
                    let attributes = plain_attributes(&sample.labels);
                    points::exponential(attributes, kernel, start_unix_ns, now_unix_ns)
                })
                .collect();
            let data = metric::Data::ExponentialHistogram(ExponentialHistogram {
                data_points,
                aggregation_temporality: cumulative,
            });
            ("ns", data)
        }
        None => {
            let data_points = family
                .samples
                .iter()
                .filter_map(|sample| match &sample.value {
                    SampleValue::Histogram(value) => Some(points::explicit(
                        plain_attributes(&sample.labels),
                        value,
                        start_unix_ns,
                        now_unix_ns,
                    )),
                    SampleValue::Number(_) => None,
                })
                .collect();
            let data = metric::Data::Histogram(Histogram {
                data_points,
                aggregation_temporality: cumulative,
            });
            (names::suffix_unit(family), data)
        }
    };
    Metric {
        name: dotted_name(family),
        description: family.help().to_owned(),
        unit: unit.to_owned(),
        data: Some(data),
        ..Metric::default()
    }
}

/// Labels as string attributes, unchanged.
fn plain_attributes(labels: &Labels) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|(key, value)| string_attribute(key, value))
        .collect()
}

/// Labels as attributes of a renamed metric: the selecting label dropped,
/// renamed labels under the conventions' names.
fn attributes(labels: &Labels, row: &SemconvMetric) -> Vec<KeyValue> {
    labels
        .iter()
        .filter(|(key, _)| row.only.is_none_or(|(only, _)| only != *key))
        .map(|(key, value)| {
            let key = row
                .attributes
                .iter()
                .find(|(label, _)| *label == key)
                .map_or(key, |(_, attribute)| attribute);
            string_attribute(key, value)
        })
        .collect()
}

#[cfg(test)]
mod tests;
