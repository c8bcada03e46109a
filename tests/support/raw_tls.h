/* SPDX-License-Identifier: MIT */
/* raw_tls.h -- pp's TLS under a test's raw sockets: hand-made clients and
 * fake nodes speak frames through the project's own TLS transport
 * (pp_tls.h: the external PSK K_psk, psk_dhe_ke, PP_TLS_SUITES), as libpp
 * and ppserver do, so that the bytes a test crafts reach ppserver's frame
 * parser -- or libpp's -- and not a TLS record check.
 *
 * A table maps a socket to its TLS session.  Once rt_client() or
 * rt_server() made one for an fd, every rt_* I/O call on that fd goes
 * through it; on an fd without one they are plain send(2)/recv(2), for the
 * tests about TCP itself (silent connections, bytes that are no
 * ClientHello).  A session's socket is non-blocking: every wait is a poll()
 * bounded by a deadline, which the caller gives.
 *
 * Keys: pp_auth_derive() costs ~60 ms (scrypt), so the keys of a secret
 * are derived once and kept, with that secret's TLS configurations (client,
 * server), in a small cache until rt_reset(): a test making dozens of
 * wrong-secret attempts pays for that secret once.
 *
 * Threads: the table and the cache are locked; a session is used by one
 * thread at a time (the one that owns its fd).  A session's table entry
 * goes (rt_forget) before its fd is closed, so that a number the kernel
 * hands out again never finds a stale session. */
#ifndef PP_TEST_RAW_TLS_H
#define PP_TEST_RAW_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pp_auth.h"
#include "pp_tls.h"

/* rt_client()/rt_server(): the handshake failed because the peer's key is
 * not ours (the secrets differ). */
#define RT_WRONG_KEY 1

/* The keys of `secret` (as pp_auth_secret() takes it: a trailing newline
 * is not part of it), derived once per distinct secret.  0 or -1. */
int rt_key(const char *secret, pp_auth_key *out);

/* A TLS client (rt_client) or server (rt_server) handshake on the
 * connected socket fd with the key of `secret`, within `limit` seconds.
 * 0: the session is registered for fd; RT_WRONG_KEY or -1: no session,
 * the reason in why (PP_ERR_LEN bytes), e.g. "TLS handshake: the peer
 * closed" or "TLS handshake: no answer within 5 s".  Either way fd is
 * non-blocking from then on (the rt_* calls wait with poll()). */
int rt_client(int fd, const char *secret, double limit, char *why);
int rt_server(int fd, const char *secret, double limit, char *why);

/* 1 when fd has a TLS session. */
int rt_has(int fd);

/* The binding of fd's TLS session (pp_tls_binding): what the inner proof
 * covers.  0, or -1 when fd has no session. */
int rt_binding(int fd, uint8_t out[PP_TLS_BINDING_LEN]);

/* Frees fd's session, if any, without a word to the peer (close_notify
 * goes with rt_shutdown_wr()); the fd stays open. */
void rt_forget(int fd);

/* Frees every session and the cache (keys wiped): the per-test teardown,
 * once the threads that used sessions are joined. */
void rt_reset(void);

/* A ClientHello of `secret`'s key as a client sends it (made against a
 * socketpair, the session then dropped): for tests that feed a node its
 * bytes by hand, cut or trickled.  0 with *len set, or -1. */
int rt_client_hello(const char *secret, uint8_t *buf, size_t cap, size_t *len);

/* ---- I/O: through the session when fd has one, else plain ---- */

/* One non-blocking write, as send(MSG_DONTWAIT): the bytes taken (> 0),
 * or -1 with errno (EAGAIN: call again with the same bytes, at least as
 * many, once rt_wait_writable() says so -- TLS may hold half a record). */
ssize_t rt_send_nb(int fd, const void *p, size_t n);

/* Waits at most `limit` seconds until a write on fd may go on (for TLS,
 * the direction its last write asked for).  1 when it may, 0 when not. */
int rt_wait_writable(int fd, double limit);

/* Writes all n bytes; gives up when no byte could go for `stall` seconds
 * (what SO_SNDTIMEO does on a blocking socket).  0 or -1.  A TLS session
 * whose write was given up halfway through a record writes nothing more
 * (-1): its stream cannot go on where the caller thinks. */
int rt_send_all(int fd, const void *p, size_t n, double stall);

/* Writes what it can of n bytes within `limit` seconds: the bytes taken
 * (the peer may have stopped reading).  Halfway: as rt_send_all(). */
size_t rt_send_bounded(int fd, const void *p, size_t n, double limit);

/* Reads up to n bytes, waiting until `deadline` (now_s() time): > 0 the
 * bytes read; 0 when the connection ended (EOF, close_notify, a reset, a
 * TLS alert); -1 on timeout; -2 on another error (plain sockets). */
ssize_t rt_recv(int fd, void *buf, size_t n, double deadline);

/* Without waiting: 1 when the connection has ended (a byte that came
 * instead is consumed), else 0. */
int rt_closed_now(int fd);

/* Our end of the stream: close_notify (TLS), then shutdown(SHUT_WR); we
 * may still read.  0 or -1. */
int rt_shutdown_wr(int fd);

/* The text of fd's last TLS failure (read or write), or "". */
const char *rt_error(int fd);

#endif
