/* SPDX-License-Identifier: MIT */
/* test_zpolicy.c -- pp_zpolicy: when a large payload is compressed.  The
 * decision alone (fast link -> raw, slow link and compressible -> compress,
 * incompressible -> raw, an unmeasured link -> raw, forced modes), the
 * estimates it learns from, and pp_zpolicy_maybe/_inflate on real bytes:
 * what they send decodes to what was given, and a peer's lying or hostile
 * payload neither inflates past the limit nor moves the estimates. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_main.h"
#include "pp_common.h"
#include "pp_zip.h"
#include "pp_zpolicy.h"

#define MIB (1024u * 1024u)
#define MBPS(x) ((x) * 1e6)

static void fill_text(uint8_t *p, size_t n)
{
    static const char words[] = "the quick brown fox jumps over the lazy dog; ";
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)words[(i + i / 997) % (sizeof words - 1)];
}

static void fill_random(uint8_t *p, size_t n)
{
    uint32_t x = 0x9e3779b9u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = (uint8_t)(x >> 7);
    }
}

static void test_parse(void)
{
    CU_ASSERT_EQUAL(pp_zpolicy_parse(NULL), PP_ZP_AUTO);
    CU_ASSERT_EQUAL(pp_zpolicy_parse("auto"), PP_ZP_AUTO);
    CU_ASSERT_EQUAL(pp_zpolicy_parse("always"), PP_ZP_ALWAYS);
    CU_ASSERT_EQUAL(pp_zpolicy_parse("never"), PP_ZP_NEVER);
    CU_ASSERT_EQUAL(pp_zpolicy_parse(""), -2);
    CU_ASSERT_EQUAL(pp_zpolicy_parse("Always"), -2);
    CU_ASSERT_EQUAL(pp_zpolicy_parse("yes"), -2);
}

/* A compressible payload on measured links: raw when the link outruns
 * deflate, compressed when it is the bottleneck. */
static void test_decide_link(void)
{
    pp_zp_input in = {.mode = PP_ZP_AUTO, .n = 64 * MIB, .ratio = 0.05,
                      .deflate_bps = MBPS(300), .inflate_bps = MBPS(1000)};
    in.link_bps = MBPS(1100); /* loopback */
    CU_ASSERT_EQUAL(pp_zp_decide(&in), 0);
    in.link_bps = MBPS(1250); /* 10 Gbit/s */
    CU_ASSERT_EQUAL(pp_zp_decide(&in), 0);
    in.link_bps = MBPS(12.5); /* 100 Mbit/s */
    CU_ASSERT_EQUAL(pp_zp_decide(&in), 1);
    in.link_bps = MBPS(125); /* 1 Gbit/s: 4.7 ns a byte zipped x 1.25 < 8 raw */
    CU_ASSERT_EQUAL(pp_zp_decide(&in), 1);
    /* Not measured yet: taken as fast. */
    in.link_bps = 0;
    CU_ASSERT_EQUAL(pp_zp_decide(&in), 0);
    /* No rate estimates yet: the conservative defaults still compress on
     * a slow link. */
    in.link_bps = MBPS(12.5);
    in.deflate_bps = in.inflate_bps = 0;
    CU_ASSERT_EQUAL(pp_zp_decide(&in), 1);
}

/* Right at the margin: compressing must win by PP_ZP_MARGIN. */
static void test_decide_margin(void)
{
    /* deflate 100 MB/s, inflate 100 MB/s, ratio 0.5: zipped per byte is
     * 20 ns + 0.5/B, raw 1/B.  Equal at B = 25 MB/s; with the margin,
     * 1.25 (20 ns + 0.5/B) < 1/B holds only for B < 15 MB/s. */
    pp_zp_input in = {.mode = PP_ZP_AUTO, .n = MIB, .ratio = 0.5,
                      .deflate_bps = MBPS(100), .inflate_bps = MBPS(100)};
    in.link_bps = MBPS(20);
    CU_ASSERT_EQUAL(pp_zp_decide(&in), 0);
    in.link_bps = MBPS(14);
    CU_ASSERT_EQUAL(pp_zp_decide(&in), 1);
}

static void test_decide_incompressible(void)
{
    pp_zp_input in = {.mode = PP_ZP_AUTO, .n = 64 * MIB, .ratio = 1.001,
                      .link_bps = MBPS(1), .deflate_bps = MBPS(300), .inflate_bps = MBPS(1000)};
    CU_ASSERT_EQUAL(pp_zp_decide(&in), 0);
    in.ratio = 0.7; /* shrinks, but not by a third: never worth it */
    CU_ASSERT_EQUAL(pp_zp_decide(&in), 0);
    in.mode = PP_ZP_ALWAYS;
    CU_ASSERT_EQUAL(pp_zp_decide(&in), 0);
    in.ratio = -1; /* the sample failed */
    CU_ASSERT_EQUAL(pp_zp_decide(&in), 0);
}

