//! The requests the agent hands over, encoded once on the caller's thread, with the count of
//! items in them; and the servers' answers, read for partial success.
//!
//! Metrics and logs requests are merged by concatenating their encodings: both messages
//! hold a single repeated field, and protobuf decodes concatenated encodings as one
//! message with the repeated fields appended. Profiles requests are never merged: their
//! `dictionary` is shared by everything in the request, and concatenation would merge two
//! dictionaries field by field and break every index into them.

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::metrics::v1::{
    ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use opentelemetry_proto::tonic::collector::profiles::v1development::{
    ExportProfilesServiceRequest, ExportProfilesServiceResponse,
};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message;

use crate::config::Signal;

/// One export request of one signal.
#[derive(Clone, Debug, PartialEq)]
pub enum Batch {
    /// Metrics.
    Metrics(ExportMetricsServiceRequest),
    /// Logs.
    Logs(ExportLogsServiceRequest),
    /// Profiles (OTLP profiles v1development).
    Profiles(ExportProfilesServiceRequest),
}

impl Batch {
    /// Its signal.
    pub fn signal(&self) -> Signal {
        match self {
            Batch::Metrics(_) => Signal::Metrics,
            Batch::Logs(_) => Signal::Logs,
            Batch::Profiles(_) => Signal::Profiles,
        }
    }

    /// How many items it carries: data points, log records or samples.
    pub fn items(&self) -> u64 {
        let count = |n: usize| n as u64;
        match self {
            Batch::Metrics(request) => request
                .resource_metrics
                .iter()
                .flat_map(|r| &r.scope_metrics)
                .flat_map(|s| &s.metrics)
                .map(|m| match &m.data {
                    Some(Data::Gauge(g)) => count(g.data_points.len()),
                    Some(Data::Sum(s)) => count(s.data_points.len()),
                    Some(Data::Histogram(h)) => count(h.data_points.len()),
                    Some(Data::ExponentialHistogram(h)) => count(h.data_points.len()),
                    Some(Data::Summary(s)) => count(s.data_points.len()),
                    None => 0,
                })
                .sum(),
            Batch::Logs(request) => request
                .resource_logs
                .iter()
                .flat_map(|r| &r.scope_logs)
                .map(|s| count(s.log_records.len()))
                .sum(),
            Batch::Profiles(request) => request
                .resource_profiles
                .iter()
                .flat_map(|r| &r.scope_profiles)
                .flat_map(|s| &s.profiles)
                .map(|p| count(p.samples.len()))
                .sum(),
        }
    }

    /// The length of its protobuf encoding.
    pub fn encoded_len(&self) -> usize {
        match self {
            Batch::Metrics(request) => request.encoded_len(),
            Batch::Logs(request) => request.encoded_len(),
            Batch::Profiles(request) => request.encoded_len(),
        }
    }

    /// Its protobuf encoding.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            Batch::Metrics(request) => request.encode_to_vec(),
            Batch::Logs(request) => request.encode_to_vec(),
            Batch::Profiles(request) => request.encode_to_vec(),
        }
    }
}

/// Whether requests of `signal` may be merged by concatenating their encodings.
pub(crate) fn mergeable(signal: Signal) -> bool {
    signal != Signal::Profiles
}

/// What the server said it rejected in a successful answer (OTLP partial success).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PartialSuccess {
    /// Items rejected.
    pub rejected: u64,
    /// The server's explanation (may be set with nothing rejected: a warning).
    pub message: String,
}

/// Reads the partial success out of a successful answer's body. An empty or undecodable
/// body means full success (servers may answer with an empty body).
pub(crate) fn partial_success(signal: Signal, body: &[u8]) -> PartialSuccess {
    let (rejected, message) = match signal {
        Signal::Metrics => ExportMetricsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_data_points, p.error_message)),
        Signal::Logs => ExportLogsServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_log_records, p.error_message)),
        Signal::Profiles => ExportProfilesServiceResponse::decode(body)
            .ok()
            .and_then(|r| r.partial_success)
            .map(|p| (p.rejected_profiles, p.error_message)),
    }
    .unwrap_or_default();
    PartialSuccess {
        rejected: u64::try_from(rejected).unwrap_or(0),
        message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::metrics::v1::{
        number_data_point::Value, Gauge, Metric, NumberDataPoint, ResourceMetrics, ScopeMetrics,
    };

    /// A metrics request with one gauge of `points` points named `name`.
    pub(crate) fn gauge(name: &str, points: usize) -> ExportMetricsServiceRequest {
        ExportMetricsServiceRequest {
            resource_metrics: vec![ResourceMetrics {
                scope_metrics: vec![ScopeMetrics {
                    metrics: vec![Metric {
                        name: name.to_owned(),
                        data: Some(Data::Gauge(Gauge {
                            data_points: (0..points)
                                .map(|i| NumberDataPoint {
                                    value: Some(Value::AsInt(i as i64)),
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

    #[test]
    fn concatenated_encodings_decode_as_the_merged_request() {
        let a = gauge("a", 2);
        let b = gauge("b", 3);
        let mut bytes = Batch::Metrics(a.clone()).encode();
        bytes.extend(Batch::Metrics(b.clone()).encode());
        let merged = ExportMetricsServiceRequest::decode(bytes.as_slice())
            .unwrap_or_else(|e| panic!("merged encoding does not decode: {e}"));
        let mut expected = a;
        expected.resource_metrics.extend(b.resource_metrics);
        assert_eq!(merged, expected);
        assert_eq!(Batch::Metrics(merged).items(), 5);
        assert!(!mergeable(Signal::Profiles));
    }

    #[test]
    fn partial_success_is_read_and_an_empty_body_is_full_success() {
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsPartialSuccess;
        let answer = ExportMetricsServiceResponse {
            partial_success: Some(ExportMetricsPartialSuccess {
                rejected_data_points: 7,
                error_message: "too old".into(),
            }),
        };
        let read = partial_success(Signal::Metrics, &answer.encode_to_vec());
        assert_eq!(read.rejected, 7);
        assert_eq!(read.message, "too old");
        assert_eq!(
            partial_success(Signal::Logs, &[]),
            PartialSuccess::default()
        );
    }

    #[test]
    fn logs_count_records_and_profiles_count_samples() {
        use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
        use opentelemetry_proto::tonic::profiles::v1development::{
            Profile, ResourceProfiles, Sample, ScopeProfiles,
        };
        let logs = Batch::Logs(ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                scope_logs: vec![
                    ScopeLogs {
                        log_records: vec![Default::default(); 2],
                        ..Default::default()
                    },
                    ScopeLogs {
                        log_records: vec![Default::default(); 3],
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
        });
        assert_eq!((logs.signal(), logs.items()), (Signal::Logs, 5));
        let profile = |samples| Profile {
            samples: vec![Sample::default(); samples],
            ..Default::default()
        };
        let profiles = Batch::Profiles(ExportProfilesServiceRequest {
            resource_profiles: vec![ResourceProfiles {
                scope_profiles: vec![ScopeProfiles {
                    profiles: vec![profile(4), profile(6)],
                    ..Default::default()
                }],
                ..Default::default()
            }],
            dictionary: None,
        });
        assert_eq!(
            (profiles.signal(), profiles.items()),
            (Signal::Profiles, 10)
        );
    }
}
