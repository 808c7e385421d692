//! Splitting a request too large to send in one piece.
//!
//! Servers refuse large requests outright: the Collector's gRPC receiver takes at most
//! 4 MiB by default and answers `ResourceExhausted`, which is not retryable, so the whole
//! request would be lost. A metrics request larger than `batch_bytes` is therefore cut at
//! resource boundaries, a resource too large alone at metric boundaries, and a metric too
//! large alone at data-point boundaries; the pieces are packed back together up to
//! `batch_bytes`. Every piece is a complete request that repeats the resource, scope and
//! metric it came from, so the server reads them as if they had arrived together. A logs
//! request is cut at resource boundaries only (one process's leak events are small).
//! Profiles are never cut: everything in a request shares its `dictionary`.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::{
    ExponentialHistogram, Gauge, Histogram, Metric, ResourceMetrics, ScopeMetrics, Sum, Summary,
};
use prost::Message;

use crate::batch::Batch;

/// Room left in each piece for the length prefixes of the messages that enclose what is
/// packed, which grow with it (at most 5 bytes each, three levels deep) and for the fields of
/// a metric's data message (temporality, monotonic).
const SLACK: usize = 32;

/// `batch` as requests of at most `max_bytes` each where it can be cut (see the module doc);
/// `batch` itself when it fits or cannot be cut.
pub(crate) fn split(batch: Batch, max_bytes: usize) -> Vec<Batch> {
    if batch.encoded_len() <= max_bytes {
        return vec![batch];
    }
    match batch {
        Batch::Metrics(request) => split_metrics(request, max_bytes)
            .into_iter()
            .map(Batch::Metrics)
            .collect(),
        Batch::Logs(request) => pack(request.resource_logs, max_bytes, |r| {
            field_len(r.encoded_len())
        })
        .into_iter()
        .map(|resource_logs| Batch::Logs(ExportLogsServiceRequest { resource_logs }))
        .collect(),
        profiles @ Batch::Profiles(_) => vec![profiles],
    }
}

/// The length of a message of `len` bytes as a field of its parent: tag, length, message.
fn field_len(len: usize) -> usize {
    1 + prost::encoding::encoded_len_varint(len as u64) + len
}

/// Groups `items` in order, each group's `len` summing to at most `budget`; an item larger
/// than `budget` is a group of its own.
fn pack<T>(items: Vec<T>, budget: usize, len: impl Fn(&T) -> usize) -> Vec<Vec<T>> {
    let mut groups = Vec::new();
    let mut group = Vec::new();
    let mut size = 0;
    for item in items {
        let item_len = len(&item);
        if !group.is_empty() && size + item_len > budget {
            groups.push(std::mem::take(&mut group));
            size = 0;
        }
        size += item_len;
        group.push(item);
    }
    if !group.is_empty() {
        groups.push(group);
    }
    groups
}

fn split_metrics(
    request: ExportMetricsServiceRequest,
    max_bytes: usize,
) -> Vec<ExportMetricsServiceRequest> {
    let mut pieces = Vec::with_capacity(request.resource_metrics.len());
    for resource in request.resource_metrics {
        if field_len(resource.encoded_len()) <= max_bytes {
            pieces.push(resource);
        } else {
            pieces.extend(split_resource(resource, max_bytes));
        }
    }
    pack(pieces, max_bytes, |r| field_len(r.encoded_len()))
        .into_iter()
        .map(|resource_metrics| ExportMetricsServiceRequest { resource_metrics })
        .collect()
}

/// One resource's metrics as resources of one scope each, every one within `max_bytes`.
fn split_resource(resource: ResourceMetrics, max_bytes: usize) -> Vec<ResourceMetrics> {
    let ResourceMetrics {
        resource: attributes,
        scope_metrics,
        schema_url,
    } = resource;
    let mut out = Vec::new();
    for scope in scope_metrics {
        let ScopeMetrics {
            scope,
            metrics,
            schema_url: scope_url,
        } = scope;
        let wrap = |metrics| ResourceMetrics {
            resource: attributes.clone(),
            scope_metrics: vec![ScopeMetrics {
                scope: scope.clone(),
                metrics,
                schema_url: scope_url.clone(),
            }],
            schema_url: schema_url.clone(),
        };
        let budget = max_bytes.saturating_sub(field_len(wrap(Vec::new()).encoded_len()) + SLACK);
        let mut pieces = Vec::with_capacity(metrics.len());
        for metric in metrics {
            if field_len(metric.encoded_len()) <= budget {
                pieces.push(metric);
            } else {
                pieces.extend(split_metric(metric, budget));
            }
        }
        out.extend(
            pack(pieces, budget, |m| field_len(m.encoded_len()))
                .into_iter()
                .map(wrap),
        );
    }
    out
}

