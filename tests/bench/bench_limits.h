/* SPDX-License-Identifier: MIT */
/* bench_limits.h -- the limits a payload figure (B5) is set against,
 * measured in the same run as the figure: memcpy between warm buffers,
 * memcpy into a freshly allocated buffer, and one loopback TCP stream
 * echoing.  Rates are MB/s (10^6 bytes per second). */
#ifndef PP_BENCH_LIMITS_H
#define PP_BENCH_LIMITS_H

#include <stddef.h>

typedef struct bl_rate {
    double best;   /* the fastest sample */
    double median; /* the median sample */
    long samples;
} bl_rate;

/* memcpy of `bytes` between two buffers touched beforehand. */
int bl_memcpy_warm(size_t bytes, bl_rate *out);

/* A new buffer of `bytes` and memcpy into it, timed together (its release
 * after is not): the page faults and zeroing of fresh memory.  The buffer
 * is a new anonymous mapping each time, which is what malloc() gives for
 * large blocks (glibc maps blocks above its mmap threshold anew); malloc()
 * itself would hand small sizes back warm from its heap. */
int bl_memcpy_fresh(size_t bytes, bl_rate *out);

/* One TCP connection on 127.0.0.1 to a thread that echoes what it reads:
 * `bytes` sent and read back, rate = bytes / round trip.  whole = 0: each
 * read is sent back at once (the two directions overlap); whole = 1:
 * store and forward, the whole message read before any of it goes back,
 * as a job takes its whole argument before it runs and its result goes
 * back once it has ended.  -1 (a message on stderr) when the connection
 * cannot be set up or a round trip does not end within 30 s. */
int bl_tcp_echo(size_t bytes, int whole, bl_rate *out);

/* The same store-and-forward echo inside TLS 1.3 (OpenSSL, AES-128-GCM, a
 * PSK, pp's record-layer settings): what encrypting and decrypting each
 * byte twice costs on top of the TCP figure. */
int bl_tls_echo(size_t bytes, bl_rate *out);

#endif
