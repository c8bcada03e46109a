/* SPDX-License-Identifier: MIT */
/* server.c -- the node: listener and connection caps, the worker pool shared
 * fairly by every client (one job per client per round), heartbeats,
 * shutdown (clients are told, so they re-dispatch), and the exit of a node
 * nobody uses (--idle-exit). */
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pp.h"
#include "pp_module.h"
#include "pp_net.h"
#include "pp_proto.h"
#include "pp_spawn.h"
#include "lockout.h"
#include "modules.h"
#include "output.h"
#include "server.h"
#include "session.h"
#include "status.h"

/* Job bytes freed before the heap is trimmed (at most once a second). */
#define TRIM_AFTER (8u << 20)

/* A job's outcome and run time into the statistics. */
static void count_job(srv_stats *st, int status, uint64_t run_ns)
{
#define SRV_RUN_ITEM(v) v,
    static const double le[] = {SRV_RUN_LE(SRV_RUN_ITEM)};
#undef SRV_RUN_ITEM
    double sec = (double)run_ns * 1e-9;
    size_t b = 0;
    while (b < SRV_RUN_BUCKETS && sec > le[b])
        b++;
    st->run[b]++;
    st->run_seconds += sec;
    if (status >= 0 && status < SRV_STATUSES)
        st->jobs[status]++;
}

/* Idle shared buffers the node keeps for reuse, at most (bytes). */
#define SHM_KEEP (256u << 20)
#define SHM_IDLE 2.0 /* seconds an idle one is kept */

