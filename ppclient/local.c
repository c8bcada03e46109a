/* SPDX-License-Identifier: MIT */
/* local.c -- the local backend: libpp's named-pipe worker pool (pp_pool.h)
 * behind the backend interface. */
#include <stdio.h>
#include <string.h>

#include "backend.h"
#include "tags.h"

typedef struct local {
    pp_backend b;                 /* the scheduler's handle (first) */
    pp_pool *pool;
} local;

static local *of(pp_backend *b)
{
    return (local *)b;
}

static void local_done(pp_pool *p, pp_pool_job *pj, int status, void *block, const char *data,
                       size_t len, uint64_t run_ns, void *ud)
{
    (void)p;
    local *l = ud;
    pp_sched_finish(l->b.s, PP_CONTAINER_OF(pj, pp_job, pj), status, block, data, len,
                    l->b.node, run_ns);
}

static void local_requeue(pp_pool *p, pp_pool_job *pj, void *ud)
{
    (void)p;
    local *l = ud;
    pp_sched_requeue(l->b.s, PP_CONTAINER_OF(pj, pp_job, pj));
}

static int l_room(pp_backend *b)
{
    return pp_pool_has_room(of(b)->pool);
}

static int l_dispatch(pp_backend *b, pp_job *j)
{
    local *l = of(b);
    /* The pool's own id for the task: registered once, by this thread. */
    pp_task_entry *t = j->task;
    if (t->pool_id < 0) {
        uint32_t id;
        if (pp_pool_task(l->pool, t->module, t->symbol, &id) != 0)
            return -1; /* out of memory: try again next turn */
        t->pool_id = id;
    }
    j->pj.task = (uint32_t)t->pool_id;
    return pp_pool_submit(l->pool, &j->pj);
}

static void l_flush(pp_backend *b)
{
    pp_pool_flush(of(b)->pool);
}

static int cancelled(pp_pool_job *pj, void *arg)
{
    (void)arg;
    return pp_job_cancelled(PP_CONTAINER_OF(pj, pp_job, pj));
}

/* The pool takes back the cancelled jobs not started yet and kills the
 * workers running one. */
static void l_cancel(pp_backend *b)
{
    pp_pool_cancel_if(of(b)->pool, cancelled, NULL);
}

static void l_resize(pp_backend *b, int n)
{
    pp_pool_resize(of(b)->pool, n);
}

static pp_backend_state l_state(pp_backend *b)
{
    return pp_pool_target(of(b)->pool) > 0 ? PP_BACKEND_UP : PP_BACKEND_WAITING;
}

static void l_describe(pp_backend *b, char *buf, size_t len)
{
    snprintf(buf, len, "local: %d worker(s)", pp_pool_target(of(b)->pool));
}

static void l_free(pp_backend *b)
{
    local *l = of(b);
    pp_pool_free(l->pool); /* jobs on workers come back through local_requeue */
    free(l->b.tags);
    free(l);
}

static const pp_backend_ops local_ops = {
    .free = l_free,
    .room = l_room,
    .dispatch = l_dispatch,
    .flush = l_flush,
    .cancel = l_cancel,
    .resize = l_resize,
    .state = l_state,
    .describe = l_describe,
};

pp_backend *pp_local_new(pp_server *s, pp_node *node, char *err)
{
    local *l = calloc(1, sizeof *l);
    if (!l) {
        pp_seterr(err, "out of memory");
        return NULL;
    }
    l->b = (pp_backend){.ops = &local_ops, .s = s, .node = node};
    if (pp_tags_set_backend(&l->b, s->local_tags) != 0) { /* pp_config.local_tags */
        pp_seterr(err, "out of memory");
        free(l);
        return NULL;
    }
    pp_pool_opts o = {
        .worker_path = s->worker_path,
        .workers = s->ncpus_want,
        .max_frame = PP_MAX_FRAME,
        .log = &s->log,
        .job_memory_mib = (unsigned)s->job_memory_mib,
        .env = (const char *const *)s->worker_env,
        .max_jobs_per_worker = (unsigned)s->worker_max_jobs,
        .shm = s->shm,
    };
    pp_pool_cbs cbs = {.on_done = local_done, .on_requeue = local_requeue};
    l->pool = pp_pool_new(s->loop, &o, &cbs, l, err);
    if (!l->pool) {
        free(l->b.tags);
        free(l);
        return NULL;
    }
    return &l->b;
}

int pp_local_started(pp_backend *b, char *err)
{
    pp_pool *p = of(b)->pool;
    if (pp_pool_failures(p) > 0) {
        pp_seterr(err, "%s", pp_pool_last_failure(p));
        return -1;
    }
    return pp_pool_ready(p) >= pp_pool_target(p);
}
