/* SPDX-License-Identifier: MIT */
/* pp_typed.c -- the typed-value codec of pp.h: pp_pack and pp_unpack.  Both
 * sides use it: tasks in workers, programs through libpp.
 *
 * Encoding: per value a tag byte, then
 *   'l' 8-byte big-endian two's complement
 *   'd' 8-byte big-endian IEEE 754 binary64
 *   's' u32 length, the bytes, a NUL
 *   'b' u32 length, the bytes
 * Decoding checks every tag, length and terminator. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "pp_buf.h"
#include "pp_common.h"
#include "pp_lasterr.h"

PP_API int pp_vpack(pp_buf *b, const char *fmt, va_list ap)
{
    if (!b || !fmt) {
        pp_set_error("pp_pack: NULL %s", !b ? "buffer" : "format");
        return -1;
    }
    for (const char *f = fmt; *f; f++) {
        uint8_t tmp[9];
        tmp[0] = (uint8_t)*f;
        int rc;
        switch (*f) {
        case 'l': {
            long v = va_arg(ap, long);
            pp_store64(tmp + 1, (uint64_t)(int64_t)v);
            rc = pp_buf_append(b, tmp, 9);
            break;
        }
        case 'd': {
            double v = va_arg(ap, double);
            uint64_t u;
            memcpy(&u, &v, sizeof u);
            pp_store64(tmp + 1, u);
            rc = pp_buf_append(b, tmp, 9);
            break;
        }
        case 's':
        case 'b': {
            const void *p;
            size_t n;
            if (*f == 's') {
                p = va_arg(ap, const char *);
                if (!p) {
                    pp_set_error("pp_pack: NULL string for 's' at position %d", (int)(f - fmt));
                    return -1;
                }
                n = strlen(p);
            } else {
                p = va_arg(ap, const void *);
                n = va_arg(ap, size_t);
                if (!p && n) {
                    pp_set_error("pp_pack: NULL bytes for 'b' at position %d", (int)(f - fmt));
                    return -1;
                }
            }
            if (n > UINT32_MAX - 1) {
                pp_set_error("pp_pack: value too long");
                return -1;
            }
            pp_store32(tmp + 1, (uint32_t)n);
            rc = pp_buf_append(b, tmp, 5);
            if (rc == 0 && n)
                rc = pp_buf_append(b, p, n);
            if (rc == 0 && *f == 's')
                rc = pp_buf_append(b, "", 1);
            break;
        }
        default:
            pp_set_error("pp_pack: unknown format letter '%c' (use l, d, s, b)", *f);
            return -1;
        }
        if (rc != 0) {
            pp_set_error("pp_pack: the values exceed the buffer's limit");
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

PP_API int pp_vunpack(const void *data, size_t len, const char *fmt, va_list ap)
{
    if (!fmt || (!data && len)) {
        pp_set_error("pp_unpack: NULL %s", !fmt ? "format" : "data");
        return -1;
    }
    const uint8_t *p = data;
    size_t left = len;
    for (const char *f = fmt; *f; f++) {
        int pos = (int)(f - fmt);
        if (!strchr("ldsb", *f)) {
            pp_set_error("pp_unpack: unknown format letter '%c' (use l, d, s, b)", *f);
            return -1;
        }
        if (left < 1) {
            pp_set_error("pp_unpack: value %d ('%c') is missing: the data holds fewer values",
                         pos, *f);
            return -1;
        }
        if (p[0] != (uint8_t)*f) {
            pp_set_error("pp_unpack: value %d is '%c' in the data, not '%c'", pos,
                         (p[0] >= 0x20 && p[0] < 0x7f) ? p[0] : '?', *f);
            return -1;
        }
        p++;
        left--;
        if (*f == 'l' || *f == 'd') {
            if (left < 8)
                goto truncated;
            uint64_t u = pp_load64(p);
            if (*f == 'l') {
                int64_t v = (int64_t)u;
                long *out = va_arg(ap, long *);
                if ((int64_t)(long)v != v) {
                    pp_set_error("pp_unpack: value %d does not fit in a long", pos);
                    return -1;
                }
                if (out)
                    *out = (long)v;
            } else {
                double *out = va_arg(ap, double *);
                if (out)
                    memcpy(out, &u, sizeof *out);
            }
            p += 8;
            left -= 8;
            continue;
        }
        if (left < 4)
            goto truncated;
        uint32_t n = pp_load32(p);
        p += 4;
        left -= 4;
        size_t need = (size_t)n + (*f == 's');
        if (left < need)
            goto truncated;
        if (*f == 's') {
            if (p[n] != 0 || memchr(p, 0, n)) {
                pp_set_error("pp_unpack: string %d is not properly terminated", pos);
                return -1;
            }
            const char **out = va_arg(ap, const char **);
            if (out)
                *out = (const char *)p;
        } else {
            const void **out = va_arg(ap, const void **);
            size_t *outn = va_arg(ap, size_t *);
            if (out)
                *out = p;
            if (outn)
                *outn = n;
        }
        p += need;
        left -= need;
        continue;
    truncated:
        pp_set_error("pp_unpack: value %d ('%c') is truncated", pos, *f);
        return -1;
    }
    if (left) {
        pp_set_error("pp_unpack: %zu bytes left after the values of \"%s\"", left, fmt);
        return -1;
    }
    return 0;
}

PP_API int pp_unpack(const void *data, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = pp_vunpack(data, len, fmt, ap);
    va_end(ap);
    return rc;
}

