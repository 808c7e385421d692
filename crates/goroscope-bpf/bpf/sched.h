/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Scheduler statistics aggregated in the kernel, per process image (process,
 * exec): voluntary and involuntary context switches, run-queue latency (a
 * histogram, its sum) and blocked (off-CPU, not runnable) time.
 */
#ifndef GOROSCOPE_SCHED_H
#define GOROSCOPE_SCHED_H

#include "common.h"
#include "histogram.h"

/* Default size of the row map; user space sets it before load (sched::Sizing). */
#define MAX_SCHED_ROWS 16384
/* Threads followed at once in raw_tp mode (which cannot use task storage). */
#define MAX_SCHED_THREADS 32768

/* One row per process image: exec_id changes when the process execs. */
struct sched_key {
	__u32 tgid;
	__u32 _pad;
	__u64 exec_id; /* the group leader's self_exec_id */
};
_Static_assert(sizeof(struct sched_key) == 16, "sched_key layout is part of the ABI");

struct sched_stats {
	__u64 voluntary_switches;   /* switched out not runnable (blocked, slept, exited) */
	__u64 involuntary_switches; /* switched out while runnable (preempted, yielded) */
	__u64 runqueue_total_ns;    /* summed wait for a CPU once runnable */
	__u64 blocked_ns;           /* summed time from a voluntary switch-out to the wakeup */
	char comm[COMM_LEN];        /* the group leader's, set when the row is created */
	__u64 runqueue[LATENCY_BUCKETS]; /* run-queue latency histogram, ns */
};
_Static_assert(sizeof(struct sched_stats) == 48 + 8 * LATENCY_BUCKETS,
	       "sched_stats layout is part of the ABI");

#endif /* GOROSCOPE_SCHED_H */
