/* SPDX-License-Identifier: MIT */
/* submit.c -- pp_submit (task resolution with dladdr), jobs, groups, waits. */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#include <sched.h>

#define SPIN_SECONDS 0.0002

/* ---- tasks ---- */

/* Finds which shared library and symbol hold `task`.  Returns the index in
 * s->tasks (with mu held), or -1 with pp_last_error() set. */
static int64_t task_index_locked(pp_server *s, pp_task task, const char *module,
                                 const char *symbol)
{
    for (uint32_t i = 0; i < s->ntasks; i++)
        if (s->tasks[i].fn == task)
            return i;
    if (!module)
        return -2; /* not known yet: resolve outside the lock */
    if (s->ntasks == s->captasks) {
        uint32_t cap = s->captasks ? s->captasks * 2 : 8;
        pp_task_ref *t = realloc(s->tasks, cap * sizeof *t);
        if (!t)
            return -1;
        s->tasks = t;
        s->captasks = cap;
    }
    char *m = strdup(module), *sym = strdup(symbol);
    if (!m || !sym) {
        free(m);
        free(sym);
        return -1;
    }
    s->tasks[s->ntasks] = (pp_task_ref){.fn = task, .module = m, .symbol = sym};
    return s->ntasks++;
}

/* dladdr() the task: it must be an exported function of a shared library. */
static int resolve_task(pp_task task, char *module, size_t mlen, char *symbol, size_t slen)
{
    void *addr;
    memcpy(&addr, &task, sizeof addr);
    Dl_info info;
    if (!dladdr(addr, &info) || !info.dli_fname) {
        pp_set_error("pp_submit: the task at %p is in no loaded object; tasks must be "
                     "exported functions of a shared library (a task module)", addr);
        return -1;
    }
    char *real = realpath(info.dli_fname, NULL);
    char *exe = realpath("/proc/self/exe", NULL);
    int in_program = !info.dli_fname[0] || (real && exe && strcmp(real, exe) == 0);
    free(exe);
    if (in_program) {
        pp_set_error("pp_submit: the task %s is defined in the program itself; put it into "
                     "a shared library (a task module, see pp_add_task_module) and link "
                     "the program with it", info.dli_sname ? info.dli_sname : "(unnamed)");
        free(real);
        return -1;
    }
    if (!real) {
        pp_set_error("pp_submit: cannot resolve the path of task module %s: %s",
                     info.dli_fname, strerror(errno));
        return -1;
    }
    if (!info.dli_sname || info.dli_saddr != addr) {
        pp_set_error("pp_submit: the task at %p in %s is not an exported symbol; declare it "
                     "without `static` and with default visibility", addr, real);
        free(real);
        return -1;
    }
    if (strlen(real) >= mlen || strlen(info.dli_sname) >= slen) {
        pp_set_error("pp_submit: task module path or symbol name too long");
        free(real);
        return -1;
    }
    strcpy(module, real);
    strcpy(symbol, info.dli_sname);
    free(real);
    return 0;
}

/* ---- groups ---- */

static pp_group *group_get_locked(pp_server *s, const char *name, int create)
{
    for (pp_group *g = s->groups; g; g = g->next)
        if (strcmp(g->name, name) == 0)
            return g;
    if (!create)
        return NULL;
    size_t n = strlen(name);
    pp_group *g = calloc(1, sizeof *g + n + 1);
    if (!g)
        return NULL;
    memcpy(g->name, name, n + 1);
    g->next = s->groups;
    s->groups = g;
    return g;
}

/* ---- jobs ---- */

void pp_job_unref(pp_job *j)
{
    if (atomic_fetch_sub_explicit(&j->refs, 1, memory_order_acq_rel) == 1) {
        free(j->result_mem);
        free(j);
    }
}