/// One metric as metrics of the same name, kind and unit with its data points shared out,
/// every one within `budget`.
fn split_metric(metric: Metric, budget: usize) -> Vec<Metric> {
    let Metric {
        name,
        description,
        unit,
        metadata,
        data,
    } = metric;
    let shell = Metric {
        name,
        description,
        unit,
        metadata,
        data: None,
    };
    let budget = budget.saturating_sub(field_len(shell.encoded_len()) + SLACK);
    let with = |data: Data| Metric {
        data: Some(data),
        ..shell.clone()
    };
    match data {
        Some(Data::Gauge(Gauge { data_points })) => by_points(data_points, budget)
            .map(|data_points| with(Data::Gauge(Gauge { data_points })))
            .collect(),
        Some(Data::Sum(Sum {
            data_points,
            aggregation_temporality,
            is_monotonic,
        })) => by_points(data_points, budget)
            .map(|data_points| {
                with(Data::Sum(Sum {
                    data_points,
                    aggregation_temporality,
                    is_monotonic,
                }))
            })
            .collect(),
        Some(Data::Histogram(Histogram {
            data_points,
            aggregation_temporality,
        })) => by_points(data_points, budget)
            .map(|data_points| {
                with(Data::Histogram(Histogram {
                    data_points,
                    aggregation_temporality,
                }))
            })
            .collect(),
        Some(Data::ExponentialHistogram(ExponentialHistogram {
            data_points,
            aggregation_temporality,
        })) => by_points(data_points, budget)
            .map(|data_points| {
                with(Data::ExponentialHistogram(ExponentialHistogram {
                    data_points,
                    aggregation_temporality,
                }))
            })
            .collect(),
        Some(Data::Summary(Summary { data_points })) => by_points(data_points, budget)
            .map(|data_points| with(Data::Summary(Summary { data_points })))
            .collect(),
        None => vec![shell],
    }
}

