/* SPDX-License-Identifier: MIT */
/* error.c -- pp_last_error() (per thread), pp_strerror(), pp_version(). */
#include <stdarg.h>
#include <stdio.h>

#include "internal.h"

#define STR_(x) #x
#define STR(x) STR_(x)

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

PP_API const char *pp_strerror(int status)
{
    switch (status) {
#define PP_STATUS_CASE(name, num, text)                                        \
    case num:                                                                  \
        return text;
        PP_STATUS_LIST(PP_STATUS_CASE)
#undef PP_STATUS_CASE
    default:
        return "unknown status";
    }
}

PP_API const char *pp_version(void)
{
    return STR(PP_VERSION_MAJOR) "." STR(PP_VERSION_MINOR) "." STR(PP_VERSION_PATCH);
}
