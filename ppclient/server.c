/* SPDX-License-Identifier: MIT */
/* server.c -- pp_server_new/free: the configuration checked and taken, the
 * scheduler thread started with its backends (the local pool, one per
 * node), teardown; and the local pool's size. */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "backend.h"
#include "discover.h"
#include "nodes.h"
#include "pp_common.h"
#include "pp_conf.h"
#include "pp_net.h"
#include "pp_spawn.h"
#include "pp_tls.h"
#include "tags.h"

#define START_WAIT 10.0 /* seconds pp_server_new() waits for the local workers */

/* The page that tells the process that made a server from its forked
 * children (s->mine), without state shared by servers: the kernel gives
 * a child it zeroed.  0, or -1 with the reason in err. */
static int mine_new(pp_server *s, char *err)
{
    long pg = sysconf(_SC_PAGESIZE);
    void *p = mmap(NULL, (size_t)pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        pp_seterr(err, "cannot map a page: %s", strerror(errno));
        return -1;
    }
    /* Before Linux 4.14 a child is not told apart: it shares the fate of
     * any program that uses a threaded library after fork(). */
    (void)madvise(p, (size_t)pg, MADV_WIPEONFORK);
    s->mine = p;
    atomic_store_explicit(s->mine, 1, memory_order_relaxed);
    return 0;
}

int pp_forked_error(const pp_server *s, const char *who)
{
    (void)s;
    pp_set_error("%s: the server belongs to the process this one was forked from; a "
                 "child cannot use it (its threads did not follow the fork): make a "
                 "server in the child", who);
    return 1;
}

void pp_node_free(pp_node *n)
{
    free(n->name);
    free(n);
}

/* The server lets go of a node: it goes now, or with the last job that
 * names it (pp_node_let_go()). */
static void node_orphan(pp_node *n)
{
    int64_t named = n->named;
    if (atomic_fetch_sub_explicit(&n->gone, named, memory_order_acq_rel) == named)
        pp_node_free(n);
}

/* Frees what pp_server_new() built; the threads are already gone. */
static void server_destroy(pp_server *s)
{
    for (int i = 0; i < s->nnodes; i++)
        node_orphan(s->nodes[i]);
    free(s->nodes);
    for (int i = 0; i < s->nfiles; i++)
        free(s->files[i]);
    free(s->files);
    pp_nodes_free_reqs(s->node_reqs);
    pp_tags_free(s);
    pp_tasks_free(s);
    pp_finished_free(s, &s->finished);
    while (s->groups) {
        pp_group *g = s->groups;
        s->groups = g->next;
        pp_finished_free(s, &g->finished);
        free(g);
    }
    pp_spare_chunk_free(s);
    if (s->loop)
        pp_loop_free(s->loop); /* runs the deferred frees */
    pp_shm_forget_all(s);
    if (s->efd >= 0)
        close(s->efd);
    free(s->worker_path);
    for (char **e = s->worker_env; e && *e; e++)
        free(*e);
    free(s->worker_env);
    pp_auth_wipe(&s->key, sizeof s->key);
    pp_tls_free(s->tls);
    pthread_cond_destroy(&s->cb_cv);
    pthread_cond_destroy(&s->done_cv);
    pthread_mutex_destroy(&s->mu);
    if (s->mine) /* last: what runs above may still ask pp_forked() */
        munmap((void *)s->mine, (size_t)sysconf(_SC_PAGESIZE));
    free(s);
}

static void free_secret(char *secret)
{
    if (secret) {
        pp_auth_wipe(secret, strlen(secret));
        free(secret);
    }
}

/* The shared secret: pp_config.secret, pp_config.secret_file, $PP_SECRET,
 * then $PP_SECRET_FILE, taken as ppserver takes it (pp_auth_secret): files
 * checked as --secret-file, trailing newlines dropped.  0 with *out
 * malloc'd, or -1 with the reason in err. */
