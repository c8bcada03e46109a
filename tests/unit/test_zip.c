/* SPDX-License-Identifier: MIT */
/* test_zip.c -- pp_zip: round trips, and an inflate that refuses what it
 * must (a size above the limit, zlib bombs, lying lengths, corrupt,
 * truncated and padded streams) without handing anything back. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "cunit_main.h"
#include "pp_common.h"
#include "pp_zip.h"

#define MIB (1024u * 1024u)

static void *const SENTINEL = (void *)&SENTINEL;

static void fill_random(uint8_t *p, size_t n, uint32_t seed)
{
    uint32_t x = seed ? seed : 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)(x >> 7);
    }
}

/* Text-like, compressible bytes. */
static void fill_text(uint8_t *p, size_t n)
{
    static const char words[] = "the quick brown fox jumps over the lazy dog; ";
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)words[(i + i / 997) % (sizeof words - 1)];
}

static void round_trip(const void *data, size_t n, int level)
{
    void *z = NULL, *out = NULL;
    size_t zlen = 0, outlen = 12345;
    char err[PP_ERR_LEN] = "";
    CU_ASSERT_EQUAL_FATAL(pp_zip_deflate(data, n, level, &z, &zlen), 0);
    CU_ASSERT_FATAL(zlen >= 4 + 2 + 4); /* prefix, zlib header, adler32 */
    CU_ASSERT_EQUAL(pp_load32(z), n);
    CU_ASSERT_EQUAL(pp_zip_inflate(z, zlen, n, &out, &outlen, err), 0);
    CU_ASSERT_STRING_EQUAL(err, "");
    CU_ASSERT_PTR_NOT_NULL_FATAL(out);
    CU_ASSERT_EQUAL(outlen, n);
    if (n)
        CU_ASSERT_EQUAL(memcmp(out, data, n), 0);
    CU_ASSERT_EQUAL(((uint8_t *)out)[n], 0);
    free(out);
    free(z);
}

/* Compresses data and returns the payload (caller frees). */
static uint8_t *make_payload(const void *data, size_t n, size_t *len)
{
    void *z = NULL;
    CU_ASSERT_EQUAL_FATAL(pp_zip_deflate(data, n, 6, &z, len), 0);
    return z;
}

/* Inflate must fail with -1, leave *out alone and say `want` in err. */
static void expect_fail(const void *p, size_t n, size_t max, const char *want)
{
    void *out = SENTINEL;
    size_t outlen = 777;
    char err[PP_ERR_LEN] = "";
    CU_ASSERT_EQUAL(pp_zip_inflate(p, n, max, &out, &outlen, err), -1);
    CU_ASSERT_PTR_EQUAL(out, SENTINEL);
    CU_ASSERT_EQUAL(outlen, 777);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, want));
    if (!strstr(err, want))
        fprintf(stderr, "\n  wanted \"%s\" in \"%s\"\n", want, err);
}

/* ---- round trips ---- */

static void test_round_trip_small(void)
{
    round_trip("", 0, 6);
    round_trip(NULL, 0, 1);
    round_trip("x", 1, 6);
    round_trip("\0", 1, 9);
    round_trip("hello, hello, hello, hello", 26, 9);
}

static void test_round_trip_compressible(void)
{
    uint8_t *data = malloc(MIB);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    fill_text(data, MIB);
    round_trip(data, MIB, 1);
    round_trip(data, MIB, 9);
    size_t zlen = 0;
    uint8_t *z = make_payload(data, MIB, &zlen);
    CU_ASSERT(zlen < MIB / 20); /* it did compress */
    free(z);
    free(data);
}

static void test_round_trip_random(void)
{
    uint8_t *data = malloc(MIB);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    fill_random(data, MIB, 12345);
    round_trip(data, MIB, 6);
    free(data);
}

static void test_exact_limit(void)
{
    /* max equal to the declared size is fine. */
    uint8_t data[1000];
    fill_text(data, sizeof data);
    size_t zlen = 0;
    uint8_t *z = make_payload(data, sizeof data, &zlen);
    void *out = NULL;
    size_t outlen = 0;
    char err[PP_ERR_LEN];
    CU_ASSERT_EQUAL(pp_zip_inflate(z, zlen, sizeof data, &out, &outlen, err), 0);
    CU_ASSERT_EQUAL(outlen, sizeof data);
    free(out);
    expect_fail(z, zlen, sizeof data - 1, "exceeds the limit 999");
    free(z);
}

