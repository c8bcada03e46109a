/* SPDX-License-Identifier: MIT */
/* test_typed.c -- the typed layer of pp.h: pp_pack / pp_unpack round trips,
 * the encoding byte by byte, and every error with its pp_last_error() text.
 *
 * Linked against libpp's public API only: struct pp_buf comes from
 * pp_buf.h so the test has a buffer to pack into, but no internal function
 * is called (a buffer is set up by hand and released with free()). */
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <pp.h>

#include "cunit_main.h"
#include "pp_buf.h"

static pp_buf new_buf(size_t max)
{
    pp_buf b;
    b.data = NULL;
    b.len = 0;
    b.cap = 0;
    b.max = max;
    b.overflow = 0;
    return b;
}

static void free_buf(pp_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Checks that pp_last_error() contains `needle`; prints it if not. */
static int error_says(const char *needle)
{
    const char *e = pp_last_error();
    if (e && strstr(e, needle))
        return 1;
    fprintf(stderr, "\n  pp_last_error() = \"%s\", expected \"%s\" in it\n", e ? e : "(null)",
            needle);
    return 0;
}

/* Makes pp_last_error() hold something unrelated, so that a later check
 * sees the message of the call under test. */
static void reset_error(void)
{
    pp_buf b = new_buf(16);
    CU_ASSERT_EQUAL(pp_pack(&b, "?"), -1);
    CU_ASSERT(error_says("'?'"));
    free_buf(&b);
}

/* ---- encoding ---- */

static void test_encoding_bytes(void)
{
    pp_buf b = new_buf(1024);
    CU_ASSERT_EQUAL(pp_pack(&b, "ldsb", -2L, 1.0, "ab", "\x00\xff", (size_t)2), 0);
    static const uint8_t want[] = {
        'l', 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, /* -2 */
        'd', 0x3F, 0xF0, 0, 0, 0, 0, 0, 0,                   /* 1.0 */
        's', 0, 0, 0, 2, 'a', 'b', 0,                        /* "ab" + NUL */
        'b', 0, 0, 0, 2, 0x00, 0xFF,                         /* 2 bytes */
    };
    CU_ASSERT_EQUAL_FATAL(b.len, sizeof want);
    CU_ASSERT_EQUAL(memcmp(b.data, want, sizeof want), 0);
    free_buf(&b);

    /* Appends after what the buffer already holds. */
    b = new_buf(1024);
    CU_ASSERT_EQUAL(pp_buf_append(&b, "XY", 2), 0);
    CU_ASSERT_EQUAL(pp_pack(&b, "l", 1L), 0);
    static const uint8_t want2[] = {'X', 'Y', 'l', 0, 0, 0, 0, 0, 0, 0, 1};
    CU_ASSERT_EQUAL_FATAL(b.len, sizeof want2);
    CU_ASSERT_EQUAL(memcmp(b.data, want2, sizeof want2), 0);
    free_buf(&b);

    /* Empty format: nothing. */
    b = new_buf(1024);
    CU_ASSERT_EQUAL(pp_pack(&b, ""), 0);
    CU_ASSERT_EQUAL(b.len, 0);
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, ""), 0);
    CU_ASSERT_EQUAL(pp_unpack(NULL, 0, ""), 0);
    free_buf(&b);
}

/* ---- round trips ---- */

static void test_long_roundtrip(void)
{
    static const long vals[] = {LONG_MIN, LONG_MIN + 1, -1, 0, 1, 40, LONG_MAX};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        pp_buf b = new_buf(64);
        CU_ASSERT_EQUAL(pp_pack(&b, "l", vals[i]), 0);
        CU_ASSERT_EQUAL(b.len, 9);
        long v = 12345;
        CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "l", &v), 0);
        CU_ASSERT_EQUAL(v, vals[i]);
        free_buf(&b);
    }
}

static void test_double_roundtrip(void)
{
    static const double vals[] = {0.1, -0.0, 0.0, 1e308, -1e-308, DBL_MIN, DBL_TRUE_MIN,
                                  DBL_MAX, INFINITY, -INFINITY};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        pp_buf b = new_buf(64);
        CU_ASSERT_EQUAL(pp_pack(&b, "d", vals[i]), 0);
        double v = 42.0;
        CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "d", &v), 0);
        CU_ASSERT(memcmp(&v, &vals[i], sizeof v) == 0); /* bit-exact */
        free_buf(&b);
    }
    /* -0.0 keeps its sign; inf stays inf. */
    pp_buf b = new_buf(64);
    CU_ASSERT_EQUAL(pp_pack(&b, "ddd", -0.0, INFINITY, NAN), 0);
    double z = 1, inf = 0, nan = 0;
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "ddd", &z, &inf, &nan), 0);
    CU_ASSERT(z == 0.0 && signbit(z));
    CU_ASSERT(isinf(inf) && inf > 0);
    CU_ASSERT(isnan(nan));
    free_buf(&b);
    b = new_buf(64);
    CU_ASSERT_EQUAL(pp_pack(&b, "d", 0.1), 0);
    double tenth = 0;
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "d", &tenth), 0);
    CU_ASSERT_EQUAL(tenth, 0.1);
    free_buf(&b);
}

