//! goroscope's outputs: the Prometheus exposition (collected values in, the
//! Prometheus text format 0.0.4 or OpenMetrics 1.0.0 text out) and the profile
//! outputs (a [`goroscope_model::profile::Profile`] in, pprof protobuf, folded
//! stacks, an SVG flame graph or a top table out; see [`ProfileFormat`]) and the
//! self-contained HTML report of a recording ([`report::render_html`]), and
//! OTLP metrics from the same families ([`otlp::metrics_request`]).
//!
//! Pure and allocation-conscious: a scrape fills [`Family`]s, pushes them
//! into an [`Exposition`] (which sorts, merges and deduplicates), optionally
//! caps series, and renders into a reused buffer in the [`Format`] chosen by
//! [`Format::negotiate`]. Latency histograms come from the kernel's
//! quarter-octave buckets through a [`BucketLayout`], exactly.
//!
//! ```
//! use goroscope_export::{Exposition, Family, Format, Labels};
//!
//! let mut syscalls = Family::counter("goroscope_syscalls_total", "Syscalls made.");
//! syscalls.add_counter(Labels::new().push("comm", "api"), 1234.0);
//! let mut exposition = Exposition::new();
//! exposition.push(syscalls);
//! let mut out = Vec::new();
//! exposition.render(Format::negotiate(Some("*/*")), &mut out);
//! let text = String::from_utf8(out).unwrap();
//! let lines: Vec<&str> = text.lines().collect();
//! assert_eq!(lines[0], "# HELP goroscope_syscalls_total Syscalls made.");
//! assert_eq!(lines[1], "# TYPE goroscope_syscalls_total counter");
//! assert_eq!(lines[2], r#"goroscope_syscalls_total{comm="api"} 1234"#);
//! ```

#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod escape;
mod exposition;
mod family;
mod histogram;
mod labels;
mod names;
mod negotiate;
mod number;
pub mod otlp;
mod profile;
mod render;
pub mod report;

pub use exposition::Exposition;
pub use family::{Family, MetricType};
pub use histogram::{BucketLayout, HistogramValue, LayoutError};
pub use labels::Labels;
pub use names::{is_valid_label_name, is_valid_metric_name};
pub use negotiate::Format;
pub use profile::{flame_graph, folded, pprof, top_table, FlameGraphError, ProfileFormat};

#[cfg(test)]
mod tests;
