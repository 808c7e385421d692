//! Quarter-octave latency histogram shared with the BPF programs.
//!
//! The bucket layout is a contract with C code running in the kernel, which
//! computes [`bucket_index`] with the same integer-only algorithm and ships
//! raw per-bucket counts to user space. Bucket `i` holds the values in
//! `(2^((i-1)/4), 2^(i/4)]` nanoseconds (bucket 0 holds 0 and 1), which are
//! the bucket boundaries of a Prometheus native histogram with schema 2.
//! The last bucket is an overflow bucket holding everything above
//! `2^((LATENCY_BUCKETS-2)/4)` nanoseconds (about 14 minutes).

/// Number of buckets in a [`LatencyHistogram`]; the last one is the overflow bucket.
pub const LATENCY_BUCKETS: usize = 160;

/// `floor(2^63 * 2^(j/4))` for `j = 1, 2, 3`: the quarter-octave boundaries
/// of a value normalised so that its top bit is bit 63.
pub const QUARTER_OCTAVE_THRESHOLDS: [u64; 3] =
    [0x9837f0518db8a96f, 0xb504f333f9de6484, 0xd744fccad69d6af4];

/// `2^(j/4)` for `j = 0..4`, used to compute bucket bounds without `powf`.
const QUARTER_OCTAVE_FACTORS: [f64; 4] = [
    1.0,
    1.189_207_115_002_721,
    core::f64::consts::SQRT_2,
    1.681_792_830_507_429,
];

/// Returns the index of the bucket holding a latency of `ns` nanoseconds.
///
/// This is exact integer arithmetic and must stay identical to the C
/// implementation in the BPF programs.
pub fn bucket_index(ns: u64) -> usize {
    if ns == 0 {
        return 0;
    }
    // k = floor(log2(ns)), in 0..=63.
    let k = 63 - ns.leading_zeros();
    let idx = if ns == 1u64 << k {
        4 * k
    } else {
        // Shift the top bit to bit 63; no bits are lost.
        let m = ns << (63 - k);
        let above = QUARTER_OCTAVE_THRESHOLDS
            .iter()
            .filter(|&&threshold| m > threshold)
            .count() as u32;
        4 * k + 1 + above
    };
    (idx as usize).min(LATENCY_BUCKETS - 1)
}

/// Returns the inclusive upper bound of bucket `i` in nanoseconds: `2^(i/4)`,
/// or infinity for the overflow bucket (and any index beyond it).
pub fn bucket_upper_bound_ns(i: usize) -> f64 {
    if i >= LATENCY_BUCKETS - 1 {
        return f64::INFINITY;
    }
    // i / 4 <= 39, so the shift cannot overflow.
    (1u64 << (i / 4)) as f64 * QUARTER_OCTAVE_FACTORS[i % 4]
}

/// Returns the exclusive lower bound of bucket `i` in nanoseconds:
/// `2^((i-1)/4)`, or 0 for bucket 0 (which also holds the value 0).
pub fn bucket_lower_bound_ns(i: usize) -> f64 {
    match i {
        0 => 0.0,
        _ if i >= LATENCY_BUCKETS => f64::INFINITY,
        _ => bucket_upper_bound_ns(i - 1),
    }
}

/// Counts of latencies in the quarter-octave buckets described in the module docs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LatencyHistogram {
    /// Per-bucket counts, indexed by [`bucket_index`].
    counts: [u64; LATENCY_BUCKETS],
}

impl Default for LatencyHistogram {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyHistogram {
    /// Returns an empty histogram.
    pub fn new() -> Self {
        Self {
            counts: [0; LATENCY_BUCKETS],
        }
    }

    /// Counts one latency of `ns` nanoseconds.
    pub fn record(&mut self, ns: u64) {
        let bucket = &mut self.counts[bucket_index(ns)];
        *bucket = bucket.saturating_add(1);
    }

