/* SPDX-License-Identifier: MIT */
/* fuzz_session.c -- ppserver's sessions on hostile bytes: the handshake
 * state machine and, past a correct handshake done here, the JOB, MODULE
 * and control frame parsers (with zlib payloads), all through the node's own
 * code (ppserver_core) and event loop.  The input's first byte: bit 0 set =
 * authenticate first; the rest is what the client sends, then EOF.
 *
 * One node for the whole run (as a long-running ppserver sees one client
 * after another): no workers, a private module cache, no auth delay. */
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
#include "pp_proto.h"
#include "server.h"
#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char secret[] = "fuzz-secret-0123456789abcdef";
static server srv;
static srv_cfg cfg;
static volatile sig_atomic_t stop_flag;
static char cache_dir[64];
static pp_auth_key key;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    server_destroy(&srv);
    nftw(cache_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void setup(void)
{
    snprintf(cache_dir, sizeof cache_dir, "/tmp/pp-fuzz-XXXXXX");
    if (!mkdtemp(cache_dir))
        abort();
    static char iface[] = "127.0.0.1", level[] = "error";
    cfg = (srv_cfg){.port = 0, .interface = iface, .workers = 0, .cache_dir = cache_dir,
                    .log_level = level, .max_frame_mib = 1, .handshake_timeout = 10,
                    .heartbeat = 1, .dead_after = 10, .max_connections = 256,
                    .max_unauth = 64, .max_per_address = 64, .auth_delay = 0,
                    .max_queue = 64, .max_output_mib = 4};
    setenv("PP_WORKER", "/bin/true", 0); /* never started: no workers */
    signal(SIGPIPE, SIG_IGN);
    char err[PP_ERR_LEN];
    if (server_init(&srv, &cfg, secret, &stop_flag, err) != 0 ||
        pp_auth_derive(secret, strlen(secret), &key) != 0) {
        fprintf(stderr, "fuzz_session: %s\n", err);
        abort();
    }
    atexit(cleanup);
}

/* Runs the node's loop a few turns, reading what it sent into `rd`. */
static void pump(int fd, pp_wire_reader *rd, int turns)
{
    for (int i = 0; i < turns; i++) {
        pp_loop_run_once(srv.loop, 0);
        for (;;) {
            size_t room;
            uint8_t *p = pp_wire_reader_space(rd, &room);
            if (!p || !room)
                break;
            ssize_t k = read(fd, p, room);
            if (k <= 0)
                break;
            pp_wire_reader_commit(rd, (size_t)k);
        }
    }
}

/* The next frame the node sent (pumping up to 50 turns): 1, or 0. */
static int next_frame(int fd, pp_wire_reader *rd, pp_frame *f)
{
    for (int i = 0; i < 50; i++) {
        int r = pp_wire_reader_next(rd, f);
        if (r != 0)
            return r == 1;
        pump(fd, rd, 1);
    }
    return 0;
}

static int send_all(int fd, uint8_t type, const void *p, size_t n, pp_wire_reader *rd)
{
    uint8_t buf[PP_WIRE_HDR + 64];
    if (n > 64)
        return -1;
    pp_wire_encode_hdr(buf, type, 0, 0, (uint32_t)n);
    memcpy(buf + PP_WIRE_HDR, p, n);
    size_t off = 0, len = PP_WIRE_HDR + n;
    for (int i = 0; off < len && i < 100; i++) {
        ssize_t k = write(fd, buf + off, len - off);
        if (k > 0)
            off += (size_t)k;
        pump(fd, rd, 1);
    }
    return off == len ? 0 : -1;
}

/* A correct client handshake; the node must accept it. */
static void authenticate(int fd, pp_wire_reader *rd)
{
    uint8_t hello[2 + PP_NONCE_LEN] = {PP_PROTO_MIN, PP_PROTO_MAX};
    memset(hello + 2, 0x5A, PP_NONCE_LEN); /* fixed: runs must be repeatable */
    pp_frame f;
    if (send_all(fd, PP_T_HELLO, hello, sizeof hello, rd) != 0 || !next_frame(fd, rd, &f) ||
        f.hdr.type != PP_T_CHALLENGE || f.hdr.len != 1 + PP_NONCE_LEN + 8)
        abort();
    uint8_t ver = f.payload[0], ns[PP_NONCE_LEN], tr[PP_SHA256_LEN], mac[PP_MAC_LEN];
    memcpy(ns, f.payload + 1, PP_NONCE_LEN);
    pp_auth_transcript(hello, sizeof hello, f.payload, f.hdr.len, tr);
    pp_auth_proof(&key, PP_ROLE_CLIENT, ver, hello + 2, ns, tr, mac);
    if (send_all(fd, PP_T_PROOF, mac, sizeof mac, rd) != 0 || !next_frame(fd, rd, &f) ||
        f.hdr.type != PP_T_ACCEPT)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!srv.loop)
        setup();
    if (size < 1)
        return 0;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0)
        return 0;
    pp_wire_reader rd;
    if (pp_wire_reader_init(&rd, (1u << 20) + 1024, PP_T_NET_MAX) != 0 ||
        !session_new(&srv, sv[0], "fuzz:1")) {
        close(sv[0]);
        close(sv[1]);
        return 0;
    }
    if (data[0] & 1)
        authenticate(sv[1], &rd);
    /* The client's bytes; the node may stop reading (backpressure): then
     * they stop too. */
    size_t off = 1;
    for (int i = 0; off < size && i < 1000; i++) {
        ssize_t k = write(sv[1], data + off, size - off);
        if (k > 0)
            off += (size_t)k;
        else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
            break;
        pump(sv[1], &rd, 1);
        pp_frame f;
        while (pp_wire_reader_next(&rd, &f) == 1) {
        }
    }
    shutdown(sv[1], SHUT_WR);
    for (int i = 0; i < 20 && srv.sessions; i++) {
        pump(sv[1], &rd, 1);
        pp_frame f;
        while (pp_wire_reader_next(&rd, &f) == 1) {
        }
    }
    close(sv[1]);
    while (srv.sessions)
        session_free(srv.sessions);
    pp_loop_run_once(srv.loop, 0); /* deferred frees */
    pp_wire_reader_free(&rd);
    return 0;
}
