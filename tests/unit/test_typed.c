/* SPDX-License-Identifier: MIT */
/* test_typed.c -- the typed layer of pp.h: pp_pack / pp_unpack round trips,
 * the encoding byte by byte, and every error with its pp_last_error() text.
 *
 * The letters n, L, D, pp_unpack_format and the type-checked v-forms
 * (pp_packv & co.) too; the suite "typed through a worker" submits to a
 * real ppworker (PP_WORKER, PP_TEST_TASKS from CTest; skipped without).
 *
 * Linked against libpp's public API only: struct pp_buf comes from
 * pp_buf.h so the test has a buffer to pack into, but no internal function
 * is called (a buffer is set up by hand and released with free()). */
#include <dlfcn.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <pp.h>

#include "cunit_main.h"
#include "pp_buf.h"

static pp_buf new_buf(size_t max)
{
    pp_buf b = {.max = max}; /* every other field zero: malloc'd, empty */
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

/* ---- nil and arrays: encoding ---- */

static void test_encoding_new_letters(void)
{
    static const long ls[] = {1, -2};
    static const double ds[] = {1.0};
    pp_buf b = new_buf(1024);
    CU_ASSERT_EQUAL(pp_pack(&b, "nLDL", ls, (size_t)2, ds, (size_t)1, (const long *)NULL,
                            (size_t)0), 0);
    static const uint8_t want[] = {
        'n',                                                 /* nil: the tag alone */
        'L', 0, 0, 0, 2,                                     /* 2 longs */
        0, 0, 0, 0, 0, 0, 0, 1,                              /* 1 */
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE,      /* -2 */
        'D', 0, 0, 0, 1,                                     /* 1 double */
        0x3F, 0xF0, 0, 0, 0, 0, 0, 0,                        /* 1.0 */
        'L', 0, 0, 0, 0,                                     /* empty */
    };
    CU_ASSERT_EQUAL_FATAL(b.len, sizeof want);
    CU_ASSERT_EQUAL(memcmp(b.data, want, sizeof want), 0);
    CU_ASSERT_EQUAL(b.data[b.len], 0); /* the buffer's NUL after the data */
    free_buf(&b);

    /* The v-forms encode exactly as the format functions. */
    pp_buf f = new_buf(1024), v = new_buf(1024);
    CU_ASSERT_EQUAL(pp_pack(&f, "ldsbnLD", -2L, 1.0, "ab", "\x00\xff", (size_t)2, ls,
                            (size_t)2, ds, (size_t)1), 0);
    CU_ASSERT_EQUAL(pp_packv(&v, -2, 1.0, "ab", pp_bytes("\x00\xff", 2), PP_NIL,
                             pp_longs(ls, 2), pp_doubles(ds, 1)), 0);
    CU_ASSERT_EQUAL_FATAL(f.len, v.len);
    CU_ASSERT_EQUAL(memcmp(f.data, v.data, f.len), 0);
    free_buf(&f);
    free_buf(&v);
}

/* ---- nil and arrays: round trips ---- */

static void test_array_roundtrip(void)
{
    static const long ls[] = {LONG_MIN, LONG_MIN + 1, -1, 0, 1, 40, LONG_MAX};
    static const double ds[] = {0.1, -0.0, 1e308, DBL_TRUE_MIN, INFINITY, -INFINITY, NAN};
    enum { NL = sizeof ls / sizeof ls[0], ND = sizeof ds / sizeof ds[0] };
    pp_buf b = new_buf(4096);
    CU_ASSERT_EQUAL(pp_pack(&b, "LlDL", ls, (size_t)NL, 7L, ds, (size_t)ND,
                            (const long *)NULL, (size_t)0), 0);
    long *gl = NULL, *empty = (long *)1, seven = 0;
    double *gd = NULL;
    size_t nl = 0, nd = 0, ne = 99;
    CU_ASSERT_EQUAL_FATAL(pp_unpack(b.data, b.len, "LlDL", &gl, &nl, &seven, &gd, &nd, &empty,
                                    &ne), 0);
    CU_ASSERT_EQUAL(nl, NL);
    CU_ASSERT_EQUAL(nd, ND);
    CU_ASSERT_EQUAL(seven, 7);
    CU_ASSERT_PTR_NULL(empty); /* count 0: NULL, nothing to free */
    CU_ASSERT_EQUAL(ne, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(gl);
    CU_ASSERT_PTR_NOT_NULL_FATAL(gd);
    CU_ASSERT_EQUAL(memcmp(gl, ls, sizeof ls), 0);
    CU_ASSERT_EQUAL(memcmp(gd, ds, sizeof ds), 0); /* bit-exact, NaN and -0.0 too */
    /* A copy, not a pointer into the data. */
    CU_ASSERT((const uint8_t *)gl < b.data || (const uint8_t *)gl >= b.data + b.len);
    free(gl);
    free(gd);

    /* NULL outputs: checked, not stored, nothing allocated. */
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "LlDL", NULL, NULL, NULL, NULL, &nd, NULL, NULL),
                    0);
    CU_ASSERT_EQUAL(nd, ND);
    free_buf(&b);

    /* A large array. */
    size_t n = 100000;
    long *big = malloc(n * sizeof *big);
    CU_ASSERT_PTR_NOT_NULL_FATAL(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (long)(i * 2654435761u) - 7;
    b = new_buf(1u << 20);
    CU_ASSERT_EQUAL(pp_pack(&b, "L", big, n), 0);
    CU_ASSERT_EQUAL(b.len, 5 + n * 8);
    long *back = NULL;
    size_t nb = 0;
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "L", &back, &nb), 0);
    CU_ASSERT(nb == n && back && memcmp(back, big, n * sizeof *big) == 0);
    free(back);
    free(big);
    free_buf(&b);
}

