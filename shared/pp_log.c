/* SPDX-License-Identifier: MIT */
/* pp_log.c -- leveled logging. */
#include "pp_log.h"

#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

int pp_log_parse_level(const char *s)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    if (!s)
        return -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    if (s[0] >= '0' && s[0] <= '3' && s[1] == 0)
        return s[0] - '0';
    return -1;
}

void pp_log_write(const pp_log *lg, int level, const char *fmt, ...)
{
    static const char *tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);

    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    localtime_r(&tv.tv_sec, &tm);
    char ts[32];
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
    /* One fprintf per line: stdio locks the stream, so lines never mix. */
    fprintf(lg->fp ? lg->fp : stderr, "%s.%03d %d %s %s: %s\n", ts, (int)(tv.tv_usec / 1000),
            (int)getpid(), tags[level < 0 ? 0 : level > 3 ? 3 : level],
            lg->who ? lg->who : "pp", msg);
}
