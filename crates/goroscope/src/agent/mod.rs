//! `goroscope agent`: continuous collection served as Prometheus metrics.

#[allow(dead_code)]
pub mod config;
