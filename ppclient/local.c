/* SPDX-License-Identifier: MIT */
/* local.c -- the local backend: libpp's named-pipe worker pool, and finding
 * the ppworker executable. */
#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

#define JOB_OF(pj) ((pp_job *)((char *)(pj) - offsetof(pp_job, pj)))

static void local_done(pp_pool *p, pp_pool_job *pj, int status, void *block, const char *data,
                       size_t len, uint64_t run_ns, void *ud)
{
    (void)p;
    pp_server *s = ud;
    pp_sched_finish(s, JOB_OF(pj), status, block, data, len, s->nodes[0], run_ns);
}

static void local_requeue(pp_pool *p, pp_pool_job *pj, void *ud)
{
    (void)p;
    pp_server *s = ud;
    job_list_push_front(&s->ready, JOB_OF(pj));
}

int pp_local_start(pp_server *s, char *err)
{
    pp_pool_opts o = {
        .worker_path = s->worker_path,
        .workers = s->ncpus_want,
        .max_frame = PP_MAX_FRAME,
        .log = &s->log,
        .job_memory_mib = (unsigned)s->job_memory_mib,
        .env = (const char *const *)s->worker_env,
    };
    pp_pool_cbs cbs = {.on_done = local_done, .on_requeue = local_requeue};
    s->pool = pp_pool_new(s->loop, &o, &cbs, s, err);
    return s->pool ? 0 : -1;
}

void pp_local_stop(pp_server *s)
{
    pp_pool_free(s->pool);
    s->pool = NULL;
    free(s->pool_ids);
    s->pool_ids = NULL;
    s->npool_ids = 0;
}

void pp_local_resize(pp_server *s, int n)
{
    if (s->pool)
        pp_pool_resize(s->pool, n);
}

/* The pool's id for task index i (registering it), or -1 out of memory. */
static int64_t pool_task_id(pp_server *s, uint32_t i)
{
    if (i >= s->npool_ids) {
        uint32_t n = PP_MAX(i + 1, s->npool_ids * 2);
        int64_t *ids = realloc(s->pool_ids, n * sizeof *ids);
        if (!ids)
            return -1;
        for (uint32_t k = s->npool_ids; k < n; k++)
            ids[k] = -1;
        s->pool_ids = ids;
        s->npool_ids = n;
    }
    if (s->pool_ids[i] < 0) {
        uint32_t id;
        pthread_mutex_lock(&s->mu); /* API threads may be growing the table */
        int rc = pp_pool_task(s->pool, s->tasks[i].module, s->tasks[i].symbol, &id);
        pthread_mutex_unlock(&s->mu);
        if (rc == 0)
            s->pool_ids[i] = id;
    }
    return s->pool_ids[i];
}

void pp_local_dispatch(pp_server *s)
{
    if (!s->pool)
        return;
    while (s->ready.head && pp_pool_has_room(s->pool)) {
        pp_job *j = s->ready.head;
        int64_t id = pool_task_id(s, j->task);
        if (id < 0)
            break; /* out of memory: try again next turn */
        j->pj.task = (uint32_t)id;
        if (pp_pool_submit(s->pool, &j->pj) != 0)
            break;
        job_list_pop(&s->ready);
    }
    pp_pool_flush(s->pool);
}

/* ---- finding ppworker ---- */

static char *try_path(const char *path)
{
    if (access(path, X_OK) != 0)
        return NULL;
    char *real = realpath(path, NULL);
    return real;
}

char *pp_local_find_worker(const char *configured, char *err)
{
    if (configured && *configured) {
        char *p = try_path(configured);
        if (!p)
            pp_seterr(err, "the configured worker %s is not an executable file", configured);
        return p;
    }
    const char *env = getenv("PP_WORKER");
    if (env && *env) {
        char *p = try_path(env);
        if (!p)
            pp_seterr(err, "PP_WORKER=%s is not an executable file", env);
        return p;
    }
    /* Beside libpp: build/lib -> build/bin; PREFIX/lib[/arch] -> PREFIX/bin or
     * PREFIX/libexec/pp; a static libpp: beside the program. */
    Dl_info info;
    void *self;
    pp_server *(*fn)(const pp_config *) = pp_server_new;
    memcpy(&self, &fn, sizeof self);
    char dir[PATH_MAX] = "";
    if (dladdr(self, &info) && info.dli_fname) {
        char *real = realpath(info.dli_fname, NULL);
        if (real) {
            char *slash = strrchr(real, '/');
            if (slash) {
                *slash = 0;
                snprintf(dir, sizeof dir, "%s", real);
            }
            free(real);
        }
    }
    const char *rel[] = {"/../bin/ppworker", "/../libexec/pp/ppworker",
                         "/../../bin/ppworker", "/../../libexec/pp/ppworker", "/ppworker",
                         "/../ppserver/ppworker"};
    if (dir[0]) {
        for (size_t i = 0; i < PP_ARRAY_LEN(rel); i++) {
            char path[PATH_MAX + 64];
            snprintf(path, sizeof path, "%s%s", dir, rel[i]);
            char *p = try_path(path);
            if (p)
                return p;
        }
    }
#ifdef PP_INSTALL_WORKER
    char *p = try_path(PP_INSTALL_WORKER);
    if (p)
        return p;
#endif
    pp_seterr(err, "cannot find the ppworker executable near %s; set PP_WORKER to its path",
              dir[0] ? dir : "libpp");
    return NULL;
}
