/* SPDX-License-Identifier: MIT */
/* test_proto.c -- pp_proto and pp_handshake: every message's encoding,
 * byte by byte against the layouts of pp_proto.h written out by hand; every
 * decoder against short, long and out-of-range payloads; the handshake's
 * two roles against each other, and against a wrong secret, a replayed
 * proof, a reflected proof and a version with nothing in common; batches
 * (layouts, limits, every malformed form read without going past the
 * bytes given). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_main.h"
#include "pp_auth.h"
#include "pp_handshake.h"
#include "pp_proto.h"

/* A frame over bytes, as pp_conn hands it out. */
static pp_frame frame_of(uint8_t type, const void *p, size_t n)
{
    pp_frame f = {.hdr = {.type = type, .len = (uint32_t)n}, .payload = p};
    return f;
}

/* ---- worker pipes ---- */

static void test_whello(void)
{
    uint8_t b[8];
    CU_ASSERT_EQUAL(pp_proto_whello(b, 0x01020304), 8);
    const uint8_t want[8] = {1, 2, 3, 4, 0, 0, 0, PP_WIRE_VERSION};
    CU_ASSERT_EQUAL(memcmp(b, want, 8), 0);
    pp_msg_whello m;
    pp_frame f = frame_of(PP_T_WHELLO, b, 8);
    CU_ASSERT_EQUAL(pp_proto_whello_decode(&f, &m), 0);
    CU_ASSERT_EQUAL(m.pid, 0x01020304u);
    f.hdr.len = 7;
    CU_ASSERT_EQUAL(pp_proto_whello_decode(&f, &m), -1);
    uint8_t other[9] = {1, 2, 3, 4, 0, 0, 0, 9, 0};
    f = frame_of(PP_T_WHELLO, other, 8); /* another frame version */
    CU_ASSERT_EQUAL(pp_proto_whello_decode(&f, &m), -1);
    f.hdr.len = 9; /* a byte too many */
    CU_ASSERT_EQUAL(pp_proto_whello_decode(&f, &m), -1);
}

static void test_taskdef(void)
{
    pp_buf b;
    pp_buf_init(&b, 1 << 16);
    CU_ASSERT_EQUAL(pp_proto_taskdef(&b, 7, "/m.so", "fn"), 0);
    const uint8_t want[] = {0, 0, 0, 7, 0, 5, '/', 'm', '.', 's', 'o', 0, 2, 'f', 'n'};
    CU_ASSERT_EQUAL_FATAL(b.len, sizeof want);
    CU_ASSERT_EQUAL(memcmp(b.data, want, sizeof want), 0);
    pp_msg_taskdef m;
    pp_frame f = frame_of(PP_T_TASKDEF, b.data, b.len);
    CU_ASSERT_EQUAL(pp_proto_taskdef_decode(&f, &m), 0);
    CU_ASSERT_EQUAL(m.id, 7);
    CU_ASSERT_STRING_EQUAL(m.module, "/m.so");
    CU_ASSERT_STRING_EQUAL(m.symbol, "fn");
    for (size_t n = 0; n < sizeof want; n++) { /* every truncation */
        f.hdr.len = (uint32_t)n;
        CU_ASSERT_EQUAL(pp_proto_taskdef_decode(&f, &m), -1);
    }
    /* An empty symbol, a symbol over PP_SYMBOL_MAX. */
    CU_ASSERT_EQUAL(pp_proto_taskdef(&b, 1, "/m.so", ""), 0);
    f = frame_of(PP_T_TASKDEF, b.data, b.len);
    CU_ASSERT_EQUAL(pp_proto_taskdef_decode(&f, &m), -1);
    char longsym[PP_SYMBOL_MAX + 2];
    memset(longsym, 'x', sizeof longsym - 1);
    longsym[sizeof longsym - 1] = 0;
    CU_ASSERT_EQUAL(pp_proto_taskdef(&b, 1, "/m.so", longsym), -1);
    pp_buf_reset(&b);
}

static void test_job_and_result(void)
{
    uint8_t h[PP_JOB_HEAD];
    pp_proto_job_head(h, 0xA1B2C3D4);
    const uint8_t want[4] = {0xA1, 0xB2, 0xC3, 0xD4};
    CU_ASSERT_EQUAL(memcmp(h, want, 4), 0);
    uint8_t job[7] = {0, 0, 0, 3, 'a', 'r', 'g'};
    pp_frame f = frame_of(PP_T_JOB, job, sizeof job);
    pp_msg_job j;
    CU_ASSERT_EQUAL(pp_proto_job_decode(&f, &j), 0);
    CU_ASSERT(j.task == 3 && j.len == 3 && memcmp(j.arg, "arg", 3) == 0);
    f.hdr.len = 3;
    CU_ASSERT_EQUAL(pp_proto_job_decode(&f, &j), -1);

    uint8_t r[PP_RESULT_HDR + 2];
    pp_proto_result_head(r, PP_FAILED, 0x0102030405060708ull);
    const uint8_t rwant[PP_RESULT_HDR] = {PP_FAILED, 0, 0, 0, 0, 0, 0, 0,
                                          1, 2, 3, 4, 5, 6, 7, 8};
    CU_ASSERT_EQUAL(memcmp(r, rwant, PP_RESULT_HDR), 0);
    r[16] = 'o';
    r[17] = 'k';
    pp_msg_result m;
    unsigned all = 1u << PP_DONE | 1u << PP_FAILED;
    CU_ASSERT_EQUAL(pp_proto_result_decode(r, sizeof r, all, &m), 0);
    CU_ASSERT(m.status == PP_FAILED && m.run_ns == 0x0102030405060708ull && m.len == 2 &&
              m.data == r + PP_RESULT_HDR);
    CU_ASSERT_EQUAL(pp_proto_result_decode(r, PP_RESULT_HDR - 1, all, &m), -1);
    CU_ASSERT_EQUAL(pp_proto_result_decode(r, sizeof r, 1u << PP_DONE, &m), -1); /* not allowed */
    r[3] = 1; /* the padding must be zero */
    CU_ASSERT_EQUAL(pp_proto_result_decode(r, sizeof r, all, &m), -1);
    r[3] = 0;
    r[0] = 200; /* no such status */
    CU_ASSERT_EQUAL(pp_proto_result_decode(r, sizeof r, 0xFFFFFFFFu, &m), -1);
}

