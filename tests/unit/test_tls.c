/* SPDX-License-Identifier: MIT */
/* test_tls.c -- pp_tls: two pp_conns on a socketpair, one loop, TLS 1.3
 * between them.  The shared key: frames both ways (small and 3 MiB), the
 * same binding on both sides, a wrong key refused by both, and the four
 * traps of pp_tls.h: a peer offering only suites without SHA-256, a client
 * meeting a server that has a certificate instead of the key, a server
 * meeting a client that has a certificate instead; certificates: a good
 * pair, a wrong CA, an expired certificate; and a plaintext peer on either
 * side told so.  Certificates are made at start with the openssl program
 * (skipped, saying so, where it is missing). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "certs.h"
#include "cunit_main.h"
#include "pp_auth.h"
#include "pp_buf.h"
#include "pp_common.h"
#include "pp_conn.h"
#include "pp_loop.h"
#include "pp_proto.h"
#include "pp_tls.h"

static char certdir[64];
static int have_certs;
static pp_auth_key key, other_key;

typedef struct end {
    pp_conn *c;
    int ready, closed, frames;
    size_t bytes;
    char why[512];
    uint8_t last_type;
} end;

static int on_frame(pp_conn *c, const pp_frame *f, void *data)
{
    (void)c;
    end *e = data;
    e->frames++;
    e->bytes += f->hdr.len;
    e->last_type = f->hdr.type;
    return 0;
}

static void on_close(pp_conn *c, const char *why, void *data)
{
    end *e = data;
    e->closed = 1;
    snprintf(e->why, sizeof e->why, "%s", why);
    pp_conn_free(c);
    e->c = NULL;
}

static void on_ready(pp_conn *c, void *data)
{
    (void)c;
    end *e = data;
    e->ready = 1;
}

static const pp_conn_cbs cbs = {.on_frame = on_frame, .on_close = on_close, .on_ready = on_ready};

/* A conn on fd with transport t (NULL = plain). */
static pp_conn *conn_on(pp_loop *l, int fd, pp_tls *t, end *e)
{
    pp_transport tr;
    char err[PP_ERR_LEN];
    if (t)
        CU_ASSERT_EQUAL_FATAL(pp_tls_transport(t, &tr, err), 0);
    e->c = pp_conn_new(l, fd, fd, 8u << 20, PP_T_NET_MAX, t ? &tr : NULL, &cbs, e);
    CU_ASSERT_PTR_NOT_NULL_FATAL(e->c);
    return e->c;
}

/* Runs the loop until cond holds (bounded: turns and seconds). */
#define RUN(l, cond)                                                                         \
    do {                                                                                     \
        double end_ = pp_now() + 10;                                                         \
        for (int i_ = 0; i_ < 100000 && !(cond) && pp_now() < end_; i_++)                    \
            pp_loop_run_once((l), 0.02);                                                     \
    } while (0)

static int pair(int sv[2])
{
    return socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv);
}

static pp_tls *tls(int server, const pp_auth_key *k, const char *suites)
{
    char err[PP_ERR_LEN];
    pp_tls_opts o = {.server = server, .psk = k ? k->psk : NULL, .suites = suites};
    pp_tls *t = pp_tls_new(&o, err);
    if (!t)
        fprintf(stderr, "\n  pp_tls_new: %s\n", err);
    return t;
}

static pp_tls *tls_certs(int server, const char *name, const char *ca)
{
    char cert[128], keyf[128], caf[128], err[PP_ERR_LEN];
    snprintf(cert, sizeof cert, "%s/%s.crt", certdir, name);
    snprintf(keyf, sizeof keyf, "%s/%s.key", certdir, name);
    snprintf(caf, sizeof caf, "%s/%s.crt", certdir, ca);
    pp_tls_opts o = {.server = server, .cert = cert, .key = keyf, .ca = caf};
    pp_tls *t = pp_tls_new(&o, err);
    if (!t)
        fprintf(stderr, "\n  pp_tls_new: %s\n", err);
    return t;
}

