// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Scheduler statistics per process, aggregated in the kernel.
 *
 * sched_switch counts the outgoing thread's switch as voluntary (it is no
 * longer runnable) or involuntary (preempted, or still runnable), and stamps
 * the thread: blocked since now, or waiting for a CPU since now. sched_wakeup
 * and sched_wakeup_new turn a blocked stamp into a blocked time and stamp the
 * thread as waiting for a CPU; the sched_switch that next runs it turns that
 * into one run-queue latency sample and adds both to the process's row.
 * Everything lands in a hash row per (process, exec) shared by all CPUs
 * (atomic adds); nothing is streamed.
 *
 * sched_switch and sched_wakeup are among the hottest tracepoints of a busy
 * host: a switch costs at most two row lookups and two stamp lookups, a
 * wakeup one stamp lookup (its blocked time waits in the stamps for the
 * switch-in, which looks the row up anyway).
 *
 * Per-thread stamps live in task storage in tp_btf mode. raw_tp arguments
 * are untyped pointers, which task storage refuses, so in raw_tp mode the
 * stamps live in an LRU hash keyed by thread id instead (a thread evicted
 * from it loses one sample, silently: the LRU gives no sign).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "sched.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* From include/linux/sched.h. */
#define TASK_RUNNING 0x0000
#define TASK_DEAD 0x0080

/*
 * Set by user space: true when the tp_btf handlers are loaded (task
 * pointers are BTF-typed), false for raw_tp. The verifier knows read-only
 * data, so each mode's dead branches are never checked.
 */
const volatile bool typed_args = true;

/* Per-thread stamps, CLOCK_MONOTONIC ns; 0 means "not in that state". */
struct sched_thread {
	__u64 ready_ns;         /* runnable, waiting for a CPU, since */
	__u64 blocked_since_ns; /* switched out not runnable, not yet woken, since */
	__u64 woken_after_ns;   /* blocked time of the last wakeup, not yet in a row */
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct sched_thread);
} thread_times SEC(".maps");

/* raw_tp mode only; user space shrinks it to one entry in tp_btf mode. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_SCHED_THREADS);
	__type(key, __u32);
	__type(value, struct sched_thread);
} thread_times_by_tid SEC(".maps");

/*
 * Shared by all CPUs (atomic adds), so its memory does not grow with the CPU
 * count. Preallocated, unlike the syscall rows: sched_switch runs with
 * interrupts off under the run-queue lock, where the BPF allocator cannot
 * refill its per-CPU reserve, and on-demand rows were lost in process churn
 * (measured: 1 in 4,000 starts). One row per process image keeps the
 * preallocation small. User space sizes it before load.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SCHED_ROWS);
	__type(key, struct sched_key);
	__type(value, struct sched_stats);
} sched_rows SEC(".maps");

/* A new row's initial value, per CPU: zeros and the name (only comm is written). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sched_stats);
} new_row SEC(".maps");
const struct sched_thread empty_thread = {};

/* A task pointer argument the handler may dereference. */
static __always_inline struct task_struct *task_arg(struct task_struct *t)
{
	if (typed_args)
		return t;
	return bpf_core_cast(t, struct task_struct);
}

/* The thread's stamps, created when `create`; NULL when there are none. */
static __always_inline struct sched_thread *thread_stamps(struct task_struct *t, bool create)
{
	if (typed_args)
		return bpf_task_storage_get(&thread_times, t, 0,
					    create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);

	__u32 tid = t->pid;
	struct sched_thread *th = bpf_map_lookup_elem(&thread_times_by_tid, &tid);

	if (th || !create)
		return th;
	bpf_map_update_elem(&thread_times_by_tid, &tid, &empty_thread, BPF_NOEXIST);
	return bpf_map_lookup_elem(&thread_times_by_tid, &tid);
}

