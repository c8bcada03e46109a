/* SPDX-License-Identifier: MIT */
/* pp_typed.c -- the typed-value codec of pp.h: pp_pack, pp_unpack, their
 * va_list and pp_value / pp_out forms, and pp_unpack_format.  Both sides use
 * it: tasks in workers (ppworker exports all of it), programs through libpp.
 *
 * Encoding: per value a tag byte (its format letter), then
 *   'l' 8-byte big-endian two's complement
 *   'd' 8-byte big-endian IEEE 754 binary64
 *   's' u32 length, the bytes, a NUL
 *   'b' u32 length, the bytes
 *   'n' nothing (the tag alone)
 *   'L' u32 count, then count x 8-byte big-endian two's complement
 *   'D' u32 count, then count x 8-byte big-endian IEEE 754 binary64
 * All integers are big-endian; a value tuple is the values one after the
 * other, nothing before or after.
 *
 * Decoding checks every tag, length, count and terminator before it stores
 * anything: a first pass validates the whole tuple, a second allocates the
 * arrays ('L', 'D'), a third stores.  So a failed unpack stores nothing but
 * NULL/0 into the array outputs, and frees whatever it allocated. */
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "pp_buf.h"
#include "pp_common.h"
#include "pp_lasterr.h"

/* The letters of the encoding, in the order the messages list them. */
#define LETTERS "ldsbnLD"
#define LETTERS_TEXT "l, d, s, b, n, L, D"

static int known_letter(char c)
{
    return c != 0 && strchr(LETTERS, c) != NULL;
}

static int is_array(char c)
{
    return c == 'L' || c == 'D';
}

/* ---- packing ------------------------------------------------------------ */

/* Checks one value before anything is appended.  Returns 0, or -1 with the
 * message set. */
static int check_value(const pp_value *v, size_t pos, const char *who)
{
    switch (v->type) {
    case 'l':
    case 'd':
    case 'n':
        return 0;
    case 'u':
        if (v->as.u > (unsigned long long)LONG_MAX) {
            pp_set_error("%s: value %zu is %llu, more than LONG_MAX (%ld): it does not fit "
                         "in a long ('l'); send it as a double or as bytes",
                         who, pos, v->as.u, LONG_MAX);
            return -1;
        }
        return 0;
    case 's': {
        if (!v->as.s) {
            pp_set_error("%s: NULL string for 's' at position %zu", who, pos);
            return -1;
        }
        size_t n = strlen(v->as.s);
        if (n > UINT32_MAX - 1 || n > SIZE_MAX - 6) {
            pp_set_error("%s: value too long", who);
            return -1;
        }
        return 0;
    }
    case 'b':
        if (!v->as.b && v->n) {
            pp_set_error("%s: NULL bytes for 'b' at position %zu", who, pos);
            return -1;
        }
        if (v->n > UINT32_MAX - 1 || v->n > SIZE_MAX - 6) {
            pp_set_error("%s: value too long", who);
            return -1;
        }
        return 0;
    case 'L':
    case 'D':
        if ((v->type == 'L' ? (const void *)v->as.L : (const void *)v->as.D) == NULL && v->n) {
            pp_set_error("%s: NULL array for '%c' at position %zu", who, v->type, pos);
            return -1;
        }
        if (v->n > UINT32_MAX || v->n > (SIZE_MAX - 5) / 8) {
            pp_set_error("%s: array %zu has %zu elements, more than the %lu an array holds",
                         who, pos, v->n, (unsigned long)UINT32_MAX);
            return -1;
        }
        return 0;
    default:
        if (v->type >= 0x20 && v->type < 0x7f)
            pp_set_error("%s: value %zu has the unknown type '%c' (use " LETTERS_TEXT ")", who,
                         pos, v->type);
        else
            pp_set_error("%s: value %zu has the unknown type 0x%02x (use " LETTERS_TEXT ")",
                         who, pos, (unsigned)(unsigned char)v->type);
        return -1;
    }
}

