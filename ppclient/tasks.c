/* SPDX-License-Identifier: MIT */
/* tasks.c -- the task registry: which shared library and symbol hold each
 * task the program submits, and the SHA-256 that names the library on the
 * nodes.  One entry per task, made on its first submit (on the submitting
 * thread, outside the lock: dladdr, realpath and the hash take time) and
 * never changed after: jobs point at their entry, so nothing on the
 * scheduler's dispatch path looks anything up or hashes anything.
 * Locking: the table is guarded by mu; entries are read without it, and
 * so is the last one found (s->last_task). */
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "pp_proto.h"

/* The entry of `task`, or NULL; mu held. */
static pp_task_entry *find_locked(pp_server *s, pp_task task)
{
    for (uint32_t i = 0; i < s->ntasks; i++)
        if (s->tasks[i]->fn == task)
            return s->tasks[i];
    return NULL;
}

static void entry_free(pp_task_entry *t)
{
    if (!t)
        return;
    free(t->module);
    free(t->symbol);
    free(t->hash_err);
    free(t);
}

/* dladdr() the task: it must be an exported function of a shared library,
 * not of the program.  A new entry (module, symbol), or NULL with
 * pp_last_error() set. */
static pp_task_entry *resolve(pp_task task, const char *who)
{
    void *addr;
    memcpy(&addr, &task, sizeof addr);
    Dl_info info;
    if (!dladdr(addr, &info) || !info.dli_fname) {
        pp_set_error("%s: the task at %p is in no loaded object; tasks must be exported "
                     "functions of a shared library (a task module)", who, addr);
        return NULL;
    }
    char *real = realpath(info.dli_fname, NULL);
    char *exe = realpath("/proc/self/exe", NULL);
    int in_program = !info.dli_fname[0] || (real && exe && strcmp(real, exe) == 0);
    free(exe);
    pp_task_entry *t = NULL;
    if (in_program) {
        pp_set_error("%s: the task %s is defined in the program itself; put it into a shared "
                     "library (a task module, see pp_add_task_module) and link the program "
                     "with it", who, info.dli_sname ? info.dli_sname : "(unnamed)");
    } else if (!real) {
        pp_set_error("%s: cannot resolve the path of task module %s: %s", who, info.dli_fname,
                     strerror(errno));
    } else if (!info.dli_sname || info.dli_saddr != addr) {
        pp_set_error("%s: the task at %p in %s is not an exported symbol; declare it without "
                     "`static` and with default visibility", who, addr, real);
    } else if (strlen(real) >= PATH_MAX || strlen(info.dli_sname) > PP_SYMBOL_MAX) {
        pp_set_error("%s: the task's module path or symbol name is too long (at most %d "
                     "bytes for a symbol)", who, PP_SYMBOL_MAX);
    } else if (!(t = calloc(1, sizeof *t)) || !(t->symbol = strdup(info.dli_sname))) {
        pp_set_error("%s: out of memory", who);
        entry_free(t);
        t = NULL;
    } else {
        t->fn = task;
        t->module = real;
        real = NULL;
        t->pool_id = -1;
    }
    free(real);
    return t;
}

pp_task_entry *pp_tasks_get(pp_server *s, pp_task task, const char *who)
{
    if (pp_forked(s, who)) /* its lock may be held by a thread the child lacks */
        return NULL;
    /* Most submits name the task of the one before: no lock round then. */
    pp_task_entry *found = atomic_load_explicit(&s->last_task, memory_order_acquire);
    if (found && found->fn == task)
        return found;
    pthread_mutex_lock(&s->mu);
    found = find_locked(s, task);
    if (found)
        atomic_store_explicit(&s->last_task, found, memory_order_release);
    pthread_mutex_unlock(&s->mu);
    if (found)
        return found;
    pp_task_entry *t = resolve(task, who);
    if (!t)
        return NULL;
    /* Nodes know a module by its hash; a module that cannot be read fails
     * only the jobs sent to nodes (PP_ELOAD there), not local ones. */
    if (s->have_key) {
        char err[PP_ERR_LEN];
        if (pp_sha256_file(t->module, t->hash, err) != 0 && !(t->hash_err = strdup(err))) {
            entry_free(t);
            pp_set_error("%s: out of memory", who);
            return NULL;
        }
    }
    pthread_mutex_lock(&s->mu);
    found = find_locked(s, task); /* another thread may have been first */
    if (!found && s->ntasks == s->captasks) {
        uint32_t cap = s->captasks ? s->captasks * 2 : 8;
        pp_task_entry **v = realloc(s->tasks, cap * sizeof *v);
        if (v) {
            s->tasks = v;
            s->captasks = cap;
        }
    }
    if (!found && s->ntasks < s->captasks) {
        s->tasks[s->ntasks++] = t;
        found = t;
        t = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    entry_free(t);
    if (!found)
        pp_set_error("%s: out of memory", who);
    return found;
}

void pp_tasks_free(pp_server *s)
{
    for (uint32_t i = 0; i < s->ntasks; i++)
        entry_free(s->tasks[i]);
    free(s->tasks);
    s->tasks = NULL;
    s->ntasks = s->captasks = 0;
}
