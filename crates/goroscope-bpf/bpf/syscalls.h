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

/* Defaults; user space sets both before load (syscalls::Sizing). */
#define MAX_SYSCALL_ROWS 262144
#define MAX_SYSCALL_ERROR_ROWS 65536

/* One row per process image: exec_id changes when the process execs. */
struct syscall_key {
	__u32 tgid;
	__u32 nr;      /* x86_64 syscall number */
	__u64 exec_id; /* the group leader's self_exec_id */
};
_Static_assert(sizeof(struct syscall_key) == 16, "syscall_key layout is part of the ABI");

struct syscall_stats {
	__u64 count;    /* calls started (exit and exit_group never return) */
	__u64 errors;   /* calls that returned -errno */
	__u64 total_ns; /* summed latency of calls that returned */
	__u64 max_ns;
	char comm[COMM_LEN]; /* the group leader's, set when the row is created */
	__u64 latency[LATENCY_BUCKETS];
};
_Static_assert(sizeof(struct syscall_stats) == 48 + 8 * LATENCY_BUCKETS,
	       "syscall_stats layout is part of the ABI");

struct syscall_error_key {
	__u32 tgid;
	__u32 nr;
	__u64 exec_id;
	__u32 err; /* errno, positive */
	__u32 _pad;
};
_Static_assert(sizeof(struct syscall_error_key) == 24, "syscall_error_key layout is part of the ABI");

#endif /* GOROSCOPE_SYSCALLS_H */
