/* SPDX-License-Identifier: MIT */
/* payload_tasks.h -- the tasks of test_payload (large arguments and
 * results), and the byte pattern and checksum both sides compute.
 *
 * A payload of `size` bytes under `seed` has at position p the byte
 * pl_byte(size, seed, p): it depends on the size, the seed and the position,
 * so that a buffer left from an earlier job (another size or seed) or
 * shifted by any offset never passes for the one expected. */
#ifndef PP_PAYLOAD_TASKS_H
#define PP_PAYLOAD_TASKS_H

#include <pp.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* What pl_xor xors every byte with: its result is never its argument. */
#define PL_XOR_KEY 0x5Au
/* How long the thread of pl_hostile goes on after its task returned. */
#define PL_HOSTILE_SECONDS 1.5

/* pl_hostile's modes (bits). */
#define PL_SCRIBBLE 1   /* write into every memfd mapping and memfd */
#define PL_SHRINK 2     /* ftruncate every memfd to 0 */
#define PL_GROW 4       /* ftruncate every memfd to 1 TiB */
#define PL_KEEP_PROT 8  /* PL_SCRIBBLE only where already writable */
#define PL_NO_REMAP 16  /* PL_SCRIBBLE only into the mappings there are */

/* splitmix64's finalizer. */
static inline uint64_t pl_mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xBF58476D1CE4E5B9ull;
    x ^= x >> 27;
    x *= 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

/* Bytes off .. off + n of the payload of `size` bytes under `seed`. */
static inline void pl_pattern(uint8_t *dst, uint64_t off, size_t n, uint64_t size,
                              uint64_t seed)
{
    uint64_t w = 0;
    for (size_t k = 0; k < n; k++) {
        uint64_t p = off + k;
        if (k == 0 || (p & 7) == 0)
            w = pl_mix(seed ^ (size * 0x9E3779B97F4A7C15ull) ^ ((p >> 3) * 0xD6E8FEB86659FD93ull));
        dst[k] = (uint8_t)(w >> ((p & 7) * 8));
    }
}

/* A checksum of n bytes that sees every byte and its position. */
static inline uint64_t pl_hash(const void *data, size_t n)
{
    const uint8_t *d = data;
    uint64_t h = pl_mix(n + 1);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, d + i, 8);
        h = pl_mix(h ^ w) + i;
    }
    for (; i < n; i++)
        h = pl_mix(h ^ d[i]) + i;
    return h;
}

/* pl_gen's argument, and pl_sum's result. */
typedef struct pl_gen_arg {
    uint64_t n, seed;
} pl_gen_arg;
typedef struct pl_sum_res {
    uint64_t len, hash;
} pl_sum_res;

/* Each byte of the argument xor PL_XOR_KEY. */
int pl_xor(const void *arg, size_t len, pp_buf *out);
/* pl_gen_arg {n, seed} -> the n bytes of the payload (n, seed). */
int pl_gen(const void *arg, size_t len, pp_buf *out);
/* Any argument -> pl_sum_res {its length, pl_hash of it}. */
int pl_sum(const void *arg, size_t len, pp_buf *out);
/* "lls" n, how, marker: appends the n bytes of the payload (n, 1), writes
 * its pid into the marker file (unless ""), then: how 0 SIGSEGV, 1 abort(), 2 spins
 * (for a timeout or a cancel; gives up failing after 120 s). */
int pl_die(const void *arg, size_t len, pp_buf *out);
/* "lls" n, seed, marker: the first run (it creates the marker) appends
 * n / 2 bytes of the payload then SIGSEGV; later runs -> the payload. */
int pl_once(const void *arg, size_t len, pp_buf *out);
/* 8 bytes, milliseconds: sleeps that long -> the worker's pid (8 bytes). */
int pl_sleep(const void *arg, size_t len, pp_buf *out);
/* "llls" n, seed, mode, pidfile: appends the payload (n, seed), writes its
 * pid into pidfile, attacks the worker's memfds (mode: PL_* bits) once,
 * and starts a thread that goes on attacking them for PL_HOSTILE_SECONDS
 * after the task returned, then creates pidfile + ".end". */
int pl_hostile(const void *arg, size_t len, pp_buf *out);
/* pl_hostile with its arguments at the start of the argument, the bytes
 * after them ignored (for an argument in a buffer of pp_shm_alloc()). */
typedef struct pl_hostile_arg {
    uint64_t n, seed, mode;
    char pidfile[488];
} pl_hostile_arg;
int pl_hostile_raw(const void *arg, size_t len, pp_buf *out);
/* "l" ms: the typed result "Lb" (PL_FLIP_COUNT longs 1, 2, ..., then
 * PL_FLIP_BLOB bytes 0x7f); with ms > 0 a thread then flips the array's
 * count between PL_FLIP_COUNT and PL_FLIP_COUNT + 2 for ms milliseconds
 * after the task returned (in the result where it lies: shared memory,
 * once the task's results are large). */
#define PL_FLIP_COUNT 4
#define PL_FLIP_BLOB (96 * 1024)
int pl_flip(const void *arg, size_t len, pp_buf *out);
/* "l" ms: PL_UNTERMINATED_LEN bytes 'a'; with ms > 0 a thread then writes
 * 'a' over the whole shared-memory mapping the result lies in, the NUL
 * after it included, for ms milliseconds after the task returned. */
#define PL_UNTERMINATED_LEN (80 * 1024)
int pl_unterminated(const void *arg, size_t len, pp_buf *out);

#endif
