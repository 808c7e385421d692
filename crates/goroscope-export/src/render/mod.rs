//! Rendering an exposition: one module per format, sharing the sample-line
//! writer here. Nothing here allocates except by growing the output buffer.

pub(crate) mod openmetrics;
pub(crate) mod text;

use crate::escape::write_escaped;
use crate::histogram::HistogramValue;
use crate::labels::Labels;
use crate::number::{write_le, write_u64, write_value};

/// The `le` label of a histogram bucket line.
#[derive(Clone, Copy)]
pub(crate) enum Le {
    /// A finite bound.
    Bound(f64),
    /// The `+Inf` bucket.
    Infinity,
}

/// Writes `name` + `suffix` and the label set (plus `le` if given), up to
/// and including the space before the value.
fn write_series(
    out: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    labels: &Labels,
    le: Option<Le>,
    openmetrics: bool,
) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(suffix.as_bytes());
    if !labels.is_empty() || le.is_some() {
        out.push(b'{');
        for (i, (label, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(label.as_bytes());
            out.extend_from_slice(b"=\"");
            write_escaped(out, value, true);
            out.push(b'"');
        }
        if let Some(le) = le {
            if !labels.is_empty() {
                out.push(b',');
            }
            out.extend_from_slice(b"le=\"");
            match le {
                Le::Bound(bound) => write_le(out, bound, openmetrics),
                Le::Infinity => out.extend_from_slice(b"+Inf"),
            }
            out.push(b'"');
        }
        out.push(b'}');
    }
    out.push(b' ');
}

/// Writes one sample line with a float value.
pub(crate) fn write_number_line(
    out: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    labels: &Labels,
    value: f64,
    openmetrics: bool,
) {
    write_series(out, name, suffix, labels, None, openmetrics);
    write_value(out, value);
    out.push(b'\n');
}

/// Writes one sample line with an integer value.
fn write_count_line(
    out: &mut Vec<u8>,
    name: &str,
    suffix: &str,
    labels: &Labels,
    le: Option<Le>,
    count: u64,
    openmetrics: bool,
) {
    write_series(out, name, suffix, labels, le, openmetrics);
    write_u64(out, count);
    out.push(b'\n');
}

/// Writes the `_bucket` lines of a histogram, ending with `le="+Inf"`.
pub(crate) fn write_bucket_lines(
    out: &mut Vec<u8>,
    name: &str,
    labels: &Labels,
    histogram: &HistogramValue,
    openmetrics: bool,
) {
    for (le, count) in histogram.finite_buckets() {
        let le = Some(Le::Bound(le));
        write_count_line(out, name, "_bucket", labels, le, count, openmetrics);
    }
    let le = Some(Le::Infinity);
    write_count_line(
        out,
        name,
        "_bucket",
        labels,
        le,
        histogram.count,
        openmetrics,
    );
}

/// Writes the `_count` line of a histogram.
pub(crate) fn write_histogram_count(
    out: &mut Vec<u8>,
    name: &str,
    labels: &Labels,
    histogram: &HistogramValue,
    openmetrics: bool,
) {
    write_count_line(
        out,
        name,
        "_count",
        labels,
        None,
        histogram.count,
        openmetrics,
    );
}

/// Writes the `_sum` line of a histogram.
pub(crate) fn write_histogram_sum(
    out: &mut Vec<u8>,
    name: &str,
    labels: &Labels,
    histogram: &HistogramValue,
    openmetrics: bool,
) {
    write_number_line(out, name, "_sum", labels, histogram.sum, openmetrics);
}

/// Writes a metadata line `# {keyword} {name} {text}`, escaping `text` when
/// it is HELP text (`escape_quote` for OpenMetrics).
pub(crate) fn write_metadata(
    out: &mut Vec<u8>,
    keyword: &str,
    name: &str,
    text: &str,
    escape: Option<bool>,
) {
    out.extend_from_slice(b"# ");
    out.extend_from_slice(keyword.as_bytes());
    out.push(b' ');
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    match escape {
        Some(escape_quote) => write_escaped(out, text, escape_quote),
        None => out.extend_from_slice(text.as_bytes()),
    }
    out.push(b'\n');
}
