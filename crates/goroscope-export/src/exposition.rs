//! The set of families one scrape shows: merging, series caps, rendering.

use crate::family::Family;
use crate::negotiate::Format;
use crate::render;

/// Everything one scrape shows: families kept sorted by name, each with its
/// samples sorted by labels and unique per label set.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Exposition {
    /// Families sorted by name, names unique.
    families: Vec<Family>,
    /// Samples dropped as duplicates, type conflicts or unfit samples.
    dropped: usize,
}

impl Exposition {
    /// Returns an empty exposition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a family. Families with the same name are merged: samples are
    /// appended, and of several samples with an identical label set the first
    /// is kept and the others counted as dropped ([`Exposition::dropped_samples`]).
    ///
    /// A family whose type differs from an existing family of the same name
    /// is a programming error (`debug_assert!`); in release builds its
    /// samples are counted as dropped. The first family's help text is kept.
    pub fn push(&mut self, mut family: Family) {
        self.dropped += family.rejected;
        match self
            .families
            .binary_search_by(|existing| existing.name().cmp(family.name()))
        {
            Ok(at) => {
                let existing = &mut self.families[at];
                debug_assert_eq!(
                    existing.metric_type(),
                    family.metric_type(),
                    "family {} pushed with two types",
                    family.name()
                );
                if existing.metric_type() != family.metric_type() {
                    self.dropped += family.len();
                    return;
                }
                existing.samples.append(&mut family.samples);
                self.dropped += existing.sort_and_dedup();
            }
            Err(at) => {
                self.dropped += family.sort_and_dedup();
                family.rejected = 0;
                self.families.insert(at, family);
            }
        }
    }

    /// Applies a per-family series cap: a family with more than `max_series`
    /// label sets keeps the first `max_series` in label order and drops the
    /// rest. Returns (family name, dropped count) for each family that was
    /// capped. A histogram label set counts as one series for the cap.
    pub fn cap_series(&mut self, max_series: usize) -> Vec<(&'static str, usize)> {
        let mut capped = Vec::new();
        for family in &mut self.families {
            if family.samples.len() > max_series {
                capped.push((family.name(), family.samples.len() - max_series));
                family.samples.truncate(max_series);
            }
        }
        capped
    }

    /// The number of sample lines the exposition renders as: 1 per counter or
    /// gauge label set; per histogram label set one `_bucket` line per finite
    /// bound, plus the `le="+Inf"` bucket, `_sum` and `_count`.
    pub fn series_count(&self) -> usize {
        self.families
            .iter()
            .flat_map(|family| &family.samples)
            .map(|sample| sample.series_count())
            .sum()
    }

    /// Samples dropped so far: later duplicates of a label set, samples of a
    /// family pushed again with another type, and samples refused by
    /// [`Family`]'s `add_*` methods (wrong type, `le` label on a histogram).
    /// Series cut by [`Exposition::cap_series`] are not included.
    pub fn dropped_samples(&self) -> usize {
        self.dropped
    }

    /// The families, sorted by name.
    pub fn families(&self) -> &[Family] {
        &self.families
    }

