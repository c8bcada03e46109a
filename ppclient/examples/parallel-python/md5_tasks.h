/* SPDX-License-Identifier: MIT */
/* md5_tasks.h -- the task module of pp-reverse-md5 (links OpenSSL's libcrypto). */
#ifndef PP_EX_MD5_TASKS_H
#define PP_EX_MD5_TASKS_H
#include <pp.h>

/* Looks for the integer x in start..end-1 whose decimal text has the MD5
 * digest `hash` (32 hex digits).  Argument: "sll" hash, start, end; result:
 * "l" x, or "n" (nil: Python's None) when no x in the range has it. */
int ppex_md5test(const void *arg, size_t len, pp_buf *out);

/* The MD5 digest of n bytes as 32 lower-case hex digits and a NUL, in hex;
 * 0, or -1 if libcrypto failed.  The program uses it for its default hash. */
int ppex_md5_hex(const void *data, size_t n, char hex[33]);
#endif