static int load_secret(const pp_config *cfg, char **out, char *err)
{
    const char *given = cfg->secret, *file = cfg->secret_file, *from = "pp_config.secret";
    if (!given && !file) {
        given = getenv("PP_SECRET");
        file = getenv("PP_SECRET_FILE");
        from = "PP_SECRET";
        if (given && !*given)
            given = NULL;
        if (file && !*file)
            file = NULL;
    }
    char *secret = given ? strdup(given) : file ? pp_conf_read_secret(file, err) : NULL;
    if (!given && !file) {
        pp_seterr(err, "remote nodes need the shared secret: pp_config.secret or "
                       "secret_file, or PP_SECRET or PP_SECRET_FILE");
        return -1;
    }
    if (!secret) {
        if (given)
            pp_seterr(err, "out of memory");
        return -1;
    }
    size_t len;
    char why[PP_ERR_LEN];
    if (pp_auth_secret(secret, &len, why) != 0) {
        pp_seterr(err, "%s: %s", file && !given ? file : from, why);
        free_secret(secret);
        return -1;
    }
    secret[len] = 0;
    *out = secret;
    return 0;
}

/* A copy of a NULL-terminated list of environment variable names (NULL
 * stays NULL).  0, or -1 with the reason in err. */
static int copy_names(const char *const *names, char ***out, char *err)
{
    *out = NULL;
    if (!names)
        return 0;
    size_t n = 0;
    while (names[n])
        n++;
    char **copy = calloc(n + 1, sizeof *copy);
    if (!copy) {
        pp_seterr(err, "out of memory");
        return -1;
    }
    *out = copy;
    for (size_t i = 0; i < n; i++) {
        char why[PP_ERR_LEN];
        if (pp_spawn_env_name_ok(names[i], why) != 0) {
            pp_seterr(err, "worker_env: %s", why);
            return -1;
        }
        if (!(copy[i] = strdup(names[i]))) {
            pp_seterr(err, "out of memory");
            return -1;
        }
    }
    return 0;
}

/* The settings that need no resource, checked.  0, or -1 with
 * pp_last_error() set. */
static int check_config(const pp_config *cfg)
{
    if (cfg->ncpus < PP_AUTODETECT || cfg->ncpus > PP_WORKERS_MAX) {
        pp_set_error("pp_server_new: ncpus must be 0 to %d or PP_AUTODETECT, not %d",
                     PP_WORKERS_MAX, cfg->ncpus);
        return -1;
    }
    if (cfg->heartbeat < 0 || cfg->node_timeout < 0 || cfg->max_attempts < 0) {
        pp_set_error("pp_server_new: heartbeat, node_timeout and max_attempts must be >= 0");
        return -1;
    }
    if (cfg->max_attempts > PP_RETRIES_MAX) {
        pp_set_error("pp_server_new: max_attempts must be at most %d", PP_RETRIES_MAX);
        return -1;
    }
    if (cfg->job_memory_mib != 0 && (cfg->job_memory_mib < 64 || cfg->job_memory_mib > 1 << 24)) {
        pp_set_error("pp_server_new: job_memory_mib must be 0 (no limit) or 64..16777216, not %d",
                     cfg->job_memory_mib);
        return -1;
    }
    if (cfg->max_pending < 0 || cfg->worker_max_jobs < 0) {
        pp_set_error("pp_server_new: max_pending and worker_max_jobs must be >= 0 (0 = none)");
        return -1;
    }
    if (cfg->no_node_timeout < 0 || isnan(cfg->no_node_timeout)) {
        pp_set_error("pp_server_new: no_node_timeout must be >= 0 seconds");
        return -1;
    }
    if (cfg->secret && cfg->secret_file) {
        pp_set_error("pp_server_new: give pp_config.secret or pp_config.secret_file, not both");
        return -1;
    }
    return 0;
}

/* Whether the configuration or the environment gives a secret (or
 * certificates instead). */
static int secret_given(const pp_config *cfg)
{
    const char *env = getenv("PP_SECRET"), *file = getenv("PP_SECRET_FILE");
    return cfg->secret || cfg->secret_file || cfg->no_secret || cfg->tls_cert ||
           (env && *env) || (file && *file);
}

