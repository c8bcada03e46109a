/* SPDX-License-Identifier: MIT */
/* server.c -- the node: listener and connection caps, the worker pool shared
 * fairly by every client (one job per client per round), heartbeats, and
 * shutdown (clients are told, so they re-dispatch). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pp.h"
#include "pp_module.h"
#include "pp_net.h"
#include "pp_proto.h"
#include "pp_spawn.h"
#include "lockout.h"
#include "server.h"
#include "session.h"

static void pool_done(pp_pool *p, pp_pool_job *pj, int status, void *block, const char *data,
                      size_t len, uint64_t run_ns, void *ud)
{
    (void)p;
    server *srv = ud;
    sjob *j = PP_CONTAINER_OF(pj, sjob, pj);
    srv->jobs_done++;
    if (status != PP_DONE && j->sess)
        pp_log(&srv->log, PP_LOG_INFO, "%s: job %llu ended %s: %s", j->sess->peer,
               (unsigned long long)j->id, pp_strerror(status), data ? data : "");
    session_job_done(j, status, block, data, len, run_ns);
}

static void pool_requeue(pp_pool *p, pp_pool_job *pj, void *ud)
{
    (void)p;
    (void)ud;
    session_job_requeue(PP_CONTAINER_OF(pj, sjob, pj));
}

/* Feeds free workers, one job per client in turn (fairness): the next round
 * starts after the last client served. */
static void dispatch(server *srv)
{
    session *s = srv->rr ? srv->rr : srv->sessions;
    int misses = 0;
    while (s && misses < srv->nsessions && pp_pool_has_room(srv->pool)) {
        session *next = s->next ? s->next : srv->sessions;
        sjob *j = s->qhead;
        if (j) {
            uint32_t tid;
            if (pp_pool_task(srv->pool, srv->modules[j->module].path, j->symbol, &tid) != 0)
                break;
            j->pj.task = tid;
            if (pp_pool_submit(srv->pool, &j->pj) != 0)
                break;
            session_next_job(s);
            misses = 0;
        } else {
            misses++;
        }
        s = next;
    }
    srv->rr = s;
}

static void before_sleep(pp_loop *loop, void *data)
{
    (void)loop;
    server *srv = data;
    if (*srv->stop)
        pp_loop_break(srv->loop);
    if (srv->reload && *srv->reload) {
        *srv->reload = 0;
        int n = srv->reload_workers ? srv->reload_workers(srv) : -1;
        if (n >= 0)
            server_set_workers(srv, n);
    }
    dispatch(srv);
    pp_pool_flush(srv->pool);
    for (session *s = srv->sessions; s; s = s->next)
        if (pp_conn_outbytes(s->conn))
            pp_conn_flush(s->conn);
}

static void tick(pp_loop *loop, pp_timer *t)
{
    server *srv = t->data;
    double now = pp_now();
    for (session *s = srv->sessions, *n; s; s = n) {
        n = s->next;
        session_tick(s, now);
    }
    pp_timer_start(loop, t, now + srv->cfg->heartbeat);
}

/* "ip" of an "ip:port". */
static void addr_of(const char *peer, char addr[64])
{
    snprintf(addr, 64, "%s", peer);
    char *colon = strrchr(addr, ':');
    if (colon)
        *colon = 0;
}

/* How many open connections come from this address. */
static int per_address(server *srv, const char *addr)
{
    int n = 0;
    for (session *s = srv->sessions; s; s = s->next)
        n += strcmp(s->addr, addr) == 0;
    return n;
}

/* At the cap of connections still in their handshake, the oldest one goes:
 * a real client's handshake takes a round trip, an idle one holds its slot
 * until the deadline, so it is the idle ones that get dropped. */
static void drop_oldest_unauth(server *srv)
{
    session *oldest = NULL;
    for (session *s = srv->sessions; s; s = s->next) /* newest first */
        if (s->state == S_HELLO || s->state == S_AUTH)
            oldest = s;
    if (!oldest)
        return;
    pp_log(&srv->log, PP_LOG_WARN, "%s: too many unauthenticated connections: closing the "
                                   "oldest", oldest->peer);
    session_free(oldest);
}

static void on_accept(pp_loop *loop, pp_io *io, unsigned ev)
{
    (void)loop;
    (void)ev;
    server *srv = io->data;
    for (int i = 0; i < 64; i++) {
        char peer[64];
        int fd = pp_net_accept(srv->lfd, peer, sizeof peer);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                pp_log(&srv->log, PP_LOG_WARN, "accept: %s", strerror(errno));
            return;
        }
        char addr[64];
        addr_of(peer, addr);
        const char *full = NULL;
        if (lockout_active(srv, addr, pp_now())) {
            /* Announced once when it began: closed without a word. */
            pp_log(&srv->log, PP_LOG_DEBUG, "%s: refused: too many wrong secrets", peer);
            close(fd);
            continue;
        }
        if (srv->stopping)
            full = "shutting down";
        else if (srv->nsessions >= srv->cfg->max_connections)
            full = "too many connections";
        else if (per_address(srv, addr) >= srv->cfg->max_per_address)
            full = "too many connections from this address";
        else if (srv->nunauth >= srv->cfg->max_unauth)
            drop_oldest_unauth(srv); /* idle handshakes cannot lock real clients out */
        if (full) {
            pp_log(&srv->log, PP_LOG_WARN, "%s: refused: %s", peer, full);
            close(fd);
            continue;
        }
        if (!session_new(srv, fd, peer)) {
            pp_log(&srv->log, PP_LOG_ERROR, "%s: out of memory for a session", peer);
            close(fd);
            continue;
        }
        pp_log(&srv->log, PP_LOG_DEBUG, "%s: connected", peer);
    }
}

