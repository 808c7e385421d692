//! Tests of the OpenTelemetry Collector harness (`tests/otelcol/`) itself: a real
//! collector accepts an OTLP/HTTP JSON metrics request, its file exporter hands
//! back exactly the gauge, the cumulative monotonic sum and the `service.name`
//! resource attribute that were sent, and after `stop` its port refuses
//! connections until `start_again` brings it back on the same port, where a
//! second batch arrives too; with the debug exporter on, the batch is in the
//! collector's log as well.

mod otelcol;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use otelcol::{Collector, Options};
use serde_json::{json, Value};

/// How long a posted batch may take to reach the file exporter's output.
const ARRIVAL: Duration = Duration::from_secs(15);

/// One metrics batch: a gauge and a cumulative monotonic sum of known values.
struct Batch {
    service: String,
    gauge: f64,
    sum: i64,
}

impl Batch {
    /// The OTLP/HTTP JSON request body for this batch.
    fn request(&self) -> Value {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock after 1970")
            .as_nanos();
        let start = now - 60_000_000_000;
        json!({
            "resourceMetrics": [{
                "resource": {
                    "attributes": [
                        {"key": "service.name", "value": {"stringValue": self.service}}
                    ]
                },
                "scopeMetrics": [{
                    "scope": {"name": "goroscope.otelcol_harness"},
                    "metrics": [
                        {
                            "name": "harness.gauge",
                            "unit": "1",
                            "gauge": {"dataPoints": [
                                {"timeUnixNano": now.to_string(), "asDouble": self.gauge}
                            ]}
                        },
                        {
                            "name": "harness.sum",
                            "unit": "{event}",
                            "sum": {
                                "aggregationTemporality": 2,
                                "isMonotonic": true,
                                "dataPoints": [{
                                    "startTimeUnixNano": start.to_string(),
                                    "timeUnixNano": now.to_string(),
                                    "asInt": self.sum.to_string()
                                }]
                            }
                        }
                    ]
                }]
            }]
        })
    }

    /// Whether `batches` holds this batch: a resource with exactly this
    /// `service.name` whose gauge and sum carry exactly these values.
    fn found_in(&self, batches: &[Value]) -> bool {
        batches.iter().any(|batch| {
            array(batch, "resourceMetrics").iter().any(|resource| {
                let attributes = array(&resource["resource"], "attributes");
                let named = attributes.iter().any(|a| {
                    a["key"] == "service.name" && a["value"]["stringValue"] == self.service.as_str()
                });
                let metrics: Vec<&Value> = array(resource, "scopeMetrics")
                    .iter()
                    .flat_map(|scope| array(scope, "metrics"))
                    .collect();
                let gauge = metrics.iter().any(|m| {
                    m["name"] == "harness.gauge"
                        && array(&m["gauge"], "dataPoints")
                            .iter()
                            .any(|p| p["asDouble"].as_f64() == Some(self.gauge))
                });
                let sum = metrics.iter().any(|m| {
                    m["name"] == "harness.sum"
                        && m["sum"]["aggregationTemporality"] == 2
                        && m["sum"]["isMonotonic"] == true
                        && array(&m["sum"], "dataPoints")
                            .iter()
                            .any(|p| p["asInt"] == self.sum.to_string().as_str())
                });
                named && gauge && sum
            })
        })
    }
}

/// `value[key]` as a slice (empty when absent).
fn array<'a>(value: &'a Value, key: &str) -> &'a [Value] {
    value[key].as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// POSTs `body` as JSON to `path` on the collector's OTLP/HTTP port with plain
