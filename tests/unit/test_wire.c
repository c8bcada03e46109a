/* SPDX-License-Identifier: MIT */
/* test_wire.c -- pp_wire: the header codec (byte-exact), the incremental
 * reader (splits, limits, large frames, take, pending) and the field codecs.
 *
 * Tests named "regression: ..." pin defects that were found and fixed (see
 * the comment above each). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_main.h"
#include "pp_buf.h"
#include "pp_common.h"
#include "pp_proto.h"

#define MIB (1024u * 1024u)

/* A valid header to corrupt: type 3, flags 1, id 0x0102030405060708,
 * length 0x0A0B0C0D, written out by hand from the spec. */
static const uint8_t good_hdr[PP_WIRE_HDR] = {
    'P',  'P',  0x01, 0x03,             /* magic, version, type */
    0x00, 0x01, 0x00, 0x00,             /* flags, reserved zero */
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, /* job id */
    0x0A, 0x0B, 0x0C, 0x0D,             /* payload length */
};

/* Byte i of the payload of frame `id`: a pattern that differs per frame. */
static uint8_t pat(uint64_t id, size_t i)
{
    return (uint8_t)(i * 31u + id * 7u + (i >> 8));
}

/* Appends one frame whose payload is the pattern of `id`. */
static void add_frame(pp_buf *s, uint8_t type, uint16_t flags, uint64_t id, uint32_t len)
{
    uint8_t h[PP_WIRE_HDR];
    pp_wire_encode_hdr(h, type, flags, id, len);
    CU_ASSERT_FATAL(pp_buf_append(s, h, sizeof h) == 0);
    CU_ASSERT_FATAL(pp_buf_reserve(s, len) == 0);
    for (uint32_t i = 0; i < len; i++)
        s->data[s->len + i] = pat(id, i);
    s->len += len;
    s->data[s->len] = 0;
}

static int payload_ok(const pp_frame *f)
{
    if (f->hdr.len && !f->payload)
        return 0;
    for (uint32_t i = 0; i < f->hdr.len; i++)
        if (f->payload[i] != pat(f->hdr.id, i))
            return 0;
    return 1;
}

/* The frames every split test sends: lengths around the interesting sizes,
 * all small enough to be staged (<= PP_WIRE_BIG). */
static const struct { uint8_t type; uint16_t flags; uint64_t id; uint32_t len; } small_set[] = {
    {1, 0, 1, 0},
    {2, 0, 2, 1},
    {3, 1, 3, 19},
    {4, 0, 4, 20},
    {1, 0, 5, 21},
    {3, 0, 0xFFFFFFFFFFFFFFFFull, 4096},
    {4, 1, 7, 5},
    {3, 0, 8, PP_WIRE_BIG}, /* the largest staged frame */
    {2, 0, 9, 0},
    {4, 0, 10, 1000},
};

static void build_small_set(pp_buf *s)
{
    pp_buf_init(s, 4 * MIB);
    for (size_t i = 0; i < PP_ARRAY_LEN(small_set); i++)
        add_frame(s, small_set[i].type, small_set[i].flags, small_set[i].id, small_set[i].len);
}

/* Checks the k-th frame of the small set. */
static int small_matches(size_t k, const pp_frame *f)
{
    return k < PP_ARRAY_LEN(small_set) && f->hdr.type == small_set[k].type &&
           f->hdr.flags == small_set[k].flags && f->hdr.id == small_set[k].id &&
           f->hdr.len == small_set[k].len && payload_ok(f);
}

/* Drains the reader; returns the frames seen so far, or -1 on a mismatch
 * or a reader error. */
static int drain_small(pp_wire_reader *r, size_t *seen)
{
    pp_frame f;
    int rc;
    for (int guard = 0; guard < 100; guard++) {
        rc = pp_wire_reader_next(r, &f);
        if (rc == 0)
            return 0;
        if (rc < 0 || !small_matches(*seen, &f))
            return -1;
        (*seen)++;
    }
    return -1;
}

/* Feeds the stream in pieces of the given sizes (cycled), draining after
 * each, and checks every frame arrives intact and in order. */
static void feed_in_pieces(const size_t *sizes, size_t nsizes)
{
    pp_buf s;
    build_small_set(&s);
    pp_wire_reader r;
    CU_ASSERT_FATAL(pp_wire_reader_init(&r, 1 * MIB, PP_T_MAX) == 0);
    size_t off = 0, seen = 0, k = 0;
    int ok = 1;
    while (off < s.len && ok) {
        size_t n = PP_MIN(sizes[k++ % nsizes], s.len - off);
        ok = pp_wire_reader_feed(&r, s.data + off, n) == 0 && drain_small(&r, &seen) == 0;
        off += n;
    }
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(seen, PP_ARRAY_LEN(small_set));
    CU_ASSERT_EQUAL(pp_wire_reader_pending(&r), 0);
    pp_wire_reader_free(&r);
    pp_buf_reset(&s);
}

/* ---- header codec ---- */

