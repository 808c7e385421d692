//! Tests of `exporters.otlp` as the file gives it (no environment): when export is on, its
//! defaults, the shipped example, endpoints per signal, and each mistake's exact message,
//! line, column and field. The environment's part is in `tests_otlp_env`.

use std::path::Path;
use std::time::Duration;

use goroscope_otlp::{Compression, ExporterConfig, Protocol, Tls};

use super::tests::{check, endpoint, parsed, refused};
use super::{OtlpExport, ProfileExport};

const EXAMPLE: &str = include_str!("../../../../../config/agent.example.yaml");

/// The export `exporters: { otlp: {} }` means: every field its default.
pub(super) fn default_export() -> OtlpExport {
    OtlpExport {
        exporter: ExporterConfig {
            protocol: Protocol::HttpProtobuf,
            endpoints: [
                Some(endpoint("http://localhost:4318/v1/metrics")),
                Some(endpoint("http://localhost:4318/v1/logs")),
                None,
            ],
            headers: Vec::new(),
            compression: Compression::None,
            timeout: Duration::from_secs(10),
            interval: Duration::from_secs(15),
            tls: Tls::default(),
            queue_bytes: 8 << 20,
            batch_bytes: 2 << 20,
            max_elapsed: Duration::from_secs(300),
        },
        profiles: None,
    }
}

#[track_caller]
fn otlp(text: &str) -> OtlpExport {
    match parsed(text).exporters.otlp {
        Some(export) => export,
        None => panic!("no OTLP export from {text:?}"),
    }
}

#[test]
fn export_is_on_only_with_an_otlp_mapping_not_turned_off() {
    for off in [
        "",
        "exporters:\n",
        "exporters:\n  otlp:\n",
        "exporters: { otlp: ~ }\n",
        "exporters:\n  otlp: { enabled: false, protocol: grpc }\n",
    ] {
        assert_eq!(parsed(off).exporters.otlp, None, "{off:?}");
    }
    assert_eq!(otlp("exporters: { otlp: {} }\n"), default_export());
    assert_eq!(
        otlp("exporters:\n  otlp: { enabled: true }\n"),
        default_export()
    );
    assert_eq!(otlp("exporters:\n  otlp: { enabled: }\n"), default_export());
}

#[test]
fn a_turned_off_section_is_still_checked() {
    check(
        "exporters:\n  otlp:\n    enabled: false\n    timeout: 1h\n",
        4,
        Some("exporters.otlp.timeout"),
        "agent.yaml:4:14: exporters.otlp.timeout: \"1h\" is too long; use a duration from 100ms to 5m",
    );
}

#[test]
fn the_example_documents_the_otlp_defaults_truthfully() {
    // The example's `otlp:` is empty (export off); its commented lines, uncommented, must
    // turn export on with exactly the defaults.
    let (head, block) = EXAMPLE.split_at(
        EXAMPLE
            .find("\nexporters:\n")
            .expect("an exporters section"),
    );
    let uncommented: String = block
        .lines()
        .map(|line| match line.strip_prefix("    # ") {
            Some(rest) => format!("    {rest}\n"),
            None => format!("{line}\n"),
        })
        .collect();
    assert_ne!(
        uncommented,
        format!("{block}\n"),
        "nothing was commented out"
    );
    assert_eq!(otlp(&format!("{head}{uncommented}")), default_export());
}

#[test]
fn every_field_is_read() {
    let text = "interval: 10s\nexporters:\n  otlp:\n    enabled: true\n    \
                endpoint: https://collector.example:4317\n    protocol: grpc\n    \
                headers: { X-API-Key: \"a b\", x-tenant: \"7\" }\n    compression: gzip\n    \
                timeout: 2s\n    interval: 20s\n    \
                tls: { ca_file: src/agent/config/testdata/tls/ca.pem, insecure: true }\n    \
                queue_size: 512KiB\n    batch_size: 100kB\n    max_elapsed: 0s\n    \
                signals: { metrics: false, logs: true, profiles: true }\n    \
                endpoints: { logs: \"https://logs.example/v1/logs\" }\n    \
                profiles: { every: 30s, duration: 5s }\n";
    let expected = OtlpExport {
        exporter: ExporterConfig {
            protocol: Protocol::Grpc,
            endpoints: [
                None,
                Some(endpoint("https://logs.example/v1/logs")),
                Some(endpoint("https://collector.example:4317")),
            ],
            headers: vec![
                ("x-api-key".to_owned(), "a b".to_owned()),
                ("x-tenant".to_owned(), "7".to_owned()),
            ],
            compression: Compression::Gzip,
            timeout: Duration::from_secs(2),
            interval: Duration::from_secs(20),
            tls: Tls {
                ca_file: Some("src/agent/config/testdata/tls/ca.pem".into()),
                cert_file: None,
                key_file: None,
                insecure: true,
            },
            queue_bytes: 512 << 10,
            batch_bytes: 100_000,
            max_elapsed: Duration::ZERO,
        },
        profiles: Some(ProfileExport {
            every: Duration::from_secs(30),
            duration: Duration::from_secs(5),
        }),
    };
    assert_eq!(otlp(text), expected);
}

