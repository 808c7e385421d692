//! Classic Prometheus histograms built from the kernel's quarter-octave
//! latency buckets without re-bucketing loss.
//!
//! Kernel bucket `i` holds `(2^((i-1)/4), 2^(i/4)]` ns, so its upper bound
//! `2^(i/4)` ns is an exact `le` boundary: the cumulative count of all
//! kernel buckets up to `i` is exactly the number of observations `<=` it. A
//! [`BucketLayout`] picks which of these boundaries to expose; it chooses the
//! resolution, never estimates a count.

use std::fmt;

use goroscope_model::{bucket_upper_bound_ns, LatencyHistogram, LATENCY_BUCKETS};

/// Nanoseconds per second, the exposed unit of latency histograms.
const NS_PER_SECOND: f64 = 1e9;

/// Cumulative bucket counts at chosen upper bounds, plus count and sum, in the
/// exposed unit (seconds or bytes).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HistogramValue {
    /// `(le, cumulative count)` pairs: finite upper bounds in ascending order,
    /// without `+Inf` (rendered from `count`).
    pub buckets: Vec<(f64, u64)>,
    /// The number of observations, which is the `+Inf` bucket.
    pub count: u64,
    /// The sum of all observations.
    pub sum: f64,
}

impl HistogramValue {
    /// Buckets as rendered: finite `le` values only (a `+Inf` or NaN bound
    /// given by mistake is skipped; `+Inf` is always written from `count`).
    pub(crate) fn finite_buckets(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        self.buckets
            .iter()
            .copied()
            .filter(|(le, _)| le.is_finite())
    }

    /// The number of sample lines this histogram renders as: one per finite
    /// bucket, `+Inf`, `_sum` and `_count`.
    pub(crate) fn line_count(&self) -> usize {
        self.finite_buckets().count() + 3
    }
}

/// Why a [`BucketLayout`] could not be built. The messages are meant for the
/// operator who configured the layout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LayoutError {
    /// The resolution is not 1, 2 or 4 boundaries per octave.
    BucketsPerOctave {
        /// The rejected resolution.
        per_octave: u32,
    },
    /// The minimum is above the maximum.
    InvertedRange {
        /// The configured minimum, in nanoseconds.
        min_ns: u64,
        /// The configured maximum, in nanoseconds.
        max_ns: u64,
    },
    /// No kernel bucket boundary of the chosen resolution lies in the range.
    NoBoundaries {
        /// The chosen resolution.
        per_octave: u32,
        /// The configured minimum, in nanoseconds.
        min_ns: u64,
        /// The configured maximum, in nanoseconds.
        max_ns: u64,
    },
}

impl fmt::Display for LayoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BucketsPerOctave { per_octave } => write!(
                f,
                "histogram buckets per octave must be 1, 2 or 4, not {per_octave}: \
                 use 1 for power-of-two buckets or 4 for the kernel's full resolution"
            ),
            Self::InvertedRange { min_ns, max_ns } => write!(
                f,
                "histogram bucket range is inverted: the minimum {min_ns} ns is above \
                 the maximum {max_ns} ns; swap them"
            ),
            Self::NoBoundaries {
                per_octave,
                min_ns,
                max_ns,
            } => write!(
                f,
                "no histogram bucket boundary lies between {min_ns} ns and {max_ns} ns \
                 at {per_octave} per octave: widen the range (boundaries are powers of \
                 2^(1/{per_octave}) ns from 1 ns to about 768 s)"
            ),
        }
    }
}

impl std::error::Error for LayoutError {}

/// Which kernel bucket boundaries are exposed as `le` values: every boundary
/// between `min` and `max` (in ns, inclusive) that is a multiple of
/// 1/`per_octave` octaves, `per_octave` in {1, 2, 4}.
///
/// Every exposed `le` is exactly a kernel boundary, so each cumulative count
/// is exact (no interpolation, no re-bucketing loss); only resolution is
/// chosen. The largest finite kernel boundary is 2^39.5 ns (about 768 s); a
/// larger `max` exposes up to it, and everything above lands in `+Inf`.
#[derive(Clone, Debug, PartialEq)]
pub struct BucketLayout {
    /// Indexes of the kernel buckets whose upper bounds are exposed, ascending.
    kernel_buckets: Vec<usize>,
    /// Their upper bounds in seconds, the `le` values.
    bounds_seconds: Vec<f64>,
    /// Whether latency histograms keep the kernel's own buckets too (for OTLP's exponential
    /// histograms; see [`crate::Family::add_latency`]).
    keep_kernel_buckets: bool,
}

