/* SPDX-License-Identifier: MIT */
/* server.c -- pp_server_new/free, the local pool size, teardown. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"
#include "pp_common.h"
#include "pp_conf.h"
#include "pp_net.h"

static pp_node *node_new(const char *name, int ncpus)
{
    pp_node *n = calloc(1, sizeof *n);
    if (!n)
        return NULL;
    n->name = strdup(name);
    if (!n->name) {
        free(n);
        return NULL;
    }
    n->ncpus = ncpus;
    n->state = PP_NODE_UP;
    return n;
}

/* Frees what pp_server_new() built; the threads are already gone. */
static void server_destroy(pp_server *s)
{
    for (int i = 0; i < s->nnodes; i++) {
        free(s->nodes[i]->name);
        free(s->nodes[i]);
    }
    free(s->nodes);
    for (uint32_t i = 0; i < s->ntasks; i++) {
        free(s->tasks[i].module);
        free(s->tasks[i].symbol);
    }
    free(s->tasks);
    while (s->groups) {
        pp_group *g = s->groups;
        s->groups = g->next;
        free(g);
    }
    if (s->loop)
        pp_loop_free(s->loop);
    if (s->efd >= 0)
        close(s->efd);
    free(s->worker_path);
    for (char **e = s->worker_env; e && *e; e++)
        free(*e);
    free(s->worker_env);
    pp_auth_wipe(&s->key, sizeof s->key);
    pthread_cond_destroy(&s->cb_cv);
    pthread_cond_destroy(&s->done_cv);
    pthread_mutex_destroy(&s->mu);
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
        if (pp_pool_env_name_ok(names[i], why) != 0) {
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

PP_API pp_server *pp_server_new(const pp_config *cfg)
{
    pp_config defaults = {.ncpus = PP_AUTODETECT};
    if (!cfg)
        cfg = &defaults;
    if (cfg->ncpus < PP_AUTODETECT) {
        pp_set_error("pp_server_new: ncpus must be >= 0 or PP_AUTODETECT, not %d",
                     cfg->ncpus);
        return NULL;
    }
    if (cfg->heartbeat < 0 || cfg->node_timeout < 0 || cfg->max_attempts < 0) {
        pp_set_error("pp_server_new: heartbeat, node_timeout and max_attempts must be >= 0");
        return NULL;
    }
    if (cfg->job_memory_mib != 0 && (cfg->job_memory_mib < 64 || cfg->job_memory_mib > 1 << 24)) {
        pp_set_error("pp_server_new: job_memory_mib must be 0 (no limit) or 64..16777216, not %d",
                     cfg->job_memory_mib);
        return NULL;
    }
    int nremote = 0;
    for (const char *const *p = cfg->ppservers; p && *p; p++)
        nremote++;
    if (cfg->no_node_timeout < 0 || isnan(cfg->no_node_timeout)) {
        pp_set_error("pp_server_new: no_node_timeout must be >= 0 seconds");
        return NULL;
    }
    if (cfg->secret && cfg->secret_file) {
        pp_set_error("pp_server_new: give pp_config.secret or pp_config.secret_file, not both");
        return NULL;
    }
    char err[PP_ERR_LEN];
    char *secret = NULL;
    if (nremote && load_secret(cfg, &secret, err) != 0) {
        pp_set_error("pp_server_new: %s", err);
        return NULL;
    }
    const char *lvl = cfg->log_level ? cfg->log_level : getenv("PP_LOG");
    int level = lvl ? pp_log_parse_level(lvl) : PP_LOG_WARN;
    if (level < 0) {
        pp_set_error("pp_server_new: unknown log level \"%s\" (error, warn, info, debug)", lvl);
        return NULL;
    }

    pp_server *s = calloc(1, sizeof *s);
    if (!s) {
        pp_set_error("pp_server_new: out of memory");
        free_secret(secret);
        return NULL;
    }
    s->efd = -1;
    s->log = (pp_log){.level = level, .fp = NULL, .who = "libpp"};
    s->t0 = pp_now();
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->done_cv, NULL);
    pthread_cond_init(&s->cb_cv, NULL);
    s->ncpus_want = cfg->ncpus == PP_AUTODETECT ? pp_ncpus_available() : cfg->ncpus;

    s->worker_path = pp_local_find_worker(cfg->worker_path, err);
    if (!s->worker_path && s->ncpus_want > 0) {
        pp_set_error("pp_server_new: %s", err);
        goto fail;
    }
    s->nodes = calloc((size_t)nremote + 1, sizeof *s->nodes);
    if (!s->nodes || !(s->nodes[0] = node_new("local", s->ncpus_want))) {
        pp_set_error("pp_server_new: out of memory");
        goto fail;
    }
    s->nnodes = 1;
    s->nodes[0]->state = s->ncpus_want > 0 ? PP_NODE_UP : PP_NODE_DOWN; /* no workers */
    for (int i = 0; i < nremote; i++) {
        char host[256], name[300];
        int port;
        if (pp_net_parse_hostport(cfg->ppservers[i], PP_DEFAULT_PORT, host, sizeof host, &port,
                                  err) != 0) {
            pp_set_error("pp_server_new: %s", err);
            goto fail;
        }
        snprintf(name, sizeof name, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host, port);
        if (!(s->nodes[s->nnodes] = node_new(name, 0))) {
            pp_set_error("pp_server_new: out of memory");
            goto fail;
        }
        s->nodes[s->nnodes++]->state = PP_NODE_CONNECTING;
    }
    s->nremotes = nremote;
    s->heartbeat = cfg->heartbeat > 0 ? cfg->heartbeat : 1.0;
    s->node_timeout = cfg->node_timeout > 0 ? cfg->node_timeout : 5.0;
    s->max_attempts = cfg->max_attempts > 0 ? cfg->max_attempts : 3;
    s->job_memory_mib = cfg->job_memory_mib;
    s->no_node_timeout = cfg->no_node_timeout;
    if (copy_names(cfg->worker_env, &s->worker_env, err) != 0) {
        pp_set_error("pp_server_new: %s", err);
        goto fail;
    }
    if (secret) {
        int rc = pp_auth_derive(secret, strlen(secret), &s->key);
        free_secret(secret);
        secret = NULL;
        if (rc != 0) {
            pp_set_error("pp_server_new: cannot derive the authentication key (OpenSSL)");
            goto fail;
        }
    }
    s->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    s->loop = pp_loop_new();
    if (s->efd < 0 || !s->loop) {
        pp_set_error("pp_server_new: cannot create the event loop: %s", strerror(errno));
        goto fail;
    }
    int e = pthread_create(&s->thread, NULL, pp_sched_main, s);
    if (e != 0) {
        pp_set_error("pp_server_new: cannot start the scheduler thread: %s", strerror(e));
        goto fail;
    }
    /* The scheduler thread starts the workers (they die with the thread that
     * started them, PR_SET_PDEATHSIG) and says how that went. */
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
    free_secret(secret);
    server_destroy(s);
    return NULL;
}

/* Stops the scheduler (which cancels what is left), runs the remaining
 * callbacks and frees the server.  `on_cb_thread`: we are the callback
 * thread, which cannot join itself. */
static void server_teardown(pp_server *s, int on_cb_thread)
{
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pp_sched_wake_locked(s);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);

    pthread_mutex_lock(&s->mu);
    s->cb_stop = 1;
    pthread_cond_broadcast(&s->cb_cv);
    int started = s->cb_started;
    if (on_cb_thread)
        pp_run_callbacks_locked(s);
    pthread_mutex_unlock(&s->mu);
    if (started && !on_cb_thread)
        pthread_join(s->cb_thread, NULL);
    else if (on_cb_thread)
        pthread_detach(pthread_self());

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

PP_API void pp_server_free(pp_server *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    int from_cb = s->cb_started && pthread_equal(pthread_self(), s->cb_thread);
    if (from_cb) {
        /* Runs when the current callback returns (pp_callback_main). */
        s->free_requested = 1;
        pthread_mutex_unlock(&s->mu);
        return;
    }
    pthread_mutex_unlock(&s->mu);
    server_teardown(s, 0);
}

void pp_server_teardown_from_callback(pp_server *s)
{
    server_teardown(s, 1);
}

PP_API int pp_get_ncpus(pp_server *s)
{
    if (!s) {
        pp_set_error("pp_get_ncpus: NULL server");
        return -1;
    }
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
    if (ncpus < PP_AUTODETECT) {
        pp_set_error("pp_set_ncpus: ncpus must be >= 0 or PP_AUTODETECT, not %d", ncpus);
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
