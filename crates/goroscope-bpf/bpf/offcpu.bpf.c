// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Off-CPU time per (thread, user stack, kernel stack, goroutine).
 *
 * sched_switch, for the thread leaving the CPU (prev, which is still the
 * current task there): takes its kernel and user stacks and its goroutine,
 * and remembers them with the time and whether it left runnable (preempted
 * or yielding: it waits for a CPU from now) or blocked. sched_wakeup(_new)
 * notes when a blocked thread became runnable. sched_switch, for the thread
 * coming back (next): splits the time since it left into blocked (left ->
 * wakeup) and run-queue (wakeup, or leaving runnable -> now) and adds both,
 * with one interval, to the row of where it had left. Intervals shorter than
 * min_duration_ns are dropped at that point. Nothing is streamed.
 *
 * A thread's state exists only between its switch-out and its switch-in: in
 * tp_btf mode in task storage (freed with the task), in raw_tp mode (whose
 * untyped task pointers task storage refuses) in a hash by thread id whose
 * entry the switch-in deletes. A thread cannot exit off CPU (it runs its own
 * exit) and its last switch (TASK_DEAD) records nothing and deletes what is
 * left, so no state outlives a thread.
 *
 * The kernel does not always report a switch-in: measured on 6.18, about one
 * in a thousand times a thread that napped ran again with neither its
 * sched_wakeup nor its sched_switch seen, by these programs or by bpftrace's.
 * The thread's next switch-out then finds its interval still open. It ended
 * when the thread began its latest run, and the scheduler's count of the
 * thread's run time (se.sum_exec_runtime, kept at every switch-out) says how
 * long that run was: the interval is closed there and counted in
 * unseen_switch_ins, so none is lost and none swallows the next.
 *
 * Kernel threads are not followed: their time off CPU is their idle time.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "offcpu.h"
#include "goroutine.h"
#include "stacks.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* From include/linux/sched.h. */
#define TASK_RUNNING 0x0000
#define TASK_DEAD 0x0080
#define PF_KTHREAD 0x00200000

/* Set by user space: true when the tp_btf handlers are loaded (see sched.bpf.c). */
const volatile bool typed_args = true;
/* Set by user space: shorter off-CPU intervals are not added to any row. */
const volatile __u64 min_duration_ns = 0;

/* A thread off CPU: where it left, when, and since when it waits for a CPU. */
struct offcpu_thread {
	struct offcpu_key where;
	__u64 off_ns;   /* left the CPU at (CLOCK_MONOTONIC); 0: on a CPU, or not followed */
	__u64 ready_ns; /* runnable since (its wakeup, or off_ns if it left runnable); 0: blocked */
	__u64 ran_ns;   /* its run time (se.sum_exec_runtime) when it left */
};

/* Intervals closed at the next switch-out, their switch-in unseen (read by user space). */
__u64 unseen_switch_ins = 0;

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct offcpu_thread);
} offcpu_threads SEC(".maps");

/*
 * raw_tp mode only (user space shrinks it to one entry in tp_btf mode).
 * Preallocated: sched_switch runs under the run-queue lock, where the BPF
 * allocator cannot refill.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_OFFCPU_THREADS);
	__type(key, __u32);
	__type(value, struct offcpu_thread);
} offcpu_threads_by_tid SEC(".maps");

/* Shared by all CPUs (atomic adds) and preallocated, like the scheduler's rows. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_OFFCPU_ROWS);
	__type(key, struct offcpu_key);
	__type(value, struct offcpu_stats);
} offcpu_rows SEC(".maps");

/* A task pointer argument the handler may dereference. */
static __always_inline struct task_struct *task_arg(struct task_struct *t)
{
	if (typed_args)
		return t;
	return bpf_core_cast(t, struct task_struct);
}