/* A handshake between a client and a server configuration; both ends and
 * the loop are left for the caller to inspect; returns 1 when both ends
 * became ready. */
typedef struct duo {
    pp_loop *l;
    end c, s;
} duo;

static int connect_duo(duo *d, pp_tls *client, pp_tls *server)
{
    memset(d, 0, sizeof *d);
    d->l = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(d->l);
    int sv[2];
    CU_ASSERT_EQUAL_FATAL(pair(sv), 0);
    conn_on(d->l, sv[0], client, &d->c);
    conn_on(d->l, sv[1], server, &d->s);
    RUN(d->l, (d->c.ready && d->s.ready) || d->c.closed || d->s.closed);
    return d->c.ready && d->s.ready;
}

static void close_duo(duo *d)
{
    if (d->c.c)
        pp_conn_free(d->c.c);
    if (d->s.c)
        pp_conn_free(d->s.c);
    pp_loop_free(d->l);
}

/* Both ends closed (or one refused and the other saw the end). */
static int both_failed(duo *d)
{
    RUN(d->l, d->c.closed && d->s.closed);
    return d->c.closed && d->s.closed && !(d->c.ready && d->s.ready);
}

/* ---- the shared key ---- */

static void test_psk_frames(void)
{
    pp_tls *c = tls(0, &key, NULL), *s = tls(1, &key, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    duo d;
    CU_ASSERT_FATAL(connect_duo(&d, c, s));
    /* The same binding on both sides, and not zero. */
    uint8_t bc[PP_TLS_BINDING_LEN], bs[PP_TLS_BINDING_LEN], zero[PP_TLS_BINDING_LEN] = {0};
    CU_ASSERT_EQUAL(pp_tls_binding(pp_conn_transport_ctx(d.c.c), bc), 0);
    CU_ASSERT_EQUAL(pp_tls_binding(pp_conn_transport_ctx(d.s.c), bs), 0);
    CU_ASSERT_EQUAL(memcmp(bc, bs, sizeof bc), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(bc, zero, sizeof bc), 0);
    /* 200 small frames one way, a 3 MiB one the other way. */
    for (int i = 0; i < 200; i++)
        CU_ASSERT_EQUAL(pp_conn_send(d.c.c, PP_T_PING, 0, (uint64_t)i, "x", 1), 0);
    pp_conn_flush(d.c.c);
    size_t big = 3u << 20;
    uint8_t *p = calloc(1, big);
    CU_ASSERT_PTR_NOT_NULL_FATAL(p);
    CU_ASSERT_EQUAL(pp_conn_send(d.s.c, PP_T_RRESULT, 0, 1, p, big), 0);
    pp_conn_flush(d.s.c);
    RUN(d.l, d.s.frames == 200 && d.c.frames == 1);
    CU_ASSERT_EQUAL(d.s.frames, 200);
    CU_ASSERT_EQUAL(d.c.frames, 1);
    CU_ASSERT_EQUAL(d.c.bytes, big);
    free(p);
    /* A second session: another binding (so a proof cannot be replayed). */
    duo e;
    CU_ASSERT_FATAL(connect_duo(&e, c, s));
    uint8_t b2[PP_TLS_BINDING_LEN];
    CU_ASSERT_EQUAL(pp_tls_binding(pp_conn_transport_ctx(e.c.c), b2), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(bc, b2, sizeof bc), 0);
    close_duo(&e);
    close_duo(&d);
    pp_tls_free(c);
    pp_tls_free(s);
}

static void test_psk_wrong_key(void)
{
    pp_tls *c = tls(0, &other_key, NULL), *s = tls(1, &key, NULL);
    duo d;
    CU_ASSERT_FALSE(connect_duo(&d, c, s));
    CU_ASSERT(both_failed(&d));
    printf("\n    client: %s\n    server: %s ", d.c.why, d.s.why);
    CU_ASSERT_PTR_NOT_NULL(strstr(d.c.why, "key is not ours"));
    CU_ASSERT_PTR_NOT_NULL(strstr(d.s.why, "key is not ours"));
    close_duo(&d);
    pp_tls_free(c);
    pp_tls_free(s);
}

/* Trap 1: a peer offering only suites without SHA-256 cannot use the
 * SHA-256 key, and nothing else passes. */
static void test_trap_suites(void)
{
    pp_tls *c = tls(0, &key, "TLS_AES_256_GCM_SHA384"), *s = tls(1, &key, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    duo d;
    CU_ASSERT_FALSE(connect_duo(&d, c, s));
    CU_ASSERT(both_failed(&d));
    printf("\n    client: %s\n    server: %s ", d.c.why, d.s.why);
    close_duo(&d);
    pp_tls_free(c);
    pp_tls_free(s);
}

/* Trap 2: a client with the key meets a server with a certificate (and no
 * key): it must not accept the certificate in place of the key. */
static void test_trap_client_takes_no_certificate(void)
{
    if (!have_certs) {
        printf("skipped: no openssl program to make certificates ");
        return;
    }
    pp_tls *c = tls(0, &key, NULL), *s = tls_certs(1, "server", "ca");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    duo d;
    CU_ASSERT_FALSE(connect_duo(&d, c, s));
    CU_ASSERT(d.c.closed && !d.c.ready);
    printf("\n    client: %s ", d.c.why);
    close_duo(&d);
    pp_tls_free(c);
    pp_tls_free(s);
}

/* Trap 3: a server with the key meets a client with a certificate: it has
 * none of its own to offer, and takes no client without the key. */
static void test_trap_server_takes_no_certificate(void)
{
    if (!have_certs) {
        printf("skipped: no openssl program to make certificates ");
        return;
    }
    pp_tls *c = tls_certs(0, "client", "ca"), *s = tls(1, &key, NULL);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    duo d;
    CU_ASSERT_FALSE(connect_duo(&d, c, s));
    CU_ASSERT(d.s.closed && !d.s.ready);
    printf("\n    server: %s ", d.s.why);
    close_duo(&d);
    pp_tls_free(c);
    pp_tls_free(s);
}

/* ---- certificates ---- */

static void test_certificates(void)
{
    if (!have_certs) {
        printf("skipped: no openssl program to make certificates ");
        return;
    }
    pp_tls *c = tls_certs(0, "client", "ca"), *s = tls_certs(1, "server", "ca");
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    duo d;
    CU_ASSERT(connect_duo(&d, c, s));
    CU_ASSERT_EQUAL(pp_conn_send(d.c.c, PP_T_PING, 0, 1, NULL, 0), 0);
    pp_conn_flush(d.c.c);
    RUN(d.l, d.s.frames == 1);
    CU_ASSERT_EQUAL(d.s.frames, 1);
    close_duo(&d);
    /* A client whose certificate another CA signed. */
    pp_tls *stranger = tls_certs(0, "stranger", "ca");
    CU_ASSERT_PTR_NOT_NULL_FATAL(stranger);
    CU_ASSERT_FALSE(connect_duo(&d, stranger, s));
    CU_ASSERT(both_failed(&d));
    printf("\n    a wrong CA: server: %s ", d.s.why);
    close_duo(&d);
    /* An expired client certificate. */
    pp_tls *old = tls_certs(0, "expired", "ca");
    CU_ASSERT_PTR_NOT_NULL_FATAL(old);
    CU_ASSERT_FALSE(connect_duo(&d, old, s));
    CU_ASSERT(both_failed(&d));
    printf("\n    expired: server: %s ", d.s.why);
    CU_ASSERT_PTR_NOT_NULL(strstr(d.s.why, "certificate has expired"));
    close_duo(&d);
    /* Half a configuration is refused at once. */
    char err[PP_ERR_LEN];
    CU_ASSERT_PTR_NULL(pp_tls_new(&(pp_tls_opts){.server = 1, .cert = "x.crt"}, err));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "all three"));
    pp_tls_free(stranger);
    pp_tls_free(old);
    pp_tls_free(c);
    pp_tls_free(s);
}