#[test]
fn sizes_are_bytes_or_a_number_and_a_unit() {
    let queue = |size: &str| {
        otlp(&format!(
            "exporters:\n  otlp: {{ queue_size: {size}, batch_size: 1KiB }}\n"
        ))
        .exporter
        .queue_bytes
    };
    assert_eq!(queue("4096"), 4096);
    assert_eq!(queue("1_048_576"), 1 << 20);
    assert_eq!(queue("\"3 MiB\""), 3 << 20);
    assert_eq!(queue("\"2 kB\""), 2000);
    assert_eq!(queue("0x800"), 2048);
}

#[test]
fn http_endpoints_get_each_signals_path_and_signal_endpoints_are_used_as_is() {
    let export = otlp(
        "exporters:\n  otlp:\n    endpoint: http://127.0.0.1:4318/otlp/\n    \
         signals: { profiles: true }\n    endpoints: { logs: \"http://[::1]:9999/custom\" }\n",
    );
    let url = |i: usize| {
        export.exporter.endpoints[i]
            .as_ref()
            .map(ToString::to_string)
    };
    assert_eq!(
        url(0).as_deref(),
        Some("http://127.0.0.1:4318/otlp/v1/metrics")
    );
    assert_eq!(url(1).as_deref(), Some("http://[::1]:9999/custom"));
    assert_eq!(
        url(2).as_deref(),
        Some("http://127.0.0.1:4318/otlp/v1development/profiles")
    );
    assert_eq!(
        export.profiles,
        Some(ProfileExport {
            every: Duration::from_secs(60),
            duration: Duration::from_secs(10),
        })
    );
    let grpc = otlp("exporters:\n  otlp: { protocol: grpc }\n").exporter;
    assert_eq!(grpc.endpoints[0], Some(endpoint("http://localhost:4317")));
    assert_eq!(grpc.endpoints[1], Some(endpoint("http://localhost:4317")));
    assert_eq!(
        otlp("exporters:\n  otlp: { protocol: grpc }\n").describe(),
        "OTLP (grpc): metrics and logs to http://localhost:4317/"
    );
    assert_eq!(
        default_export().describe(),
        "OTLP (http/protobuf): metrics to http://localhost:4318/v1/metrics, logs to \
         http://localhost:4318/v1/logs"
    );
}

#[test]
fn the_export_interval_follows_a_longer_collection_interval() {
    let interval = |text: &str| otlp(text).exporter.interval;
    assert_eq!(
        interval("interval: 1m\nexporters: { otlp: {} }\n"),
        Duration::from_secs(60)
    );
    assert_eq!(
        interval("interval: 1s\nexporters: { otlp: {} }\n"),
        Duration::from_secs(15)
    );
    // The collection interval may come after the section.
    check(
        "exporters:\n  otlp: { interval: 10s }\ninterval: 30s\n",
        2,
        Some("exporters.otlp.interval"),
        "agent.yaml:2:21: exporters.otlp.interval: 10s is shorter than the agent's collection interval (30s): exports in between would repeat the same collection; use at least 30s",
    );
}