/* The state of thread t, NULL when it has none. */
static __always_inline struct offcpu_thread *thread_state(struct task_struct *t)
{
	if (typed_args)
		return bpf_task_storage_get(&offcpu_threads, t, 0, 0);

	__u32 tid = t->pid;

	return bpf_map_lookup_elem(&offcpu_threads_by_tid, &tid);
}

/*
 * Stores thread t's state; false when there is no room. th: its state as
 * thread_state() found it, or NULL (tp_btf mode then looks it up, creating
 * it; raw_tp mode always writes the hash, whose entry a close may have
 * deleted since).
 */
static __always_inline bool save_thread_state(struct task_struct *t, struct offcpu_thread *th,
					      const struct offcpu_thread *st)
{
	if (typed_args) {
		if (!th)
			th = bpf_task_storage_get(&offcpu_threads, t, 0,
						  BPF_LOCAL_STORAGE_GET_F_CREATE);
		if (!th)
			return false;
		*th = *st;
		return true;
	}
	__u32 tid = st->where.tid;

	return bpf_map_update_elem(&offcpu_threads_by_tid, &tid, st, BPF_ANY) == 0;
}

/* Is t a user thread this run follows? */
static __always_inline bool followed(struct task_struct *t)
{
	/* The idle tasks (pid 0) are kernel threads too. */
	return !(t->flags & PF_KTHREAD) && is_traced(t);
}

static __always_inline void add_to_row(const struct offcpu_key *where, __u64 blocked,
				       __u64 runqueue)
{
	struct offcpu_stats *row = bpf_map_lookup_elem(&offcpu_rows, where);

	if (!row) {
		struct offcpu_stats zero = {};

		/* Another CPU may insert the same key first: EEXIST is fine, look again. */
		bpf_map_update_elem(&offcpu_rows, where, &zero, BPF_NOEXIST);
		row = bpf_map_lookup_elem(&offcpu_rows, where);
		if (!row) {
			count_loss(LOSS_OFFCPU_ROWS_FULL);
			return;
		}
	}
	if (blocked)
		__sync_fetch_and_add(&row->blocked_ns, blocked);
	if (runqueue)
		__sync_fetch_and_add(&row->runqueue_ns, runqueue);
	__sync_fetch_and_add(&row->count, 1);
}

/* Ends thread state: in raw_tp mode its entry goes (task storage lives as long as the task). */
static __always_inline void forget_thread(struct offcpu_thread *th)
{
	if (typed_args) {
		th->off_ns = 0;
	} else {
		__u32 tid = th->where.tid;

		bpf_map_delete_elem(&offcpu_threads_by_tid, &tid);
	}
}

/*
 * Adds the interval th holds, which ended at end, to its row and ends the
 * thread's state. Copies first: in raw_tp mode the entry goes.
 */
static __always_inline void close_interval(struct offcpu_thread *th, __u64 end)
{
	struct offcpu_key where = th->where;
	__u64 off = th->off_ns, ready = th->ready_ns;

	forget_thread(th);
	if (end < off || end - off < min_duration_ns)
		return;
	if (ready < off || ready > end)
		ready = 0;
	/* No wakeup seen (ready 0): all of it counts as blocked. */
	if (!ready)
		add_to_row(&where, end - off, 0);
	else
		add_to_row(&where, ready - off, end - ready);
}

/*
 * prev leaves the CPU with an interval still open: its switch-in went
 * unseen (see the top of this file). That interval ended when its latest
 * run began, ran_now - th->ran_ns before now.
 */
static __always_inline void close_unseen(struct offcpu_thread *th, __u64 ran_now, __u64 now)
{
	__u64 ran = ran_now > th->ran_ns ? ran_now - th->ran_ns : 0;

	__sync_fetch_and_add(&unseen_switch_ins, 1);
	close_interval(th, ran < now ? now - ran : 0);
}

