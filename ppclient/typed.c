/* SPDX-License-Identifier: MIT */
/* typed.c -- the client side of typed values: pp_submitf, pp_job_unpack
 * (the codec itself is shared/pp_typed.c). */
#include <stdarg.h>

#include "internal.h"
#include "pp_buf.h"

PP_API pp_job *pp_submitf(pp_server *s, pp_task task, const pp_submit_opts *opts,
                          const char *fmt, ...)
{
    pp_buf b;
    pp_buf_init(&b, PP_MAX_FRAME - 4);
    va_list ap;
    va_start(ap, fmt);
    int rc = pp_vpack(&b, fmt, ap);
    va_end(ap);
    pp_job *j = NULL;
    if (rc == 0)
        j = pp_submit(s, task, b.data ? b.data : (const void *)"", b.len, opts);
    pp_buf_reset(&b);
    return j;
}

PP_API int pp_job_unpack(pp_job *j, const char *fmt, ...)
{
    size_t len;
    const void *r = pp_job_result(j, &len);
    if (!r)
        return -1; /* pp_job_result() set the message */
    va_list ap;
    va_start(ap, fmt);
    int rc = pp_vunpack(r, len, fmt, ap);
    va_end(ap);
    return rc;
}