#[test]
fn wrong_values_name_their_field() {
    let otlp_line = |field: &str| format!("exporters:\n  otlp:\n    {field}\n");
    for (field, column, path, message) in [
        ("protocol: http/json", 15, "protocol", "\"http/json\" is not supported: use grpc or http/protobuf"),
        ("protocol: GRPC", 15, "protocol", "unknown protocol \"GRPC\"; use grpc or http/protobuf"),
        ("compression: zstd", 18, "compression", "unknown compression \"zstd\"; use gzip or none"),
        ("endpoint: collector:4317", 15, "endpoint", "`collector:4317`: the scheme must be http (plaintext) or https (TLS)"),
        ("endpoint: 4317", 15, "endpoint", "expected text like \"http://127.0.0.1:4318\", found 4317"),
        ("endpoints: { metrics: \"not a url\" }", 27, "endpoints.metrics", "`not a url` is not a URL: write it as http://HOST:PORT or https://HOST:PORT"),
        ("endpoint: http://10.0.0.7:4318", 15, "endpoint", "\"http://10.0.0.7:4318\" is plaintext (http://) to a host that is not loopback: metrics would cross the network in clear text; use https://, or accept that with tls.insecure: true (OTEL_EXPORTER_OTLP_INSECURE=true)"),
        ("endpoints: { logs: \"http://collector/v1/logs\" }", 24, "endpoints.logs", "\"http://collector/v1/logs\" is plaintext (http://) to a host that is not loopback: logs would cross the network in clear text; use https://, or accept that with tls.insecure: true (OTEL_EXPORTER_OTLP_INSECURE=true)"),
        ("timeout: 50ms", 14, "timeout", "\"50ms\" is too short; use a duration from 100ms to 5m"),
        ("timeout: 6m", 14, "timeout", "\"6m\" is too long; use a duration from 100ms to 5m"),
        ("interval: 2h", 15, "interval", "\"2h\" is too long; use a duration from 100ms to 1h"),
        ("max_elapsed: 2h", 18, "max_elapsed", "\"2h\" is too long; use a duration from 0s to 1h"),
        ("queue_size: 512MiB", 17, "queue_size", "\"512MiB\" is out of range; use a size from 1KiB to 256MiB"),
        ("queue_size: 1MiB", 17, "queue_size", "1MiB is below batch_size (2MiB): the queue must hold at least one batch; raise queue_size or lower batch_size"),
        ("batch_size: 9MiB", 17, "batch_size", "9MiB is above queue_size (8MiB): the queue must hold at least one batch; lower batch_size or raise queue_size"),
        ("batch_size: 2mb", 17, "batch_size", "expected a size like 8MiB, 512KiB, 2MB or a number of bytes, found \"2mb\""),
        ("batch_size: 1.5MiB", 17, "batch_size", "expected a size like 8MiB, 512KiB, 2MB or a number of bytes, found \"1.5MiB\""),
        ("signals: { metrics: false, logs: false }", 14, "signals", "every signal is off; turn one on, or turn OTLP export off with exporters.otlp.enabled: false"),
        ("signals: { traces: true }", 16, "signals.traces", "unknown field; expected one of metrics, logs, profiles"),
        ("profiles: { every: 10s, duration: 10s }", 39, "profiles.duration", "10s is not shorter than profiles.every (10s): a profile must end before the next starts; shorten duration or lengthen every"),
        ("profiles: { every: 5s }", 24, "profiles.every", "5s is not longer than profiles.duration (10s): a profile must end before the next starts; lengthen every or shorten duration"),
        ("profiles: { duration: 10m }", 27, "profiles.duration", "\"10m\" is too long; use a duration from 1s to 5m"),
        ("profiles: { duration: 500ms }", 27, "profiles.duration", "\"500ms\" is too short; use a duration from 1s to 5m"),
        ("enabled: yes", 14, "enabled", "expected a boolean (true or false), found \"yes\""),
        ("tls: { insecure: 1 }", 22, "tls.insecure", "expected a boolean (true or false), found 1"),
        ("tls: { ca_file: \"\" }", 21, "tls.ca_file", "an empty path; give a PEM file's path, or leave the field out"),
        ("endpont: http://127.0.0.1:4318", 5, "endpont", "unknown field; expected one of enabled, endpoint, protocol, headers, compression, timeout, interval, tls, queue_size, batch_size, max_elapsed, signals, endpoints, profiles (did you mean endpoint?)"),
    ] {
        let text = otlp_line(field);
        let path = format!("exporters.otlp.{path}");
        check(
            &text,
            3,
            Some(&path),
            &format!("agent.yaml:3:{column}: {path}: {message}"),
        );
    }
    check(
        "exporters:\n  prometheus: {}\n",
        2,
        Some("exporters.prometheus"),
        "agent.yaml:2:3: exporters.prometheus: unknown field; expected one of otlp",
    );
}

