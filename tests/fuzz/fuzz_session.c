/* SPDX-License-Identifier: MIT */
/* fuzz_session.c -- ppserver's sessions on hostile bytes: the handshake
 * state machine and, past a correct handshake done here, the JOB, MODULE
 * and control frame parsers (with zlib payloads), all through the node's own
 * code (ppserver_core) and event loop -- in plaintext, behind TLS (the
 * bytes encrypted by a real TLS client, so that they reach the parsers as
 * they would on the wire), and raw into a TLS node's handshake.  The
 * input's first byte: bit 1 clear = a --no-tls node, the rest as bytes on
 * the socket; bit 1 set = a TLS node: bit 2 set = the rest raw on the
 * socket, clear = a TLS handshake first and the rest sent through it.
 * Bit 0 set = the inner handshake first (a correct one).  Bit 3 set = the
 * first PP_WIRE_HDR + HEAD_IN bytes of the rest are a frame's header and
 * the start of its body, which the harness completes with zeros up to the
 * length the header gives (when within the node's limit): e.g. a JOB above
 * PP_WIRE_BIG, received into a shared buffer, that no input could hold.
 * Then EOF.
 *
 * One node of each kind for the whole run (as a long-running ppserver sees
 * one client after another): no workers, a private module cache, no auth
 * delay, budgets of a few MiB. */
#include <errno.h>
#include <ftw.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pp_auth.h"
#include "pp_common.h"
#include "pp_handshake.h"
#include "pp_proto.h"
#include "pp_tls.h"
#include "server.h"
#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char secret[] = "fuzz-secret-0123456789abcdef";
static server plain_srv, tls_srv;
static srv_cfg plain_cfg, tls_cfg;
static volatile sig_atomic_t stop_flag;
static char cache_dir[64];
static pp_auth_key key;
static pp_tls *client_tls;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    server_destroy(&plain_srv);
    server_destroy(&tls_srv);
    pp_tls_free(client_tls);
    nftw(cache_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
    snprintf(cache_dir, sizeof cache_dir, "/tmp/pp-fuzz-XXXXXX");
    if (!mkdtemp(cache_dir))
        abort();
    static char iface[] = "127.0.0.1", level[] = "error";
    plain_cfg = (srv_cfg){.port = 0, .interface = iface, .workers = 0, .cache_dir = cache_dir,
                          .log_level = level, .max_frame_mib = 1, .handshake_timeout = 10,
                          .heartbeat = 1, .dead_after = 10, .max_connections = 256,
                          .max_unauth = 64, .max_per_address = 64, .auth_delay = 0,
                          .max_queue = 64, .max_output_mib = 4, .no_tls = 1,
                          /* small budgets: a few compressed jobs declaring
                           * 1 MiB fill them (the backlog, session_admit) */
                          .session_budget_mib = 2, .server_budget_mib = 3};
    tls_cfg = plain_cfg;
    tls_cfg.no_tls = 0;
    setenv("PP_WORKER", "/bin/true", 0); /* never started: no workers */
    signal(SIGPIPE, SIG_IGN);
    char err[PP_ERR_LEN];
    if (server_init(&plain_srv, &plain_cfg, secret, &stop_flag, err) != 0 ||
        server_init(&tls_srv, &tls_cfg, secret, &stop_flag, err) != 0 ||
        pp_auth_derive(secret, strlen(secret), &key) != 0) {
        fprintf(stderr, "fuzz_session: %s\n", err);
        abort();
    }
    client_tls = pp_tls_new(&(pp_tls_opts){.server = 0, .psk = key.psk}, err);
    if (!client_tls) {
        fprintf(stderr, "fuzz_session: %s\n", err);
        abort();
    }
    atexit(cleanup);
}

/* The client's end of the socket: plain, or through a TLS session. */
typedef struct end {
    server *srv;
    int fd;
    pp_transport tr;          /* .ops NULL: plain */
    pp_wire_reader rd;        /* what the node sent */
} end;

static ssize_t end_write(end *e, const void *p, size_t n)
{
    if (!e->tr.ops)
        return write(e->fd, p, n);
    struct iovec iov = {(void *)p, n};
    pp_tr_status want;
    return e->tr.ops->writev(e->tr.ctx, e->fd, &iov, 1, &want);
}

/* Runs the node's loop a few turns, reading what it sent into e->rd. */
static void pump(end *e, int turns)
{
    for (int i = 0; i < turns; i++) {
        pp_loop_run_once(e->srv->loop, 0);
        for (;;) {
            size_t room;
            uint8_t *p = pp_wire_reader_space(&e->rd, &room);
            if (!p || !room)
                break;
            pp_tr_status want;
            ssize_t k = e->tr.ops ? e->tr.ops->read(e->tr.ctx, e->fd, p, room, &want)
                                  : read(e->fd, p, room);
            if (k <= 0)
                break;
            pp_wire_reader_commit(&e->rd, (size_t)k);
        }
    }
}

/* The next frame the node sent (pumping up to 50 turns): 1, or 0. */
static int next_frame(end *e, pp_frame *f)
{
    for (int i = 0; i < 50; i++) {
        int r = pp_wire_reader_next(&e->rd, f);
        if (r != 0)
            return r == 1;
        pump(e, 1);
    }
    return 0;
}