/* --worker-env's comma-separated names as a NULL-terminated array in one
 * allocation (the caller frees *out), or NULL for none.  0, or -1 with the
 * reason in err. */
static int split_names(const char *list, char ***out, char *err)
{
    *out = NULL;
    if (!list || !*list)
        return 0;
    size_t n = 1, len = strlen(list);
    for (const char *c = list; *c; c++)
        n += *c == ',';
    /* One allocation: the pointers, then a copy of the list cut at commas. */
    char **names = calloc(1, (n + 1) * sizeof *names + len + 1);
    if (!names) {
        pp_seterr(err, "out of memory");
        return -1;
    }
    char *copy = (char *)(names + n + 1), *save = NULL;
    memcpy(copy, list, len + 1);
    size_t k = 0;
    for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        char why[PP_ERR_LEN];
        if (pp_spawn_env_name_ok(t, why) != 0) {
            pp_seterr(err, "--worker-env: %s", why);
            free(names);
            return -1;
        }
        names[k++] = t;
    }
    *out = names;
    return 0;
}

int server_init(server *srv, srv_cfg *cfg, const char *secret, volatile sig_atomic_t *stop,
                char *err)
{
    memset(srv, 0, sizeof *srv);
    srv->cfg = cfg;
    srv->stop = stop;
    srv->lfd = -1;
    srv->max_frame = (uint32_t)(cfg->max_frame_mib * 1048576.0);
    srv->log = (pp_log){.level = pp_log_parse_level(cfg->log_level), .who = "ppserver"};
    if (pp_auth_derive(secret, strlen(secret), &srv->key) != 0) {
        pp_seterr(err, "cannot derive the authentication key (OpenSSL)");
        return -1;
    }
    if (pp_module_cache_init(cfg->cache_dir, err) != 0)
        return -1;
    srv->loop = pp_loop_new();
    if (!srv->loop) {
        pp_seterr(err, "cannot create the event loop: %s", strerror(errno));
        return -1;
    }
    srv->lfd = pp_net_listen(cfg->interface, cfg->port, 128, &srv->port, err);
    if (srv->lfd < 0)
        return -1;
    srv->lio = (pp_io){.fd = srv->lfd, .fn = on_accept, .data = srv};
    if (pp_loop_add(srv->loop, &srv->lio, PP_EV_READ) != 0 ||
        pp_loop_hook(srv->loop, before_sleep, srv) != 0) {
        pp_seterr(err, "cannot watch the listening socket: %s", strerror(errno));
        return -1;
    }
    char *worker = pp_spawn_find_worker(NULL, err);
    if (!worker)
        return -1;
    char **pass = NULL;
    if (split_names(cfg->worker_env, &pass, err) != 0) {
        free(worker);
        return -1;
    }
    pp_pool_opts po = {.worker_path = worker, .workers = cfg->workers,
                       .max_frame = srv->max_frame, .log = &srv->log,
                       .job_memory_mib = (unsigned)cfg->job_memory_mib,
                       .env = (const char *const *)pass};
    pp_pool_cbs cbs = {.on_done = pool_done, .on_requeue = pool_requeue};
    srv->pool = pp_pool_new(srv->loop, &po, &cbs, srv, err);
    free(worker);
    free(pass);
    if (!srv->pool)
        return -1;
    srv->tick.fn = tick;
    srv->tick.data = srv;
    pp_timer_start(srv->loop, &srv->tick, pp_now() + cfg->heartbeat);
    return 0;
}

void server_set_workers(server *srv, int n)
{
    if (n == pp_pool_target(srv->pool))
        return;
    pp_log(&srv->log, PP_LOG_INFO, "workers: %d -> %d", pp_pool_target(srv->pool), n);
    pp_pool_resize(srv->pool, n);
    for (session *s = srv->sessions; s; s = s->next)
        session_announce_ncpus(s, n);
}

int server_run(server *srv)
{
    int nw = pp_pool_target(srv->pool);
    pp_log(&srv->log, PP_LOG_INFO, "listening on %s:%d with %d worker%s",
           srv->cfg->interface ? srv->cfg->interface : "*", srv->port, nw, nw == 1 ? "" : "s");
    while (!*srv->stop) {
        if (pp_loop_run_once(srv->loop, -1) < 0) {
            pp_log(&srv->log, PP_LOG_ERROR, "event loop: %s", strerror(errno));
            return -1;
        }
    }
    /* Stop accepting; tell every client, so it sends its jobs elsewhere. */
    srv->stopping = 1;
    pp_log(&srv->log, PP_LOG_INFO, "shutting down: telling %d client(s)", srv->nsessions);
    pp_loop_del(srv->loop, &srv->lio);
    close(srv->lfd);
    srv->lfd = -1;
    for (session *s = srv->sessions, *n; s; s = n) {
        n = s->next;
        session_bye(s, "the node is shutting down");
    }
    double end = pp_now() + 1.0;
    while (pp_now() < end) {
        int pending = 0;
        for (session *s = srv->sessions; s; s = s->next)
            pending |= pp_conn_outbytes(s->conn) > 0;
        if (!pending)
            break;
        pp_loop_run_once(srv->loop, 0.05);
    }
    return 0;
}

void server_destroy(server *srv)
{
    while (srv->sessions)
        session_free(srv->sessions);
    pp_pool_free(srv->pool); /* running jobs are orphans now: dropped */
    srv->pool = NULL;
    if (srv->lfd >= 0)
        close(srv->lfd);
    pp_loop_free(srv->loop); /* runs the deferred frees */
    free(srv->modules);
    pp_auth_wipe(&srv->key, sizeof srv->key);
}