static void test_encode_exact(void)
{
    uint8_t out[PP_WIRE_HDR + 2];
    memset(out, 0xEE, sizeof out);
    pp_wire_encode_hdr(out, 3, PP_WIRE_F_ZLIB, 0x0102030405060708ull, 0x0A0B0C0Du);
    CU_ASSERT_EQUAL(memcmp(out, good_hdr, PP_WIRE_HDR), 0);
    CU_ASSERT_EQUAL(out[PP_WIRE_HDR], 0xEE); /* writes exactly 20 bytes */
    CU_ASSERT_EQUAL(out[PP_WIRE_HDR + 1], 0xEE);

    /* A second vector: the extremes of every field. */
    static const uint8_t want[PP_WIRE_HDR] = {'P', 'P', 1, 4, 0, 0, 0, 0,
                                              0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,
                                              0xFF, 0xFF, 0xFF, 0xFF};
    pp_wire_encode_hdr(out, 4, 0, 0xFFFFFFFFFFFFFFFEull, 0xFFFFFFFFu);
    CU_ASSERT_EQUAL(memcmp(out, want, PP_WIRE_HDR), 0);
}

static void test_decode_good(void)
{
    pp_frame_hdr h;
    char err[PP_ERR_LEN] = "";
    CU_ASSERT_EQUAL(pp_wire_decode_hdr(good_hdr, 0x0A0B0C0Du, PP_T_MAX, &h, err), 0);
    CU_ASSERT_EQUAL(h.type, 3);
    CU_ASSERT_EQUAL(h.flags, PP_WIRE_F_ZLIB);
    CU_ASSERT(h.id == 0x0102030405060708ull);
    CU_ASSERT_EQUAL(h.len, 0x0A0B0C0Du);
    CU_ASSERT_STRING_EQUAL(err, "");

    /* Round trip of encode and decode; type == max_type is accepted. */
    uint8_t b[PP_WIRE_HDR];
    pp_wire_encode_hdr(b, PP_T_MAX, 0, 42, 0);
    CU_ASSERT_EQUAL(pp_wire_decode_hdr(b, 0, PP_T_MAX, &h, NULL), 0);
    CU_ASSERT_EQUAL(h.type, PP_T_MAX);
    CU_ASSERT_EQUAL(h.flags, 0);
    CU_ASSERT(h.id == 42);
    CU_ASSERT_EQUAL(h.len, 0);
}

/* Corrupts byte `at` of the good header to `val` and expects a refusal
 * whose text contains `needle`. */
static void expect_bad(size_t at, uint8_t val, uint32_t max_len, const char *needle)
{
    uint8_t b[PP_WIRE_HDR];
    memcpy(b, good_hdr, sizeof b);
    b[at] = val;
    pp_frame_hdr h;
    char err[PP_ERR_LEN] = "";
    CU_ASSERT_EQUAL(pp_wire_decode_hdr(b, max_len, PP_T_MAX, &h, err), -1);
    if (!strstr(err, needle)) {
        fprintf(stderr, "\n  byte %zu=0x%02x: error \"%s\" lacks \"%s\"\n", at, val, err, needle);
        CU_FAIL("error text does not name the problem");
    }
    /* NULL err is allowed. */
    CU_ASSERT_EQUAL(pp_wire_decode_hdr(b, max_len, PP_T_MAX, &h, NULL), -1);
}

static void test_decode_errors(void)
{
    const uint32_t ok_len = 0x0A0B0C0Du;
    expect_bad(0, 'X', ok_len, "magic");
    expect_bad(1, 'Q', ok_len, "magic");
    expect_bad(2, 0, ok_len, "version 0");
    expect_bad(2, 2, ok_len, "version 2");
    expect_bad(3, 0, ok_len, "type 0");
    char over[32];
    snprintf(over, sizeof over, "type %d", PP_T_MAX + 1);
    expect_bad(3, PP_T_MAX + 1, ok_len, over);
    expect_bad(3, 0xFF, ok_len, "type 255");
    expect_bad(5, 0x05, ok_len, "flags 0x0005");  /* unknown bit 2 (bit 1 is PP_WIRE_F_BATCH) */
    expect_bad(4, 0x80, ok_len, "flags 0x8001");  /* unknown bit 15 */
    expect_bad(6, 0x01, ok_len, "reserved");
    expect_bad(7, 0x01, ok_len, "reserved");
    expect_bad(19, 0x0D, ok_len - 1, "exceeds the limit");
    expect_bad(16, 0xFF, ok_len, "4278914061 bytes"); /* 0xFF0B0C0D */
}

/* A header's errors are distinct: no two problems share a message. */
static void test_decode_errors_distinct(void)
{
    static const struct { size_t at; uint8_t val; } cases[] = {
        {0, 'X'}, {2, 9}, {3, 0}, {5, 0x04}, {6, 1}, {16, 0xFF},
    };
    char msgs[PP_ARRAY_LEN(cases)][PP_ERR_LEN];
    for (size_t i = 0; i < PP_ARRAY_LEN(cases); i++) {
        uint8_t b[PP_WIRE_HDR];
        memcpy(b, good_hdr, sizeof b);
        b[cases[i].at] = cases[i].val;
        pp_frame_hdr h;
        msgs[i][0] = 0;
        CU_ASSERT_EQUAL(pp_wire_decode_hdr(b, 0x0A0B0C0Du, PP_T_MAX, &h, msgs[i]), -1);
        CU_ASSERT(msgs[i][0] != 0);
        for (size_t j = 0; j < i; j++)
            CU_ASSERT(strcmp(msgs[i], msgs[j]) != 0);
    }
}