    /// Writes the exposition into `out`, which is cleared first (the caller
    /// reuses the buffer to avoid allocation per scrape). Families without
    /// samples are left out.
    pub fn render(&self, format: Format, out: &mut Vec<u8>) {
        out.clear();
        match format {
            Format::PrometheusText => render::text::render(&self.families, out),
            Format::OpenMetrics => render::openmetrics::render(&self.families, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{HistogramValue, Labels};

    fn pid(pid: u32) -> Labels {
        Labels::new().push("pid", pid.to_string())
    }

    #[test]
    fn families_sorted_and_merged() {
        let mut exposition = Exposition::new();
        let mut b = Family::gauge("b", "b");
        b.add_gauge(pid(2), 2.0);
        exposition.push(b);
        exposition.push(Family::counter("a_total", "a"));
        let mut b_again = Family::gauge("b", "other help");
        b_again.add_gauge(pid(1), 1.0);
        b_again.add_gauge(pid(2), 20.0);
        exposition.push(b_again);

        let names: Vec<_> = exposition.families().iter().map(Family::name).collect();
        assert_eq!(names, ["a_total", "b"]);
        let b = &exposition.families()[1];
        assert_eq!(b.help(), "b");
        assert_eq!(b.len(), 2);
        assert_eq!(exposition.dropped_samples(), 1, "pid 2 pushed twice");
        let mut out = Vec::new();
        exposition.render(Format::PrometheusText, &mut out);
        let text = String::from_utf8(out).expect("UTF-8");
        assert!(text.contains("b{pid=\"1\"} 1\nb{pid=\"2\"} 2\n"), "{text}");
    }

    #[test]
    fn duplicates_within_one_family() {
        let mut family = Family::counter("c_total", "c");
        family.add_counter(pid(1), 1.0);
        family.add_counter(pid(1), 5.0);
        family.add_counter(Labels::new(), 3.0);
        family.add_counter(Labels::new(), 4.0);
        let mut exposition = Exposition::new();
        exposition.push(family);
        assert_eq!(exposition.dropped_samples(), 2);
        assert_eq!(exposition.series_count(), 2);
        let mut out = Vec::new();
        exposition.render(Format::PrometheusText, &mut out);
        let text = String::from_utf8(out).expect("UTF-8");
        assert!(
            text.ends_with("c_total 3\nc_total{pid=\"1\"} 1\n"),
            "{text}"
        );
    }

    #[test]
    fn cap_keeps_first_label_sets() {
        let mut exposition = Exposition::new();
        let mut gauges = Family::gauge("g", "g");
        for p in [5, 3, 9, 1, 7] {
            gauges.add_gauge(pid(p), f64::from(p));
        }
        exposition.push(gauges);
        let mut histograms = Family::histogram("h_seconds", "h");
        let value = HistogramValue {
            buckets: vec![(0.1, 1), (1.0, 2)],
            count: 2,
            sum: 0.6,
        };
        for p in [1, 2, 3] {
            histograms.add_histogram(pid(p), &value);
        }
        exposition.push(histograms);
        let mut small = Family::counter("s_total", "s");
        small.add_counter(pid(1), 1.0);
        exposition.push(small);
        assert_eq!(exposition.series_count(), 5 + 3 * 5 + 1);

        let capped = exposition.cap_series(2);
        assert_eq!(capped, [("g", 3), ("h_seconds", 1)]);
        assert_eq!(exposition.series_count(), 2 + 2 * 5 + 1);
        let kept: Vec<_> = exposition.families()[0]
            .samples
            .iter()
            .map(|s| s.labels.clone())
            .collect();
        // "1" < "3" < "5" < "7" < "9": label order, not insertion order.
        assert_eq!(kept, [pid(1), pid(3)]);
        assert!(exposition.cap_series(2).is_empty());
        assert_eq!(exposition.dropped_samples(), 0);
    }

    #[cfg(not(debug_assertions))]
    #[test]
    fn type_conflicts_are_dropped_in_release() {
        let mut exposition = Exposition::new();
        let mut gauge = Family::gauge("x", "x");
        gauge.add_gauge(pid(1), 1.0);
        exposition.push(gauge);
        let mut histogram = Family::histogram("x", "x");
        histogram.add_histogram(pid(2), &HistogramValue::default());
        exposition.push(histogram);
        assert_eq!(exposition.dropped_samples(), 1);
        assert_eq!(exposition.series_count(), 1);
    }

    #[test]
    fn render_clears_the_buffer_and_skips_empty_families() {
        let mut exposition = Exposition::new();
        exposition.push(Family::gauge("empty", "nothing"));
        let mut out = b"stale".to_vec();
        exposition.render(Format::PrometheusText, &mut out);
        assert!(out.is_empty());
        exposition.render(Format::OpenMetrics, &mut out);
        assert_eq!(out, b"# EOF\n");
    }
}
