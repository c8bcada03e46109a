/* SPDX-License-Identifier: MIT */
/* pp_tls.c -- TLS 1.3 transport on OpenSSL 3 (see pp_tls.h). */
#include "pp_tls.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>

#include "pp_common.h"

#define STAGE 16384              /* small frames are gathered into one record */
#define READ_BUFFER (256 * 1024) /* records read ahead in one read(2) */
#define EXPORTER_LABEL "EXPORTER-pp inner proof"
#define PEM_FILE_MAX (1 << 20)   /* bytes of a certificate, key or CA file */

struct pp_tls {
    SSL_CTX *ctx;
    uint8_t psk[32];             /* the external PSK (wiped at free) */
    const SSL_CIPHER *cipher;    /* its suite; NULL with certificates */
    int server;
    void *reply;                 /* plaintext_reply (owned copy) */
    size_t reply_len;
};

/* One connection. */
typedef struct tls_conn {
    pp_tls *t;
    SSL *ssl;
    int plain_peer;              /* the peer's first record header was "PP": a pp frame */
    int wrong_key;               /* the handshake failed for a key that is not ours */
    uint8_t *stage;              /* STAGE bytes, on first use: small frames
                                    gathered into one record (a connection
                                    that only exchanges heartbeats, one frame
                                    a write, never needs it) */
    size_t staged;               /* bytes in stage waiting for SSL_write */
    size_t retry_len;            /* the length SSL_write must be retried with */
    const void *retry_buf;       /* ...and what it wrote from, if not stage */
    char err[PP_ERR_LEN];
} tls_conn;

/* OpenSSL's last error (and the queue emptied), or `fallback`. */
static void openssl_error(char *err, const char *what, const char *fallback)
{
    unsigned long e = ERR_get_error();
    char buf[200];
    if (e) {
        ERR_error_string_n(e, buf, sizeof buf);
        pp_seterr(err, "%s: %s", what, buf);
    } else {
        pp_seterr(err, "%s: %s", what, fallback);
    }
    ERR_clear_error();
}

/* ---- the PSK ---- */

/* The suite the PSK is bound to: 0 or -1. */
static int psk_cipher(pp_tls *t)
{
    static const unsigned char aes128gcmsha256[] = {0x13, 0x01};
    SSL *probe = SSL_new(t->ctx); /* SSL_CIPHER_find() needs an SSL */
    t->cipher = probe ? SSL_CIPHER_find(probe, aes128gcmsha256) : NULL;
    SSL_free(probe);
    return t->cipher ? 0 : -1;
}

/* The PSK as a new session for one handshake.  A session has a lifetime
 * (OpenSSL's default: 300 s from its creation): one made once and shared
 * would refuse every handshake after that, so each gets its own. */
static SSL_SESSION *psk_session(const pp_tls *t)
{
    SSL_SESSION *s = SSL_SESSION_new();
    if (s && (!SSL_SESSION_set1_master_key(s, t->psk, sizeof t->psk) ||
              !SSL_SESSION_set_cipher(s, t->cipher) ||
              !SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION))) {
        SSL_SESSION_free(s);
        s = NULL;
    }
    return s;
}

/* Client: offers the PSK under our identity.  A hello retry asking for
 * another hash (md) gets no PSK, and so no handshake (trap 2). */
static int use_psk(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
                   SSL_SESSION **sess)
{
    pp_tls *t = SSL_get_app_data(ssl);
    *sess = NULL;
    if (!t || !t->cipher)
        return 0;
    if (md && EVP_MD_get_type(md) != NID_sha256)
        return 1;
    if (!(*sess = psk_session(t)))
        return 0;
    *id = (const unsigned char *)PP_TLS_IDENTITY;
    *idlen = sizeof PP_TLS_IDENTITY - 1;
    return 1;
}

/* Server: our identity gets the PSK; any other, none (and, with no
 * certificate loaded, no handshake: trap 3). */
static int find_psk(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
    pp_tls *t = SSL_get_app_data(ssl);
    *sess = NULL;
    if (!t || !t->cipher || idlen != sizeof PP_TLS_IDENTITY - 1 ||
        memcmp(id, PP_TLS_IDENTITY, idlen) != 0)
        return 1;
    return (*sess = psk_session(t)) != NULL;
}

