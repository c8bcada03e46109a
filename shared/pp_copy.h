/* SPDX-License-Identifier: MIT */
/* pp_copy.h -- copies of large buffers, split across threads.
 *
 * One core copying a buffer far larger than its caches is bound by how
 * many memory requests it keeps in flight, not by the memory's bandwidth:
 * on the machines measured, two cores copy 64 MiB in about half the time of
 * one (the same split is what Ray's object store does for large objects).
 * pp_submit()'s copy of a large argument is the one such copy on the hot
 * path; it uses this. */
#ifndef PP_COPY_H
#define PP_COPY_H

#include <stddef.h>

#define PP_COPY_PART_MIN (4u << 20) /* the least one thread copies */
#define PP_COPY_THREADS_MAX 4       /* the caller's thread included */

/* Copies n bytes from src to dst (they must not overlap), as memcpy does,
 * on up to `threads` threads, the caller's included, each taking at least
 * PP_COPY_PART_MIN bytes: below 2 * PP_COPY_PART_MIN, or with threads <= 1,
 * a plain memcpy.  The helper threads block every signal and are joined
 * before it returns; a part whose thread cannot start is copied by the
 * caller.  Cannot fail. */
void pp_copy(void *dst, const void *src, size_t n, int threads);

#endif
