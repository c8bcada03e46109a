/* SPDX-License-Identifier: MIT */
/* pp_transport.h -- what moves a pp_conn's bytes: an ops table plus its
 * context, the seam where TLS plugs in (as redis's ConnectionType and
 * hiredis's redisContextFuncs do).
 *
 * The plain transport below is read(2)/writev(2) on the conn's fds.  A TLS
 * transport keeps its SSL object in ctx and maps SSL_ERROR_WANT_READ /
 * SSL_ERROR_WANT_WRITE onto PP_TR_WANT_READ / PP_TR_WANT_WRITE.  pp_conn
 * (pp_conn.h) drives the ops; nothing else calls them while a conn owns
 * them, and always from the loop's thread.
 *
 * Sequence: handshake() until PP_TR_DONE (skipped when NULL), then read()
 * and writev() in any order, pending() after reads and writes, shutdown()
 * once when the conn ends (only if the handshake was done), free() once.
 * Every op gets the fd it works on: read() the read fd, writev() and
 * shutdown() the write fd, handshake() both (they are equal on a socket;
 * a worker's two FIFOs differ).  A transport bound to its fds when made
 * (TLS: SSL_set_fd, or SSL_set_rfd + SSL_set_wfd) may ignore them; one
 * that writes while reading uses its own record of the write fd. */
#ifndef PP_TRANSPORT_H
#define PP_TRANSPORT_H

#include <stddef.h>
#include <sys/types.h>
#include <sys/uio.h>

/* A handshake step's outcome, and what a read or write that could not go
 * on needs next. */
typedef enum pp_tr_status {
    PP_TR_DONE = 0,       /* handshake finished: frames may flow */
    PP_TR_WANT_READ = 1,  /* call again once the read fd is readable */
    PP_TR_WANT_WRITE = 2, /* call again once the write fd is writable */
    PP_TR_FAILED = 3,     /* handshake failed: error() says why */
} pp_tr_status;

typedef struct pp_transport_ops {
    /* One step of the handshake, non-blocking; NULL = none (frames flow at
     * once).  pp_conn calls it first when the write fd is writable (a socket
     * whose connect is in progress: once connected), then whenever the fd
     * the last step asked for is ready, until it returns PP_TR_DONE or
     * PP_TR_FAILED; no read() or writev() before PP_TR_DONE.
     * Returns PP_TR_DONE, PP_TR_WANT_READ or PP_TR_WANT_WRITE (only when it
     * cannot go on without that fd: bytes it already holds are used first),
     * or PP_TR_FAILED with error() set; the conn then closes with
     * "handshake failed: " + error().  Bytes that came after the handshake's
     * last message are kept for read() and counted by pending(). */
    pp_tr_status (*handshake)(void *ctx, int rfd, int wfd);

    /* Reads up to n (> 0) bytes of the peer's stream into buf.
     * Returns the bytes read (1..n), 0 at the peer's clean end (for TLS:
     * close_notify, or an EOF the transport accepts as one), or -1 with
     * errno: EAGAIN when it cannot go on now, with *want (never NULL) set to
     * PP_TR_WANT_READ (the read fd must become readable) or PP_TR_WANT_WRITE
     * (it must write first, e.g. a TLS KeyUpdate reply on a full socket:
     * pp_conn retries the read once the write fd is writable); EINTR to be
     * called again at once; anything else is a failure described by error()
     * (or strerror(errno) when error() is NULL or returns NULL), and the
     * conn closes with "read failed: " + that text.
     * While pending() > 0, a read returns bytes without the fd. */
    ssize_t (*read)(void *ctx, int fd, void *buf, size_t n, pp_tr_status *want);

    /* Writes the front of iov (iovcnt 1..IOV_MAX, at least one byte).
     * Returns the bytes taken (1..the iov's total, never 0), or -1 with
     * errno as read(): EAGAIN with *want = PP_TR_WANT_WRITE (the write fd
     * must become writable) or PP_TR_WANT_READ (it must read first, e.g. a
     * TLS 1.2 renegotiation: pp_conn retries once the read fd is readable);
     * EINTR; anything else closes the conn with "write failed: " + error().
     * pp_conn guarantees that after -1/EAGAIN the next call starts with the
     * same bytes, at least as many, though maybe at other addresses (a TLS
     * transport sets SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER; SSL_write's retry
     * rule then holds).  Taken bytes are the transport's: it may hold some
     * (to batch them) only while it takes less than the whole iov; once it
     * returns the whole iov they are in the fd, and on -1/EAGAIN it pushes
     * what it holds on the next call, which pp_conn makes once *want is
     * ready.  A write may read: bytes it reads for the peer's stream are
     * kept for read() and counted by pending(). */
    ssize_t (*writev)(void *ctx, int fd, const struct iovec *iov, int iovcnt,
                      pp_tr_status *want);

    /* Bytes read() would return now without the fd: decrypted bytes the
     * transport holds, which epoll never announces (for OpenSSL,
     * SSL_pending(), or 1 when only SSL_has_pending() is true).  0 = none.
     * pp_conn reads them before the loop sleeps, within its per-turn read
     * budget.  NULL = never holds any. */
    size_t (*pending)(void *ctx);

    /* The text of the last failure (handshake PP_TR_FAILED, or -1 with an
     * errno other than EAGAIN/EINTR), valid until the next op; NULL or ""
     * = say strerror(errno).  NULL op = always strerror(errno). */
    const char *(*error)(void *ctx);

    /* The conn ends (closed or freed) after a finished handshake: a last
     * best-effort, non-blocking write before the fds are closed (TLS:
     * close_notify, so the peer tells an end from a cut).  It may run after
     * one of the transport's own failures and must cope.  NULL = nothing. */
    void (*shutdown)(void *ctx, int wfd);

    /* Frees ctx (not the fds: the conn closes them), once, when the conn is
     * freed.  NULL = ctx is not the conn's to free. */
    void (*free)(void *ctx);
} pp_transport_ops;

/* A transport: its ops (static, outliving every conn using them) and its
 * context.  pp_conn_new() copies this struct; from a successful
 * pp_conn_new() on, ctx belongs to the conn (ops->free). */
typedef struct pp_transport {
    const pp_transport_ops *ops;
    void *ctx;
} pp_transport;

/* The plain transport: read(2) and writev(2) on the fds, no handshake,
 * nothing pending, errors as strerror(errno); ctx unused (NULL).  What
 * pp_conn_new() uses when given no transport. */
extern const pp_transport_ops pp_transport_plain_ops;

#endif