/* ---- the configuration ---- */

/* A PEM file's bytes in a memory BIO (secure heap: a key is wiped when it
 * is freed).  Read here, not by OpenSSL, so that the file is checked
 * first: a regular file (a FIFO in its place would block the open, a
 * device never end) of at most PEM_FILE_MAX bytes, that others may not
 * write (whoever writes a CA file chooses whom we trust) nor, for a key
 * (`secret`), read.  The group may: Debian's ssl-cert convention.  NULL
 * with the reason in err. */
static BIO *pem_file(const char *path, const char *what, int secret, char *err)
{
    struct stat st;
    int fd = pp_open_regular(path, &st);
    if (fd < 0) {
        if (errno)
            pp_seterr(err, "%s: cannot open the %s: %s", path, what, strerror(errno));
        else
            pp_seterr(err, "%s: the %s is not a regular file", path, what);
        return NULL;
    }
    char *buf = NULL;
    BIO *b = NULL;
    ssize_t got = -1;
    if (st.st_mode & (secret ? S_IROTH | S_IWOTH : S_IWOTH))
        pp_seterr(err, "%s: others may %s the %s (mode %03o); run: chmod o-rw %s", path,
                  secret ? "read or write" : "write", what, (unsigned)(st.st_mode & 0777), path);
    else if (st.st_size > PEM_FILE_MAX)
        pp_seterr(err, "%s: the %s is larger than %d bytes", path, what, PEM_FILE_MAX);
    else if (!(buf = malloc((size_t)st.st_size + 1)))
        pp_seterr(err, "%s: out of memory", path);
    else if ((got = pp_read_full(fd, buf, (size_t)st.st_size)) < 0)
        pp_seterr(err, "%s: cannot read the %s: %s", path, what, strerror(errno));
    else if (!(b = BIO_new(BIO_s_secmem())) || BIO_write(b, buf, (int)got) != (int)got) {
        pp_seterr(err, "%s: out of memory", path);
        BIO_free(b);
        b = NULL;
    }
    close(fd);
    if (buf) {
        OPENSSL_cleanse(buf, (size_t)st.st_size);
        free(buf);
    }
    return b;
}

/* The end of a PEM stream read to its last object is "no start line":
 * no error.  1 when nothing else failed. */
static int pem_end_ok(void)
{
    unsigned long e = ERR_peek_last_error();
    if (e && ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE) {
        ERR_clear_error();
        return 1;
    }
    return e == 0;
}

/* The certificate, then the chain after it (as
 * SSL_CTX_use_certificate_chain_file).  1 or 0 (OpenSSL's error queued). */
static int use_chain(SSL_CTX *ctx, BIO *b)
{
    X509 *x = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL);
    int ok = x && SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_clear_chain_certs(ctx) == 1;
    X509_free(x);
    X509 *ca;
    while (ok && (ca = PEM_read_bio_X509(b, NULL, NULL, NULL)))
        if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) {
            X509_free(ca);
            ok = 0;
        }
    return ok && pem_end_ok();
}

/* The key (a passphrase asked as OpenSSL asks it), matching the
 * certificate.  1 or 0. */
static int use_key(SSL_CTX *ctx, BIO *b)
{
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, SSL_CTX_get_default_passwd_cb(ctx),
                                          SSL_CTX_get_default_passwd_cb_userdata(ctx));
    int ok = k && SSL_CTX_use_PrivateKey(ctx, k) == 1 && SSL_CTX_check_private_key(ctx) == 1;
    EVP_PKEY_free(k);
    return ok;
}

/* The CA certificates (and CRLs) into the trust store.  1 or 0. */
static int use_ca(SSL_CTX *ctx, BIO *b)
{
    STACK_OF(X509_INFO) *v = PEM_X509_INFO_read_bio(b, NULL, NULL, NULL);
    X509_STORE *store = SSL_CTX_get_cert_store(ctx);
    int ok = v && store, n = 0;
    for (int i = 0; ok && i < sk_X509_INFO_num(v); i++) {
        X509_INFO *xi = sk_X509_INFO_value(v, i);
        if (xi->x509)
            ok = X509_STORE_add_cert(store, xi->x509) == 1 && ++n;
        if (ok && xi->crl)
            ok = X509_STORE_add_crl(store, xi->crl) == 1;
    }
    sk_X509_INFO_pop_free(v, X509_INFO_free);
    return ok && n > 0;
}

