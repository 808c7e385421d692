//! An in-process fake OTLP server for the exporter's tests: OTLP/HTTP (hyper, HTTP/1.1) or
//! OTLP/gRPC (hyper, HTTP/2, gRPC framing by hand so the test sees the wire as sent), with
//! or without TLS (and client certificates). It records every request — path, headers,
//! whether it was compressed, the decompressed body, when — and answers from a script
//! (success by default): partial success, an HTTP status with `Retry-After`, a gRPC status
//! with `RetryInfo`, or no answer at all. Also the test certificates (rcgen).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::convert::Infallible;
use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdListener};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use prost::Message;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::Notify;

/// Which protocol the fake speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Http,
    Grpc,
}

/// One answer.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Success, nothing rejected.
    Ok,
    /// Success with a partial success rejecting this many items (metrics).
    Partial(i64, &'static str),
    /// An HTTP status, with `Retry-After` if given.
    Http(u16, Option<&'static str>),
    /// A gRPC status, with `RetryInfo` of this delay if given.
    Grpc(tonic::Code, Option<Duration>),
    /// Never answer.
    Hang,
}

/// A request as received.
#[derive(Clone, Debug)]
pub struct Received {
    pub at: Instant,
    pub path: String,
    pub headers: HeaderMap,
    /// Whether the body was compressed (HTTP `Content-Encoding: gzip`; gRPC flag set and
    /// `grpc-encoding: gzip`).
    pub gzip: bool,
    /// The request, decompressed.
    pub body: Vec<u8>,
}

/// TLS for the fake: its certificate, and the authority client certificates must chain to.
pub struct ServerTls {
    pub cert_pem: String,
    pub key_pem: String,
    pub client_ca_pem: Option<String>,
}

struct State {
    received: Mutex<Vec<Received>>,
    script: Mutex<VecDeque<Reply>>,
    kind: Kind,
}

/// A running fake server; stopped on drop.
pub struct Fake {
    pub addr: SocketAddr,
    state: Arc<State>,
    stop: Arc<Notify>,
    thread: Option<JoinHandle<()>>,
}

/// A loopback address nothing listens on (yet).
pub fn free_addr() -> SocketAddr {
    let listener = StdListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a free port");
    listener.local_addr().expect("local address")
}

impl Fake {
    /// A plaintext fake on a free port.
    pub fn start(kind: Kind) -> Fake {
        Fake::start_on(kind, free_addr(), None)
    }

    /// A fake on `addr`, with TLS if given.
    pub fn start_on(kind: Kind, addr: SocketAddr, tls: Option<ServerTls>) -> Fake {
        let listener = StdListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let acceptor = tls.map(|tls| acceptor(kind, &tls));
        let state = Arc::new(State {
            received: Mutex::new(Vec::new()),
            script: Mutex::new(VecDeque::new()),
            kind,
        });
        let stop = Arc::new(Notify::new());
        let thread = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fake server runtime");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("tokio listener");
                    tokio::select! {
                        () = accept(listener, state, acceptor) => {}
                        () = stop.notified() => {}
                    }
                });
                runtime.shutdown_background();
            })
        };
        Fake {
            addr,
            state,
            stop,
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Answers the next requests with `replies`, in order (then success).
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.state.script.lock().expect("script").extend(replies);
    }

    /// Everything received so far.
    pub fn received(&self) -> Vec<Received> {
        self.state.received.lock().expect("received").clone()
    }

    /// Waits up to `timeout` for `n` requests.
    #[track_caller]
    pub fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let give_up = Instant::now() + timeout;
        loop {
            let received = self.received();
            if received.len() >= n {
                return received;
            }
            if Instant::now() >= give_up {
                panic!(
                    "the fake server received {} requests within {timeout:?}, not {n}",
                    received.len()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.notify_one();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn acceptor(kind: Kind, tls: &ServerTls) -> tokio_rustls::TlsAcceptor {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(tls.cert_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("server certificate PEM");
    let key = PrivateKeyDer::from_pem_slice(tls.key_pem.as_bytes()).expect("server key PEM");
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .expect("protocol versions");
    let builder = match &tls.client_ca_pem {
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(cert.expect("client CA PEM")).expect("client CA");
            }
            let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
                Arc::new(roots),
                provider,
            )
            .build()
            .expect("client verifier");
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .expect("server certificate");
    config.alpn_protocols = match kind {
        Kind::Grpc => vec![b"h2".to_vec()],
        Kind::Http => vec![b"http/1.1".to_vec()],
    };
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

async fn accept(
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let state = Arc::clone(&state);
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            match acceptor {
                Some(acceptor) => {
                    // A handshake the client aborts (wrong CA) simply ends the connection.
                    if let Ok(stream) = acceptor.accept(stream).await {
                        serve(TokioIo::new(stream), state).await;
                    }
                }
                None => serve(TokioIo::new(stream), state).await,
            }
        });
    }
}

async fn serve<I>(io: I, state: Arc<State>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let kind = state.kind;
    let service = service_fn(move |request| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(handle(request, state).await) }
    });
    let _ = match kind {
        Kind::Http => {
            hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await
        }
        Kind::Grpc => {
            hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                .serve_connection(io, service)
                .await
        }
    };
}

