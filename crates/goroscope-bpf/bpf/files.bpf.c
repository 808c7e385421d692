// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * File opens. sys_enter keeps the arguments of open, openat and openat2 in
 * the thread's task storage; sys_exit reads the path (the kernel has just
 * faulted it in) and emits one ring-buffer record with the result. Every
 * other syscall costs one comparison.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "files.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define NR_OPEN 2
#define NR_OPENAT 257
#define NR_OPENAT2 437
#define AT_FDCWD -100

struct open_args {
	__u64 path;  /* user pointer */
	__u64 flags; /* or, for openat2, the user pointer to struct open_how */
	__u32 mode;
	__s32 dirfd;
	__u32 nr;    /* 0: no open in flight */
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct open_args);
} open_inflight SEC(".maps");

/* Shared by every event object: user space creates one and reuses its fd. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 * 1024 * 1024);
} events SEC(".maps");

/* Referenced so that the skeleton generates its Rust type. */
struct open_event _open_event = {};

static __always_inline int on_sys_enter(struct pt_regs *regs, long id)
{
	if (id != NR_OPENAT && id != NR_OPEN && id != NR_OPENAT2)
		return 0;
	struct task_struct *task = bpf_get_current_task_btf();
	if (!is_traced(task))
		return 0;
	struct open_args *a =
		bpf_task_storage_get(&open_inflight, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!a) {
		count_loss(LOSS_TASK_STORAGE);
		return 0;
	}
	/* x86_64 syscall arguments: di, si, dx, r10. */
	__u64 di = BPF_CORE_READ(regs, di), si = BPF_CORE_READ(regs, si), dx = BPF_CORE_READ(regs, dx);
	if (id == NR_OPEN) {
		a->dirfd = AT_FDCWD;
		a->path = di;
		a->flags = si;
		a->mode = dx;
	} else {
		a->dirfd = di;
		a->path = si;
		a->flags = dx; /* openat2: pointer to struct open_how */
		a->mode = id == NR_OPENAT ? BPF_CORE_READ(regs, r10) : 0;
	}
	a->nr = id;
	return 0;
}

static __always_inline int on_sys_exit(long ret)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct open_args *a = bpf_task_storage_get(&open_inflight, task, 0, 0);

	if (!a || !a->nr)
		return 0;
	__u32 nr = a->nr;
	a->nr = 0;

	struct open_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		count_loss(LOSS_RINGBUF_OPEN);
		return 0;
	}
	fill_header(&e->hdr, task, EVENT_OPEN);
	e->ret = ret;
	e->dirfd = a->dirfd;
	e->syscall_nr = nr;
	e->mode = a->mode;
	if (nr == NR_OPENAT2) {
		struct open_how how = {};

		bpf_probe_read_user(&how, sizeof(how), (void *)a->flags);
		e->flags = how.flags;
		e->mode = how.mode;
	} else {
		e->flags = a->flags;
	}
	long n = bpf_probe_read_user_str(e->path, sizeof(e->path), (void *)a->path);
	e->path_len = n > 0 ? n - 1 : 0;
	bpf_ringbuf_submit(e, ringbuf_submit_flags(&events));
	return 0;
}

DEFINE_TRACE_HANDLERS(sys_enter, on_sys_enter(regs, id), struct pt_regs *regs, long id)
DEFINE_TRACE_HANDLERS(sys_exit, on_sys_exit(ret), struct pt_regs *regs, long ret)
