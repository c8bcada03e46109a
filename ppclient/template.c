/* SPDX-License-Identifier: MIT */
/* template.c -- pp_template, Parallel Python's pp.Template: a task (from the
 * registry, resolved once) and its submit options, kept to submit many jobs
 * with.  Read-only after creation, so any thread may submit through it. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

struct pp_template {
    pp_server *s;
    pp_task_entry *task;
    pp_submit_opts opts;         /* opts.group points to group, or is NULL;
                                    opts.tags to tags, or is NULL */
    char *group;                 /* owned copy of the caller's group name */
    char *tags;                  /* owned copy of the caller's tags */
};

PP_API pp_template *pp_template_new(pp_server *s, pp_task task, const pp_submit_opts *opts)
{
    if (!s || !task) {
        pp_set_error("pp_template_new: %s is NULL", !s ? "the server" : "the task");
        return NULL;
    }
    if (opts && (opts->timeout < 0 || isnan(opts->timeout))) {
        pp_set_error("pp_template_new: the timeout must be >= 0 seconds");
        return NULL;
    }
    if (opts && opts->group && strlen(opts->group) > 1024) {
        pp_set_error("pp_template_new: group names are limited to 1024 bytes");
        return NULL;
    }
    pp_task_entry *entry = pp_tasks_get(s, task, "pp_template_new");
    if (!entry)
        return NULL;
    pp_template *t = calloc(1, sizeof *t);
    if (!t) {
        pp_set_error("pp_template_new: out of memory");
        return NULL;
    }
    t->s = s;
    t->task = entry;
    if (opts) {
        t->opts = *opts;
        if ((opts->group && !(t->group = strdup(opts->group))) ||
            (opts->tags && !(t->tags = strdup(opts->tags)))) {
            free(t->group);
            free(t);
            pp_set_error("pp_template_new: out of memory");
            return NULL;
        }
        t->opts.group = t->group;
        t->opts.tags = t->tags;
    }
    return t;
}

PP_API pp_job *pp_template_submit(pp_template *t, const void *arg, size_t len)
{
    if (!t) {
        pp_set_error("pp_template_submit: the template is NULL");
        return NULL;
    }
    return pp_submit_entry(t->s, t->task, arg, len, &t->opts, 0, "pp_template_submit");
}

PP_API pp_job *pp_template_submitf(pp_template *t, const char *fmt, ...)
{
    if (!t) {
        pp_set_error("pp_template_submitf: the template is NULL");
        return NULL;
    }
    va_list ap;
    va_start(ap, fmt);
    pp_job *j = pp_vsubmitf_entry(t->s, t->task, &t->opts, "pp_template_submitf", fmt, ap);
    va_end(ap);
    return j;
}

PP_API void pp_template_free(pp_template *t)
{
    if (!t)
        return;
    free(t->group);
    free(t->tags);
    free(t);
}
