/* SPDX-License-Identifier: MIT */
/* pp_log.c -- leveled logging, with an optional per-owner rate limit per
 * kind of line (a token bucket per format string). */
#include "pp_log.h"

#include <stdarg.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *const tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};

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

/* One line, formatted already. */
static void put_line(const pp_log *lg, int level, const char *msg)
{
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

/* The summary of a kind's suppressed lines, if any; resets the count. */
static void summarize(const pp_log *lg, pp_log_kind *k, double now)
{
    if (!k->suppressed)
        return;
    char msg[256];
    snprintf(msg, sizeof msg, "... %lu more line%s like \"%.120s\" suppressed in %.1f s "
                              "(at most %g a second are written)",
             k->suppressed, k->suppressed == 1 ? "" : "s", k->fmt, now - k->since,
             lg->limit->rate);
    put_line(lg, k->level, msg);
    k->suppressed = 0;
}

/* The kind of fmt, added (or in place of the one idle longest) if new. */
static pp_log_kind *kind_of(const pp_log *lg, const char *fmt, double now)
{
    pp_log_limit *l = lg->limit;
    pp_log_kind *victim = &l->kinds[0];
    for (int i = 0; i < PP_LOG_KINDS; i++) {
        pp_log_kind *k = &l->kinds[i];
        if (k->fmt == fmt)
            return k;
        if (victim->fmt && (!k->fmt || k->last < victim->last))
            victim = k;
    }
    if (victim->fmt)
        summarize(lg, victim, now);
    *victim = (pp_log_kind){.fmt = fmt, .tokens = l->burst, .last = now};
    return victim;
}

/* Whether a line of this kind may be written now (1), or is counted as
 * suppressed (0).  The count is written by pp_log_flush(): one summary per
 * kind per flush, not one for every line let through between drops. */
static int admit(const pp_log *lg, int level, const char *fmt)
{
    pp_log_limit *l = lg->limit;
    double now = l->clock ? l->clock() : pp_now();
    pp_log_kind *k = kind_of(lg, fmt, now);
    k->tokens += (now - k->last) * l->rate;
    if (k->tokens > l->burst)
        k->tokens = l->burst;
    k->last = now;
    k->level = level;
    if (k->tokens >= 1) {
        k->tokens -= 1;
        return 1;
    }
    if (!k->suppressed++)
        k->since = now;
    return 0;
}

void pp_log_write(const pp_log *lg, int level, const char *fmt, ...)
{
    pp_log_limit *l = lg->limit && lg->limit->rate > 0 ? lg->limit : NULL;
    if (l) {
        pthread_mutex_lock(&l->mu);
        int ok = admit(lg, level, fmt);
        pthread_mutex_unlock(&l->mu);
        if (!ok)
            return;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    put_line(lg, level, msg);
}

void pp_log_limit_init(pp_log_limit *l, double rate, double burst)
{
    memset(l, 0, sizeof *l);
    l->rate = rate;
    l->burst = burst < 1 ? 1 : burst;
    pthread_mutex_init(&l->mu, NULL);
}

void pp_log_limit_destroy(pp_log_limit *l)
{
    pthread_mutex_destroy(&l->mu);
}

void pp_log_flush(const pp_log *lg)
{
    if (!lg || !lg->limit || lg->limit->rate <= 0)
        return;
    pp_log_limit *l = lg->limit;
    pthread_mutex_lock(&l->mu);
    double now = l->clock ? l->clock() : pp_now();
    for (int i = 0; i < PP_LOG_KINDS; i++)
        if (l->kinds[i].fmt)
            summarize(lg, &l->kinds[i], now);
    pthread_mutex_unlock(&l->mu);
}
