// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Placeholder: being written. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
char LICENSE[] SEC("license") = "Dual BSD/GPL";
