/* SPDX-License-Identifier: MIT */
/* pp_log.h -- leveled logging into a per-owner sink (no global state).
 * A line: time, pid, level, subsystem, message. */
#ifndef PP_LOG_H
#define PP_LOG_H

#include <stdio.h>

#include "pp_common.h"

enum { PP_LOG_ERROR = 0, PP_LOG_WARN = 1, PP_LOG_INFO = 2, PP_LOG_DEBUG = 3 };

typedef struct pp_log {
    int level;        /* messages above it are dropped before formatting */
    FILE *fp;         /* NULL = stderr */
    const char *who;  /* subsystem, e.g. "ppserver", "libpp" */
} pp_log;

/* "error", "warn", "info", "debug" (or 0..3) to a level; -1 if unknown. */
int pp_log_parse_level(const char *s);

void pp_log_write(const pp_log *lg, int level, const char *fmt, ...) PP_PRINTF(3, 4);

#define pp_log(lg, lvl, ...)                                                   \
    do {                                                                       \
        if ((lg) && (lvl) <= (lg)->level)                                      \
            pp_log_write((lg), (lvl), __VA_ARGS__);                            \
    } while (0)

#endif