/* ---- TCP ---- */

static void test_hello_challenge(void)
{
    pp_msg_hello h = {.ver_min = 1, .ver_max = 2};
    for (int i = 0; i < PP_NONCE_LEN; i++)
        h.nonce[i] = (uint8_t)(0x40 + i);
    uint8_t b[PP_HELLO_LEN];
    pp_proto_hello(b, &h);
    CU_ASSERT(b[0] == 1 && b[1] == 2 && b[2] == 0x40 && b[PP_HELLO_LEN - 1] == 0x40 + 31);
    pp_msg_hello d;
    pp_frame f = frame_of(PP_T_HELLO, b, sizeof b);
    CU_ASSERT_EQUAL(pp_proto_hello_decode(&f, &d), 0);
    CU_ASSERT_EQUAL(memcmp(&d, &h, sizeof d), 0);
    f.hdr.len--;
    CU_ASSERT_EQUAL(pp_proto_hello_decode(&f, &d), -1);

    pp_msg_challenge c = {.ver = PP_PROTO_MAX, .max_frame = 0x11223344, .ncpus = 8};
    memset(c.nonce, 0x55, PP_NONCE_LEN);
    uint8_t cb[PP_CHALLENGE_LEN];
    pp_proto_challenge(cb, &c);
    CU_ASSERT(cb[0] == PP_PROTO_MAX && cb[1] == 0x55 && cb[33] == 0x11 && cb[36] == 0x44 && cb[40] == 8);
    pp_msg_challenge cd;
    f = frame_of(PP_T_CHALLENGE, cb, sizeof cb);
    CU_ASSERT_EQUAL(pp_proto_challenge_decode(&f, &cd), 0);
    CU_ASSERT(cd.ver == PP_PROTO_MAX && cd.max_frame == 0x11223344 && cd.ncpus == 8);
    c.ncpus = PP_NCPUS_MAX + 1; /* a node cannot claim more CPUs than exist */
    pp_proto_challenge(cb, &c);
    CU_ASSERT_EQUAL(pp_proto_challenge_decode(&f, &cd), -1);
    c.ncpus = 8;
    c.ver = PP_PROTO_MAX + 1; /* a version we do not speak */
    pp_proto_challenge(cb, &c);
    CU_ASSERT_EQUAL(pp_proto_challenge_decode(&f, &cd), -1);
    c.ver = 1; /* version 1 (no priorities, CANCEL or batches) is no longer spoken */
    pp_proto_challenge(cb, &c);
    CU_ASSERT_EQUAL(pp_proto_challenge_decode(&f, &cd), -1);
}

static void test_error_bye_ncpus_need_module(void)
{
    pp_buf b;
    pp_buf_init(&b, 4096);
    CU_ASSERT_EQUAL(pp_proto_error(&b, PP_E_AUTH, "no"), 0);
    const uint8_t want[] = {0, PP_E_AUTH, 0, 2, 'n', 'o'};
    CU_ASSERT(b.len == sizeof want && memcmp(b.data, want, sizeof want) == 0);
    pp_msg_error e;
    pp_frame f = frame_of(PP_T_ERROR, b.data, b.len);
    CU_ASSERT(pp_proto_error_decode(&f, &e) == 0 && e.code == PP_E_AUTH &&
              strcmp(e.msg, "no") == 0);
    f.hdr.len++; /* a byte too many */
    CU_ASSERT_EQUAL(pp_proto_error_decode(&f, &e), -1);
    char big[2000];
    memset(big, 'm', sizeof big - 1);
    big[sizeof big - 1] = 0;
    CU_ASSERT_EQUAL(pp_proto_error(&b, 3, big), 0); /* cut to PP_ERRMSG_MAX */
    CU_ASSERT_EQUAL(b.len, 4 + PP_ERRMSG_MAX);

    CU_ASSERT_EQUAL(pp_proto_bye(&b, "bye"), 0);
    char reason[PP_ERRMSG_MAX + 1];
    f = frame_of(PP_T_BYE, b.data, b.len);
    CU_ASSERT(pp_proto_bye_decode(&f, reason) == 0 && strcmp(reason, "bye") == 0);
    pp_buf_reset(&b);

    uint8_t n[4];
    pp_proto_ncpus(n, 3);
    uint32_t v;
    f = frame_of(PP_T_NCPUS, n, 4);
    CU_ASSERT(pp_proto_ncpus_decode(&f, &v) == 0 && v == 3);
    pp_proto_ncpus(n, PP_NCPUS_MAX + 1);
    CU_ASSERT_EQUAL(pp_proto_ncpus_decode(&f, &v), -1);
    f.hdr.len = 3;
    CU_ASSERT_EQUAL(pp_proto_ncpus_decode(&f, &v), -1);

    uint8_t hash[PP_SHA256_LEN + 1] = {1};
    const uint8_t *hp;
    f = frame_of(PP_T_NEED, hash, PP_SHA256_LEN);
    CU_ASSERT(pp_proto_need_decode(&f, &hp) == 0 && hp == hash);
    f.hdr.len = PP_SHA256_LEN + 1;
    CU_ASSERT_EQUAL(pp_proto_need_decode(&f, &hp), -1);
    pp_msg_module mm;
    f = frame_of(PP_T_MODULE, hash, PP_SHA256_LEN + 1);
    CU_ASSERT(pp_proto_module_decode(&f, &mm) == 0 && mm.ziplen == 1);
    f.hdr.len = PP_SHA256_LEN - 1;
    CU_ASSERT_EQUAL(pp_proto_module_decode(&f, &mm), -1);
}