/* The reader reports a bad header from next() with its text, and stays
 * failed. */
static void test_reader_bad_header(void)
{
    static const struct { size_t at; uint8_t val; const char *needle; } cases[] = {
        {0, 'G', "magic"},   {2, 7, "version"},      {3, 0, "type"},
        {3, 9, "type"},      {5, 0x10, "flags"},     {7, 0x20, "reserved"},
        {16, 0x7F, "exceeds"},
    };
    for (size_t i = 0; i < PP_ARRAY_LEN(cases); i++) {
        uint8_t b[PP_WIRE_HDR];
        memcpy(b, good_hdr, sizeof b);
        memset(b + 16, 0, 4); /* length 0, then corrupt one field */
        b[cases[i].at] = cases[i].val;
        pp_wire_reader r;
        CU_ASSERT_FATAL(pp_wire_reader_init(&r, 1000, PP_T_MAX) == 0);
        CU_ASSERT_EQUAL(pp_wire_reader_feed(&r, b, sizeof b), 0);
        pp_frame f;
        CU_ASSERT_EQUAL(pp_wire_reader_next(&r, &f), -1);
        CU_ASSERT_PTR_NOT_NULL(strstr(r.errstr, cases[i].needle));
        CU_ASSERT_PTR_NULL(r.big); /* refused before allocating a body */
        CU_ASSERT_EQUAL(pp_wire_reader_next(&r, &f), -1); /* unusable after */
        pp_wire_reader_free(&r);
    }
}

/* ---- reader: splits ---- */

static void test_reader_whole(void)
{
    static const size_t all[] = {SIZE_MAX};
    feed_in_pieces(all, 1);
}

static void test_reader_byte_at_a_time(void)
{
    static const size_t one[] = {1};
    feed_in_pieces(one, 1);
}

static void test_reader_odd_splits(void)
{
    static const size_t a[] = {7, 13, 1, 19, 20, 21, 3, 4099, 2};
    static const size_t b[] = {19};
    static const size_t c[] = {21};
    static const size_t d[] = {65537, 5};
    static const size_t e[] = {997};
    feed_in_pieces(a, PP_ARRAY_LEN(a));
    feed_in_pieces(b, 1);
    feed_in_pieces(c, 1);
    feed_in_pieces(d, PP_ARRAY_LEN(d));
    feed_in_pieces(e, 1);
}

/* Several frames in one feed, then all taken out by next(). */
static void test_reader_several_in_one_feed(void)
{
    pp_buf s;
    pp_buf_init(&s, MIB);
    for (uint64_t id = 1; id <= 50; id++)
        add_frame(&s, (uint8_t)(1 + id % PP_T_MAX), 0, id, (uint32_t)(id * 3));
    pp_wire_reader r;
    CU_ASSERT_FATAL(pp_wire_reader_init(&r, 1000, PP_T_MAX) == 0);
    CU_ASSERT_EQUAL(pp_wire_reader_feed(&r, s.data, s.len), 0);
    CU_ASSERT_EQUAL(pp_wire_reader_pending(&r), s.len);
    pp_frame f;
    uint64_t want = 1;
    for (int i = 0; i < 60 && pp_wire_reader_next(&r, &f) == 1; i++) {
        CU_ASSERT(f.hdr.id == want);
        CU_ASSERT_EQUAL(f.hdr.len, want * 3);
        CU_ASSERT_EQUAL(f.hdr.type, 1 + want % PP_T_MAX);
        CU_ASSERT(payload_ok(&f));
        want++;
    }
    CU_ASSERT(want == 51);
    CU_ASSERT_EQUAL(pp_wire_reader_next(&r, &f), 0);
    CU_ASSERT_EQUAL(pp_wire_reader_pending(&r), 0);
    pp_wire_reader_free(&r);
    pp_buf_reset(&s);
}

/* ---- reader: lengths ---- */

static void test_reader_len_zero(void)
{
    uint8_t h[PP_WIRE_HDR];
    pp_wire_encode_hdr(h, 1, 0, 77, 0);
    pp_wire_reader r;
    CU_ASSERT_FATAL(pp_wire_reader_init(&r, 0, PP_T_MAX) == 0); /* max 0: only empty frames */
    CU_ASSERT_EQUAL(pp_wire_reader_feed(&r, h, sizeof h), 0);
    pp_frame f;
    CU_ASSERT_EQUAL(pp_wire_reader_next(&r, &f), 1);
    CU_ASSERT_EQUAL(f.hdr.len, 0);
    CU_ASSERT(f.hdr.id == 77);
    char *p = pp_wire_reader_take(&r, &f);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(p[0], 0);
    free(p);
    CU_ASSERT_EQUAL(pp_wire_reader_next(&r, &f), 0);
    CU_ASSERT_EQUAL(pp_wire_reader_pending(&r), 0);
    pp_wire_reader_free(&r);
}

