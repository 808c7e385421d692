//! One sample of a family as one OTLP data point: numbers, classic
//! histograms with explicit bounds, and the kernel's quarter-octave latency
//! buckets as an exponential histogram of scale 2.

use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::metrics::v1::exponential_histogram_data_point::Buckets;
use opentelemetry_proto::tonic::metrics::v1::{
    number_data_point, ExponentialHistogramDataPoint, HistogramDataPoint, NumberDataPoint,
};

use crate::family::KernelLatency;
use crate::histogram::HistogramValue;

/// The exponential-histogram scale of the kernel's buckets: base 2^(2^-2),
/// four buckets per power of two.
pub(crate) const KERNEL_SCALE: i32 = 2;

/// The width of the zero bucket in nanoseconds: kernel bucket 0 holds both
/// 0 ns and 1 ns, so the zero bucket is `[0, 1]` ns.
pub(crate) const KERNEL_ZERO_THRESHOLD_NS: f64 = 1.0;

/// A counter, up-down counter or gauge value.
pub(crate) fn number(
    attributes: Vec<KeyValue>,
    value: f64,
    start_unix_ns: u64,
    now_unix_ns: u64,
) -> NumberDataPoint {
    NumberDataPoint {
        attributes,
        start_time_unix_nano: start_unix_ns,
        time_unix_nano: now_unix_ns,
        value: Some(number_data_point::Value::AsDouble(value)),
        ..NumberDataPoint::default()
    }
}

/// A classic histogram: the cumulative `le` counts become per-bucket counts
/// with the finite bounds as explicit bounds, the last bucket (above the
/// largest bound) holding what only `+Inf` counted. Counts saturate at 0
/// where the input is not cumulative.
pub(crate) fn explicit(
    attributes: Vec<KeyValue>,
    histogram: &HistogramValue,
    start_unix_ns: u64,
    now_unix_ns: u64,
) -> HistogramDataPoint {
    let mut explicit_bounds = Vec::with_capacity(histogram.buckets.len());
    let mut bucket_counts = Vec::with_capacity(histogram.buckets.len() + 1);
    let mut below = 0u64;
    for (le, cumulative) in histogram.finite_buckets() {
        explicit_bounds.push(le);
        bucket_counts.push(cumulative.saturating_sub(below));
        below = below.max(cumulative);
    }
    bucket_counts.push(histogram.count.saturating_sub(below));
    HistogramDataPoint {
        attributes,
        start_time_unix_nano: start_unix_ns,
        time_unix_nano: now_unix_ns,
        count: histogram.count,
        sum: Some(histogram.sum),
        bucket_counts,
        explicit_bounds,
        ..HistogramDataPoint::default()
    }
}

/// The kernel's buckets unchanged, in nanoseconds. Kernel bucket `i >= 1`
/// holds `(2^((i-1)/4), 2^(i/4)]` ns, which is bucket `i - 1` of scale 2, so
/// the positive buckets are the kernel's from the first non-empty one
/// (offset: its index - 1) to the last non-empty one. Kernel bucket 0 holds
/// 0 and 1 ns: it is the zero bucket, with a zero threshold of 1 ns.
///
/// The kernel's last bucket is an overflow bucket (everything above 2^39.5 ns,
/// about 13 minutes); it lands in bucket 158, `(2^39.5, 2^39.75]` ns, so
/// observations above 2^39.75 ns read as at most that there, while count and
/// sum stay exact.
pub(crate) fn exponential(
    attributes: Vec<KeyValue>,
    kernel: &KernelLatency,
    start_unix_ns: u64,
    now_unix_ns: u64,
) -> ExponentialHistogramDataPoint {
    let counts = kernel.buckets.buckets();
    let (zero_count, above_one) = match counts.split_first() {
        Some((&zero, rest)) => (zero, rest),
        None => (0, &counts[..]),
    };
    let first = above_one.iter().position(|&count| count != 0);
    let last = above_one.iter().rposition(|&count| count != 0);
    let positive = match (first, last) {
        (Some(first), Some(last)) => Some(Buckets {
            // Below LATENCY_BUCKETS, so it fits.
            offset: i32::try_from(first).unwrap_or(i32::MAX),
            bucket_counts: above_one[first..=last].to_vec(),
        }),
        _ => None,
    };
    ExponentialHistogramDataPoint {
        attributes,
        start_time_unix_nano: start_unix_ns,
        time_unix_nano: now_unix_ns,
        count: kernel.buckets.total(),
        sum: Some(kernel.sum_ns as f64),
        scale: KERNEL_SCALE,
        zero_count,
        positive,
        zero_threshold: KERNEL_ZERO_THRESHOLD_NS,
        ..ExponentialHistogramDataPoint::default()
    }
}
