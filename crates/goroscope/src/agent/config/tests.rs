//! Tests of the config file as a whole: the defaults, a full file, the shipped example,
//! loading, targets and reloads. Malformed files are in `tests_malformed`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use goroscope_otlp::{Compression, Endpoint, ExporterConfig, Protocol, Tls};

use super::*;

const EXAMPLE: &str = include_str!("../../../../../config/agent.example.yaml");
const FULL: &str = include_str!("testdata/full.yaml");

/// An environment with no variables set.
pub(super) fn no_env(_: &str) -> Option<std::ffi::OsString> {
    None
}

#[track_caller]
pub(super) fn parsed(text: &str) -> AgentConfig {
    AgentConfig::parse(text, Path::new("agent.yaml"), &no_env)
        .unwrap_or_else(|e| panic!("refused: {e}"))
}

#[track_caller]
pub(super) fn refused(text: &str) -> ConfigError {
    match AgentConfig::parse(text, Path::new("agent.yaml"), &no_env) {
        Ok(config) => panic!("accepted {text:?} as {config:?}"),
        Err(error) => error,
    }
}

/// Checks where the error points and its whole text.
#[track_caller]
pub(super) fn check(text: &str, line: usize, field: Option<&str>, display: &str) {
    let error = refused(text);
    assert_eq!(error.to_string(), display);
    assert_eq!(error.line(), Some(line), "{error}");
    assert_eq!(error.field(), field, "{error}");
    assert_eq!(error.path(), Some(Path::new("agent.yaml")));
}

#[track_caller]
pub(super) fn endpoint(url: &str) -> Endpoint {
    Endpoint::parse(url).unwrap_or_else(|e| panic!("{url}: {e}"))
}

#[track_caller]
fn glob(pattern: &str, kind: GlobKind) -> Glob {
    Glob::new(pattern, kind).unwrap_or_else(|e| panic!("{pattern:?}: {e}"))
}

fn without_source(config: AgentConfig) -> AgentConfig {
    AgentConfig {
        source: ConfigSource::Defaults,
        ..config
    }
}

#[test]
fn defaults_are_the_documented_ones() {
    let d = AgentConfig::defaults();
    assert_eq!(d.listen, "127.0.0.1:9949".parse::<SocketAddr>().unwrap());
    assert_eq!(d.interval, Duration::from_secs(5));
    let c = &d.collectors;
    assert!(c.syscalls.enabled && c.processes.enabled && c.files.enabled);
    assert!(c.scheduler.enabled && c.tcp.enabled && c.tcp.edges && c.network.enabled);
    assert!(c.network.includes("eth0") && !c.network.includes("lo"));
    assert_eq!(
        c.go,
        GoCollector {
            enabled: true,
            interval: Duration::from_secs(10),
            max_processes: 64,
            leak_after: Duration::from_secs(120),
            discover_every: Duration::from_secs(30),
        }
    );
    assert!(d.targets.is_all());
    assert_eq!(
        d.labels,
        LabelSet {
            pid: false,
            cgroup: true,
            container_id: false
        }
    );
    assert_eq!(d.histograms.buckets_per_octave, 1);
    assert_eq!(d.histograms.min, Duration::from_micros(1));
    assert_eq!(d.histograms.max, Duration::from_secs(100));
    assert_eq!(d.limits.max_series_per_family, 10_000);
    assert_eq!(d.limits.max_tcp_edges, 2_000);
    assert!(d.self_monitoring.bpf_stats);
    assert_eq!(d.exporters.otlp, None);
    assert_eq!(d.source, ConfigSource::Defaults);
}

#[test]
fn the_example_file_documents_the_defaults_truthfully() {
    let example = parsed(EXAMPLE);
    assert_eq!(example.source, ConfigSource::File("agent.yaml".into()));
    assert_eq!(without_source(example), AgentConfig::defaults());
}

#[test]
fn empty_files_and_empty_fields_mean_the_defaults() {
    for text in [
        "",
        "\n",
        "# nothing set\n",
        "{}",
        "~",
        "collectors:\ninterval:\n",
    ] {
        assert_eq!(
            without_source(parsed(text)),
            AgentConfig::defaults(),
            "{text:?}"
        );
    }
}

