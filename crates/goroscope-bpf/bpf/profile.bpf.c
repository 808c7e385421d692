// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * On-CPU sampling. Each sample adds 1 to the row of (process, thread, user
 * stack, kernel stack, goroutine) in a shared hash map; stacks go to a
 * stack-trace map once each. User space reads both when the profile ends.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "profile.h"
#include "goroutine.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* x86_64: user addresses are below the canonical hole, kernel addresses above. */
#define USER_SPACE_END 0x0000800000000000ULL

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, MAX_PROFILE_STACKS);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, PROFILE_STACK_DEPTH * sizeof(__u64));
} stacks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_PROFILE_ROWS);
	__type(key, struct profile_key);
	__type(value, __u64);
} samples SEC(".maps");

SEC("perf_event")
int handle__cpu_sample(struct bpf_perf_event_data *ctx)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 tgid = task->tgid;

	/* The idle task (pid 0) is no process; goroscope is not profiled unless asked. */
	if (tgid == 0 || !is_traced(task))
		return 0;

	bool user_mode = ctx->regs.ip < USER_SPACE_END;
	struct profile_key key = {
		.tgid = tgid,
		.tid = task->pid,
		.user_stack_id = PROFILE_NO_STACK,
		.kernel_stack_id = PROFILE_NO_STACK,
	};
	struct goroutine_ref goroutine;

	/* Each branch reads its own registers: merged, the context pointer would be offset. */
	if (user_mode) {
		goroutine = current_goroutine(tgid, ctx->regs.r14, ctx->regs.sp);
		key.return_at_sp = go_return_at_sp(tgid, ctx->regs.sp);
	} else {
		/* In the kernel: the registers the thread entered it with. */
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);

		goroutine = current_goroutine(tgid, regs->r14, regs->sp);
		key.return_at_sp = go_return_at_sp(tgid, regs->sp);
	}
	key.goid = goroutine.goid;
	key.labels = goroutine.labels;

	if (!user_mode) {
		long id = bpf_get_stackid(ctx, &stacks, 0);

		if (id >= 0)
			key.kernel_stack_id = id;
		else
			count_loss(LOSS_PROFILE_KERNEL_STACK);
	}
	/* Kernel threads have no user stack; every process does. */
	if (task->mm) {
		long id = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);

		if (id >= 0)
			key.user_stack_id = id;
		else
			count_loss(LOSS_PROFILE_USER_STACK);
	}

	if (!count_in(&samples, &key))
		count_loss(LOSS_PROFILE_SAMPLES_FULL);
	return 0;
}
