/* SPDX-License-Identifier: MIT */
/* pp_zip.c -- zlib payloads with a length prefix, and an inflate that
 * writes into exactly the declared number of bytes: the only allocation is
 * declared + 1 bytes, checked against the caller's limit first, so a small
 * stream cannot make the receiver allocate more (no zlib bombs). */
#include "pp_zip.h"

#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "pp_common.h"

int pp_zip_deflate(const void *in, size_t n, int level, void **out, size_t *outlen)
{
    static const uint8_t empty = 0;
    if (n > UINT32_MAX)
        return -1;
    if (level < 0 || level > 9)
        level = Z_DEFAULT_COMPRESSION;
    uLong bound = compressBound((uLong)n);
    if (bound > SIZE_MAX - 4)
        return -1;
    uint8_t *buf = malloc(4 + (size_t)bound);
    if (!buf)
        return -1;
    uLongf zlen = bound;
    if (compress2(buf + 4, &zlen, in ? in : &empty, (uLong)n, level) != Z_OK) {
        free(buf);
        return -1;
    }
    pp_store32(buf, (uint32_t)n);
    size_t total = 4 + (size_t)zlen;
    uint8_t *shrunk = realloc(buf, total); /* give back the unused bound */
    if (shrunk)
        buf = shrunk;
    *out = buf;
    *outlen = total;
    return 0;
}

int pp_zip_stream(const void *head, size_t hlen, const void *body, size_t blen, void **out,
                  size_t *outlen)
{
    if (hlen > UINT32_MAX || blen > UINT32_MAX - hlen)
        return -1;
    size_t n = hlen + blen;
    uLong bound = compressBound((uLong)n);
    uint8_t *buf = malloc(4 + (size_t)bound);
    if (!buf)
        return -1;
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    if (deflateInit(&zs, 1) != Z_OK) {
        free(buf);
        return -1;
    }
    zs.next_out = buf + 4;
    zs.avail_out = (uInt)PP_MIN(bound, (uLong)UINT_MAX);
    const uint8_t *parts[2] = {head, body};
    size_t lens[2] = {hlen, blen};
    int rc = Z_OK;
    for (int i = 0; i < 2 && rc == Z_OK; i++) {
        const uint8_t *p = parts[i];
        size_t left = lens[i];
        while (left && rc == Z_OK) {
            uInt chunk = (uInt)PP_MIN(left, (size_t)(1u << 30));
            zs.next_in = (Bytef *)p;
            zs.avail_in = chunk;
            rc = deflate(&zs, Z_NO_FLUSH);
            p += chunk - zs.avail_in;
            left -= chunk - zs.avail_in;
        }
    }
    if (rc == Z_OK)
        rc = deflate(&zs, Z_FINISH);
    size_t zlen = zs.total_out;
    deflateEnd(&zs);
    if (rc != Z_STREAM_END) {
        free(buf);
        return -1;
    }
    pp_store32(buf, (uint32_t)n);
    uint8_t *shrunk = realloc(buf, 4 + zlen); /* give back the unused bound */
    *out = shrunk ? shrunk : buf;
    *outlen = 4 + zlen;
    return 0;
}

/* Why inflate() failed, into err. */
static void inflate_error(int ret, const z_stream *zs, char *err)
{
    switch (ret) {
    case Z_BUF_ERROR: /* no progress: output has room, so the input ran out */
        pp_seterr(err, "truncated stream: the input ends before the end of the stream");
        break;
    case Z_NEED_DICT:
        pp_seterr(err, "corrupt stream: it needs a preset dictionary");
        break;
    case Z_DATA_ERROR:
        pp_seterr(err, "corrupt stream: %s", zs->msg ? zs->msg : "invalid data");
        break;
    case Z_MEM_ERROR:
        pp_seterr(err, "out of memory while inflating");
        break;
    default:
        pp_seterr(err, "inflate failed (zlib error %d)", ret);
        break;
    }
}

int pp_zip_declared(const void *in, size_t n, size_t max, size_t *declared, char *err)
{
    if (n < 4) {
        pp_seterr(err, "compressed payload of %zu bytes is too short for its length prefix", n);
        return -1;
    }
    uint32_t d = pp_load32(in);
    if (d > max) {
        pp_seterr(err, "declared size %u exceeds the limit %zu", (unsigned)d, max);
        return -1;
    }
    *declared = d;
    return 0;
}

int pp_zip_inflate(const void *in, size_t n, size_t max, void **out, size_t *outlen, char *err)
{
    size_t declared;
    if (pp_zip_declared(in, n, max, &declared, err) != 0)
        return -1;
    uint8_t *buf = malloc(declared + 1);
    if (!buf) {
        pp_seterr(err, "out of memory for %zu bytes", declared);
        return -1;
    }
    if (pp_zip_inflate_into(in, n, buf, declared, err) != 0) {
        free(buf);
        return -1;
    }
    buf[declared] = '\0';
    *out = buf;
    *outlen = declared;
    return 0;
}

int pp_zip_inflate_into(const void *in, size_t n, void *dst, size_t declared, char *err)
{
    const uint8_t *p = in;
    uint8_t *buf = dst;
    if (n < 4 || pp_load32(p) != declared) {
        pp_seterr(err, "the payload does not declare %zu bytes", declared);
        return -1;
    }
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    int ret = inflateInit(&zs);
    if (ret != Z_OK) {
        pp_seterr(err, "inflateInit failed: %s", ret == Z_MEM_ERROR ? "out of memory"
                                                 : zs.msg           ? zs.msg
                                                                    : "zlib error");
        return -1;
    }
    const uint8_t *ip = p + 4;
    size_t in_left = n - 4;
    zs.next_out = buf;
    zs.avail_out = (uInt)declared; /* exactly the declared bytes, never more */
    uint8_t probe;           /* one byte past them, to catch a longer stream */
    int full = 0;
    for (;;) {
        if (zs.avail_in == 0 && in_left > 0) {
            uInt chunk = in_left > UINT_MAX ? UINT_MAX : (uInt)in_left;
            zs.next_in = (Bytef *)ip;
            zs.avail_in = chunk;
            ip += chunk;
            in_left -= chunk;
        }
        if (!full && zs.avail_out == 0) {
            /* The declared bytes are all there: the rest of the stream may
             * only be its end (last block, checksum), not more data. */
            full = 1;
            zs.next_out = &probe;
            zs.avail_out = 1;
        }
        ret = inflate(&zs, Z_NO_FLUSH);
        if (full && zs.avail_out == 0) {
            pp_seterr(err, "stream holds more bytes than declared (%zu)", declared);
            goto fail;
        }
        if (ret == Z_STREAM_END)
            break;
        if (ret == Z_OK)
            continue;
        inflate_error(ret, &zs, err);
        goto fail;
    }
    size_t got = full ? declared : declared - zs.avail_out;
    if (got < declared) {
        pp_seterr(err, "stream holds fewer bytes than declared (%zu of %zu)", got, declared);
        goto fail;
    }
    if (zs.avail_in > 0 || in_left > 0) {
        pp_seterr(err, "trailing bytes after the stream (%zu)", (size_t)zs.avail_in + in_left);
        goto fail;
    }
    inflateEnd(&zs);
    return 0;
fail:
    inflateEnd(&zs);
    return -1;
}