static void test_nil_roundtrip(void)
{
    pp_buf b = new_buf(256);
    CU_ASSERT_EQUAL(pp_pack(&b, "lnnl", 1L, 2L), 0);
    CU_ASSERT_EQUAL(b.len, 9 + 1 + 1 + 9);
    long x = 0, y = 0;
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "lnnl", &x, &y), 0);
    CU_ASSERT(x == 1 && y == 2);
    /* A nil is not a long, and a long is not a nil. */
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "lll", &x, &y, &y), -1);
    CU_ASSERT(error_says("value 1 is 'n' in the data, not 'l'"));
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "nnnl", &y), -1);
    CU_ASSERT(error_says("value 0 is 'l' in the data, not 'n'"));
    free_buf(&b);
    /* Nil alone. */
    CU_ASSERT_EQUAL(pp_pack(&b, "n"), 0);
    CU_ASSERT(b.len == 1 && b.data[0] == 'n');
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "n"), 0);
    free_buf(&b);
}

static void test_new_letters_va_list(void)
{
    static const double ds[] = {2.5, -3.0};
    pp_buf b = new_buf(256);
    CU_ASSERT_EQUAL(vpack_helper(&b, "nD", ds, (size_t)2), 0);
    double *got = NULL;
    size_t n = 0;
    CU_ASSERT_EQUAL(vunpack_helper(b.data, b.len, "nD", &got, &n), 0);
    CU_ASSERT(n == 2 && got && got[0] == 2.5 && got[1] == -3.0);
    free(got);
    free_buf(&b);
}

/* ---- nil and arrays: errors ---- */

static void test_err_array_pack(void)
{
    pp_buf b = new_buf(256);
    reset_error();
    CU_ASSERT_EQUAL(pp_pack(&b, "lL", 1L, (const long *)NULL, (size_t)3), -1);
    CU_ASSERT(error_says("NULL array for 'L' at position 1"));
    CU_ASSERT_EQUAL(b.len, 0); /* the 'l' before it was dropped again */
    reset_error();
    CU_ASSERT_EQUAL(pp_pack(&b, "D", (const double *)NULL, (size_t)1), -1);
    CU_ASSERT(error_says("NULL array for 'D'"));
    free_buf(&b);
    /* Over the buffer's limit: nothing of the call is left. */
    static const long ls[4] = {1, 2, 3, 4};
    b = new_buf(40);
    CU_ASSERT_EQUAL(pp_pack(&b, "l", 9L), 0);
    reset_error();
    CU_ASSERT_EQUAL(pp_pack(&b, "nL", ls, (size_t)4), -1); /* 9 + 1 + 37 > 40 */
    CU_ASSERT(error_says("exceed the buffer's limit"));
    CU_ASSERT_EQUAL(b.overflow, 1);
    CU_ASSERT_EQUAL(b.len, 9);
    long x = 0;
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "l", &x), 0); /* still well formed */
    CU_ASSERT_EQUAL(x, 9);
    free_buf(&b);
}

static void test_err_array_truncated(void)
{
    static const long ls[] = {5, 6, 7};
    pp_buf b = new_buf(256);
    CU_ASSERT_EQUAL(pp_pack(&b, "L", ls, (size_t)3), 0); /* 1 + 4 + 24 */
    for (size_t cut = 0; cut < b.len; cut++) {
        long *p = (long *)1;
        size_t n = 99;
        reset_error();
        CU_ASSERT_EQUAL(pp_unpack(b.data, cut, "L", &p, &n), -1);
        CU_ASSERT(error_says(cut ? "value 0 ('L') is truncated" : "value 0 ('L') is missing"));
        CU_ASSERT_PTR_NULL(p);
        CU_ASSERT_EQUAL(n, 0);
    }
    free_buf(&b);

    /* The count says more than the bytes hold. */
    static const uint8_t more[] = {'D', 0, 0, 0, 2, 0x3F, 0xF0, 0, 0, 0, 0, 0, 0};
    double *d = (double *)1;
    size_t n = 99;
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(more, sizeof more, "D", &d, &n), -1);
    CU_ASSERT(error_says("value 0 ('D') is truncated: it says 2 elements, 8 bytes follow"));
    CU_ASSERT(d == NULL && n == 0);

    /* count x 8 wraps around in 32-bit arithmetic to exactly the bytes that
     * follow (0x20000001 * 8 = 8 mod 2^32; 0xFFFFFFFF * 8 = 0xFFFFFFF8 with
     * a wrapped 1 + 4 + ...): still truncated. */
    static const uint8_t wrap8[] = {'L', 0x20, 0, 0, 0x01, 1, 2, 3, 4, 5, 6, 7, 8};
    static const uint8_t wrapmax[] = {'D', 0xFF, 0xFF, 0xFF, 0xFF, 1, 2, 3, 4, 5, 6, 7, 8};
    static const uint8_t wrap0[] = {'L', 0x20, 0, 0, 0x00};
    long *l = (long *)1;
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(wrap8, sizeof wrap8, "L", &l, &n), -1);
    CU_ASSERT(error_says("is truncated: it says 536870913 elements, 8 bytes follow"));
    CU_ASSERT_PTR_NULL(l);
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(wrapmax, sizeof wrapmax, "D", &d, &n), -1);
    CU_ASSERT(error_says("it says 4294967295 elements"));
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(wrap0, sizeof wrap0, "L", &l, &n), -1);
    CU_ASSERT(error_says("it says 536870912 elements, 0 bytes follow"));
    char fmt[8];
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack_format(wrap8, sizeof wrap8, fmt, sizeof fmt), -1);
    CU_ASSERT(error_says("truncated"));
}

