//! Delivery of OTLP to an OpenTelemetry Collector (or any OTLP server).
//!
//! The agent hands requests to an [`Exporter`] and goes on: sending runs on a thread of its
//! own, behind a queue bounded in bytes, so a slow or dead server never blocks collection or
//! scraping and never grows memory without bound. Every request is counted as sent, retried,
//! rejected by the server or dropped, by signal and reason, in [`ExportStats`].
//!
//! [`config`] is the settled configuration the agent's YAML and the standard
//! `OTEL_EXPORTER_OTLP_*` variables are read into. The pieces: [`batch`] (requests and their
//! items), `queue` (the bound), `worker` (sending and retrying), `transport` (one attempt
//! over gRPC or HTTP), `retry` (the spec's rules), `tls`, `log` (rate-limited stderr).

pub mod batch;
pub mod config;
mod error;
mod exporter;
mod log;
mod queue;
mod retry;
mod split;
mod stats;
mod tls;
mod transport;
mod worker;

pub use batch::Batch;
pub use config::{Compression, Endpoint, EndpointError, ExporterConfig, Protocol, Signal, Tls};
pub use error::ExportError;
pub use exporter::Exporter;
pub use stats::{DropReason, ExportStats, SignalSnapshot, StatsSnapshot};
