/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Which goroutine a thread is running, read at the moment of a sample.
 *
 * Go keeps the current g in R14 while it runs Go code (and across the
 * syscalls its own code makes). R14 is only believed when the thread's stack
 * pointer lies inside that g's stack (g.stack.lo <= SP < g.stack.hi, the
 * first two words of every runtime.g). On the scheduler's own stack (g0) the
 * check passes and goid reads 0: such samples belong to no goroutine.
 *
 * User space puts each Go process's g layout in go_processes; processes not
 * in it are never read.
 */
#ifndef GOROSCOPE_GOROUTINE_H
#define GOROSCOPE_GOROUTINE_H

#define MAX_GO_PROCESSES 4096

struct go_layout {
	__u32 goid_offset;   /* of runtime.g.goid */
	__u32 labels_offset; /* of runtime.g.labels; 0: unknown, not read */
	__u64 text_start;    /* run-time addresses of the Go code: [text_start, text_end) */
	__u64 text_end;
};
_Static_assert(sizeof(struct go_layout) == 24, "go_layout layout is part of the ABI");

struct goroutine_ref {
	__u64 goid;   /* 0: none */
	__u64 labels; /* runtime.g.labels (runtime/pprof's label set), 0 when none */
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_GO_PROCESSES);
	__type(key, __u32);
	__type(value, struct go_layout);
} go_processes SEC(".maps");

/*
 * Label sets seen: the first sample of each (process, label set) also queues
 * it for user space, which reads it within a fraction of a second — while the
 * goroutine that set it (a request under pprof.Do) most likely still holds it.
 */
#define MAX_LABEL_SETS_SEEN 16384
#define MAX_LABEL_SETS_QUEUED 4096

struct label_set_ref {
	__u32 tgid;
	__u32 pad;
	__u64 labels;
};
_Static_assert(sizeof(struct label_set_ref) == 16, "label_set_ref layout is part of the ABI");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_LABEL_SETS_SEEN);
	__type(key, struct label_set_ref);
	__type(value, __u8);
} label_sets_seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, MAX_LABEL_SETS_QUEUED);
	__uint(key_size, 0);
	__uint(value_size, sizeof(struct label_set_ref));
} new_label_sets SEC(".maps");

/* Queues (tgid, labels) for user space the first time it is seen. */
static __always_inline void note_label_set(__u32 tgid, __u64 labels)
{
	struct label_set_ref ref = { .tgid = tgid, .labels = labels };
	__u8 seen = 1;

	if (!labels || bpf_map_lookup_elem(&label_sets_seen, &ref))
		return;
	if (bpf_map_update_elem(&label_sets_seen, &ref, &seen, BPF_NOEXIST))
		return;
	/* A full queue: user space also finds the set in the rows, only later. */
	bpf_map_push_elem(&new_label_sets, &ref, 0);
}

/* The goroutine of a thread of process tgid whose user registers are (r14, sp). */
static __always_inline struct goroutine_ref current_goroutine(__u32 tgid, __u64 r14, __u64 sp)
{
	struct goroutine_ref ref = {};
	struct go_layout *layout = bpf_map_lookup_elem(&go_processes, &tgid);
	__u64 bounds[2];

	if (!layout || r14 == 0)
		return ref;
	if (bpf_probe_read_user(bounds, sizeof(bounds), (void *)r14))
		return ref;
	if (sp < bounds[0] || sp >= bounds[1])
		return ref;
	if (bpf_probe_read_user(&ref.goid, sizeof(ref.goid), (void *)(r14 + layout->goid_offset)))
		ref.goid = 0;
	if (ref.goid && layout->labels_offset &&
	    bpf_probe_read_user(&ref.labels, sizeof(ref.labels), (void *)(r14 + layout->labels_offset)))
		ref.labels = 0;
	note_label_set(tgid, ref.labels);
	return ref;
}

/*
 * The word at user stack pointer sp of a thread of process tgid when it is a
 * return address into the process's Go code, else 0. A Go function without a
 * frame (a small leaf), or at its first or last instruction, has not saved
 * the frame pointer: the frame-pointer walk then skips its caller, whose
 * return address is this word. Whether the sampled pc is such a place only
 * the function's pcsp table knows: user space decides.
 */
static __always_inline __u64 go_return_at_sp(__u32 tgid, __u64 sp)
{
	struct go_layout *layout = bpf_map_lookup_elem(&go_processes, &tgid);
	__u64 word;

	if (!layout || bpf_probe_read_user(&word, sizeof(word), (void *)sp))
		return 0;
	return word >= layout->text_start && word < layout->text_end ? word : 0;
}

#endif /* GOROSCOPE_GOROUTINE_H */
