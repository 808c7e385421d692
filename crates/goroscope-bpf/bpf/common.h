/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What every goroscope BPF object shares with user space: the header every
 * ring-buffer event starts with, the reasons data can be lost, and the
 * process filter (which processes a run looks at).
 *
 * Structs here are the single definition: Rust reads them through the
 * skeleton-generated types and asserts their sizes.
 */
#ifndef GOROSCOPE_COMMON_H
#define GOROSCOPE_COMMON_H

#define COMM_LEN 16
#define MAX_TARGET_PIDS 1024

/* Kinds of ring-buffer event; also the index into the loss counters. */
enum event_kind {
	EVENT_EXEC = 1,
	EVENT_EXIT = 2,
	EVENT_FORK = 3,
	EVENT_OPEN = 4,
};

/*
 * Why data was lost in the kernel. Each object keeps a per-CPU counter for
 * every reason; user space sums and reports them all.
 */
enum loss_reason {
	LOSS_RINGBUF_EXEC = 0,       /* ring buffer full: exec event dropped */
	LOSS_RINGBUF_EXIT = 1,       /* ring buffer full: exit event dropped */
	LOSS_RINGBUF_FORK = 2,       /* ring buffer full: fork event dropped */
	LOSS_RINGBUF_OPEN = 3,       /* ring buffer full: open event dropped */
	LOSS_SYSCALL_STATS_FULL = 4, /* syscall statistics map full */
	LOSS_SYSCALL_ERRORS_FULL = 5,/* syscall errno map full */
	LOSS_TASK_STORAGE = 6,       /* no per-thread storage: one syscall not timed */
	LOSS_SCHED_ROWS_FULL = 7,    /* scheduler statistics map full */
	LOSS_SCHED_TASK_STORAGE = 8, /* no per-thread storage: one wait not timed */
	LOSS_TCP_ROWS_FULL = 9,      /* TCP statistics map full */
	LOSS_TCP_EDGES_FULL = 10,    /* TCP endpoint (service map edge) map full */
	LOSS_TCP_SOCKETS_FULL = 11,  /* TCP per-connection map full: one connection not followed */
	LOSS_SYSCALL_THREAD_SLOTS = 12, /* syscall thread slots busy, or a count raced a change of owner */
	LOSS_PROFILE_USER_STACK = 13,   /* CPU sample's user stack not stored (stack map full) */
	LOSS_PROFILE_KERNEL_STACK = 14, /* CPU sample's kernel stack not stored */
	LOSS_PROFILE_SAMPLES_FULL = 15, /* CPU sample map full: sample dropped */
	LOSS_OFFCPU_USER_STACK = 16,    /* off-CPU interval's user stack not stored */
	LOSS_OFFCPU_KERNEL_STACK = 17,  /* off-CPU interval's kernel stack not stored */
	LOSS_OFFCPU_ROWS_FULL = 18,     /* off-CPU row map full: interval dropped */
	LOSS_OFFCPU_THREADS = 19,       /* no per-thread state: one off-CPU interval not measured */
	LOSS_REASONS = 20,
};

/* Every ring-buffer event starts with this. */
struct event_header {
	__u64 ts_ns;     /* CLOCK_MONOTONIC, from bpf_ktime_get_ns() */
	__u64 cgroup_id; /* cgroup v2 id of the task */
	__u32 pid;       /* process id (tgid) */
	__u32 tid;       /* thread id */
	__u32 kind;      /* enum event_kind */
	__u32 _pad;
	char comm[COMM_LEN]; /* the process's name (its group leader's comm) */
};
_Static_assert(sizeof(struct event_header) == 48, "event_header layout is part of the ABI");

#ifdef __BPF__ /* ---- kernel side only below ---- */

/* Filled in by user space before load. */
const volatile __u32 self_tgid = 0;       /* goroscope itself: never traced */
const volatile bool filter_by_pid = false; /* only tgids in target_pids */
const volatile bool filter_by_comm = false;/* only processes named target_comm */
const volatile char target_comm[COMM_LEN] = {};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_TARGET_PIDS);
	__type(key, __u32);
	__type(value, __u8);
} target_pids SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LOSS_REASONS);
	__type(key, __u32);
	__type(value, __u64);
} losses SEC(".maps");

static __always_inline void count_loss(__u32 reason)
{
	__u64 *n = bpf_map_lookup_elem(&losses, &reason);
	if (n)
		*n += 1;
}

/*
 * Adds 1 to the __u64 counter at `key` in the hash map `map`, inserting it
 * at 1 when absent (another CPU may insert it first). False if the map is
 * full.
 */
static __always_inline bool count_in(void *map, const void *key)
{
	__u64 one = 1, *n = bpf_map_lookup_elem(map, key);

	if (!n && !bpf_map_update_elem(map, key, &one, BPF_NOEXIST))
		return true;
	if (!n)
		n = bpf_map_lookup_elem(map, key); /* lost the race to insert */
	if (!n)
		return false;
	__sync_fetch_and_add(n, 1);
	return true;
}

/* Does this run look at the process that `task` belongs to? */
static __always_inline bool is_traced(struct task_struct *task)
{
	__u32 tgid = task->tgid;

	if (tgid == self_tgid)
		return false;
	if (filter_by_pid && !bpf_map_lookup_elem(&target_pids, &tgid))
		return false;
	if (filter_by_comm) {
		char comm[COMM_LEN];

		bpf_probe_read_kernel(comm, sizeof(comm), task->group_leader->comm);
		for (int i = 0; i < COMM_LEN; i++) {
			if (comm[i] != target_comm[i])
				return false;
			if (comm[i] == 0)
				break;
		}
	}
	return true;
}

static __always_inline void fill_header(struct event_header *h, struct task_struct *task, __u32 kind)
{
	h->ts_ns = bpf_ktime_get_ns();
	h->cgroup_id = bpf_get_current_cgroup_id();
	h->pid = task->tgid;
	h->tid = task->pid;
	h->kind = kind;
	h->_pad = 0;
	bpf_probe_read_kernel(h->comm, sizeof(h->comm), task->group_leader->comm);
}

/*
 * Wake the reader only when enough data has accumulated; the reader also
 * polls on a short timeout, so nothing waits longer than that. Waking per
 * event would cost a wakeup per open() on a busy host.
 */
#define RINGBUF_WAKEUP_BYTES (64 * 1024)
static __always_inline __u64 ringbuf_submit_flags(void *ringbuf)
{
	return bpf_ringbuf_query(ringbuf, BPF_RB_AVAIL_DATA) >= RINGBUF_WAKEUP_BYTES ?
		       BPF_RB_FORCE_WAKEUP :
		       BPF_RB_NO_WAKEUP;
}

/*
 * Each handler exists twice: as tp_btf (cheapest, BTF-typed arguments) and as
 * raw_tp (fallback). User space loads exactly one of the two variants.
 */
#define DEFINE_TRACE_HANDLERS(tp, body, ...)                                         \
	SEC("tp_btf/" #tp) int BPF_PROG(handle__##tp, ##__VA_ARGS__) { return body; } \
	SEC("raw_tp/" #tp) int BPF_PROG(handle__##tp##_raw, ##__VA_ARGS__) { return body; }

#endif /* __BPF__ */
#endif /* GOROSCOPE_COMMON_H */
