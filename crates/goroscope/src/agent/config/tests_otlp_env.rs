//! Tests of the standard `OTEL_EXPORTER_OTLP_*` variables: export configured by them alone,
//! the file winning over them, `enabled: false` beating them, `OTEL_SDK_DISABLED=true` turning
//! off what only the environment or a section without `enabled` asked for, and each wrong
//! variable named with its value and what to write.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::Path;
use std::time::Duration;

use goroscope_otlp::{Compression, Protocol};

use super::tests::endpoint;
use super::tests_otlp::default_export;
use super::{AgentConfig, ConfigError, OtlpExport};

/// An environment holding exactly `vars`.
fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
    let vars: HashMap<String, OsString> = vars
        .iter()
        .map(|(name, value)| ((*name).to_owned(), OsString::from(value)))
        .collect();
    move |name| vars.get(name).cloned()
}

/// The export `text` (a config file) and `vars` give.
#[track_caller]
fn export(text: &str, vars: &[(&str, &str)]) -> Option<OtlpExport> {
    AgentConfig::parse(text, Path::new("agent.yaml"), &env(vars))
        .unwrap_or_else(|e| panic!("refused: {e}"))
        .exporters
        .otlp
}

/// The export `vars` give without a file.
#[track_caller]
fn env_only(vars: &[(&str, &str)]) -> Option<OtlpExport> {
    AgentConfig::from_environment(&env(vars))
        .unwrap_or_else(|e| panic!("refused: {e}"))
        .exporters
        .otlp
}

/// The error `vars` give, without a file and with `text`.
#[track_caller]
fn refused(text: &str, vars: &[(&str, &str)]) -> [ConfigError; 2] {
    let Err(alone) = AgentConfig::from_environment(&env(vars)) else {
        panic!("accepted {vars:?} without a file");
    };
    let Err(with_file) = AgentConfig::parse(text, Path::new("agent.yaml"), &env(vars)) else {
        panic!("accepted {vars:?} with {text:?}");
    };
    [alone, with_file]
}

/// Checks the whole text of the error `vars` give, and that it names `variable`.
#[track_caller]
fn check(vars: &[(&str, &str)], variable: &str, display: &str) {
    for error in refused("exporters:\n  otlp: {}\n", vars) {
        assert_eq!(error.to_string(), display);
        assert_eq!(error.variable(), Some(variable), "{error}");
        assert_eq!(
            (error.path(), error.line(), error.field()),
            (None, None, None)
        );
    }
}

const ENDPOINT: &str = "OTEL_EXPORTER_OTLP_ENDPOINT";

#[test]
fn the_endpoint_variables_alone_turn_export_on() {
    assert_eq!(env_only(&[]), None);
    // Only these two turn it on; others (or empty ones) alone do nothing, however wrong.
    assert_eq!(
        env_only(&[
            (ENDPOINT, ""),
            (
                "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
                "http://127.0.0.1:1/logs"
            ),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"),
        ]),
        None
    );
    let base = env_only(&[(ENDPOINT, "http://localhost:4318")]);
    assert_eq!(base, Some(default_export()));
    let metrics = env_only(&[(
        "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
        "http://127.0.0.1:4318/custom",
    )])
    .map(|e| e.exporter.endpoints);
    assert_eq!(
        metrics,
        Some([
            Some(endpoint("http://127.0.0.1:4318/custom")),
            Some(endpoint("http://localhost:4318/v1/logs")),
            None,
        ])
    );
}

