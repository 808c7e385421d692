/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The latency histogram every goroscope BPF object uses: 160 quarter-octave
 * buckets, computed in the kernel without floating point.
 */
#ifndef GOROSCOPE_HISTOGRAM_H
#define GOROSCOPE_HISTOGRAM_H

/*
 * Latency histogram layout, a contract with goroscope-model's histogram.rs:
 * bucket i holds (2^((i-1)/4), 2^(i/4)] ns (bucket 0 holds 0 and 1), the
 * boundaries of a Prometheus native histogram of schema 2; the last bucket
 * holds everything larger. The thresholds are floor(2^63 * 2^(j/4)), j=1..3.
 */
#define LATENCY_BUCKETS 160
#define QUARTER_OCTAVE_T1 0x9837f0518db8a96fULL
#define QUARTER_OCTAVE_T2 0xb504f333f9de6484ULL
#define QUARTER_OCTAVE_T3 0xd744fccad69d6af4ULL

#ifdef __BPF__
/* The bucket of a value in ns (or any unit: the layout is unit-free). */
static __always_inline __u32 latency_bucket(__u64 v)
{
	__u32 k = 0;
	__u64 x = v;

	if (v <= 1)
		return 0;
	if (x >> 32) { x >>= 32; k += 32; }
	if (x >> 16) { x >>= 16; k += 16; }
	if (x >> 8) { x >>= 8; k += 8; }
	if (x >> 4) { x >>= 4; k += 4; }
	if (x >> 2) { x >>= 2; k += 2; }
	if (x >> 1) { k += 1; }

	__u64 m = v << (63 - k);
	__u32 idx;

	if (m == (1ULL << 63)) {
		idx = 4 * k;
	} else {
		idx = 4 * k + 1;
		idx += m > QUARTER_OCTAVE_T1;
		idx += m > QUARTER_OCTAVE_T2;
		idx += m > QUARTER_OCTAVE_T3;
	}
	return idx < LATENCY_BUCKETS ? idx : LATENCY_BUCKETS - 1;
}

#endif /* __BPF__ */
#endif /* GOROSCOPE_HISTOGRAM_H */
