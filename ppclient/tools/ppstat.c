/* SPDX-License-Identifier: MIT */
/* ppstat -- asks ppserver nodes for their status over the normal
 * authenticated connection (TLS 1.3 PSK and the mutual handshake, as libpp
 * does; STATUS once authenticated) and prints a table per node, or JSON.
 * All nodes are asked at once, from one event loop, each with its own
 * deadline; a node that fails is named with the reason and makes the exit
 * status 1, the others are still printed. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pp.h"
#include "pp_auth.h"
#include "pp_common.h"
#include "pp_conf.h"
#include "pp_conn.h"
#include "pp_handshake.h"
#include "pp_loop.h"
#include "pp_net.h"
#include "pp_proto.h"
#include "pp_resolve.h"
#include "pp_tls.h"
#include "ppstat_parse.h"
#include "ppstat_print.h"

#define EXIT_NODE 1   /* a node could not be asked */
#define EXIT_USAGE 2

typedef struct opts {
    const char *secret_file;
    int json, no_tls;
    double watch, timeout;
    char **nodes;
    int nnodes;
} opts;

typedef enum { T_CONNECTING, T_HELLO, T_PROOF, T_ASKED, T_DONE, T_FAILED } tstate;

typedef struct target {
    const char *spec;          /* as given */
    char name[300];            /* "host:port" */
    char host[256];
    int port;
    pp_conn *conn;
    void *tls;                 /* the TLS transport's ctx (the conn owns it) */
    uint8_t binding[PP_TLS_BINDING_LEN];
    pp_hs hs;
    tstate state;
    pp_timer timer;
    char err[PP_ERR_LEN];
    ppstat_node node;
    const pp_auth_key *key;
    pp_loop *loop;
    pp_tls *tls_cfg;           /* NULL with --no-tls */
    pp_resolve *lookup;        /* a host name being looked up, or NULL */
    pp_io lio;                 /* its fd, watched */
} target;

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: ppstat [OPTION]... host[:port]...\n"
            "Asks ppserver nodes for their status (authenticated) and prints it per node:\n"
            "version, uptime, workers, clients, jobs, modules, authentication failures.\n\n"
            "  --secret-file FILE  the cluster's shared secret (else $PP_SECRET)\n"
            "  --json              one JSON document (per refresh) instead of tables\n"
            "  --watch SECONDS     ask again every SECONDS until interrupted\n"
            "  --timeout SECONDS   give each node this long to answer (default 5)\n"
            "  --no-tls            plaintext, for nodes run with --no-tls\n"
            "  -h, --help          print this help and exit\n"
            "      --version       print the version and exit\n\n"
            "The port defaults to %d.  Exit status: 0 every node answered, 1 a node\n"
            "could not be asked (its line says why), 2 usage.\n",
            PP_DEFAULT_PORT);
}

static int parse_seconds(const char *opt, const char *s, double min, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !isfinite(v) || v < min || v > 86400) {
        fprintf(stderr, "ppstat: %s %s: expected seconds (%g to 86400)\n", opt, s, min);
        return -1;
    }
    *out = v;
    return 0;
}

/* The command line into *o: 0, 1 (--help/--version done) or -1 (usage). */
static int parse_args(int argc, char **argv, opts *o)
{
    enum { O_SECRET = 256, O_JSON, O_WATCH, O_TIMEOUT, O_NOTLS, O_VERSION };
    static const struct option lo[] = {
        {"secret-file", required_argument, NULL, O_SECRET}, {"json", no_argument, NULL, O_JSON},
        {"watch", required_argument, NULL, O_WATCH}, {"timeout", required_argument, NULL, O_TIMEOUT},
        {"no-tls", no_argument, NULL, O_NOTLS},     {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, O_VERSION},  {NULL, 0, NULL, 0}};
    *o = (opts){.timeout = 5};
    int c;
    while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
        if (c == O_SECRET)
            o->secret_file = optarg;
        else if (c == O_JSON)
            o->json = 1;
        else if (c == O_NOTLS)
            o->no_tls = 1;
        else if (c == O_WATCH && parse_seconds("--watch", optarg, 0.1, &o->watch) != 0)
            return -1;
        else if (c == O_TIMEOUT && parse_seconds("--timeout", optarg, 0.01, &o->timeout) != 0)
            return -1;
        else if (c == 'h' || c == O_VERSION) {
            if (c == 'h')
                usage(stdout);
            else
                printf("ppstat %s\n", pp_version());
            return 1;
        } else if (c != O_WATCH && c != O_TIMEOUT) {
            fprintf(stderr, "Try 'ppstat --help'.\n");
            return -1;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "ppstat: name at least one node (host[:port])\nTry 'ppstat --help'.\n");
        return -1;
    }
    o->nodes = argv + optind;
    o->nnodes = argc - optind;
    return 0;
}