#[test]
fn every_variable_is_read() {
    let pem = "src/agent/config/testdata/tls/client.pem";
    let vars = [
        (ENDPOINT, "http://collector.internal:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        (
            "OTEL_EXPORTER_OTLP_HEADERS",
            "Authorization=Basic%20YWxh%3D%3D , x-tenant = a%2Cb",
        ),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        (
            "OTEL_EXPORTER_OTLP_CERTIFICATE",
            "src/agent/config/testdata/tls/ca.pem",
        ),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", pem),
        (
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            "src/agent/config/testdata/tls/client-key.pem",
        ),
        ("OTEL_EXPORTER_OTLP_INSECURE", "TRUE"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "30000"),
    ];
    let Some(OtlpExport {
        exporter: e,
        profiles,
    }) = env_only(&vars)
    else {
        panic!("no export");
    };
    assert_eq!(profiles, None);
    assert_eq!(e.protocol, Protocol::Grpc);
    let collector = Some(endpoint("http://collector.internal:4317"));
    assert_eq!(e.endpoints, [collector.clone(), collector, None]);
    assert_eq!(
        e.headers,
        [
            ("authorization".to_owned(), "Basic YWxh==".to_owned()),
            ("x-tenant".to_owned(), "a,b".to_owned()),
        ]
    );
    assert_eq!(e.compression, Compression::Gzip);
    assert_eq!(e.timeout, Duration::from_millis(2500));
    assert_eq!(e.interval, Duration::from_secs(30));
    assert_eq!(
        e.tls.ca_file.as_deref(),
        Some(Path::new("src/agent/config/testdata/tls/ca.pem"))
    );
    assert_eq!(e.tls.cert_file.as_deref(), Some(Path::new(pem)));
    assert!(e.tls.key_file.is_some() && e.tls.insecure);
}

#[test]
fn http_signal_paths_are_added_to_the_base_but_not_to_signal_endpoints() {
    let section = "exporters:\n  otlp: { signals: { profiles: true } }\n";
    let vars = [
        (ENDPOINT, "https://otlp.example/prefix"),
        (
            "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
            "https://logs.example/ingest",
        ),
    ];
    let urls =
        export(section, &vars).map(|e| e.exporter.endpoints.map(|u| u.map(|u| u.to_string())));
    assert_eq!(
        urls,
        Some([
            Some("https://otlp.example/prefix/v1/metrics".to_owned()),
            Some("https://logs.example/ingest".to_owned()),
            Some("https://otlp.example/prefix/v1development/profiles".to_owned()),
        ])
    );
}