/* The keys and TLS, for nodes: the secret's keys (a public stand-in with
 * no_secret, when certificates authenticate), then TLS unless no_tls.  0,
 * or -1 with the reason in err. */
static int take_keys(pp_server *s, const pp_config *cfg, char *err)
{
    int certs = cfg->tls_cert || cfg->tls_key || cfg->tls_ca;
    if (cfg->no_secret && (!certs || cfg->no_tls)) {
        pp_seterr(err, "no_secret needs certificates (tls_cert, tls_key, tls_ca) and TLS");
        return -1;
    }
    if (certs && cfg->no_tls) {
        pp_seterr(err, "certificates are for TLS: no_tls and tls_cert/tls_key/tls_ca exclude "
                       "each other");
        return -1;
    }
    char *secret = NULL;
    if (cfg->no_secret) {
        secret = strdup(PP_AUTH_NO_SECRET);
    } else if (load_secret(cfg, &secret, err) != 0) {
        return -1;
    }
    int rc = secret ? pp_auth_derive(secret, strlen(secret), &s->key) : -1;
    free_secret(secret);
    if (rc != 0) {
        pp_seterr(err, "cannot derive the authentication key (OpenSSL)");
        return -1;
    }
    s->have_key = 1;
    if (cfg->no_tls)
        return 0;
    pp_tls_opts o = {.server = 0, .psk = certs ? NULL : s->key.psk, .cert = cfg->tls_cert,
                     .key = cfg->tls_key, .ca = cfg->tls_ca};
    s->tls = pp_tls_new(&o, err);
    return s->tls ? 0 : -1;
}

/* The rest of the configuration: defaults, copies, the keys.  0, or -1 with
 * the reason in err. */
static int take_config(pp_server *s, const pp_config *cfg, char *err)
{
    s->ncpus_want = cfg->ncpus == PP_AUTODETECT ? pp_ncpus_available() : cfg->ncpus;
    s->heartbeat = cfg->heartbeat > 0 ? cfg->heartbeat : 1.0;
    s->node_timeout = cfg->node_timeout > 0 ? cfg->node_timeout : 5.0;
    s->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 3;
    s->job_memory_mib = cfg->job_memory_mib;
    s->no_node_timeout = cfg->no_node_timeout;
    s->max_pending = cfg->max_pending;
    s->worker_max_jobs = cfg->worker_max_jobs;
    s->compress = cfg->compress < 0 ? -1 : cfg->compress > 0; /* PP_ZP_NEVER .. ALWAYS */
    s->copy_threads = pp_ncpus_available();
    if (!(s->shm = pp_shm_cache_new(PP_SHM_KEEP))) {
        pp_seterr(err, "out of memory");
        return -1;
    }
    if (cfg->local_tags && cfg->local_tags[0]) {
        char why[PP_ERR_LEN];
        if (!(s->local_tags = calloc(1, sizeof *s->local_tags))) {
            pp_seterr(err, "out of memory");
            return -1;
        }
        if (pp_tags_parse(s->local_tags, cfg->local_tags, why) != 0) {
            pp_seterr(err, "local_tags \"%.100s\": %s", cfg->local_tags, why);
            return -1;
        }
    }
    s->worker_path = pp_spawn_find_worker(cfg->worker_path, err);
    if (!s->worker_path && s->ncpus_want > 0)
        return -1;
    int remote = 0;
    if (copy_names(cfg->worker_env, &s->worker_env, err) != 0 ||
        !pp_node_add_locked(s, "local", s->ncpus_want,
                            s->ncpus_want > 0 ? PP_NODE_UP : PP_NODE_DOWN)) {
        if (!err[0])
            pp_seterr(err, "out of memory");
        return -1;
    }
    if (pp_nodes_configure(s, cfg, &remote, err) != 0)
        return -1;
    /* Keys whenever a secret is given, so that pp_add_node() works later. */
    return remote || secret_given(cfg) ? take_keys(s, cfg, err) : 0;
}