/* The keys from --secret-file or $PP_SECRET (or $PP_SECRET_FILE).  0, or
 * -1 after a message. */
static int load_key(const opts *o, pp_auth_key *key)
{
    char err[PP_ERR_LEN];
    const char *env = getenv("PP_SECRET"), *envfile = getenv("PP_SECRET_FILE");
    const char *file = o->secret_file ? o->secret_file
                       : (!env || !*env) && envfile && *envfile ? envfile : NULL;
    char *secret = file ? pp_conf_read_secret(file, err) : env && *env ? strdup(env) : NULL;
    if (!secret) {
        if (file)
            fprintf(stderr, "ppstat: %s: %s\n", file, err);
        else
            fprintf(stderr, "ppstat: no secret: give --secret-file FILE or set PP_SECRET\n");
        return -1;
    }
    size_t len;
    int rc = pp_auth_secret(secret, &len, err);
    if (rc != 0)
        fprintf(stderr, "ppstat: %s: %s\n", file ? file : "PP_SECRET", err);
    else if ((rc = pp_auth_derive(secret, len, key)) != 0)
        fprintf(stderr, "ppstat: cannot derive the keys from the secret\n");
    pp_auth_wipe(secret, strlen(secret));
    free(secret);
    return rc;
}

/* ---- asking one node ---- */

static void t_fail(target *t, const char *fmt, ...) PP_PRINTF(2, 3);

static void t_end(target *t, tstate st)
{
    t->state = st;
    pp_timer_stop(t->loop, &t->timer);
    if (t->lookup) {
        pp_loop_del(t->loop, &t->lio);
        pp_resolve_drop(t->lookup); /* a slow lookup finishes alone */
        t->lookup = NULL;
    }
    pp_hs_wipe(&t->hs);
    pp_conn_free(t->conn);
    t->conn = NULL;
}

static void t_fail(target *t, const char *fmt, ...)
{
    if (t->state >= T_DONE)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err, sizeof t->err, fmt, ap);
    va_end(ap);
    for (char *c = t->err; *c; c++) /* the node's words may be in it: no escapes to a terminal */
        if ((unsigned char)*c < 0x20 || (unsigned char)*c > 0x7e)
            *c = '?';
    t_end(t, T_FAILED);
}

/* Queues a frame and writes it at once (a conn only writes when told).
 * 0, or -1 when it could not be queued; a write that fails closes the conn
 * and on_close says why. */
static int send_now(pp_conn *c, uint8_t type, uint64_t id, const void *p, size_t n)
{
    if (pp_conn_send(c, type, 0, id, p, n) != 0)
        return -1;
    (void)pp_conn_flush(c);
    return 0;
}

static void t_ready(pp_conn *c, void *data)
{
    target *t = data;
    const uint8_t *binding = NULL;
    if (t->tls) {
        if (pp_tls_binding(t->tls, t->binding) != 0) {
            t_fail(t, "cannot bind the handshake to the TLS session");
            return;
        }
        binding = t->binding;
    }
    uint8_t hello[PP_HELLO_LEN];
    if (pp_hs_client_hello(&t->hs, t->key, binding, hello) != PP_HS_OK ||
        send_now(c, PP_T_HELLO, 0, hello, sizeof hello) != 0) {
        t_fail(t, "%s", t->hs.err[0] ? t->hs.err : "cannot send HELLO");
        return;
    }
    t->state = T_HELLO;
}

static void t_error_frame(target *t, const pp_frame *f)
{
    pp_msg_error m;
    if (pp_proto_error_decode(f, &m) != 0)
        t_fail(t, "the node sent a malformed ERROR");
    else if (m.code == PP_E_AUTH)
        t_fail(t, "authentication failed: %s (is the secret the same as the node's?)", m.msg);
    else
        t_fail(t, "the node refused: %s", m.msg);
}

