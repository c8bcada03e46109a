/* SPDX-License-Identifier: MIT */
/* pp_buf.c -- growable byte buffer with a hard cap. */
#include "pp_buf.h"
#include "pp_common.h"
#include "pp_copy.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pp_buf_init(pp_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->overflow = 0;
    b->grow = NULL;
    b->ext = NULL;
}

void pp_buf_reset(pp_buf *b)
{
    if (!b)
        return;
    if (!b->grow)
        free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

int pp_buf_reserve(pp_buf *b, size_t extra)
{
    if (extra > b->max - b->len) {
        b->overflow = 1;
        return -1;
    }
    size_t need = b->len + extra + 1; /* + NUL */
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (b->max < SIZE_MAX && cap > b->max + 1)
        cap = b->max + 1; /* never past the cap (and its NUL): need is within it */
    if (b->grow)
        return b->grow(b, cap);
    uint8_t *p = realloc(b->data, cap);
    if (!p)
        return -1;
    b->data = p;
    b->cap = cap;
    return 0;
}

void pp_buf_consume(pp_buf *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
    } else {
        memmove(b->data, b->data + n, b->len - n);
        b->len -= n;
    }
    if (b->data)
        b->data[b->len] = 0;
}

void *pp_buf_take(pp_buf *b, size_t *len)
{
    void *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

PP_API int pp_buf_append(pp_buf *b, const void *data, size_t n)
{
    if (!b || (!data && n))
        return -1;
    if (pp_buf_reserve(b, n) != 0)
        return -1;
    if (n >= 2 * PP_COPY_PART_MIN) /* a task's large result: on several cores */
        pp_copy(b->data + b->len, data, n, pp_ncpus_available());
    else if (n)
        memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0;
    return 0;
}

PP_API int pp_buf_printf(pp_buf *b, const char *fmt, ...)
{
    if (!b || !fmt)
        return -1;
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    int rc = -1;
    if (n < 0)
        goto out;
    if ((size_t)n < sizeof small) {
        rc = pp_buf_append(b, small, (size_t)n);
        goto out;
    }
    if (pp_buf_reserve(b, (size_t)n) != 0)
        goto out;
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap2);
    b->len += (size_t)n;
    rc = 0;
out:
    va_end(ap2);
    return rc;
}
