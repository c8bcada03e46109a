/* SPDX-License-Identifier: MIT */
/* test_buf.c -- pp_buf: growth, the NUL after the data, the hard cap,
 * reserve, consume, take, reset, and the public append/printf. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cunit_main.h"
#include "pp_buf.h"
#include "pp_common.h"
#include "pp_copy.h"

/* The NUL the buffer keeps after its data (not counted in len). */
static int nul_after(const pp_buf *b)
{
    return b->data != NULL && b->cap > b->len && b->data[b->len] == 0;
}

static void test_init_empty(void)
{
    pp_buf b;
    memset(&b, 0xa5, sizeof b);
    pp_buf_init(&b, 123);
    CU_ASSERT_PTR_NULL(b.data);
    CU_ASSERT_EQUAL(b.len, 0);
    CU_ASSERT_EQUAL(b.cap, 0);
    CU_ASSERT_EQUAL(b.max, 123);
    CU_ASSERT_EQUAL(b.overflow, 0);
}

static void test_append_basic(void)
{
    pp_buf b;
    pp_buf_init(&b, 1024);
    CU_ASSERT_EQUAL(pp_buf_append(&b, "abc", 3), 0);
    CU_ASSERT_EQUAL(b.len, 3);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b.data);
    CU_ASSERT_EQUAL(memcmp(b.data, "abc", 3), 0);
    CU_ASSERT(nul_after(&b));
    CU_ASSERT(b.cap >= 4);

    /* Binary data with NULs inside. */
    static const uint8_t bin[] = {0, 1, 0, 0xff, 0};
    CU_ASSERT_EQUAL(pp_buf_append(&b, bin, sizeof bin), 0);
    CU_ASSERT_EQUAL(b.len, 3 + sizeof bin);
    CU_ASSERT_EQUAL(memcmp(b.data + 3, bin, sizeof bin), 0);
    CU_ASSERT(nul_after(&b));

    /* A zero-length append (even with NULL data) changes nothing. */
    size_t len = b.len;
    CU_ASSERT_EQUAL(pp_buf_append(&b, NULL, 0), 0);
    CU_ASSERT_EQUAL(pp_buf_append(&b, "x", 0), 0);
    CU_ASSERT_EQUAL(b.len, len);
    CU_ASSERT(nul_after(&b));
    CU_ASSERT_EQUAL(b.overflow, 0);
    pp_buf_reset(&b);
}

static void test_append_grows(void)
{
    pp_buf b;
    pp_buf_init(&b, 1u << 20);
    uint8_t chunk[100];
    for (int i = 0; i < 1000; i++) {
        memset(chunk, (uint8_t)i, sizeof chunk);
        if (pp_buf_append(&b, chunk, sizeof chunk) != 0) {
            CU_FAIL("append failed");
            break;
        }
    }
    CU_ASSERT_EQUAL(b.len, 100000);
    CU_ASSERT(b.cap > b.len);
    int ok = 1;
    for (size_t i = 0; i < b.len && ok; i++)
        ok = b.data[i] == (uint8_t)(i / 100);
    CU_ASSERT(ok);
    CU_ASSERT(nul_after(&b));
    pp_buf_reset(&b);
}

/* An append large enough to be copied on several threads (pp_copy), after
 * a few bytes: every byte in place, the NUL after them. */
static void test_append_large(void)
{
    size_t n = 2 * PP_COPY_PART_MIN + 4099;
    uint8_t *src = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(src);
    for (size_t i = 0; i < n; i++)
        src[i] = (uint8_t)(i * 7 + i / 4096);
    pp_buf b;
    pp_buf_init(&b, n + 3);
    CU_ASSERT_EQUAL(pp_buf_append(&b, "abc", 3), 0);
    CU_ASSERT_EQUAL_FATAL(pp_buf_append(&b, src, n), 0);
    CU_ASSERT_EQUAL(b.len, n + 3);
    CU_ASSERT(memcmp(b.data, "abc", 3) == 0);
    CU_ASSERT(memcmp(b.data + 3, src, n) == 0);
    CU_ASSERT(nul_after(&b));
    pp_buf_reset(&b);
    free(src);
}