/* A frame of the handshake (CHALLENGE, ACCEPT): the next step. */
static void t_handshake(target *t, pp_conn *c, const pp_frame *f)
{
    if (t->state == T_HELLO && f->hdr.type == PP_T_CHALLENGE) {
        uint8_t proof[PP_MAC_LEN];
        if (pp_hs_client_challenge(&t->hs, f, proof) != PP_HS_OK ||
            send_now(c, PP_T_PROOF, 0, proof, sizeof proof) != 0)
            t_fail(t, "handshake: %s", t->hs.err[0] ? t->hs.err : "cannot send PROOF");
        else
            t->state = T_PROOF;
    } else if (t->state == T_PROOF && f->hdr.type == PP_T_ACCEPT) {
        if (pp_hs_client_accept(&t->hs, f) != PP_HS_OK) {
            t_fail(t, "the node failed to prove the shared secret");
            return;
        }
        pp_hs_wipe(&t->hs);
        pp_conn_set_limit(c, PPSTAT_REPLY_MAX);
        if (send_now(c, PP_T_STATUS, 1, NULL, 0) != 0)
            t_fail(t, "cannot send STATUS");
        else
            t->state = T_ASKED;
    } else {
        char name[16];
        t_fail(t, "unexpected frame %s in the handshake", pp_proto_type_name(f->hdr.type, name));
    }
}

static int t_frame(pp_conn *c, const pp_frame *f, void *data)
{
    target *t = data;
    char err[PP_ERR_LEN];
    switch (f->hdr.type) {
    case PP_T_ERROR:
        t_error_frame(t, f);
        return -1;
    case PP_T_BYE:
        t_fail(t, "the node is shutting down");
        return -1;
    case PP_T_TAGS: /* what an authenticated client is told anyway */
    case PP_T_NCPUS:
    case PP_T_PONG:
        return t->state == T_ASKED ? 0 : (t_fail(t, "a frame before the handshake ended"), -1);
    case PP_T_PING:
        return send_now(c, PP_T_PONG, f->hdr.id, NULL, 0);
    case PP_T_STATREPLY:
        if (t->state != T_ASKED) {
            t_fail(t, "a status reply before it was asked for");
        } else if (ppstat_parse((const char *)f->payload, f->hdr.len, &t->node, err,
                                sizeof err) != 0) {
            t_fail(t, "%s", err);
        } else {
            t_end(t, T_DONE);
        }
        return -1;
    }
    if (t->state == T_ASKED) {
        char name[16];
        t_fail(t, "unexpected frame %s", pp_proto_type_name(f->hdr.type, name));
        return -1;
    }
    t_handshake(t, c, f);
    return t->state >= T_DONE ? -1 : 0;
}

static void t_closed(pp_conn *c, const char *why, void *data)
{
    target *t = data;
    if (t->state < T_ASKED && t->tls && pp_tls_wrong_key(t->tls))
        t_fail(t, "authentication failed: the node refused our TLS key (is the secret the "
                  "same as the node's?)");
    else if (t->state <= T_HELLO && strstr(why, strerror(ECONNREFUSED))) /* plaintext: HELLO queued */
        t_fail(t, "cannot connect: %s (is ppserver running on that port?)", strerror(ECONNREFUSED));
    else if (t->state == T_CONNECTING && strstr(why, "speaks plaintext"))
        t_fail(t, "%s (try --no-tls)", why);
    else if (t->state == T_ASKED && pp_conn_bad_frame(c))
        t_fail(t, "the node's reply is no valid frame: %s", why);
    else if (t->state == T_ASKED) /* authenticated, then closed on STATUS */
        t_fail(t, "the node closed the connection when asked for its status (%s): a ppserver "
                  "older than STATUS?", why);
    else
        t_fail(t, "%s", why);
}

static void t_timeout(pp_loop *loop, pp_timer *tm)
{
    (void)loop;
    target *t = tm->data;
    static const char *const what[] = {"connecting", "in the handshake", "in the handshake",
                                       "waiting for the status"};
    t_fail(t, "no answer within the timeout (%s)", what[t->state]);
}