static void test_deflate_too_large(void)
{
    /* Refused before the input is touched. */
    void *z = SENTINEL;
    size_t zlen = 42;
    static const char dummy[1];
    CU_ASSERT_EQUAL(pp_zip_deflate(dummy, (size_t)UINT32_MAX + 1, 6, &z, &zlen), -1);
    CU_ASSERT_PTR_EQUAL(z, SENTINEL);
    CU_ASSERT_EQUAL(zlen, 42);
}

/* ---- refusals ---- */

static void test_declared_above_max(void)
{
    /* A prefix alone: the refusal comes before anything is allocated or
     * inflated (the "stream" here is not even valid). */
    uint8_t p[8] = {0};
    pp_store32(p, 0xFFFFFFFFu);
    expect_fail(p, sizeof p, 1 * MIB, "declared size 4294967295 exceeds the limit 1048576");
    pp_store32(p, 1 * MIB + 1);
    expect_fail(p, sizeof p, 1 * MIB, "exceeds the limit 1048576");
    expect_fail(p, 4, 0, "exceeds the limit 0");
}

/* Streams `total` zero bytes through deflate without holding them: a
 * small payload that inflates to a lot. */
static uint8_t *make_bomb(uint64_t total, size_t *len)
{
    static const uint8_t zeros[65536];
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    CU_ASSERT_EQUAL_FATAL(deflateInit(&zs, 9), Z_OK);
    size_t cap = (size_t)(total / 256) + 4096, used = 4;
    uint8_t *buf = malloc(cap);
    CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
    uint64_t left = total;
    int ret, ok = 1;
    do {
        if (zs.avail_in == 0 && left > 0) {
            size_t chunk = left < sizeof zeros ? (size_t)left : sizeof zeros;
            zs.next_in = (Bytef *)zeros;
            zs.avail_in = (uInt)chunk;
            left -= chunk;
        }
        zs.next_out = buf + used;
        zs.avail_out = (uInt)(cap - used);
        ret = deflate(&zs, left == 0 ? Z_FINISH : Z_NO_FLUSH);
        used = (size_t)(zs.next_out - buf);
        ok = (ret == Z_OK || ret == Z_STREAM_END || ret == Z_BUF_ERROR) && used < cap;
    } while (ok && ret != Z_STREAM_END);
    deflateEnd(&zs);
    if (!ok)
        free(buf);
    CU_ASSERT_FATAL(ok);
    pp_store32(buf, total > UINT32_MAX ? UINT32_MAX : (uint32_t)total);
    *len = used;
    return buf;
}

static void test_zlib_bomb(void)
{
    /* 256 MiB of zeros in about 256 KiB. */
    size_t len = 0;
    uint8_t *bomb = make_bomb((uint64_t)256 * MIB, &len);
    CU_ASSERT(len < MIB / 2);

    /* Honest about its size: refused by the limit. */
    expect_fail(bomb, len, 1 * MIB, "exceeds the limit 1048576");

    /* Lying about its size to get past the limit: inflated into the
     * declared bytes only, and refused as soon as it would write more. */
    pp_store32(bomb, 1 * MIB);
    expect_fail(bomb, len, 1 * MIB, "more bytes than declared");
    pp_store32(bomb, 0);
    expect_fail(bomb, len, 1 * MIB, "more bytes than declared");
    free(bomb);

    /* 64 MiB of zeros through pp_zip_deflate, against a 1 MiB limit. */
    uint8_t *zeros = calloc(64, MIB);
    CU_ASSERT_PTR_NOT_NULL_FATAL(zeros);
    uint8_t *z = make_payload(zeros, 64 * MIB, &len);
    free(zeros);
    CU_ASSERT(len < MIB);
    expect_fail(z, len, 1 * MIB, "declared size 67108864 exceeds the limit 1048576");
    free(z);
}

static void test_lying_length(void)
{
    uint8_t data[5000];
    fill_text(data, sizeof data);
    size_t len = 0;
    uint8_t *z = make_payload(data, sizeof data, &len);

    /* Claims more than the stream holds. */
    pp_store32(z, sizeof data + 1);
    expect_fail(z, len, 1 * MIB, "stream holds fewer bytes than declared");
    pp_store32(z, 1 * MIB);
    expect_fail(z, len, 1 * MIB, "fewer bytes than declared");

    /* Claims less. */
    pp_store32(z, sizeof data - 1);
    expect_fail(z, len, 1 * MIB, "stream holds more bytes than declared");
    pp_store32(z, 0);
    expect_fail(z, len, 1 * MIB, "more bytes than declared");
    free(z);

    /* An empty stream that claims a byte; a byte that claims none. */
    z = make_payload("", 0, &len);
    pp_store32(z, 1);
    expect_fail(z, len, 10, "fewer bytes than declared");
    free(z);
    z = make_payload("x", 1, &len);
    pp_store32(z, 0);
    expect_fail(z, len, 10, "more bytes than declared");
    free(z);
}

