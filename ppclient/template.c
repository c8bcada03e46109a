/* SPDX-License-Identifier: MIT */
/* template.c -- pp_template, Parallel Python's pp.Template: a task and its
 * submit options, kept to submit many jobs with.  Built on the public
 * pp_submit() and pp_vpack(); a template is read-only after creation, so
 * any thread may submit through it. */
#include <dlfcn.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "pp_buf.h"

struct pp_template {
    pp_server *s;
    pp_task task;
    pp_submit_opts opts;         /* opts.group points to group, or is NULL */
    char *group;                 /* owned copy of the caller's group name */
};

/* The checks pp_submit() makes of a task, made early so that a template
 * for a task pp_submit() would refuse fails at creation: the task must be
 * an exported function of a shared library, not of the program.  dladdr()
 * is the same test pp_submit() runs (it stays the authority: it resolves
 * the task module's path on the first submit and refuses what it must). */
static int check_task(pp_task task)
{
    void *addr;
    memcpy(&addr, &task, sizeof addr);
    Dl_info info;
    if (!dladdr(addr, &info) || !info.dli_fname) {
        pp_set_error("pp_template_new: the task at %p is in no loaded object; tasks must be "
                     "exported functions of a shared library (a task module)", addr);
        return -1;
    }
    char *real = realpath(info.dli_fname, NULL);
    char *exe = realpath("/proc/self/exe", NULL);
    int in_program = !info.dli_fname[0] || (real && exe && strcmp(real, exe) == 0);
    free(exe);
    free(real);
    if (in_program) {
        pp_set_error("pp_template_new: the task %s is defined in the program itself; put it "
                     "into a shared library (a task module, see pp_add_task_module) and link "
                     "the program with it", info.dli_sname ? info.dli_sname : "(unnamed)");
        return -1;
    }
    if (!info.dli_sname || info.dli_saddr != addr) {
        pp_set_error("pp_template_new: the task at %p in %s is not an exported symbol; "
                     "declare it without `static` and with default visibility", addr,
                     info.dli_fname);
        return -1;
    }
    return 0;
}

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
    if (check_task(task) != 0)
        return NULL;
    pp_template *t = calloc(1, sizeof *t);
    if (!t) {
        pp_set_error("pp_template_new: out of memory");
        return NULL;
    }
    t->s = s;
    t->task = task;
    if (opts) {
        t->opts = *opts;
        t->opts.group = NULL;
        if (opts->group && !(t->group = strdup(opts->group))) {
            free(t);
            pp_set_error("pp_template_new: out of memory");
            return NULL;
        }
        t->opts.group = t->group;
    }
    return t;
}

PP_API pp_job *pp_template_submit(pp_template *t, const void *arg, size_t len)
{
    if (!t) {
        pp_set_error("pp_template_submit: the template is NULL");
        return NULL;
    }
    return pp_submit(t->s, t->task, arg, len, &t->opts);
}

PP_API pp_job *pp_template_submitf(pp_template *t, const char *fmt, ...)
{
    if (!t) {
        pp_set_error("pp_template_submitf: the template is NULL");
        return NULL;
    }
    pp_buf b;
    pp_buf_init(&b, PP_MAX_FRAME - 4);
    va_list ap;
    va_start(ap, fmt);
    int rc = pp_vpack(&b, fmt, ap);
    va_end(ap);
    pp_job *j = NULL;
    if (rc == 0)
        j = pp_submit(t->s, t->task, b.data ? b.data : (const void *)"", b.len, &t->opts);
    pp_buf_reset(&b);
    return j;
}

PP_API void pp_template_free(pp_template *t)
{
    if (!t)
        return;
    free(t->group);
    free(t);
}