/* Exactly max is accepted, max+1 refused (small and large max). */
static void test_reader_len_max(void)
{
    static const uint32_t maxes[] = {100, PP_WIRE_BIG, 2 * MIB};
    for (size_t i = 0; i < PP_ARRAY_LEN(maxes); i++) {
        uint32_t max = maxes[i];
        pp_buf s;
        pp_buf_init(&s, 4 * MIB);
        add_frame(&s, 2, 0, 5, max);
        pp_wire_reader r;
        CU_ASSERT_FATAL(pp_wire_reader_init(&r, max, PP_T_MAX) == 0);
        CU_ASSERT_EQUAL(pp_wire_reader_feed(&r, s.data, s.len), 0);
        pp_frame f;
        CU_ASSERT_EQUAL(pp_wire_reader_next(&r, &f), 1);
        CU_ASSERT_EQUAL(f.hdr.len, max);
        CU_ASSERT(payload_ok(&f));
        CU_ASSERT_EQUAL(pp_wire_reader_next(&r, &f), 0);
        pp_wire_reader_free(&r);
        pp_buf_reset(&s);
    }
}

/* Lengths above the limit are refused from the header alone, before any
 * body is allocated; the error comes from next(). */
static void test_reader_len_over(void)
{
    static const struct { uint32_t max, len; } cases[] = {
        {100, 101}, {PP_WIRE_BIG, PP_WIRE_BIG + 1}, {2 * MIB, 2 * MIB + 1},
        {2 * MIB, 0xFFFFFFFFu}, {0xFFFFFFFEu, 0xFFFFFFFFu},
    };
    for (size_t i = 0; i < PP_ARRAY_LEN(cases); i++) {
        uint8_t h[PP_WIRE_HDR];
        pp_wire_encode_hdr(h, 3, 0, 1, cases[i].len);
        pp_wire_reader r;
        CU_ASSERT_FATAL(pp_wire_reader_init(&r, cases[i].max, PP_T_MAX) == 0);
        CU_ASSERT_EQUAL(pp_wire_reader_feed(&r, h, sizeof h), 0);
        CU_ASSERT_PTR_NULL(r.big);
        pp_frame f;
        CU_ASSERT_EQUAL(pp_wire_reader_next(&r, &f), -1);
        CU_ASSERT_PTR_NULL(r.big);
        CU_ASSERT_PTR_NOT_NULL(strstr(r.errstr, "exceeds the limit"));
        char num[16];
        snprintf(num, sizeof num, "%u", cases[i].len);
        CU_ASSERT_PTR_NOT_NULL(strstr(r.errstr, num));
        pp_wire_reader_free(&r);
    }
}

/* ---- reader: large frames ---- */

/* A 1 MiB frame fed in one call, then taken without a copy. */
static void test_reader_big_feed(void)
{
    pp_buf s;
    pp_buf_init(&s, 4 * MIB);
    add_frame(&s, 3, 0, 99, MIB);
    pp_wire_reader r;
    CU_ASSERT_FATAL(pp_wire_reader_init(&r, 2 * MIB, PP_T_MAX) == 0);
    CU_ASSERT_EQUAL(pp_wire_reader_feed(&r, s.data, s.len), 0);
    pp_frame f;
    CU_ASSERT_EQUAL_FATAL(pp_wire_reader_next(&r, &f), 1);
    CU_ASSERT_EQUAL(f.hdr.len, MIB);
    CU_ASSERT(f.hdr.id == 99);
    CU_ASSERT(payload_ok(&f));
    const uint8_t *where = f.payload;
    uint8_t *p = pp_wire_reader_take(&r, &f);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_PTR_EQUAL(p, where); /* moved, not copied */
    CU_ASSERT_EQUAL(p[MIB], 0);    /* NUL-terminated */
    CU_ASSERT_EQUAL(memcmp(p, s.data + PP_WIRE_HDR, MIB), 0);
    free(p);
    /* The reader goes on after a take. */
    CU_ASSERT_EQUAL(pp_wire_reader_next(&r, &f), 0);
    pp_buf_reset(&s);
    add_frame(&s, 1, 0, 100, 10);
    CU_ASSERT_EQUAL(pp_wire_reader_feed(&r, s.data, s.len), 0);
    CU_ASSERT_EQUAL(pp_wire_reader_next(&r, &f), 1);
    CU_ASSERT(f.hdr.id == 100 && f.hdr.len == 10 && payload_ok(&f));
    pp_wire_reader_free(&r);
    pp_buf_reset(&s);
}

/* A 1 MiB frame fed in odd pieces (the last piece ends with the frame);
 * not taken, so next() frees it. */
static void test_reader_big_pieces(void)
{
    static const size_t pieces[] = {1, 19, 1, 7, 65536, 3, 100000, 12345};
    pp_buf s;
    pp_buf_init(&s, 4 * MIB);
    add_frame(&s, 4, 1, 1234, MIB + 3);
    pp_wire_reader r;
    CU_ASSERT_FATAL(pp_wire_reader_init(&r, 2 * MIB, PP_T_MAX) == 0);
    size_t off = 0, k = 0;
    int frames = 0, ok = 1;
    pp_frame f;
    while (off < s.len && ok) {
        size_t n = PP_MIN(pieces[k++ % PP_ARRAY_LEN(pieces)], s.len - off);
        ok = pp_wire_reader_feed(&r, s.data + off, n) == 0;
        off += n;
        int rc = pp_wire_reader_next(&r, &f);
        if (rc < 0)
            ok = 0;
        if (rc == 1) {
            frames++;
            ok = off == s.len && f.hdr.len == MIB + 3 && f.hdr.id == 1234 &&
                 f.hdr.flags == 1 && f.hdr.type == 4 && payload_ok(&f) &&
                 f.payload[f.hdr.len] == 0;
        }
    }
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(frames, 1);
    CU_ASSERT_EQUAL(pp_wire_reader_next(&r, &f), 0);
    CU_ASSERT_EQUAL(pp_wire_reader_pending(&r), 0);
    pp_wire_reader_free(&r);
    pp_buf_reset(&s);
}