static int load_certs(pp_tls *t, const pp_tls_opts *o, char *err)
{
    static const struct {
        const char *what, *fallback;
        int (*use)(SSL_CTX *, BIO *);
    } steps[] = {
        {"certificate", "cannot load the certificate", use_chain},
        {"key", "cannot load the key (or it is not the certificate's)", use_key},
        {"CA file", "cannot load the CA certificates", use_ca},
    };
    const char *paths[] = {o->cert, o->key, o->ca};
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        BIO *b = pem_file(paths[i], steps[i].what, i == 1, err);
        if (!b)
            return -1;
        int ok = steps[i].use(t->ctx, b);
        BIO_free(b);
        if (!ok) {
            openssl_error(err, paths[i], steps[i].fallback);
            return -1;
        }
    }
    /* Mutual: each side requires the other's certificate. */
    SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    return 0;
}

pp_tls *pp_tls_new(const pp_tls_opts *o, char *err)
{
    int certs = o->cert || o->key || o->ca;
    if (certs && !(o->cert && o->key && o->ca)) {
        pp_seterr(err, "certificates need all three: a certificate, its key and the CA");
        return NULL;
    }
    if (!certs && !o->psk) {
        pp_seterr(err, "TLS needs the shared secret's key or certificates");
        return NULL;
    }
    pp_tls *t = calloc(1, sizeof *t);
    if (!t) {
        pp_seterr(err, "out of memory");
        return NULL;
    }
    t->server = o->server;
    t->ctx = SSL_CTX_new(o->server ? TLS_server_method() : TLS_client_method());
    if (!t->ctx) {
        openssl_error(err, "TLS", "cannot create a context");
        goto fail;
    }
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(t->ctx, TLS1_3_VERSION);
    SSL_CTX_set_options(t->ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF |
                                    SSL_OP_NO_RENEGOTIATION | SSL_OP_ENABLE_KTLS);
    SSL_CTX_set_num_tickets(t->ctx, 0);
    SSL_CTX_set_max_early_data(t->ctx, 0);
    SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                                 SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_RELEASE_BUFFERS);
    /* One read(2) per burst instead of two per record (its header, then
     * its body): half the reads of a small frame.  pending() counts what
     * is read ahead (SSL_has_pending). */
    SSL_CTX_set_read_ahead(t->ctx, 1);
    /* A burst of a large frame's records per read(2), not one: fewer
     * system calls, and the conn keeps reading what is buffered instead of
     * going back to the loop after each record.  The buffer is held only
     * while it holds bytes (SSL_MODE_RELEASE_BUFFERS). */
    SSL_CTX_set_default_read_buffer_len(t->ctx, READ_BUFFER);
    if (SSL_CTX_set_ciphersuites(t->ctx, o->suites ? o->suites : PP_TLS_SUITES) != 1) {
        openssl_error(err, "TLS", "no usable cipher suite");
        goto fail;
    }
    if (certs) {
        if (load_certs(t, o, err) != 0)
            goto fail;
    } else {
        memcpy(t->psk, o->psk, sizeof t->psk);
        SSL_SESSION *probe = psk_cipher(t) == 0 ? psk_session(t) : NULL;
        SSL_SESSION_free(probe); /* made once here: a failure shows now */
        if (!probe) {
            openssl_error(err, "TLS", "cannot set up the pre-shared key");
            goto fail;
        }
        if (o->server) {
            SSL_CTX_set_psk_find_session_callback(t->ctx, find_psk);
        } else {
            SSL_CTX_set_psk_use_session_callback(t->ctx, use_psk);
            /* An empty trust store: a certificate offered instead of the
             * PSK can never verify (trap 2). */
            SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER, NULL);
        }
    }
    if (o->plaintext_reply_len) {
        if (!(t->reply = malloc(o->plaintext_reply_len))) {
            pp_seterr(err, "out of memory");
            goto fail;
        }
        memcpy(t->reply, o->plaintext_reply, o->plaintext_reply_len);
        t->reply_len = o->plaintext_reply_len;
    }
    return t;