static void test_string_roundtrip(void)
{
    static const char *const vals[] = {
        "",
        "a",
        "hello world",
        "caf\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x98\x80 \xe6\x97\xa5\xe6\x9c\xac", /* UTF-8 */
    };
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        pp_buf b = new_buf(1024);
        CU_ASSERT_EQUAL(pp_pack(&b, "s", vals[i]), 0);
        CU_ASSERT_EQUAL(b.len, 1 + 4 + strlen(vals[i]) + 1);
        const char *s = NULL;
        CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "s", &s), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        CU_ASSERT_STRING_EQUAL(s, vals[i]);
        /* Points into the encoded bytes. */
        CU_ASSERT(s >= (const char *)b.data && s < (const char *)b.data + b.len);
        free_buf(&b);
    }
    /* A long string. */
    size_t n = 100000;
    char *big = malloc(n + 1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('A' + i % 26);
    big[n] = 0;
    pp_buf b = new_buf(1u << 20);
    CU_ASSERT_EQUAL(pp_pack(&b, "s", big), 0);
    const char *s = NULL;
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "s", &s), 0);
    CU_ASSERT(s && strcmp(s, big) == 0);
    free_buf(&b);
    free(big);
}

static void test_bytes_roundtrip(void)
{
    pp_buf b = new_buf(1024);
    static const uint8_t nuls[] = {0, 1, 0, 0, 2, 0xFF, 0};
    CU_ASSERT_EQUAL(pp_pack(&b, "bbb", (const void *)NULL, (size_t)0, "xyz", (size_t)0,
                            (const void *)nuls, sizeof nuls), 0);
    const void *p0 = (const void *)1, *p1 = NULL, *p2 = NULL;
    size_t n0 = 99, n1 = 99, n2 = 0;
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "bbb", &p0, &n0, &p1, &n1, &p2, &n2), 0);
    CU_ASSERT_EQUAL(n0, 0);
    CU_ASSERT_EQUAL(n1, 0);
    CU_ASSERT_EQUAL_FATAL(n2, sizeof nuls);
    CU_ASSERT_EQUAL(memcmp(p2, nuls, sizeof nuls), 0);
    CU_ASSERT((const uint8_t *)p2 >= b.data && (const uint8_t *)p2 < b.data + b.len);
    free_buf(&b);
}

static void test_mixed_tuples(void)
{
    pp_buf b = new_buf(4096);
    static const uint8_t raw[] = {9, 0, 8};
    CU_ASSERT_EQUAL(pp_pack(&b, "ldsb", -7L, 2.5, "name", (const void *)raw, sizeof raw), 0);
    CU_ASSERT_EQUAL(pp_pack(&b, "ssllbdd", "", "x\xc3\xa9", LONG_MAX, LONG_MIN,
                            (const void *)raw, (size_t)1, -1.5, 1e-9), 0);
    long l1 = 0, l2 = 0, l3 = 0;
    double d1 = 0, d2 = 0, d3 = 0;
    const char *s1 = NULL, *s2 = NULL, *s3 = NULL;
    const void *b1 = NULL, *b2 = NULL;
    size_t n1 = 0, n2 = 0;
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "ldsbssllbdd", &l1, &d1, &s1, &b1, &n1, &s2, &s3,
                              &l2, &l3, &b2, &n2, &d2, &d3), 0);
    CU_ASSERT_EQUAL(l1, -7);
    CU_ASSERT_EQUAL(d1, 2.5);
    CU_ASSERT(s1 && strcmp(s1, "name") == 0);
    CU_ASSERT(n1 == 3 && b1 && memcmp(b1, raw, 3) == 0);
    CU_ASSERT(s2 && strcmp(s2, "") == 0);
    CU_ASSERT(s3 && strcmp(s3, "x\xc3\xa9") == 0);
    CU_ASSERT_EQUAL(l2, LONG_MAX);
    CU_ASSERT_EQUAL(l3, LONG_MIN);
    CU_ASSERT(n2 == 1 && b2 && ((const uint8_t *)b2)[0] == 9);
    CU_ASSERT_EQUAL(d2, -1.5);
    CU_ASSERT_EQUAL(d3, 1e-9);
    free_buf(&b);
}

/* pp_vpack / pp_vunpack through a va_list. */
static int vpack_helper(pp_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = pp_vpack(b, fmt, ap);
    va_end(ap);
    return rc;
}