#[test]
fn headers_must_be_sendable() {
    let header = |entry: &str| format!("exporters:\n  otlp:\n    headers:\n      {entry}\n");
    check(
        &header("\"x api key\": secret"),
        4,
        Some("exporters.otlp.headers.x api key"),
        "agent.yaml:4:7: exporters.otlp.headers.x api key: \"x api key\" is not a valid HTTP header name; use letters, digits and - (like x-api-key)",
    );
    check(
        &header("x-api-key: \"line\\r\\nInjected: 1\""),
        4,
        Some("exporters.otlp.headers.x-api-key"),
        "agent.yaml:4:7: exporters.otlp.headers.x-api-key: the value of \"x-api-key\" is not a valid HTTP header value (the value is not repeated here): use visible ASCII and spaces, no line breaks or control characters",
    );
    check(
        &header("Content-Type: text/plain"),
        4,
        Some("exporters.otlp.headers.Content-Type"),
        "agent.yaml:4:7: exporters.otlp.headers.Content-Type: \"content-type\" is set by goroscope itself for the protocol; remove it",
    );
    check(
        &header("x-tenant: 42"),
        4,
        Some("exporters.otlp.headers.x-tenant"),
        "agent.yaml:4:17: exporters.otlp.headers.x-tenant: expected the header's value as text, found a number; quote it",
    );
    check(
        "exporters:\n  otlp:\n    headers: { x-a: \"1\", X-A: \"2\" }\n",
        3,
        Some("exporters.otlp.headers.X-A"),
        "agent.yaml:3:26: exporters.otlp.headers.X-A: \"x-a\" is given twice (header names ignore case); keep one",
    );
    check(
        "exporters:\n  otlp:\n    headers: [x-a]\n",
        3,
        Some("exporters.otlp.headers"),
        "agent.yaml:3:14: exporters.otlp.headers: expected a mapping like { x-api-key: \"...\" }, found a list",
    );
}

#[test]
fn tls_files_must_be_readable_and_come_in_pairs() {
    let tls = |fields: &str| format!("exporters:\n  otlp:\n    tls: {{ {fields} }}\n");
    let pem = "src/agent/config/testdata/tls/client.pem";
    check(
        &tls(&format!("cert_file: {pem}")),
        3,
        Some("exporters.otlp.tls.cert_file"),
        "agent.yaml:3:23: exporters.otlp.tls.cert_file: a client certificate needs its private key: set tls.key_file too, or remove exporters.otlp.tls.cert_file",
    );
    check(
        &tls(&format!("key_file: {pem}")),
        3,
        Some("exporters.otlp.tls.key_file"),
        "agent.yaml:3:22: exporters.otlp.tls.key_file: a private key is only used with its client certificate: set tls.cert_file too, or remove exporters.otlp.tls.key_file",
    );
    check(
        &tls("ca_file: /no/such/ca.pem"),
        3,
        Some("exporters.otlp.tls.ca_file"),
        "agent.yaml:3:21: exporters.otlp.tls.ca_file: cannot read \"/no/such/ca.pem\": No such file or directory (os error 2); give the path of a PEM file goroscope can read",
    );
    check(
        &tls(&format!("cert_file: {pem}, key_file: src/agent/config/testdata")),
        3,
        Some("exporters.otlp.tls.key_file"),
        "agent.yaml:3:75: exporters.otlp.tls.key_file: \"src/agent/config/testdata\" is not a regular file; give the path of a PEM file",
    );
    let both = otlp(&tls(&format!("cert_file: {pem}, key_file: {pem}")));
    assert_eq!(both.exporter.tls.key_file.as_deref(), Some(Path::new(pem)));
}

#[test]
fn a_bad_section_is_refused_whole() {
    let error = refused("exporters:\n  otlp: [grpc]\n");
    assert_eq!(error.field(), Some("exporters.otlp"));
    assert!(
        error.message().starts_with("expected a mapping like"),
        "{error}"
    );
}