/* Large and small frames mixed, read through space/commit as a socket
 * reader does, in reads of at most `chunk` bytes. */
static void space_commit_mixed(size_t chunk)
{
    static const uint32_t lens[] = {10, MIB, 0, PP_WIRE_BIG + 1, 300, MIB / 2 + 7, 5};
    pp_buf s;
    pp_buf_init(&s, 8 * MIB);
    for (size_t i = 0; i < PP_ARRAY_LEN(lens); i++)
        add_frame(&s, 3, 0, 1000 + i, lens[i]);
    pp_wire_reader r;
    CU_ASSERT_FATAL(pp_wire_reader_init(&r, 2 * MIB, PP_T_MAX) == 0);
    size_t off = 0, seen = 0;
    int ok = 1;
    for (int guard = 0; off < s.len && ok && guard < 1000000; guard++) {
        size_t room = 0;
        uint8_t *dst = pp_wire_reader_space(&r, &room);
        if (!dst) {
            ok = 0;
            break;
        }
        size_t n = PP_MIN(PP_MIN(room, chunk), s.len - off);
        memcpy(dst, s.data + off, n);
        pp_wire_reader_commit(&r, n);
        off += n;
        pp_frame f;
        int rc;
        while ((rc = pp_wire_reader_next(&r, &f)) == 1) {
            ok = ok && seen < PP_ARRAY_LEN(lens) && f.hdr.id == 1000 + seen &&
                 f.hdr.len == lens[seen] && payload_ok(&f);
            seen++;
        }
        if (rc < 0)
            ok = 0;
    }
    CU_ASSERT(ok);
    CU_ASSERT_EQUAL(off, s.len);
    CU_ASSERT_EQUAL(seen, PP_ARRAY_LEN(lens));
    pp_wire_reader_free(&r);
    pp_buf_reset(&s);
}

static void test_reader_space_commit(void)
{
    space_commit_mixed(SIZE_MAX);
    space_commit_mixed(4096);
    space_commit_mixed(20000 + 3);
}

/* Taking a small frame gives a NUL-terminated copy; the reader goes on. */
static void test_reader_take_small(void)
{
    pp_buf s;
    pp_buf_init(&s, MIB);
    add_frame(&s, 2, 0, 1, 33);
    add_frame(&s, 2, 0, 2, 44);
    pp_wire_reader r;
    CU_ASSERT_FATAL(pp_wire_reader_init(&r, 1000, PP_T_MAX) == 0);
    CU_ASSERT_EQUAL(pp_wire_reader_feed(&r, s.data, s.len), 0);
    pp_frame f;
    CU_ASSERT_EQUAL_FATAL(pp_wire_reader_next(&r, &f), 1);
    uint8_t *p = pp_wire_reader_take(&r, &f);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT(p != f.payload);
    CU_ASSERT_EQUAL(memcmp(p, f.payload, 33), 0);
    CU_ASSERT_EQUAL(p[33], 0);
    CU_ASSERT_EQUAL_FATAL(pp_wire_reader_next(&r, &f), 1);
    CU_ASSERT(f.hdr.id == 2 && f.hdr.len == 44 && payload_ok(&f));
    /* The copy is still intact after the reader moved on. */
    int ok = 1;
    for (size_t i = 0; i < 33; i++)
        ok = ok && p[i] == pat(1, i);
    CU_ASSERT(ok);
    free(p);
    pp_wire_reader_free(&r);
    pp_buf_reset(&s);
}

/* A truncated frame and no more bytes: no frame, but bytes pending. */
static void test_reader_truncated(void)
{
    pp_buf s;
    pp_buf_init(&s, MIB);
    add_frame(&s, 2, 0, 1, 100);
    static const size_t cuts[] = {1, 19, 20, 21, 119};
    for (size_t i = 0; i < PP_ARRAY_LEN(cuts); i++) {
        pp_wire_reader r;
        CU_ASSERT_FATAL(pp_wire_reader_init(&r, 1000, PP_T_MAX) == 0);
        CU_ASSERT_EQUAL(pp_wire_reader_feed(&r, s.data, cuts[i]), 0);
        pp_frame f;
        CU_ASSERT_EQUAL(pp_wire_reader_next(&r, &f), 0);
        CU_ASSERT_EQUAL(pp_wire_reader_next(&r, &f), 0);
        CU_ASSERT_EQUAL(pp_wire_reader_pending(&r), cuts[i]);
        /* The rest completes it. */
        CU_ASSERT_EQUAL(pp_wire_reader_feed(&r, s.data + cuts[i], s.len - cuts[i]), 0);
        CU_ASSERT_EQUAL(pp_wire_reader_next(&r, &f), 1);
        CU_ASSERT(f.hdr.len == 100 && payload_ok(&f));
        CU_ASSERT_EQUAL(pp_wire_reader_pending(&r), 0);
        pp_wire_reader_free(&r);
    }
    pp_buf_reset(&s);
}

