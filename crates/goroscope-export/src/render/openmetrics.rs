//! OpenMetrics 1.0.0 text.
//!
//! Per family: `# TYPE`, `# UNIT` (for names ending in `_seconds` or
//! `_bytes`), `# HELP` (backslash, newline and double quote escaped; left out
//! when empty), all on the family name, which for counters is the name
//! without `_total`; counter samples carry `_total`. A histogram label set
//! renders its `_bucket` lines with canonical `le` values (`1.0`, `0.001`,
//! `1e-06`), `le="+Inf"`, then `_count` and `_sum`, as in the
//! specification's examples. The exposition ends with `# EOF`.

use super::{
    write_bucket_lines, write_histogram_count, write_histogram_sum, write_metadata,
    write_number_line,
};
use crate::family::{Family, MetricType, SampleValue};

/// Renders `families` (sorted, deduplicated) into `out`, ending with `# EOF`.
pub(crate) fn render(families: &[Family], out: &mut Vec<u8>) {
    for family in families.iter().filter(|family| !family.is_empty()) {
        let name = family.openmetrics_name();
        write_metadata(out, "TYPE", name, family.metric_type().as_str(), None);
        if let Some(unit) = family.unit() {
            write_metadata(out, "UNIT", name, unit, None);
        }
        if !family.help().is_empty() {
            write_metadata(out, "HELP", name, family.help(), Some(true));
        }
        let suffix = match family.metric_type() {
            MetricType::Counter => "_total",
            MetricType::Gauge | MetricType::Histogram => "",
        };
        for sample in &family.samples {
            let labels = &sample.labels;
            match &sample.value {
                SampleValue::Number(value) => {
                    write_number_line(out, name, suffix, labels, *value, true);
                }
                SampleValue::Histogram(histogram) => {
                    write_bucket_lines(out, name, labels, histogram, true);
                    write_histogram_count(out, name, labels, histogram, true);
                    write_histogram_sum(out, name, labels, histogram, true);
                }
            }
        }
    }
    out.extend_from_slice(b"# EOF\n");
}