static void test_rjob(void)
{
    uint8_t hash[PP_SHA256_LEN];
    for (int i = 0; i < PP_SHA256_LEN; i++)
        hash[i] = (uint8_t)i;
    uint8_t h[PP_RJOB_HEAD_MAX + 3];
    size_t n = pp_proto_rjob_head(h, hash, "sq", 1.5, 7);
    CU_ASSERT_EQUAL_FATAL(n, PP_SHA256_LEN + 2 + 2 + 4 + 4);
    CU_ASSERT_EQUAL(memcmp(h, hash, PP_SHA256_LEN), 0);
    const uint8_t rest[] = {0, 2, 's', 'q', 0, 0, 0x05, 0xDC, /* 1500 ms */
                            0, 0, 0, 7};                      /* priority 7 */
    CU_ASSERT_EQUAL(memcmp(h + PP_SHA256_LEN, rest, sizeof rest), 0);
    memcpy(h + n, "arg", 3);
    pp_msg_rjob m;
    CU_ASSERT_EQUAL(pp_proto_rjob_decode(h, n + 3, &m), 0);
    CU_ASSERT(m.hash == h && strcmp(m.symbol, "sq") == 0 && m.timeout_ms == 1500 &&
              m.priority == 7 && m.len == 3 && m.arg == h + n && m.arg_off == n);
    for (size_t k = 0; k < n; k++) /* every truncation of the head */
        CU_ASSERT_EQUAL(pp_proto_rjob_decode(h, k, &m), -1);
    /* Timeouts: none, below a millisecond, huge. */
    pp_proto_rjob_head(h, hash, "sq", 0, 0);
    CU_ASSERT_EQUAL(memcmp(h + PP_SHA256_LEN + 4, "\0\0\0\0", 4), 0);
    pp_proto_rjob_head(h, hash, "sq", 1e-6, 0);
    CU_ASSERT_EQUAL(memcmp(h + PP_SHA256_LEN + 4, "\0\0\0\1", 4), 0);
    pp_proto_rjob_head(h, hash, "sq", 1e12, 0);
    CU_ASSERT_EQUAL(memcmp(h + PP_SHA256_LEN + 4, "\xff\xff\xff\xff", 4), 0);
    /* Priorities are two's complement, big-endian, both ends of the range. */
    static const struct { int32_t v; uint8_t b[4]; } prios[] = {
        {0, {0, 0, 0, 0}},
        {-1, {0xff, 0xff, 0xff, 0xff}},
        {-2, {0xff, 0xff, 0xff, 0xfe}},
        {0x01020304, {1, 2, 3, 4}},
        {INT32_MAX, {0x7f, 0xff, 0xff, 0xff}},
        {INT32_MIN, {0x80, 0, 0, 0}},
    };
    for (size_t i = 0; i < sizeof prios / sizeof prios[0]; i++) {
        n = pp_proto_rjob_head(h, hash, "sq", 0, prios[i].v);
        CU_ASSERT_EQUAL(memcmp(h + n - 4, prios[i].b, 4), 0);
        CU_ASSERT(pp_proto_rjob_decode(h, n, &m) == 0 && m.priority == prios[i].v && m.len == 0);
    }
    CU_ASSERT_EQUAL(pp_proto_rjob_head(h, hash, "", 0, 0), 0);
    char longsym[PP_SYMBOL_MAX + 2];
    memset(longsym, 'y', sizeof longsym - 1);
    longsym[sizeof longsym - 1] = 0;
    CU_ASSERT_EQUAL(pp_proto_rjob_head(h, hash, longsym, 0, 0), 0);
    /* The longest symbol fills the head exactly. */
    longsym[PP_SYMBOL_MAX] = 0;
    CU_ASSERT_EQUAL(pp_proto_rjob_head(h, hash, longsym, 0, -5), PP_RJOB_HEAD_MAX);
}

/* CANCEL is an id and nothing else; the flags each type may carry. */
static void test_cancel_and_flags(void)
{
    uint8_t one = 0;
    pp_frame f = frame_of(PP_T_CANCEL, NULL, 0);
    f.hdr.id = 42;
    CU_ASSERT_EQUAL(pp_proto_cancel_decode(&f), 0);
    f = frame_of(PP_T_CANCEL, &one, 1); /* a payload: malformed */
    CU_ASSERT_EQUAL(pp_proto_cancel_decode(&f), -1);
    char buf[16];
    CU_ASSERT_STRING_EQUAL(pp_proto_type_name(PP_T_CANCEL, buf), "CANCEL");
    CU_ASSERT_EQUAL(PP_T_NET_MAX, PP_T_STATREPLY);
    CU_ASSERT_EQUAL(PP_PROTO_MIN, 2);
    CU_ASSERT_EQUAL(PP_PROTO_MAX, 2);
    CU_ASSERT_EQUAL(PP_WIRE_F_ALL, PP_WIRE_F_ZLIB | PP_WIRE_F_BATCH);
    CU_ASSERT_EQUAL(pp_proto_flags_allowed(PP_T_JOB), PP_WIRE_F_BATCH);
    CU_ASSERT_EQUAL(pp_proto_flags_allowed(PP_T_RESULT), PP_WIRE_F_BATCH);
    CU_ASSERT_EQUAL(pp_proto_flags_allowed(PP_T_RJOB), PP_WIRE_F_ZLIB | PP_WIRE_F_BATCH);
    CU_ASSERT_EQUAL(pp_proto_flags_allowed(PP_T_RRESULT), PP_WIRE_F_ZLIB | PP_WIRE_F_BATCH);
    static const uint8_t none[] = {PP_T_WHELLO, PP_T_TASKDEF, PP_T_HELLO, PP_T_CHALLENGE,
                                   PP_T_PROOF, PP_T_ACCEPT, PP_T_ERROR, PP_T_NEED,
                                   PP_T_MODULE, PP_T_NCPUS, PP_T_PING, PP_T_PONG,
                                   PP_T_BYE, PP_T_CANCEL, 0, 99};
    for (size_t i = 0; i < sizeof none; i++)
        CU_ASSERT_EQUAL(pp_proto_flags_allowed(none[i]), 0);
}

/* ---- batches ---- */

