//! One attempt to deliver one encoded request to one signal's endpoint, over OTLP/gRPC
//! ([`grpc`]) or OTLP/HTTP ([`http`]), and what came of it: delivered (perhaps partly
//! rejected) or failed, retryably or not. Retrying is the caller's job.

mod grpc;
mod http;

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use ::http::{HeaderName, HeaderValue};
use bytes::Bytes;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use rustls::ClientConfig;

use crate::batch::PartialSuccess;
use crate::config::{Compression, Endpoint, ExporterConfig, Protocol, Signal};
use crate::error::ExportError;
use crate::retry::Retry;
use crate::stats::ExportStats;

/// What one attempt came to.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The server accepted the request (perhaps rejecting part of it).
    Delivered(PartialSuccess),
    /// It failed.
    Failed(Failure),
}

/// A failed attempt.
#[derive(Debug)]
pub(crate) struct Failure {
    /// The kind of failure, for rate-limited logging (e.g. `HTTP 503`, `connect`).
    pub kind: String,
    /// What happened, for the operator.
    pub message: String,
    /// Whether to try again.
    pub retry: Retry,
}

/// Everything a transport needs besides its endpoint, checked once per configuration.
#[derive(Clone)]
pub(crate) struct Settings {
    pub protocol: Protocol,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub gzip: bool,
    pub timeout: Duration,
    /// The TLS client configuration of `https://` endpoints.
    pub tls: Arc<ClientConfig>,
}

impl Settings {
    /// Checks `config`'s TLS files and headers.
    pub fn new(config: &ExporterConfig) -> Result<Settings, ExportError> {
        let tls = crate::tls::client_config(config)?;
        let headers = config
            .headers
            .iter()
            .map(|(name, value)| {
                let bad = || ExportError::Header { name: name.clone() };
                Ok((
                    HeaderName::try_from(name.to_ascii_lowercase()).map_err(|_| bad())?,
                    HeaderValue::try_from(value.as_str()).map_err(|_| bad())?,
                ))
            })
            .collect::<Result<_, ExportError>>()?;
        Ok(Settings {
            protocol: config.protocol,
            headers,
            gzip: config.compression == Compression::Gzip,
            timeout: config.timeout,
            tls,
        })
    }
}

/// A client of one signal's endpoint.
pub(crate) enum Transport {
    Grpc(grpc::GrpcTransport),
    Http(http::HttpTransport),
}

impl Transport {
    /// A client of `endpoint` for `signal`; connects when first used. Must run inside the
    /// sending thread's runtime.
    pub fn new(
        settings: &Settings,
        endpoint: &Endpoint,
        signal: Signal,
        stats: Arc<ExportStats>,
    ) -> Transport {
        match settings.protocol {
            Protocol::Grpc => {
                Transport::Grpc(grpc::GrpcTransport::new(settings, endpoint, signal, stats))
            }
            Protocol::HttpProtobuf => {
                Transport::Http(http::HttpTransport::new(settings, endpoint, signal, stats))
            }
        }
    }

    /// One attempt to deliver `body`, within `timeout` (`body` is shared, not copied, by
    /// every attempt).
    pub async fn export(&self, body: &Bytes, timeout: Duration) -> Outcome {
        match self {
            Transport::Grpc(t) => t.export(body, timeout).await,
            Transport::Http(t) => t.export(body, timeout).await,
        }
    }
}

/// A connector for `http://` and `https://` URLs; `http2` selects HTTP/2 (ALPN `h2`) over
/// TLS, else HTTP/1.1.
fn connector(settings: &Settings, http2: bool) -> HttpsConnector<HttpConnector> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(settings.timeout));
    let builder = HttpsConnectorBuilder::new()
        .with_tls_config(ClientConfig::clone(&settings.tls))
        .https_or_http();
    if http2 {
        builder.enable_http2().wrap_connector(http)
    } else {
        builder.enable_http1().wrap_connector(http)
    }
}

/// gzip of `body`.
fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(
        Vec::with_capacity(body.len() / 4 + 64),
        flate2::Compression::default(),
    );
    // Writing to a Vec cannot fail.
    let _ = encoder.write_all(body);
    encoder.finish().unwrap_or_default()
}

/// Whether a TLS failure is somewhere in `error`'s chain (a certificate the client does not
/// trust, or that the server refused): retrying will not help.
fn tls_failure(error: &(dyn StdError + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // An io::Error's source() skips the error it wraps (its source is the wrapped
        // error's source), and TLS errors come wrapped in io::Errors, sometimes twice.
        next = match error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn StdError + 'static)),
            None => error.source(),
        };
    }
    None
}

/// `error` and its sources, on one line.
fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        let more = source.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        next = source.source();
    }
    text
}
