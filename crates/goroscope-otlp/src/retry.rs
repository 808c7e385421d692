//! When to try a failed request again, and after how long: the OTLP exporter rules
//! (<https://opentelemetry.io/docs/specs/otlp/>). HTTP 429, 502, 503 and 504 are retryable
//! and may say when in `Retry-After`; gRPC UNAVAILABLE, CANCELLED, DEADLINE_EXCEEDED,
//! ABORTED, OUT_OF_RANGE and DATA_LOSS are retryable, RESOURCE_EXHAUSTED only when the
//! server says when (`google.rpc.RetryInfo`). Otherwise the delay is an exponential backoff
//! with jitter.

use std::time::{Duration, SystemTime};

/// The first backoff delay.
pub(crate) const INITIAL_BACKOFF: Duration = Duration::from_secs(1);
/// The longest backoff delay.
pub(crate) const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Exponential backoff: 1 s doubling up to 30 s, each delay drawn uniformly from its
/// upper half (so concurrent exporters spread out but never retry almost at once).
#[derive(Debug)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Backoff {
    /// A backoff at its first delay.
    pub fn new() -> Backoff {
        Backoff {
            next: INITIAL_BACKOFF,
        }
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.next;
        self.next = (self.next * 2).min(MAX_BACKOFF);
        let half = ceiling / 2;
        half + half.mul_f64(fastrand::f64())
    }
}

/// Whether an attempt that failed may be retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Retry {
    /// Never: the request is dropped.
    No,
    /// Yes, after the server's delay if it gave one, else after the backoff.
    After(Option<Duration>),
}

/// What OTLP/HTTP says of a failed response's status.
pub(crate) fn http_status(status: u16, retry_after: Option<Duration>) -> Retry {
    match status {
        429 | 502 | 503 | 504 => Retry::After(retry_after),
        _ => Retry::No,
    }
}

/// The delay of a `Retry-After` header: delay-seconds or an HTTP date (a date in the past
/// means now).
pub(crate) fn retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(date.duration_since(now).unwrap_or(Duration::ZERO))
}

/// What OTLP/gRPC says of a failed call's status; `retry_info` is the delay of the
/// status's `google.rpc.RetryInfo`, when it has one.
pub(crate) fn grpc_status(code: tonic::Code, retry_info: Option<Duration>) -> Retry {
    use tonic::Code;
    match code {
        Code::Cancelled
        | Code::DeadlineExceeded
        | Code::Aborted
        | Code::OutOfRange
        | Code::Unavailable
        | Code::DataLoss => Retry::After(retry_info),
        Code::ResourceExhausted if retry_info.is_some() => Retry::After(retry_info),
        _ => Retry::No,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_thirty_seconds_with_jitter_in_the_upper_half() {
        let mut backoff = Backoff::new();
        let ceilings = [1, 2, 4, 8, 16, 30, 30];
        for ceiling in ceilings {
            let ceiling = Duration::from_secs(ceiling);
            let delay = backoff.next_delay();
            assert!(
                delay >= ceiling / 2 && delay <= ceiling,
                "{delay:?} not within [{:?}, {ceiling:?}]",
                ceiling / 2
            );
        }
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        assert_eq!(retry_after("2", now), Some(Duration::from_secs(2)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(5));
        assert_eq!(retry_after(&later, now), Some(Duration::from_secs(5)));
        let earlier = httpdate::fmt_http_date(now - Duration::from_secs(5));
        assert_eq!(retry_after(&earlier, now), Some(Duration::ZERO));
        assert_eq!(retry_after("soon", now), None);
    }

    #[test]
    fn only_the_spec_s_codes_are_retryable() {
        assert_eq!(http_status(503, None), Retry::After(None));
        assert_eq!(
            http_status(429, Some(Duration::from_secs(3))),
            Retry::After(Some(Duration::from_secs(3)))
        );
        for status in [400, 401, 403, 404, 413, 500] {
            assert_eq!(http_status(status, None), Retry::No, "HTTP {status}");
        }
        assert_eq!(
            grpc_status(tonic::Code::Unavailable, None),
            Retry::After(None)
        );
        assert_eq!(grpc_status(tonic::Code::ResourceExhausted, None), Retry::No);
        let delay = Some(Duration::from_millis(1500));
        assert_eq!(
            grpc_status(tonic::Code::ResourceExhausted, delay),
            Retry::After(delay)
        );
        for code in [
            tonic::Code::InvalidArgument,
            tonic::Code::Unimplemented,
            tonic::Code::Unauthenticated,
            tonic::Code::PermissionDenied,
        ] {
            assert_eq!(grpc_status(code, None), Retry::No, "{code:?}");
        }
    }
}
