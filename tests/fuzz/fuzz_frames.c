/* SPDX-License-Identifier: MIT */
/* fuzz_frames.c -- the frame decoder: pp_wire_reader fed the input in
 * chunks whose sizes the input's first byte chooses (so a header or body may
 * be split anywhere), each frame's payload then read with the bounded field
 * readers as the protocol's parsers do, through the TAGS decoder, and, for
 * an RRESULT, as a client takes a node's result (inflated when compressed,
 * its head decoded, a batch's items walked).  Both limits are exercised:
 * the one before authentication (4 KiB) and a post-authentication one.
 *
 * Bodies above PP_WIRE_BIG cannot come whole in an input, so the harness
 * completes the one in progress itself once the input gave its first
 * HEAD_IN bytes (through the reader's space, as a connection's recv does),
 * with a byte taken from the input as filler, for the first few of them;
 * the bytes after it go on from the input.  The first byte's bit 5 makes
 * the reader receive large plain bodies into shared buffers, as the node's
 * and the client's connections do; a frame's id then says whether the
 * payload is taken (bit 0) or its shared buffer (bit 1). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pp_common.h"
#include "pp_proto.h"
#include "pp_shm.h"
#include "pp_zip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_fields(const pp_frame *f)
{
    pp_rd rd = pp_rd_make(f->payload, f->hdr.len);
    char s[256];
    (void)pp_rd_u8(&rd);
    (void)pp_rd_bytes(&rd, 32);
    pp_rd_str16(&rd, s, sizeof s);
    (void)pp_rd_u16(&rd);
    (void)pp_rd_u32(&rd);
    (void)pp_rd_u64(&rd);
    if (!rd.bad && rd.left)
        (void)pp_rd_bytes(&rd, rd.left);
    /* The node's tags: a decoder that takes what any peer sends. */
    pp_tags t;
    char err[PP_ERR_LEN];
    if (pp_proto_tags_decode(f, &t, err) == 0 && t.n > PP_TAGS_MAX)
        abort();
}

/* A client's RRESULT: as ppclient/remote.c and map.c read it. */
static void read_result(const pp_frame *f, uint32_t max_len)
{
    const uint8_t *p = f->payload;
    size_t n = f->hdr.len;
    void *out = NULL;
    char err[PP_ERR_LEN];
    if (f->hdr.flags & PP_WIRE_F_ZLIB) {
        if (pp_zip_inflate(p, n, (size_t)max_len + 1024u, &out, &n, err) != 0)
            return;
        p = out;
    }
    pp_msg_result m;
    unsigned allowed = 1u << PP_DONE | 1u << PP_FAILED | 1u << PP_ELOAD | 1u << PP_CRASHED |
                       1u << PP_TIMEOUT | 1u << PP_CANCELLED;
    if (pp_proto_result_decode(p, n, allowed, &m) == 0) {
        if (m.data < p || m.data + m.len != p + n)
            abort();
        pp_batch_iter it;
        pp_batch_item item;
        if ((f->hdr.flags & PP_WIRE_F_BATCH) &&
            pp_proto_batch_open(&it, m.data, m.len, PP_BATCH_RESULTS) == 0) {
            while (pp_proto_batch_next(&it, &item) == 1)
                if (item.data < m.data || item.data + item.len > m.data + m.len)
                    abort();
        }
    }
    free(out);
}

/* Fills the rest of a large body in progress with `fill`. */
static void complete_big(pp_wire_reader *r, uint8_t fill)
{
    size_t room;
    uint8_t *p;
    while (r->big && !r->big_ready && r->big_have < r->big_hdr.len &&
           (p = pp_wire_reader_space(r, &room)) && room) {
        memset(p, fill, room);
        pp_wire_reader_commit(r, room);
    }
}

/* Takes the frame just returned as its id says; checks what comes out. */
static void take_frame(pp_wire_reader *r, const pp_frame *f)
{
    pp_shm *b = (f->hdr.id & 2) ? pp_wire_reader_take_shm(r, f) : NULL;
    if (b) {
        if (b->base != f->payload || b->cap <= f->hdr.len || b->base[f->hdr.len] != 0 ||
            (f->hdr.flags & PP_WIRE_F_ZLIB) || f->hdr.len <= PP_WIRE_BIG)
            abort(); /* a plain large body, NUL-terminated, in place */
        pp_shm_unref(b);
    } else if (f->hdr.id & 1) {
        uint8_t *p = pp_wire_reader_take(r, f);
        if (p && p[f->hdr.len] != 0)
            abort();
        free(p);
    }
}

#define HEAD_IN 64 /* a large body's bytes that come from the input */

static pp_shm_cache *shm_cache;

static void free_cache(void)
{
    pp_shm_cache_free(shm_cache);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    data++;
    size--;
    uint32_t max_len = (mode & 0x80) ? PP_PREAUTH_MAX : 1u << 20;
    uint8_t max_type = (mode & 0x40) ? PP_T_MAX : PP_T_NET_MAX;
    size_t chunk = (mode & 0x1F) + 1; /* 1..32 bytes per feed */
    if ((mode & 0x20) && !shm_cache && (shm_cache = pp_shm_cache_new(4u << 20)))
        atexit(free_cache);
    pp_wire_reader r;
    if (pp_wire_reader_init(&r, max_len, max_type) != 0)
        return 0;
    if (mode & 0x20)
        pp_wire_reader_use_shm(&r, shm_cache, 0);
    size_t off = 0;
    int dead = 0, completed = 0;
    while (off < size && !dead) {
        size_t k = PP_MIN(chunk, size - off);
        if (pp_wire_reader_feed(&r, data + off, k) != 0)
            break;
        off += k;
        if (r.big && !r.big_ready && r.big_have >= HEAD_IN && completed < 4 && off < size) {
            complete_big(&r, data[off++]);
            completed++;
        }
        pp_frame f;
        int rc;
        while ((rc = pp_wire_reader_next(&r, &f)) == 1) {
            if (f.hdr.len > max_len || f.hdr.type > max_type)
                abort(); /* the reader let through what it must refuse */
            read_fields(&f);
            if (f.hdr.type == PP_T_RRESULT)
                read_result(&f, max_len);
            take_frame(&r, &f);
        }
        dead = rc < 0;
    }
    pp_wire_reader_free(&r);
    return 0;
}