impl BucketLayout {
    /// Builds the layout of every kernel boundary in `min_ns..=max_ns` that
    /// is a multiple of 1/`per_octave` octaves.
    pub fn new(per_octave: u32, min_ns: u64, max_ns: u64) -> Result<BucketLayout, LayoutError> {
        if !matches!(per_octave, 1 | 2 | 4) {
            return Err(LayoutError::BucketsPerOctave { per_octave });
        }
        if min_ns > max_ns {
            return Err(LayoutError::InvertedRange { min_ns, max_ns });
        }
        // Kernel buckets are quarter octaves: keep every (4 / per_octave)-th.
        let step = (4 / per_octave) as usize;
        let (min, max) = (min_ns as f64, max_ns as f64);
        let kernel_buckets: Vec<usize> = (0..LATENCY_BUCKETS - 1)
            .step_by(step)
            .filter(|&i| (min..=max).contains(&bucket_upper_bound_ns(i)))
            .collect();
        if kernel_buckets.is_empty() {
            return Err(LayoutError::NoBoundaries {
                per_octave,
                min_ns,
                max_ns,
            });
        }
        let bounds_seconds = kernel_buckets
            .iter()
            .map(|&i| bucket_upper_bound_ns(i) / NS_PER_SECOND)
            .collect();
        Ok(BucketLayout {
            kernel_buckets,
            bounds_seconds,
            keep_kernel_buckets: false,
        })
    }

    /// The same layout, with latency histograms also keeping the kernel's buckets (what an
    /// OTLP export needs; a Prometheus-only exposition does without the copy).
    pub fn keeping_kernel_buckets(mut self) -> BucketLayout {
        self.keep_kernel_buckets = true;
        self
    }

    /// Whether latency histograms keep the kernel's buckets.
    pub fn keeps_kernel_buckets(&self) -> bool {
        self.keep_kernel_buckets
    }

    /// The `le` values in seconds, ascending.
    pub fn bounds_seconds(&self) -> &[f64] {
        &self.bounds_seconds
    }