/* A copy of n bytes in a block of exactly n bytes: under ASan, a read past
 * the end of what the iterator was given is caught. */
static uint8_t *exact(const void *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    if (n)
        memcpy(c, p, n);
    return c;
}

/* Reads a batch to its end: the item count, or -1 when it is refused. */
static long batch_read(const void *p, size_t n, pp_batch_kind kind)
{
    uint8_t *c = exact(p, n);
    pp_batch_iter it;
    pp_batch_item item;
    long items = 0;
    int r = -1;
    if (pp_proto_batch_open(&it, c, n, kind) == 0) {
        while ((r = pp_proto_batch_next(&it, &item)) == 1) {
            CU_ASSERT(item.data >= c + 4 && item.data + item.len <= c + n);
            items++;
        }
        CU_ASSERT_EQUAL(pp_proto_batch_next(&it, &item), r); /* it stays where it ended */
    }
    uint32_t count = 0;
    CU_ASSERT_EQUAL(pp_proto_batch_check(c, n, kind, &count), r == 0 ? 0 : -1);
    free(c);
    return r == 0 ? items : -1;
}

static void test_batch_args(void)
{
    pp_buf b;
    pp_buf_init(&b, 1 << 20);
    CU_ASSERT_EQUAL(pp_proto_batch_begin(&b), 0);
    CU_ASSERT(b.len == 4 && memcmp(b.data, "\0\0\0\0", 4) == 0);
    CU_ASSERT_EQUAL(batch_read(b.data, b.len, PP_BATCH_ARGS), 0); /* an empty batch */
    CU_ASSERT_EQUAL(pp_proto_batch_add(&b, "ab", 2), 0);
    CU_ASSERT_EQUAL(pp_proto_batch_add(&b, NULL, 0), 0);
    CU_ASSERT_EQUAL(pp_proto_batch_add(&b, "xyz", 3), 0);
    const uint8_t want[] = {0, 0, 0, 3, 0, 0, 0, 2, 'a', 'b', 0, 0, 0, 0,
                            0, 0, 0, 3, 'x', 'y', 'z'};
    CU_ASSERT_EQUAL_FATAL(b.len, sizeof want);
    CU_ASSERT_EQUAL(memcmp(b.data, want, sizeof want), 0);
    pp_batch_iter it;
    pp_batch_item item;
    CU_ASSERT_EQUAL_FATAL(pp_proto_batch_open(&it, b.data, b.len, PP_BATCH_ARGS), 0);
    CU_ASSERT(pp_proto_batch_next(&it, &item) == 1 && item.len == 2 &&
              memcmp(item.data, "ab", 2) == 0 && item.status == PP_DONE);
    CU_ASSERT(pp_proto_batch_next(&it, &item) == 1 && item.len == 0);
    CU_ASSERT(pp_proto_batch_next(&it, &item) == 1 && item.len == 3 &&
              memcmp(item.data, "xyz", 3) == 0);
    CU_ASSERT_EQUAL(pp_proto_batch_next(&it, &item), 0);
    CU_ASSERT_EQUAL(batch_read(b.data, b.len, PP_BATCH_ARGS), 3);
    /* Every truncation is refused, and so is a byte too many. */
    for (size_t k = 0; k < b.len; k++)
        CU_ASSERT_EQUAL(batch_read(b.data, k, PP_BATCH_ARGS), -1);
    uint8_t more[sizeof want + 1];
    memcpy(more, want, sizeof want);
    more[sizeof want] = 0;
    CU_ASSERT_EQUAL(batch_read(more, sizeof more, PP_BATCH_ARGS), -1);
    /* A length past the end, by one and by the most a u32 says. */
    memcpy(more, want, sizeof want);
    more[17] = 4; /* the third item claims 4 bytes, 3 follow */
    CU_ASSERT_EQUAL(batch_read(more, sizeof want, PP_BATCH_ARGS), -1);
    memset(more + 14, 0xff, 4);
    CU_ASSERT_EQUAL(batch_read(more, sizeof want, PP_BATCH_ARGS), -1);
    memcpy(more, want, sizeof want);
    memset(more + 4, 0xff, 4); /* the first item's length wraps nothing */
    CU_ASSERT_EQUAL(batch_read(more, sizeof want, PP_BATCH_ARGS), -1);
    /* Counts: fewer items than said, more than said, more than the bytes
     * could hold, above PP_BATCH_MAX, the largest u32. */
    memcpy(more, want, sizeof want);
    more[3] = 4;
    CU_ASSERT_EQUAL(batch_read(more, sizeof want, PP_BATCH_ARGS), -1);
    more[3] = 2;
    CU_ASSERT_EQUAL(batch_read(more, sizeof want, PP_BATCH_ARGS), -1);
    more[3] = 6; /* 6 heads would need 24 bytes after the count; 17 remain */
    CU_ASSERT_EQUAL(batch_read(more, sizeof want, PP_BATCH_ARGS), -1);
    memset(more, 0xff, 4);
    CU_ASSERT_EQUAL(batch_read(more, sizeof want, PP_BATCH_ARGS), -1);
    pp_buf_reset(&b);
}

/* PP_BATCH_MAX items fit; one more does not, in the encoder or the
 * iterator, whatever the bytes. */
