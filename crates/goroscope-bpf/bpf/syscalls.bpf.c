// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Host-wide syscall statistics, aggregated in the kernel.
 *
 * sys_enter stamps the thread's task storage with the start time and syscall
 * number; sys_exit turns that into one update of a hash row shared by all
 * CPUs, keyed by (process, exec, syscall), and, on failure, of an errno row.
 * Nothing is streamed: user space reads the maps (in batches) when it reports.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "syscalls.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define NR_EXIT 60
#define NR_EXIT_GROUP 231
#define MAX_ERRNO 4095

struct syscall_inflight {
	__u64 start_ns;
	__u32 nr;
	__u32 _pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct syscall_inflight);
} inflight SEC(".maps");

/*
 * Rows are shared by all CPUs (updated with atomic adds), so their memory does
 * not grow with the CPU count, and allocated on demand (BPF_F_NO_PREALLOC),
 * so a small host pays only for the rows it has: ~1.4 KB per (process, exec,
 * syscall). The kernel's BPF allocator keeps a per-CPU reserve it refills
 * from irq_work between syscalls, so a burst of new rows does not fail (the
 * churn tests count every loss). User space sets max_entries before load.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MAX_SYSCALL_ROWS);
	__type(key, struct syscall_key);
	__type(value, struct syscall_stats);
} syscall_rows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, MAX_SYSCALL_ERROR_ROWS);
	__type(key, struct syscall_error_key);
	__type(value, __u64);
} syscall_errors SEC(".maps");

/*
 * The initial value of a new row, built per CPU (too large for the BPF
 * stack): zero counters and the process's name, so a row is never seen
 * without its name. Only `comm` is ever written here.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct syscall_stats);
} new_row SEC(".maps");

static __always_inline struct syscall_stats *row_for(struct syscall_key *key, struct task_struct *task)
{
	struct syscall_stats *row = bpf_map_lookup_elem(&syscall_rows, key);
	__u32 zero = 0;

	if (row)
		return row;
	struct syscall_stats *init = bpf_map_lookup_elem(&new_row, &zero);
	if (!init)
		return 0;
	bpf_probe_read_kernel(init->comm, sizeof(init->comm), task->group_leader->comm);
	/* Another CPU may insert the same key first: EEXIST is fine, look again. */
	bpf_map_update_elem(&syscall_rows, key, init, BPF_NOEXIST);
	row = bpf_map_lookup_elem(&syscall_rows, key);
	if (!row)
		count_loss(LOSS_SYSCALL_STATS_FULL);
	return row;
}

static __always_inline int on_sys_enter(long id)
{
	struct task_struct *task = bpf_get_current_task_btf();

	if (!is_traced(task))
		return 0;
	if (id == NR_EXIT || id == NR_EXIT_GROUP) {
		/* These never return: count the call now, untimed. */
		struct syscall_key key = {
			.tgid = task->tgid,
			.nr = id,
			.exec_id = task->group_leader->self_exec_id,
		};
		struct syscall_stats *row = row_for(&key, task);

		if (row)
			__sync_fetch_and_add(&row->count, 1);
		return 0;
	}

	struct syscall_inflight *f =
		bpf_task_storage_get(&inflight, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!f) {
		count_loss(LOSS_TASK_STORAGE);
		return 0;
	}
	f->nr = id;
	f->start_ns = bpf_ktime_get_ns();
	return 0;
}

static __always_inline int on_sys_exit(long ret)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct syscall_inflight *f = bpf_task_storage_get(&inflight, task, 0, 0);

	if (!f || !f->start_ns)
		return 0;

	__u64 latency = bpf_ktime_get_ns() - f->start_ns;
	struct syscall_key key = {
		.tgid = task->tgid,
		.nr = f->nr,
		.exec_id = task->group_leader->self_exec_id,
	};

	f->start_ns = 0;
	struct syscall_stats *row = row_for(&key, task);
	if (!row)
		return 0;

	__sync_fetch_and_add(&row->count, 1);
	__sync_fetch_and_add(&row->total_ns, latency);
	/* Racy between CPUs updating the same row at once: max is a gauge. */
	if (latency > row->max_ns)
		row->max_ns = latency;
	__u32 bucket = latency_bucket(latency);
	if (bucket < LATENCY_BUCKETS)
		__sync_fetch_and_add(&row->latency[bucket], 1);

	if (ret < 0 && ret >= -MAX_ERRNO) {
		struct syscall_error_key ekey = {
			.tgid = key.tgid,
			.nr = key.nr,
			.exec_id = key.exec_id,
			.err = -ret,
		};
		__u64 one = 1, *n;

		__sync_fetch_and_add(&row->errors, 1);
		n = bpf_map_lookup_elem(&syscall_errors, &ekey);
		if (n) {
			__sync_fetch_and_add(n, 1);
		} else if (bpf_map_update_elem(&syscall_errors, &ekey, &one, BPF_NOEXIST)) {
			/* Lost a race with another CPU's insert, or the map is full. */
			n = bpf_map_lookup_elem(&syscall_errors, &ekey);
			if (n)
				__sync_fetch_and_add(n, 1);
			else
				count_loss(LOSS_SYSCALL_ERRORS_FULL);
		}
	}
	return 0;
}

DEFINE_TRACE_HANDLERS(sys_enter, on_sys_enter(id), struct pt_regs *regs, long id)
DEFINE_TRACE_HANDLERS(sys_exit, on_sys_exit(ret), struct pt_regs *regs, long ret)

/*
 * Empty programs on the same two hooks: what any syscall timer pays at
 * least, the floor bench/syscall-overhead.sh compares with. The collector
 * never loads them (syscalls::FloorPrograms does).
 */
SEC("tp_btf/sys_enter")
int BPF_PROG(floor__sys_enter, struct pt_regs *regs, long id) { return 0; }
SEC("tp_btf/sys_exit")
int BPF_PROG(floor__sys_exit, struct pt_regs *regs, long ret) { return 0; }