/// Data points packed within `budget`.
fn by_points<P: Message>(points: Vec<P>, budget: usize) -> impl Iterator<Item = Vec<P>> {
    pack(points, budget, |p| field_len(p.encoded_len())).into_iter()
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::metrics::v1::{
        number_data_point, ExponentialHistogramDataPoint, NumberDataPoint,
    };
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn attribute(key: &str, value: &str) -> KeyValue {
        KeyValue {
            key: key.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(value.to_owned())),
            }),
            ..KeyValue::default()
        }
    }

    fn resource(pid: usize) -> Option<Resource> {
        Some(Resource {
            attributes: vec![attribute("process.pid", &pid.to_string())],
            ..Resource::default()
        })
    }

    /// A cumulative monotonic sum with `points` points of values `first..`.
    fn sum(name: &str, points: usize, first: usize) -> Metric {
        Metric {
            name: name.to_owned(),
            unit: "{call}".to_owned(),
            data: Some(Data::Sum(Sum {
                data_points: (first..first + points)
                    .map(|i| NumberDataPoint {
                        attributes: vec![attribute("syscall", &format!("call{i}"))],
                        time_unix_nano: 7,
                        value: Some(number_data_point::Value::AsInt(i as i64)),
                        ..NumberDataPoint::default()
                    })
                    .collect(),
                aggregation_temporality: 2,
                is_monotonic: true,
            })),
            ..Metric::default()
        }
    }

    fn histogram(points: usize) -> Metric {
        Metric {
            name: "goroscope.syscall.duration".to_owned(),
            unit: "ns".to_owned(),
            data: Some(Data::ExponentialHistogram(ExponentialHistogram {
                data_points: (0..points)
                    .map(|i| ExponentialHistogramDataPoint {
                        count: i as u64,
                        scale: 2,
                        positive: Some(
                            opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets {
                                offset: 3,
                                bucket_counts: vec![i as u64; 40],
                            },
                        ),
                        ..ExponentialHistogramDataPoint::default()
                    })
                    .collect(),
                aggregation_temporality: 2,
            })),
            ..Metric::default()
        }
    }

    /// A request with `resources` resources, the first holding a large sum and a large
    /// histogram, the others small sums.
    fn request(resources: usize) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: (0..resources)
                .map(|r| ResourceMetrics {
                    resource: resource(r),
                    scope_metrics: vec![ScopeMetrics {
                        metrics: if r == 0 {
                            vec![sum("goroscope.syscalls", 3000, 0), histogram(400)]
                        } else {
                            vec![sum("goroscope.syscalls", 5, r * 10)]
                        },
                        ..ScopeMetrics::default()
                    }],
                    ..ResourceMetrics::default()
                })
                .collect(),
        }
    }

    /// Every (resource, metric, point) of `requests` in order, with the point's encoding:
    /// what a server would store.
    fn points(requests: &[ExportMetricsServiceRequest]) -> Vec<(Vec<u8>, String, Vec<u8>)> {
        let mut out = Vec::new();
        for request in requests {
            for resource in &request.resource_metrics {
                let identity = resource
                    .resource
                    .as_ref()
                    .map(Message::encode_to_vec)
                    .unwrap_or_default();
                for metric in resource.scope_metrics.iter().flat_map(|s| &s.metrics) {
                    let encoded: Vec<Vec<u8>> = match &metric.data {
                        Some(Data::Sum(s)) => {
                            assert_eq!(s.aggregation_temporality, 2);
                            assert!(s.is_monotonic);
                            s.data_points.iter().map(Message::encode_to_vec).collect()
                        }
                        Some(Data::ExponentialHistogram(h)) => {
                            assert_eq!(h.aggregation_temporality, 2);
                            h.data_points.iter().map(Message::encode_to_vec).collect()
                        }
                        other => panic!("unexpected data {other:?}"),
                    };
                    for point in encoded {
                        out.push((identity.clone(), metric.name.clone(), point));
                    }
                }
            }
        }
        out
    }

    #[test]
    fn a_large_metrics_request_is_cut_into_pieces_within_the_bound_that_hold_exactly_the_same_points(
    ) {
        let whole = request(400);
        let max = 16 * 1024;
        assert!(
            whole.encoded_len() > 5 * max,
            "the test request is too small"
        );
        let pieces: Vec<ExportMetricsServiceRequest> = split(Batch::Metrics(whole.clone()), max)
            .into_iter()
            .map(|b| match b {
                Batch::Metrics(r) => r,
                other => panic!("a metrics request became {other:?}"),
            })
            .collect();
        assert!(pieces.len() > 5, "{} pieces", pieces.len());
        for piece in &pieces {
            let len = piece.encoded_len();
            assert!(len <= max, "a piece of {len} bytes, above {max}");
        }
        // Packed: no two neighbours would have fit in one.
        for pair in pieces.windows(2) {
            assert!(
                pair[0].encoded_len() + pair[1].encoded_len() > max - 3 * SLACK,
                "two neighbouring pieces of {} and {} bytes were not packed together",
                pair[0].encoded_len(),
                pair[1].encoded_len()
            );
        }
        assert_eq!(points(&pieces), points(std::slice::from_ref(&whole)));
        // The pieces concatenated decode as the original points too (what a queue merging
        // them sends).
        let joined: Vec<u8> = pieces.iter().flat_map(Message::encode_to_vec).collect();
        let decoded = ExportMetricsServiceRequest::decode(joined.as_slice()).unwrap();
        assert_eq!(points(&[decoded]), points(&[whole]));
    }

    #[test]
    fn a_request_within_the_bound_is_left_whole_and_profiles_are_never_cut() {
        let small = request(3);
        let batch = Batch::Metrics(small);
        assert_eq!(split(batch.clone(), 1 << 20), vec![batch]);
        let profiles = Batch::Profiles(Default::default());
        assert_eq!(split(profiles.clone(), 0), vec![profiles]);
    }

    #[test]
    fn a_large_logs_request_is_cut_at_resources() {
        let record = |i: usize| LogRecord {
            body: Some(AnyValue {
                value: Some(any_value::Value::StringValue(format!(
                    "leak {i} {}",
                    "x".repeat(200)
                ))),
            }),
            ..LogRecord::default()
        };
        let whole = ExportLogsServiceRequest {
            resource_logs: (0..100)
                .map(|r| ResourceLogs {
                    resource: resource(r),
                    scope_logs: vec![ScopeLogs {
                        log_records: (0..5).map(record).collect(),
                        ..ScopeLogs::default()
                    }],
                    ..ResourceLogs::default()
                })
                .collect(),
        };
        let max = 8 * 1024;
        let pieces = split(Batch::Logs(whole.clone()), max);
        assert!(pieces.len() > 3);
        let mut resources = Vec::new();
        for piece in pieces {
            assert!(piece.encoded_len() <= max);
            let Batch::Logs(request) = piece else {
                panic!("a logs request changed signal")
            };
            resources.extend(request.resource_logs);
        }
        assert_eq!(resources, whole.resource_logs);
    }
}