/* Connects to the first address of ai that takes it and starts the conn
 * (TLS, then t_ready).  Failures are t's (t_fail). */
static void t_connect(target *t, const struct addrinfo *ai)
{
    char err[PP_ERR_LEN];
    int fd = pp_net_connect_ai(ai, NULL, t->host, t->port, err);
    if (fd < 0) {
        t_fail(t, "%s", err);
        return;
    }
    pp_tls *tls = t->tls_cfg;
    pp_transport tr;
    if (tls && pp_tls_transport(tls, &tr, err) != 0) {
        close(fd);
        t_fail(t, "%s", err);
        return;
    }
    pp_conn_cbs cbs = {.on_frame = t_frame, .on_close = t_closed, .on_ready = t_ready};
    t->conn = pp_conn_new(t->loop, fd, fd, PP_PREAUTH_MAX, PP_T_NET_MAX, tls ? &tr : NULL, &cbs, t);
    if (!t->conn) {
        if (tls)
            tr.ops->free(tr.ctx);
        close(fd);
        t_fail(t, "out of memory");
        return;
    }
    t->tls = tls ? tr.ctx : NULL;
}

/* A host name's lookup ended: connect, or say why not. */
static void t_looked_up(pp_loop *loop, pp_io *io, unsigned ev)
{
    (void)loop;
    (void)ev;
    target *t = io->data;
    char err[PP_ERR_LEN];
    struct addrinfo *ai = NULL;
    if (!pp_resolve_take(t->lookup, &ai, err))
        return; /* not yet */
    pp_loop_del(t->loop, &t->lio);
    pp_resolve_drop(t->lookup);
    t->lookup = NULL;
    if (!ai) {
        t_fail(t, "%s", err);
        return;
    }
    t_connect(t, ai);
    freeaddrinfo(ai);
}

/* Starts asking t: a numeric address at once, a name looked up on a
 * thread (within t's deadline, like the rest).  Failures are t's. */
static void t_start(target *t)
{
    char err[PP_ERR_LEN];
    struct addrinfo *ai = NULL;
    t->state = T_CONNECTING;
    t->err[0] = 0;
    t->timer = (pp_timer){.fn = t_timeout, .data = t};
    if (pp_net_resolve(t->host, t->port, 1, &ai, err) == 0) {
        t_connect(t, ai);
        freeaddrinfo(ai);
        return;
    }
    if (!(t->lookup = pp_resolve_start(t->host, t->port, err))) {
        t_fail(t, "%s", err);
        return;
    }
    t->lio = (pp_io){.fd = pp_resolve_fd(t->lookup), .fn = t_looked_up, .data = t};
    if (pp_loop_add(t->loop, &t->lio, PP_EV_READ) != 0) {
        pp_resolve_drop(t->lookup);
        t->lookup = NULL;
        t_fail(t, "cannot watch the lookup of %s", t->host);
    }
}

/* One round: every node asked at once; returns when all have ended or
 * their deadlines passed (or a signal came).  0, or -1 (the loop failed). */
static int ask_all(target *ts, int n, pp_loop *loop, pp_tls *tls, double timeout)
{
    for (int i = 0; i < n; i++) {
        ppstat_node_free(&ts[i].node);
        ts[i].loop = loop;
        ts[i].tls_cfg = tls;
        t_start(&ts[i]);
        if (ts[i].state < T_DONE)
            pp_timer_start(loop, &ts[i].timer, pp_now() + timeout);
    }
    for (;;) {
        int busy = 0;
        for (int i = 0; i < n; i++)
            busy += ts[i].state < T_DONE;
        if (!busy)
            return 0;
        if (stop_flag) {
            for (int i = 0; i < n; i++)
                t_fail(&ts[i], "interrupted");
            return 0;
        }
        if (pp_loop_run_once(loop, -1) < 0 && errno != EINTR)
            return -1;
    }
}

/* The node arguments: "host", "host:port", "[v6]:port".  0, or -1 after a
 * message. */