static void test_batch_limits(void)
{
    pp_buf b;
    pp_buf_init(&b, 4 + 4 * (size_t)(PP_BATCH_MAX + 1));
    CU_ASSERT_EQUAL(pp_proto_batch_begin(&b), 0);
    for (int i = 0; i < PP_BATCH_MAX; i++)
        if (pp_proto_batch_add(&b, NULL, 0) != 0) {
            CU_FAIL("an item within PP_BATCH_MAX refused");
            break;
        }
    CU_ASSERT_EQUAL(pp_load32(b.data), PP_BATCH_MAX);
    size_t len = b.len;
    CU_ASSERT_EQUAL(pp_proto_batch_add(&b, "x", 1), -1); /* one too many: b unchanged */
    CU_ASSERT(b.len == len && pp_load32(b.data) == PP_BATCH_MAX);
    CU_ASSERT_EQUAL(batch_read(b.data, b.len, PP_BATCH_ARGS), PP_BATCH_MAX);
    /* PP_BATCH_MAX + 1 empty items, bytes and all: refused by its count. */
    CU_ASSERT_EQUAL(pp_buf_reserve(&b, 4), 0);
    memset(b.data + b.len, 0, 4);
    b.len += 4;
    pp_store32(b.data, PP_BATCH_MAX + 1);
    CU_ASSERT_EQUAL(batch_read(b.data, b.len, PP_BATCH_ARGS), -1);
    /* The buffer's cap: an item that does not fit leaves b as it was. */
    pp_buf small;
    pp_buf_init(&small, 16);
    CU_ASSERT_EQUAL(pp_proto_batch_begin(&small), 0);
    CU_ASSERT_EQUAL(pp_proto_batch_add(&small, "12345678", 8), 0);
    CU_ASSERT_EQUAL(pp_proto_batch_add(&small, "9", 1), -1);
    CU_ASSERT(small.len == 16 && pp_load32(small.data) == 1);
    /* Not begun: nothing to add to. */
    pp_buf none;
    pp_buf_init(&none, 64);
    CU_ASSERT_EQUAL(pp_proto_batch_add(&none, "x", 1), -1);
    pp_buf_reset(&small);
    pp_buf_reset(&b);
}

static void test_batch_results(void)
{
    pp_buf b;
    pp_buf_init(&b, 1 << 20);
    CU_ASSERT_EQUAL(pp_proto_batch_begin(&b), 0);
    CU_ASSERT_EQUAL(pp_proto_batch_add_result(&b, PP_DONE, "ok", 2), 0);
    CU_ASSERT_EQUAL(pp_proto_batch_add_result(&b, PP_FAILED, "bad", 3), 0);
    CU_ASSERT_EQUAL(pp_proto_batch_add_result(&b, PP_DONE, NULL, 0), 0);
    CU_ASSERT_EQUAL(pp_proto_batch_add_result(&b, PP_CRASHED, "x", 1), -1); /* per item: done or failed */
    const uint8_t want[] = {0, 0, 0, 3,
                            PP_DONE, 0, 0, 0, 0, 0, 0, 2, 'o', 'k',
                            PP_FAILED, 0, 0, 0, 0, 0, 0, 3, 'b', 'a', 'd',
                            PP_DONE, 0, 0, 0, 0, 0, 0, 0};
    CU_ASSERT_EQUAL_FATAL(b.len, sizeof want);
    CU_ASSERT_EQUAL(memcmp(b.data, want, sizeof want), 0);
    pp_batch_iter it;
    pp_batch_item item;
    CU_ASSERT_EQUAL_FATAL(pp_proto_batch_open(&it, b.data, b.len, PP_BATCH_RESULTS), 0);
    CU_ASSERT(pp_proto_batch_next(&it, &item) == 1 && item.status == PP_DONE && item.len == 2 &&
              memcmp(item.data, "ok", 2) == 0);
    CU_ASSERT(pp_proto_batch_next(&it, &item) == 1 && item.status == PP_FAILED &&
              item.len == 3 && memcmp(item.data, "bad", 3) == 0);
    CU_ASSERT(pp_proto_batch_next(&it, &item) == 1 && item.status == PP_DONE && item.len == 0);
    CU_ASSERT_EQUAL(pp_proto_batch_next(&it, &item), 0);
    uint32_t count = 0;
    CU_ASSERT(pp_proto_batch_check(b.data, b.len, PP_BATCH_RESULTS, &count) == 0 && count == 3);
    CU_ASSERT_EQUAL(batch_read(b.data, b.len, PP_BATCH_RESULTS), 3);
    for (size_t k = 0; k < b.len; k++) /* every truncation */
        CU_ASSERT_EQUAL(batch_read(b.data, k, PP_BATCH_RESULTS), -1);
    uint8_t bad[sizeof want + 1];
    /* A status an item cannot have, non-zero padding, a length past the
     * end, a byte after the last item. */
    static const struct { size_t at; uint8_t v; } flips[] = {
        {4, PP_CRASHED}, {4, PP_PENDING}, {4, 0xff}, {5, 1}, {6, 1}, {7, 1},
        {11, 3}, {8, 0x80}, {21, 4}, {32, 1},
    };
    for (size_t i = 0; i < sizeof flips / sizeof flips[0]; i++) {
        memcpy(bad, want, sizeof want);
        bad[flips[i].at] = flips[i].v;
        CU_ASSERT_EQUAL(batch_read(bad, sizeof want, PP_BATCH_RESULTS), -1);
    }
    memcpy(bad, want, sizeof want);
    bad[sizeof want] = 0;
    CU_ASSERT_EQUAL(batch_read(bad, sizeof bad, PP_BATCH_RESULTS), -1);
    /* The layouts differ: results read as arguments (and the reverse) do
     * not pass. */
    CU_ASSERT_EQUAL(batch_read(want, sizeof want, PP_BATCH_ARGS), -1);
    pp_buf_reset(&b);
}

/* Random bytes never make the iterator read outside what it was given
 * (ASan watches), and whatever it accepts is consistent. */
static void test_batch_random(void)
{
    uint32_t x = 12345;
    for (int round = 0; round < 20000; round++) {
        uint8_t p[64] = {0};
        size_t n = (size_t)(round % 64);
        for (size_t i = 0; i < n; i++) {
            x = x * 1103515245u + 12345u;
            p[i] = (uint8_t)(x >> 16);
        }
        /* Small counts and lengths, so that some inputs get far in. */
        if (n >= 4) {
            p[0] = p[1] = p[2] = 0;
            p[3] &= 7;
        }
        for (size_t i = 4; i + 4 <= n; i += 5)
            if (p[i] & 1)
                p[i] = p[i + 1] = p[i + 2] = 0;
        batch_read(p, n, round & 1 ? PP_BATCH_RESULTS : PP_BATCH_ARGS);
    }
}

