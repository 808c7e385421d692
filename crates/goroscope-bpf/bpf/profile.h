/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * CPU sampling: a software cpu-clock perf event on every CPU runs the BPF
 * program, which counts (thread, user stack, kernel stack, goroutine) in a
 * kernel map.
 * No event per sample crosses to user space.
 */
#ifndef GOROSCOPE_PROFILE_H
#define GOROSCOPE_PROFILE_H

#include "common.h"

/* Defaults; user space sets both before load (profile::Sizing). */
#define MAX_PROFILE_STACKS 16384
#define MAX_PROFILE_ROWS 65536
#define PROFILE_STACK_DEPTH 127 /* the kernel's PERF_MAX_STACK_DEPTH */

/* A stack id the kernel could not give (see profile_key). */
#define PROFILE_NO_STACK (-1)

struct profile_key {
	__u32 tgid;
	__u32 tid;
	__s32 user_stack_id;   /* PROFILE_NO_STACK: in the kernel with no user frames, or lost */
	__s32 kernel_stack_id; /* PROFILE_NO_STACK: in user space, or lost */
	__u64 goid;            /* the goroutine running (goroutine.h), 0: none or not Go */
	__u64 labels;          /* its runtime.g.labels, 0: none */
	__u64 return_at_sp;    /* go_return_at_sp() at the user stack pointer, 0: none */
};
_Static_assert(sizeof(struct profile_key) == 40, "profile_key layout is part of the ABI");

#endif /* GOROSCOPE_PROFILE_H */