static void test_err_array_tags(void)
{
    static const long ls[] = {1};
    pp_buf b = new_buf(256);
    CU_ASSERT_EQUAL(pp_pack(&b, "L", ls, (size_t)1), 0);
    double *d = (double *)1;
    size_t n = 5;
    long x = 3;
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "D", &d, &n), -1);
    CU_ASSERT(error_says("value 0 is 'L' in the data, not 'D'"));
    CU_ASSERT(d == NULL && n == 0);
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "l", &x), -1); /* an array is not a long */
    CU_ASSERT(error_says("not 'l'"));
    CU_ASSERT_EQUAL(x, 3);
    free_buf(&b);
    /* An unknown tag byte. */
    static const uint8_t junk[] = {'q', 0, 0, 0, 0};
    long *l = (long *)1;
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(junk, sizeof junk, "L", &l, &n), -1);
    CU_ASSERT(error_says("is 'q' in the data, not 'L'"));
    CU_ASSERT_PTR_NULL(l);
}

/* Whatever fails, every array output ends NULL/0 (pointers the caller may
 * free() without looking) and nothing leaks: ASan's leak checker runs over
 * this suite. */
static void test_err_arrays_released(void)
{
    static const long ls[] = {1, 2, 3};
    static const double ds[] = {4, 5};
    pp_buf b = new_buf(256);
    CU_ASSERT_EQUAL(pp_pack(&b, "LDs", ls, (size_t)3, ds, (size_t)2, "x"), 0);
    /* Break the string's terminator: the last value is malformed, the
     * arrays before it are fine. */
    uint8_t *bad = malloc(b.len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
    memcpy(bad, b.data, b.len);
    bad[b.len - 1] = 'y';
    long *l = (long *)1;
    double *d = (double *)1;
    size_t nl = 9, nd = 9;
    const char *s = NULL;
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(bad, b.len, "LDs", &l, &nl, &d, &nd, &s), -1);
    CU_ASSERT(error_says("string 2 is not properly terminated"));
    CU_ASSERT(l == NULL && nl == 0 && d == NULL && nd == 0 && s == NULL);
    free(bad);

    /* Arrays after the failure, and bytes left over. */
    l = (long *)1;
    d = (double *)1;
    nl = nd = 9;
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "LD", &l, &nl, &d, &nd), -1);
    CU_ASSERT(error_says("bytes left after the values of \"LD\""));
    CU_ASSERT(l == NULL && nl == 0 && d == NULL && nd == 0);
    long x = 5;
    l = (long *)1;
    d = (double *)1;
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "lDL", &x, &d, &nd, &l, &nl), -1);
    CU_ASSERT(l == NULL && d == NULL && x == 5);

    /* An unknown letter: the arrays before it are cleared too. */
    l = (long *)1;
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(b.data, b.len, "L?", &l, &nl), -1);
    CU_ASSERT(error_says("unknown format letter '?'"));
    CU_ASSERT_PTR_NULL(l);

    /* The same through pp_out. */
    l = (long *)1;
    d = (double *)1;
    reset_error();
    CU_ASSERT_EQUAL(pp_unpackv(b.data, b.len, pp_out_longs(&l, &nl), pp_out_doubles(&d, &nd),
                               &x), -1);
    CU_ASSERT(error_says("pp_unpack_values: value 2 is 's' in the data, not 'l'"));
    CU_ASSERT(l == NULL && d == NULL && nl == 0 && nd == 0);

    /* Many values (beyond the decoder's on-stack table). */
    pp_buf m = new_buf(4096);
    for (int i = 0; i < 40; i++)
        CU_ASSERT_EQUAL(pp_pack(&m, "L", ls, (size_t)3), 0);
    char fmt[41];
    memset(fmt, 'L', 40);
    fmt[40] = 0;
    long *a[40];
    size_t an[40];
    CU_ASSERT_EQUAL(pp_unpack(m.data, m.len, fmt, &a[0], &an[0], &a[1], &an[1], &a[2], &an[2],
                              &a[3], &an[3], &a[4], &an[4], &a[5], &an[5], &a[6], &an[6], &a[7],
                              &an[7], &a[8], &an[8], &a[9], &an[9], &a[10], &an[10], &a[11],
                              &an[11], &a[12], &an[12], &a[13], &an[13], &a[14], &an[14], &a[15],
                              &an[15], &a[16], &an[16], &a[17], &an[17], &a[18], &an[18], &a[19],
                              &an[19], &a[20], &an[20], &a[21], &an[21], &a[22], &an[22], &a[23],
                              &an[23], &a[24], &an[24], &a[25], &an[25], &a[26], &an[26], &a[27],
                              &an[27], &a[28], &an[28], &a[29], &an[29], &a[30], &an[30], &a[31],
                              &an[31], &a[32], &an[32], &a[33], &an[33], &a[34], &an[34], &a[35],
                              &an[35], &a[36], &an[36], &a[37], &an[37], &a[38], &an[38], &a[39],
                              &an[39]), 0);
    int right = 0;
    for (int i = 0; i < 40; i++) {
        right += an[i] == 3 && a[i] && a[i][2] == 3;
        free(a[i]);
    }
    CU_ASSERT_EQUAL(right, 40);
    fmt[39] = 'D'; /* the last one does not match: all 40 released */
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack(m.data, m.len, fmt, &a[0], &an[0], &a[1], &an[1], &a[2], &an[2],
                              &a[3], &an[3], &a[4], &an[4], &a[5], &an[5], &a[6], &an[6], &a[7],
                              &an[7], &a[8], &an[8], &a[9], &an[9], &a[10], &an[10], &a[11],
                              &an[11], &a[12], &an[12], &a[13], &an[13], &a[14], &an[14], &a[15],
                              &an[15], &a[16], &an[16], &a[17], &an[17], &a[18], &an[18], &a[19],
                              &an[19], &a[20], &an[20], &a[21], &an[21], &a[22], &an[22], &a[23],
                              &an[23], &a[24], &an[24], &a[25], &an[25], &a[26], &an[26], &a[27],
                              &an[27], &a[28], &an[28], &a[29], &an[29], &a[30], &an[30], &a[31],
                              &an[31], &a[32], &an[32], &a[33], &an[33], &a[34], &an[34], &a[35],
                              &an[35], &a[36], &an[36], &a[37], &an[37], &a[38], &an[38], &a[39],
                              &an[39]), -1);
    CU_ASSERT(error_says("value 39 is 'L' in the data, not 'D'"));
    right = 0;
    for (int i = 0; i < 40; i++)
        right += a[i] == NULL && an[i] == 0;
    CU_ASSERT_EQUAL(right, 40);
    free_buf(&m);
    free_buf(&b);
}