/* A truncated large frame with part of its body: bytes pending. */
static void test_reader_truncated_big(void)
{
    pp_buf s;
    pp_buf_init(&s, 4 * MIB);
    add_frame(&s, 2, 0, 1, MIB);
    pp_wire_reader r;
    CU_ASSERT_FATAL(pp_wire_reader_init(&r, 2 * MIB, PP_T_MAX) == 0);
    CU_ASSERT_EQUAL(pp_wire_reader_feed(&r, s.data, s.len / 2), 0);
    pp_frame f;
    CU_ASSERT_EQUAL(pp_wire_reader_next(&r, &f), 0);
    CU_ASSERT(pp_wire_reader_pending(&r) > 0);
    pp_wire_reader_free(&r);
    pp_buf_reset(&s);
}

/* Regression test (was a bug in shared/pp_wire.c:75-78, with reader_promote at :106-127): once the header
 * of a large frame (> PP_WIRE_BIG) has been read, it is moved out of the
 * staging buffer and is no longer counted, so with no body byte yet
 * pp_wire_reader_pending() returns 0 although 20 bytes of an unfinished
 * frame are buffered.  pp_conn then reports a peer closing after such a
 * header as "end of file" instead of "end of file inside a frame", and a
 * read deadline keyed on pending() does not apply. */
static void test_bug_pending_big_header_only(void)
{
    uint8_t h[PP_WIRE_HDR];
    pp_wire_encode_hdr(h, 3, 0, 1, MIB);
    pp_wire_reader r;
    CU_ASSERT_FATAL(pp_wire_reader_init(&r, 2 * MIB, PP_T_MAX) == 0);
    CU_ASSERT_EQUAL(pp_wire_reader_feed(&r, h, sizeof h), 0);
    pp_frame f;
    CU_ASSERT_EQUAL(pp_wire_reader_next(&r, &f), 0);
    CU_ASSERT(pp_wire_reader_pending(&r) > 0); /* fails: 0 */
    pp_wire_reader_free(&r);
}

/* Regression test (was a bug in shared/pp_wire.c:75-78): after next() returned a large frame (not
 * taken), pending() still counts its whole body until the following next(),
 * although the header documents "bytes buffered but not yet returned as
 * frames".  For small frames it is 0 at that point. */
static void test_bug_pending_after_big_returned(void)
{
    pp_buf s;
    pp_buf_init(&s, 4 * MIB);
    add_frame(&s, 3, 0, 1, MIB);
    pp_wire_reader r;
    CU_ASSERT_FATAL(pp_wire_reader_init(&r, 2 * MIB, PP_T_MAX) == 0);
    CU_ASSERT_EQUAL(pp_wire_reader_feed(&r, s.data, s.len), 0);
    pp_frame f;
    CU_ASSERT_EQUAL(pp_wire_reader_next(&r, &f), 1);
    CU_ASSERT_EQUAL(pp_wire_reader_pending(&r), 0); /* fails: 1048576 */
    pp_wire_reader_free(&r);
    pp_buf_reset(&s);
}

/* Regression test (was a bug in shared/pp_wire.c:82-85 with :137-151): when one feed holds the end of
 * a large frame and any byte after it, pp_wire_reader_space() offers 0 bytes
 * (the large body is full but not yet handed out) and
 * pp_wire_reader_feed() returns -1 after consuming an unknown prefix.  The
 * same bytes split at the frame boundary are accepted, and several small
 * frames in one feed are too. */
static void test_bug_feed_big_then_more(void)
{
    pp_buf s;
    pp_buf_init(&s, 4 * MIB);
    add_frame(&s, 3, 0, 1, MIB);
    add_frame(&s, 1, 0, 2, 10);
    pp_wire_reader r;
    CU_ASSERT_FATAL(pp_wire_reader_init(&r, 2 * MIB, PP_T_MAX) == 0);
    CU_ASSERT_EQUAL(pp_wire_reader_feed(&r, s.data, s.len), 0); /* fails: -1 */
    pp_frame f;
    CU_ASSERT_EQUAL(pp_wire_reader_next(&r, &f), 1);
    CU_ASSERT(f.hdr.id == 1 && f.hdr.len == MIB);
    CU_ASSERT_EQUAL(pp_wire_reader_next(&r, &f), 1); /* fails: 0, the frame was lost */
    CU_ASSERT(f.hdr.id == 2 && f.hdr.len == 10);
    pp_wire_reader_free(&r);
    pp_buf_reset(&s);
}

/* ---- field codecs ---- */

static void test_wr_bytes(void)
{
    pp_buf b;
    pp_buf_init(&b, 1000);
    CU_ASSERT_EQUAL(pp_wr_u8(&b, 0xAB), 0);
    CU_ASSERT_EQUAL(pp_wr_u16(&b, 0x1234), 0);
    CU_ASSERT_EQUAL(pp_wr_u32(&b, 0xDEADBEEFu), 0);
    CU_ASSERT_EQUAL(pp_wr_u64(&b, 0x0102030405060708ull), 0);
    CU_ASSERT_EQUAL(pp_wr_str16(&b, "hi"), 0);
    CU_ASSERT_EQUAL(pp_wr_str16(&b, ""), 0);
    static const uint8_t want[] = {0xAB, 0x12, 0x34, 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4, 5,
                                   6,    7,    8,    0,    2,    'h',  'i',  0, 0};
    CU_ASSERT_EQUAL_FATAL(b.len, sizeof want);
    CU_ASSERT_EQUAL(memcmp(b.data, want, sizeof want), 0);
    pp_buf_reset(&b);
}