static void test_ping_and_names(void)
{
    uint64_t t = pp_proto_ping_token(12.5);
    CU_ASSERT_EQUAL(t, 12500000u);
    CU_ASSERT(pp_proto_token_time(t) > 12.4999 && pp_proto_token_time(t) < 12.5001);
    CU_ASSERT_EQUAL(pp_proto_ping_token(-1), 0);
    char buf[16];
    CU_ASSERT_STRING_EQUAL(pp_proto_type_name(PP_T_RJOB, buf), "RJOB");
    CU_ASSERT_STRING_EQUAL(pp_proto_type_name(99, buf), "type 99");
    CU_ASSERT_STRING_EQUAL(pp_proto_type_name(0, buf), "type 0");
}

/* ---- the handshake ---- */

typedef struct hs_pair {
    pp_auth_key kc, ks;
    const uint8_t *binding, *binding_s; /* each side's TLS binding, or NULL */
    pp_hs c, s;
    uint8_t hello[PP_HELLO_LEN], chal[PP_CHALLENGE_LEN], proof[PP_MAC_LEN], accept[PP_MAC_LEN];
} hs_pair;

/* Runs a whole handshake: 0 when both sides accept; else which step failed
 * (1 server/proof, 2 client/accept). */
static int handshake(hs_pair *p, const char *client_secret, const char *server_secret)
{
    CU_ASSERT_FATAL(pp_auth_derive(client_secret, strlen(client_secret), &p->kc) == 0);
    CU_ASSERT_FATAL(pp_auth_derive(server_secret, strlen(server_secret), &p->ks) == 0);
    CU_ASSERT_EQUAL_FATAL(pp_hs_client_hello(&p->c, &p->kc, p->binding, p->hello), PP_HS_OK);
    pp_frame f = frame_of(PP_T_HELLO, p->hello, sizeof p->hello);
    CU_ASSERT_EQUAL_FATAL(pp_hs_server_hello(&p->s, &p->ks, p->binding_s, &f, 1 << 20, 4, p->chal), PP_HS_OK);
    f = frame_of(PP_T_CHALLENGE, p->chal, sizeof p->chal);
    CU_ASSERT_EQUAL_FATAL(pp_hs_client_challenge(&p->c, &f, p->proof), PP_HS_OK);
    CU_ASSERT(p->c.chal.ncpus == 4 && p->c.chal.max_frame == 1 << 20);
    f = frame_of(PP_T_PROOF, p->proof, sizeof p->proof);
    if (pp_hs_server_proof(&p->s, &f, p->accept) != PP_HS_OK)
        return 1;
    f = frame_of(PP_T_ACCEPT, p->accept, sizeof p->accept);
    return pp_hs_client_accept(&p->c, &f) == PP_HS_OK ? 0 : 2;
}

static void test_handshake_roles(void)
{
    hs_pair p = {0};
    CU_ASSERT_EQUAL(handshake(&p, "the-shared-secret-0123456789", "the-shared-secret-0123456789"),
                    0);
    /* The same messages again: fresh nonces make a new transcript. */
    hs_pair q = {0};
    CU_ASSERT_EQUAL(handshake(&q, "the-shared-secret-0123456789", "the-shared-secret-0123456789"),
                    0);
    CU_ASSERT(memcmp(p.proof, q.proof, PP_MAC_LEN) != 0);
    /* A wrong secret: the server refuses with PP_E_AUTH. */
    hs_pair w = {0};
    CU_ASSERT_EQUAL(handshake(&w, "one-secret-0123456789abcdef", "another-secret-0123456789"), 1);
    CU_ASSERT_EQUAL(w.s.err_code, PP_E_AUTH);
    pp_hs_wipe(&p.c);
    pp_hs_wipe(&p.s);
}

/* A proof captured from one handshake, replayed into another, is refused;
 * so is the server's own proof reflected back as the client's. */
static void test_handshake_replay_reflect(void)
{
    hs_pair a = {0}, b = {0};
    const char *sec = "the-shared-secret-0123456789";
    CU_ASSERT_EQUAL(handshake(&a, sec, sec), 0);
    /* A new session: the attacker sends a's HELLO and a's PROOF. */
    CU_ASSERT_FATAL(pp_auth_derive(sec, strlen(sec), &b.ks) == 0);
    pp_frame f = frame_of(PP_T_HELLO, a.hello, sizeof a.hello);
    CU_ASSERT_EQUAL(pp_hs_server_hello(&b.s, &b.ks, NULL, &f, 1 << 20, 4, b.chal), PP_HS_OK);
    f = frame_of(PP_T_PROOF, a.proof, sizeof a.proof);
    CU_ASSERT_EQUAL(pp_hs_server_proof(&b.s, &f, b.accept), PP_HS_FAIL);
    CU_ASSERT_EQUAL(b.s.err_code, PP_E_AUTH);
    /* Reflection: the server's proof of session a as the client's proof. */
    f = frame_of(PP_T_HELLO, a.hello, sizeof a.hello);
    CU_ASSERT_EQUAL(pp_hs_server_hello(&b.s, &b.ks, NULL, &f, 1 << 20, 4, b.chal), PP_HS_OK);
    f = frame_of(PP_T_PROOF, a.accept, sizeof a.accept);
    CU_ASSERT_EQUAL(pp_hs_server_proof(&b.s, &f, b.accept), PP_HS_FAIL);
    /* A client given a node's ACCEPT of another session believes nothing. */
    hs_pair c = {0};
    CU_ASSERT_FATAL(pp_auth_derive(sec, strlen(sec), &c.kc) == 0);
    CU_ASSERT_EQUAL(pp_hs_client_hello(&c.c, &c.kc, NULL, c.hello), PP_HS_OK);
    f = frame_of(PP_T_CHALLENGE, a.chal, sizeof a.chal);
    CU_ASSERT_EQUAL(pp_hs_client_challenge(&c.c, &f, c.proof), PP_HS_OK);
    f = frame_of(PP_T_ACCEPT, a.accept, sizeof a.accept);
    CU_ASSERT_EQUAL(pp_hs_client_accept(&c.c, &f), PP_HS_FAIL);
}