fail:
    pp_tls_free(t);
    return NULL;
}

void pp_tls_free(pp_tls *t)
{
    if (!t)
        return;
    OPENSSL_cleanse(t->psk, sizeof t->psk);
    SSL_CTX_free(t->ctx);
    free(t->reply);
    free(t);
}

/* ---- the transport ---- */

/* What the peer sent first, without taking it: 1 when it is a pp frame
 * ("PP"), 2 a TLS handshake record (0x16 0x03), 0 other, -1 nothing yet. */
static int sniff(int fd)
{
    unsigned char b[2];
    ssize_t n = recv(fd, b, sizeof b, MSG_PEEK | MSG_DONTWAIT);
    if (n < (ssize_t)sizeof b)
        return n == 0 ? 0 : -1;
    if (b[0] == 'P' && b[1] == 'P')
        return 1;
    return b[0] == 0x16 && b[1] == 0x03 ? 2 : 0;
}

/* Writes a short reply before closing: best effort, never blocks long. */
static void reply_raw(int fd, const void *p, size_t n)
{
    if (p && n)
        (void)send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* A failing step: the reason from OpenSSL's queue, and what it means: a
 * key that is not ours (the server sees the client's binder fail; the
 * client, the server's alert about it), a certificate that does not
 * verify (and why). */
static pp_tr_status fail_ssl(tls_conn *c, int rc, const char *what)
{
    int e = SSL_get_error(c->ssl, rc);
    unsigned long code = ERR_peek_error();
    int reason = ERR_GET_REASON(code);
    if ((e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) && !code) {
        pp_seterr(c->err, "%s: %s", what,
                  e == SSL_ERROR_SYSCALL && errno ? strerror(errno) : "the peer closed");
        return PP_TR_FAILED;
    }
    c->wrong_key = c->t->cipher && (reason == SSL_R_BINDER_DOES_NOT_VERIFY ||
                                 reason == SSL_R_SSLV3_ALERT_ILLEGAL_PARAMETER ||
                                 reason == SSL_R_TLSV1_ALERT_DECRYPT_ERROR);
    openssl_error(c->err, what, "failed");
    long v = SSL_get_verify_result(c->ssl);
    if (reason == SSL_R_CERTIFICATE_VERIFY_FAILED && v != X509_V_OK) {
        size_t n = strlen(c->err);
        snprintf(c->err + n, sizeof c->err - n, " (%s)", X509_verify_cert_error_string(v));
    }
    if (c->wrong_key) {
        size_t n = strlen(c->err);
        snprintf(c->err + n, sizeof c->err - n, " (the %s's key is not ours: another secret?)",
                 c->t->server ? "client" : "node");
    }
    return PP_TR_FAILED;
}

/* Each record header OpenSSL reads, before it checks it: a plaintext
 * peer's first bytes are a pp frame's "PP" (a client's HELLO, or a node's
 * ERROR telling us it speaks plaintext).  Seen here whenever they arrive,
 * even within the very read that follows our ClientHello. */
static void on_record(int write_p, int version, int content_type, const void *buf, size_t len,
                      SSL *ssl, void *arg)
{
    (void)version;
    (void)ssl;
    const unsigned char *p = buf;
    if (!write_p && content_type == SSL3_RT_HEADER && len >= 2 && p[0] == 'P' && p[1] == 'P')
        ((tls_conn *)arg)->plain_peer = 1;
}

/* The peer speaks plaintext: a node tells the client so, in a pp frame it
 * can read; either side says so. */
static pp_tr_status fail_plain_peer(tls_conn *c, int fd)
{
    ERR_clear_error();
    if (c->t->server) {
        reply_raw(fd, c->t->reply, c->t->reply_len);
        pp_seterr(c->err, "the client speaks plaintext; this node requires TLS");
    } else {
        pp_seterr(c->err, "the node speaks plaintext; this client requires TLS (turn TLS off on "
                          "both sides only on a trusted network)");
    }
    return PP_TR_FAILED;
}

static pp_tr_status tls_handshake(void *ctx, int rfd, int wfd)
{
    tls_conn *c = ctx;
    pp_tls *t = c->t;
    if (SSL_get_fd(c->ssl) < 0 && (SSL_set_rfd(c->ssl, rfd) != 1 || SSL_set_wfd(c->ssl, wfd) != 1)) {
        openssl_error(c->err, "TLS", "cannot attach the socket");
        return PP_TR_FAILED;
    }
    ERR_clear_error();
    int rc = SSL_do_handshake(c->ssl);
    if (rc != 1) {
        int e = SSL_get_error(c->ssl, rc);
        if (e == SSL_ERROR_WANT_READ)
            return PP_TR_WANT_READ;
        if (e == SSL_ERROR_WANT_WRITE)
            return PP_TR_WANT_WRITE;
        if (c->plain_peer)
            return fail_plain_peer(c, rfd);
        return fail_ssl(c, rc, "TLS handshake");
    }
    SSL_set_msg_callback(c->ssl, NULL); /* the handshake's records only */
    /* PSK mode: the PSK must have been used, or the peer was not proven
     * (traps 2 and 3), whatever OpenSSL accepted. */
    if (t->cipher && !SSL_session_reused(c->ssl)) {
        pp_seterr(c->err, "TLS handshake: the peer did not use the shared key");
        return PP_TR_FAILED;
    }
    return PP_TR_DONE;
}

static ssize_t tls_read(void *ctx, int fd, void *buf, size_t n, pp_tr_status *want)
{
    (void)fd;
    tls_conn *c = ctx;
    ERR_clear_error();
    size_t got = 0;
    int rc = SSL_read_ex(c->ssl, buf, n, &got);
    if (rc == 1)
        return (ssize_t)got;
    switch (SSL_get_error(c->ssl, rc)) {
    case SSL_ERROR_ZERO_RETURN:
        return 0;
    case SSL_ERROR_WANT_READ:
        *want = PP_TR_WANT_READ;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        *want = PP_TR_WANT_WRITE;
        errno = EAGAIN;
        return -1;
    }
    fail_ssl(c, rc, "TLS");
    errno = EPROTO;
    return -1;
}

/* Writes `len` bytes at p as records; partial writes return what went. */
static ssize_t write_some(tls_conn *c, const void *p, size_t len, pp_tr_status *want)
{
    ERR_clear_error();
    size_t done = 0;
    int rc = SSL_write_ex(c->ssl, p, len, &done);
    if (rc == 1) {
        c->retry_len = 0;
        return (ssize_t)done;
    }
    int e = SSL_get_error(c->ssl, rc);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        /* SSL_write() must be called again with the same bytes. */
        c->retry_len = len;
        *want = e == SSL_ERROR_WANT_WRITE ? PP_TR_WANT_WRITE : PP_TR_WANT_READ;
        errno = EAGAIN;
        return -1;
    }
    fail_ssl(c, rc, "TLS");
    errno = EPROTO;
    return -1;
}

static ssize_t tls_writev(void *ctx, int fd, const struct iovec *iov, int iovcnt,
                          pp_tr_status *want)
{
    (void)fd;
    tls_conn *c = ctx;
    /* A large piece goes as it is (records of 16 KiB, no copy); small ones
     * are gathered so that many tiny frames make one record. */
    if (iov[0].iov_len >= STAGE || iovcnt == 1)
        return write_some(c, iov[0].iov_base, c->retry_len && c->retry_len <= iov[0].iov_len
                                                  ? c->retry_len
                                                  : iov[0].iov_len,
                          want);
    if (!c->stage && !(c->stage = malloc(STAGE)))
        return write_some(c, iov[0].iov_base, c->retry_len && c->retry_len <= iov[0].iov_len
                                                  ? c->retry_len
                                                  : iov[0].iov_len,
                          want); /* no memory: one piece at a time */
    size_t n = 0;
    size_t limit = c->retry_len ? c->retry_len : STAGE;
    for (int i = 0; i < iovcnt && n < limit; i++) {
        size_t k = PP_MIN(iov[i].iov_len, limit - n);
        memcpy(c->stage + n, iov[i].iov_base, k);
        n += k;
    }
    return write_some(c, c->stage, n, want);
}

static size_t tls_pending(void *ctx)
{
    tls_conn *c = ctx;
    int n = SSL_pending(c->ssl);
    return n > 0 ? (size_t)n : SSL_has_pending(c->ssl) ? 1 : 0;
}

static const char *tls_error(void *ctx)
{
    tls_conn *c = ctx;
    return c->err;
}

static void tls_shutdown(void *ctx, int wfd)
{
    (void)wfd;
    tls_conn *c = ctx;
    ERR_clear_error();
    (void)SSL_shutdown(c->ssl); /* close_notify, best effort */
    ERR_clear_error();
}

static void tls_free(void *ctx)
{
    tls_conn *c = ctx;
    SSL_free(c->ssl);
    free(c->stage);
    free(c);
}

static const pp_transport_ops tls_ops = {
    .handshake = tls_handshake,
    .read = tls_read,
    .writev = tls_writev,
    .pending = tls_pending,
    .error = tls_error,
    .shutdown = tls_shutdown,
    .free = tls_free,
};

int pp_tls_transport(pp_tls *t, pp_transport *out, char *err)
{
    tls_conn *c = calloc(1, sizeof *c);
    if (!c) {
        pp_seterr(err, "out of memory");
        return -1;
    }
    c->t = t;
    c->ssl = SSL_new(t->ctx);
    if (!c->ssl) {
        openssl_error(err, "TLS", "cannot create a connection");
        free(c);
        return -1;
    }
    SSL_set_app_data(c->ssl, t);
    SSL_set_msg_callback(c->ssl, on_record);
    SSL_set_msg_callback_arg(c->ssl, c);
    if (t->server)
        SSL_set_accept_state(c->ssl);
    else
        SSL_set_connect_state(c->ssl);
    *out = (pp_transport){.ops = &tls_ops, .ctx = c};
    return 0;
}

int pp_tls_binding(void *ctx, uint8_t out[PP_TLS_BINDING_LEN])
{
    tls_conn *c = ctx;
    return SSL_export_keying_material(c->ssl, out, PP_TLS_BINDING_LEN, EXPORTER_LABEL,
                                      sizeof EXPORTER_LABEL - 1, NULL, 0, 0) == 1
               ? 0
               : -1;
}

int pp_tls_wrong_key(void *ctx)
{
    tls_conn *c = ctx;
    return c->wrong_key;
}

void pp_tls_ktls(void *ctx, int *send, int *recv)
{
    tls_conn *c = ctx;
    *send = BIO_get_ktls_send(SSL_get_wbio(c->ssl)) > 0;
    *recv = BIO_get_ktls_recv(SSL_get_rbio(c->ssl)) > 0;
}

/* ---- the plaintext side: telling a TLS client ---- */

typedef struct sniff_conn {
    size_t len;
    char err[PP_ERR_LEN];
    unsigned char reply[];
} sniff_conn;

static pp_tr_status sniff_handshake(void *ctx, int rfd, int wfd)
{
    (void)wfd;
    sniff_conn *c = ctx;
    int kind = sniff(rfd);
    if (kind < 0)
        return PP_TR_WANT_READ;
    if (kind == 2) {
        reply_raw(rfd, c->reply, c->len);
        pp_seterr(c->err, "a TLS client; this node speaks plaintext (--no-tls)");
        return PP_TR_FAILED;
    }
    return PP_TR_DONE; /* anything else: the frame reader judges it */
}

static ssize_t sniff_read(void *ctx, int fd, void *buf, size_t n, pp_tr_status *want)
{
    return pp_transport_plain_ops.read(ctx, fd, buf, n, want);
}

static ssize_t sniff_writev(void *ctx, int fd, const struct iovec *iov, int iovcnt,
                            pp_tr_status *want)
{
    return pp_transport_plain_ops.writev(ctx, fd, iov, iovcnt, want);
}

static const char *sniff_error(void *ctx)
{
    sniff_conn *c = ctx;
    return c->err[0] ? c->err : NULL;
}

static const pp_transport_ops sniff_ops = {
    .handshake = sniff_handshake,
    .read = sniff_read,
    .writev = sniff_writev,
    .error = sniff_error,
    .free = free,
};

int pp_tls_sniff_transport(const void *reply, size_t len, pp_transport *out)
{
    sniff_conn *c = calloc(1, sizeof *c + len);
    if (!c)
        return -1;
    c->len = len;
    if (len)
        memcpy(c->reply, reply, len);
    *out = (pp_transport){.ops = &sniff_ops, .ctx = c};
    return 0;
}