#[test]
fn the_file_wins_and_the_environment_fills_the_rest() {
    let file = "exporters:\n  otlp:\n    protocol: grpc\n    timeout: 3s\n    \
                headers: { x-api-key: from-file }\n";
    let vars = [
        (ENDPOINT, "http://127.0.0.1:4317"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "not even a number"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "X-API-KEY=from-env,x-env=1"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip"),
    ];
    let Some(e) = export(file, &vars).map(|e| e.exporter) else {
        panic!("no export");
    };
    assert_eq!(e.protocol, Protocol::Grpc);
    assert_eq!(e.timeout, Duration::from_secs(3));
    assert_eq!(e.compression, Compression::Gzip);
    assert_eq!(e.endpoints[0], Some(endpoint("http://127.0.0.1:4317")));
    assert_eq!(
        e.headers,
        [
            ("x-api-key".to_owned(), "from-file".to_owned()),
            ("x-env".to_owned(), "1".to_owned()),
        ]
    );
    // Where data goes is one setting: the file's endpoint keeps every signal.
    let file = "exporters:\n  otlp: { endpoint: \"http://[::1]:4318\" }\n";
    let vars = [
        (ENDPOINT, "http://127.0.0.1:1"),
        (
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "http://127.0.0.1:2/m",
        ),
    ];
    let urls = export(file, &vars).map(|e| e.exporter.endpoints);
    assert_eq!(
        urls,
        Some([
            Some(endpoint("http://[::1]:4318/v1/metrics")),
            Some(endpoint("http://[::1]:4318/v1/logs")),
            None
        ])
    );
    // So is the client certificate with its key.
    let pem = "src/agent/config/testdata/tls/client.pem";
    let file = format!("exporters:\n  otlp: {{ tls: {{ cert_file: {pem}, key_file: {pem} }} }}\n");
    let vars = [("OTEL_EXPORTER_OTLP_CLIENT_KEY", "/no/such/key.pem")];
    let tls = export(&file, &vars).map(|e| e.exporter.tls);
    assert_eq!(tls.and_then(|t| t.key_file), Some(pem.into()));
}

#[test]
fn enabled_false_beats_the_environment() {
    let vars = [
        (ENDPOINT, "http://collector:4318"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
    ];
    assert_eq!(
        export("exporters:\n  otlp: { enabled: false }\n", &vars),
        None
    );
    // An empty `otlp:` is no section: the environment decides.
    let [error, _] = refused("exporters:\n  otlp:\n", &vars);
    assert_eq!(error.variable(), Some("OTEL_EXPORTER_OTLP_PROTOCOL"));
}

#[test]
fn sdk_disabled_turns_off_export_unless_the_file_says_enabled_true() {
    let endpoint_only = [(ENDPOINT, "http://127.0.0.1:4318")];
    let with = |value: &'static str| [endpoint_only[0], ("OTEL_SDK_DISABLED", value)];
    let config = |text: &str, vars: &[(&str, &str)]| {
        AgentConfig::parse(text, Path::new("agent.yaml"), &env(vars))
            .unwrap_or_else(|e| panic!("refused: {e}"))
    };
    let section = "exporters:\n  otlp:\n    endpoint: http://127.0.0.1:4317\n";
    let enabled = "exporters:\n  otlp:\n    enabled: true\n    endpoint: http://127.0.0.1:4317\n";
    // Off, from the environment alone and from a section that does not say `enabled`, and
    // said so.
    for value in ["true", "TRUE", " True "] {
        let alone = AgentConfig::from_environment(&env(&with(value))).unwrap();
        assert_eq!(alone.exporters.otlp, None, "OTEL_SDK_DISABLED={value:?}");
        assert!(alone.exporters.sdk_disabled);
        let from_file = config(section, &with(value));
        assert_eq!(
            from_file.exporters.otlp, None,
            "OTEL_SDK_DISABLED={value:?}"
        );
        assert!(from_file.exporters.sdk_disabled);
    }
    // `false`, empty or unset change nothing.
    for vars in [&with("false")[..], &with("")[..], &endpoint_only[..]] {
        assert!(env_only(vars).is_some(), "{vars:?}");
        let from_file = config(section, vars);
        assert!(from_file.exporters.otlp.is_some(), "{vars:?}");
        assert!(!from_file.exporters.sdk_disabled);
    }
    // The file's own `enabled: true` wins, as the file wins over every variable.
    let forced = config(enabled, &with("true"));
    assert!(forced.exporters.otlp.is_some());
    assert!(!forced.exporters.sdk_disabled);
    // Nothing asked for export: nothing to turn off, and the variable is not even read.
    let nothing = AgentConfig::from_environment(&env(&[("OTEL_SDK_DISABLED", "1")])).unwrap();
    assert_eq!(nothing.exporters.otlp, None);
    assert!(!nothing.exporters.sdk_disabled);
    // A section turned off this way is still checked, like `enabled: false`.
    let error = AgentConfig::parse(
        "exporters:\n  otlp:\n    endpoint: collector:4317\n",
        Path::new("agent.yaml"),
        &env(&[("OTEL_SDK_DISABLED", "true")]),
    )
    .expect_err("a bad endpoint under OTEL_SDK_DISABLED");
    assert!(
        error.to_string().contains("exporters.otlp.endpoint"),
        "{error}"
    );
    // Anything but true or false is refused, naming the variable: an operator who wrote `1`
    // meant "off", and exporting anyway would be the surprise.
    check(
        &with("1"),
        "OTEL_SDK_DISABLED",
        "environment variable OTEL_SDK_DISABLED: \"1\" is not a boolean; set true or false",
    );
}

#[test]
fn wrong_variables_are_named_with_their_value() {
    let on = (ENDPOINT, "http://127.0.0.1:4318");
    let cases: [(&str, &str, &str); 11] = [
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "\"http/json\" is not supported: use grpc or http/protobuf"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc/protobuf", "unknown protocol \"grpc/protobuf\"; use grpc or http/protobuf"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "10s", "\"10s\" is not a whole number of milliseconds; use whole milliseconds from 100 to 300000 (100ms to 5m)"),
        ("OTEL_EXPORTER_OTLP_TIMEOUT", "50", "\"50\" is out of range; use whole milliseconds from 100 to 300000 (100ms to 5m)"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "7200000", "\"7200000\" is out of range; use whole milliseconds from 100 to 3600000 (100ms to 1h)"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "1000", "1s is shorter than the agent's collection interval (5s): exports in between would repeat the same collection; use at least 5s"),
        ("OTEL_EXPORTER_OTLP_COMPRESSION", "zstd", "\"zstd\" is not a compression; set gzip or none"),
        ("OTEL_EXPORTER_OTLP_INSECURE", "yes", "\"yes\" is not a boolean; set true or false"),
        ("OTEL_EXPORTER_OTLP_CERTIFICATE", "/no/such/ca.pem", "cannot read \"/no/such/ca.pem\": No such file or directory (os error 2); give the path of a PEM file goroscope can read"),
        ("OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", "src/agent/config/testdata/tls/client.pem", "a client certificate needs its private key: set OTEL_EXPORTER_OTLP_CLIENT_KEY too, or remove OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
        ("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key:secret", "entry 1 has no `=`; write name=value pairs separated by commas, like x-api-key=SECRET,x-tenant=a (values percent-encoded)"),
    ];
    for (variable, value, message) in cases {
        check(
            &[on, (variable, value)],
            variable,
            &format!("environment variable {variable}: {message}"),
        );
    }
    check(
        &[(ENDPOINT, "collector:4317")],
        ENDPOINT,
        "environment variable OTEL_EXPORTER_OTLP_ENDPOINT: `collector:4317`: the scheme must be http (plaintext) or https (TLS)",
    );
    check(
        &[(ENDPOINT, "http://collector:4318")],
        ENDPOINT,
        "environment variable OTEL_EXPORTER_OTLP_ENDPOINT: \"http://collector:4318\" is plaintext (http://) to a host that is not loopback: metrics would cross the network in clear text; use https://, or accept that with tls.insecure: true (OTEL_EXPORTER_OTLP_INSECURE=true)",
    );
    check(
        &[on, ("OTEL_EXPORTER_OTLP_HEADERS", "ok=1,x-bad=a%0D%0Ab")],
        "OTEL_EXPORTER_OTLP_HEADERS",
        "environment variable OTEL_EXPORTER_OTLP_HEADERS: the value of \"x-bad\" is not a valid HTTP header value (the value is not repeated here): use visible ASCII and spaces, no line breaks or control characters",
    );
    let not_utf8 = |name: &str| -> Option<OsString> {
        use std::os::unix::ffi::OsStringExt;
        match name {
            ENDPOINT => Some(OsString::from_vec(b"http://127.0.0.1:\xff".to_vec())),
            _ => None,
        }
    };
    let error = AgentConfig::from_environment(&not_utf8).expect_err("not UTF-8");
    assert_eq!(
        error.to_string(),
        "environment variable OTEL_EXPORTER_OTLP_ENDPOINT: is not UTF-8 text; set it to a value goroscope can read, or unset it"
    );
}

#[test]
fn signal_specific_settings_must_agree() {
    let on = (ENDPOINT, "http://127.0.0.1:4317");
    // Agreeing signal-specific values are one setting.
    let agreed = env_only(&[
        on,
        ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc"),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
        ("OTEL_EXPORTER_OTLP_PROFILES_PROTOCOL", "http/json"), // profiles are not sent
    ]);
    assert_eq!(agreed.map(|e| e.exporter.protocol), Some(Protocol::Grpc));
    check(
        &[
            on,
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/protobuf"),
        ],
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
        "environment variable OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: metrics use OTEL_EXPORTER_OTLP_PROTOCOL=\"grpc\" but logs use OTEL_EXPORTER_OTLP_LOGS_PROTOCOL=\"http/protobuf\": goroscope sends every signal with the same setting; give the signals the same value, or set only OTEL_EXPORTER_OTLP_PROTOCOL",
    );
    // Secrets are not repeated.
    check(
        &[on, ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "x-api-key=hunter2")],
        "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
        "environment variable OTEL_EXPORTER_OTLP_METRICS_HEADERS: metrics use OTEL_EXPORTER_OTLP_METRICS_HEADERS but logs have none: goroscope sends every signal with the same setting; give the signals the same value, or set only OTEL_EXPORTER_OTLP_HEADERS",
    );
}