/* Out of memory in the middle of an unpack: the array allocated before the
 * one that failed is freed again.  A child process under an address-space
 * limit that leaves room for one copy of the two arrays but not both; it
 * then allocates that room again, which works only if the first copy was
 * freed.  Skipped under AddressSanitizer (its shadow memory needs more
 * address space than any such limit). */
#if defined(__SANITIZE_ADDRESS__)
#define TYPED_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define TYPED_ASAN 1
#endif
#endif

#ifndef TYPED_ASAN
static int oom_child(void)
{
    enum { N = 2u << 20 }; /* 16 MiB per array */
    long *src = calloc(N, sizeof *src);
    pp_buf b = new_buf(64u << 20);
    if (!src || pp_pack(&b, "LL", src, (size_t)N, src, (size_t)N) != 0)
        return 10;
    free(src);
    unsigned long pages = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f || fscanf(f, "%lu", &pages) != 1)
        return 11;
    fclose(f);
    size_t room = (size_t)N * sizeof(long) + (8u << 20); /* one array and some */
    struct rlimit rl = {(rlim_t)pages * (rlim_t)sysconf(_SC_PAGESIZE) + room, RLIM_INFINITY};
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        return 12;
    long *a = (long *)1, *c = (long *)1;
    size_t na = 9, nc = 9;
    if (pp_unpack(b.data, b.len, "LL", &a, &na, &c, &nc) != -1)
        return 13; /* the limit let both through: no test */
    if (!strstr(pp_last_error(), "out of memory for the 2097152 elements of value 1"))
        return 14;
    if (a != NULL || c != NULL || na != 0 || nc != 0)
        return 15;
    void *again = malloc((size_t)N * sizeof(long));
    if (!again)
        return 16; /* the first array leaked */
    free(again);
    free_buf(&b);
    return 0;
}
#endif