/* Appends one checked value.  Returns 0, or -1 over the buffer's limit. */
static int encode_value(pp_buf *b, const pp_value *v)
{
    uint8_t tmp[9];
    tmp[0] = (uint8_t)(v->type == 'u' ? 'l' : v->type);
    switch (v->type) {
    case 'l':
        pp_store64(tmp + 1, (uint64_t)(int64_t)v->as.l);
        return pp_buf_append(b, tmp, 9);
    case 'u':
        pp_store64(tmp + 1, (uint64_t)v->as.u); /* checked: <= LONG_MAX */
        return pp_buf_append(b, tmp, 9);
    case 'd': {
        uint64_t u;
        memcpy(&u, &v->as.d, sizeof u);
        pp_store64(tmp + 1, u);
        return pp_buf_append(b, tmp, 9);
    }
    case 'n':
        return pp_buf_append(b, tmp, 1);
    case 's':
    case 'b': {
        const void *p = v->type == 's' ? (const void *)v->as.s : v->as.b;
        size_t n = v->type == 's' ? strlen(v->as.s) : v->n;
        pp_store32(tmp + 1, (uint32_t)n);
        if (pp_buf_reserve(b, 5 + n + (v->type == 's')) != 0)
            return -1;
        if (pp_buf_append(b, tmp, 5) != 0 || (n && pp_buf_append(b, p, n) != 0))
            return -1;
        return v->type == 's' ? pp_buf_append(b, "", 1) : 0;
    }
    case 'L':
    case 'D': {
        size_t n = v->n;
        if (pp_buf_reserve(b, 5 + n * 8) != 0)
            return -1;
        uint8_t *w = b->data + b->len;
        w[0] = tmp[0];
        pp_store32(w + 1, (uint32_t)n);
        w += 5;
        for (size_t i = 0; i < n; i++, w += 8) {
            uint64_t u;
            if (v->type == 'L') {
                u = (uint64_t)(int64_t)v->as.L[i];
            } else {
                memcpy(&u, &v->as.D[i], sizeof u);
            }
            pp_store64(w, u);
        }
        b->len += 5 + n * 8;
        b->data[b->len] = 0;
        return 0;
    }
    default:
        return -1; /* check_value() refused it */
    }
}

/* Drops what a failed pack appended: the buffer is as it was. */
static void rollback(pp_buf *b, size_t len)
{
    b->len = len;
    if (b->data)
        b->data[len] = 0;
}

PP_API int pp_vpack(pp_buf *b, const char *fmt, va_list ap)
{
    if (!b || !fmt) {
        pp_set_error("pp_pack: NULL %s", !b ? "buffer" : "format");
        return -1;
    }
    size_t start = b->len;
    for (const char *f = fmt; *f; f++) {
        size_t pos = (size_t)(f - fmt);
        pp_value v;
        v.type = *f;
        v.n = 0;
        switch (*f) {
        case 'l':
            v.as.l = va_arg(ap, long);
            break;
        case 'd':
            v.as.d = va_arg(ap, double);
            break;
        case 's':
            v.as.s = va_arg(ap, const char *);
            break;
        case 'b':
            v.as.b = va_arg(ap, const void *);
            v.n = va_arg(ap, size_t);
            break;
        case 'n':
            v.as.l = 0;
            break;
        case 'L':
            v.as.L = va_arg(ap, const long *);
            v.n = va_arg(ap, size_t);
            break;
        case 'D':
            v.as.D = va_arg(ap, const double *);
            v.n = va_arg(ap, size_t);
            break;
        default:
            pp_set_error("pp_pack: unknown format letter '%c' (use " LETTERS_TEXT ")", *f);
            rollback(b, start);
            return -1;
        }
        if (check_value(&v, pos, "pp_pack") != 0) {
            rollback(b, start);
            return -1;
        }
        if (encode_value(b, &v) != 0) {
            pp_set_error("pp_pack: the values exceed the buffer's limit");
            rollback(b, start);
            return -1;
        }
    }
    return 0;
}

PP_API int pp_pack(pp_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = pp_vpack(b, fmt, ap);
    va_end(ap);
    return rc;
}

