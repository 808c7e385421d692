/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Off-CPU time: how long threads spent off a CPU, blocked (waiting for an
 * event: sleep, lock, I/O) or runnable (waiting for a CPU), summed in the
 * kernel per (thread, user stack, kernel stack, goroutine) at the moment the
 * thread left the CPU. No event per switch crosses to user space.
 */
#ifndef GOROSCOPE_OFFCPU_H
#define GOROSCOPE_OFFCPU_H

#include "common.h"

#define MAX_OFFCPU_ROWS 65536
/* Threads off CPU at once that raw_tp mode can follow (tp_btf uses task storage). */
#define MAX_OFFCPU_THREADS 65536

/* Where a thread was when it left the CPU. */
struct offcpu_key {
	__u32 tgid;
	__u32 tid;
	__u64 user_stack;      /* its key in stacks.h; NO_STACK: lost, or a new thread that never ran */
	__u64 kernel_stack;    /* NO_STACK: lost, or a new thread that never ran */
	__u64 goid;            /* the goroutine it was running (goroutine.h), 0: none or not Go */
	__u64 labels;          /* its runtime.g.labels, 0: none */
};
_Static_assert(sizeof(struct offcpu_key) == 40, "offcpu_key layout is part of the ABI");

/* Off-CPU intervals that ended (the thread ran again), summed. */
struct offcpu_stats {
	__u64 blocked_ns;  /* switch-out not runnable -> wakeup */
	__u64 runqueue_ns; /* wakeup, or switch-out while runnable -> switch-in */
	__u64 count;       /* intervals */
};
_Static_assert(sizeof(struct offcpu_stats) == 24, "offcpu_stats layout is part of the ABI");

#endif /* GOROSCOPE_OFFCPU_H */