static int vunpack_helper(const void *d, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = pp_vunpack(d, n, fmt, ap);
    va_end(ap);
    return rc;
}

static void test_va_list_forms(void)
{
    pp_buf b = new_buf(256);
    CU_ASSERT_EQUAL(vpack_helper(&b, "sl", "v", 5L), 0);
    const char *s = NULL;
    long v = 0;
    CU_ASSERT_EQUAL(vunpack_helper(b.data, b.len, "sl", &s, &v), 0);
    CU_ASSERT(s && strcmp(s, "v") == 0);
    CU_ASSERT_EQUAL(v, 5);
    CU_ASSERT_EQUAL(vunpack_helper(b.data, b.len, "s", &s), -1);
    CU_ASSERT(error_says("bytes left"));
    free_buf(&b);
}

/* ---- errors ---- */

static void test_err_unknown_letter(void)
{
    pp_buf b = new_buf(256);
    reset_error();
    CU_ASSERT_EQUAL(pp_pack(&b, "lx", 1L), -1);
    CU_ASSERT(error_says("unknown format letter 'x'"));
    free_buf(&b);

    CU_ASSERT_EQUAL(pp_pack(&b, "l", 1L), 0);
    long v;
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "q", &v), -1);
    CU_ASSERT(error_says("unknown format letter 'q'"));
    free_buf(&b);
}

static void test_err_wrong_tag(void)
{
    pp_buf b = new_buf(256);
    CU_ASSERT_EQUAL(pp_pack(&b, "l", 7L), 0);
    double d = 3.0;
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "d", &d), -1);
    CU_ASSERT(error_says("is 'l' in the data, not 'd'"));
    CU_ASSERT_EQUAL(d, 3.0); /* not misread */
    const char *s = NULL;
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "s", &s), -1);
    CU_ASSERT(error_says("not 's'"));
    CU_ASSERT_PTR_NULL(s);
    free_buf(&b);

    /* A second value with the wrong tag names its position. */
    CU_ASSERT_EQUAL(pp_pack(&b, "ls", 1L, "str"), 0);
    long l;
    const void *p;
    size_t n;
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "lb", &l, &p, &n), -1);
    CU_ASSERT(error_says("value 1 is 's' in the data, not 'b'"));
    free_buf(&b);

    /* A tag byte that is no letter at all. */
    static const uint8_t junk[] = {0x01, 0, 0, 0, 0, 0, 0, 0, 0};
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(junk, sizeof junk, "l", &l), -1);
    CU_ASSERT(error_says("not 'l'"));
}

static void test_err_fewer_values(void)
{
    pp_buf b = new_buf(256);
    CU_ASSERT_EQUAL(pp_pack(&b, "l", 1L), 0);
    long a, c;
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "ll", &a, &c), -1);
    CU_ASSERT(error_says("value 1 ('l') is missing"));
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(NULL, 0, "s", NULL), -1);
    CU_ASSERT(error_says("is missing"));
    free_buf(&b);
}

static void test_err_extra_bytes(void)
{
    pp_buf b = new_buf(256);
    CU_ASSERT_EQUAL(pp_pack(&b, "ll", 1L, 2L), 0);
    long a;
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "l", &a), -1);
    CU_ASSERT(error_says("9 bytes left"));
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "", &a), -1);
    CU_ASSERT(error_says("18 bytes left"));
    free_buf(&b);
}

static void test_err_truncated(void)
{
    pp_buf b = new_buf(256);
    CU_ASSERT_EQUAL(pp_pack(&b, "s", "hello"), 0); /* 1 + 4 + 5 + 1 = 11 */
    const char *s;
    for (size_t cut = 1; cut < b.len; cut++) {
        reset_error();
        CU_ASSERT_EQUAL(pp_unpack(b.data, cut, "s", &s), -1);
        CU_ASSERT(error_says("value 0 ('s') is truncated"));
    }
    free_buf(&b);

    CU_ASSERT_EQUAL(pp_pack(&b, "lb", 5L, "abcdef", (size_t)6), 0);
    long l;
    const void *p;
    size_t n;
    for (size_t cut = 10; cut < b.len; cut++) {
        reset_error();
        CU_ASSERT_EQUAL(pp_unpack(b.data, cut, "lb", &l, &p, &n), -1);
        CU_ASSERT(error_says("value 1 ('b') is truncated"));
    }
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(b.data, 5, "l", &l), -1);
    CU_ASSERT(error_says("value 0 ('l') is truncated"));
    free_buf(&b);

    /* A length near 4 GiB in a short buffer: truncated, no wrap-around. */
    static const uint8_t huge_b[] = {'b', 0xFF, 0xFF, 0xFF, 0xFF, 'x'};
    static const uint8_t huge_s[] = {'s', 0xFF, 0xFF, 0xFF, 0xFF, 'x', 0};
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(huge_b, sizeof huge_b, "b", &p, &n), -1);
    CU_ASSERT(error_says("truncated"));
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(huge_s, sizeof huge_s, "s", &s), -1);
    CU_ASSERT(error_says("truncated"));
}