    /// From kernel buckets (ns) and the sum in ns to a [`HistogramValue`] in
    /// seconds. The count is the total of all buckets; counts above the
    /// largest exposed boundary land only in `+Inf`. Counts saturate.
    pub fn histogram_from_ns(&self, hist: &LatencyHistogram, sum_ns: u64) -> HistogramValue {
        let mut buckets = Vec::with_capacity(self.kernel_buckets.len());
        let mut exposed = self
            .kernel_buckets
            .iter()
            .zip(&self.bounds_seconds)
            .peekable();
        let mut cumulative = 0u64;
        for (i, &count) in hist.buckets().iter().enumerate() {
            cumulative = cumulative.saturating_add(count);
            if let Some((_, &le)) = exposed.next_if(|(&bucket, _)| bucket == i) {
                buckets.push((le, cumulative));
            }
        }
        HistogramValue {
            buckets,
            count: hist.total(),
            sum: sum_ns as f64 / NS_PER_SECOND,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use goroscope_model::bucket_index;

    #[test]
    fn octave_bounds_are_exact_powers_of_two() {
        let layout = BucketLayout::new(1, 1_000, 10_000_000_000).expect("valid layout");
        // 2^10 ns = 1024 ns is the first power of two >= 1 us; 2^33 ns the
        // last <= 10 s.
        let expected: Vec<f64> = (10..=33).map(|k| (1u64 << k) as f64 / 1e9).collect();
        assert_eq!(layout.bounds_seconds(), expected.as_slice());
        assert_eq!(layout.bounds_seconds()[0], 1.024e-6);
        assert_eq!(layout.bounds_seconds()[20], 1.073741824);
    }

    #[test]
    fn resolutions_pick_every_nth_kernel_boundary() {
        let quarter = BucketLayout::new(4, 1, 1 << 39).expect("valid layout");
        assert_eq!(quarter.bounds_seconds().len(), 157); // buckets 0..=156
        let half = BucketLayout::new(2, 1, 1 << 39).expect("valid layout");
        assert_eq!(half.bounds_seconds().len(), 79); // buckets 0, 2, ..., 156
        let all = BucketLayout::new(4, 0, u64::MAX).expect("valid layout");
        assert_eq!(all.bounds_seconds().len(), LATENCY_BUCKETS - 1);
        assert_eq!(
            half.bounds_seconds()[3],
            core::f64::consts::SQRT_2 * 2.0 / 1e9,
            "bucket 6 is 2^1.5 ns"
        );
        for pair in all.bounds_seconds().windows(2) {
            assert!(pair[0] < pair[1]);
        }
    }

    #[test]
    fn layout_errors_tell_the_operator_what_to_do() {
        assert_eq!(
            BucketLayout::new(3, 1, 2),
            Err(LayoutError::BucketsPerOctave { per_octave: 3 })
        );
        assert_eq!(
            BucketLayout::new(1, 10, 1),
            Err(LayoutError::InvertedRange {
                min_ns: 10,
                max_ns: 1
            })
        );
        let none = BucketLayout::new(1, 1025, 2047).expect_err("no power of two in range");
        assert!(none.to_string().contains("widen the range"), "{none}");
        assert!(BucketLayout::new(0, 1, 2)
            .expect_err("0 per octave")
            .to_string()
            .contains("must be 1, 2 or 4"));
    }

    #[test]
    fn cumulative_counts_are_exact() {
        let mut hist = LatencyHistogram::new();
        // Exactly on boundaries, just above them, below the range, above it.
        let values: [(u64, u64); 7] = [
            (0, 3),
            (1_024, 5),
            (1_025, 7),
            (2_048, 11),
            (3_000, 13),
            (1 << 20, 17),
            (20_000_000_000, 19),
        ];
        let mut sum_ns = 0u64;
        for (ns, times) in values {
            for _ in 0..times {
                hist.record(ns);
                sum_ns += ns;
            }
        }
        let layout = BucketLayout::new(1, 1_000, 10_000_000_000).expect("valid layout");
        let value = layout.histogram_from_ns(&hist, sum_ns);
        let le = |k: u32| (1u64 << k) as f64 / 1e9;
        assert_eq!(value.buckets.len(), 24);
        assert_eq!(value.buckets[0], (le(10), 3 + 5));
        assert_eq!(value.buckets[1], (le(11), 3 + 5 + 7 + 11));
        assert_eq!(value.buckets[2], (le(12), 3 + 5 + 7 + 11 + 13));
        assert_eq!(value.buckets[9], (le(19), 39));
        assert_eq!(value.buckets[10], (le(20), 39 + 17));
        // 20 s is above the 2^33 ns (8.6 s) maximum: only in +Inf.
        assert_eq!(value.buckets[23], (le(33), 56));
        assert_eq!(value.count, 75);
        assert_eq!(value.sum, sum_ns as f64 / 1e9);

        // Against a brute-force count over the recorded values.
        for &(bound, cumulative) in &value.buckets {
            let expected: u64 = values
                .iter()
                .filter(|(ns, _)| (*ns as f64) <= bound * 1e9 * (1.0 + 1e-12))
                .map(|(_, times)| times)
                .sum();
            assert_eq!(cumulative, expected, "le = {bound}");
        }
    }

    #[test]
    fn quarter_octave_counts_match_kernel_buckets() {
        let mut hist = LatencyHistogram::new();
        let mut counts = [0u64; LATENCY_BUCKETS];
        for (i, count) in counts.iter_mut().enumerate() {
            *count = i as u64 + 1;
        }
        hist.add_bucket_counts(&counts);
        let layout = BucketLayout::new(4, 0, u64::MAX).expect("valid layout");
        let value = layout.histogram_from_ns(&hist, 0);
        let mut cumulative = 0;
        for (i, &(le, count)) in value.buckets.iter().enumerate() {
            cumulative += counts[i];
            assert_eq!(count, cumulative, "bucket {i}");
            assert_eq!(le, bucket_upper_bound_ns(i) / 1e9);
        }
        assert_eq!(value.count, cumulative + counts[LATENCY_BUCKETS - 1]);
        assert_eq!(bucket_index(1 << 39), 156);
    }

    #[test]
    fn empty_histogram() {
        let layout = BucketLayout::new(2, 1_000, 1_000_000).expect("valid layout");
        let value = layout.histogram_from_ns(&LatencyHistogram::new(), 0);
        assert!(value.buckets.iter().all(|&(_, count)| count == 0));
        assert_eq!(value.buckets.len(), layout.bounds_seconds().len());
        assert_eq!((value.count, value.sum), (0, 0.0));
    }
}
