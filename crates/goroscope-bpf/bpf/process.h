/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Process lifecycle events (fork, exec, exit), streamed through a ring buffer. */
#ifndef GOROSCOPE_PROCESS_H
#define GOROSCOPE_PROCESS_H

#include "common.h"

#define EXEC_FILENAME_LEN 256
#define EXEC_ARGS_LEN 512

struct exec_event {
	struct event_header hdr;
	__u32 ppid;
	__u32 filename_len;   /* bytes in filename, without the NUL */
	__u32 args_len;       /* bytes in args (NUL-separated), 0 unless asked for */
	__u32 args_truncated; /* 1 when the command line was longer than EXEC_ARGS_LEN */
	char filename[EXEC_FILENAME_LEN];
	char args[EXEC_ARGS_LEN];
};
_Static_assert(sizeof(struct exec_event) == 48 + 16 + EXEC_FILENAME_LEN + EXEC_ARGS_LEN,
	       "exec_event layout is part of the ABI");

struct exit_event {
	struct event_header hdr;
	__u32 ppid;
	__u32 wait_status; /* as wait(2) reports it: exit code << 8 | signal */
	__u64 lifetime_ns; /* since the process (its group leader) started */
};
_Static_assert(sizeof(struct exit_event) == 64, "exit_event layout is part of the ABI");

/* A new process (not a thread): hdr is the parent. */
struct fork_event {
	struct event_header hdr;
	__u32 child_pid;
	__u32 _pad;
};
_Static_assert(sizeof(struct fork_event) == 56, "fork_event layout is part of the ABI");

#endif /* GOROSCOPE_PROCESS_H */
