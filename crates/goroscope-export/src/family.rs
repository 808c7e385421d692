//! Metric families: a name, help text, type and the samples of one exposition.

use goroscope_model::LatencyHistogram;

use crate::histogram::{BucketLayout, HistogramValue};
use crate::labels::Labels;
use crate::names::is_valid_metric_name;

/// The metric types goroscope exposes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MetricType {
    /// A monotonically increasing total; the name ends in `_total`.
    Counter,
    /// A current value that may go up and down.
    Gauge,
    /// A classic histogram: cumulative `_bucket`s, `_sum` and `_count`.
    Histogram,
}

impl MetricType {
    /// The type's name on `# TYPE` lines (identical in both formats).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// The value of one sample (one label set) of a family.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum SampleValue {
    /// A counter or gauge value.
    Number(f64),
    /// A histogram.
    Histogram(HistogramValue),
}

/// The kernel's quarter-octave buckets a latency histogram sample was built
/// from, kept for outputs that can carry them exactly (OTLP's exponential
/// histogram of scale 2).
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct KernelLatency {
    /// The per-bucket counts, in nanoseconds.
    pub(crate) buckets: LatencyHistogram,
    /// The sum of all observations, in nanoseconds.
    pub(crate) sum_ns: u64,
}

/// One label set of a family and its value.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Sample {
    /// The label set identifying the series.
    pub(crate) labels: Labels,
    /// Its value.
    pub(crate) value: SampleValue,
    /// For a latency histogram added with [`Family::add_latency_histogram`],
    /// the kernel buckets `value` was built from (boxed: 1.3 KB).
    pub(crate) kernel: Option<Box<KernelLatency>>,
}

impl Sample {
    /// The number of series (sample lines) this sample renders as.
    pub(crate) fn series_count(&self) -> usize {
        match &self.value {
            SampleValue::Number(_) => 1,
            SampleValue::Histogram(histogram) => histogram.line_count(),
        }
    }
}

/// One metric family being filled for one exposition.
#[derive(Clone, Debug, PartialEq)]
pub struct Family {
    /// The full name in the Prometheus text format.
    name: &'static str,
    /// Human-readable description.
    help: &'static str,
    /// The type.
    metric_type: MetricType,
    /// Samples in insertion order (sorted when pushed into an exposition).
    pub(crate) samples: Vec<Sample>,
    /// Samples refused because they did not fit the family (programming
    /// errors caught by `debug_assert!` in debug builds).
    pub(crate) rejected: usize,
}

impl Family {
    /// A counter. `name` is the full Prometheus name for the text format and
    /// ends in `_total`; OpenMetrics output strips it for the family lines and
    /// adds it back on samples. Units go in the name (`_seconds`, `_bytes`).
    pub fn counter(name: &'static str, help: &'static str) -> Family {
        debug_assert!(
            name.len() > "_total".len() && name.ends_with("_total"),
            "counter name {name:?} must end in _total"
        );
        Self::new(name, help, MetricType::Counter)
    }

    /// A gauge. Units go in the name (`_seconds`, `_bytes`).
    pub fn gauge(name: &'static str, help: &'static str) -> Family {
        Self::new(name, help, MetricType::Gauge)
    }

    /// A histogram. Units go in the name (`_seconds`, `_bytes`); the name
    /// must not end in a suffix its samples use (`_bucket`, `_sum`, `_count`).
    pub fn histogram(name: &'static str, help: &'static str) -> Family {
        debug_assert!(
            !["_bucket", "_sum", "_count", "_total"]
                .iter()
                .any(|suffix| name.ends_with(suffix)),
            "histogram name {name:?} ends in a reserved suffix"
        );
        Self::new(name, help, MetricType::Histogram)
    }

    fn new(name: &'static str, help: &'static str, metric_type: MetricType) -> Family {
        debug_assert!(is_valid_metric_name(name), "invalid metric name {name:?}");
        Family {
            name,
            help,
            metric_type,
            samples: Vec::new(),
            rejected: 0,
        }
    }

    /// Adds a counter value. Counters may be u64-valued: integral values are
    /// printed without exponent or decimals (exactly up to 2^53).
    ///
    /// Ignored (and counted as dropped by the exposition) on a family that is
    /// not a counter; `debug_assert!` catches that in debug builds.
    pub fn add_counter(&mut self, labels: Labels, value: f64) {
        self.add(MetricType::Counter, labels, SampleValue::Number(value));
    }

