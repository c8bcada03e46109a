/* SPDX-License-Identifier: MIT */
/* pp_buf.h -- growable byte buffer with a hard cap.
 *
 * The data is always followed by a NUL byte (not counted in len), so text
 * results can be used as C strings.  The public pp_buf_append() and
 * pp_buf_printf() of pp.h are implemented here. */
#ifndef PP_BUF_INTERNAL_H
#define PP_BUF_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "pp.h"

struct pp_buf {
    uint8_t *data;  /* NULL until the first append; owned */
    size_t len;     /* bytes used */
    size_t cap;     /* bytes allocated, NUL included */
    size_t max;     /* hard cap on len */
    int overflow;   /* an append was refused by the cap */
    /* Memory not from malloc (a worker's result in shared memory): grows
     * through this to at least `cap` bytes (0 or -1), and is never freed
     * here.  NULL: malloc'd. */
    int (*grow)(pp_buf *b, size_t cap);
    void *ext;      /* the grower's own */
};

/* An empty buffer that may grow to `max` bytes. */
void pp_buf_init(pp_buf *b, size_t max);

/* Frees the data; the buffer is empty again (same max).  NULL is a no-op. */
void pp_buf_reset(pp_buf *b);

/* Makes room for `extra` more bytes.  Returns 0, or -1 over the cap or out
 * of memory (nothing changed). */
int pp_buf_reserve(pp_buf *b, size_t extra);

/* Drops the first n bytes (n <= len). */
void pp_buf_consume(pp_buf *b, size_t n);

/* Hands the data to the caller (free() it; NUL-terminated; may be NULL when
 * empty) and leaves the buffer empty. */
void *pp_buf_take(pp_buf *b, size_t *len);

#endif
