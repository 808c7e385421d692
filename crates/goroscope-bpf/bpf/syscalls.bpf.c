// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Host-wide syscall statistics, aggregated in the kernel.
 *
 * Every call is counted, exactly, per (process, exec, syscall) and, on
 * failure, per errno; a sample of calls is timed (struct syscall_thread in
 * syscalls.h). The common call (untimed, successful) touches only the
 * thread's slot: it costs no helper call, no clock read and no hash lookup,
 * which together cost ~300 ns per call here. Calls that fail or are timed
 * update the shared rows at once; the rest wait in the slot's pending
 * counts, which user space swaps out when it reads. Nothing is streamed.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "syscalls.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define NR_EXECVE 59
#define NR_EXIT 60
#define NR_EXIT_GROUP 231
#define NR_EXECVEAT 322
#define MAX_ERRNO 4095
#define MAX_SHIFT 20
/* A pending count is moved to its row before it can overflow 32 bits. */
#define PENDING_FLUSH_AT (1U << 31)

/* Set by user space before load (syscalls::Sizing, syscalls::Timing). */
const volatile __u32 thread_slot_mask = SYSCALL_THREAD_SLOTS - 1;
/* At most one timed call per this many ns per thread; 0 times every call. */
const volatile __u64 timing_interval_ns = 100000;

/* Where the syscall frame sits in a kernel stack; learnt at the first claim. */
__u64 regs_offset = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, SYSCALL_THREAD_SLOTS);
	__type(key, __u32);
	__type(value, struct syscall_thread);
} threads SEC(".maps");

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

#define SLOT_WAYS 4

/* The first of the SLOT_WAYS slots a thread whose syscall frame is at `regs` may own. */
static __always_inline __u32 slot_index(__u64 regs)
{
	/* Stacks are 16 KiB apart: hash the bits above that (Fibonacci hashing). */
	return (__u32)(((regs >> 14) * 0x9E3779B97F4A7C15ULL) >> 32) & thread_slot_mask;
}

/* The slot the thread at `regs` owns, or 0. */
static __always_inline struct syscall_thread *owned_slot(__u64 regs)
{
	__u32 base = slot_index(regs);

	for (__u32 way = 0; way < SLOT_WAYS; way++) {
		__u32 idx = base ^ way;
		struct syscall_thread *s = bpf_map_lookup_elem(&threads, &idx);

		if (s && (s->owner & ~SLOT_OWNER_IN_CALL) == regs)
			return s;
	}
	return 0;
}

/*
 * A slot for the thread at `regs` to claim: a free one, else one whose owner
 * is not inside a call (it claims another on its next call), else 0.
 */
static __always_inline struct syscall_thread *claimable_slot(__u64 regs)
{
	__u32 base = slot_index(regs);
	struct syscall_thread *idle = 0;

	for (__u32 way = 0; way < SLOT_WAYS; way++) {
		__u32 idx = base ^ way;
		struct syscall_thread *s = bpf_map_lookup_elem(&threads, &idx);

		if (!s)
			continue;
		if (s->owner == SLOT_OWNER_FREE)
			return s;
		if (!idle && s->owner != SLOT_OWNER_CLAIMING && !(s->owner & SLOT_OWNER_IN_CALL))
			idle = s;
	}
	return idle;
}

static __always_inline struct syscall_stats *row_for(__u32 tgid, __u32 nr, __u64 exec_id,
						     const char *comm)
{
	struct syscall_key key = { .tgid = tgid, .nr = nr, .exec_id = exec_id };
	struct syscall_stats *row = bpf_map_lookup_elem(&syscall_rows, &key);
	__u32 zero = 0;

	if (row)
		return row;
	struct syscall_stats *init = bpf_map_lookup_elem(&new_row, &zero);
	if (!init)
		return 0;
	__builtin_memcpy(init->comm, comm, COMM_LEN);
	/* Another CPU may insert the same key first: EEXIST is fine, look again. */
	bpf_map_update_elem(&syscall_rows, &key, init, BPF_NOEXIST);
	row = bpf_map_lookup_elem(&syscall_rows, &key);
	if (!row)
		count_loss(LOSS_SYSCALL_STATS_FULL);
	return row;
}