static int send_frame(end *e, uint8_t type, const void *p, size_t n)
{
    uint8_t buf[PP_WIRE_HDR + 64];
    if (n > 64)
        return -1;
    pp_wire_encode_hdr(buf, type, 0, 0, (uint32_t)n);
    memcpy(buf + PP_WIRE_HDR, p, n);
    size_t off = 0, len = PP_WIRE_HDR + n;
    for (int i = 0; off < len && i < 100; i++) {
        ssize_t k = end_write(e, buf + off, len - off);
        if (k > 0)
            off += (size_t)k;
        pump(e, 1);
    }
    return off == len ? 0 : -1;
}

/* A TLS client's handshake with the node, pumping its loop. */
static void tls_handshake(end *e)
{
    char err[PP_ERR_LEN];
    if (pp_tls_transport(client_tls, &e->tr, err) != 0)
        abort();
    for (int i = 0; i < 200; i++) {
        pp_tr_status st = e->tr.ops->handshake(e->tr.ctx, e->fd, e->fd);
        if (st == PP_TR_DONE)
            return;
        if (st == PP_TR_FAILED)
            break;
        pp_loop_run_once(e->srv->loop, 0);
    }
    fprintf(stderr, "fuzz_session: TLS handshake failed: %s\n", e->tr.ops->error(e->tr.ctx));
    abort();
}

/* A correct inner handshake (bound to the TLS session, if any); the node
 * must accept it. */
static void authenticate(end *e)
{
    uint8_t binding[PP_TLS_BINDING_LEN];
    if (e->tr.ops && pp_tls_binding(e->tr.ctx, binding) != 0)
        abort();
    pp_hs hs;
    uint8_t hello[PP_HELLO_LEN], proof[PP_MAC_LEN];
    pp_frame f;
    if (pp_hs_client_hello(&hs, &key, e->tr.ops ? binding : NULL, hello) != PP_HS_OK ||
        send_frame(e, PP_T_HELLO, hello, sizeof hello) != 0 || !next_frame(e, &f) ||
        f.hdr.type != PP_T_CHALLENGE || pp_hs_client_challenge(&hs, &f, proof) != PP_HS_OK ||
        send_frame(e, PP_T_PROOF, proof, sizeof proof) != 0 || !next_frame(e, &f) ||
        f.hdr.type != PP_T_ACCEPT || pp_hs_client_accept(&hs, &f) != PP_HS_OK)
        abort();
    pp_hs_wipe(&hs);
}

#define HEAD_IN 64 /* a large frame's body bytes that come from the input */

/* The bytes to send: the input's, with a large frame's body completed
 * (bit 3 of the first byte).  *out: data, or a malloc'd copy to free. */
static size_t expand_input(const uint8_t *data, size_t size, uint32_t limit, uint8_t **out)
{
    *out = (uint8_t *)data;
    size_t k = PP_WIRE_HDR + HEAD_IN;
    if (!(data[0] & 8) || size < 1 + k)
        return size;
    uint32_t len = pp_load32(data + 1 + 16);
    size_t pad = len > HEAD_IN && len <= limit ? len - HEAD_IN : 0;
    uint8_t *b = malloc(size + pad);
    if (!b)
        return size;
    memcpy(b, data, 1 + k);
    memset(b + 1 + k, 0, pad);
    memcpy(b + 1 + k + pad, data + 1 + k, size - 1 - k);
    *out = b;
    return size + pad;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!plain_srv.loop)
        setup();
    if (size < 1)
        return 0;
    int tls = data[0] & 2, raw = data[0] & 4;
    end e = {.srv = tls ? &tls_srv : &plain_srv};
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return 0;
    e.fd = sv[1];
    if (pp_wire_reader_init(&e.rd, (1u << 20) + 1024, PP_T_NET_MAX) != 0 ||
        !session_new(e.srv, sv[0], "fuzz:1")) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    if (tls && !raw)
        tls_handshake(&e);
    if ((data[0] & 1) && !(tls && raw))
        authenticate(&e);
    /* The client's bytes; the node may stop reading (backpressure): then
     * they stop too. */
    uint8_t *in;
    size_t n = expand_input(data, size, e.srv->max_frame + 1024u, &in);
    size_t off = 1;
    for (int i = 0; off < n && i < 1000; i++) {
        ssize_t k = raw || !tls ? write(e.fd, in + off, n - off) : end_write(&e, in + off, n - off);
        if (k > 0)
            off += (size_t)k;
        else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            break;
        pump(&e, 1);
        pp_frame f;
        while (pp_wire_reader_next(&e.rd, &f) == 1) {
        }
    }
    shutdown(e.fd, SHUT_WR);
    for (int i = 0; i < 20 && e.srv->sessions; i++) {
        pump(&e, 1);
        pp_frame f;
        while (pp_wire_reader_next(&e.rd, &f) == 1) {
        }
    }
    close(e.fd);
    if (e.tr.ops)
        e.tr.ops->free(e.tr.ctx);
    while (e.srv->sessions)
        session_free(e.srv->sessions);
    pp_loop_run_once(e.srv->loop, 0); /* deferred frees */
    pp_wire_reader_free(&e.rd);
    if (in != data)
        free(in);
    return 0;
}
