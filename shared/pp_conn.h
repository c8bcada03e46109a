/* SPDX-License-Identifier: MIT */
/* pp_conn.h -- a framed, non-blocking endpoint on an fd pair (a socket, or a
 * worker's two named pipes), driven by a pp_loop.
 *
 * The I/O callbacks only move bytes: frames go to on_frame, the end of the
 * connection (EOF, error, malformed frame) to on_close, once.  Writes are
 * queued and go out in one writev per flush, so that many small frames cost
 * one system call.  Reads and writes go through a transport (plain fds
 * here; the TLS transport plugs in the same way). */
#ifndef PP_CONN_H
#define PP_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "pp_loop.h"
#include "pp_wire.h"

typedef struct pp_conn pp_conn;

/* Moves bytes; both return what read(2)/writev(2) return (-1 + errno). */
typedef struct pp_transport {
    ssize_t (*read)(void *ctx, int fd, void *buf, size_t n);
    ssize_t (*writev)(void *ctx, int fd, const struct iovec *iov, int iovcnt);
    void (*free)(void *ctx);  /* may be NULL */
    void *ctx;
} pp_transport;

typedef struct pp_conn_cbs {
    /* A frame arrived (payload valid during the call, or take it with
     * pp_conn_take()).  Return 0 to go on; -1 after closing the connection. */
    int (*on_frame)(pp_conn *c, const pp_frame *f, void *data);
    /* The connection ended; `why` says how ("end of file", the reader's
     * error, ...).  Called once, never from inside pp_conn_close(). */
    void (*on_close)(pp_conn *c, const char *why, void *data);
} pp_conn_cbs;

/* Wraps rfd (read side) and wfd (write side; may equal rfd), which must be
 * non-blocking; the conn owns and closes them.  `tr` NULL = plain fds.
 * Returns NULL on failure (the fds are then still the caller's). */
pp_conn *pp_conn_new(pp_loop *loop, int rfd, int wfd, uint32_t max_len, uint8_t max_type,
                     const pp_transport *tr, const pp_conn_cbs *cbs, void *data);

/* Closes the fds now and frees the conn at the start of the next loop turn
 * (it may be called from inside the conn's own callbacks).  on_close is not
 * called.  NULL is a no-op. */
void pp_conn_free(pp_conn *c);

/* Ends the connection as if the peer had: on_close(why) runs at the start of
 * the next loop turn. */
void pp_conn_close(pp_conn *c, const char *why);

/* Queues a frame (payload copied).  0, or -1 when the output cap is hit or
 * out of memory. */
int pp_conn_send(pp_conn *c, uint8_t type, uint16_t flags, uint64_t id, const void *payload,
                 size_t len);

/* Queues a frame whose payload is `head` (copied) then `body` (not copied:
 * it must stay valid until release(rel_arg) is called, which happens once
 * the bytes are written or the conn is freed).  0 or -1 (then release was
 * not called and the body is still the caller's). */
int pp_conn_send_ref(pp_conn *c, uint8_t type, uint16_t flags, uint64_t id, const void *head,
                     size_t hlen, const void *body, size_t blen, void (*release)(void *),
                     void *rel_arg);

/* Writes what is queued, as far as the fd takes it; the rest goes when the
 * fd is writable.  0, or -1 when the connection failed (on_close follows). */
int pp_conn_flush(pp_conn *c);

/* Bytes queued for writing. */
size_t pp_conn_outbytes(const pp_conn *c);

/* Stops (1) or resumes (0) reading: backpressure. */
void pp_conn_pause(pp_conn *c, int paused);

/* The payload of the frame being handled, as malloc'd memory the caller
 * owns (large payloads move without a copy).  NULL out of memory. */
void *pp_conn_take(pp_conn *c, const pp_frame *f);

/* The owner's pointer given to pp_conn_new(). */
void *pp_conn_data(const pp_conn *c);

/* Changes the largest frame accepted from now on (raised after
 * authentication). */
void pp_conn_set_limit(pp_conn *c, uint32_t max_len);

/* Largest output queue (bytes) before pp_conn_send() refuses more. */
void pp_conn_set_outcap(pp_conn *c, size_t cap);

#endif