async fn handle(request: Request<Incoming>, state: Arc<State>) -> Response<Frames> {
    let (parts, body) = request.into_parts();
    let raw = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let (gzip, body) = match state.kind {
        Kind::Http => {
            let gzip = parts
                .headers
                .get("content-encoding")
                .is_some_and(|v| v == "gzip");
            (gzip, if gzip { gunzip(&raw) } else { raw.to_vec() })
        }
        Kind::Grpc => {
            let mut frame = raw.clone();
            assert!(frame.len() >= 5, "a gRPC request without a message frame");
            let flag = frame.get_u8();
            let len = frame.get_u32() as usize;
            assert_eq!(frame.len(), len, "the gRPC frame length is wrong");
            let declared = parts
                .headers
                .get("grpc-encoding")
                .is_some_and(|v| v == "gzip");
            assert_eq!(
                flag == 1,
                declared,
                "compressed flag and grpc-encoding disagree"
            );
            (
                flag == 1,
                if flag == 1 {
                    gunzip(&frame)
                } else {
                    frame.to_vec()
                },
            )
        }
    };
    state.received.lock().expect("received").push(Received {
        at: Instant::now(),
        path: parts.uri.path().to_owned(),
        headers: parts.headers,
        gzip,
        body,
    });
    let reply = state
        .script
        .lock()
        .expect("script")
        .pop_front()
        .unwrap_or(Reply::Ok);
    if let Reply::Hang = reply {
        std::future::pending::<()>().await;
    }
    match state.kind {
        Kind::Http => http_reply(reply),
        Kind::Grpc => grpc_reply(reply),
    }
}

fn success_body(reply: &Reply) -> Vec<u8> {
    use opentelemetry_proto::tonic::collector::metrics::v1::{
        ExportMetricsPartialSuccess, ExportMetricsServiceResponse,
    };
    let partial_success = match reply {
        Reply::Partial(rejected, message) => Some(ExportMetricsPartialSuccess {
            rejected_data_points: *rejected,
            error_message: (*message).to_owned(),
        }),
        _ => None,
    };
    ExportMetricsServiceResponse { partial_success }.encode_to_vec()
}

fn http_reply(reply: Reply) -> Response<Frames> {
    let mut response = Response::new(Frames::default());
    response.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/x-protobuf"),
    );
    match reply {
        Reply::Http(status, retry_after) => {
            *response.status_mut() = StatusCode::from_u16(status).expect("status");
            if let Some(after) = retry_after {
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from_static(after));
            }
            let status = tonic_types::Status {
                code: 3,
                message: format!("fake refuses with {status}"),
                details: vec![],
            };
            response
                .body_mut()
                .0
                .push_back(Frame::data(status.encode_to_vec().into()));
        }
        reply => {
            response
                .body_mut()
                .0
                .push_back(Frame::data(success_body(&reply).into()));
        }
    }
    response
}

fn grpc_reply(reply: Reply) -> Response<Frames> {
    use tonic_types::{ErrorDetails, StatusExt};
    match reply {
        Reply::Grpc(code, retry) => {
            let status = match retry {
                Some(delay) => tonic::Status::with_error_details(
                    code,
                    "fake says no",
                    ErrorDetails::with_retry_info(Some(delay)),
                ),
                None => tonic::Status::new(code, "fake says no"),
            };
            // A trailers-only answer: the status in the headers.
            let mut response: Response<Frames> = status.into_http();
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/grpc"));
            response
        }
        reply => {
            let message = success_body(&reply);
            let mut frame = vec![0u8];
            frame.extend((message.len() as u32).to_be_bytes());
            frame.extend(message);
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
            let mut response = Response::new(Frames(VecDeque::from([
                Frame::data(Bytes::from(frame)),
                Frame::trailers(trailers),
            ])));
            response
                .headers_mut()
                .insert("content-type", HeaderValue::from_static("application/grpc"));
            response
        }
    }
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_end(&mut out)
        .expect("the body says gzip but is not");
    out
}

/// A response body of fixed frames.
#[derive(Default)]
pub struct Frames(VecDeque<Frame<Bytes>>);

impl http_body::Body for Frames {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        Poll::Ready(self.0.pop_front().map(Ok))
    }
}

/// A test certificate authority and certificates it signs, written as PEM files in a
/// fresh directory.
pub struct Pki {
    pub dir: PathBuf,
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Pki {
    /// A new authority named `name`.
    pub fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!(
            "goroscope-otlp-{name}-{}-{}",
            std::process::id(),
            unique()
        ));
        std::fs::create_dir_all(&dir).expect("pki directory");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            format!("goroscope test CA {name}"),
        );
        let key = rcgen::KeyPair::generate().expect("CA key");
        let ca = rcgen::CertifiedIssuer::self_signed(params, key).expect("CA certificate");
        let pki = Pki { dir, ca };
        std::fs::write(pki.ca_file(), pki.ca.pem()).expect("write CA");
        pki
    }

    /// The authority's PEM file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The authority's certificate as PEM.
    pub fn ca_pem(&self) -> String {
        self.ca.pem()
    }

    /// A certificate for 127.0.0.1 and localhost: (certificate PEM, key PEM), also written
    /// to `<name>.pem` and `<name>-key.pem`.
    pub fn issue(&self, name: &str) -> (String, String) {
        let params =
            rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
                .expect("leaf params");
        let key = rcgen::KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca).expect("leaf certificate");
        let (cert_pem, key_pem) = (cert.pem(), key.serialize_pem());
        std::fs::write(self.path(&format!("{name}.pem")), &cert_pem).expect("write cert");
        std::fs::write(self.path(&format!("{name}-key.pem")), &key_pem).expect("write key");
        (cert_pem, key_pem)
    }

    /// A file in the directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A number not used before in this process.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}
