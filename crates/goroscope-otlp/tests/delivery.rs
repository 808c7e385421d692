//! The exporter against an in-process fake OTLP server, over OTLP/HTTP and OTLP/gRPC: exact
//! delivery, gzip and headers on the wire, retries that honour Retry-After and RetryInfo,
//! what is not retried, partial success, the queue bound while the server is down, shutdown
//! with a dead server, a new configuration, and `send` never waiting on the network.

mod common;
mod fake;

use std::time::{Duration, Instant};

use common::{config, gauge, metrics, names, start, wait_stats};
use fake::{free_addr, Fake, Kind, Reply};
use goroscope_otlp::{Batch, Compression, DropReason, Protocol, Signal};

/// The endpoint URL of a fake for `kind`.
fn url(fake: &Fake, kind: Kind) -> String {
    match kind {
        Kind::Http => fake.url("/v1/metrics"),
        Kind::Grpc => fake.url(""),
    }
}

fn protocol(kind: Kind) -> Protocol {
    match kind {
        Kind::Http => Protocol::HttpProtobuf,
        Kind::Grpc => Protocol::Grpc,
    }
}

/// Sends three requests and checks they arrive exactly, with the headers, content type,
/// path and compression the protocol requires, and the counts say so.
fn delivers_exactly(kind: Kind, compression: Compression) {
    let fake = Fake::start(kind);
    let mut config = config(protocol(kind), &url(&fake, kind));
    config.compression = compression;
    config.headers = vec![("X-Api-Key".into(), "secret-42".into())];
    let (exporter, stats) = start(config);
    let sent = [gauge("first", 50), gauge("second", 60), gauge("third", 70)];
    for request in &sent {
        exporter.send(Batch::Metrics(request.clone()));
    }
    let counts = wait_stats(
        &stats,
        Duration::from_secs(10),
        "all 180 points sent",
        |s| s.items_sent == 180,
    );
    let received = fake.received();
    let mut expected = Vec::new();
    for request in &sent {
        expected.extend(request.resource_metrics.clone());
    }
    let mut got = Vec::new();
    for r in &received {
        let request = <opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest as prost::Message>::decode(r.body.as_slice())
            .unwrap_or_else(|e| panic!("not a metrics request: {e}"));
        got.extend(request.resource_metrics);
    }
    assert_eq!(got, expected, "the server got other metrics than were sent");
    let uncompressed: usize = received.iter().map(|r| r.body.len()).sum();
    for r in &received {
        assert_eq!(
            r.gzip,
            compression == Compression::Gzip,
            "{kind:?} compression"
        );
        assert_eq!(
            r.headers.get("x-api-key").map(|v| v.as_bytes()),
            Some(&b"secret-42"[..])
        );
        match kind {
            Kind::Http => {
                assert_eq!(r.path, "/v1/metrics");
                assert_eq!(r.headers["content-type"], "application/x-protobuf");
            }
            Kind::Grpc => {
                assert_eq!(r.path, Signal::Metrics.grpc_path());
                assert_eq!(r.headers["content-type"], "application/grpc");
                assert_eq!(r.headers["te"], "trailers");
            }
        }
    }
    assert_eq!(counts.requests_sent, received.len() as u64);
    assert_eq!(counts.dropped_total(), 0);
    assert_eq!(counts.queued_bytes, 0);
    assert!(counts.last_success.is_some());
    if compression == Compression::Gzip {
        assert!(
            counts.bytes_sent < uncompressed as u64,
            "gzip sent {} bytes for {uncompressed} bytes of requests",
            counts.bytes_sent
        );
    } else {
        assert!(counts.bytes_sent >= uncompressed as u64);
    }
    exporter.shutdown(Duration::from_secs(1));
}

#[test]
fn http_delivers_exactly_with_headers_plain_and_gzip() {
    delivers_exactly(Kind::Http, Compression::None);
    delivers_exactly(Kind::Http, Compression::Gzip);
}