static void test_err_oom_releases(void)
{
#ifdef TYPED_ASAN
    fprintf(stderr, " [skipped under AddressSanitizer] ");
#else
    fflush(NULL);
    pid_t pid = fork();
    CU_ASSERT_FATAL(pid >= 0);
    if (pid == 0)
        _exit(oom_child());
    int st = 0;
    CU_ASSERT_EQUAL_FATAL(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fprintf(stderr, "\n  out-of-memory child: status 0x%x\n", (unsigned)st);
    CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
#endif
}

/* ---- pp_unpack_format ---- */

static void test_unpack_format(void)
{
    static const long ls[] = {1};
    pp_buf b = new_buf(256);
    CU_ASSERT_EQUAL(pp_pack(&b, "lnsbdLD", 1L, "s", "b", (size_t)1, 2.0, ls, (size_t)1,
                            (const double *)NULL, (size_t)0), 0);
    char fmt[16];
    CU_ASSERT_EQUAL(pp_unpack_format(b.data, b.len, fmt, sizeof fmt), 7);
    CU_ASSERT_STRING_EQUAL(fmt, "lnsbdLD");
    /* Exactly large enough, and one byte short. */
    CU_ASSERT_EQUAL(pp_unpack_format(b.data, b.len, fmt, 8), 7);
    CU_ASSERT_STRING_EQUAL(fmt, "lnsbdLD");
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack_format(b.data, b.len, fmt, 7), -1);
    CU_ASSERT(error_says("holds 7 values: their letters need 8 bytes, the output has 7"));
    CU_ASSERT_STRING_EQUAL(fmt, "");
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack_format(b.data, b.len, NULL, 0), -1);
    CU_ASSERT(error_says("need 8 bytes"));
    /* Nothing: no values. */
    CU_ASSERT_EQUAL(pp_unpack_format(NULL, 0, fmt, sizeof fmt), 0);
    CU_ASSERT_STRING_EQUAL(fmt, "");
    /* Malformed: a truncated value, an unknown tag, a bad string. */
    for (size_t cut = 1; cut < b.len; cut++) {
        int rc = pp_unpack_format(b.data, cut, fmt, sizeof fmt);
        /* Cuts between values leave a shorter valid tuple. */
        if (cut == 9 || cut == 10 || cut == 17 || cut == 23 || cut == 32 || cut == 45) {
            CU_ASSERT(rc > 0);
        } else {
            CU_ASSERT_EQUAL(rc, -1);
            CU_ASSERT_STRING_EQUAL(fmt, "");
        }
    }
    static const uint8_t junk[] = {'n', 0x7f};
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack_format(junk, sizeof junk, fmt, sizeof fmt), -1);
    CU_ASSERT(error_says("value 1 has the unknown tag 0x7f"));
    static const uint8_t noterm[] = {'s', 0, 0, 0, 1, 'a', 'b'};
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack_format(noterm, sizeof noterm, fmt, sizeof fmt), -1);
    CU_ASSERT(error_says("not properly terminated"));
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack_format(NULL, 3, fmt, sizeof fmt), -1);
    CU_ASSERT(error_says("NULL data"));
    free_buf(&b);

    /* What it is for: a task that takes a long or nil. */
    for (int i = 0; i < 2; i++) {
        b = new_buf(64);
        CU_ASSERT_EQUAL(i ? pp_packv(&b, 5) : pp_packv(&b, PP_NIL), 0);
        long v = -1;
        CU_ASSERT_EQUAL(pp_unpack_format(b.data, b.len, fmt, sizeof fmt), 1);
        if (strcmp(fmt, "n") == 0)
            v = 0;
        else
            CU_ASSERT_EQUAL(pp_unpackv(b.data, b.len, &v), 0);
        CU_ASSERT_EQUAL(v, i ? 5 : 0);
        free_buf(&b);
    }
}

/* ---- the v-forms ---- */

static void test_v_int_as_long(void)
{
    /* The user report: an int -1 through pp_submitf's "l" arrives as
     * 4294967295.  Through pp_packv it is converted at compile time. */
    int minus1 = -1;
    pp_buf b = new_buf(64), f = new_buf(64);
    CU_ASSERT_EQUAL(pp_packv(&b, minus1), 0);
    CU_ASSERT_EQUAL(pp_pack(&f, "l", -1L), 0);
    CU_ASSERT(b.len == f.len && memcmp(b.data, f.data, f.len) == 0);
    long v = 0;
    CU_ASSERT_EQUAL(pp_unpackv(b.data, b.len, &v), 0);
    CU_ASSERT_EQUAL(v, -1);
    free_buf(&b);
    free_buf(&f);

    /* Every integer type that fits in a long is an 'l'. */
    signed char sc = -5;
    unsigned char uc = 250;
    short sh = -300;
    unsigned short us = 65000;
    unsigned int ui = UINT_MAX;
    long long ll = LLONG_MIN;
    _Bool yes = 1;
    char c = 'A';
    b = new_buf(256);
    CU_ASSERT_EQUAL(pp_packv(&b, sc, uc, sh, us, ui, ll, yes, c), 0);
    long g[8];
    CU_ASSERT_EQUAL(pp_unpackv(b.data, b.len, &g[0], &g[1], &g[2], &g[3], &g[4], &g[5], &g[6],
                               &g[7]), 0);
    CU_ASSERT(g[0] == -5 && g[1] == 250 && g[2] == -300 && g[3] == 65000);
    CU_ASSERT(g[4] == (long)UINT_MAX && g[5] == LLONG_MIN && g[6] == 1 && g[7] == 'A');
    char fmt[16];
    CU_ASSERT_EQUAL(pp_unpack_format(b.data, b.len, fmt, sizeof fmt), 8);
    CU_ASSERT_STRING_EQUAL(fmt, "llllllll");
    free_buf(&b);
}

