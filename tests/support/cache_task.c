/* SPDX-License-Identifier: MIT */
/* cache_task.c -- one source, several distinct task modules for the module
 * cache test (test_cache): CACHE_MOD (1..4) names the task and fills a
 * padding array, so each module has different bytes and a known size
 * (CACHE_PAD bytes above its code). */
#include <pp.h>
#include <time.h>

#define CAT2(a, b) a##b
#define CAT(a, b) CAT2(a, b)
#define CACHE_PAD (400 * 1024)

/* Exported, non-zero: kept in the file, so the module is CACHE_PAD bigger. */
const unsigned char CAT(cache_pad_, CACHE_MOD)[CACHE_PAD] = {CACHE_MOD};

/* Sleeps the milliseconds given as a 4-byte int (0 without one), then
 * answers the module's number and the padding's first byte. */
int CAT(cache_task_, CACHE_MOD)(const void *arg, size_t len, pp_buf *out)
{
    int ms = 0;
    if (len == sizeof ms)
        __builtin_memcpy(&ms, arg, sizeof ms);
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (ms > 0 && nanosleep(&ts, &ts) != 0) {
    }
    int v = CACHE_MOD * 1000 + ((const volatile unsigned char *)CAT(cache_pad_, CACHE_MOD))[0];
    return pp_buf_append(out, &v, sizeof v);
}