PP_API pp_job *pp_submit(pp_server *s, pp_task task, const void *arg, size_t len,
                         const pp_submit_opts *opts)
{
    if (!s || !task) {
        pp_set_error("pp_submit: %s is NULL", !s ? "the server" : "the task");
        return NULL;
    }
    if (!arg && len) {
        pp_set_error("pp_submit: arg is NULL but len is %zu", len);
        return NULL;
    }
    if (len > PP_MAX_FRAME - 4) {
        pp_set_error("pp_submit: an argument of %zu bytes exceeds the limit of %u", len,
                     PP_MAX_FRAME - 4);
        return NULL;
    }
    if (opts && (opts->timeout < 0 || isnan(opts->timeout))) {
        pp_set_error("pp_submit: the timeout must be >= 0 seconds");
        return NULL;
    }
    if (opts && opts->group && strlen(opts->group) > 1024) {
        pp_set_error("pp_submit: group names are limited to 1024 bytes");
        return NULL;
    }

    pp_job *j = pp_malloc_big(sizeof *j + len + 1);
    if (!j) {
        pp_set_error("pp_submit: out of memory for an argument of %zu bytes", len);
        return NULL;
    }
    memset(j, 0, sizeof *j);
    if (len)
        memcpy(j->arg, arg, len);
    j->arg[len] = 0;
    j->len = len;
    j->s = s;
    atomic_init(&j->status, PP_PENDING);
    atomic_init(&j->refs, 2);
    j->pj.arg = j->arg;
    j->pj.len = len;
    if (opts) {
        j->cb = opts->callback;
        j->cb_arg = opts->callback_arg;
        j->pj.timeout = opts->timeout;
    }

    pthread_mutex_lock(&s->mu);
    int64_t ti = task_index_locked(s, task, NULL, NULL);
    if (ti == -2) {
        pthread_mutex_unlock(&s->mu);
        char module[PATH_MAX], symbol[1024];
        if (resolve_task(task, module, sizeof module, symbol, sizeof symbol) != 0) {
            free(j);
            return NULL;
        }
        pthread_mutex_lock(&s->mu);
        ti = task_index_locked(s, task, module, symbol);
    }
    const char *why = NULL;
    if (ti < 0)
        why = "out of memory";
    else if (s->stopping)
        why = "the server is shutting down";
    else if (opts && opts->group && !(j->group = group_get_locked(s, opts->group, 1)))
        why = "out of memory";
    if (why) {
        pthread_mutex_unlock(&s->mu);
        pp_set_error("pp_submit: %s", why);
        free(j);
        return NULL;
    }
    j->task = (uint32_t)ti;
    if (j->group)
        j->group->outstanding++;
    s->outstanding++;
    s->submitted++;
    job_list_push(&s->incoming, j);
    pp_sched_wake_locked(s);
    pthread_mutex_unlock(&s->mu);
    return j;
}

PP_API int pp_job_status(const pp_job *j)
{
    if (!j) {
        pp_set_error("pp_job_status: NULL job");
        return -1;
    }
    return atomic_load_explicit(&((pp_job *)j)->status, memory_order_acquire);
}