#[test]
fn grpc_delivers_exactly_with_headers_plain_and_gzip() {
    delivers_exactly(Kind::Grpc, Compression::None);
    delivers_exactly(Kind::Grpc, Compression::Gzip);
}

#[test]
fn http_503_with_retry_after_is_retried_after_that_delay() {
    let fake = Fake::start(Kind::Http);
    fake.script([Reply::Http(503, Some("2"))]);
    let (exporter, stats) = start(config(Protocol::HttpProtobuf, &fake.url("/v1/metrics")));
    exporter.send(metrics("throttled", 3));
    let received = fake.wait_for(2, Duration::from_secs(10));
    let gap = received[1].at - received[0].at;
    // The backoff alone would wait at most 1 s.
    assert!(
        gap >= Duration::from_millis(1900) && gap < Duration::from_secs(4),
        "retried after {gap:?}, not after Retry-After's 2 s"
    );
    let counts = wait_stats(&stats, Duration::from_secs(5), "the retry delivered", |s| {
        s.requests_sent == 1
    });
    assert_eq!(counts.requests_retried, 1);
    assert_eq!(counts.items_sent, 3);
    assert!(
        counts
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("503")),
        "{counts:?}"
    );
}

#[test]
fn http_400_is_dropped_not_retryable() {
    let fake = Fake::start(Kind::Http);
    fake.script([Reply::Http(400, None)]);
    let (exporter, stats) = start(config(Protocol::HttpProtobuf, &fake.url("/v1/metrics")));
    exporter.send(metrics("malformed", 4));
    let counts = wait_stats(
        &stats,
        Duration::from_secs(5),
        "dropped not_retryable",
        |s| s.dropped(DropReason::NotRetryable) == 4,
    );
    assert_eq!(counts.requests_retried, 0);
    assert_eq!(counts.requests_sent, 0);
    let error = counts.last_error.unwrap_or_default();
    assert!(
        error.contains("400") && error.contains("fake refuses"),
        "{error}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(fake.received().len(), 1, "a 400 was retried");
}

#[test]
fn partial_success_is_counted_rejected_over_both_protocols() {
    for kind in [Kind::Http, Kind::Grpc] {
        let fake = Fake::start(kind);
        fake.script([Reply::Partial(2, "two points too old")]);
        let (exporter, stats) = start(config(protocol(kind), &url(&fake, kind)));
        exporter.send(metrics("partly", 5));
        let counts = wait_stats(&stats, Duration::from_secs(5), "rejected counted", |s| {
            s.items_rejected == 2
        });
        assert_eq!(counts.requests_sent, 1, "{kind:?}");
        assert_eq!(counts.items_sent, 5);
        assert_eq!(counts.requests_retried, 0);
        assert_eq!(counts.last_rejection.as_deref(), Some("two points too old"));
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            fake.received().len(),
            1,
            "{kind:?}: a partial success was retried"
        );
    }
}

#[test]
fn grpc_unavailable_is_retried() {
    let fake = Fake::start(Kind::Grpc);
    fake.script([Reply::Grpc(tonic::Code::Unavailable, None)]);
    let (exporter, stats) = start(config(Protocol::Grpc, &fake.url("")));
    exporter.send(metrics("flaky", 2));
    let counts = wait_stats(&stats, Duration::from_secs(5), "delivered on retry", |s| {
        s.requests_sent == 1
    });
    assert_eq!(counts.requests_retried, 1);
    assert_eq!(fake.received().len(), 2);
    assert!(counts
        .last_error
        .unwrap_or_default()
        .contains("Unavailable"));
}