static void test_printf_short(void)
{
    pp_buf b;
    pp_buf_init(&b, 1024);
    CU_ASSERT_EQUAL(pp_buf_printf(&b, "%s=%d", "x", 42), 0);
    CU_ASSERT_EQUAL(b.len, 4);
    CU_ASSERT_STRING_EQUAL((char *)b.data, "x=42");
    CU_ASSERT_EQUAL(pp_buf_printf(&b, "[%05.1f]", 2.25), 0);
    CU_ASSERT_STRING_EQUAL((char *)b.data, "x=42[002.2]");
    CU_ASSERT_EQUAL(b.len, strlen("x=42[002.2]"));
    /* Empty output. */
    CU_ASSERT_EQUAL(pp_buf_printf(&b, "%s", ""), 0);
    CU_ASSERT_EQUAL(b.len, strlen("x=42[002.2]"));
    CU_ASSERT(nul_after(&b));
    pp_buf_reset(&b);
}

/* Outputs around and above the 256-byte stack buffer of pp_buf_printf. */
static void test_printf_long(void)
{
    static const size_t sizes[] = {255, 256, 257, 300, 5000};
    for (size_t k = 0; k < PP_ARRAY_LEN(sizes); k++) {
        size_t n = sizes[k];
        char *s = malloc(n + 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        for (size_t i = 0; i < n; i++)
            s[i] = (char)('a' + i % 26);
        s[n] = 0;
        pp_buf b;
        pp_buf_init(&b, 1u << 20);
        CU_ASSERT_EQUAL(pp_buf_append(&b, "<", 1), 0);
        CU_ASSERT_EQUAL(pp_buf_printf(&b, "%s|%d", s, 7), 0);
        CU_ASSERT_EQUAL(b.len, 1 + n + 2);
        CU_ASSERT_EQUAL(b.data[0], '<');
        CU_ASSERT_EQUAL(memcmp(b.data + 1, s, n), 0);
        CU_ASSERT_EQUAL(memcmp(b.data + 1 + n, "|7", 2), 0);
        CU_ASSERT(nul_after(&b));
        CU_ASSERT_EQUAL(strlen((char *)b.data), b.len);
        CU_ASSERT_EQUAL(b.overflow, 0);
        pp_buf_reset(&b);
        free(s);
    }
}

static void test_null_args(void)
{
    pp_buf b;
    pp_buf_init(&b, 100);
    CU_ASSERT_EQUAL(pp_buf_append(NULL, "x", 1), -1);
    CU_ASSERT_EQUAL(pp_buf_append(&b, NULL, 1), -1);
    CU_ASSERT_EQUAL(pp_buf_printf(NULL, "x"), -1);
    /* A NULL format through a pointer, so the compiler does not object. */
    int (*volatile pf)(pp_buf *, const char *, ...) = pp_buf_printf;
    CU_ASSERT_EQUAL(pf(&b, NULL), -1);
    CU_ASSERT_EQUAL(b.len, 0);
    CU_ASSERT_PTR_NULL(b.data);
    CU_ASSERT_EQUAL(b.overflow, 0);
}

static void test_cap_exact(void)
{
    pp_buf b;
    pp_buf_init(&b, 10);
    CU_ASSERT_EQUAL(pp_buf_append(&b, "0123456789", 10), 0); /* exactly max */
    CU_ASSERT_EQUAL(b.len, 10);
    CU_ASSERT_EQUAL(b.overflow, 0);
    CU_ASSERT(nul_after(&b));
    CU_ASSERT_STRING_EQUAL((char *)b.data, "0123456789");
    pp_buf_reset(&b);
}

static void test_cap_refusal(void)
{
    pp_buf b;
    pp_buf_init(&b, 10);
    CU_ASSERT_EQUAL(pp_buf_append(&b, "abcdefgh", 8), 0);
    uint8_t *data = b.data;
    size_t cap = b.cap;

    CU_ASSERT_EQUAL(pp_buf_append(&b, "xyz", 3), -1);
    CU_ASSERT_EQUAL(b.overflow, 1);
    CU_ASSERT_EQUAL(b.len, 8);
    CU_ASSERT_PTR_EQUAL(b.data, data);
    CU_ASSERT_EQUAL(b.cap, cap);
    CU_ASSERT_STRING_EQUAL((char *)b.data, "abcdefgh");

    /* printf, short and long, is refused the same way. */
    b.overflow = 0;
    CU_ASSERT_EQUAL(pp_buf_printf(&b, "%d", 123), -1);
    CU_ASSERT_EQUAL(b.overflow, 1);
    CU_ASSERT_EQUAL(b.len, 8);
    CU_ASSERT_STRING_EQUAL((char *)b.data, "abcdefgh");

    b.overflow = 0;
    CU_ASSERT_EQUAL(pp_buf_printf(&b, "%300s", "x"), -1);
    CU_ASSERT_EQUAL(b.overflow, 1);
    CU_ASSERT_EQUAL(b.len, 8);
    CU_ASSERT_STRING_EQUAL((char *)b.data, "abcdefgh");

    /* What still fits is accepted. */
    CU_ASSERT_EQUAL(pp_buf_append(&b, "ij", 2), 0);
    CU_ASSERT_STRING_EQUAL((char *)b.data, "abcdefghij");
    CU_ASSERT_EQUAL(pp_buf_append(&b, "k", 1), -1);
    CU_ASSERT_EQUAL(b.len, 10);
    pp_buf_reset(&b);

    /* A long printf into an empty capped buffer allocates nothing. */
    pp_buf_init(&b, 100);
    CU_ASSERT_EQUAL(pp_buf_printf(&b, "%400s", "y"), -1);
    CU_ASSERT_EQUAL(b.overflow, 1);
    CU_ASSERT_EQUAL(b.len, 0);
    CU_ASSERT_PTR_NULL(b.data);
    pp_buf_reset(&b);

    /* max 0: nothing at all fits, but an empty append is fine. */
    pp_buf_init(&b, 0);
    CU_ASSERT_EQUAL(pp_buf_append(&b, "a", 1), -1);
    CU_ASSERT_EQUAL(b.overflow, 1);
    CU_ASSERT_PTR_NULL(b.data);
    pp_buf_reset(&b);
}

static void test_reserve(void)
{
    pp_buf b;
    pp_buf_init(&b, 1000);
    CU_ASSERT_EQUAL(pp_buf_reserve(&b, 500), 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b.data);
    CU_ASSERT(b.cap >= 501); /* room for the NUL too */
    CU_ASSERT_EQUAL(b.len, 0);
    uint8_t *data = b.data;
    /* Appending within the reservation does not move the data. */
    char chunk[500];
    memset(chunk, 'r', sizeof chunk);
    CU_ASSERT_EQUAL(pp_buf_append(&b, chunk, sizeof chunk), 0);
    CU_ASSERT_PTR_EQUAL(b.data, data);
    CU_ASSERT(nul_after(&b));
    /* Reserving within the cap succeeds, beyond it fails and changes nothing. */
    CU_ASSERT_EQUAL(pp_buf_reserve(&b, 500), 0);
    CU_ASSERT_EQUAL(b.overflow, 0);
    size_t cap = b.cap;
    data = b.data;
    CU_ASSERT_EQUAL(pp_buf_reserve(&b, 501), -1);
    CU_ASSERT_EQUAL(b.overflow, 1);
    CU_ASSERT_EQUAL(b.len, 500);
    CU_ASSERT_EQUAL(b.cap, cap);
    CU_ASSERT_PTR_EQUAL(b.data, data);
    /* A huge request does not wrap around. */
    CU_ASSERT_EQUAL(pp_buf_reserve(&b, SIZE_MAX), -1);
    CU_ASSERT_EQUAL(b.len, 500);
    CU_ASSERT_EQUAL(b.cap, cap);
    pp_buf_reset(&b);
}

static void test_consume(void)
{
    pp_buf b;
    pp_buf_init(&b, 100);
    CU_ASSERT_EQUAL(pp_buf_append(&b, "hello world", 11), 0);
    pp_buf_consume(&b, 0);
    CU_ASSERT_STRING_EQUAL((char *)b.data, "hello world");
    pp_buf_consume(&b, 6);
    CU_ASSERT_EQUAL(b.len, 5);
    CU_ASSERT_STRING_EQUAL((char *)b.data, "world");
    CU_ASSERT(nul_after(&b));
    CU_ASSERT_EQUAL(pp_buf_append(&b, "!", 1), 0);
    CU_ASSERT_STRING_EQUAL((char *)b.data, "world!");
    pp_buf_consume(&b, 6);
    CU_ASSERT_EQUAL(b.len, 0);
    CU_ASSERT(nul_after(&b));
    /* On an empty, never-allocated buffer: no crash, still empty. */
    pp_buf_reset(&b);
    pp_buf_consume(&b, 0);
    CU_ASSERT_EQUAL(b.len, 0);
    CU_ASSERT_PTR_NULL(b.data);
}

static void test_take(void)
{
    pp_buf b;
    pp_buf_init(&b, 100);
    CU_ASSERT_EQUAL(pp_buf_printf(&b, "result %d", 5), 0);
    size_t len = 0;
    char *p = pp_buf_take(&b, &len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(len, 8);
    CU_ASSERT_STRING_EQUAL(p, "result 5"); /* NUL-terminated */
    CU_ASSERT_PTR_NULL(b.data);
    CU_ASSERT_EQUAL(b.len, 0);
    CU_ASSERT_EQUAL(b.cap, 0);
    CU_ASSERT_EQUAL(b.max, 100);
    free(p);

    /* The buffer is usable again after a take. */
    CU_ASSERT_EQUAL(pp_buf_append(&b, "again", 5), 0);
    CU_ASSERT_STRING_EQUAL((char *)b.data, "again");
    p = pp_buf_take(&b, NULL);
    CU_ASSERT_STRING_EQUAL(p, "again");
    free(p);

    /* Taking an empty buffer gives NULL (or an empty string) and length 0. */
    len = 99;
    p = pp_buf_take(&b, &len);
    CU_ASSERT_EQUAL(len, 0);
    CU_ASSERT(p == NULL || p[0] == 0);
    free(p);
}

static void test_reset(void)
{
    pp_buf b;
    pp_buf_init(&b, 50);
    CU_ASSERT_EQUAL(pp_buf_append(&b, "data", 4), 0);
    pp_buf_reset(&b);
    CU_ASSERT_PTR_NULL(b.data);
    CU_ASSERT_EQUAL(b.len, 0);
    CU_ASSERT_EQUAL(b.cap, 0);
    CU_ASSERT_EQUAL(b.max, 50);
    /* Same max after the reset. */
    char big[51];
    memset(big, 'z', sizeof big);
    CU_ASSERT_EQUAL(pp_buf_append(&b, big, 50), 0);
    CU_ASSERT_EQUAL(pp_buf_append(&b, big, 1), -1);
    pp_buf_reset(&b);
    pp_buf_reset(&b); /* twice is fine */
    CU_ASSERT_PTR_NULL(b.data);
    pp_buf_reset(NULL); /* no-op */
}

int pp_register_suites(void)
{
    static const pp_test tests[] = {
        {"init is empty", test_init_empty},
        {"append keeps a NUL after the data", test_append_basic},
        {"append grows over many calls", test_append_grows},
        {"a large append (copied on several threads)", test_append_large},
        {"printf short outputs", test_printf_short},
        {"printf outputs of 255..5000 bytes", test_printf_long},
        {"append/printf with NULL arguments", test_null_args},
        {"append up to exactly the cap", test_cap_exact},
        {"cap refusal sets overflow, changes nothing", test_cap_refusal},
        {"reserve", test_reserve},
        {"consume", test_consume},
        {"take", test_take},
        {"reset", test_reset},
        {NULL, NULL},
    };
    return pp_add_suite("pp_buf", NULL, NULL, tests);
}