static int make_targets(const opts *o, const pp_auth_key *key, target **out)
{
    target *ts = calloc((size_t)o->nnodes, sizeof *ts);
    if (!ts) {
        fprintf(stderr, "ppstat: out of memory\n");
        return -1;
    }
    for (int i = 0; i < o->nnodes; i++) {
        char err[PP_ERR_LEN];
        target *t = &ts[i];
        t->spec = o->nodes[i];
        t->key = key;
        if (pp_net_parse_hostport(t->spec, PP_DEFAULT_PORT, t->host, sizeof t->host, &t->port,
                                  err) != 0) {
            fprintf(stderr, "ppstat: %s: %s\n", t->spec, err);
            free(ts);
            return -1;
        }
        snprintf(t->name, sizeof t->name, strchr(t->host, ':') ? "[%s]:%d" : "%s:%d", t->host,
                 t->port);
    }
    *out = ts;
    return 0;
}

/* One round's output: the failures on stderr, naming the node; then the
 * tables or the JSON document on stdout. */
static void report(const opts *o, const target *ts, ppstat_result *res, unsigned round)
{
    for (int i = 0; i < o->nnodes; i++) {
        const target *t = &ts[i];
        res[i] = (ppstat_result){.name = t->name, .node = &t->node,
                                 .error = t->state == T_DONE ? NULL : t->err};
        if (res[i].error)
            fprintf(stderr, "ppstat: %s: %s\n", t->name, t->err);
    }
    if (o->json) {
        ppstat_print_json(stdout, res, (size_t)o->nnodes);
    } else {
        if (o->watch > 0 && isatty(STDOUT_FILENO))
            fputs("\033[H\033[2J", stdout); /* a terminal: redraw in place */
        else if (round > 0)
            fputc('\n', stdout);
        ppstat_print_table(stdout, res, (size_t)o->nnodes);
    }
    fflush(stdout);
    fflush(stderr);
}

/* Rounds until done (once, or until interrupted with --watch).  The exit
 * status of the last round. */
static int run(const opts *o, target *ts, pp_tls *tls)
{
    pp_loop *loop = pp_loop_new();
    ppstat_result *res = calloc((size_t)o->nnodes, sizeof *res);
    if (!loop || !res) {
        pp_loop_free(loop);
        free(res);
        fprintf(stderr, "ppstat: out of memory\n");
        return EXIT_NODE;
    }
    int rc = 0;
    for (unsigned round = 0; !stop_flag; round++) {
        if (ask_all(ts, o->nnodes, loop, tls, o->timeout) != 0) {
            fprintf(stderr, "ppstat: the event loop failed: %s\n", strerror(errno));
            rc = EXIT_NODE;
            break;
        }
        if (stop_flag && round > 0)
            break; /* interrupted mid-round: the last complete one stands */
        rc = 0;
        for (int i = 0; i < o->nnodes; i++)
            rc |= ts[i].state != T_DONE;
        report(o, ts, res, round);
        if (o->watch <= 0)
            break;
        double until = pp_now() + o->watch;
        while (!stop_flag && pp_now() < until)
            pp_loop_run_once(loop, until - pp_now());
    }
    pp_loop_free(loop);
    free(res);
    return rc ? EXIT_NODE : 0;
}

static int run_with_tls(const opts *o, target *ts, const pp_auth_key *key)
{
    char err[PP_ERR_LEN];
    pp_tls *tls = NULL;
    if (!o->no_tls) {
        pp_tls_opts to = {.server = 0, .psk = key->psk};
        if (!(tls = pp_tls_new(&to, err))) {
            fprintf(stderr, "ppstat: TLS: %s\n", err);
            return EXIT_NODE;
        }
    }
    int rc = run(o, ts, tls);
    pp_tls_free(tls);
    return rc;
}

int main(int argc, char **argv)
{
    opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0)
        return rc > 0 ? 0 : EXIT_USAGE;
    pp_auth_key key;
    if (load_key(&o, &key) != 0)
        return EXIT_USAGE;
    target *ts;
    if (make_targets(&o, &key, &ts) != 0) {
        pp_auth_wipe(&key, sizeof key);
        return EXIT_USAGE;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    rc = run_with_tls(&o, ts, &key);
    for (int i = 0; i < o.nnodes; i++)
        ppstat_node_free(&ts[i].node);
    free(ts);
    pp_auth_wipe(&key, sizeof key);
    return rc;
}