static void test_corrupt(void)
{
    uint8_t *data = malloc(64 * 1024);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    fill_text(data, 64 * 1024);
    size_t len = 0;
    uint8_t *z = make_payload(data, 64 * 1024, &len);
    free(data);
    CU_ASSERT_FATAL(len > 64);

    /* Bytes flipped in the middle. */
    uint8_t *bad = malloc(len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
    memcpy(bad, z, len);
    for (size_t i = len / 2 - 4; i < len / 2 + 4; i++)
        bad[i] ^= 0x5A;
    expect_fail(bad, len, 1 * MIB, "corrupt stream");

    /* A broken zlib header. */
    memcpy(bad, z, len);
    bad[4] ^= 0xFF;
    expect_fail(bad, len, 1 * MIB, "corrupt stream: incorrect header check");

    /* A wrong checksum (the last byte is the end of the adler32). */
    memcpy(bad, z, len);
    bad[len - 1] ^= 0x01;
    expect_fail(bad, len, 1 * MIB, "corrupt stream: incorrect data check");

    /* Garbage only. */
    static const uint8_t junk[] = {0, 0, 0, 16, 'n', 'o', 't', ' ', 'z', 'l', 'i', 'b'};
    expect_fail(junk, sizeof junk, 1 * MIB, "corrupt stream");
    free(bad);
    free(z);
}

static void test_truncated(void)
{
    uint8_t *data = malloc(MIB);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    fill_text(data, MIB);
    size_t len = 0;
    uint8_t *z = make_payload(data, MIB, &len);
    free(data);
    CU_ASSERT_FATAL(len > 20);

    expect_fail(z, len - 10, MIB, "truncated stream");
    /* Only the checksum missing: all the bytes are there, the end is not. */
    expect_fail(z, len - 4, MIB, "truncated stream");
    expect_fail(z, len - 1, MIB, "truncated stream");
    /* The prefix alone. */
    expect_fail(z, 4, MIB, "truncated stream");
    free(z);
}

static void test_trailing(void)
{
    static const char text[] = "some text to compress, some text to compress";
    size_t len = 0;
    uint8_t *z = make_payload(text, sizeof text - 1, &len);
    uint8_t *pad = malloc(len + 7);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pad);
    memcpy(pad, z, len);
    memcpy(pad + len, "garbage", 7);
    expect_fail(pad, len + 7, 1 * MIB, "trailing bytes after the stream");
    expect_fail(pad, len + 1, 1 * MIB, "trailing bytes after the stream (1)");

    /* A second valid stream appended is trailing bytes too. */
    uint8_t *two = malloc(2 * len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(two);
    memcpy(two, z, len);
    memcpy(two + len, z + 4, len - 4);
    expect_fail(two, 2 * len - 4, 1 * MIB, "trailing bytes after the stream");
    free(two);
    free(pad);
    free(z);
}

static void test_too_short(void)
{
    static const uint8_t p[4] = {0, 0, 0, 0};
    expect_fail(p, 0, 1 * MIB, "too short");
    expect_fail(p, 3, 1 * MIB, "too short");
    expect_fail(NULL, 0, 1 * MIB, "too short");
}

static void test_err_may_be_null(void)
{
    static const uint8_t p[3] = {0};
    void *out = SENTINEL;
    size_t outlen = 0;
    CU_ASSERT_EQUAL(pp_zip_inflate(p, sizeof p, 10, &out, &outlen, NULL), -1);
    CU_ASSERT_PTR_EQUAL(out, SENTINEL);
}

int pp_register_suites(void)
{
    static const pp_test zip[] = {
        {"round trip: 0 and 1 bytes, short text", test_round_trip_small},
        {"round trip: 1 MiB compressible", test_round_trip_compressible},
        {"round trip: 1 MiB random", test_round_trip_random},
        {"declared size equal to the limit", test_exact_limit},
        {"deflate refuses more than 4 GiB - 1", test_deflate_too_large},
        {"declared size above the limit", test_declared_above_max},
        {"zlib bomb", test_zlib_bomb},
        {"lying declared length", test_lying_length},
        {"corrupt stream", test_corrupt},
        {"truncated stream", test_truncated},
        {"trailing bytes", test_trailing},
        {"shorter than the prefix", test_too_short},
        {"err may be NULL", test_err_may_be_null},
        {NULL, NULL},
    };
    return pp_add_suite("pp_zip", NULL, NULL, zip);
}
