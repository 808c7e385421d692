//! Delivery of OTLP to an OpenTelemetry Collector (or any OTLP server).
//!
//! The agent hands requests to an exporter and goes on: sending runs on a thread of its own,
//! behind a queue bounded in bytes, so a slow or dead server never blocks collection or
//! scraping and never grows memory without bound. Every request is counted as sent, retried,
//! rejected by the server or dropped, by signal and reason.
//!
//! [`config`] is the settled configuration the agent's YAML and the standard
//! `OTEL_EXPORTER_OTLP_*` variables are read into.

pub mod config;

pub use config::{Compression, Endpoint, EndpointError, ExporterConfig, Protocol, Signal, Tls};