/* Sets ts to `left` seconds from now on the condition variables' clock. */
static void deadline_ts(struct timespec *ts, double left)
{
    clock_gettime(CLOCK_REALTIME, ts);
    double t = (double)ts->tv_sec + ts->tv_nsec * 1e-9 + left;
    ts->tv_sec = (time_t)t;
    ts->tv_nsec = (long)((t - (double)ts->tv_sec) * 1e9);
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Waits until the job is final or the deadline (pp_now() time; < 0 = none). */
static int job_wait_until(pp_job *j, double deadline)
{
    int st = atomic_load_explicit(&j->status, memory_order_acquire);
    if (st != PP_PENDING)
        return st; /* final: the server may already be gone */
    /* Short jobs finish within a few tens of microseconds: look a little
     * before sleeping, which saves the wake-up (a futex round) then. */
    double spin_end = pp_now() + SPIN_SECONDS;
    if (deadline >= 0 && deadline < spin_end)
        spin_end = deadline;
    while ((st = atomic_load_explicit(&j->status, memory_order_acquire)) == PP_PENDING &&
           pp_now() < spin_end)
        sched_yield();
    if (st != PP_PENDING)
        return st;
    pp_server *s = j->s;
    pthread_mutex_lock(&s->mu);
    s->waiters++;
    while ((st = atomic_load_explicit(&j->status, memory_order_acquire)) == PP_PENDING) {
        if (deadline < 0) {
            pthread_cond_wait(&s->done_cv, &s->mu);
            continue;
        }
        double left = deadline - pp_now();
        if (left <= 0)
            break;
        struct timespec ts;
        deadline_ts(&ts, left);
        pthread_cond_timedwait(&s->done_cv, &s->mu, &ts);
    }
    s->waiters--;
    pthread_mutex_unlock(&s->mu);
    return st;
}

PP_API int pp_job_wait(pp_job *j)
{
    if (!j) {
        pp_set_error("pp_job_wait: NULL job");
        return -1;
    }
    return job_wait_until(j, -1);
}

PP_API int pp_job_wait_for(pp_job *j, double seconds)
{
    if (!j || seconds < 0 || isnan(seconds)) {
        pp_set_error("pp_job_wait_for: %s", !j ? "NULL job" : "seconds must be >= 0");
        return -1;
    }
    return job_wait_until(j, pp_now() + seconds);
}

PP_API const void *pp_job_result(pp_job *j, size_t *len)
{
    if (len)
        *len = 0;
    int st = pp_job_wait(j);
    if (st != PP_DONE) {
        if (st >= 0)
            pp_set_error("pp_job_result: the job %s%s%s", pp_strerror(st),
                         j->result_len ? ": " : "", j->result_len ? j->result : "");
        return NULL;
    }
    if (len)
        *len = j->result_len;
    return j->result ? j->result : (const void *)"";
}

PP_API const char *pp_job_error(const pp_job *j)
{
    if (!j)
        return "";
    int st = atomic_load_explicit(&((pp_job *)j)->status, memory_order_acquire);
    if (st == PP_PENDING || st == PP_DONE || !j->result)
        return "";
    return j->result;
}

PP_API const char *pp_job_node(const pp_job *j)
{
    if (!j)
        return "";
    int st = atomic_load_explicit(&((pp_job *)j)->status, memory_order_acquire);
    if (st == PP_PENDING || !j->node)
        return "";
    return j->node->name;
}

PP_API void pp_job_free(pp_job *j)
{
    if (!j)
        return;
    if (atomic_exchange_explicit(&j->handle_freed, 1, memory_order_acq_rel)) {
        /* The library still holds the job (else this is a use after free
         * nothing can catch): refuse, loudly, instead of freeing it under
         * the library's feet. */
        pp_set_error("pp_job_free: the job was already freed (free each handle once)");
        pp_log(&j->s->log, PP_LOG_ERROR, "pp_job_free: the job was already freed; the "
                                         "second call is ignored (free each handle once)");
        return;
    }
    pp_job_unref(j);
}

/* pp_wait() and pp_wait_for(): until the group drained or the deadline
 * (pp_now() time; < 0 = none).  0, 1 (time ran out) or -1. */
static int wait_group(pp_server *s, const char *group, double deadline, const char *who)
{
    if (!s) {
        pp_set_error("%s: NULL server", who);
        return -1;
    }
    pthread_mutex_lock(&s->mu);
    if (s->cb_started && pthread_equal(pthread_self(), s->cb_thread)) {
        pthread_mutex_unlock(&s->mu);
        pp_set_error("%s: called from a callback, it would wait for itself", who);
        return -1;
    }
    pp_group *g = group ? group_get_locked(s, group, 0) : NULL;
    int rc = 0;
    s->waiters++;
    size_t left;
    while ((left = group ? (g ? g->outstanding : 0) : s->outstanding) > 0) {
        if (deadline < 0) {
            pthread_cond_wait(&s->done_cv, &s->mu);
            continue;
        }
        double rest = deadline - pp_now();
        if (rest <= 0) {
            rc = 1;
            break;
        }
        struct timespec ts;
        deadline_ts(&ts, rest);
        pthread_cond_timedwait(&s->done_cv, &s->mu, &ts);
    }
    s->waiters--;
    pthread_mutex_unlock(&s->mu);
    if (rc == 1)
        pp_set_error("%s: %zu job(s)%s%s%s still pending", who, left, group ? " of group \"" : "",
                     group ? group : "", group ? "\"" : "");
    return rc;
}

PP_API int pp_wait(pp_server *s, const char *group)
{
    return wait_group(s, group, -1, "pp_wait");
}

PP_API int pp_wait_for(pp_server *s, const char *group, double seconds)
{
    if (seconds < 0 || isnan(seconds)) {
        pp_set_error("pp_wait_for: seconds must be >= 0");
        return -1;
    }
    return wait_group(s, group, pp_now() + seconds, "pp_wait_for");
}