/* On the scheduler thread: the backends, in dispatch order (the local pool
 * first), and the local workers waited for (bounded), so that a ppworker
 * that cannot run (missing libraries, wrong architecture) fails
 * pp_server_new() rather than leaving jobs waiting.  0, or -1 with the
 * reason in err. */
static int start_backends(pp_server *s, char *err)
{
    pp_backend *local = NULL;
    if (s->worker_path) {
        /* Local workers die with this thread (PR_SET_PDEATHSIG). */
        if (!(local = pp_local_new(s, s->nodes[0], err)))
            return -1;
        if (pp_sched_add(s, local) != 0) {
            local->ops->free(local);
            pp_seterr(err, "out of memory");
            return -1;
        }
    }
    double give_up = pp_now() + START_WAIT;
    int rc = 1;
    while (local && (rc = pp_local_started(local, err)) == 0 && pp_now() < give_up)
        pp_loop_run_once(s->loop, 0.1);
    return rc < 0 ? -1 : 0;
}

static void *scheduler_thread(void *arg)
{
    pp_server *s = arg;
    char err[PP_ERR_LEN] = "";
    /* The node list first: its hook applies changes before each dispatch. */
    int ok = pp_nodes_init(s, err) == 0 && pp_discover_init(s, err) == 0 &&
             pp_sched_init(s, err) == 0 && start_backends(s, err) == 0;
    if (ok)
        pp_nodes_take(s); /* the local pool first: dispatch order */
    pthread_mutex_lock(&s->mu);
    s->start_state = ok ? 1 : -1;
    snprintf(s->start_err, sizeof s->start_err, "%s", err);
    pthread_cond_broadcast(&s->done_cv);
    pthread_mutex_unlock(&s->mu);
    if (ok)
        pp_sched_run(s);
    pp_discover_shutdown(s);
    pp_nodes_shutdown(s);
    pp_sched_shutdown(s); /* deferred frees run in pp_loop_free() */
    return NULL;
}

/* Stops the scheduler (which cancels what is left), runs the remaining
 * callbacks and frees the server.  `on_cb_thread`: we are the callback
 * thread, which cannot join itself. */
static void server_teardown(pp_server *s, int on_cb_thread)
{
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    /* A callback's pp_server_free() not yet taken up is this one: the
     * callback thread must not start a second teardown when it returns. */
    s->free_requested = 0;
    pp_sched_wake_locked(s);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pp_callback_stop(s, on_cb_thread);
    /* Threads still in pp_job_wait()/pp_wait() see final states and leave;
     * the mutex must outlive them. */
    pthread_mutex_lock(&s->mu);
    while (s->waiters > 0) {
        pthread_cond_broadcast(&s->done_cv);
        pthread_mutex_unlock(&s->mu);
        sched_yield();
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    server_destroy(s);
}

static void teardown_from_callback(pp_server *s)
{
    server_teardown(s, 1);
}

PP_API pp_server *pp_server_new(const pp_config *cfg)
{
    pp_config defaults = {.ncpus = PP_AUTODETECT};
    if (!cfg)
        cfg = &defaults;
    if (check_config(cfg) != 0)
        return NULL;
    const char *lvl = cfg->log_level ? cfg->log_level : getenv("PP_LOG");
    int level = lvl ? pp_log_parse_level(lvl) : PP_LOG_WARN;
    if (level < 0) {
        char q[40];
        pp_set_error("pp_server_new: unknown log level \"%s\" (error, warn, info, debug)",
                     pp_quote(lvl, strlen(lvl), q, sizeof q));
        return NULL;
    }
    pp_server *s = calloc(1, sizeof *s);
    if (!s) {
        pp_set_error("pp_server_new: out of memory");
        return NULL;
    }
    s->efd = -1;
    s->log = (pp_log){.level = level, .fp = NULL, .who = "libpp"};
    s->t0 = pp_now();
    s->teardown = teardown_from_callback;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->done_cv, NULL);
    pthread_cond_init(&s->cb_cv, NULL);
    char err[PP_ERR_LEN] = "";
    if (mine_new(s, err) != 0 || take_config(s, cfg, err) != 0) {
        pp_set_error("pp_server_new: %s", err);
        goto fail;
    }
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    s->loop = pp_loop_new();
    if (s->efd < 0 || !s->loop) {
        pp_set_error("pp_server_new: cannot create the event loop: %s", strerror(errno));
        goto fail;
    }
    /* The scheduler thread takes no signal: the application's stay with
     * its own threads, and a write to a node that is gone raises SIGPIPE
     * on this thread, blocked, instead of killing the program (writes then
     * fail with EPIPE, which is handled). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    s->app_sigmask = old; /* the callback thread's (callback.c) */
    int e = pthread_create(&s->thread, NULL, scheduler_thread, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        pp_set_error("pp_server_new: cannot start the scheduler thread: %s", strerror(e));
        goto fail;
    }
    pthread_mutex_lock(&s->mu);
    while (s->start_state == 0)
        pthread_cond_wait(&s->done_cv, &s->mu);
    pthread_mutex_unlock(&s->mu);
    if (s->start_state < 0) {
        pthread_join(s->thread, NULL);
        pp_set_error("pp_server_new: %s", s->start_err);
        goto fail;
    }
    return s;
fail:
    server_destroy(s);
    return NULL;
}

