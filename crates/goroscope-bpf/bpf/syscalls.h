/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Syscall statistics aggregated in the kernel: per (process, exec, syscall)
 * a count, an error count, total and maximum latency, and a latency histogram;
 * per (process, exec, syscall, errno) an error count.
 */
#ifndef GOROSCOPE_SYSCALLS_H
#define GOROSCOPE_SYSCALLS_H

#include "common.h"
#include "histogram.h"

/* Defaults; user space sets all three before load (syscalls::Sizing). */
#define MAX_SYSCALL_ROWS 262144
#define MAX_SYSCALL_ERROR_ROWS 65536
#define SYSCALL_THREAD_SLOTS 65536 /* a power of two */
#define PENDING_COUNTS 7
#define TIMING_BURST 255

/* One row per process image: exec_id changes when the process execs. */
struct syscall_key {
	__u32 tgid;
	__u32 nr;      /* x86_64 syscall number */
	__u64 exec_id; /* the group leader's self_exec_id */
};
_Static_assert(sizeof(struct syscall_key) == 16, "syscall_key layout is part of the ABI");

/*
 * Latency is measured on a sample of calls (see struct syscall_thread): each
 * timed call is weighted by the number of calls it stands for, so the
 * histogram's count and total_ns estimate all calls up to the last timed one,
 * and equal them exactly while every call is timed.
 */
struct syscall_stats {
	__u64 count;    /* calls started (exit and exit_group never return) */
	__u64 errors;   /* calls that returned -errno */
	__u64 total_ns; /* estimated summed latency (weighted timed calls) */
	__u64 max_ns;   /* the longest timed call */
	__u64 timed;    /* calls whose latency was measured */
	char comm[COMM_LEN]; /* the group leader's, set when the row is created */
	__u64 latency[LATENCY_BUCKETS]; /* weighted: calls each timed call stands for */
};
_Static_assert(sizeof(struct syscall_stats) == 56 + 8 * LATENCY_BUCKETS,
	       "syscall_stats layout is part of the ABI");

struct syscall_error_key {
	__u32 tgid;
	__u32 nr;
	__u64 exec_id;
	__u32 err; /* errno, positive */
	__u32 _pad;
};
_Static_assert(sizeof(struct syscall_error_key) == 24, "syscall_error_key layout is part of the ABI");

/*
 * Per-thread state, in an array indexed by a hash of the thread's pt_regs
 * address (its kernel stack: unique per live thread, and readable without a
 * helper call, which costs ~25 ns here). The common call then costs two
 * array lookups and an atomic add; no clock, no hash-map lookup.
 *
 * Counts of untimed, successful calls wait in `pending` (up to
 * PENDING_COUNTS syscalls per thread) until the thread evicts one, an entry
 * nears overflow, the slot changes owner, or user space swaps them out.
 * A pending entry is one 64-bit word so both sides can move it atomically:
 * bits 0-31 the count, 32-47 the syscall number, 48-63 the low bits of `gen`
 * (the owner generation it belongs to).
 *
 * Timing: a thread times every call while it has tokens (a burst of up to
 * TIMING_BURST, refilled at the timing budget's rate); beyond that it times
 * 1 call in `countdown`, the gap drawn at random after each timed call (mean
 * 2^shift, shift chosen from the thread's call rate so it times at most the
 * budget per second). A timed call is weighted by the gap it closes.
 */
struct syscall_thread {
	__u64 owner;         /* pt_regs address of the owning thread, | 1 while it is inside a
	                      * call; 0 free, 1 being claimed */
	__u32 gen;           /* bumped on every change of owner or image */
	__u32 tgid;          /* the owner's process */
	__u64 exec_id;       /* the owner's image (group leader's self_exec_id) */
	__u64 start_ns;      /* start of the call in progress if it is timed, else 0 */
	__u64 last_timed_ns; /* when the last timed call ended */
	__u32 countdown;     /* calls until the next timed one (1: the next) */
	__u32 gap;           /* calls the next timed call stands for */
	__u16 nr;            /* the call in progress */
	__u8 _unused;
	__u8 shift;          /* gaps have mean 2^shift */
	__u8 traced;         /* the owner's process is one this run looks at */
	__u8 tokens;         /* timed calls it may make before sampling starts (a burst) */
	__u8 _pad[2];
	char comm[COMM_LEN]; /* the owner's group leader's, at claim */
	__u64 pending[PENDING_COUNTS];
};
_Static_assert(sizeof(struct syscall_thread) == 128, "syscall_thread layout is part of the ABI");

#define SLOT_OWNER_FREE 0
#define SLOT_OWNER_CLAIMING 1
#define SLOT_OWNER_IN_CALL 1 /* the bit set in `owner` (frame addresses are 8-aligned) */
#define PENDING_COUNT_MASK 0xffffffffULL
#define PENDING_TAG_SHIFT 48

#endif /* GOROSCOPE_SYSCALLS_H */
