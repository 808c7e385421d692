//! The exporter's settled configuration: where each signal goes, how, and within which bounds.
//! Built by the agent's config reader (YAML `exporters.otlp`, then the standard
//! `OTEL_EXPORTER_OTLP_*` variables for what the file leaves out); checked here only for what
//! the types cannot say.

use std::path::PathBuf;
use std::time::Duration;

/// The wire protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// OTLP/gRPC (HTTP/2, `application/grpc`), default port 4317.
    Grpc,
    /// OTLP/HTTP with protobuf bodies (`application/x-protobuf`), default port 4318.
    HttpProtobuf,
}

impl Protocol {
    /// The name the configuration and `OTEL_EXPORTER_OTLP_PROTOCOL` use.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Grpc => "grpc",
            Protocol::HttpProtobuf => "http/protobuf",
        }
    }

    /// The protocol called `name`.
    pub fn parse(name: &str) -> Option<Protocol> {
        match name {
            "grpc" => Some(Protocol::Grpc),
            "http/protobuf" => Some(Protocol::HttpProtobuf),
            _ => None,
        }
    }

    /// The endpoint used when none is configured.
    pub fn default_endpoint(self) -> &'static str {
        match self {
            Protocol::Grpc => "http://localhost:4317",
            Protocol::HttpProtobuf => "http://localhost:4318",
        }
    }
}

/// Body compression.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    /// None.
    None,
    /// gzip.
    Gzip,
}

/// The signals goroscope exports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Signal {
    /// Metrics (`/v1/metrics`, `MetricsService/Export`).
    Metrics,
    /// Logs: leak events (`/v1/logs`, `LogsService/Export`).
    Logs,
    /// Profiles (`/v1development/profiles`, `ProfilesService/Export`, OTLP profiles
    /// v1development).
    Profiles,
}

impl Signal {
    /// Every signal.
    pub const ALL: [Signal; 3] = [Signal::Metrics, Signal::Logs, Signal::Profiles];

    /// Its name in counters and messages.
    pub fn name(self) -> &'static str {
        match self {
            Signal::Metrics => "metrics",
            Signal::Logs => "logs",
            Signal::Profiles => "profiles",
        }
    }

    /// The path OTLP/HTTP appends to a base endpoint for this signal.
    pub fn http_path(self) -> &'static str {
        match self {
            Signal::Metrics => "/v1/metrics",
            Signal::Logs => "/v1/logs",
            Signal::Profiles => "/v1development/profiles",
        }
    }

    /// The gRPC method of this signal's export service.
    pub fn grpc_path(self) -> &'static str {
        match self {
            Signal::Metrics => "/opentelemetry.proto.collector.metrics.v1.MetricsService/Export",
            Signal::Logs => "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
            Signal::Profiles => {
                "/opentelemetry.proto.collector.profiles.v1development.ProfilesService/Export"
            }
        }
    }
}

/// Where one signal is sent: an `http://` or `https://` URL. For OTLP/HTTP it is the full URL
/// the requests are posted to; for gRPC only its scheme, host and port count.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    uri: http::Uri,
}

/// Why an endpoint is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    /// Not a URL.
    #[error("`{0}` is not a URL: write it as http://HOST:PORT or https://HOST:PORT")]
    NotAUrl(String),
    /// A scheme other than http and https.
    #[error("`{0}`: the scheme must be http (plaintext) or https (TLS)")]
    Scheme(String),
    /// No host.
    #[error("`{0}` has no host: write it as http://HOST:PORT or https://HOST:PORT")]
    NoHost(String),
}

impl Endpoint {
    /// Parses a URL as given (for a signal-specific endpoint, e.g.
    /// `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`: used as is).
    pub fn parse(url: &str) -> Result<Endpoint, EndpointError> {
        let uri: http::Uri = url
            .parse()
            .map_err(|_| EndpointError::NotAUrl(url.to_owned()))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => return Err(EndpointError::Scheme(url.to_owned())),
        }
        if uri.host().is_none_or(str::is_empty) {
            return Err(EndpointError::NoHost(url.to_owned()));
        }
        Ok(Endpoint { uri })
    }

    /// The endpoint of `signal` under a base URL (`OTEL_EXPORTER_OTLP_ENDPOINT` or the YAML
    /// `endpoint`): for OTLP/HTTP the signal's path is appended to the base's path.
    pub fn for_signal(
        base: &str,
        protocol: Protocol,
        signal: Signal,
    ) -> Result<Endpoint, EndpointError> {
        let endpoint = Endpoint::parse(base)?;
        match protocol {
            Protocol::Grpc => Ok(endpoint),
            Protocol::HttpProtobuf => {
                let joined = format!("{}{}", base.trim_end_matches('/'), signal.http_path());
                Endpoint::parse(&joined)
            }
        }
    }

    /// The URL.
    pub fn uri(&self) -> &http::Uri {
        &self.uri
    }

    /// True for `https://`.
    pub fn is_tls(&self) -> bool {
        self.uri.scheme_str() == Some("https")
    }

    /// True when the host is a loopback address or `localhost`.
    pub fn is_loopback(&self) -> bool {
        let host = self.uri.host().unwrap_or_default();
        let host = host.trim_start_matches('[').trim_end_matches(']');
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.uri)
    }
}