/* Moves a pending word taken out of `s` (owner generation `gen`) to its row. */
static __noinline int flush_word(struct syscall_thread *s, __u64 word, __u32 gen)
{
	__u64 count = word & PENDING_COUNT_MASK;

	if (!s || !count)
		return 0;
	if ((word >> PENDING_TAG_SHIFT) != (gen & 0xffff)) {
		/* An increment raced a change of owner (hash collision). */
		count_loss(LOSS_SYSCALL_THREAD_SLOTS);
		return 0;
	}
	struct syscall_stats *row =
		row_for(s->tgid, (word >> 32) & 0xffff, s->exec_id, s->comm);
	if (row)
		__sync_fetch_and_add(&row->count, count);
	return 0;
}

/* Moves every pending count of the slot's owner to the rows. */
static __always_inline void flush_all(struct syscall_thread *s)
{
	__u32 gen = s->gen;

	for (int i = 0; i < PENDING_COUNTS; i++)
		flush_word(s, __sync_lock_test_and_set(&s->pending[i], 0), gen);
}

/*
 * Makes the current thread (syscall frame at `regs`) the slot's owner, or
 * re-reads its identity after an exec: what the previous owner left pending
 * goes to its rows first. Returns 0 if another CPU is claiming the slot.
 */
static __noinline int claim(struct syscall_thread *s, __u64 regs)
{
	struct task_struct *task = bpf_get_current_task_btf();

	if (!s)
		return 0;
	__u64 old = s->owner;
	/* Never from a thread inside a call (its exit would find the slot gone). */
	if (old == SLOT_OWNER_CLAIMING || (old & SLOT_OWNER_IN_CALL) ||
	    __sync_val_compare_and_swap(&s->owner, old, SLOT_OWNER_CLAIMING) != old)
		return 0;
	flush_all(s);
	if (!regs_offset) {
		/* Where a thread's syscall frame sits in its kernel stack (constant). */
		__u64 stack = (__u64)BPF_CORE_READ(task, stack);

		if (stack && regs > stack)
			regs_offset = regs - stack;
	}
	s->gen += 1;
	s->tgid = task->tgid;
	s->exec_id = task->group_leader->self_exec_id;
	bpf_probe_read_kernel(s->comm, sizeof(s->comm), task->group_leader->comm);
	s->traced = is_traced(task);
	s->start_ns = 0;
	s->last_timed_ns = 0;
	s->countdown = 1;
	s->gap = 1;
	s->shift = 0;
	s->tokens = TIMING_BURST;
	__sync_val_compare_and_swap(&s->owner, SLOT_OWNER_CLAIMING, regs);
	return 1;
}

/* The number of bits of v: the least k with 2^k > v. */
static __always_inline __u32 bit_length(__u64 v)
{
	__u32 k = 0;

	if (v >> 32) { v >>= 32; k += 32; }
	if (v >> 16) { v >>= 16; k += 16; }
	if (v >> 8) { v >>= 8; k += 8; }
	if (v >> 4) { v >>= 4; k += 4; }
	if (v >> 2) { v >>= 2; k += 2; }
	if (v >> 1) { v >>= 1; k += 1; }
	return k + v;
}

/* After a timed call ending at `now`: how many calls until the next one. */
static __always_inline void plan_next_timed(struct syscall_thread *s, __u64 now)
{
	__u32 shift = 0;
	__u64 since = s->last_timed_ns && now > s->last_timed_ns ? now - s->last_timed_ns : 0;

	if (timing_interval_ns) {
		/* Refill the burst at the budget's rate, then pay for this call. */
		__u64 tokens = s->tokens + since / timing_interval_ns;

		if (tokens > TIMING_BURST)
			tokens = TIMING_BURST;
		if (tokens)
			tokens -= 1;
		s->tokens = tokens;
		if (!tokens && since) {
			/* Calls made per allowed interval, at the rate since the last timed call. */
			__u64 per_interval = (__u64)s->gap * timing_interval_ns / since;

			shift = per_interval ? bit_length(per_interval - 1) : 0;
			if (shift > MAX_SHIFT)
				shift = MAX_SHIFT;
		}
	}
	__u32 gap = 1;
	if (shift)
		gap = 1 + bpf_get_prandom_u32() % ((2U << shift) - 1);
	s->shift = shift;
	s->gap = gap;
	s->countdown = gap;
	s->last_timed_ns = now;
}

/*
 * A call that failed or was timed: counted in its row now. A timed call
 * (weight > 0) stands for `weight` calls in the latency figures.
 */