static void test_v_int_as_double(void)
{
    /* The user report: an int for "d" arrives as 0.  Here an int is an 'l'
     * whatever the receiver wants, and a receiver wanting a double says so
     * rather than reading 0. */
    int two = 2;
    pp_buf b = new_buf(64);
    CU_ASSERT_EQUAL(pp_packv(&b, two), 0);
    double d = 42.0;
    reset_error();
    CU_ASSERT_EQUAL(pp_unpackv(b.data, b.len, &d), -1);
    CU_ASSERT(error_says("value 0 is 'l' in the data, not 'd'"));
    CU_ASSERT_EQUAL(d, 42.0);
    free_buf(&b);
    /* Given as a double, the int arrives as its value. */
    b = new_buf(64);
    float f = 1.5f;
    CU_ASSERT_EQUAL(pp_packv(&b, pp_double(two), f, 3.25, pp_double(-7L)), 0);
    double d1 = 0, d2 = 0, d3 = 0, d4 = 0;
    CU_ASSERT_EQUAL(pp_unpackv(b.data, b.len, &d1, &d2, &d3, &d4), 0);
    CU_ASSERT(d1 == 2.0 && d2 == 1.5 && d3 == 3.25 && d4 == -7.0);
    free_buf(&b);
}

static void test_v_unsigned_range(void)
{
    unsigned long big = (unsigned long)LONG_MAX + 1;
    size_t huge = SIZE_MAX;
    unsigned long long ull = ULLONG_MAX;
    pp_buf b = new_buf(256);
    CU_ASSERT_EQUAL(pp_packv(&b, 1), 0);
    reset_error();
    CU_ASSERT_EQUAL(pp_packv(&b, 2, big), -1);
    CU_ASSERT(error_says("pp_pack_values: value 1 is 9223372036854775808, more than LONG_MAX"));
    CU_ASSERT_EQUAL(b.len, 9); /* nothing of the failed call */
    reset_error();
    CU_ASSERT_EQUAL(pp_packv(&b, huge), -1);
    CU_ASSERT(error_says("does not fit in a long"));
    reset_error();
    CU_ASSERT_EQUAL(pp_packv(&b, ull), -1);
    CU_ASSERT(error_says("more than LONG_MAX"));
    /* Up to LONG_MAX they are longs. */
    unsigned long top = LONG_MAX;
    size_t sz = 12345;
    CU_ASSERT_EQUAL(pp_packv(&b, top, sz), 0);
    long a = 0, t = 0, s = 0;
    CU_ASSERT_EQUAL(pp_unpackv(b.data, b.len, &a, &t, &s), 0);
    CU_ASSERT(a == 1 && t == LONG_MAX && s == 12345);
    free_buf(&b);
    /* pp_submitv packs first: the same message, no job. */
    reset_error();
    pp_job *j = pp_submitv((pp_server *)NULL, (pp_task)NULL, NULL, big);
    CU_ASSERT_PTR_NULL(j);
    CU_ASSERT(error_says("more than LONG_MAX"));
}

static void test_v_sixteen(void)
{
    static const long ls[] = {10, 20};
    static const double ds[] = {0.5};
    pp_buf b = new_buf(1024);
    char name[] = "name";
    CU_ASSERT_EQUAL(pp_packv(&b, 1, 2L, 3u, (short)4, 5.5, 6.5f, "seven", name,
                             pp_bytes("nine", 4), PP_NIL, pp_longs(ls, 2), pp_doubles(ds, 1),
                             (size_t)13, 'e', -15LL, (unsigned char)16), 0);
    long l1, l2, l3, l4, l13, l14, l15, l16;
    double d5, d6;
    const char *s7, *s8;
    const void *b9;
    size_t n9, n11, n12;
    long *a11;
    double *a12;
    CU_ASSERT_EQUAL_FATAL(pp_unpackv(b.data, b.len, &l1, &l2, &l3, &l4, &d5, &d6, &s7, &s8,
                                     pp_out_bytes(&b9, &n9), PP_OUT_NIL,
                                     pp_out_longs(&a11, &n11), pp_out_doubles(&a12, &n12), &l13,
                                     &l14, &l15, &l16), 0);
    CU_ASSERT(l1 == 1 && l2 == 2 && l3 == 3 && l4 == 4 && d5 == 5.5 && d6 == 6.5);
    CU_ASSERT(strcmp(s7, "seven") == 0 && strcmp(s8, "name") == 0);
    CU_ASSERT(n9 == 4 && memcmp(b9, "nine", 4) == 0);
    CU_ASSERT(n11 == 2 && a11[0] == 10 && a11[1] == 20);
    CU_ASSERT(n12 == 1 && a12[0] == 0.5);
    CU_ASSERT(l13 == 13 && l14 == 'e' && l15 == -15 && l16 == 16);
    free(a11);
    free(a12);
    char fmt[PP_VALUES_MAX + 1];
    CU_ASSERT_EQUAL(pp_unpack_format(b.data, b.len, fmt, sizeof fmt), 16);
    CU_ASSERT_STRING_EQUAL(fmt, "llllddssbnLDllll");
    free_buf(&b);
}

