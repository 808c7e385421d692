//! Quantiles for the health model: exact nearest-rank quantiles over small samples, and a compact
//! log-linear histogram (relative error < 1/128) for samples that grow with the window, such as
//! goroutine lifetimes.

/// The nearest-rank `q` quantile (`0 < q <= 1`) of `sorted` (ascending); `None` when empty.
pub(crate) fn nearest_rank(sorted: &[u64], q: f64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len();
    let rank = (q * n as f64).ceil() as usize;
    let index = rank.clamp(1, n) - 1;
    sorted.get(index).copied()
}

/// Sorts a copy of `values` and returns its nearest-rank `q` quantiles, in the order asked.
pub(crate) fn quantiles_of(values: &[u64], qs: &[f64]) -> Vec<Option<u64>> {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    qs.iter().map(|&q| nearest_rank(&sorted, q)).collect()
}

/// Sub-buckets per power of two above [`LINEAR_LIMIT`].
const SUB_BITS: u32 = 7;
/// Values below this get one bucket each (exact).
const LINEAR_LIMIT: u64 = 1 << SUB_BITS;
/// Total buckets: the linear ones plus 128 per power of two from 2^7 to 2^63.
const BUCKETS: usize = (LINEAR_LIMIT as usize) * (64 - SUB_BITS as usize + 1);

/// A log-linear histogram of `u64` values: exact below 128, otherwise 128 buckets per power of
/// two, so a quantile read back is at most 1/128 (0.8 %) below the true value. Fixed memory
/// (about 58 KiB once the first value is recorded), O(1) per record.
#[derive(Debug, Clone, Default)]
pub(crate) struct LogHistogram {
    counts: Vec<u64>,
    total: u64,
    max: u64,
}

impl LogHistogram {
    fn bucket(value: u64) -> usize {
        if value < LINEAR_LIMIT {
            return value as usize;
        }
        let exponent = 63 - value.leading_zeros(); // >= SUB_BITS
        let mantissa = (value >> (exponent - SUB_BITS)) & (LINEAR_LIMIT - 1);
        (LINEAR_LIMIT as usize) * (exponent - SUB_BITS + 1) as usize + mantissa as usize
    }

    fn lower_bound(bucket: usize) -> u64 {
        let linear = LINEAR_LIMIT as usize;
        if bucket < linear {
            return bucket as u64;
        }
        let exponent = (bucket / linear) as u32 - 1 + SUB_BITS;
        let mantissa = (bucket % linear) as u64;
        (LINEAR_LIMIT + mantissa) << (exponent - SUB_BITS)
    }

    /// Adds one value.
    pub(crate) fn record(&mut self, value: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        if let Some(count) = self.counts.get_mut(Self::bucket(value)) {
            *count += 1;
        }
        self.total += 1;
        self.max = self.max.max(value);
    }

    /// Values recorded.
    pub(crate) fn count(&self) -> u64 {
        self.total
    }

    /// The exact largest value, `None` when empty.
    pub(crate) fn max(&self) -> Option<u64> {
        (self.total > 0).then_some(self.max)
    }

    /// The counts summed into power-of-two buckets: `(upper, count)` for values in
    /// `[upper / 2, upper)` (`[0, 1)` for the first), empty buckets after the last left out.
    pub(crate) fn power_of_two_buckets(&self) -> Vec<(u64, u64)> {
        let mut buckets: Vec<(u64, u64)> = Vec::new();
        for (bucket, &count) in self.counts.iter().enumerate() {
            if count == 0 {
                continue;
            }
            let lower = Self::lower_bound(bucket);
            let power = if lower == 0 {
                0
            } else {
                64 - lower.leading_zeros() as usize
            };
            if buckets.len() <= power {
                buckets.resize(power + 1, (0, 0));
            }
            buckets[power].1 += count;
        }
        for (power, bucket) in buckets.iter_mut().enumerate() {
            bucket.0 = 1u64.checked_shl(power as u32).unwrap_or(u64::MAX);
        }
        buckets
    }

    /// The nearest-rank `q` quantile, as the lower bound of its bucket (never above the maximum);
    /// the exact maximum for the top rank.
    pub(crate) fn quantile(&self, q: f64) -> Option<u64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        if rank == self.total {
            return Some(self.max);
        }
        let mut seen = 0u64;
        for (bucket, &count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Some(Self::lower_bound(bucket).min(self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn power_of_two_buckets_sum_to_the_count() {
        let mut h = LogHistogram::default();
        for v in [0, 1, 3, 4, 7, 1000, 1023, 1024, 5_000_000_000] {
            h.record(v);
        }
        let buckets = h.power_of_two_buckets();
        assert_eq!(buckets[0], (1, 1)); // 0
        assert_eq!(buckets[1], (2, 1)); // 1
        assert_eq!(buckets[2], (4, 1)); // 3
        assert_eq!(buckets[3], (8, 2)); // 4, 7
        assert_eq!(buckets[10], (1024, 2)); // 1000, 1023
        assert_eq!(buckets[11], (2048, 1)); // 1024
        assert_eq!(buckets.iter().map(|b| b.1).sum::<u64>(), 9);
        assert_eq!(buckets.last(), Some(&(1 << 33, 1)));
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(nearest_rank(&v, 0.5), Some(50));
        assert_eq!(nearest_rank(&v, 0.99), Some(99));
        assert_eq!(nearest_rank(&v, 1.0), Some(100));
        assert_eq!(nearest_rank(&[], 0.5), None);
        assert_eq!(nearest_rank(&[7], 0.01), Some(7));
        assert_eq!(
            quantiles_of(&[3, 1, 2], &[0.5, 1.0]),
            vec![Some(2), Some(3)]
        );
    }

    #[test]
    fn log_histogram_is_close() {
        let mut h = LogHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        for v in 1..=10_000u64 {
            h.record(v * 1_000_003);
        }
        assert_eq!(h.count(), 10_000);
        assert_eq!(h.max(), Some(10_000 * 1_000_003));
        let p50 = h.quantile(0.5).unwrap_or(0) as f64;
        let exact = 5_000.0 * 1_000_003.0;
        assert!(p50 <= exact && p50 > exact * (1.0 - 1.0 / 128.0), "{p50}");
        h.record(u64::MAX);
        assert_eq!(h.quantile(1.0), Some(u64::MAX));
        for v in 0..LINEAR_LIMIT {
            assert_eq!(LogHistogram::lower_bound(LogHistogram::bucket(v)), v);
        }
        for v in [128u64, 129, 255, 256, 1 << 40, (1 << 40) + 12345] {
            let lb = LogHistogram::lower_bound(LogHistogram::bucket(v));
            assert!(lb <= v && (v - lb) as f64 <= v as f64 / 128.0, "{v} {lb}");
        }
    }
}
