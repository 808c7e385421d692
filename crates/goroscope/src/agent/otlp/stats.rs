//! The exporter's own counts as Prometheus families (`goroscope_export_*`), beside the rest of
//! goroscope's self metrics: what was sent, retried, rejected by the server and dropped (by
//! reason), and what waits in the queue. Exported over OTLP too, under goroscope's resource.

use goroscope_export::{Exposition, Family, Labels};
use goroscope_otlp::Signal;
use goroscope_otlp::{DropReason, StatsSnapshot};

/// Adds the families of `stats`; `series_dropped` is the series OTLP exports left out (by
/// `limits.max_series_per_family`, or ended processes beyond what waits), `profiles_lost` the continuous profiles that failed or were
/// not picked up in time.
pub fn families(
    stats: &StatsSnapshot,
    series_dropped: u64,
    profiles_lost: u64,
    out: &mut Exposition,
) {
    let mut requests = Family::counter(
        "goroscope_export_sent_requests_total",
        "OTLP export requests the server accepted, by signal.",
    );
    let mut items = Family::counter(
        "goroscope_export_sent_items_total",
        "Items delivered over OTLP (metrics: data points; logs: log records; profiles: \
         samples), by signal.",
    );
    let mut rejected = Family::counter(
        "goroscope_export_rejected_items_total",
        "Items the server refused in a partial success, by signal.",
    );
    let mut retried = Family::counter(
        "goroscope_export_retried_requests_total",
        "OTLP export attempts that failed and were retried (connection errors, timeouts, \
         throttling), by signal.",
    );
    let mut dropped = Family::counter(
        "goroscope_export_dropped_items_total",
        "Items never delivered, by signal and reason (queue_full: the oldest waiting requests \
         made room for newer ones; retries_exhausted: the server failed for longer than \
         max_elapsed; not_retryable: the server refused them; shutdown: still queued when the \
         agent stopped).",
    );
    let mut bytes = Family::counter(
        "goroscope_export_sent_bytes_total",
        "Bytes of OTLP request bodies sent (after compression), by signal.",
    );
    let mut queued = Family::gauge(
        "goroscope_export_queued_bytes",
        "Bytes of OTLP requests waiting to be sent (encoded, before compression), by signal.",
    );
    let mut last_success = Family::gauge(
        "goroscope_export_last_success_timestamp_seconds",
        "When the server last accepted a request, by signal (Unix time; absent before the \
         first).",
    );
    for signal in Signal::ALL {
        let s = stats.signal(signal);
        let labels = || Labels::new().push("signal", signal.name());
        requests.add_counter(labels(), s.requests_sent as f64);
        items.add_counter(labels(), s.items_sent as f64);
        rejected.add_counter(labels(), s.items_rejected as f64);
        retried.add_counter(labels(), s.requests_retried as f64);
        for reason in DropReason::ALL {
            dropped.add_counter(
                labels().push("reason", reason.name()),
                s.dropped(reason) as f64,
            );
        }
        bytes.add_counter(labels(), s.bytes_sent as f64);
        queued.add_gauge(labels(), s.queued_bytes as f64);
        if let Some(at) = s.last_success {
            let seconds = at
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0.0, |d| d.as_secs_f64());
            last_success.add_gauge(labels(), seconds);
        }
    }
    let mut capped = Family::counter(
        "goroscope_export_series_dropped_total",
        "Series left out of OTLP exports, summed over exports: over \
         limits.max_series_per_family (exports carry one series per process), or the last \
         values of ended processes beyond the 16,384 per source that wait for the next export \
         (their counts still reach /metrics).",
    );
    capped.add_counter(Labels::new(), series_dropped as f64);
    let mut lost = Family::counter(
        "goroscope_export_profiles_lost_total",
        "Continuous CPU profiles (exporters.otlp.profiles) that failed or finished while two \
         others still waited to be queued.",
    );
    lost.add_counter(Labels::new(), profiles_lost as f64);
    for family in [
        requests,
        items,
        rejected,
        retried,
        dropped,
        bytes,
        queued,
        last_success,
        capped,
        lost,
    ] {
        out.push(family);
    }
}
