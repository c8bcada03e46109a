/* SPDX-License-Identifier: MIT */
/* pp_zip.h -- zlib with an output cap: compression of modules and large
 * payloads (only after authentication), and an inflate that cannot be made
 * to allocate more than it was told (no zlib bombs).
 *
 * A compressed payload on the wire is: u32 uncompressed length (big-endian),
 * then a zlib stream.  The receiver checks the declared length against its
 * limit before allocating, inflates into exactly that many bytes, and fails
 * on more, on less, on trailing bytes and on a corrupt stream. */
#ifndef PP_ZIP_H
#define PP_ZIP_H

#include <stddef.h>

/* Compresses n bytes into a malloc'd wire payload (length prefix + zlib
 * stream) at `level` (1..9).  0, or -1 (out of memory, n > 4 GiB - 1). */
int pp_zip_deflate(const void *in, size_t n, int level, void **out, size_t *outlen);

/* Payloads at least this large may be compressed (pp_zpolicy.h decides). */
#define PP_ZIP_MIN (64 * 1024)

/* Compresses head ‖ body into one wire payload at level 1 (the speed that
 * can pay on a link; modules use pp_zip_deflate).  0 with *out malloc'd,
 * or -1 (out of memory, more than 4 GiB - 1 bytes, zlib failure). */
int pp_zip_stream(const void *head, size_t hlen, const void *body, size_t blen, void **out,
                  size_t *outlen);

/* Inflates a wire payload.  On success returns 0, *out is malloc'd
 * (the declared length + 1 bytes, NUL-terminated) and *outlen the declared
 * length.  -1 with the reason in err (PP_ERR_LEN bytes): declared length
 * above max, corrupt stream, more or fewer bytes than declared, trailing
 * bytes after the stream, out of memory. */
int pp_zip_inflate(const void *in, size_t n, size_t max, void **out, size_t *outlen, char *err);

/* The length a wire payload declares (its first 4 bytes): 0 with
 * *declared, or -1 with err when the payload is too short for it or it
 * exceeds max. */
int pp_zip_declared(const void *in, size_t n, size_t max, size_t *declared, char *err);

/* Inflates a wire payload whose declared length (pp_zip_declared) is
 * `declared` into dst (at least that many bytes), checked as
 * pp_zip_inflate() checks it: 0, or -1 with err. */
int pp_zip_inflate_into(const void *in, size_t n, void *dst, size_t declared, char *err);

#endif
