//! OTLP/gRPC: a unary call of the signal's `Export` method over HTTP/2, gzip as
//! `grpc-encoding`, the configured headers as metadata; tonic's client over a connection
//! this crate makes (so the same rustls settings serve both protocols). Requests are
//! already encoded, so the codec passes bytes through; the bytes put on the wire are
//! counted as the request body leaves (after compression, with gRPC's framing).

use std::error::Error as StdError;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes};
use http::uri::PathAndQuery;
use http_body_util::BodyExt;
use tonic::codec::{Codec, CompressionEncoding, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::{MetadataKey, MetadataValue};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

use super::{chain, connector, tls_failure, Failure, Outcome, Settings};
use crate::batch::partial_success;
use crate::config::{Endpoint, Signal};
use crate::retry::{self, Retry};
use crate::stats::ExportStats;

/// A client of one OTLP/gRPC endpoint.
pub(crate) struct GrpcTransport {
    client: tonic::client::Grpc<Counting>,
    endpoint: Endpoint,
    settings: Settings,
    signal: Signal,
}

impl GrpcTransport {
    /// A client of `endpoint` (its scheme, host and port); connects when first used.
    pub fn new(
        settings: &Settings,
        endpoint: &Endpoint,
        signal: Signal,
        stats: Arc<ExportStats>,
    ) -> GrpcTransport {
        let channel = tonic::transport::Endpoint::from(endpoint.uri().clone())
            .connect_timeout(settings.timeout)
            .user_agent(super::http::USER_AGENT_VALUE)
            .map(|e| e.connect_with_connector_lazy(connector(settings, true)));
        let channel = match channel {
            Ok(channel) => channel,
            // The user agent is a constant, valid header value.
            Err(_) => tonic::transport::Endpoint::from(endpoint.uri().clone())
                .connect_with_connector_lazy(connector(settings, true)),
        };
        let counting = Counting {
            channel,
            stats,
            signal,
        };
        let mut client = tonic::client::Grpc::with_origin(counting, endpoint.uri().clone());
        if settings.gzip {
            client = client
                .send_compressed(CompressionEncoding::Gzip)
                .accept_compressed(CompressionEncoding::Gzip);
        }
        GrpcTransport {
            client,
            endpoint: endpoint.clone(),
            settings: settings.clone(),
            signal,
        }
    }

    /// One `Export` call.
    pub async fn export(&self, body: &Bytes, timeout: Duration) -> Outcome {
        let mut client = self.client.clone();
        let mut request = tonic::Request::new(body.clone());
        request.set_timeout(timeout);
        for (name, value) in &self.settings.headers {
            let key = MetadataKey::from_bytes(name.as_str().as_bytes());
            let value = MetadataValue::try_from(value.as_bytes());
            if let (Ok(key), Ok(value)) = (key, value) {
                request.metadata_mut().insert(key, value);
            }
        }
        let path = PathAndQuery::from_static(self.signal.grpc_path());
        let call = async {
            client
                .ready()
                .await
                .map_err(|e| Status::from_error(Box::new(e)))?;
            client.unary(request, path, RawCodec).await
        };
        match tokio::time::timeout(timeout, call).await {
            Err(_) => Outcome::Failed(Failure {
                kind: "timeout".into(),
                message: format!("{} did not answer within {timeout:?}", self.endpoint),
                retry: Retry::After(None),
            }),
            Ok(Ok(response)) => {
                Outcome::Delivered(partial_success(self.signal, &response.into_inner()))
            }
            Ok(Err(status)) => Outcome::Failed(self.failure(&status)),
        }
    }

    /// A call that failed with `status`.
    fn failure(&self, status: &Status) -> Failure {
        if let Some(tls) = tls_failure(status) {
            return Failure {
                kind: "TLS".into(),
                message: format!(
                    "TLS with {} failed: {tls}; check tls.ca_file and the server's certificate",
                    self.endpoint
                ),
                retry: Retry::No,
            };
        }
        let delay = status
            .get_details_retry_info()
            .and_then(|info| info.retry_delay);
        let code = status.code();
        // A connection failure's own chain says more than the status message made of it.
        let said = match (code, status.source()) {
            (Code::Unavailable | Code::Unknown, Some(source)) => chain(source),
            _ => status.message().to_owned(),
        };
        Failure {
            kind: format!("gRPC {code:?}"),
            message: format!("{} answered {code:?}: {said}", self.endpoint),
            retry: retry::grpc_status(code, delay),
        }
    }
}

/// tonic's channel, counting the request bytes it sends.
#[derive(Clone)]
struct Counting {
    channel: Channel,
    stats: Arc<ExportStats>,
    signal: Signal,
}

type ChannelRequest = http::Request<tonic::body::Body>;

impl tower_service::Service<ChannelRequest> for Counting {
    type Response = <Channel as tower_service::Service<ChannelRequest>>::Response;
    type Error = <Channel as tower_service::Service<ChannelRequest>>::Error;
    type Future = <Channel as tower_service::Service<ChannelRequest>>::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.channel.poll_ready(cx)
    }

    fn call(&mut self, request: ChannelRequest) -> Self::Future {
        let (parts, body) = request.into_parts();
        let stats = Arc::clone(&self.stats);
        let signal = self.signal;
        let body = body.map_frame(move |frame| {
            if let Some(data) = frame.data_ref() {
                stats.bytes_sent(signal, data.len() as u64);
            }
            frame
        });
        self.channel.call(http::Request::from_parts(
            parts,
            tonic::body::Body::new(body),
        ))
    }
}

/// A codec of already-encoded messages: requests go out as they are, answers come back as
/// bytes (read for partial success).
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> RawCodec {
        RawCodec
    }

    fn decoder(&mut self) -> RawCodec {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}
