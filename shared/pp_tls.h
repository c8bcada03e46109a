/* SPDX-License-Identifier: MIT */
/* pp_tls.h -- TLS 1.3 for pp's connections (OpenSSL 3), as a transport
 * (pp_transport.h) that pp_conn drives.
 *
 * Two ways to authenticate the TLS handshake:
 *  - the shared secret (the default): an external PSK, K_psk of pp_auth.h,
 *    with the identity PP_TLS_IDENTITY (it names the protocol and its
 *    version, never the secret), psk_dhe_ke only (ECDHE: forward secrecy),
 *    no certificate on either side;
 *  - certificates (sites with a PKI): each side presents its own and
 *    verifies the other's against a CA; the inner proof with the shared
 *    secret still runs inside (pp_handshake.h), bound to this TLS session.
 * Either way: TLS 1.3 only, AEAD suites with SHA-256 only, no session
 * tickets, no 0-RTT, no renegotiation.
 *
 * The four ways such a setup silently becomes "no authentication", and
 * what stops each here:
 *  1. a suite list without SHA-256 drops a SHA-256 PSK: the suites are
 *     fixed to PP_TLS_SUITES on both sides, and a peer that offers no
 *     SHA-256 suite fails the handshake;
 *  2. a client taking a certificate instead of the PSK: in PSK mode the
 *     client verifies certificates against an empty trust store (none can
 *     pass) and, after the handshake, requires SSL_session_reused() == 1
 *     (the PSK was used) before any byte of ours goes out;
 *  3. a server taking a client without the PSK: it loads no certificate in
 *     PSK mode, finds no PSK for any other identity, and also requires
 *     SSL_session_reused() == 1;
 *  4. a guessable secret: K_psk comes from scrypt (pp_auth.h); generated
 *     secrets are the recommended source.
 *
 * A plaintext peer is recognised by its first bytes ("PP", a pp frame) and
 * told so: a TLS node writes it `plaintext_reply` (a pp ERROR frame: "this
 * node requires TLS"); a TLS client fails with "the node speaks
 * plaintext".  pp_tls_sniff_ops is the plaintext side's counterpart: it
 * recognises a TLS ClientHello and answers it with `plaintext_reply`. */
#ifndef PP_TLS_H
#define PP_TLS_H

#include <stddef.h>
#include <stdint.h>

#include "pp_transport.h"

#define PP_TLS_IDENTITY "pp/1 tls13 external psk"
#define PP_TLS_SUITES "TLS_AES_128_GCM_SHA256:TLS_CHACHA20_POLY1305_SHA256"
#define PP_TLS_BINDING_LEN 32

typedef struct pp_tls pp_tls;

typedef struct pp_tls_opts {
    int server;                   /* 1: accept, 0: connect */
    const uint8_t *psk;           /* 32 bytes (K_psk): PSK mode; NULL with certs */
    const char *cert, *key, *ca;  /* PEM files: certificate mode (all three) */
    const char *suites;           /* NULL = PP_TLS_SUITES (tests give others) */
    /* What a TLS node writes, in plaintext, to a client that speaks
     * plaintext before it closes (a pp ERROR frame), or NULL/0. */
    const void *plaintext_reply;
    size_t plaintext_reply_len;
} pp_tls_opts;

/* The TLS configuration of a process or server (an SSL_CTX), from opts
 * (copied).  NULL with the reason in err (PP_ERR_LEN bytes): OpenSSL's
 * error, a certificate or key that cannot be loaded, ... */
pp_tls *pp_tls_new(const pp_tls_opts *opts, char *err);
void pp_tls_free(pp_tls *t);

/* A transport for one connection (its SSL object), for pp_conn_new(),
 * which then owns it.  0, or -1 with the reason in err. */
int pp_tls_transport(pp_tls *t, pp_transport *out, char *err);

/* The binding of the connection's TLS session (RFC 8446 exporter, label
 * "EXPORTER-pp inner proof"), after its handshake: what the inner proof
 * covers, so that it cannot be relayed into another TLS session.  `ctx`
 * is the transport's ctx.  0 or -1. */
int pp_tls_binding(void *ctx, uint8_t out[PP_TLS_BINDING_LEN]);

/* After a failed handshake: 1 when it failed because the peer's key is
 * not ours (the secrets differ), so that the caller counts a wrong secret
 * and says so.  `ctx` as above. */
int pp_tls_wrong_key(void *ctx);

/* Whether kernel TLS carries the connection's records (sending,
 * receiving): for the benchmark's report.  `ctx` as above. */
void pp_tls_ktls(void *ctx, int *send, int *recv);

/* The plaintext side's transport: no encryption; its handshake step reads
 * (peeks) the peer's first bytes and fails, after writing `reply`, when
 * they are a TLS ClientHello ("a TLS client; this node speaks
 * plaintext").  ctx is a pp_tls_sniff the caller fills; freed with free()
 * by the conn.  0 or -1 (out of memory). */
int pp_tls_sniff_transport(const void *reply, size_t len, pp_transport *out);

#endif