/* prev is the current task: the stack helpers read its stacks. */
static __always_inline void switched_out(void *ctx, struct task_struct *prev, bool preempt,
					 unsigned int prev_state, __u64 now)
{
	__u64 ran = prev->se.sum_exec_runtime;
	struct offcpu_thread *open = thread_state(prev);

	if (open && open->off_ns)
		close_unseen(open, ran, now);
	/* Its last switch: it never runs again. */
	if (prev_state & TASK_DEAD)
		return;

	struct offcpu_thread st = {
		.where = {
			.tgid = prev->tgid,
			.tid = prev->pid,
		},
		.off_ns = now,
		.ready_ns = preempt || prev_state == TASK_RUNNING ? now : 0,
		.ran_ns = ran,
	};
	st.where.kernel_stack = store_stack(ctx, 0, LOSS_OFFCPU_KERNEL_STACK);
	/* A thread past exit_mm() has no user side left. */
	if (prev->mm) {
		/* The registers it entered the kernel with. */
		struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(prev);
		struct goroutine_ref goroutine = current_goroutine(st.where.tgid, regs->r14, regs->sp);

		st.where.goid = goroutine.goid;
		st.where.labels = goroutine.labels;
		st.where.user_stack = store_stack(ctx, BPF_F_USER_STACK, LOSS_OFFCPU_USER_STACK);
	}
	/* In tp_btf mode the storage found above is written again: one lookup per switch-out. */
	if (!save_thread_state(prev, open, &st))
		count_loss(LOSS_OFFCPU_THREADS);
}

static __always_inline void switched_in(struct task_struct *next, __u64 now)
{
	struct offcpu_thread *th = thread_state(next);

	if (th && th->off_ns)
		close_interval(th, now);
}

static __always_inline int on_switch(void *ctx, bool preempt, struct task_struct *prev_arg,
				     struct task_struct *next_arg, unsigned int prev_state)
{
	__u64 now = bpf_ktime_get_ns();
	/*
	 * In raw_tp mode prev is untyped, and task storage and bpf_task_pt_regs
	 * want a trusted task: the tracepoint runs before the switch, so
	 * current is prev.
	 */
	struct task_struct *prev = typed_args ? prev_arg : bpf_get_current_task_btf();
	struct task_struct *next = task_arg(next_arg);

	if (followed(prev))
		switched_out(ctx, prev, preempt, prev_state, now);
	/* What it recorded at switch-out decides; no filter check needed. */
	if (!(next->flags & PF_KTHREAD))
		switched_in(next, now);
	return 0;
}

static __always_inline int on_wakeup(struct task_struct *p_arg)
{
	struct task_struct *p = task_arg(p_arg);
	struct offcpu_thread *th;

	if (p->flags & PF_KTHREAD)
		return 0;
	th = thread_state(p);
	/* Only the first wakeup of a blocked thread; a runnable one keeps its time. */
	if (th && th->off_ns && !th->ready_ns)
		th->ready_ns = bpf_ktime_get_ns();
	return 0;
}

/*
 * A new thread waits for its first CPU from here; it has never run, so its
 * row has no stacks and no goroutine.
 */
static __always_inline int on_wakeup_new(struct task_struct *p_arg)
{
	struct task_struct *p = task_arg(p_arg);

	if (!followed(p))
		return 0;

	__u64 now = bpf_ktime_get_ns();
	struct offcpu_thread st = {
		.where = {
			.tgid = p->tgid,
			.tid = p->pid,
		},
		.off_ns = now,
		.ready_ns = now,
	};

	if (!save_thread_state(p, NULL, &st))
		count_loss(LOSS_OFFCPU_THREADS);
	return 0;
}

DEFINE_TRACE_HANDLERS(sched_switch, on_switch(ctx, preempt, prev, next, prev_state), bool preempt,
		      struct task_struct *prev, struct task_struct *next, unsigned int prev_state)
DEFINE_TRACE_HANDLERS(sched_wakeup, on_wakeup(p), struct task_struct *p)
DEFINE_TRACE_HANDLERS(sched_wakeup_new, on_wakeup_new(p), struct task_struct *p)
