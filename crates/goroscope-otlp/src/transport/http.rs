//! OTLP/HTTP with protobuf bodies: `POST` of the encoded request to the endpoint's full
//! URL, `Content-Type: application/x-protobuf`, gzip as `Content-Encoding`; a 2xx answer
//! carries the partial success, an error answer a `google.rpc.Status` and perhaps
//! `Retry-After`. hyper 1 over HTTP/1.1, TLS by rustls.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE, RETRY_AFTER, USER_AGENT};
use http::{HeaderValue, Method, Request, Uri};
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use prost::Message;

use super::{chain, connector, gzip, tls_failure, Failure, Outcome, Settings};
use crate::batch::partial_success;
use crate::config::{Endpoint, Signal};
use crate::retry::{self, Retry};
use crate::stats::ExportStats;

/// The most of an answer's body read: OTLP answers are small.
const MAX_ANSWER: usize = 64 << 10;

/// The `User-Agent` of every request.
pub(super) const USER_AGENT_VALUE: &str = concat!("goroscope/", env!("CARGO_PKG_VERSION"));

/// A client of one OTLP/HTTP endpoint.
pub(crate) struct HttpTransport {
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
    uri: Uri,
    settings: Settings,
    signal: Signal,
    stats: Arc<ExportStats>,
}

impl HttpTransport {
    /// A client of `endpoint`, the full URL requests are posted to.
    pub fn new(
        settings: &Settings,
        endpoint: &Endpoint,
        signal: Signal,
        stats: Arc<ExportStats>,
    ) -> HttpTransport {
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(60))
            .build(connector(settings, false));
        HttpTransport {
            client,
            uri: endpoint.uri().clone(),
            settings: settings.clone(),
            signal,
            stats,
        }
    }

    /// One `POST`.
    pub async fn export(&self, body: &Bytes, timeout: Duration) -> Outcome {
        let payload = if self.settings.gzip {
            Bytes::from(gzip(body))
        } else {
            body.clone()
        };
        let mut builder = Request::builder()
            .method(Method::POST)
            .uri(self.uri.clone())
            .header(CONTENT_TYPE, "application/x-protobuf")
            .header(USER_AGENT, USER_AGENT_VALUE);
        if self.settings.gzip {
            builder = builder.header(CONTENT_ENCODING, HeaderValue::from_static("gzip"));
        }
        for (name, value) in &self.settings.headers {
            builder = builder.header(name, value);
        }
        let length = payload.len() as u64;
        let request = match builder.body(Full::new(payload)) {
            Ok(request) => request,
            Err(e) => {
                return Outcome::Failed(Failure {
                    kind: "request".into(),
                    message: format!("cannot build the request to {}: {e}", self.uri),
                    retry: Retry::No,
                })
            }
        };
        self.stats.bytes_sent(self.signal, length);
        let exchange = async {
            let response = self.client.request(request).await?;
            let (parts, body) = response.into_parts();
            let body = Limited::new(body, MAX_ANSWER)
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            Ok::<_, hyper_util::client::legacy::Error>((parts, body))
        };
        let (parts, answer) = match tokio::time::timeout(timeout, exchange).await {
            Err(_) => {
                return Outcome::Failed(Failure {
                    kind: "timeout".into(),
                    message: format!("{} did not answer within {timeout:?}", self.uri),
                    retry: Retry::After(None),
                })
            }
            Ok(Err(e)) => return Outcome::Failed(self.failure(&e)),
            Ok(Ok(answer)) => answer,
        };
        if parts.status.is_success() {
            return Outcome::Delivered(partial_success(self.signal, &answer));
        }
        let delay = parts
            .headers
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| retry::retry_after(v, SystemTime::now()));
        let status = parts.status.as_u16();
        Outcome::Failed(Failure {
            kind: format!("HTTP {status}"),
            message: format!(
                "{} answered {}{}",
                self.uri,
                parts.status,
                explanation(&answer)
            ),
            retry: retry::http_status(status, delay),
        })
    }

    /// A request that got no answer.
    fn failure(&self, error: &hyper_util::client::legacy::Error) -> Failure {
        if let Some(tls) = tls_failure(error) {
            return Failure {
                kind: "TLS".into(),
                message: format!(
                    "TLS with {} failed: {tls}; check tls.ca_file and the server's certificate",
                    self.uri
                ),
                retry: Retry::No,
            };
        }
        let kind = if error.is_connect() {
            "connect"
        } else {
            "transport"
        };
        Failure {
            kind: kind.into(),
            message: format!("{}: {}", self.uri, chain(error)),
            retry: Retry::After(None),
        }
    }
}

/// The server's explanation in an error answer: the message of a `google.rpc.Status`, else
/// the start of the body as text.
fn explanation(body: &[u8]) -> String {
    if body.is_empty() {
        return String::new();
    }
    let text = match tonic_types::Status::decode(body) {
        Ok(status) if !status.message.is_empty() => status.message,
        _ => String::from_utf8_lossy(body).into_owned(),
    };
    let text: String = text.trim().chars().take(300).collect();
    format!(": {text}")
}