/* Over TLS the proofs cover the session's binding: both sides in one
 * session agree; a relay that runs a session of its own with each side
 * (two bindings) cannot pass the client's proof on. */
static void test_handshake_binding(void)
{
    const char *sec = "the-shared-secret-0123456789";
    uint8_t b1[PP_HS_BINDING_LEN], b2[PP_HS_BINDING_LEN];
    memset(b1, 0x11, sizeof b1);
    memset(b2, 0x22, sizeof b2);
    hs_pair same = {.binding = b1, .binding_s = b1};
    CU_ASSERT_EQUAL(handshake(&same, sec, sec), 0);
    hs_pair relayed = {.binding = b1, .binding_s = b2};
    CU_ASSERT_EQUAL(handshake(&relayed, sec, sec), 1);
    CU_ASSERT_EQUAL(relayed.s.err_code, PP_E_AUTH);
    hs_pair half = {.binding = b1, .binding_s = NULL}; /* TLS on one side only */
    CU_ASSERT_EQUAL(handshake(&half, sec, sec), 1);
    /* The binding changes the proof: the same nonces give another MAC. */
    CU_ASSERT(memcmp(same.proof, relayed.proof, PP_MAC_LEN) != 0);
}

/* Versions with nothing in common: PP_E_VERSION naming both ranges. */
static void test_handshake_versions(void)
{
    pp_auth_key k;
    CU_ASSERT_FATAL(pp_auth_derive("the-shared-secret-0123456789", 28, &k) == 0);
    pp_hs s;
    uint8_t chal[PP_CHALLENGE_LEN];
    uint8_t hello[PP_HELLO_LEN] = {PP_PROTO_MAX + 1, PP_PROTO_MAX + 3};
    pp_frame f = frame_of(PP_T_HELLO, hello, sizeof hello);
    CU_ASSERT_EQUAL(pp_hs_server_hello(&s, &k, NULL, &f, 1024, 1, chal), PP_HS_FAIL);
    CU_ASSERT_EQUAL(s.err_code, PP_E_VERSION);
    char want[64];
    snprintf(want, sizeof want, "client speaks %d..%d, server speaks %d..%d", PP_PROTO_MAX + 1,
             PP_PROTO_MAX + 3, PP_PROTO_MIN, PP_PROTO_MAX);
    CU_ASSERT_PTR_NOT_NULL(strstr(s.err, want));
    /* A version 1 client (before priorities, CANCEL and batches). */
    hello[0] = hello[1] = 1;
    CU_ASSERT_EQUAL(pp_hs_server_hello(&s, &k, NULL, &f, 1024, 1, chal), PP_HS_FAIL);
    CU_ASSERT_EQUAL(s.err_code, PP_E_VERSION);
    CU_ASSERT_PTR_NOT_NULL(strstr(s.err, "client speaks 1..1, server speaks 2..2"));
    hello[0] = 3; /* min above max */
    hello[1] = 1;
    CU_ASSERT_EQUAL(pp_hs_server_hello(&s, &k, NULL, &f, 1024, 1, chal), PP_HS_FAIL);
    CU_ASSERT_EQUAL(s.err_code, PP_E_VERSION);
    f.hdr.len = PP_HELLO_LEN - 1;
    CU_ASSERT_EQUAL(pp_hs_server_hello(&s, &k, NULL, &f, 1024, 1, chal), PP_HS_FAIL);
    CU_ASSERT_EQUAL(s.err_code, PP_E_PROTOCOL);
}

/* ---- node tags ---- */

/* Tag syntax, sets kept sorted and distinct, lists, subsets. */
static void test_tag_sets(void)
{
    char err[PP_ERR_LEN], text[PP_TAGS_TEXT_MAX];
    CU_ASSERT(pp_tag_ok("gpu", 3) && pp_tag_ok("a.B-c_9", 7));
    CU_ASSERT(!pp_tag_ok("", 0) && !pp_tag_ok("g u", 3) && !pp_tag_ok("g,u", 3) &&
              !pp_tag_ok("g\xc3\xa9", 3) && !pp_tag_ok("a\0b", 3));
    char t32[34];
    memset(t32, 'x', 33);
    t32[33] = 0;
    CU_ASSERT(pp_tag_ok(t32, 32) && !pp_tag_ok(t32, 33));
    pp_tags t = {0};
    CU_ASSERT_EQUAL(pp_tags_parse(&t, " gpu ,avx512,gpu,\tcuda", err), 0);
    pp_tags_text(&t, text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "avx512,cuda,gpu"); /* sorted, once each */
    CU_ASSERT_EQUAL(pp_tags_parse(&t, "", err), 0);
    CU_ASSERT_EQUAL(t.n, 3);
    CU_ASSERT_EQUAL(pp_tags_parse(&t, "a,,b", err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "an empty tag"));
    CU_ASSERT_EQUAL(pp_tags_parse(&t, "gpu,", err), -1);
    CU_ASSERT_EQUAL(pp_tags_parse(&t, "bad tag", err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "\"bad tag\""));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "A-Z a-z 0-9 _ . -"));
    CU_ASSERT_EQUAL(pp_tags_add(&t, "x\x01\n", 3, err), -1); /* escaped in the message */
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "x\\x01\\x0a"));
    CU_ASSERT_EQUAL(pp_tags_add(&t, "gpu", 3, err), 1);
    pp_tags need = {0}, none = {0};
    CU_ASSERT_EQUAL(pp_tags_parse(&need, "gpu,avx512", err), 0);
    CU_ASSERT(pp_tags_subset(&need, &t) && !pp_tags_subset(&t, &need));
    CU_ASSERT(pp_tags_subset(&none, &t) && !pp_tags_subset(&need, &none));
    /* At most PP_TAGS_MAX. */
    pp_tags full = {0};
    for (int i = 0; i < PP_TAGS_MAX; i++) {
        char n[8];
        snprintf(n, sizeof n, "t%02d", i);
        CU_ASSERT_EQUAL(pp_tags_add(&full, n, strlen(n), err), 0);
    }
    CU_ASSERT_EQUAL(pp_tags_add(&full, "more", 4, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "more than 32 tags"));
    CU_ASSERT_EQUAL(pp_tags_add(&full, "t00", 3, err), 1); /* had it: not "more" */
}

