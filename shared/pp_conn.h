/* SPDX-License-Identifier: MIT */
/* pp_conn.h -- a framed, non-blocking endpoint on an fd pair (a socket, or a
 * worker's two named pipes), driven by a pp_loop.
 *
 * The I/O callbacks only move bytes: frames go to on_frame, the end of the
 * connection (EOF, error, malformed frame) to on_close, once.  Writes are
 * queued and go out in one writev per flush, so that many small frames cost
 * one system call.
 *
 * Where the transport plugs in.  Every byte goes through a pp_transport
 * (pp_transport.h): the plain one (read(2)/writev(2)) when pp_conn_new() is
 * given none, or e.g. TLS.  The conn runs the transport's handshake first
 * (frames queued meanwhile wait; on_ready says when it is done), then
 * watches the fd each direction is waiting for -- a read that must write
 * first is retried when the write fd is writable, a write that must read
 * first when the read fd is readable -- and reads what the transport holds
 * (pending) before the loop sleeps: at most a budget per turn (4 MiB, as
 * for the fd), the rest on the following turns, the loop not sleeping
 * meanwhile (a timer due at once).  One implementation for sockets and for
 * a worker's FIFOs.
 *
 * What a transport must guarantee (each op's contract is in
 * pp_transport.h): it is non-blocking and says what it waits for (-1/EAGAIN
 * + want, or a handshake step's result); pending() counts every byte read()
 * would return without the fd, including bytes a handshake step or a write
 * read for the peer's stream; a write that returns the whole iov holds none
 * of it back; read() returns 0 only at the peer's clean end; failures leave
 * a text in error().  In return the conn retries a refused write with the
 * same first bytes, never calls read()/writev() before the handshake is
 * done, calls shutdown() and free() once each, and owns ctx from a
 * successful pp_conn_new() on. */
#ifndef PP_CONN_H
#define PP_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "pp_loop.h"
#include "pp_transport.h"
#include "pp_wire.h"

typedef struct pp_conn pp_conn;

typedef struct pp_conn_cbs {
    /* A frame arrived (payload valid during the call, or take it with
     * pp_conn_take()).  Return 0 to go on; -1 after closing the connection. */
    int (*on_frame)(pp_conn *c, const pp_frame *f, void *data);
    /* The connection ended; `why` says how ("end of file", the reader's
     * error, "handshake failed: ...", ...).  Called once, never from inside
     * pp_conn_close(). */
    void (*on_close)(pp_conn *c, const char *why, void *data);
    /* Optional (NULL = not told).  Frames can flow: the transport's
     * handshake is done (for a transport without one: at the first loop
     * turn, never inside pp_conn_new()).  Called once, before any on_frame;
     * never if the conn ends first.  Frames sent before it are queued and
     * go out after the handshake, in order; the conn may be closed or freed
     * from here. */
    void (*on_ready)(pp_conn *c, void *data);
} pp_conn_cbs;

/* Wraps rfd (read side) and wfd (write side; may equal rfd), which must be
 * non-blocking; the conn owns and closes them.  `tr` NULL = the plain
 * transport (pp_transport_plain_ops); otherwise *tr is copied and the conn
 * owns tr->ctx (tr->ops->free).  A transport with a handshake starts it
 * once the write fd is writable.  Returns NULL on failure (the fds and
 * tr->ctx are then still the caller's). */
pp_conn *pp_conn_new(pp_loop *loop, int rfd, int wfd, uint32_t max_len, uint8_t max_type,
                     const pp_transport *tr, const pp_conn_cbs *cbs, void *data);

/* Closes the fds now (after the transport's shutdown(), when its
 * handshake was done) and frees the conn and the transport's ctx at the
 * start of the next loop turn (it may be called from inside the conn's own
 * callbacks).  on_close is not called.  NULL is a no-op. */
void pp_conn_free(pp_conn *c);

/* Ends the connection as if the peer had (the fds closed now, after the
 * transport's shutdown()): on_close(why) runs at the start of the next
 * loop turn. */
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

/* The bodies queued by pp_conn_send_ref() and not yet written are no
 * longer needed: each is released now, and the peer gets as many zero
 * bytes in its place (the frames keep their length).  For frames the peer
 * is known to ignore (a worker's jobs taken back: pp_pool.c), whose owners
 * may free them at once. */
void pp_conn_zero_refs(pp_conn *c);

/* Writes what is queued, as far as the transport takes it; the rest goes
 * when the fd it waits for is ready.  Before the handshake is done, writes
 * nothing and returns 0.  0, or -1 when the connection failed or was
 * closed (on_close follows a failure). */
int pp_conn_flush(pp_conn *c);

/* Bytes queued for writing. */
size_t pp_conn_outbytes(const pp_conn *c);

/* Bytes the transport has read (*in) and written (*out) on this conn so
 * far: frames as they cross it (compressed ones as sent; TLS records'
 * overhead not counted).  A NULL conn counts 0. */
void pp_conn_counts(const pp_conn *c, uint64_t *in, uint64_t *out);

/* The link's rate as this end measured it, in bytes per second: the
 * faster of how fast queued output drained while the fd stayed full and
 * how fast frames of 1 MiB or more arrived (moving estimates); 0 before
 * any such transfer.  Only timings taken here: nothing the peer says. */
double pp_conn_link_rate(const pp_conn *c);

/* 1 when the conn was closed because the peer's bytes broke the framing
 * (bad magic, version, type, flags or length: the reader's error), else 0. */
int pp_conn_bad_frame(const pp_conn *c);

/* Stops (1) or resumes (0) reading frames: backpressure (a handshake goes
 * on).  Resuming reads what the transport already holds in the same or
 * the next turn, without waiting for the fd. */
void pp_conn_pause(pp_conn *c, int paused);

/* 1 once frames flow (the transport's handshake is done, or it has none),
 * 0 before, and after the conn ended. */
int pp_conn_ready(const pp_conn *c);

/* The ctx of the conn's transport (NULL for the plain one), still the
 * conn's: e.g. for a TLS session's exporter binding from on_ready.  Valid
 * until the conn is freed. */
void *pp_conn_transport_ctx(const pp_conn *c);

/* The payload of the frame being handled, as malloc'd memory the caller
 * owns (large payloads move without a copy).  NULL out of memory. */
void *pp_conn_take(pp_conn *c, const pp_frame *f);

/* Uncompressed frames of at least `min` bytes (and above PP_WIRE_BIG) are
 * received straight into shared buffers of `shm` from now on (NULL:
 * malloc); pp_conn_take_shm() hands them over. */
void pp_conn_use_shm(pp_conn *c, struct pp_shm_cache *shm, uint32_t min);

/* The shared buffer holding the payload of the frame being handled (its
 * reference the caller's), or NULL when it is not in one. */
struct pp_shm *pp_conn_take_shm(pp_conn *c, const pp_frame *f);

/* The owner's pointer given to pp_conn_new(). */
void *pp_conn_data(const pp_conn *c);

/* Changes the largest frame accepted from now on (raised after
 * authentication). */
void pp_conn_set_limit(pp_conn *c, uint32_t max_len);

/* Largest output queue (bytes) before pp_conn_send() refuses more. */
void pp_conn_set_outcap(pp_conn *c, size_t cap);

#endif