static void test_v_strings_bytes_arrays_nil(void)
{
    pp_buf b = new_buf(1024);
    const char *cs = "const";
    char buf[] = "array";
    static const uint8_t raw[] = {0, 1, 0};
    CU_ASSERT_EQUAL(pp_packv(&b, cs, buf, "", pp_bytes(raw, sizeof raw), pp_bytes(NULL, 0),
                             pp_longs(NULL, 0), pp_doubles(NULL, 0), PP_NIL), 0);
    const char *s1, *s2, *s3;
    const void *p1, *p2;
    size_t n1, n2, nl = 9, nd = 9;
    long *l = (long *)1;
    double *d = (double *)1;
    CU_ASSERT_EQUAL(pp_unpackv(b.data, b.len, &s1, &s2, &s3, pp_out_bytes(&p1, &n1),
                               pp_out_bytes(&p2, &n2), pp_out_longs(&l, &nl),
                               pp_out_doubles(&d, &nd), PP_OUT_NIL), 0);
    CU_ASSERT(strcmp(s1, "const") == 0 && strcmp(s2, "array") == 0 && strcmp(s3, "") == 0);
    CU_ASSERT(n1 == 3 && memcmp(p1, raw, 3) == 0 && n2 == 0);
    CU_ASSERT(l == NULL && nl == 0 && d == NULL && nd == 0);
    /* NULL outputs through pp_out: checked only. */
    CU_ASSERT_EQUAL(pp_unpackv(b.data, b.len, (const char **)NULL, &s2, &s3,
                               pp_out_bytes(NULL, &n1), pp_out_bytes(&p2, NULL),
                               pp_out_longs(NULL, NULL), pp_out_doubles(NULL, &nd), PP_OUT_NIL),
                    0);
    /* Too few, too many outputs. */
    reset_error();
    CU_ASSERT_EQUAL(pp_unpackv(b.data, b.len, &s1), -1);
    CU_ASSERT(error_says("pp_unpack_values: "));
    CU_ASSERT(error_says("bytes left after the 1 values"));
    free_buf(&b);

    /* A NULL string is refused at run time, before anything is appended. */
    const char *none = NULL;
    b = new_buf(64);
    reset_error();
    CU_ASSERT_EQUAL(pp_packv(&b, 1, none), -1);
    CU_ASSERT(error_says("NULL string for 's' at position 1"));
    CU_ASSERT_EQUAL(b.len, 0);
    reset_error();
    CU_ASSERT_EQUAL(pp_packv(&b, pp_longs(NULL, 2)), -1);
    CU_ASSERT(error_says("NULL array for 'L' at position 0"));
    reset_error();
    CU_ASSERT_EQUAL(pp_packv(&b, pp_bytes(NULL, 1)), -1);
    CU_ASSERT(error_says("NULL bytes for 'b'"));
    free_buf(&b);
}

/* pp_value and pp_out filled by hand (as C++ would), and their errors. */
static void test_values_by_hand(void)
{
    pp_value v[3];
    memset(v, 0, sizeof v);
    v[0].type = 'l';
    v[0].as.l = -9;
    v[1].type = 'n';
    v[2].type = 's';
    v[2].as.s = "hi";
    pp_buf b = new_buf(256);
    CU_ASSERT_EQUAL(pp_pack_values(&b, v, 3), 0);
    CU_ASSERT_EQUAL(pp_pack_values(&b, NULL, 0), 0);
    long l = 0;
    const char *s = NULL;
    pp_out o[3];
    memset(o, 0, sizeof o);
    o[0].type = 'l';
    o[0].to.l = &l;
    o[1].type = 'n';
    o[2].type = 's';
    o[2].to.s = &s;
    CU_ASSERT_EQUAL(pp_unpack_values(b.data, b.len, o, 3), 0);
    CU_ASSERT(l == -9 && s && strcmp(s, "hi") == 0);
    v[1].type = 'x';
    reset_error();
    CU_ASSERT_EQUAL(pp_pack_values(&b, v, 3), -1);
    CU_ASSERT(error_says("value 1 has the unknown type 'x'"));
    reset_error();
    CU_ASSERT_EQUAL(pp_pack_values(&b, NULL, 1), -1);
    CU_ASSERT(error_says("NULL values"));
    reset_error();
    CU_ASSERT_EQUAL(pp_pack_values(NULL, v, 1), -1);
    CU_ASSERT(error_says("NULL buffer"));
    o[1].type = 'u'; /* a pack-only type */
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack_values(b.data, b.len, o, 3), -1);
    CU_ASSERT(error_says("output 1 has an unknown type 0x75"));
    reset_error();
    CU_ASSERT_EQUAL(pp_unpack_values(b.data, b.len, NULL, 3), -1);
    CU_ASSERT(error_says("NULL outputs"));
    free_buf(&b);
}

/* ---- through a worker ---- */

static void *tasks_module;
static pp_task t_typed_sum;
static pp_server *server;

static pp_task task_named(const char *name)
{
    void *sym = dlsym(tasks_module, name);
    pp_task t = NULL;
    if (sym)
        memcpy(&t, &sym, sizeof t);
    return t;
}

static int worker_init(void)
{
    const char *mod = getenv("PP_TEST_TASKS");
    if (!mod || !getenv("PP_WORKER"))
        return 0; /* the tests skip */
    tasks_module = dlopen(mod, RTLD_NOW | RTLD_LOCAL);
    if (!tasks_module)
        return -1;
    t_typed_sum = task_named("t_typed_sum");
    server = pp_server_new(&(pp_config){.ncpus = 1});
    return t_typed_sum && server ? 0 : -1;
}