    /// Adds a gauge value. Ignored (and counted as dropped) on a family that
    /// is not a gauge, like [`Family::add_counter`].
    pub fn add_gauge(&mut self, labels: Labels, value: f64) {
        self.add(MetricType::Gauge, labels, SampleValue::Number(value));
    }

    /// Adds a histogram (copied). Ignored (and counted as dropped) on a
    /// family that is not a histogram or when `labels` has an `le` label.
    pub fn add_histogram(&mut self, labels: Labels, histogram: &HistogramValue) {
        debug_assert!(
            labels.get("le").is_none(),
            "histogram {} has an `le` label",
            self.name
        );
        debug_assert!(
            histogram
                .buckets
                .windows(2)
                .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1)
                && histogram
                    .buckets
                    .last()
                    .is_none_or(|b| b.1 <= histogram.count),
            "histogram {} buckets are not ascending and cumulative",
            self.name
        );
        if labels.get("le").is_some() {
            self.rejected += 1;
            return;
        }
        let value = SampleValue::Histogram(histogram.clone());
        self.add(MetricType::Histogram, labels, value);
    }

    /// Adds a latency histogram from the kernel's quarter-octave buckets:
    /// the Prometheus outputs show exactly what
    /// `add_histogram(labels, &layout.histogram_from_ns(buckets, sum_ns))`
    /// shows, and the kernel buckets are kept so that OTLP can export them
    /// unchanged as an exponential histogram. Refused like
    /// [`Family::add_histogram`].
    pub fn add_latency_histogram(
        &mut self,
        labels: Labels,
        layout: &BucketLayout,
        buckets: &LatencyHistogram,
        sum_ns: u64,
    ) {
        let classic = layout.histogram_from_ns(buckets, sum_ns);
        let before = self.samples.len();
        self.add_histogram(labels, &classic);
        if let Some(sample) = self.samples.get_mut(before) {
            sample.kernel = Some(Box::new(KernelLatency {
                buckets: buckets.clone(),
                sum_ns,
            }));
        }
    }

    /// Adds a latency histogram from the kernel's buckets (in ns): as
    /// [`Family::add_latency_histogram`] when `layout` keeps kernel buckets,
    /// else as the classic histogram alone.
    pub fn add_latency(
        &mut self,
        labels: Labels,
        layout: &BucketLayout,
        buckets: &LatencyHistogram,
        sum_ns: u64,
    ) {
        if layout.keeps_kernel_buckets() {
            self.add_latency_histogram(labels, layout, buckets, sum_ns);
        } else {
            self.add_histogram(labels, &layout.histogram_from_ns(buckets, sum_ns));
        }
    }

    /// The family's samples grouped by what `group` says of their labels
    /// (e.g. which process, for OTLP resources): each group a family of the
    /// same name whose samples lack the labels `group` names to strip
    /// (those that became the group). Samples keep their order.
    pub fn partition<K: Ord>(
        &self,
        mut group: impl FnMut(&Labels) -> (K, &'static [&'static str]),
    ) -> std::collections::BTreeMap<K, Family> {
        let mut out = std::collections::BTreeMap::new();
        for sample in &self.samples {
            let (key, strip) = group(&sample.labels);
            let part = out
                .entry(key)
                .or_insert_with(|| Family::new(self.name, self.help, self.metric_type));
            part.samples.push(Sample {
                labels: sample.labels.without(strip),
                value: sample.value.clone(),
                kernel: sample.kernel.clone(),
            });
        }
        out
    }

    fn add(&mut self, metric_type: MetricType, labels: Labels, value: SampleValue) {
        debug_assert_eq!(
            self.metric_type, metric_type,
            "sample of the wrong type for {}",
            self.name
        );
        if self.metric_type == metric_type {
            self.samples.push(Sample {
                labels,
                value,
                kernel: None,
            });
        } else {
            self.rejected += 1;
        }
    }

    /// The number of label sets (a histogram counts once).
    pub fn len(&self) -> usize {
        self.samples.len()
    }

    /// Whether the family has no samples.
    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// The full name, as in the Prometheus text format.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The help text.
    pub fn help(&self) -> &'static str {
        self.help
    }

    /// The type.
    pub fn metric_type(&self) -> MetricType {
        self.metric_type
    }

    /// The OpenMetrics family name: the name without a counter's `_total`.
    pub fn openmetrics_name(&self) -> &'static str {
        match self.metric_type {
            MetricType::Counter => self.name.strip_suffix("_total").unwrap_or(self.name),
            _ => self.name,
        }
    }

    /// The unit, when the OpenMetrics family name ends in `_seconds` or
    /// `_bytes` (OpenMetrics requires the unit to be such a suffix).
    pub fn unit(&self) -> Option<&'static str> {
        let name = self.openmetrics_name();
        ["seconds", "bytes"].into_iter().find(|unit| {
            name.strip_suffix(unit)
                .is_some_and(|rest| rest.ends_with('_'))
        })
    }

    /// Sorts samples by labels and removes later duplicates of a label set,
    /// returning how many were removed.
    pub(crate) fn sort_and_dedup(&mut self) -> usize {
        let before = self.samples.len();
        // Stable: among equal label sets the first added stays first.
        self.samples.sort_by(|a, b| a.labels.cmp(&b.labels));
        self.samples
            .dedup_by(|later, earlier| later.labels == earlier.labels);
        before - self.samples.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openmetrics_names_and_units() {
        let counter = Family::counter("goroscope_syscall_seconds_total", "Time in syscalls.");
        assert_eq!(counter.openmetrics_name(), "goroscope_syscall_seconds");
        assert_eq!(counter.unit(), Some("seconds"));
        let gauge = Family::gauge("goroscope_rss_bytes", "Resident memory.");
        assert_eq!(gauge.openmetrics_name(), "goroscope_rss_bytes");
        assert_eq!(gauge.unit(), Some("bytes"));
        let plain = Family::gauge("goroscope_goroutines", "Goroutines.");
        assert_eq!(plain.unit(), None);
        let histogram = Family::histogram("goroscope_runqueue_latency_seconds", "Latency.");
        assert_eq!(histogram.unit(), Some("seconds"));
        assert_eq!(histogram.metric_type().as_str(), "histogram");
        assert_eq!(Family::gauge("nanoseconds", "").unit(), None);
    }

    #[test]
    fn len_counts_label_sets() {
        let mut family = Family::histogram("h_seconds", "h");
        assert!(family.is_empty());
        let value = HistogramValue {
            buckets: vec![(0.5, 1), (1.0, 2)],
            count: 3,
            sum: 2.5,
        };
        family.add_histogram(Labels::new().push("a", "1"), &value);
        family.add_histogram(Labels::new().push("a", "2"), &value);
        assert_eq!(family.len(), 2);
        assert_eq!(family.samples[0].series_count(), 5);
    }

    #[test]
    fn latency_histograms_keep_the_kernel_buckets() {
        let layout = BucketLayout::new(1, 1, 1 << 20).expect("valid layout");
        let mut kernel = LatencyHistogram::new();
        kernel.record(1_000);
        kernel.record(3_000);
        let mut plain = Family::histogram("h_seconds", "h");
        plain.add_histogram(Labels::new(), &layout.histogram_from_ns(&kernel, 4_000));
        let mut latency = Family::histogram("h_seconds", "h");
        latency.add_latency_histogram(Labels::new(), &layout, &kernel, 4_000);
        assert_eq!(latency.samples[0].value, plain.samples[0].value);
        assert_eq!(plain.samples[0].kernel, None);
        let kept = latency.samples[0]
            .kernel
            .as_deref()
            .expect("kernel buckets");
        assert_eq!((&kept.buckets, kept.sum_ns), (&kernel, 4_000));
    }

    #[test]
    fn dedup_keeps_the_first_of_a_label_set() {
        let mut family = Family::gauge("g", "g");
        family.add_gauge(Labels::new().push("a", "2"), 1.0);
        family.add_gauge(Labels::new().push("a", "1"), 2.0);
        family.add_gauge(Labels::new().push("a", "2"), 3.0);
        assert_eq!(family.sort_and_dedup(), 1);
        let values: Vec<_> = family.samples.iter().map(|s| s.value.clone()).collect();
        assert_eq!(values, [SampleValue::Number(2.0), SampleValue::Number(1.0)]);
    }

    #[cfg(not(debug_assertions))]
    #[test]
    fn wrong_samples_are_rejected_in_release() {
        let mut family = Family::gauge("g", "g");
        family.add_counter(Labels::new(), 1.0);
        family.add_histogram(Labels::new().push("le", "1"), &HistogramValue::default());
        assert_eq!((family.len(), family.rejected), (0, 2));
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "must end in _total")]
    fn counter_names_end_in_total() {
        let _ = Family::counter("goroscope_syscalls", "help");
    }

    #[cfg(debug_assertions)]
    #[test]
    #[should_panic(expected = "invalid metric name")]
    fn invalid_names_are_caught_in_debug_builds() {
        let _ = Family::gauge("goroscope-rss", "help");
    }
}
