/* SPDX-License-Identifier: MIT */
/* pp_wire.c -- frame header codec, incremental reader, field codecs. */
#include "pp_wire.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pp_shm.h"

#define READER_CAP (256 * 1024)

void pp_wire_encode_hdr(uint8_t out[PP_WIRE_HDR], uint8_t type, uint16_t flags, uint64_t id,
                        uint32_t len)
{
    out[0] = PP_WIRE_MAGIC0;
    out[1] = PP_WIRE_MAGIC1;
    out[2] = PP_WIRE_VERSION;
    out[3] = type;
    pp_store16(out + 4, flags);
    pp_store16(out + 6, 0);
    pp_store64(out + 8, id);
    pp_store32(out + 16, len);
}

int pp_wire_decode_hdr(const uint8_t in[PP_WIRE_HDR], uint32_t max_len, uint8_t max_type,
                       pp_frame_hdr *out, char *err)
{
    if (in[0] != PP_WIRE_MAGIC0 || in[1] != PP_WIRE_MAGIC1) {
        pp_seterr(err, "not a pp frame (bad magic 0x%02x%02x)", in[0], in[1]);
        return -1;
    }
    if (in[2] != PP_WIRE_VERSION) {
        pp_seterr(err, "unsupported frame version %u (this side speaks %u)", in[2],
                  PP_WIRE_VERSION);
        return -1;
    }
    if (in[3] == 0 || in[3] > max_type) {
        pp_seterr(err, "unknown frame type %u", in[3]);
        return -1;
    }
    uint16_t flags = pp_load16(in + 4);
    if (flags & ~PP_WIRE_F_ALL) {
        pp_seterr(err, "unknown frame flags 0x%04x", flags);
        return -1;
    }
    if (pp_load16(in + 6) != 0) {
        pp_seterr(err, "reserved header field is not zero");
        return -1;
    }
    uint32_t len = pp_load32(in + 16);
    if (len > max_len) {
        pp_seterr(err, "frame of %u bytes exceeds the limit of %u", len, max_len);
        return -1;
    }
    out->type = in[3];
    out->flags = flags;
    out->id = pp_load64(in + 8);
    out->len = len;
    return 0;
}

int pp_wire_reader_init(pp_wire_reader *r, uint32_t max_len, uint8_t max_type)
{
    memset(r, 0, sizeof *r);
    r->max_len = max_len;
    r->max_type = max_type;
    return 0;
}

/* Lets go of the large body, wherever it lies. */
static void big_release(pp_wire_reader *r)
{
    if (r->big_shm)
        pp_shm_unref(r->big_shm);
    else
        free(r->big);
    r->big = NULL;
    r->big_shm = NULL;
}

void pp_wire_reader_free(pp_wire_reader *r)
{
    free(r->buf);
    big_release(r);
    memset(r, 0, sizeof *r);
}

void pp_wire_reader_use_shm(pp_wire_reader *r, struct pp_shm_cache *c, uint32_t min)
{
    r->shm = c;
    r->shm_min = min;
}

size_t pp_wire_reader_pending(const pp_wire_reader *r)
{
    size_t n = r->end - r->start;
    if (r->big && !r->big_ready)
        n += PP_WIRE_HDR + r->big_have; /* a large frame in progress */
    return n;
}

/* A large body is being filled (not yet complete). */
static int big_filling(const pp_wire_reader *r)
{
    return r->big && !r->big_ready && r->big_have < r->big_hdr.len;
}

void *pp_wire_reader_space(pp_wire_reader *r, size_t *n)
{
    if (big_filling(r)) {
        *n = r->big_hdr.len - r->big_have;
        return r->big + r->big_have;
    }
    if (!r->buf) {
        r->buf = malloc(READER_CAP);
        if (!r->buf)
            return NULL;
        r->cap = READER_CAP;
    }
    if (r->start == r->end) {
        r->start = r->end = 0;
    } else if (r->start > r->cap / 2 || r->cap - r->end < PP_WIRE_HDR) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    *n = r->cap - r->end;
    return r->buf + r->end;
}

/* Moves a staged large frame's header and first bytes into an exact
 * allocation, so that staging never has to hold a large body.  A bad header
 * is left in place for next() to report. */
static void reader_promote(pp_wire_reader *r)
{
    if (r->big || r->end - r->start < PP_WIRE_HDR)
        return;
    pp_frame_hdr h;
    if (pp_wire_decode_hdr(r->buf + r->start, r->max_len, r->max_type, &h, NULL) != 0 ||
        h.len <= PP_WIRE_BIG)
        return;
    pp_shm *b = r->shm && h.len >= r->shm_min && !(h.flags & PP_WIRE_F_ZLIB) ? pp_shm_get(r->shm, h.len, 0, NULL) : NULL;
    uint8_t *body = b ? b->base : pp_malloc_big((size_t)h.len + 1);
    if (!body)
        return;
    r->big = body;
    r->big_shm = b;
    r->big_hdr = h;
    r->big_ready = 0;
    r->start += PP_WIRE_HDR;
    size_t k = PP_MIN(r->end - r->start, (size_t)h.len);
    memcpy(r->big, r->buf + r->start, k);
    r->start += k;
    r->big_have = k;
}

void pp_wire_reader_commit(pp_wire_reader *r, size_t n)
{
    if (big_filling(r)) {
        r->big_have += n;
    } else {
        r->end += n;
        reader_promote(r);
    }
}

