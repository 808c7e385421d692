/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* File opens (open, openat, openat2) with path, flags and result. */
#ifndef GOROSCOPE_FILES_H
#define GOROSCOPE_FILES_H

#include "common.h"

#define OPEN_PATH_LEN 256

struct open_event {
	struct event_header hdr;
	__s64 ret;       /* the new fd, or -errno */
	__u64 flags;     /* O_* flags as passed (openat2: open_how.flags) */
	__u32 mode;
	__s32 dirfd;     /* AT_FDCWD (-100) for open(2) */
	__u32 syscall_nr;
	__u32 path_len;  /* bytes in path, without the NUL; 0 if unreadable */
	char path[OPEN_PATH_LEN];
};
_Static_assert(sizeof(struct open_event) == 48 + 32 + OPEN_PATH_LEN, "open_event layout is part of the ABI");

#endif /* GOROSCOPE_FILES_H */
