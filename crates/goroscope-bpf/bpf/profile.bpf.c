// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * On-CPU sampling. Each sample adds 1 to the row of (process, thread, user
 * stack, kernel stack, goroutine) in a shared hash map; stacks are stored
 * once each (stacks.h). User space reads both when the profile ends.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "profile.h"
#include "goroutine.h"
#include "stacks.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* x86_64: user addresses are below the canonical hole, kernel addresses above. */
#define USER_SPACE_END 0x0000800000000000ULL

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

	if (!user_mode)
		key.kernel_stack = store_stack(ctx, 0, LOSS_PROFILE_KERNEL_STACK);
	/* Kernel threads have no user stack; every process does. */
	if (task->mm)
		key.user_stack = store_stack(ctx, BPF_F_USER_STACK, LOSS_PROFILE_USER_STACK);

	if (!count_in(&samples, &key))
		count_loss(LOSS_PROFILE_SAMPLES_FULL);
	return 0;
}