/* What the PEM files may hold, as OpenSSL's own file loaders took it: a
 * chain after the certificate (a node whose certificate an intermediate CA
 * signed, with only the root trusted), a CA file of several certificates. */
static pp_tls *tls_files(int server, const char *cert, const char *keyf, const char *ca)
{
    char c[128], k[128], a[128], err[PP_ERR_LEN];
    snprintf(c, sizeof c, "%s/%s", certdir, cert);
    snprintf(k, sizeof k, "%s/%s", certdir, keyf);
    snprintf(a, sizeof a, "%s/%s", certdir, ca);
    pp_tls *t = pp_tls_new(&(pp_tls_opts){.server = server, .cert = c, .key = k, .ca = a}, err);
    if (!t)
        fprintf(stderr, "\n  pp_tls_new: %s\n", err);
    return t;
}

static void test_certificate_chain(void)
{
    if (!have_certs || certs_make_chain(certdir) != 0) {
        printf("skipped: the openssl program could not make the certificates ");
        return;
    }
    /* The node presents leaf + intermediate; the client trusts the root,
     * from a CA file that holds another CA first. */
    pp_tls *s = tls_files(1, "chain.crt", "leaf.key", "ca.crt");
    pp_tls *c = tls_files(0, "client.crt", "client.key", "bundle.crt");
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    duo d;
    CU_ASSERT(connect_duo(&d, c, s));
    close_duo(&d);
    /* The leaf alone: the client cannot reach the root, so the chain in
     * the file above is what made it work. */
    pp_tls *bare = tls_files(1, "leaf.crt", "leaf.key", "ca.crt");
    CU_ASSERT_PTR_NOT_NULL_FATAL(bare);
    CU_ASSERT_FALSE(connect_duo(&d, c, bare));
    CU_ASSERT(both_failed(&d));
    printf("\n    leaf without its intermediate: client: %s ", d.c.why);
    close_duo(&d);
    /* A key that is not the certificate's. */
    char err[PP_ERR_LEN];
    char cf[128], kf[128], af[128];
    snprintf(cf, sizeof cf, "%s/chain.crt", certdir);
    snprintf(kf, sizeof kf, "%s/server.key", certdir);
    snprintf(af, sizeof af, "%s/ca.crt", certdir);
    CU_ASSERT_PTR_NULL(pp_tls_new(&(pp_tls_opts){.server = 1, .cert = cf, .key = kf, .ca = af},
                                  err));
    printf("\n    a key of another certificate: %s ", err);
    CU_ASSERT(strstr(err, "server.key") && strstr(err, "mismatch"));
    pp_tls_free(bare);
    pp_tls_free(c);
    pp_tls_free(s);
}