int pp_wire_reader_feed(pp_wire_reader *r, const void *data, size_t n)
{
    const uint8_t *p = data;
    while (n > 0) {
        size_t room;
        uint8_t *dst = pp_wire_reader_space(r, &room);
        if (!dst || room == 0)
            return -1; /* out of memory, or frames left undrained by next() */
        size_t k = PP_MIN(room, n);
        memcpy(dst, p, k);
        pp_wire_reader_commit(r, k);
        p += k;
        n -= k;
    }
    return 0;
}

int pp_wire_reader_next(pp_wire_reader *r, pp_frame *f)
{
    if (r->big && r->big_ready) {
        big_release(r);
        r->big_ready = 0;
        r->big_have = 0;
        reader_promote(r);
    }
    if (r->big) {
        if (r->big_have < r->big_hdr.len)
            return 0;
        r->big[r->big_hdr.len] = 0;
        r->big_ready = 1;
        f->hdr = r->big_hdr;
        f->payload = r->big;
        return 1;
    }
    size_t avail = r->end - r->start;
    if (avail < PP_WIRE_HDR) {
        /* Refuse a foreign greeting ("GET /", TLS) from its first bytes,
         * not only once a whole header's worth has arrived. */
        const uint8_t *p = r->buf + r->start;
        if ((avail > 0 && p[0] != PP_WIRE_MAGIC0) || (avail > 1 && p[1] != PP_WIRE_MAGIC1)) {
            pp_seterr(r->errstr, "not a pp frame (bad magic 0x%02x%02x)", p[0],
                      avail > 1 ? p[1] : 0);
            return -1;
        }
        if (avail > 2 && p[2] != PP_WIRE_VERSION) {
            pp_seterr(r->errstr, "unsupported frame version %u (this side speaks %u)", p[2],
                      PP_WIRE_VERSION);
            return -1;
        }
        return 0;
    }
    pp_frame_hdr h;
    if (pp_wire_decode_hdr(r->buf + r->start, r->max_len, r->max_type, &h, r->errstr) != 0)
        return -1;
    if (h.len > PP_WIRE_BIG) {
        reader_promote(r);
        if (!r->big) {
            pp_seterr(r->errstr, "out of memory for a frame of %u bytes", h.len);
            return -1;
        }
        return pp_wire_reader_next(r, f);
    }
    if (avail < PP_WIRE_HDR + (size_t)h.len)
        return 0;
    f->hdr = h;
    f->payload = r->buf + r->start + PP_WIRE_HDR;
    r->start += PP_WIRE_HDR + h.len;
    return 1;
}

pp_shm *pp_wire_reader_take_shm(pp_wire_reader *r, const pp_frame *f)
{
    if (!r->big_shm || !r->big_ready || f->payload != r->big)
        return NULL;
    pp_shm *b = r->big_shm;
    r->big = NULL;
    r->big_shm = NULL;
    r->big_ready = 0;
    r->big_have = 0;
    return b;
}

void *pp_wire_reader_take(pp_wire_reader *r, const pp_frame *f)
{
    if (r->big && r->big_ready && f->payload == r->big && !r->big_shm) {
        void *p = r->big;
        r->big = NULL;
        r->big_ready = 0;
        r->big_have = 0;
        return p;
    }
    uint8_t *p = malloc((size_t)f->hdr.len + 1);
    if (!p)
        return NULL;
    memcpy(p, f->payload, f->hdr.len);
    p[f->hdr.len] = 0;
    return p;
}

/* ---- field codecs ---- */

const uint8_t *pp_rd_bytes(pp_rd *r, size_t n)
{
    if (r->bad || n > r->left) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *p = r->p;
    r->p += n;
    r->left -= n;
    return p;
}

uint8_t pp_rd_u8(pp_rd *r)
{
    const uint8_t *p = pp_rd_bytes(r, 1);
    return p ? p[0] : 0;
}

uint16_t pp_rd_u16(pp_rd *r)
{
    const uint8_t *p = pp_rd_bytes(r, 2);
    return p ? pp_load16(p) : 0;
}

uint32_t pp_rd_u32(pp_rd *r)
{
    const uint8_t *p = pp_rd_bytes(r, 4);
    return p ? pp_load32(p) : 0;
}

uint64_t pp_rd_u64(pp_rd *r)
{
    const uint8_t *p = pp_rd_bytes(r, 8);
    return p ? pp_load64(p) : 0;
}

void pp_rd_str16(pp_rd *r, char *out, size_t outlen)
{
    out[0] = 0;
    uint16_t n = pp_rd_u16(r);
    const uint8_t *p = pp_rd_bytes(r, n);
    if (!p)
        return;
    if ((size_t)n >= outlen || memchr(p, 0, n)) {
        r->bad = 1;
        return;
    }
    memcpy(out, p, n);
    out[n] = 0;
}

int pp_wr_u8(pp_buf *b, uint8_t v)
{
    return pp_buf_append(b, &v, 1);
}

int pp_wr_u16(pp_buf *b, uint16_t v)
{
    uint8_t t[2];
    pp_store16(t, v);
    return pp_buf_append(b, t, 2);
}

int pp_wr_u32(pp_buf *b, uint32_t v)
{
    uint8_t t[4];
    pp_store32(t, v);
    return pp_buf_append(b, t, 4);
}

int pp_wr_u64(pp_buf *b, uint64_t v)
{
    uint8_t t[8];
    pp_store64(t, v);
    return pp_buf_append(b, t, 8);
}

int pp_wr_str16(pp_buf *b, const char *s)
{
    size_t n = strlen(s);
    if (n > UINT16_MAX)
        return -1;
    if (pp_wr_u16(b, (uint16_t)n) != 0)
        return -1;
    return pp_buf_append(b, s, n);
}
