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

#define MAX_PROFILE_ROWS 65536

struct profile_key {
	__u32 tgid;
	__u32 tid;
	__u64 user_stack;      /* its key in stacks.h; NO_STACK: a kernel thread, or lost */
	__u64 kernel_stack;    /* NO_STACK: sampled in user space, or lost */
	__u64 goid;            /* the goroutine running (goroutine.h), 0: none or not Go */
	__u64 labels;          /* its runtime.g.labels, 0: none */
	__u64 return_at_sp;    /* go_return_at_sp() at the user stack pointer, 0: none */
};
_Static_assert(sizeof(struct profile_key) == 48, "profile_key layout is part of the ABI");

#endif /* GOROSCOPE_PROFILE_H */