/// TLS settings (used by `https://` endpoints).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Tls {
    /// PEM file of the certificate authorities that may sign the server's certificate (else
    /// the system's).
    pub ca_file: Option<PathBuf>,
    /// PEM file of a client certificate (mutual TLS); needs `key_file`.
    pub cert_file: Option<PathBuf>,
    /// PEM file of the client certificate's private key.
    pub key_file: Option<PathBuf>,
    /// Allows a plaintext `http://` endpoint that is not loopback (telemetry then crosses the
    /// network in clear). Loopback endpoints may always be plaintext.
    pub insecure: bool,
}

/// The exporter's configuration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExporterConfig {
    /// The wire protocol.
    pub protocol: Protocol,
    /// Where each signal goes, in [`Signal::ALL`] order; `None` turns a signal off.
    pub endpoints: [Option<Endpoint>; 3],
    /// Headers sent with every request (e.g. an API key).
    pub headers: Vec<(String, String)>,
    /// Body compression.
    pub compression: Compression,
    /// How long one request may take before it is abandoned (and retried).
    pub timeout: Duration,
    /// How often metrics are exported (a multiple of nothing: each export sends the latest
    /// collection).
    pub interval: Duration,
    /// TLS settings.
    pub tls: Tls,
    /// Most bytes (encoded, before compression) waiting to be sent, over all signals; beyond
    /// it the oldest waiting requests are dropped and counted.
    pub queue_bytes: usize,
    /// Most bytes (encoded, before compression) in one request: waiting requests of one
    /// signal are merged up to this size.
    pub batch_bytes: usize,
    /// How long a request is retried before it is dropped and counted.
    pub max_elapsed: Duration,
}

impl ExporterConfig {
    /// The endpoint of `signal`, when it is exported.
    pub fn endpoint(&self, signal: Signal) -> Option<&Endpoint> {
        self.endpoints[signal as usize].as_ref()
    }
}

/// Default `timeout` (the OTLP exporters' default).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `interval`.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(15);
/// Default `queue_bytes`.
pub const DEFAULT_QUEUE_BYTES: usize = 8 << 20;
/// Default `batch_bytes`.
pub const DEFAULT_BATCH_BYTES: usize = 2 << 20;
/// Default `max_elapsed`.
pub const DEFAULT_MAX_ELAPSED: Duration = Duration::from_secs(300);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_endpoints_get_the_signal_path_and_grpc_ones_do_not() {
        let http = Endpoint::for_signal(
            "http://127.0.0.1:4318/",
            Protocol::HttpProtobuf,
            Signal::Metrics,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(http.to_string(), "http://127.0.0.1:4318/v1/metrics");
        let profiles = Endpoint::for_signal(
            "https://collector:4318/otlp",
            Protocol::HttpProtobuf,
            Signal::Profiles,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            profiles.to_string(),
            "https://collector:4318/otlp/v1development/profiles"
        );
        assert!(profiles.is_tls());
        assert!(!profiles.is_loopback());
        let grpc = Endpoint::for_signal("http://[::1]:4317", Protocol::Grpc, Signal::Logs)
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(grpc.is_loopback());
        assert!(!grpc.is_tls());
    }

    #[test]
    fn bad_endpoints_say_what_to_write() {
        assert!(matches!(
            Endpoint::parse("localhost:4317"),
            Err(EndpointError::Scheme(_))
        ));
        assert!(matches!(
            Endpoint::parse("ftp://host:21"),
            Err(EndpointError::Scheme(_))
        ));
        assert!(matches!(
            Endpoint::parse("http://"),
            Err(EndpointError::NotAUrl(_) | EndpointError::NoHost(_))
        ));
        assert!(matches!(
            Endpoint::parse("not a url"),
            Err(EndpointError::NotAUrl(_))
        ));
    }
}