/* ---- plaintext peers ---- */

static void test_plaintext_peers(void)
{
    static const uint8_t reply[] = "PPreply"; /* what a node writes first */
    char err[PP_ERR_LEN];
    pp_tls_opts so = {.server = 1, .psk = key.psk, .plaintext_reply = reply,
                      .plaintext_reply_len = sizeof reply - 1};
    pp_tls *s = pp_tls_new(&so, err);
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    /* A plaintext client (a pp frame first) at a TLS node: told, refused. */
    pp_loop *l = pp_loop_new();
    int sv[2];
    CU_ASSERT_EQUAL_FATAL(pair(sv), 0);
    end e = {0};
    conn_on(l, sv[1], s, &e);
    uint8_t hdr[PP_WIRE_HDR];
    pp_wire_encode_hdr(hdr, PP_T_HELLO, 0, 0, 0);
    CU_ASSERT_EQUAL(write(sv[0], hdr, sizeof hdr), (ssize_t)sizeof hdr);
    RUN(l, e.closed);
    CU_ASSERT(e.closed && !e.ready);
    CU_ASSERT_PTR_NOT_NULL(strstr(e.why, "the client speaks plaintext; this node requires TLS"));
    char got[16] = "";
    CU_ASSERT_EQUAL(read(sv[0], got, sizeof got), (ssize_t)sizeof reply - 1);
    CU_ASSERT_EQUAL(memcmp(got, reply, sizeof reply - 1), 0);
    close(sv[0]);
    /* A TLS client at a plaintext node (the sniffing transport). */
    pp_tls *c = tls(0, &key, NULL);
    CU_ASSERT_EQUAL_FATAL(pair(sv), 0);
    end tc = {0}, pn = {0};
    conn_on(l, sv[0], c, &tc);
    pp_transport sniff;
    CU_ASSERT_EQUAL_FATAL(pp_tls_sniff_transport("PPplain", 7, &sniff), 0);
    pn.c = pp_conn_new(l, sv[1], sv[1], 8u << 20, PP_T_NET_MAX, &sniff, &cbs, &pn);
    CU_ASSERT_PTR_NOT_NULL_FATAL(pn.c);
    RUN(l, tc.closed && pn.closed);
    CU_ASSERT(tc.closed && !tc.ready && pn.closed && !pn.ready);
    printf("\n    client: %s\n    node: %s ", tc.why, pn.why);
    CU_ASSERT_PTR_NOT_NULL(strstr(tc.why, "the node speaks plaintext"));
    CU_ASSERT_PTR_NOT_NULL(strstr(pn.why, "a TLS client; this node speaks plaintext"));
    /* The sniffing transport lets a plaintext client through. */
    CU_ASSERT_EQUAL_FATAL(pair(sv), 0);
    end a = {0}, b = {0};
    conn_on(l, sv[0], NULL, &a);
    CU_ASSERT_EQUAL_FATAL(pp_tls_sniff_transport("PPplain", 7, &sniff), 0);
    b.c = pp_conn_new(l, sv[1], sv[1], 8u << 20, PP_T_NET_MAX, &sniff, &cbs, &b);
    CU_ASSERT_EQUAL(pp_conn_send(a.c, PP_T_PING, 0, 7, NULL, 0), 0);
    pp_conn_flush(a.c);
    RUN(l, b.frames == 1);
    CU_ASSERT_EQUAL(b.frames, 1);
    pp_conn_free(a.c);
    pp_conn_free(b.c);
    pp_loop_free(l);
    pp_tls_free(c);
    pp_tls_free(s);
}

