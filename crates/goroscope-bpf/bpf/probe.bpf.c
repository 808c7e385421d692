// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Empty programs, one per attach type, used by `goroscope doctor` and the
 * collectors to learn what this kernel allows. Each is loaded and attached on
 * its own; none does anything.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tracepoint/syscalls/sys_enter_getppid")
int probe_tracepoint(void *ctx) { return 0; }

SEC("tp_btf/sys_enter")
int BPF_PROG(probe_tp_btf, struct pt_regs *regs, long id) { return 0; }

SEC("raw_tp/sys_enter")
int probe_raw_tp(void *ctx) { return 0; }

SEC("uprobe")
int probe_uprobe(void *ctx) { return 0; }

SEC("uprobe.multi")
int probe_uprobe_multi(void *ctx) { return 0; }

SEC("perf_event")
int probe_perf_event(void *ctx) { return 0; }

SEC("fentry/do_nanosleep")
int BPF_PROG(probe_fentry) { return 0; }

SEC("kprobe/do_nanosleep")
int probe_kprobe(void *ctx) { return 0; }