static void test_decide_forced(void)
{
    pp_zp_input in = {.mode = PP_ZP_ALWAYS, .n = 64 * MIB, .ratio = 0.05,
                      .link_bps = MBPS(5000), .deflate_bps = MBPS(10), .inflate_bps = MBPS(10)};
    CU_ASSERT_EQUAL(pp_zp_decide(&in), 1); /* today's behaviour, whatever the link */
    in.link_bps = 0;
    CU_ASSERT_EQUAL(pp_zp_decide(&in), 1);
    in.mode = PP_ZP_NEVER;
    in.link_bps = MBPS(0.1);
    CU_ASSERT_EQUAL(pp_zp_decide(&in), 0);
}

static void test_estimates(void)
{
    pp_zpolicy zp = {0};
    pp_zpolicy_note_deflate(&zp, MIB, 1e-9); /* too short to time: ignored */
    CU_ASSERT_EQUAL(zp.deflate_bps, 0);
    pp_zpolicy_note_deflate(&zp, MIB, -1);
    pp_zpolicy_note_deflate(&zp, 0, 1);
    CU_ASSERT_EQUAL(zp.deflate_bps, 0);
    pp_zpolicy_note_deflate(&zp, 100 * MIB, 1.0);
    CU_ASSERT_DOUBLE_EQUAL(zp.deflate_bps, 100.0 * MIB, 1);
    pp_zpolicy_note_deflate(&zp, 200 * MIB, 1.0); /* moves toward it, not onto it */
    CU_ASSERT(zp.deflate_bps > 100.0 * MIB && zp.deflate_bps < 200.0 * MIB);
    pp_zpolicy_note_inflate(&zp, 500 * MIB, 1.0);
    CU_ASSERT_DOUBLE_EQUAL(zp.inflate_bps, 500.0 * MIB, 1);
}

/* On a link where compressing cannot pay whatever the data, AUTO does
 * not even deflate the sample (the estimate, which a sample would move,
 * stays untouched); on a slow one, and in ALWAYS, it does. */
static void test_sample_skipped_on_fast_links(void)
{
    size_t n = 2 * MIB;
    uint8_t *body = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    fill_random(body, n); /* stays raw in every case: only the sample differs */
    pp_zpolicy zp = {0};
    void *z = NULL;
    size_t zlen = 0;
    CU_ASSERT_EQUAL(pp_zpolicy_maybe(&zp, PP_ZP_AUTO, 0, "H", 1, body, n, &z, &zlen), 0);
    CU_ASSERT_EQUAL(pp_zpolicy_maybe(&zp, PP_ZP_AUTO, MBPS(1000), "H", 1, body, n, &z, &zlen),
                    0);
    CU_ASSERT_EQUAL(zp.deflate_bps, 0);
    /* Slow: sampled.  A 16 KiB deflate of random bytes takes well over
     * the 20 us a timing needs on any machine this runs on; retried a
     * few times in case a clock tick hid one. */
    for (int i = 0; i < 20 && zp.deflate_bps == 0; i++)
        CU_ASSERT_EQUAL(pp_zpolicy_maybe(&zp, PP_ZP_AUTO, MBPS(10), "H", 1, body, n, &z, &zlen),
                        0);
    CU_ASSERT(zp.deflate_bps > 0);
    pp_zpolicy forced = {0};
    for (int i = 0; i < 20 && forced.deflate_bps == 0; i++)
        CU_ASSERT_EQUAL(
            pp_zpolicy_maybe(&forced, PP_ZP_ALWAYS, 0, "H", 1, body, n, &z, &zlen), 0);
    CU_ASSERT(forced.deflate_bps > 0);
    CU_ASSERT_PTR_NULL(z);
    free(body);
}