static __noinline int record_in_row(struct syscall_thread *s, __u32 nr, long ret, __u32 weight,
				    __u64 latency)
{
	if (!s)
		return 0;
	struct syscall_stats *row = row_for(s->tgid, nr, s->exec_id, s->comm);
	if (!row)
		return 0;
	__sync_fetch_and_add(&row->count, 1);
	if (weight) {
		__sync_fetch_and_add(&row->timed, 1);
		__sync_fetch_and_add(&row->total_ns, latency * weight);
		/* Racy between CPUs updating the same row at once: max is a gauge. */
		if (latency > row->max_ns)
			row->max_ns = latency;
		__u32 bucket = latency_bucket(latency);
		if (bucket < LATENCY_BUCKETS)
			__sync_fetch_and_add(&row->latency[bucket], weight);
	}
	if (ret < 0 && ret >= -MAX_ERRNO) {
		struct syscall_error_key ekey = {
			.tgid = s->tgid,
			.nr = nr,
			.exec_id = s->exec_id,
			.err = -ret,
		};

		__sync_fetch_and_add(&row->errors, 1);
		if (!count_in(&syscall_errors, &ekey))
			count_loss(LOSS_SYSCALL_ERRORS_FULL);
	}
	return 0;
}

/* The pending word's tag (bits 32-63) for syscall `nr` of the slot's current owner. */
static __always_inline __u64 pending_tag(__u32 gen, __u32 nr)
{
	return ((__u64)(gen & 0xffff) << PENDING_TAG_SHIFT) | ((__u64)(nr & 0xffff) << 32);
}

/* An untimed successful call of a syscall with no pending entry: give it one. */
static __noinline int start_pending(struct syscall_thread *s, __u32 nr)
{
	if (!s)
		return 0;
	__u32 gen = s->gen;
	__u64 tag = pending_tag(gen, nr);
	/* Full: evict one entry, chosen by the countdown so it rotates. */
	__u32 idx = s->countdown % PENDING_COUNTS;

	for (int i = 0; i < PENDING_COUNTS; i++) {
		if (!(s->pending[i] & PENDING_COUNT_MASK)) {
			idx = i;
			break;
		}
	}
	barrier_var(idx);
	if (idx < PENDING_COUNTS)
		flush_word(s, __sync_lock_test_and_set(&s->pending[idx], tag | 1), gen);
	return 0;
}

/* Counts one untimed successful call in the slot. */
static __always_inline int count_pending(struct syscall_thread *s, __u32 nr)
{
	__u32 gen = s->gen;
	__u64 tag = pending_tag(gen, nr);

	for (int i = 0; i < PENDING_COUNTS; i++) {
		__u64 word = s->pending[i];

		if ((word & ~PENDING_COUNT_MASK) == tag) {
			/*
			 * An atomic add: user space may be swapping the count out
			 * meanwhile. No claim can change the word: the slot is
			 * marked in a call until this exit is done.
			 */
			__u64 old = __sync_fetch_and_add(&s->pending[i], 1);

			if ((old & PENDING_COUNT_MASK) + 1 >= PENDING_FLUSH_AT)
				flush_word(s, __sync_lock_test_and_set(&s->pending[i], tag), gen);
			return 0;
		}
	}
	return start_pending(s, nr);
}

/*
 * The handlers are raw tracepoints, also where tp_btf works: tp_btf types
 * the frame address as a pointer, which may not be hashed.
 */
SEC("raw_tp/sys_enter")
int BPF_PROG(handle__sys_enter, __u64 regs, long id)
{
	struct syscall_thread *s = owned_slot(regs);

	if (!s) {
		s = claimable_slot(regs);
		if (!s || !claim(s, regs)) {
			/* Every slot this thread may use is busy inside a call. */
			struct task_struct *task = bpf_get_current_task_btf();

			if (is_traced(task))
				count_loss(LOSS_SYSCALL_THREAD_SLOTS);
			return 0;
		}
	}
	if (!s->traced && id != NR_EXECVE && id != NR_EXECVEAT)
		return 0; /* an exec may make it one this run looks at: its exit re-reads */
	if (id == NR_EXIT || id == NR_EXIT_GROUP) {
		/* These never return: count the call now, untimed. */
		record_in_row(s, id, 0, 0, 0);
		return 0;
	}
	/*
	 * Mark the slot in a call: from here to the exit no other thread may
	 * claim it (claims compare-and-swap an owner without the mark). If a
	 * claim won the race, this call is lost, and counted as such.
	 */
	if (__sync_val_compare_and_swap(&s->owner, regs, regs | SLOT_OWNER_IN_CALL) != regs &&
	    s->owner != (regs | SLOT_OWNER_IN_CALL)) {
		if (s->traced)
			count_loss(LOSS_SYSCALL_THREAD_SLOTS);
		return 0;
	}
	s->nr = id;
	__u32 countdown = s->countdown;
	if (countdown <= 1) {
		s->start_ns = bpf_ktime_get_ns();
	} else {
		s->countdown = countdown - 1;
		s->start_ns = 0;
	}
	return 0;
}