static void test_err_unterminated(void)
{
    const char *s = NULL;
    /* The byte after the string is not a NUL. */
    static const uint8_t noterm[] = {'s', 0, 0, 0, 3, 'a', 'b', 'c', 'x'};
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(noterm, sizeof noterm, "s", &s), -1);
    CU_ASSERT(error_says("string 0 is not properly terminated"));
    CU_ASSERT_PTR_NULL(s);
    /* A NUL inside the string. */
    static const uint8_t inner[] = {'s', 0, 0, 0, 3, 'a', 0, 'c', 0};
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(inner, sizeof inner, "s", &s), -1);
    CU_ASSERT(error_says("not properly terminated"));
    CU_ASSERT_PTR_NULL(s);
    /* Well formed, for contrast. */
    static const uint8_t good[] = {'s', 0, 0, 0, 3, 'a', 'b', 'c', 0};
    CU_ASSERT_EQUAL(pp_unpack(good, sizeof good, "s", &s), 0);
    CU_ASSERT(s && strcmp(s, "abc") == 0);
}

static void test_err_null_args(void)
{
    pp_buf b = new_buf(256);
    const char *nostr = NULL;
    reset_error();
    CU_ASSERT_EQUAL(pp_pack(&b, "ls", 1L, nostr), -1);
    CU_ASSERT(error_says("NULL string for 's' at position 1"));
    free_buf(&b);
    reset_error();
    CU_ASSERT_EQUAL(pp_pack(&b, "b", (const void *)NULL, (size_t)3), -1);
    CU_ASSERT(error_says("NULL bytes for 'b'"));
    free_buf(&b);
    reset_error();
    CU_ASSERT_EQUAL(pp_pack(NULL, "l", 1L), -1);
    CU_ASSERT(error_says("NULL buffer"));
    const char *nofmt = NULL;
    reset_error();
    CU_ASSERT_EQUAL(pp_pack(&b, nofmt), -1);
    CU_ASSERT(error_says("NULL format"));
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack("x", 1, nofmt), -1);
    CU_ASSERT(error_says("NULL format"));
    long l;
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(NULL, 9, "l", &l), -1);
    CU_ASSERT(error_says("NULL data"));
    free_buf(&b);
}

static void test_err_limit(void)
{
    pp_buf b = new_buf(20);
    reset_error();
    CU_ASSERT_EQUAL(pp_pack(&b, "ll", 1L, 2L), 0); /* 18 bytes */
    CU_ASSERT_EQUAL(pp_pack(&b, "l", 3L), -1);
    CU_ASSERT(error_says("exceed the buffer's limit"));
    CU_ASSERT_EQUAL(b.overflow, 1);
    free_buf(&b);
    b = new_buf(8);
    reset_error();
    CU_ASSERT_EQUAL(pp_pack(&b, "s", "0123456789"), -1);
    CU_ASSERT(error_says("limit"));
    free_buf(&b);
}

/* pp_submitf() packs first: a bad format fails before any server is
 * needed, with the packer's message. */
static void test_submitf_bad_format(void)
{
    reset_error();
    pp_job *j = pp_submitf(NULL, NULL, NULL, "lz", 1L);
    CU_ASSERT_PTR_NULL(j);
    CU_ASSERT(error_says("unknown format letter 'z'"));
    pp_job_free(j);
}

int pp_register_suites(void)
{
    static const pp_test trips[] = {
        {"encoding is byte-exact", test_encoding_bytes},
        {"long round trips", test_long_roundtrip},
        {"double round trips (-0.0, inf, NaN)", test_double_roundtrip},
        {"string round trips (empty, UTF-8, long)", test_string_roundtrip},
        {"bytes round trips (empty, with NULs)", test_bytes_roundtrip},
        {"mixed tuples", test_mixed_tuples},
        {"va_list forms", test_va_list_forms},
        {NULL, NULL},
    };
    static const pp_test errs[] = {
        {"unknown letter", test_err_unknown_letter},
        {"wrong tag", test_err_wrong_tag},
        {"fewer values than the format", test_err_fewer_values},
        {"extra bytes left", test_err_extra_bytes},
        {"truncated values", test_err_truncated},
        {"unterminated string", test_err_unterminated},
        {"NULL arguments", test_err_null_args},
        {"buffer limit", test_err_limit},
        {"pp_submitf with a bad format", test_submitf_bad_format},
        {NULL, NULL},
    };
    if (pp_add_suite("typed round trips", NULL, NULL, trips) != 0 ||
        pp_add_suite("typed errors", NULL, NULL, errs) != 0)
        return -1;
    return 0;
}