PP_API void pp_server_free(pp_server *s)
{
    /* In a forked child the parent's threads are missing: nothing can be
     * joined or stopped, and the child's copy goes with the child. */
    if (!s || pp_forked(s, "pp_server_free"))
        return;
    pthread_mutex_lock(&s->mu);
    if (pp_callback_thread_locked(s)) {
        /* Runs when the current callback returns (callback.c), unless a
         * teardown already runs: it is calling back the jobs it ended. */
        if (!s->stopping) {
            s->free_requested = 1;
            pthread_cond_signal(&s->cb_cv);
        }
        pthread_mutex_unlock(&s->mu);
        return;
    }
    pthread_mutex_unlock(&s->mu);
    server_teardown(s, 0);
}

PP_API int pp_get_ncpus(pp_server *s)
{
    if (!s) {
        pp_set_error("pp_get_ncpus: NULL server");
        return -1;
    }
    if (pp_forked(s, "pp_get_ncpus"))
        return -1;
    pthread_mutex_lock(&s->mu);
    int n = s->ncpus_want;
    pthread_mutex_unlock(&s->mu);
    return n;
}

PP_API int pp_set_ncpus(pp_server *s, int ncpus)
{
    if (!s) {
        pp_set_error("pp_set_ncpus: NULL server");
        return -1;
    }
    if (pp_forked(s, "pp_set_ncpus"))
        return -1;
    if (ncpus < PP_AUTODETECT || ncpus > PP_WORKERS_MAX) {
        /* Each worker is a process and four descriptors: a typo must not
         * fork until the system says no. */
        pp_set_error("pp_set_ncpus: ncpus must be >= 0 (at most PP_WORKERS_MAX, %d) or "
                     "PP_AUTODETECT, not %d", PP_WORKERS_MAX, ncpus);
        return -1;
    }
    if (ncpus == PP_AUTODETECT)
        ncpus = pp_ncpus_available();
    if (ncpus > 0 && !s->worker_path) {
        pp_set_error("pp_set_ncpus: no ppworker executable was found at start-up");
        return -1;
    }
    pthread_mutex_lock(&s->mu);
    if (s->stopping) {
        pthread_mutex_unlock(&s->mu);
        pp_set_error("pp_set_ncpus: the server is shutting down");
        return -1;
    }
    s->ncpus_want = ncpus;
    s->ncpus_dirty = 1;
    s->nodes[0]->ncpus = ncpus;
    s->nodes[0]->state = ncpus > 0 ? PP_NODE_UP : PP_NODE_DOWN;
    pp_sched_wake_locked(s);
    pthread_mutex_unlock(&s->mu);
    return 0;
}