static void test_wr_rd_roundtrip(void)
{
    pp_buf b;
    pp_buf_init(&b, 100000);
    static const uint64_t v64[] = {0, 1, 0x8000000000000000ull, 0xFFFFFFFFFFFFFFFFull};
    for (size_t i = 0; i < PP_ARRAY_LEN(v64); i++) {
        CU_ASSERT_EQUAL(pp_wr_u8(&b, (uint8_t)v64[i]), 0);
        CU_ASSERT_EQUAL(pp_wr_u16(&b, (uint16_t)(v64[i] >> 3)), 0);
        CU_ASSERT_EQUAL(pp_wr_u32(&b, (uint32_t)(v64[i] >> 5)), 0);
        CU_ASSERT_EQUAL(pp_wr_u64(&b, v64[i]), 0);
    }
    char longs[65536];
    memset(longs, 'q', 65535);
    longs[65535] = 0;
    CU_ASSERT_EQUAL(pp_wr_str16(&b, "/usr/lib/libtask.so"), 0);
    CU_ASSERT_EQUAL(pp_wr_str16(&b, "caf\xc3\xa9"), 0);
    CU_ASSERT_EQUAL(pp_wr_str16(&b, longs), 0); /* 65535: the largest str16 */

    pp_rd r = pp_rd_make(b.data, b.len);
    for (size_t i = 0; i < PP_ARRAY_LEN(v64); i++) {
        CU_ASSERT_EQUAL(pp_rd_u8(&r), (uint8_t)v64[i]);
        CU_ASSERT_EQUAL(pp_rd_u16(&r), (uint16_t)(v64[i] >> 3));
        CU_ASSERT_EQUAL(pp_rd_u32(&r), (uint32_t)(v64[i] >> 5));
        CU_ASSERT(pp_rd_u64(&r) == v64[i]);
    }
    char s[64];
    pp_rd_str16(&r, s, sizeof s);
    CU_ASSERT_STRING_EQUAL(s, "/usr/lib/libtask.so");
    pp_rd_str16(&r, s, sizeof s);
    CU_ASSERT_STRING_EQUAL(s, "caf\xc3\xa9");
    char *big = malloc(65536);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    pp_rd_str16(&r, big, 65536);
    CU_ASSERT_EQUAL(strlen(big), 65535);
    CU_ASSERT_EQUAL(memcmp(big, longs, 65536), 0);
    free(big);
    CU_ASSERT_EQUAL(r.bad, 0);
    CU_ASSERT_EQUAL(r.left, 0);
    pp_buf_reset(&b);
}

static void test_wr_limits(void)
{
    pp_buf b;
    pp_buf_init(&b, 3);
    CU_ASSERT_EQUAL(pp_wr_u16(&b, 1), 0);
    CU_ASSERT_EQUAL(pp_wr_u16(&b, 1), -1); /* 4 > 3 */
    CU_ASSERT_EQUAL(pp_wr_u32(&b, 1), -1);
    CU_ASSERT_EQUAL(pp_wr_u64(&b, 1), -1);
    CU_ASSERT_EQUAL(pp_wr_u8(&b, 1), 0);
    CU_ASSERT_EQUAL(pp_wr_u8(&b, 1), -1);
    CU_ASSERT_EQUAL(b.len, 3);
    pp_buf_reset(&b);

    /* A string longer than 65535 bytes does not fit a str16. */
    pp_buf_init(&b, 1000000);
    char *s = malloc(65537);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    memset(s, 'x', 65536);
    s[65536] = 0;
    CU_ASSERT_EQUAL(pp_wr_str16(&b, s), -1);
    CU_ASSERT_EQUAL(b.len, 0);
    free(s);
    pp_buf_reset(&b);
}

static void test_rd_overrun(void)
{
    static const uint8_t d[] = {1, 2, 3, 4, 5};
    pp_rd r = pp_rd_make(d, sizeof d);
    CU_ASSERT_EQUAL(pp_rd_u32(&r), 0x01020304u);
    CU_ASSERT_EQUAL(r.bad, 0);
    CU_ASSERT_EQUAL(pp_rd_u16(&r), 0); /* 1 byte left */
    CU_ASSERT_EQUAL(r.bad, 1);
    /* Once bad, every read gives zeros, even what would fit. */
    CU_ASSERT_EQUAL(pp_rd_u8(&r), 0);
    CU_ASSERT_PTR_NULL(pp_rd_bytes(&r, 0));
    CU_ASSERT_EQUAL(r.bad, 1);

    static const struct { int which; size_t have; } cases[] = {
        {1, 0}, {2, 1}, {4, 3}, {8, 7},
    };
    for (size_t i = 0; i < PP_ARRAY_LEN(cases); i++) {
        pp_rd q = pp_rd_make(d, cases[i].have);
        uint64_t v = 1;
        switch (cases[i].which) {
        case 1: v = pp_rd_u8(&q); break;
        case 2: v = pp_rd_u16(&q); break;
        case 4: v = pp_rd_u32(&q); break;
        default: v = pp_rd_u64(&q); break;
        }
        CU_ASSERT(v == 0);
        CU_ASSERT_EQUAL(q.bad, 1);
    }

    pp_rd q = pp_rd_make(d, sizeof d);
    const uint8_t *p = pp_rd_bytes(&q, 5);
    CU_ASSERT_PTR_EQUAL(p, d);
    CU_ASSERT_EQUAL(q.left, 0);
    CU_ASSERT_EQUAL(q.bad, 0);
    CU_ASSERT_PTR_NULL(pp_rd_bytes(&q, 1));
    CU_ASSERT_EQUAL(q.bad, 1);

    /* A huge length does not wrap around. */
    q = pp_rd_make(d, sizeof d);
    CU_ASSERT_PTR_NULL(pp_rd_bytes(&q, SIZE_MAX));
    CU_ASSERT_EQUAL(q.bad, 1);
}