/*
 * The exit of a call whose enter the slot saw; the slot is marked in the
 * call. Returns 0 if the slot stopped being this thread's on the way (an
 * exec's re-claim lost to another thread), else 1.
 */
static __always_inline int record_exit(struct syscall_thread *s, __u64 regs, long ret)
{
	__u32 nr = s->nr;
	if (ret == 0 && (nr == NR_EXECVE || nr == NR_EXECVEAT)) {
		/* A new image (and maybe name): what is pending belongs to the old one. */
		__u64 timed_start = s->start_ns;
		__u32 was_traced = s->traced;

		s->owner = SLOT_OWNER_FREE;
		if (!claim(s, regs) ||
		    __sync_val_compare_and_swap(&s->owner, regs, regs | SLOT_OWNER_IN_CALL) != regs) {
			/* Another thread took the slot in between. */
			if (was_traced)
				count_loss(LOSS_SYSCALL_THREAD_SLOTS);
			return 0;
		}
		s->start_ns = timed_start;
		if (!s->traced)
			return 1;
		if (!was_traced) {
			/* Traced from its new name on: the exec counts, untimed. */
			record_in_row(s, nr, ret, 0, 0);
			return 1;
		}
	}
	if (!s->traced)
		return 1;

	__u64 start = s->start_ns;
	__u64 latency = 0;
	__u32 weight = 0;
	if (start) {
		__u64 now = bpf_ktime_get_ns();

		weight = s->gap;
		latency = now - start;
		s->start_ns = 0;
		plan_next_timed(s, now);
	}
	if (start || (ret < 0 && ret >= -MAX_ERRNO))
		record_in_row(s, nr, ret, weight, latency);
	else
		count_pending(s, nr);
	return 1;
}

SEC("raw_tp/sys_exit")
int BPF_PROG(handle__sys_exit, __u64 regs, long ret)
{
	struct syscall_thread *s = owned_slot(regs);

	/* No enter seen: a new thread's first return, or a call begun before attach. */
	if (!s || s->owner != (regs | SLOT_OWNER_IN_CALL))
		return 0;
	/*
	 * Out of the call, the slot may be claimed again. A plain store: while
	 * the mark is set no one else writes the owner (claims compare-and-swap
	 * an unmarked one).
	 */
	if (record_exit(s, regs, ret))
		*(volatile __u64 *)&s->owner = regs;
	return 0;
}

/*
 * A thread ends (every thread, from do_exit): its counts go to the rows and
 * its slot is freed, so a new thread given the same kernel stack never
 * inherits them. Its frame address is found from its stack the way the
 * claims measured it.
 */
SEC("raw_tp/sched_process_exit")
int BPF_PROG(handle__thread_exit, struct task_struct *task)
{
	__u64 offset = regs_offset;

	if (!offset)
		return 0;
	__u64 regs = (__u64)BPF_CORE_READ(task, stack) + offset;
	struct syscall_thread *s = owned_slot(regs);
	if (!s)
		return 0;
	__u64 owner = s->owner;
	if (__sync_val_compare_and_swap(&s->owner, owner, SLOT_OWNER_CLAIMING) != owner)
		return 0;
	flush_all(s);
	s->gen += 1;
	__sync_val_compare_and_swap(&s->owner, SLOT_OWNER_CLAIMING, SLOT_OWNER_FREE);
	return 0;
}

/*
 * Empty programs on the same two hooks: what any syscall timer pays at
 * least, the floor bench/syscall-overhead.sh compares with. The collector
 * never loads them (syscalls::FloorPrograms does).
 */
SEC("tp_btf/sys_enter")
int BPF_PROG(floor__sys_enter, struct pt_regs *regs, long id) { return 0; }
SEC("tp_btf/sys_exit")
int BPF_PROG(floor__sys_exit, struct pt_regs *regs, long ret) { return 0; }
