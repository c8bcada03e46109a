/* SPDX-License-Identifier: MIT */
/* pp_lasterr.c -- pp_last_error(), the calling thread's message. */
#include <stdarg.h>
#include <stdio.h>

#include "pp_lasterr.h"

#include "pp.h"


/* The one piece of static storage in libpp: each thread's last message, as
 * the contract of pp_last_error() requires. */
static _Thread_local char last_error[512];

void pp_set_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

PP_API const char *pp_last_error(void)
{
    return last_error;
}
