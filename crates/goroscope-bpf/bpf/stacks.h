/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Stacks stored once each, keyed by a 64-bit hash of their frames.
 *
 * The kernel's own BPF_MAP_TYPE_STACK_TRACE keys a stack by its hash masked
 * to the map's size and refuses a second stack that lands in a taken bucket:
 * with a few hundred distinct stacks in 16,384 buckets, a hot stack collided
 * often enough to lose a tenth of a profile's samples. Here the key is the
 * whole 64-bit hash, so two different stacks share a key with negligible
 * odds, and only a full map loses a stack.
 *
 * The map is preallocated: sched_switch runs under the run-queue lock, where
 * the BPF allocator cannot refill. User space reads it by the hashes the
 * rows carry (src/stacks.rs).
 */
#ifndef GOROSCOPE_STACKS_H
#define GOROSCOPE_STACKS_H

#include "common.h"

#define STACK_DEPTH 127 /* the kernel's PERF_MAX_STACK_DEPTH */
#define MAX_STACKS 16384 /* a default: user space may resize before load */

/* A row's stack that is absent: none taken, or lost (counted). */
#define NO_STACK 0

/* Return addresses, innermost first, zero after the last. */
struct stack_frames {
	__u64 ips[STACK_DEPTH];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stack_frames);
} stack_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_STACKS);
	__type(key, __u64);
	__type(value, struct stack_frames);
} stacks SEC(".maps");

/* A 64-bit finalizer (MurmurHash3's fmix64): every input bit moves every output bit. */
static __always_inline __u64 stack_mix(__u64 h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static __always_inline __u64 stack_hash(const struct stack_frames *frames, __u32 depth)
{
	__u64 h = depth;

	for (__u32 i = 0; i < STACK_DEPTH; i++) {
		if (i >= depth)
			break;
		h = stack_mix(h ^ frames->ips[i]) + i;
	}
	h = stack_mix(h);
	return h == NO_STACK ? 1 : h;
}

/*
 * Takes the current task's stack (BPF_F_USER_STACK in flags: its user
 * stack), stores it unless already stored, and returns its key; NO_STACK
 * when there is none or it could not be stored, counted under `loss`.
 */
static __always_inline __u64 store_stack(void *ctx, __u64 flags, __u32 loss)
{
	__u32 zero = 0;
	struct stack_frames *frames = bpf_map_lookup_elem(&stack_scratch, &zero);

	if (!frames)
		return NO_STACK;
	/* The helper zero-fills the buffer past the frames it wrote. */
	long len = bpf_get_stack(ctx, frames->ips, sizeof(frames->ips), flags);

	if (len <= 0) {
		count_loss(loss);
		return NO_STACK;
	}
	__u64 key = stack_hash(frames, (__u32)len / sizeof(__u64));

	if (bpf_map_lookup_elem(&stacks, &key))
		return key;
	long err = bpf_map_update_elem(&stacks, &key, frames, BPF_NOEXIST);

	/* -EEXIST: another CPU stored the same stack first. */
	if (err && err != -17) {
		count_loss(loss);
		return NO_STACK;
	}
	return key;
}

#endif /* GOROSCOPE_STACKS_H */