    /// Adds raw per-bucket counts (for example read from a BPF map)
    /// element-wise, saturating; elements past the last bucket are ignored.
    pub fn add_bucket_counts(&mut self, counts: &[u64]) {
        for (mine, theirs) in self.counts.iter_mut().zip(counts) {
            *mine = mine.saturating_add(*theirs);
        }
    }

    /// Adds all counts of `other` into `self`.
    pub fn merge(&mut self, other: &LatencyHistogram) {
        self.add_bucket_counts(&other.counts);
    }

    /// Returns the number of recorded values (saturating).
    pub fn total(&self) -> u64 {
        self.counts
            .iter()
            .fold(0u64, |sum, &count| sum.saturating_add(count))
    }

    /// Returns the per-bucket counts.
    pub fn buckets(&self) -> &[u64; LATENCY_BUCKETS] {
        &self.counts
    }

    /// Estimates the `q` quantile (`0.0..=1.0`) in nanoseconds, or `None`
    /// when the histogram is empty.
    ///
    /// The result is the upper bound (rounded down to an integer) of the
    /// bucket holding the sample of rank `ceil(q * total)` (at least 1),
    /// clamped to `max_ns`, the exact maximum observed value that the caller
    /// tracks separately. It is therefore a conservative "at most" estimate:
    /// the true quantile is no larger than the result, and no more than one
    /// quarter octave (about 19%) smaller. `q` outside `0.0..=1.0` is
    /// clamped; NaN is treated as 0.
    pub fn quantile_ns(&self, q: f64, max_ns: u64) -> Option<u64> {
        let total = self.total();
        if total == 0 {
            return None;
        }
        let q = if q.is_nan() { 0.0 } else { q.clamp(0.0, 1.0) };
        // Float-to-int `as` saturates, so this cannot overflow.
        let rank = ((q * total as f64).ceil() as u64).clamp(1, total);
        let mut seen = 0u64;
        for (i, &count) in self.counts.iter().enumerate() {
            seen = seen.saturating_add(count);
            if seen >= rank {
                let upper = bucket_upper_bound_ns(i);
                // Saturating conversion: the overflow bucket's infinity
                // becomes u64::MAX and is then clamped to max_ns.
                return Some((upper.floor() as u64).min(max_ns));
            }
        }
        Some(max_ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Multiplies two u128 values into a 256-bit `(high, low)` pair.
    fn mul_wide(a: u128, b: u128) -> (u128, u128) {
        let mask = u128::from(u64::MAX);
        let (a_hi, a_lo) = (a >> 64, a & mask);
        let (b_hi, b_lo) = (b >> 64, b & mask);
        let lo_lo = a_lo * b_lo;
        let hi_lo = a_hi * b_lo;
        let lo_hi = a_lo * b_hi;
        let hi_hi = a_hi * b_hi;
        let mid = (lo_lo >> 64) + (hi_lo & mask) + (lo_hi & mask);
        let low = (lo_lo & mask) | (mid << 64);
        let high = hi_hi + (hi_lo >> 64) + (lo_hi >> 64) + (mid >> 64);
        (high, low)
    }

    /// Returns `x^4` as a 256-bit `(high, low)` pair.
    fn fourth_power(x: u64) -> (u128, u128) {
        let square = u128::from(x) * u128::from(x);
        mul_wide(square, square)
    }

    #[test]
    fn thresholds_are_exact_floors() {
        for (j, &t) in QUARTER_OCTAVE_THRESHOLDS.iter().enumerate() {
            let j = j as u32 + 1;
            // floor(2^63 * 2^(j/4)) = t  <=>  t^4 <= 2^(252+j) < (t+1)^4.
            let target = (1u128 << (124 + j), 0u128);
            assert!(fourth_power(t) <= target, "threshold {j} too large");
            assert!(fourth_power(t + 1) > target, "threshold {j} too small");
        }
    }

    #[test]
    fn exact_indexes() {
        let cases: [(u64, usize); 13] = [
            (0, 0),
            (1, 0),
            (2, 4),
            (3, 7),
            (4, 8),
            (5, 10),
            (6, 11),
            (7, 12),
            (1000, 40),
            (1024, 40),
            (1025, 41),
            (1 << 39, 156),
            (1 << 40, 159),
        ];
        for (ns, expected) in cases {
            assert_eq!(bucket_index(ns), expected, "ns = {ns}");
        }
        assert_eq!(bucket_index(u64::MAX), LATENCY_BUCKETS - 1);
        assert_eq!(bucket_index((1 << 39) + 1), 157);
    }

    /// Reference index from floating point: smallest i with v <= 2^(i/4),
    /// or `None` when v is too close to a boundary for floats to decide.
    fn float_reference(v: u64) -> Option<usize> {
        if v.is_power_of_two() {
            return Some((4 * v.trailing_zeros() as usize).min(LATENCY_BUCKETS - 1));
        }
        let x = 4.0 * (v as f64).log2();
        if (x - x.round()).abs() < 1e-9 {
            return None;
        }
        Some((x.ceil() as usize).min(LATENCY_BUCKETS - 1))
    }

    #[test]
    fn matches_float_reference_for_small_values() {
        for v in 1..100_000u64 {
            assert_eq!(Some(bucket_index(v)), float_reference(v), "v = {v}");
        }
    }

    #[test]
    fn matches_float_reference_for_large_values() {
        // xorshift64: deterministic pseudo-random values of every magnitude.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut checked = 0;
        for _ in 0..200_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let v = state >> (state % 64);
            if let Some(expected) = float_reference(v) {
                assert_eq!(bucket_index(v), expected, "v = {v}");
                checked += 1;
            }
        }
        assert!(checked > 199_000, "only {checked} values checked");
    }

    #[test]
    fn exact_at_quarter_octave_boundaries() {
        for k in 0..64u32 {
            for (j, &t) in QUARTER_OCTAVE_THRESHOLDS.iter().enumerate() {
                let j = j + 1;
                // floor(2^(k + j/4)): the largest integer in bucket 4k + j.
                let last = t >> (63 - k);
                if last == 0 || last.is_power_of_two() {
                    // Bucket 4k + j holds no integer (only for k = 0).
                    continue;
                }
                let bucket = (4 * k as usize + j).min(LATENCY_BUCKETS - 1);
                let next = (bucket + 1).min(LATENCY_BUCKETS - 1);
                assert_eq!(bucket_index(last), bucket, "v = {last}");
                if let Some(after) = last.checked_add(1) {
                    assert_eq!(bucket_index(after), next, "v = {after}");
                }
            }
        }
    }

    #[test]
    fn index_is_monotonic() {
        let mut previous = 0;
        for v in 0..300_000u64 {
            let idx = bucket_index(v);
            assert!(idx >= previous, "v = {v}");
            // From 8 on, every bucket is wide enough to hold an integer.
            if v > 8 {
                assert!(idx <= previous + 1, "v = {v} skipped a bucket");
            }
            previous = idx;
        }
        let mut previous = 0;
        for shift in 2..64 {
            let power = 1u64 << shift;
            // Strictly increasing across iterations since shift >= 2.
            for v in [power - 1, power, power + 1] {
                let idx = bucket_index(v);
                assert!(idx >= previous, "v = {v}");
                previous = idx;
            }
        }
    }

    #[test]
    fn bounds_agree_with_index() {
        assert_eq!(bucket_upper_bound_ns(0), 1.0);
        assert_eq!(bucket_upper_bound_ns(4), 2.0);
        assert_eq!(bucket_upper_bound_ns(40), 1024.0);
        assert_eq!(bucket_upper_bound_ns(6), core::f64::consts::SQRT_2 * 2.0);
        assert_eq!(bucket_upper_bound_ns(159), f64::INFINITY);
        assert_eq!(bucket_upper_bound_ns(1000), f64::INFINITY);
        assert_eq!(bucket_lower_bound_ns(0), 0.0);
        assert_eq!(bucket_lower_bound_ns(1), 1.0);
        assert_eq!(bucket_lower_bound_ns(41), 1024.0);
        assert_eq!(bucket_lower_bound_ns(159), bucket_upper_bound_ns(158));
        for i in 0..LATENCY_BUCKETS - 1 {
            let last = bucket_upper_bound_ns(i).floor() as u64;
            assert!(bucket_index(last) <= i, "bucket {i}");
            assert!(bucket_index(last + 1) > i, "bucket {i}");
            assert!(bucket_lower_bound_ns(i) < bucket_upper_bound_ns(i));
        }
    }

    #[test]
    fn record_total_and_merge() {
        let mut a = LatencyHistogram::new();
        a.record(0);
        a.record(1);
        a.record(1024);
        a.record(u64::MAX);
        assert_eq!(a.total(), 4);
        assert_eq!(a.buckets()[0], 2);
        assert_eq!(a.buckets()[40], 1);
        assert_eq!(a.buckets()[159], 1);

        let mut b = LatencyHistogram::default();
        b.add_bucket_counts(&[5, 0, 0, 0, 7]);
        a.merge(&b);
        assert_eq!(a.buckets()[0], 7);
        assert_eq!(a.buckets()[4], 7);
        assert_eq!(a.total(), 16);
    }

    #[test]
    fn add_bucket_counts_saturates_and_ignores_extra() {
        let mut h = LatencyHistogram::new();
        let mut counts = vec![1u64; LATENCY_BUCKETS + 10];
        counts[3] = u64::MAX;
        h.add_bucket_counts(&counts);
        h.add_bucket_counts(&counts);
        assert_eq!(h.buckets()[3], u64::MAX);
        assert_eq!(h.buckets()[0], 2);
        assert_eq!(h.buckets()[LATENCY_BUCKETS - 1], 2);
        assert_eq!(h.total(), u64::MAX);
    }

    #[test]
    fn quantile_of_empty_is_none() {
        assert_eq!(LatencyHistogram::new().quantile_ns(0.5, 100), None);
    }

    #[test]
    fn quantiles_of_uniform_distribution() {
        let mut h = LatencyHistogram::new();
        for v in 1..=1000u64 {
            h.record(v);
        }
        // Rank 500 is the value 500, in (2^8.75, 2^9] = (430.5, 512].
        assert_eq!(bucket_index(500), 36);
        assert_eq!(h.quantile_ns(0.5, 1000), Some(512));
        // Rank 990 is 990, in (861.1, 1024]: upper bound clamped to max.
        assert_eq!(h.quantile_ns(0.99, 1000), Some(1000));
        assert_eq!(h.quantile_ns(0.99, 1024), Some(1024));
        // Rank 1 is the value 1, bucket 0.
        assert_eq!(h.quantile_ns(0.0, 1000), Some(1));
        assert_eq!(h.quantile_ns(f64::NAN, 1000), Some(1));
        // Rank 100 is 100, in (90.5, 107.6], bucket 27.
        assert_eq!(h.quantile_ns(0.1, 1000), Some(107));
    }

    #[test]
    fn quantiles_of_bimodal_distribution() {
        let mut h = LatencyHistogram::new();
        for _ in 0..99 {
            h.record(2);
        }
        h.record(5_000_000);
        assert_eq!(h.quantile_ns(0.5, 5_000_000), Some(2));
        assert_eq!(h.quantile_ns(0.99, 5_000_000), Some(2));
        // Rank 100 is the outlier, in (2^22.25, 2^22.5] = (4988156, 5931641].
        assert_eq!(h.quantile_ns(0.999, 5_000_000), Some(5_000_000));
        assert_eq!(h.quantile_ns(1.0, 6_000_000), Some(5_931_641));
        assert_eq!(h.quantile_ns(7.0, 6_000_000), Some(5_931_641));
    }

    #[test]
    fn quantile_in_overflow_bucket_is_max() {
        let mut h = LatencyHistogram::new();
        h.record(u64::MAX - 5);
        assert_eq!(h.quantile_ns(0.5, u64::MAX - 5), Some(u64::MAX - 5));
    }
}