#[test]
fn grpc_resource_exhausted_is_retried_only_with_retry_info_after_its_delay() {
    let fake = Fake::start(Kind::Grpc);
    fake.script([Reply::Grpc(tonic::Code::ResourceExhausted, None)]);
    let (exporter, stats) = start(config(Protocol::Grpc, &fake.url("")));
    exporter.send(metrics("no-info", 3));
    wait_stats(
        &stats,
        Duration::from_secs(5),
        "dropped not_retryable",
        |s| s.dropped(DropReason::NotRetryable) == 3,
    );
    assert_eq!(fake.received().len(), 1);

    fake.script([Reply::Grpc(
        tonic::Code::ResourceExhausted,
        Some(Duration::from_millis(1500)),
    )]);
    exporter.send(metrics("with-info", 4));
    let received = fake.wait_for(3, Duration::from_secs(10));
    let gap = received[2].at - received[1].at;
    // The backoff alone would wait at most 1 s.
    assert!(
        gap >= Duration::from_millis(1400) && gap < Duration::from_secs(3),
        "retried after {gap:?}, not after RetryInfo's 1.5 s"
    );
    let counts = wait_stats(&stats, Duration::from_secs(5), "delivered", |s| {
        s.items_sent == 4
    });
    assert_eq!(counts.requests_retried, 1);
}

#[test]
fn a_dead_endpoint_drops_the_oldest_within_the_bound_then_the_newest_arrive() {
    let addr = free_addr();
    let mut config = config(Protocol::HttpProtobuf, &format!("http://{addr}/v1/metrics"));
    let size = metrics("m0", 10).encode().len();
    config.queue_bytes = 3 * size;
    let (exporter, stats) = start(config);
    for i in 0..10 {
        exporter.send(metrics(&format!("m{i}"), 10));
        let queued = stats.snapshot().signal(Signal::Metrics).queued_bytes;
        assert!(
            queued <= 3 * size as u64,
            "{queued} bytes queued over the bound"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let counts = stats.snapshot().signal(Signal::Metrics).clone();
    // What is held is the newest: two or three requests (a merged request being retried
    // is dropped whole when it is the oldest).
    let dropped = counts.dropped(DropReason::QueueFull);
    assert!((70..=80).contains(&dropped), "{counts:#?}");
    assert_eq!(counts.queued_requests * 10, 100 - dropped, "{counts:#?}");
    assert!(
        counts.requests_retried >= 1,
        "connection refused was not retried"
    );
    let fake = Fake::start_on(Kind::Http, addr, None);
    let counts = wait_stats(
        &stats,
        Duration::from_secs(20),
        "the newest delivered",
        |s| s.items_sent == 100 - dropped,
    );
    let bodies: Vec<_> = fake.received().into_iter().map(|r| r.body).collect();
    let newest: Vec<String> = (dropped / 10..10).map(|i| format!("m{i}")).collect();
    assert_eq!(names(&bodies), newest, "not the newest requests, in order");
    assert_eq!(counts.queued_bytes, 0);
    assert_eq!(counts.dropped_total(), dropped);
}

#[test]
fn a_request_still_failing_after_max_elapsed_is_dropped_retries_exhausted() {
    let addr = free_addr();
    let mut config = config(Protocol::Grpc, &format!("http://{addr}"));
    config.max_elapsed = Duration::from_millis(1500);
    let (exporter, stats) = start(config);
    let started = Instant::now();
    exporter.send(metrics("doomed", 9));
    let counts = wait_stats(&stats, Duration::from_secs(5), "retries exhausted", |s| {
        s.dropped(DropReason::RetriesExhausted) == 9
    });
    // Backoff: ≤ 1 s, then a delay of 1–2 s would pass 1.5 s.
    assert!(
        started.elapsed() < Duration::from_millis(1600),
        "{:?}",
        started.elapsed()
    );
    assert!(counts.requests_retried >= 1, "{counts:#?}");
    assert_eq!((counts.requests_sent, counts.queued_requests), (0, 0));
}

#[test]
fn shutdown_with_a_hanging_server_returns_within_the_deadline_and_counts_the_rest() {
    let fake = Fake::start(Kind::Http);
    fake.script([Reply::Hang]);
    let mut config = config(Protocol::HttpProtobuf, &fake.url("/v1/metrics"));
    config.timeout = Duration::from_secs(30);
    config.batch_bytes = 1; // no merging: five requests
    let (exporter, stats) = start(config);
    for i in 0..5 {
        exporter.send(metrics(&format!("late{i}"), 2));
    }
    fake.wait_for(1, Duration::from_secs(5));
    let started = Instant::now();
    exporter.shutdown(Duration::from_millis(500));
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500), "shutdown took {took:?}");
    let counts = stats.snapshot().signal(Signal::Metrics).clone();
    assert_eq!(counts.dropped(DropReason::Shutdown), 10, "{counts:#?}");
    assert_eq!(counts.queued_requests, 0);
}