/* ---- set-up ---- */

static int suite_init(void)
{
    signal(SIGPIPE, SIG_IGN); /* a test thread writes to sockets itself */
    snprintf(certdir, sizeof certdir, "/tmp/pptest-tls-XXXXXX");
    if (!mkdtemp(certdir))
        return -1;
    if (pp_auth_derive("the-shared-secret-of-the-tls-tests", 34, &key) != 0 ||
        pp_auth_derive("another-secret-of-the-tls-tests!!", 33, &other_key) != 0)
        return -1;
    have_certs = certs_make(certdir) == 0;
    return 0;
}

static int suite_clean(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", certdir);
    return system(cmd) == 0 ? 0 : -1;
}

int pp_register_suites(void)
{
    static const pp_test tests[] = {
        {"the shared key: frames both ways, one binding per session", test_psk_frames},
        {"a wrong key is refused by both sides", test_psk_wrong_key},
        {"trap 1: a peer without SHA-256 suites", test_trap_suites},
        {"trap 2: the client takes no certificate for the key",
         test_trap_client_takes_no_certificate},
        {"trap 3: the server takes no client without the key",
         test_trap_server_takes_no_certificate},
        {"certificates: a good pair, a wrong CA, an expired one", test_certificates},
        {"certificates: a chain after the certificate, a CA file of two", test_certificate_chain},
        {"plaintext peers are told, both ways", test_plaintext_peers},
        {NULL, NULL},
    };
    return pp_add_suite("pp_tls", suite_init, suite_clean, tests);
}
