/* SPDX-License-Identifier: MIT */
/* pp_common.h -- small helpers every module uses: attributes, array length,
 * big-endian loads and stores, monotonic time, error text into a buffer. */
#ifndef PP_COMMON_H
#define PP_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PP_PRINTF(f, a) __attribute__((format(printf, f, a)))
#define PP_UNUSED __attribute__((unused))
#define PP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define PP_MIN(a, b) ((a) < (b) ? (a) : (b))
#define PP_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Length of the caller-supplied error buffers of stateless helpers. */
#define PP_ERR_LEN 256

/* Writes a message into err (PP_ERR_LEN bytes) if err is not NULL. */
void pp_seterr(char *err, const char *fmt, ...) PP_PRINTF(2, 3);

static inline void pp_store16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}
static inline void pp_store32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}
static inline void pp_store64(uint8_t *p, uint64_t v)
{
    pp_store32(p, (uint32_t)(v >> 32));
    pp_store32(p + 4, (uint32_t)v);
}
static inline uint16_t pp_load16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}
static inline uint32_t pp_load32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) |
           (uint32_t)p[3];
}
static inline uint64_t pp_load64(const uint8_t *p)
{
    return ((uint64_t)pp_load32(p) << 32) | pp_load32(p + 4);
}

/* malloc(n), for large buffers about to be filled: from 4 MiB up, asks the
 * kernel for transparent huge pages on the block (a hint, where THP is in
 * "madvise" mode), so filling it takes a fault per 2 MiB rather than per
 * 4 KiB.  Free it with free(). */
void *pp_malloc_big(size_t n);

/* How much run time to keep queued per CPU, so that the cost of handing a
 * job over is amortised: a worker's pipe costs microseconds a job, a node
 * (a TCP hop, then the node's own pool) tens of them. */
#define PP_PIPELINE_LOCAL_S 0.0002
#define PP_PIPELINE_NODE_S 0.002
#define PP_PIPELINE_MAX 64

/* Jobs to keep in flight per CPU: enough to cover `target_s` of run time,
 * and across a network the round trip too (1 + rtt / run), between 1 and
 * PP_PIPELINE_MAX.  avg_run_s 0 (nothing measured yet) gives 1. */
int pp_pipeline_depth(double target_s, double avg_run_s, double rtt_s);

/* The struct holding `member` at ptr. */
#define PP_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

/* Monotonic clock in seconds. */
double pp_now(void);

/* The length of the valid UTF-8 sequence at p (n > 0 bytes left; 1 for
 * ASCII), or 0: overlong forms, surrogates, code points past U+10FFFF and
 * sequences cut short are not valid.  For escaping text from outside. */
size_t pp_utf8_len(const unsigned char *p, size_t n);

/* len bytes from outside (a peer, a file, the environment) as a message
 * may quote them: printable ASCII as it is, '"', '\\' and every other byte
 * as \xNN, cut with "..." where out (cap >= 8 bytes) is full.  Returns out,
 * always NUL-terminated. */
char *pp_quote(const void *p, size_t len, char *out, size_t cap);

/* path opened for reading (O_CLOEXEC) if it is a regular file, a file
 * named from outside: O_NONBLOCK, so that a FIFO put in its place cannot
 * hang the open (it is then refused like a device, whose endless bytes
 * would never end a read).  The fd with *st filled, or -1 with errno set
 * (the open failed) or 0 (not a regular file). */
struct stat;
int pp_open_regular(const char *path, struct stat *st);

/* Up to len bytes of fd, fewer only at its end (EINTR retried).  The
 * count, or -1 with errno set. */
ssize_t pp_read_full(int fd, void *buf, size_t len);

/* "SIGSEGV" for 11, "signal 64" for unnamed ones; buf holds 16 bytes. */
const char *pp_signame(int sig, char buf[16]);

/* Describes a waitpid() status: "worker killed by signal 11 (SIGSEGV)",
 * "worker exited with status 3". */
void pp_describe_exit(int wstatus, char *out, size_t outlen);

/* The CPUs this process may run on (sched_getaffinity), at least 1. */
int pp_ncpus_available(void);

#endif
