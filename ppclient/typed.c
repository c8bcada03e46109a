/* SPDX-License-Identifier: MIT */
/* typed.c -- the client side of typed values: pp_submitf, pp_job_unpack and
 * their pp_value / pp_out forms (the codec itself is shared/pp_typed.c). */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"
#include "pp_buf.h"
#include "pp_lasterr.h"

/* Submits the packed argument in b (NULL if b did not pack) and frees b. */
static pp_job *submit_packed(pp_server *s, pp_task task, const pp_submit_opts *opts, pp_buf *b,
                             int packed)
{
    pp_job *j = NULL;
    if (packed == 0)
        j = pp_submit(s, task, b->data ? b->data : (const void *)"", b->len, opts);
    pp_buf_reset(b);
    return j;
}

pp_job *pp_vsubmitf_entry(pp_server *s, pp_task_entry *task, const pp_submit_opts *opts,
                          const char *who, const char *fmt, va_list ap)
{
    pp_buf b;
    pp_buf_init(&b, PP_MAX_FRAME - 4);
    pp_job *j = NULL;
    if (pp_vpack(&b, fmt, ap) == 0)
        j = pp_submit_entry(s, task, b.data ? b.data : (const void *)"", b.len, opts, 0, who);
    pp_buf_reset(&b);
    return j;
}

PP_API pp_job *pp_submitf(pp_server *s, pp_task task, const pp_submit_opts *opts,
                          const char *fmt, ...)
{
    pp_buf b;
    pp_buf_init(&b, PP_MAX_FRAME - 4);
    va_list ap;
    va_start(ap, fmt);
    int rc = pp_vpack(&b, fmt, ap);
    va_end(ap);
    return submit_packed(s, task, opts, &b, rc);
}

PP_API pp_job *pp_submit_values(pp_server *s, pp_task task, const pp_submit_opts *opts,
                                const pp_value *v, size_t n)
{
    pp_buf b;
    pp_buf_init(&b, PP_MAX_FRAME - 4);
    return submit_packed(s, task, opts, &b, pp_pack_values(&b, v, n));
}

PP_API int pp_job_unpack(pp_job *j, const char *fmt, ...)
{
    size_t len;
    const void *r = j ? pp_job_result(j, &len) : NULL;
    va_list ap;
    va_start(ap, fmt);
    int rc;
    if (r) {
        rc = pp_vunpack(r, len, fmt, ap);
    } else {
        /* pp_job_result() said why; the codec, given no data, sets the
         * array outputs to NULL/0 (and fails): keep the job's message. */
        char why[512];
        snprintf(why, sizeof why, "%s", j ? pp_last_error() : "pp_job_unpack: NULL job");
        (void)pp_vunpack(NULL, 0, fmt, ap);
        pp_set_error("%s", why);
        rc = -1;
    }
    va_end(ap);
    return rc;
}

PP_API int pp_job_unpack_values(pp_job *j, const pp_out *o, size_t n)
{
    size_t len;
    const void *r = j ? pp_job_result(j, &len) : NULL;
    if (r)
        return pp_unpack_values(r, len, o, n);
    char why[512];
    snprintf(why, sizeof why, "%s", j ? pp_last_error() : "pp_job_unpack_values: NULL job");
    (void)pp_unpack_values(NULL, 0, o, n);
    pp_set_error("%s", why);
    return -1;
}
