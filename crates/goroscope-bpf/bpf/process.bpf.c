// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Process lifecycle: fork (new processes only), exec and exit (when the last
 * thread of a process exits). These are low-rate, so each is one ring-buffer
 * record; a full ring buffer is counted per event kind, never silent.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "process.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* From include/linux/sched/signal.h: the whole thread group is exiting. */
#define SIGNAL_GROUP_EXIT 0x00000004

/* Set by user space: copy the command line into exec events (it can hold secrets). */
const volatile bool capture_args = false;

/* Shared by every event object: user space creates one and reuses its fd. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024);
} events SEC(".maps");

/* Referenced so that the skeleton generates their Rust types. */
struct exec_event _exec_event = {};
struct exit_event _exit_event = {};
struct fork_event _fork_event = {};

static __always_inline int on_exec(struct task_struct *p, struct linux_binprm *bprm)
{
	struct task_struct *task = bpf_get_current_task_btf();

	if (!is_traced(task))
		return 0;
	struct exec_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_loss(LOSS_RINGBUF_EXEC);
		return 0;
	}
	fill_header(&e->hdr, task, EVENT_EXEC);
	e->ppid = task->real_parent->tgid;

	const char *filename = BPF_CORE_READ(bprm, filename);
	long n = bpf_probe_read_kernel_str(e->filename, sizeof(e->filename), filename);
	e->filename_len = n > 0 ? n - 1 : 0;

	e->args_len = 0;
	e->args_truncated = 0;
	if (capture_args) {
		struct mm_struct *mm = task->mm;
		unsigned long start = mm->arg_start, end = mm->arg_end;
		unsigned long len = end - start;

		/* At most EXEC_ARGS_LEN - 1 bytes, so the mask below bounds it for the verifier. */
		if (len > EXEC_ARGS_LEN - 1) {
			len = EXEC_ARGS_LEN - 1;
			e->args_truncated = 1;
		}
		len &= EXEC_ARGS_LEN - 1;
		if (len > 0 && bpf_probe_read_user(e->args, len, (void *)start) == 0)
			e->args_len = len;
	}
	bpf_ringbuf_submit(e, ringbuf_submit_flags(&events));
	return 0;
}

static __always_inline int on_exit(struct task_struct *p)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct signal_struct *sig = task->signal;

	/* Only when the last thread of the process exits. */
	if (sig->live.counter != 0)
		return 0;
	if (!is_traced(task))
		return 0;
	struct exit_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_loss(LOSS_RINGBUF_EXIT);
		return 0;
	}
	fill_header(&e->hdr, task, EVENT_EXIT);
	e->ppid = task->real_parent->tgid;
	e->wait_status = (sig->flags & SIGNAL_GROUP_EXIT) ? sig->group_exit_code : task->exit_code;
	e->lifetime_ns = bpf_ktime_get_ns() - task->group_leader->start_time;
	bpf_ringbuf_submit(e, ringbuf_submit_flags(&events));
	return 0;
}

static __always_inline int on_fork(struct task_struct *parent, struct task_struct *child)
{
	struct task_struct *task = bpf_get_current_task_btf();
	__u32 child_pid = BPF_CORE_READ(child, pid), child_tgid = BPF_CORE_READ(child, tgid);

	if (child_pid != child_tgid) /* a new thread, not a new process */
		return 0;
	if (!is_traced(task))
		return 0;
	struct fork_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_loss(LOSS_RINGBUF_FORK);
		return 0;
	}
	fill_header(&e->hdr, task, EVENT_FORK);
	e->child_pid = child_tgid;
	e->_pad = 0;
	bpf_ringbuf_submit(e, ringbuf_submit_flags(&events));
	return 0;
}

DEFINE_TRACE_HANDLERS(sched_process_exec, on_exec(p, bprm), struct task_struct *p, pid_t old_pid,
		      struct linux_binprm *bprm)
DEFINE_TRACE_HANDLERS(sched_process_exit, on_exit(p), struct task_struct *p)
DEFINE_TRACE_HANDLERS(sched_process_fork, on_fork(parent, child), struct task_struct *parent,
		      struct task_struct *child)