static void pool_done(pp_pool *p, pp_pool_job *pj, int status, void *block, const char *data,
                      size_t len, uint64_t run_ns, void *ud)
{
    (void)p;
    server *srv = ud;
    sjob *j = PP_CONTAINER_OF(pj, sjob, pj);
    srv->jobs_done++;
    count_job(&srv->stats, status, run_ns);
    if (j->sess && status == PP_DONE)
        j->sess->jobs_ok++;
    else if (j->sess)
        j->sess->jobs_failed++;
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
        sjob *j = session_peek_job(s);
        if (j) {
            uint32_t tid;
            if (pp_pool_task(srv->pool, j->mod->path, j->symbol, &tid) != 0)
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

/* Memory comes back when jobs end or clients leave: large blocks live on
 * the heap (main.c raises the mmap threshold, so that big frames do not
 * fault fresh mappings in for every job), and a heap keeps what it held
 * (3 GB after a zlib bomb's jobs, before this) unless trimmed --
 * malloc_trim() also returns the free pages in its middle, which the trim
 * threshold never does.  At most once a second: back-to-back large jobs
 * then fault their pages in again once a second, not for every job. */
static void give_back(server *srv, double now)
{
#ifdef __GLIBC__
    if (srv->freed < TRIM_AFTER || now - srv->trimmed_at < 1.0)
        return;
    malloc_trim(0);
    srv->freed = 0;
    srv->trimmed_at = now;
#else
    (void)srv;
    (void)now;
#endif
}

/* A client is connected: a session past its handshake (one still in it, or
 * refused, keeps no node alive). */
static int has_client(const server *srv)
{
    for (const session *s = srv->sessions; s; s = s->next)
        if (s->state == S_READY)
            return 1;
    return 0;
}

/* --idle-exit: the node stops by itself once no client has been connected
 * for that long, counted from the start or from when the last one left
 * (before_sleep() notes when one was last seen, so the count starts when it
 * leaves, not at the previous check). */
static void idle_check(pp_loop *loop, pp_timer *t)
{
    server *srv = t->data;
    double now = pp_now();
    if (has_client(srv))
        srv->client_seen = now;
    double due = srv->client_seen + srv->cfg->idle_exit;
    if (now < due) {
        pp_timer_start(loop, t, due);
        return;
    }
    pp_log(&srv->log, PP_LOG_INFO, "no client for %g s (--idle-exit): exiting",
           srv->cfg->idle_exit);
    *srv->stop = 1;
    pp_loop_break(loop);
}

static void before_sleep(pp_loop *loop, void *data)
{
    (void)loop;
    server *srv = data;
    if (*srv->stop)
        pp_loop_break(srv->loop);
    if (srv->cfg->idle_exit > 0 && has_client(srv))
        srv->client_seen = pp_now();
    if (srv->reload && *srv->reload) {
        *srv->reload = 0;
        int n = srv->reload_workers ? srv->reload_workers(srv) : -1;
        if (n >= 0)
            server_set_workers(srv, n);
    }
    if (srv->dump && *srv->dump) { /* the handler only sets the flag */
        *srv->dump = 0;
        status_log(srv);
    }
    for (session *s = srv->sessions; s; s = s->next)
        if (s->backlog)
            session_admit(s);
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
    pp_log_flush(&srv->log); /* how many lines the rate limit dropped */
    give_back(srv, now);
    pp_shm_cache_trim(srv->shm, SHM_IDLE); /* e.g. a large frame whose client left */
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

static int in_handshake(const session *s)
{
    return s->state == S_HELLO || s->state == S_AUTH;
}

/* Connections of addr still in their handshake. */
static int handshakes_of(server *srv, const char *addr)
{
    int n = 0;
    for (session *s = srv->sessions; s; s = s->next)
        n += in_handshake(s) && strcmp(s->addr, addr) == 0;
    return n;
}

/* The oldest connection of addr still in its handshake, or NULL. */
static session *oldest_handshake(server *srv, const char *addr)
{
    session *oldest = NULL;
    for (session *s = srv->sessions; s; s = s->next) /* newest first */
        if (in_handshake(s) && strcmp(s->addr, addr) == 0)
            oldest = s;
    return oldest;
}

/* At the cap of connections still in their handshake, one goes: the oldest
 * of the address that holds the most.  A real client's handshake takes a
 * round trip, an idle one holds its slot until the deadline, so it is the
 * idle ones that go; and an address flooding us evicts its own, not
 * everyone's (evicting the oldest of all, a flood of ~1,300 connections a
 * second from one address evicted a real client 20 ms away before its
 * PROOF arrived, every time). */
/* Handshakes, by address then oldest first (they are listed newest first). */
typedef struct hs_ref {
    session *s;
    size_t age; /* its place in the list: larger is older */
} hs_ref;

static int hs_order(const void *a, const void *b)
{
    const hs_ref *x = a, *y = b;
    int c = strcmp(x->s->addr, y->s->addr);
    return c ? c : x->age < y->age ? 1 : x->age > y->age ? -1 : 0;
}

static void drop_unauth(server *srv)
{
    hs_ref *refs = malloc((size_t)srv->nunauth * sizeof *refs);
    size_t n = 0, age = 0;
    for (session *s = srv->sessions; s && refs; s = s->next, age++)
        if (in_handshake(s) && n < (size_t)srv->nunauth)
            refs[n++] = (hs_ref){s, age};
    if (!n) {
        free(refs);
        return;
    }
    qsort(refs, n, sizeof *refs, hs_order);
    /* The longest run of one address; on a tie, the one whose oldest is
     * oldest.  Its first entry is its oldest handshake. */
    size_t best = 0, best_len = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && strcmp(refs[j].s->addr, refs[i].s->addr) == 0)
            j++;
        if (j - i > best_len || (j - i == best_len && refs[i].age > refs[best].age)) {
            best = i;
            best_len = j - i;
        }
        i = j;
    }
    session *victim = refs[best].s;
    free(refs);
    pp_log(&srv->log, PP_LOG_WARN, "%s: too many unauthenticated connections (%d): closing the "
                                   "oldest of the address holding the most (%zu)",
           victim->peer, srv->nunauth, best_len);
    srv->stats.refused[SRV_REF_HANDSHAKES]++;
    session_free(victim);
}

/* Room for one more handshake from addr: past its own cap its oldest
 * handshake goes, past the global cap drop_unauth() decides. */
static void handshake_room(server *srv, const char *addr)
{
    int cap = srv->cfg->max_hs_per_address;
    if (handshakes_of(srv, addr) >= cap) {
        session *o = oldest_handshake(srv, addr);
        pp_log(&srv->log, PP_LOG_WARN, "%s: too many handshakes from this address (%d): "
                                       "closing its oldest", o->peer, cap);
        srv->stats.refused[SRV_REF_HANDSHAKES]++;
        session_free(o);
    } else if (srv->nunauth >= srv->cfg->max_unauth) {
        drop_unauth(srv);
    }
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
            srv->stats.refused[SRV_REF_LOCKOUT]++;
            close(fd);
            continue;
        }
        if (srv->stopping)
            full = "shutting down";
        else if (srv->nsessions >= srv->cfg->max_connections)
            full = "too many connections", srv->stats.refused[SRV_REF_CONNECTIONS]++;
        else if (per_address(srv, addr) >= srv->cfg->max_per_address)
            full = "too many connections from this address",
            srv->stats.refused[SRV_REF_PER_ADDRESS]++;
        else
            handshake_room(srv, addr); /* idle handshakes cannot lock real clients out */
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
        srv->stats.accepted++;
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

/* The settings a srv_cfg built by hand may leave 0 (their defaults), and
 * what follows from them: the budgets in bytes, and the largest frame --
 * a job must fit both budgets, so that is what clients are told. */
static void set_limits(server *srv, srv_cfg *cfg)
{
    if (cfg->session_budget_mib <= 0)
        cfg->session_budget_mib = SRV_SESSION_BUDGET_MIB;
    if (cfg->server_budget_mib <= 0)
        cfg->server_budget_mib = SRV_SERVER_BUDGET_MIB;
    if (cfg->module_timeout <= 0)
        cfg->module_timeout = SRV_MODULE_TIMEOUT;
    if (cfg->max_pending_modules <= 0)
        cfg->max_pending_modules = SRV_MAX_PENDING_MODULES;
    if (cfg->max_hs_per_address <= 0)
        cfg->max_hs_per_address = SRV_MAX_HS_PER_ADDRESS;
    double mib = PP_MIN(cfg->max_frame_mib, PP_MIN(cfg->session_budget_mib,
                                                   cfg->server_budget_mib));
    srv->max_frame = (uint32_t)(mib * 1048576.0);
    /* + 1 KiB: a job's header besides its argument, as the frame limit. */
    srv->session_budget = (size_t)(cfg->session_budget_mib * 1048576.0) + 1024;
    srv->server_budget = (size_t)(cfg->server_budget_mib * 1048576.0) + 1024;
    srv->module_group = cfg->worker_user && cfg->worker_gid >= 0 ? cfg->worker_gid : -1;
}

/* The worker pool: ppworker found, the workers' environment and user. */
static int start_pool(server *srv, const srv_cfg *cfg, char *err)
{
    char *worker = pp_spawn_find_worker(NULL, err);
    if (!worker)
        return -1;
    char **pass = NULL;
    if (split_names(cfg->worker_env, &pass, err) != 0) {
        free(worker);
        return -1;
    }
    int as_user = cfg->worker_user && cfg->worker_uid >= 0 && cfg->worker_gid >= 0;
    pp_pool_opts po = {.worker_path = worker, .workers = cfg->workers,
                       .max_frame = srv->max_frame, .log = &srv->log,
                       .job_memory_mib = (unsigned)cfg->job_memory_mib,
                       .max_jobs_per_worker = (unsigned)cfg->max_jobs_per_worker,
                       .env = (const char *const *)pass,
                       .worker_user_set = as_user,
                       .worker_uid = as_user ? (uid_t)cfg->worker_uid : 0,
                       .worker_gid = as_user ? (gid_t)cfg->worker_gid : 0};
    pp_pool_cbs cbs = {.on_done = pool_done, .on_requeue = pool_requeue};
    srv->output = worker_output_start(srv->loop, &srv->log, err);
    if (!srv->output) {
        free(worker);
        free(pass);
        return -1;
    }
    po.output_fd = worker_output_fd(srv->output);
    srv->shm = pp_shm_cache_new(SHM_KEEP);
    po.shm = srv->shm;
    srv->pool = srv->shm ? pp_pool_new(srv->loop, &po, &cbs, srv, err) : NULL;
    if (!srv->shm)
        pp_seterr(err, "out of memory");
    free(worker);
    free(pass);
    return srv->pool ? 0 : -1;
}

/* The ERROR frame (PP_E_TLS) a client of the other kind gets, in
 * plaintext, before the node closes: it says what to fix. */
static size_t mismatch_reply(const char *msg, uint8_t *out, size_t cap)
{
    pp_buf b;
    pp_buf_init(&b, cap);
    size_t n = 0;
    if (pp_proto_error(&b, PP_E_TLS, msg) == 0 && PP_WIRE_HDR + b.len <= cap) {
        pp_wire_encode_hdr(out, PP_T_ERROR, 0, 0, (uint32_t)b.len);
        memcpy(out + PP_WIRE_HDR, b.data, b.len);
        n = PP_WIRE_HDR + b.len;
    }
    pp_buf_reset(&b);
    return n;
}

/* TLS for every session (the secret's key, or certificates), or with
 * --no-tls the reply that tells a TLS client this node speaks plaintext. */
static int start_tls(server *srv, const srv_cfg *cfg, char *err)
{
    if (cfg->no_tls) {
        srv->plain_reply_len = mismatch_reply("this node speaks plaintext (ppserver --no-tls): "
                                              "a TLS client is refused",
                                              srv->plain_reply, sizeof srv->plain_reply);
        return 0;
    }
    uint8_t reply[128];
    size_t n = mismatch_reply("this node requires TLS (a plaintext client is refused)", reply,
                              sizeof reply);
    int certs = cfg->tls_cert != NULL;
    pp_tls_opts o = {.server = 1,
                     .psk = certs ? NULL : srv->key.psk,
                     .cert = cfg->tls_cert,
                     .key = cfg->tls_key,
                     .ca = cfg->tls_ca,
                     .plaintext_reply = reply,
                     .plaintext_reply_len = n};
    srv->tls = pp_tls_new(&o, err);
    return srv->tls ? 0 : -1;
}

/* --tag: the TAGS payload each client gets after its ACCEPT (none without
 * tags: clients of builds without TAGS still talk to an untagged node).
 * 0, or -1 with the reason in err. */
static int take_tags(server *srv, const srv_cfg *cfg, char *err)
{
    pp_tags t = {0};
    char why[PP_ERR_LEN];
    if (cfg->tags && pp_tags_parse(&t, cfg->tags, why) != 0) {
        pp_seterr(err, "--tag: %s", why);
        return -1;
    }
    pp_tags_text(&t, srv->tags_text, sizeof srv->tags_text);
    if (!t.n)
        return 0;
    pp_buf b;
    pp_buf_init(&b, sizeof srv->tags_msg);
    int rc = pp_proto_tags(&b, &t);
    if (rc == 0 && b.len <= sizeof srv->tags_msg) {
        memcpy(srv->tags_msg, b.data, b.len);
        srv->tags_len = b.len;
    } else {
        pp_seterr(err, "out of memory");
        rc = -1;
    }
    pp_buf_reset(&b);
    return rc;
}

int server_init(server *srv, srv_cfg *cfg, const char *secret, volatile sig_atomic_t *stop,
                char *err)
{
    memset(srv, 0, sizeof *srv);
    srv->cfg = cfg;
    srv->stop = stop;
    srv->stats.started = pp_now();
    srv->lfd = -1;
    set_limits(srv, cfg);
    if (take_tags(srv, cfg, err) != 0)
        return -1;
    /* Repeated lines are limited per kind: a flood of refusals costs a few
     * lines and a count, not a line each. */
    pp_log_limit_init(&srv->log_limit, cfg->log_rate, cfg->log_rate * SRV_LOG_BURST_PER_RATE);
    srv->log = (pp_log){.level = pp_log_parse_level(cfg->log_level), .who = "ppserver",
                        .limit = &srv->log_limit,
                        .format = cfg->log_format ? pp_log_parse_format(cfg->log_format) : 0,
                        /* stderr as it is now: a --log-file is not the journal */
                        .journal = pp_log_is_journal(STDERR_FILENO)};
    if (pp_auth_derive(secret, strlen(secret), &srv->key) != 0) {
        pp_seterr(err, "cannot derive the authentication key (OpenSSL)");
        return -1;
    }
    /* scrypt's 16 MiB came from the heap (main.c keeps large blocks there)
     * and would stay mapped for the node's life. */
    malloc_trim(0);
    if (start_tls(srv, cfg, err) != 0)
        return -1;
    if (pp_module_cache_init(cfg->cache_dir, err) != 0)
        return -1;
    if (modules_init(srv) != 0) {
        pp_seterr(err, "cannot set up the module table (out of memory or randomness)");
        return -1;
    }
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
    if (start_pool(srv, cfg, err) != 0)
        return -1;
    srv->tick.fn = tick;
    srv->tick.data = srv;
    pp_timer_start(srv->loop, &srv->tick, pp_now() + cfg->heartbeat);
    srv->client_seen = pp_now();
    if (cfg->idle_exit > 0) {
        srv->idle_timer = (pp_timer){.fn = idle_check, .data = srv};
        pp_timer_start(srv->loop, &srv->idle_timer, srv->client_seen + cfg->idle_exit);
    }
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
    pp_log(&srv->log, PP_LOG_INFO, "listening on %s:%d with %d worker%s%s%s",
           srv->cfg->interface ? srv->cfg->interface : "*", srv->port, nw, nw == 1 ? "" : "s",
           srv->tags_len ? ", tags " : "", srv->tags_text);
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
    worker_output_stop(srv->output); /* the workers' last lines */
    srv->output = NULL;
    if (srv->lfd >= 0)
        close(srv->lfd);
    pp_loop_free(srv->loop); /* runs the deferred frees */
    pp_shm_cache_free(srv->shm); /* results still being written keep theirs */
    srv->shm = NULL;
    modules_free(srv);
    pp_log_flush(&srv->log);
    pp_log_limit_destroy(&srv->log_limit);
    pp_tls_free(srv->tls);
    srv->tls = NULL;
    pp_auth_wipe(&srv->key, sizeof srv->key);
}