/* The row of the process `t` belongs to, created when `create`. */
static __always_inline struct sched_stats *row_of(struct task_struct *t, bool create)
{
	struct task_struct *leader = t->group_leader;
	struct sched_key key = {
		.tgid = t->tgid,
		._pad = 0,
		.exec_id = leader->self_exec_id,
	};
	struct sched_stats *row = bpf_map_lookup_elem(&sched_rows, &key);
	__u32 zero = 0;

	if (row || !create)
		return row;
	struct sched_stats *init = bpf_map_lookup_elem(&new_row, &zero);
	if (!init)
		return 0;
	bpf_probe_read_kernel(init->comm, sizeof(init->comm), leader->comm);
	/* Another CPU may insert the same key first: EEXIST is fine, look again. */
	bpf_map_update_elem(&sched_rows, &key, init, BPF_NOEXIST);
	row = bpf_map_lookup_elem(&sched_rows, &key);
	if (!row)
		count_loss(LOSS_SCHED_ROWS_FULL);
	return row;
}

static __always_inline void switched_out(struct task_struct *prev, bool preempt,
					 unsigned int prev_state, __u64 now)
{
	bool voluntary = !preempt && prev_state != TASK_RUNNING;
	/*
	 * A dead thread's last switch: count it only into an existing row, so
	 * a row that user space forgot on exit does not come back.
	 */
	bool dead = prev_state & TASK_DEAD;
	struct sched_stats *row = row_of(prev, !dead);

	if (row) {
		if (voluntary)
			__sync_fetch_and_add(&row->voluntary_switches, 1);
		else
			__sync_fetch_and_add(&row->involuntary_switches, 1);
	}
	if (dead)
		return;

	struct sched_thread *th = thread_stamps(prev, true);

	if (!th) {
		count_loss(LOSS_SCHED_TASK_STORAGE);
		return;
	}
	th->woken_after_ns = 0;
	if (voluntary) {
		th->blocked_since_ns = now;
		th->ready_ns = 0;
	} else {
		th->ready_ns = now;
		th->blocked_since_ns = 0;
	}
}

static __always_inline void switched_in(struct task_struct *next, __u64 now)
{
	struct sched_thread *th = thread_stamps(next, false);

	if (!th)
		return; /* not seen since the collector started */

	__u64 ready = th->ready_ns, blocked = th->woken_after_ns;

	/* Running now: any stamp left (a wakeup not seen) is stale. */
	th->ready_ns = 0;
	th->blocked_since_ns = 0;
	th->woken_after_ns = 0;
	if (!ready)
		return;

	__s64 wait = now - ready;
	struct sched_stats *row = row_of(next, true);

	if (!row)
		return;
	if (blocked)
		__sync_fetch_and_add(&row->blocked_ns, blocked);
	if (wait < 0)
		return;
	__sync_fetch_and_add(&row->runqueue_total_ns, wait);
	__u32 bucket = latency_bucket(wait);
	if (bucket < LATENCY_BUCKETS)
		__sync_fetch_and_add(&row->runqueue[bucket], 1);
}

static __always_inline int on_switch(bool preempt, struct task_struct *prev_arg,
				     struct task_struct *next_arg, unsigned int prev_state)
{
	__u64 now = bpf_ktime_get_ns();
	struct task_struct *prev = task_arg(prev_arg);
	struct task_struct *next = task_arg(next_arg);

	/* pid 0 is a CPU's idle task, not a process. */
	if (prev->pid && is_traced(prev))
		switched_out(prev, preempt, prev_state, now);
	if (next->pid && is_traced(next))
		switched_in(next, now);
	return 0;
}

static __always_inline int on_wakeup(struct task_struct *p_arg)
{
	struct task_struct *p = task_arg(p_arg);

	if (!p->pid || !is_traced(p))
		return 0;

	__u64 now = bpf_ktime_get_ns();
	struct sched_thread *th = thread_stamps(p, true);

	if (!th) {
		count_loss(LOSS_SCHED_TASK_STORAGE);
		return 0;
	}
	if (th->blocked_since_ns) {
		__s64 blocked = now - th->blocked_since_ns;

		/* Added to the row when the thread runs (switched_in). */
		th->woken_after_ns = blocked > 0 ? blocked : 0;
		th->blocked_since_ns = 0;
	}
	th->ready_ns = now;
	return 0;
}

DEFINE_TRACE_HANDLERS(sched_switch, on_switch(preempt, prev, next, prev_state), bool preempt,
		      struct task_struct *prev, struct task_struct *next, unsigned int prev_state)
DEFINE_TRACE_HANDLERS(sched_wakeup, on_wakeup(p), struct task_struct *p)
DEFINE_TRACE_HANDLERS(sched_wakeup_new, on_wakeup(p), struct task_struct *p)