#[test]
fn a_full_file_sets_every_field() {
    let name = |p: &str| glob(p, GlobKind::Name);
    let expected = AgentConfig {
        listen: "[::]:9100".parse().unwrap(),
        interval: Duration::from_secs(90),
        collectors: Collectors {
            syscalls: SyscallsCollector {
                enabled: false,
                timed_calls: Timing::default(),
            },
            processes: Toggle { enabled: false },
            files: Toggle { enabled: false },
            scheduler: Toggle { enabled: false },
            tcp: TcpCollector {
                enabled: true,
                edges: false,
                edge_idle: Duration::from_secs(300),
            },
            network: NetworkCollector {
                enabled: true,
                interfaces: vec![name("eth*"), name("ens?")],
                exclude: vec![name("docker*"), name("veth*")],
            },
            go: GoCollector {
                enabled: false,
                interval: Duration::from_millis(500),
                max_processes: 8,
                leak_after: Duration::from_secs(30),
                discover_every: Duration::from_secs(60),
            },
        },
        targets: Targets {
            pids: vec![1234, 4321],
            comms: vec![name("nginx"), name("api-*")],
            cgroups: vec![
                glob("/system.slice/*", GlobKind::Path),
                glob("/kubepods.slice/**", GlobKind::Path),
            ],
        },
        labels: LabelSet {
            pid: true,
            cgroup: false,
            container_id: true,
        },
        histograms: Histograms {
            buckets_per_octave: 4,
            min: Duration::from_micros(10),
            max: Duration::from_secs(1),
        },
        limits: Limits {
            max_series_per_family: 1_000_000,
            max_tcp_edges: 500,
        },
        self_monitoring: SelfMonitoring { bpf_stats: false },
        exporters: Exporters {
            otlp: Some(OtlpExport {
                exporter: ExporterConfig {
                    protocol: Protocol::Grpc,
                    endpoints: [
                        Some(endpoint("http://collector.example:4317/")),
                        None,
                        Some(endpoint("https://profiles.example:4317")),
                    ],
                    headers: vec![
                        ("x-api-key".to_owned(), "secret".to_owned()),
                        ("x-tenant".to_owned(), "42".to_owned()),
                    ],
                    compression: Compression::Gzip,
                    timeout: Duration::from_secs(5),
                    interval: Duration::from_secs(120),
                    tls: Tls {
                        ca_file: Some("src/agent/config/testdata/tls/ca.pem".into()),
                        cert_file: Some("src/agent/config/testdata/tls/client.pem".into()),
                        key_file: Some("src/agent/config/testdata/tls/client-key.pem".into()),
                        insecure: true,
                    },
                    queue_bytes: 16 << 20,
                    batch_bytes: 1 << 20,
                    max_elapsed: Duration::from_secs(600),
                },
                profiles: Some(ProfileExport {
                    every: Duration::from_secs(120),
                    duration: Duration::from_secs(30),
                }),
            }),
            sdk_disabled: false,
        },
        source: ConfigSource::File("full.yaml".into()),
    };
    let full = AgentConfig::parse(FULL, Path::new("full.yaml"), &no_env).unwrap();
    assert_eq!(full, expected);
}

#[test]
fn load_reads_the_file_or_says_why_not() {
    let dir = std::env::temp_dir().join(format!("goroscope-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let good = dir.join("agent.yaml");
    std::fs::write(&good, "interval: 1s\n").unwrap();
    let config = AgentConfig::load(&good, &no_env).unwrap();
    assert_eq!(config.interval, Duration::from_secs(1));
    assert_eq!(config.source, ConfigSource::File(good.clone()));

    let latin1 = dir.join("latin1.yaml");
    std::fs::write(&latin1, b"listen: \"127.0.0.1:9949\"\n# caf\xe9\n").unwrap();
    let error = AgentConfig::load(&latin1, &no_env).unwrap_err();
    assert_eq!((error.line(), error.column()), (Some(2), Some(6)));
    assert_eq!(error.message(), "not UTF-8 text; save the file as UTF-8");

    let missing = AgentConfig::load(Path::new("no/such/agent.yaml"), &no_env).unwrap_err();
    assert_eq!(
        missing.to_string(),
        "no/such/agent.yaml: cannot read: No such file or directory (os error 2)"
    );
    assert_eq!((missing.line(), missing.field()), (None, None));
    assert!(std::error::Error::source(&missing).is_some());
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
fn targets_match_pids_or_names_or_cgroups() {
    let all = Targets::default();
    assert!(all.is_all() && all.matches(7, "anything", "/"));

    let t = parsed("targets: { pids: [42], comms: [\"api-*\"], cgroups: [\"/a/*\"] }").targets;
    assert!(!t.is_all());
    assert!(t.matches(42, "bash", "/x"));
    assert!(t.matches(1, "api-gw\n", "/x"));
    assert!(t.matches(1, "bash", "/a/b"));
    assert!(!t.matches(1, "bash", "/a/b/c"));

    let pids = parsed("targets: { pids: [9, 3, 9] }").targets;
    assert_eq!(pids.pids, [3, 9]);
    assert!(pids.matches(3, "x", "/") && !pids.matches(4, "x", "/"));
}

#[test]
fn only_listen_needs_a_restart() {
    let running = AgentConfig::defaults();
    let mut new = parsed(FULL);
    assert!(new.exporters.otlp.is_some() && running.exporters.otlp.is_none());
    new.listen = running.listen;
    assert!(running.restart_required(&new).is_empty());
    assert!(new.restart_required(&running).is_empty());
    new.listen = "0.0.0.0:9949".parse().unwrap();
    assert_eq!(
        running.restart_required(&new),
        [
            "listen changed from 127.0.0.1:9949 to 0.0.0.0:9949: the metrics server keeps \
          serving on 127.0.0.1:9949 until goroscope agent is restarted"
        ]
    );
}

#[test]
fn timed_calls_is_a_rate_or_all() {
    let timing = |text: &str| parsed(text).collectors.syscalls.timed_calls;
    assert_eq!(
        timing("collectors:\n  syscalls: { timed_calls: 500 }\n"),
        Timing::PerThreadPerSecond(500)
    );
    assert_eq!(
        timing("collectors:\n  syscalls: { timed_calls: all }\n"),
        Timing::EveryCall
    );
    assert_eq!(timing("collectors:\n  syscalls: {}\n"), Timing::default());
    for bad in ["0", "every", "-5", "1.5"] {
        let error = refused(&format!(
            "collectors:\n  syscalls: {{ timed_calls: {bad} }}\n"
        ));
        assert_eq!(error.line(), Some(2), "{error}");
        assert_eq!(
            error.field(),
            Some("collectors.syscalls.timed_calls"),
            "{error}"
        );
        assert!(error.to_string().contains("or `all`"), "{error}");
    }
}