#[test]
fn shutdown_with_a_dead_server_returns_within_the_deadline() {
    let addr = free_addr();
    let (exporter, stats) = start(config(Protocol::Grpc, &format!("http://{addr}")));
    exporter.send(metrics("never", 6));
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    exporter.shutdown(Duration::from_millis(300));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    let counts = stats.snapshot().signal(Signal::Metrics).clone();
    assert_eq!(counts.dropped(DropReason::Shutdown), 6, "{counts:#?}");
}

#[test]
fn send_stays_fast_while_the_server_hangs() {
    let fake = Fake::start(Kind::Grpc);
    fake.script([Reply::Hang]);
    let mut config = config(Protocol::Grpc, &fake.url(""));
    config.queue_bytes = 64 << 10;
    let (exporter, stats) = start(config);
    exporter.send(metrics("first", 1));
    fake.wait_for(1, Duration::from_secs(5));
    let batches: Vec<_> = (0..1000).map(|i| metrics(&format!("n{i}"), 1)).collect();
    let started = Instant::now();
    for batch in batches {
        exporter.send(batch);
    }
    let took = started.elapsed();
    assert!(took < Duration::from_millis(50), "1000 sends took {took:?}");
    let counts = stats.snapshot().signal(Signal::Metrics).clone();
    assert!(counts.queued_bytes <= 64 << 10);
    exporter.shutdown(Duration::ZERO);
}

#[test]
fn a_new_configuration_keeps_the_queue_and_the_counts() {
    let dead = free_addr();
    let (mut exporter, stats) = start(config(
        Protocol::HttpProtobuf,
        &format!("http://{dead}/v1/metrics"),
    ));
    exporter.send(metrics("moved", 8));
    wait_stats(&stats, Duration::from_secs(5), "a retry", |s| {
        s.requests_retried >= 1
    });
    let fake = Fake::start(Kind::Grpc);
    let mut next = config(Protocol::Grpc, &fake.url(""));
    next.compression = Compression::Gzip;
    exporter
        .reconfigure(next.clone())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(exporter.config(), &next);
    let counts = wait_stats(
        &stats,
        Duration::from_secs(5),
        "delivered to the new endpoint",
        |s| s.items_sent == 8,
    );
    assert!(counts.requests_retried >= 1, "the counts were reset");
    let received = fake.received();
    assert!(received[0].gzip);
    assert_eq!(names(&[received[0].body.clone()]), ["moved"]);
}

#[test]
fn a_signal_without_an_endpoint_is_counted_disabled() {
    let fake = Fake::start(Kind::Http);
    let (exporter, stats) = start(config(Protocol::HttpProtobuf, &fake.url("/v1/metrics")));
    let logs = opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest {
        resource_logs: vec![opentelemetry_proto::tonic::logs::v1::ResourceLogs {
            scope_logs: vec![opentelemetry_proto::tonic::logs::v1::ScopeLogs {
                log_records: vec![Default::default(); 3],
                ..Default::default()
            }],
            ..Default::default()
        }],
    };
    exporter.send(Batch::Logs(logs));
    let counts = stats.snapshot();
    assert_eq!(counts.signal(Signal::Logs).dropped(DropReason::Disabled), 3);
    exporter.shutdown(Duration::from_millis(100));
    assert!(fake.received().is_empty());
}