PP_API int pp_pack_values(pp_buf *b, const pp_value *v, size_t n)
{
    if (!b || (!v && n)) {
        pp_set_error("pp_pack_values: NULL %s", !b ? "buffer" : "values");
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        if (check_value(&v[i], i, "pp_pack_values") != 0)
            return -1;
    size_t start = b->len;
    for (size_t i = 0; i < n; i++) {
        if (encode_value(b, &v[i]) != 0) {
            pp_set_error("pp_pack_values: the values exceed the buffer's limit");
            rollback(b, start);
            return -1;
        }
    }
    return 0;
}

/* ---- unpacking ------------------------------------------------------------ */

/* One encoded value, as found by scan_value(). */
typedef struct item {
    char tag;
    uint32_t n;          /* 's', 'b': bytes; 'L', 'D': elements */
    const uint8_t *body; /* after the tag (and the u32 of s, b, L, D) */
} item;

/* The tag of value number `pos` is `want` (0: any) and a letter we know.
 * 0, or -1 with the message set. */
static int check_tag(uint8_t tag, size_t pos, char want, const char *who)
{
    if (want && (char)tag != want) {
        pp_set_error("%s: value %zu is '%c' in the data, not '%c'", who, pos,
                     (tag >= 0x20 && tag < 0x7f) ? tag : '?', want);
        return -1;
    }
    if (!known_letter((char)tag)) {
        pp_set_error("%s: value %zu has the unknown tag 0x%02x", who, pos, (unsigned)tag);
        return -1;
    }
    return 0;
}

/* Reads the value at p (left bytes) into *it: value number `pos`, expected
 * to be `want` (0: any letter).  With `check`, verifies everything; without
 * (a checked pass came first), not the tag nor a string's terminator nor a
 * long's range, but still every length against `left`: the data may have
 * changed since.  Returns the bytes it takes (at least 1), or 0 (with the
 * message set when checking). */
static size_t scan_value(const uint8_t *p, size_t left, size_t pos, char want,
                         const char *who, item *it, int check)
{
    if (left < 1) {
        pp_set_error("%s: value %zu ('%c') is missing: the data holds fewer values", who, pos,
                     want);
        return 0;
    }
    char tag = (char)p[0];
    if (check && check_tag(p[0], pos, want, who) != 0)
        return 0;
    it->tag = tag;
    it->n = 0;
    it->body = p + 1;
    left--;
    switch (tag) {
    case 'n':
        return 1;
    case 'l':
    case 'd':
        if (left < 8)
            goto truncated;
#if LONG_MAX < INT64_MAX
        if (check && tag == 'l') {
            int64_t v = (int64_t)pp_load64(it->body);
            if (v < LONG_MIN || v > LONG_MAX) {
                pp_set_error("%s: value %zu does not fit in a long", who, pos);
                return 0;
            }
        }
#endif
        return 9;
    case 's':
    case 'b': {
        if (left < 4)
            goto truncated;
        it->n = pp_load32(it->body);
        it->body += 4;
        left -= 4;
        size_t nul = tag == 's';
        if (left < nul || it->n > left - nul)
            goto truncated;
        if (check && tag == 's' && (it->body[it->n] != 0 || memchr(it->body, 0, it->n))) {
            pp_set_error("%s: string %zu is not properly terminated", who, pos);
            return 0;
        }
        return 5 + (size_t)it->n + nul;
    }
    case 'L':
    case 'D':
        if (left < 4)
            goto truncated;
        it->n = pp_load32(it->body);
        it->body += 4;
        left -= 4;
        if (it->n > left / 8) { /* never it->n * 8: that may wrap */
            pp_set_error("%s: value %zu ('%c') is truncated: it says %lu elements, %zu bytes "
                         "follow",
                         who, pos, tag, (unsigned long)it->n, left);
            return 0;
        }
#if LONG_MAX < INT64_MAX
        if (check && tag == 'L') {
            for (uint32_t i = 0; i < it->n; i++) {
                int64_t v = (int64_t)pp_load64(it->body + (size_t)i * 8);
                if (v < LONG_MIN || v > LONG_MAX) {
                    pp_set_error("%s: element %lu of value %zu does not fit in a long", who,
                                 (unsigned long)i, pos);
                    return 0;
                }
            }
        }
#endif
        return 5 + (size_t)it->n * 8;
    default:
        return 0; /* refused by the checked pass: the data changed since */
    }
truncated:
    pp_set_error("%s: value %zu ('%c') is truncated", who, pos, tag);
    return 0;
}

/* Sets every array output to NULL and 0. */
static void clear_arrays(const pp_out *o, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (!is_array(o[i].type))
            continue;
        if (o[i].type == 'L' && o[i].to.L)
            *o[i].to.L = NULL;
        if (o[i].type == 'D' && o[i].to.D)
            *o[i].to.D = NULL;
        if (o[i].n)
            *o[i].n = 0;
    }
}

/* Frees the arrays pass 2 allocated for outputs [0, n). */
static void free_arrays(const pp_out *o, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (o[i].type == 'L' && o[i].to.L)
            free(*o[i].to.L);
        if (o[i].type == 'D' && o[i].to.D)
            free(*o[i].to.D);
    }
}