/* pp_zpolicy_maybe on bytes: what it sends inflates to head ‖ body. */
static void test_maybe_round_trip(void)
{
    size_t n = 2 * MIB;
    uint8_t *body = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    fill_text(body, n);
    const char head[] = "HEAD";
    pp_zpolicy zp = {0};
    void *z = NULL;
    size_t zlen = 0;
    /* Slow link: compressed, and the deflate estimate learns. */
    CU_ASSERT_EQUAL_FATAL(pp_zpolicy_maybe(&zp, PP_ZP_AUTO, MBPS(1), head, 4, body, n, &z, &zlen),
                          1);
    CU_ASSERT(zlen < n / 3);
    void *out = NULL;
    size_t outlen = 0;
    char err[PP_ERR_LEN];
    CU_ASSERT_EQUAL_FATAL(pp_zpolicy_inflate(&zp, z, zlen, n + 4, &out, &outlen, err), 0);
    CU_ASSERT_EQUAL(outlen, n + 4);
    CU_ASSERT(memcmp(out, head, 4) == 0 && memcmp((uint8_t *)out + 4, body, n) == 0);
    free(out);
    free(z);
    /* Unmeasured or fast link: raw; forced: as told. */
    z = NULL;
    CU_ASSERT_EQUAL(pp_zpolicy_maybe(&zp, PP_ZP_AUTO, 0, head, 4, body, n, &z, &zlen), 0);
    CU_ASSERT_EQUAL(pp_zpolicy_maybe(&zp, PP_ZP_AUTO, MBPS(3000), head, 4, body, n, &z, &zlen),
                    0);
    CU_ASSERT_EQUAL(pp_zpolicy_maybe(&zp, PP_ZP_NEVER, MBPS(1), head, 4, body, n, &z, &zlen), 0);
    CU_ASSERT_PTR_NULL(z);
    CU_ASSERT_EQUAL_FATAL(pp_zpolicy_maybe(&zp, PP_ZP_ALWAYS, 0, head, 4, body, n, &z, &zlen), 1);
    free(z);
    z = NULL;
    /* Too small to bother, even forced; random bytes, even on a slow link. */
    CU_ASSERT_EQUAL(pp_zpolicy_maybe(&zp, PP_ZP_ALWAYS, MBPS(1), head, 4, body, PP_ZIP_MIN - 1,
                                     &z, &zlen), 0);
    fill_random(body, n);
    CU_ASSERT_EQUAL(pp_zpolicy_maybe(&zp, PP_ZP_AUTO, MBPS(1), head, 4, body, n, &z, &zlen), 0);
    CU_ASSERT_EQUAL(pp_zpolicy_maybe(&zp, PP_ZP_ALWAYS, MBPS(1), head, 4, body, n, &z, &zlen), 0);
    CU_ASSERT_PTR_NULL(z);
    free(body);
}

/* A peer's compressed payload that lies: a declared size above the limit,
 * or a stream that inflates to more than declared (a zlib bomb).  Refused
 * as pp_zip_inflate refuses them, nothing allocated for the caller, and
 * the estimates the decision uses stay as they were. */
static void test_hostile_inflate(void)
{
    size_t n = 4 * MIB;
    uint8_t *zeros = calloc(1, n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(zeros);
    void *z = NULL;
    size_t zlen = 0;
    CU_ASSERT_EQUAL_FATAL(pp_zip_deflate(zeros, n, 9, &z, &zlen), 0);
    free(zeros);
    pp_zpolicy zp = {.deflate_bps = 123, .inflate_bps = 456};
    void *out = (void *)&zp;
    size_t outlen = 7;
    char err[PP_ERR_LEN];
    /* Declared 4 MiB against a 1 MiB limit. */
    CU_ASSERT_EQUAL(pp_zpolicy_inflate(&zp, z, zlen, MIB, &out, &outlen, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "exceeds the limit"));
    /* Declared 1 KiB (within the limit), the stream holds 4 MiB. */
    pp_store32(z, 1024);
    CU_ASSERT_EQUAL(pp_zpolicy_inflate(&zp, z, zlen, MIB, &out, &outlen, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "more bytes than declared"));
    CU_ASSERT_PTR_EQUAL(out, (void *)&zp);
    CU_ASSERT_EQUAL(outlen, 7);
    CU_ASSERT_EQUAL(zp.deflate_bps, 123);
    CU_ASSERT_EQUAL(zp.inflate_bps, 456);
    free(z);
}

int pp_register_suites(void)
{
    static const pp_test tests[] = {
        {"--compress / pp_config.compress names", test_parse},
        {"fast link raw, slow link compressed, unmeasured raw", test_decide_link},
        {"compressing must win by the margin", test_decide_margin},
        {"incompressible data stays raw in every mode", test_decide_incompressible},
        {"forced modes: always, never", test_decide_forced},
        {"moving estimates of deflate and inflate", test_estimates},
        {"maybe: round trip, and raw where it does not pay", test_maybe_round_trip},
        {"no sample where compressing cannot pay", test_sample_skipped_on_fast_links},
        {"a lying compressed payload: refused, estimates unmoved", test_hostile_inflate},
        {NULL, NULL},
    };
    return pp_add_suite("pp_zpolicy", NULL, NULL, tests);
}