/// HTTP/1.1 and returns the status code and response body.
#[track_caller]
fn post_json(collector: &Collector, path: &str, body: &Value) -> (u16, String) {
    let addr = collector.http_addr();
    let body = body.to_string();
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("cannot connect to the collector's OTLP/HTTP port {addr}: {e}"));
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("read timeout");
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).unwrap_or_else(|e| {
        panic!(
            "cannot send the request to {addr}: {e}; the collector's log:\n{}",
            collector.log()
        )
    });
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap_or_else(|e| {
        panic!(
            "cannot read the response from {addr}: {e}; the collector's log:\n{}",
            collector.log()
        )
    });
    let response = String::from_utf8_lossy(&response).into_owned();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response from {addr}: {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

/// Posts `batch` and panics unless the collector answers 200.
#[track_caller]
fn post_batch(collector: &Collector, batch: &Batch) {
    let (status, body) = post_json(collector, "/v1/metrics", &batch.request());
    assert_eq!(
        status,
        200,
        "the collector refused the OTLP/HTTP JSON metrics request: {body}\nits log:\n{}",
        collector.log()
    );
}

#[test]
fn a_posted_batch_comes_back_and_a_restarted_collector_keeps_its_port() {
    let mut collector = Collector::start();
    assert!(collector.grpc_endpoint().starts_with("http://127.0.0.1:"));
    assert!(collector.http_endpoint().starts_with("http://127.0.0.1:"));
    assert_ne!(collector.grpc_addr(), collector.http_addr());
    assert!(
        collector.received().is_empty(),
        "a fresh collector already exported {:?}",
        collector.received()
    );

    // Values this run alone sends, so nothing else can match them.
    let tag = format!("harness-{}-{}", std::process::id(), nanos());
    let first = Batch {
        service: format!("{tag}-first"),
        gauge: 42.625,
        sum: 1_234_567,
    };
    let second = Batch {
        service: format!("{tag}-second"),
        gauge: -7.25,
        sum: 9_876_543_210,
    };

    post_batch(&collector, &first);
    let received = collector.wait_received(ARRIVAL, "the first batch", |b| first.found_in(b));
    assert!(
        !second.found_in(&received),
        "the second batch was found before it was sent: the matcher is broken"
    );
    // A batch that differs only in the sum's value must not match.
    let wrong = Batch {
        service: first.service.clone(),
        gauge: first.gauge,
        sum: first.sum + 1,
    };
    assert!(
        !wrong.found_in(&received),
        "a sum of {} matched a batch that carried {}: the matcher is broken",
        wrong.sum,
        first.sum
    );

    collector.stop();
    assert!(!collector.is_running());
    let http = collector.http_addr();
    let grpc = collector.grpc_addr();
    for addr in [http, grpc] {
        match TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {}
            Err(e) => panic!("connecting to the stopped collector's {addr}: {e}, not refused"),
            Ok(_) => panic!("the stopped collector's {addr} still accepts connections"),
        }
    }

    collector.start_again();
    assert_eq!(
        collector.http_addr(),
        http,
        "restarted on another HTTP port"
    );
    assert_eq!(
        collector.grpc_addr(),
        grpc,
        "restarted on another gRPC port"
    );
    post_batch(&collector, &second);
    let received = collector.wait_received(ARRIVAL, "the second batch", |b| second.found_in(b));
    assert!(
        first.found_in(&received),
        "the first batch is gone from received() after the restart"
    );
}

#[test]
fn the_debug_exporter_prints_a_posted_batch_into_the_log() {
    let collector = Collector::start_with(Options { debug: true });
    let batch = Batch {
        service: format!("harness-debug-{}-{}", std::process::id(), nanos()),
        gauge: 3.875,
        sum: 24_680,
    };
    post_batch(&collector, &batch);
    collector.wait_received(ARRIVAL, "the batch", |b| batch.found_in(b));
    let give_up = std::time::Instant::now() + ARRIVAL;
    loop {
        let log = collector.log();
        if log.contains(&batch.service) && log.contains("harness.gauge") && log.contains("24680") {
            break;
        }
        assert!(
            std::time::Instant::now() < give_up,
            "the debug exporter did not print {} with harness.gauge and 24680; the log:\n{log}",
            batch.service
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Nanoseconds since the epoch.
fn nanos() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos()
}
