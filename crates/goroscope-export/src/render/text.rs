//! The Prometheus text format 0.0.4.
//!
//! Per family: `# HELP` (backslash and newline escaped; left out when empty),
//! `# TYPE`, then the samples under the full name (counters keep `_total`).
//! A histogram label set renders its cumulative `_bucket` lines with `le`
//! values as the Go client writes them (`0.001`, `1e-06`), `le="+Inf"`
//! equal to `_count`, then `_sum` and `_count`.

use super::{
    write_bucket_lines, write_histogram_count, write_histogram_sum, write_metadata,
    write_number_line,
};
use crate::family::{Family, SampleValue};

/// Renders `families` (sorted, deduplicated) into `out`.
pub(crate) fn render(families: &[Family], out: &mut Vec<u8>) {
    for family in families.iter().filter(|family| !family.is_empty()) {
        let name = family.name();
        if !family.help().is_empty() {
            write_metadata(out, "HELP", name, family.help(), Some(false));
        }
        write_metadata(out, "TYPE", name, family.metric_type().as_str(), None);
        for sample in &family.samples {
            let labels = &sample.labels;
            match &sample.value {
                SampleValue::Number(value) => {
                    write_number_line(out, name, "", labels, *value, false);
                }
                SampleValue::Histogram(histogram) => {
                    write_bucket_lines(out, name, labels, histogram, false);
                    write_histogram_sum(out, name, labels, histogram, false);
                    write_histogram_count(out, name, labels, histogram, false);
                }
            }
        }
    }
}