/* Stores the checked value `it` through o (its array already allocated). */
static void store_value(const item *it, const pp_out *o)
{
    switch (it->tag) {
    case 'l':
        if (o->to.l)
            *o->to.l = (long)(int64_t)pp_load64(it->body);
        break;
    case 'd':
        if (o->to.d) {
            uint64_t u = pp_load64(it->body);
            memcpy(o->to.d, &u, sizeof u);
        }
        break;
    case 's':
        if (o->to.s)
            *o->to.s = (const char *)it->body;
        break;
    case 'b':
        if (o->to.b)
            *o->to.b = it->body;
        if (o->n)
            *o->n = it->n;
        break;
    case 'L':
        if (o->to.L)
            for (uint32_t i = 0; i < it->n; i++)
                (*o->to.L)[i] = (long)(int64_t)pp_load64(it->body + (size_t)i * 8);
        if (o->n)
            *o->n = it->n;
        break;
    case 'D':
        if (o->to.D)
            for (uint32_t i = 0; i < it->n; i++) {
                uint64_t u = pp_load64(it->body + (size_t)i * 8);
                memcpy(&(*o->to.D)[i], &u, sizeof u);
            }
        if (o->n)
            *o->n = it->n;
        break;
    default:
        break;
    }
}

#define CHANGED_TEXT "%s: the data changed while it was read (memory another process writes?)"

/* Pass 2 of unpack_outs() over its checked data: each array output
 * allocated and filled from one reading of its count, and its count
 * stored.  0, or -1 with the message set and the arrays allocated so far
 * freed. */
static int unpack_arrays(const uint8_t *p, size_t left, const pp_out *o, size_t n,
                         const char *who)
{
    item it;
    for (size_t i = 0; i < n; i++) {
        size_t used = scan_value(p, left, i, o[i].type, who, &it, 0);
        if (!used || it.tag != o[i].type) {
            free_arrays(o, i);
            pp_set_error(CHANGED_TEXT, who);
            return -1;
        }
        p += used;
        left -= used;
        if (!is_array(o[i].type))
            continue;
        void *a = NULL;
        if (it.n && (o[i].type == 'L' ? (void *)o[i].to.L : (void *)o[i].to.D)) {
            a = pp_malloc_big((size_t)it.n *
                              (o[i].type == 'L' ? sizeof(long) : sizeof(double)));
            if (!a) {
                free_arrays(o, i);
                pp_set_error("%s: out of memory for the %lu elements of value %zu", who,
                             (unsigned long)it.n, i);
                return -1;
            }
        }
        if (o[i].type == 'L' && o[i].to.L)
            *o[i].to.L = a;
        else if (o[i].type == 'D' && o[i].to.D)
            *o[i].to.D = a;
        store_value(&it, &o[i]);
    }
    return 0;
}

/* The decoder of every unpack form: `len` bytes at `data` into the n
 * outputs.  `fmt` (may be NULL) only words a message.  Returns 0, or -1
 * with the message set, every array output NULL/0 and nothing else
 * stored (but when the data changed while it was read: then some other
 * outputs may be). */
static int unpack_outs(const void *data, size_t len, const pp_out *o, size_t n, const char *who,
                       const char *fmt)
{
    if (!data && len) {
        pp_set_error("%s: NULL data", who);
        goto fail;
    }
    int arrays = 0;
    for (size_t i = 0; i < n; i++) {
        arrays |= is_array(o[i].type);
        if (!known_letter(o[i].type)) {
            pp_set_error("%s: output %zu has an unknown type 0x%02x (use " LETTERS_TEXT ")", who,
                         i, (unsigned)(unsigned char)o[i].type);
            goto fail;
        }
    }
    /* Pass 1: the data holds exactly these values, all well formed. */
    const uint8_t *p = data;
    size_t left = len;
    item it;
    for (size_t i = 0; i < n; i++) {
        size_t used = scan_value(p, left, i, o[i].type, who, &it, 1);
        if (!used)
            goto fail;
        p += used;
        left -= used;
    }
    if (left) {
        if (fmt)
            pp_set_error("%s: %zu bytes left after the values of \"%s\"", who, left, fmt);
        else
            pp_set_error("%s: %zu bytes left after the %zu values", who, left, n);
        goto fail;
    }
    /* Pass 2: the arrays (so that running out of memory stores nothing
     * else).  Passes 2 and 3 read the data again: it may lie in memory
     * another process writes (a result in shared memory, its task's thread
     * still running), so what they read is checked again where it decides
     * sizes, never trusted from pass 1. */
    if (arrays && unpack_arrays(data, len, o, n, who) != 0)
        goto fail;
    /* Pass 3: the other values. */
    p = data;
    left = len;
    for (size_t i = 0; i < n; i++) {
        size_t used = scan_value(p, left, i, o[i].type, who, &it, 0);
        if (!used || it.tag != o[i].type) {
            free_arrays(o, n);
            pp_set_error(CHANGED_TEXT, who);
            goto fail;
        }
        p += used;
        left -= used;
        if (!is_array(o[i].type))
            store_value(&it, &o[i]);
    }
    return 0;
fail:
    clear_arrays(o, n);
    return -1;
}