static void test_rd_str16_refusals(void)
{
    char out[8];
    /* Embedded NUL. */
    static const uint8_t nul[] = {0, 3, 'a', 0, 'b'};
    pp_rd r = pp_rd_make(nul, sizeof nul);
    memset(out, 'X', sizeof out);
    pp_rd_str16(&r, out, sizeof out);
    CU_ASSERT_EQUAL(r.bad, 1);
    CU_ASSERT_STRING_EQUAL(out, "");

    /* Fits exactly in outlen-1. */
    static const uint8_t seven[] = {0, 7, 'a', 'b', 'c', 'd', 'e', 'f', 'g'};
    r = pp_rd_make(seven, sizeof seven);
    pp_rd_str16(&r, out, sizeof out);
    CU_ASSERT_EQUAL(r.bad, 0);
    CU_ASSERT_STRING_EQUAL(out, "abcdefg");

    /* One byte too long for out. */
    static const uint8_t eight[] = {0, 8, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'};
    r = pp_rd_make(eight, sizeof eight);
    memset(out, 'X', sizeof out);
    pp_rd_str16(&r, out, sizeof out);
    CU_ASSERT_EQUAL(r.bad, 1);
    CU_ASSERT_STRING_EQUAL(out, "");

    /* Length beyond the data. */
    static const uint8_t shortd[] = {0, 5, 'a', 'b'};
    r = pp_rd_make(shortd, sizeof shortd);
    pp_rd_str16(&r, out, sizeof out);
    CU_ASSERT_EQUAL(r.bad, 1);
    CU_ASSERT_STRING_EQUAL(out, "");

    /* Not even a length. */
    r = pp_rd_make(shortd, 1);
    pp_rd_str16(&r, out, sizeof out);
    CU_ASSERT_EQUAL(r.bad, 1);
    CU_ASSERT_STRING_EQUAL(out, "");

    /* Empty string is fine. */
    static const uint8_t empty[] = {0, 0};
    r = pp_rd_make(empty, sizeof empty);
    memset(out, 'X', sizeof out);
    pp_rd_str16(&r, out, sizeof out);
    CU_ASSERT_EQUAL(r.bad, 0);
    CU_ASSERT_STRING_EQUAL(out, "");
}

int pp_register_suites(void)
{
    static const pp_test hdr[] = {
        {"encode is byte-exact", test_encode_exact},
        {"decode a good header", test_decode_good},
        {"each malformed header has its own error", test_decode_errors},
        {"malformed header errors are distinct", test_decode_errors_distinct},
        {NULL, NULL},
    };
    static const pp_test reader[] = {
        {"bad headers are reported by next()", test_reader_bad_header},
        {"stream fed whole", test_reader_whole},
        {"stream fed a byte at a time", test_reader_byte_at_a_time},
        {"stream fed in odd splits", test_reader_odd_splits},
        {"several frames in one feed", test_reader_several_in_one_feed},
        {"length 0", test_reader_len_zero},
        {"length == max accepted", test_reader_len_max},
        {"length > max refused before allocating", test_reader_len_over},
        {"1 MiB frame through feed, take moves it", test_reader_big_feed},
        {"1 MiB frame fed in odd pieces", test_reader_big_pieces},
        {"large and small frames through space/commit", test_reader_space_commit},
        {"take of a small frame copies", test_reader_take_small},
        {"truncated frame: no frame, bytes pending", test_reader_truncated},
        {"truncated large frame: bytes pending", test_reader_truncated_big},
        {"regression: pending() is 0 after a large frame's header", test_bug_pending_big_header_only},
        {"regression: pending() counts a returned large frame", test_bug_pending_after_big_returned},
        {"regression: feed of a large frame and more bytes fails", test_bug_feed_big_then_more},
        {NULL, NULL},
    };
    static const pp_test fields[] = {
        {"writers are byte-exact", test_wr_bytes},
        {"writers and readers round trip", test_wr_rd_roundtrip},
        {"writers refuse over the cap", test_wr_limits},
        {"reader overrun sets bad", test_rd_overrun},
        {"str16 refuses NUL and too long", test_rd_str16_refusals},
        {NULL, NULL},
    };
    if (pp_add_suite("pp_wire header", NULL, NULL, hdr) != 0 ||
        pp_add_suite("pp_wire reader", NULL, NULL, reader) != 0 ||
        pp_add_suite("pp_wire fields", NULL, NULL, fields) != 0)
        return -1;
    return 0;
}