static int worker_clean(void)
{
    pp_server_free(server);
    if (tasks_module)
        dlclose(tasks_module);
    return 0;
}

static void test_worker_values(void)
{
    if (!server) {
        fprintf(stderr, " [skipped: no PP_WORKER / PP_TEST_TASKS] ");
        return;
    }
    long xs[] = {1, -2, 3, 40};
    int k = -1;
    pp_job *a = pp_submitv(server, t_typed_sum, NULL, pp_longs(xs, 4), k);
    pp_job *n = pp_submitv(server, t_typed_sum, NULL, pp_longs(xs, 4), PP_NIL);
    pp_job *e = pp_submitv(server, t_typed_sum, NULL, pp_longs(NULL, 0), PP_NIL);
    pp_job *bad = pp_submitv(server, t_typed_sum, NULL, 1.5);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
    long sum = 0;
    double *halves = NULL;
    size_t nh = 0;
    const char *got = NULL;
    CU_ASSERT_EQUAL(pp_job_unpackv(a, &sum, pp_out_doubles(&halves, &nh), &got), 0);
    CU_ASSERT_EQUAL(sum, 41);
    CU_ASSERT(nh == 4 && halves && halves[0] == 0.5 && halves[1] == -1.0 && halves[3] == 20.0);
    CU_ASSERT(got && strcmp(got, "Ll") == 0);
    free(halves);
    halves = NULL;
    CU_ASSERT_EQUAL(pp_job_unpackv(n, &sum, pp_out_doubles(&halves, &nh), &got), 0);
    CU_ASSERT_EQUAL(sum, 42);
    CU_ASSERT(got && strcmp(got, "Ln") == 0);
    free(halves);
    /* The format form reads the same result. */
    CU_ASSERT_EQUAL(pp_job_unpack(e, "lDs", &sum, &halves, &nh, &got), 0);
    CU_ASSERT(sum == 0 && halves == NULL && nh == 0 && got && strcmp(got, "Ln") == 0);
    /* The task refused a 'd': its message comes back, the arrays are NULL/0. */
    halves = (double *)1;
    nh = 7;
    CU_ASSERT_EQUAL(pp_job_unpackv(bad, &sum, pp_out_doubles(&halves, &nh), &got), -1);
    CU_ASSERT(error_says("value 0 is 'd' in the data, not 'L'"));
    CU_ASSERT(halves == NULL && nh == 0);
    halves = (double *)1;
    CU_ASSERT_EQUAL(pp_job_unpack(bad, "lDs", &sum, &halves, &nh, &got), -1);
    CU_ASSERT(error_says("failed"));
    CU_ASSERT(halves == NULL && nh == 0);
    pp_job_free(a);
    pp_job_free(n);
    pp_job_free(e);
    pp_job_free(bad);

    /* pp_submit_values with an array of values. */
    pp_value v[] = {pp_longs(xs, 2), PP_VALUE(100)};
    pp_job *j = pp_submit_values(server, t_typed_sum, NULL, v, 2);
    pp_out o[] = {PP_OUT(&sum), pp_out_doubles(NULL, &nh), PP_OUT(&got)};
    CU_ASSERT_EQUAL(pp_job_unpack_values(j, o, 3), 0);
    CU_ASSERT(sum == 99 && nh == 2);
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
    static const pp_test arrays[] = {
        {"n, L, D encodings are byte-exact", test_encoding_new_letters},
        {"array round trips (extremes, empty, NULL outputs, large)", test_array_roundtrip},
        {"nil round trips", test_nil_roundtrip},
        {"n, L, D through va_list", test_new_letters_va_list},
        {"packing arrays: NULL, limit", test_err_array_pack},
        {"truncated arrays, counts that wrap", test_err_array_truncated},
        {"arrays with the wrong tag", test_err_array_tags},
        {"failed unpacks release every array", test_err_arrays_released},
        {"out of memory releases the arrays", test_err_oom_releases},
        {"pp_unpack_format", test_unpack_format},
        {NULL, NULL},
    };
    static const pp_test vforms[] = {
        {"an int arrives as a long", test_v_int_as_long},
        {"an int is no double unless said", test_v_int_as_double},
        {"unsigned above LONG_MAX fails", test_v_unsigned_range},
        {"16 values round-trip", test_v_sixteen},
        {"strings, bytes, arrays, nil", test_v_strings_bytes_arrays_nil},
        {"pp_value, pp_out by hand", test_values_by_hand},
        {NULL, NULL},
    };
    static const pp_test worker[] = {
        {"pp_submitv, pp_job_unpackv, pp_submit_values", test_worker_values},
        {NULL, NULL},
    };
    if (pp_add_suite("typed round trips", NULL, NULL, trips) != 0 ||
        pp_add_suite("typed errors", NULL, NULL, errs) != 0 ||
        pp_add_suite("typed nil and arrays", NULL, NULL, arrays) != 0 ||
        pp_add_suite("typed v-forms", NULL, NULL, vforms) != 0 ||
        pp_add_suite("typed through a worker", worker_init, worker_clean, worker) != 0)
        return -1;
    return 0;
}