/* The outputs a format letter takes from the va_list, or -1 for an unknown
 * letter (nothing taken). */
static int take_out(char c, va_list *ap, pp_out *o)
{
    o->type = c;
    o->n = NULL;
    switch (c) {
    case 'l':
        o->to.l = va_arg(*ap, long *);
        return 0;
    case 'd':
        o->to.d = va_arg(*ap, double *);
        return 0;
    case 's':
        o->to.s = va_arg(*ap, const char **);
        return 0;
    case 'b':
        o->to.b = va_arg(*ap, const void **);
        o->n = va_arg(*ap, size_t *);
        return 0;
    case 'n':
        o->to.l = NULL;
        return 0;
    case 'L':
        o->to.L = va_arg(*ap, long **);
        o->n = va_arg(*ap, size_t *);
        return 0;
    case 'D':
        o->to.D = va_arg(*ap, double **);
        o->n = va_arg(*ap, size_t *);
        return 0;
    default:
        return -1;
    }
}

PP_API int pp_vunpack(const void *data, size_t len, const char *fmt, va_list ap)
{
    if (!fmt) {
        pp_set_error("pp_unpack: NULL format");
        return -1;
    }
    va_list aq;
    va_copy(aq, ap);
    size_t nf = strlen(fmt);
    pp_out small[32];
    pp_out *o = nf <= PP_ARRAY_LEN(small) ? small : malloc(nf * sizeof *o);
    int rc = -1;
    if (!o) {
        /* Still leave no array output unset. */
        pp_out one;
        for (const char *f = fmt; *f && take_out(*f, &aq, &one) == 0; f++)
            clear_arrays(&one, 1);
        pp_set_error("pp_unpack: out of memory for a format of %zu letters", nf);
        goto out;
    }
    for (size_t i = 0; i < nf; i++) {
        if (take_out(fmt[i], &aq, &o[i]) != 0) {
            clear_arrays(o, i);
            pp_set_error("pp_unpack: unknown format letter '%c' (use " LETTERS_TEXT ")", fmt[i]);
            goto out;
        }
    }
    rc = unpack_outs(data, len, o, nf, "pp_unpack", fmt);
out:
    if (o != small)
        free(o);
    va_end(aq);
    return rc;
}

PP_API int pp_unpack(const void *data, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = pp_vunpack(data, len, fmt, ap);
    va_end(ap);
    return rc;
}

PP_API int pp_unpack_values(const void *data, size_t len, const pp_out *o, size_t n)
{
    if (!o && n) {
        pp_set_error("pp_unpack_values: NULL outputs");
        return -1;
    }
    return unpack_outs(data, len, o, n, "pp_unpack_values", NULL);
}

PP_API int pp_unpack_format(const void *data, size_t len, char *out, size_t outlen)
{
    if (out && outlen)
        out[0] = 0;
    if (!data && len) {
        pp_set_error("pp_unpack_format: NULL data");
        return -1;
    }
    if (!out && outlen) {
        pp_set_error("pp_unpack_format: NULL output");
        return -1;
    }
    const uint8_t *p = data;
    size_t left = len, count = 0;
    item it;
    while (left) {
        size_t used = scan_value(p, left, count, 0, "pp_unpack_format", &it, 1);
        if (!used) {
            if (outlen)
                out[0] = 0;
            return -1;
        }
        if (count + 1 < outlen)
            out[count] = it.tag;
        count++;
        p += used;
        left -= used;
    }
    if (count >= outlen || count > INT_MAX) {
        if (outlen)
            out[0] = 0;
        pp_set_error("pp_unpack_format: the data holds %zu values: their letters need %zu "
                     "bytes, the output has %zu",
                     count, count + 1, outlen);
        return -1;
    }
    out[count] = 0;
    return (int)count;
}