/* TAGS: u8 count, then u8 len and bytes per tag; every malformed form
 * refused saying why. */
static void test_tags_frame(void)
{
    char err[PP_ERR_LEN];
    pp_tags t = {0}, got;
    CU_ASSERT_EQUAL(pp_tags_parse(&t, "gpu,avx512", err), 0);
    pp_buf b;
    pp_buf_init(&b, 1u << 20);
    CU_ASSERT_EQUAL(pp_proto_tags(&b, &t), 0);
    const uint8_t want[] = {2, 6, 'a', 'v', 'x', '5', '1', '2', 3, 'g', 'p', 'u'};
    CU_ASSERT_EQUAL(b.len, sizeof want);
    CU_ASSERT_EQUAL(memcmp(b.data, want, sizeof want), 0);
    pp_frame f = frame_of(PP_T_TAGS, b.data, b.len);
    CU_ASSERT_EQUAL(pp_proto_tags_decode(&f, &got, err), 0);
    CU_ASSERT(got.n == 2 && !strcmp(got.tag[0], "avx512") && !strcmp(got.tag[1], "gpu"));
    /* No tag: one zero byte. */
    pp_tags none = {0};
    CU_ASSERT_EQUAL(pp_proto_tags(&b, &none), 0);
    CU_ASSERT(b.len == 1 && b.data[0] == 0);
    /* The largest: 32 tags of 32 bytes. */
    pp_tags full = {0};
    for (int i = 0; i < PP_TAGS_MAX; i++) {
        char n[PP_TAG_MAX + 1];
        memset(n, 'a' + i % 26, PP_TAG_MAX);
        n[0] = (char)('A' + i % 26);
        n[1] = (char)('0' + i / 26);
        CU_ASSERT_EQUAL(pp_tags_add(&full, n, PP_TAG_MAX, err), 0);
    }
    CU_ASSERT_EQUAL(pp_proto_tags(&b, &full), 0);
    CU_ASSERT_EQUAL(b.len, PP_TAGS_PAYLOAD_MAX);
    CU_ASSERT_EQUAL(PP_TAGS_PAYLOAD_MAX, 1057);
    f = frame_of(PP_T_TAGS, b.data, b.len);
    CU_ASSERT(pp_proto_tags_decode(&f, &got, err) == 0 && got.n == PP_TAGS_MAX);
    pp_buf_reset(&b);
    /* Malformed, each with its reason. */
    static const struct {
        uint8_t p[8];
        size_t n;
        const char *why;
    } bad[] = {
        {{0}, 0, "cut short"},
        {{1, 3, 'g', 'p'}, 4, "cut short"},
        {{1, 0}, 2, "a tag is 1 to 32"},
        {{1, 3, 'g', ' ', 'u'}, 5, "\"g u\""},
        {{1, 2, 'g', 0xff}, 4, "\\xff"},
        {{2, 1, 'a', 1, 'a'}, 5, "the same tag twice"},
        {{1, 1, 'a', 0}, 4, "bytes after the last tag"},
        {{33}, 1, "33 tags, more than 32"},
        {{1, 33, 'a'}, 3, "cut short"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        f = frame_of(PP_T_TAGS, bad[i].p, bad[i].n);
        err[0] = 0;
        CU_ASSERT_EQUAL(pp_proto_tags_decode(&f, &got, err), -1);
        if (!strstr(err, bad[i].why))
            fprintf(stderr, "\n    bad TAGS %zu: \"%s\" lacks \"%s\"", i, err, bad[i].why);
        CU_ASSERT_PTR_NOT_NULL(strstr(err, bad[i].why));
    }
    /* A tag of 33 bytes, whole. */
    uint8_t long_tag[35] = {1, 33};
    memset(long_tag + 2, 'a', 33);
    f = frame_of(PP_T_TAGS, long_tag, sizeof long_tag);
    CU_ASSERT_EQUAL(pp_proto_tags_decode(&f, &got, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "(33 bytes)"));
    /* Oversized: refused by its length before any tag is read. */
    static uint8_t big[4096];
    f = frame_of(PP_T_TAGS, big, sizeof big);
    CU_ASSERT_EQUAL(pp_proto_tags_decode(&f, &got, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "4096 bytes of tags"));
    char buf[16];
    CU_ASSERT_STRING_EQUAL(pp_proto_type_name(PP_T_TAGS, buf), "TAGS");
    CU_ASSERT_EQUAL(PP_T_TAGS, 30);
    CU_ASSERT_EQUAL(pp_proto_flags_allowed(PP_T_TAGS), 0);
}

int pp_register_suites(void)
{
    static const pp_test tests[] = {
        {"WHELLO", test_whello},
        {"TASKDEF", test_taskdef},
        {"JOB and RESULT", test_job_and_result},
        {"HELLO and CHALLENGE", test_hello_challenge},
        {"ERROR, BYE, NCPUS, NEED, MODULE", test_error_bye_ncpus_need_module},
        {"RJOB", test_rjob},
        {"CANCEL, flags per type", test_cancel_and_flags},
        {"tag sets: syntax, order, lists, subsets", test_tag_sets},
        {"TAGS: layout, limits, every malformed form", test_tags_frame},
        {"batch arguments: layout, every malformed form", test_batch_args},
        {"batch limits: PP_BATCH_MAX, the buffer's cap", test_batch_limits},
        {"batch results: layout, every malformed form", test_batch_results},
        {"batches of random bytes", test_batch_random},
        {"PING tokens, type names", test_ping_and_names},
        {"handshake: both roles, a wrong secret", test_handshake_roles},
        {"handshake: replayed and reflected proofs", test_handshake_replay_reflect},
        {"handshake: no common version", test_handshake_versions},
        {"handshake: bound to the TLS session", test_handshake_binding},
        {NULL, NULL},
    };
    return pp_add_suite("pp_proto", NULL, NULL, tests);
}
