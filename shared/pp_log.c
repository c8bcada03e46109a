/* SPDX-License-Identifier: MIT */
/* pp_log.c -- leveled logging as text or JSON lines, with an optional
 * per-owner rate limit per kind of line (a token bucket per format string). */
#include "pp_log.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static const char *const tags[] = {"ERROR", "WARN", "INFO", "DEBUG"};
static const char *const names[] = {"error", "warn", "info", "debug"};
/* sd-daemon.h's SD_ERR, SD_WARNING, SD_INFO, SD_DEBUG. */
static const char syslog_levels[] = {'3', '4', '6', '7'};

int pp_log_parse_level(const char *s)
{
    if (!s)
        return -1;
    for (int i = 0; i < 4; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    if (s[0] >= '0' && s[0] <= '3' && s[1] == 0)
        return s[0] - '0';
    return -1;
}

int pp_log_parse_format(const char *s)
{
    if (s && strcmp(s, "text") == 0)
        return PP_LOG_FORMAT_TEXT;
    if (s && strcmp(s, "json") == 0)
        return PP_LOG_FORMAT_JSON;
    return -1;
}

/* A decimal number of JOURNAL_STREAM's ending at `stop`; 0 or -1. */
static int journal_number(const char *s, char stop, unsigned long long *out, const char **next)
{
    if (!isdigit((unsigned char)*s))
        return -1; /* strtoull would take spaces and signs */
    char *end;
    errno = 0;
    *out = strtoull(s, &end, 10);
    if (errno || *end != stop)
        return -1;
    *next = end;
    return 0;
}

int pp_log_is_journal(int fd)
{
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    if (!e || journal_number(e, ':', &dev, &e) != 0 || journal_number(e + 1, 0, &ino, &e) != 0)
        return 0;
    if (fstat(fd, &st) != 0)
        return 0;
    return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* A line being built in a fixed buffer: each piece goes in whole or not at
 * all (never half an escape or half a character).  What a message adds
 * stops LINE_CLOSE bytes short of the end, so that what closes the line
 * (a quote, a field, the brace, the newline) always fits. */
enum { LINE_MAX = 8192, LINE_CLOSE = 64 };

typedef struct line {
    char buf[LINE_MAX];
    size_t len;
    size_t room;              /* pieces may fill buf up to here */
    int full;                 /* a piece did not fit: the rest is dropped */
} line;

static void add(line *l, const char *s, size_t n)
{
    if (l->full || l->len > l->room || n > l->room - l->len) {
        l->full = 1;
        return;
    }
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

/* From here on the line is being closed: the reserve may be used. */
static void closing(line *l)
{
    l->full = 0;
    l->room = LINE_MAX - 1; /* the newline's byte stays */
}

static void addf(line *l, const char *fmt, ...) PP_PRINTF(2, 3);

static void addf(line *l, const char *fmt, ...)
{
    char piece[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(piece, sizeof piece, fmt, ap);
    va_end(ap);
    if (n >= 0)
        add(l, piece, (size_t)n < sizeof piece ? (size_t)n : sizeof piece - 1);
}

/* s as a JSON string (RFC 8259), quotes included.  U+2028 and U+2029 are
 * escaped too, so that the line stays one line for JavaScript readers. */
static void add_json_string(line *l, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    add(l, "\"", 1);
    while (n > 0 && !l->full) {
        size_t k = pp_utf8_len(p, n);
        static const char esc[] = "btn?fr"; /* bytes 8 to 13: \b \t \n (11: none) \f \r */
        if (k == 0)
            add(l, "\\ufffd", 6); /* not UTF-8: U+FFFD, one per byte */
        else if (*p == '"' || *p == '\\')
            add(l, (const char[]){'\\', (char)*p}, 2);
        else if (*p >= 8 && *p <= 13 && *p != 11)
            add(l, (const char[]){'\\', esc[*p - 8]}, 2);
        else if (*p < 0x20 || *p == 0x7f)
            addf(l, "\\u%04x", *p);
        else if (k == 3 && p[0] == 0xe2 && p[1] == 0x80 && (p[2] == 0xa8 || p[2] == 0xa9))
            addf(l, "\\u%04x", p[2] == 0xa8 ? 0x2028 : 0x2029);
        else
            add(l, (const char *)p, k);
        k = k ? k : 1;
        p += k;
        n -= k;
    }
    size_t room = l->room;
    closing(l); /* the string is closed whatever was dropped */
    add(l, "\"", 1);
    l->room = room;
}

/* s for a text line: control bytes as \xNN, so that no message ends its
 * line early or starts another one that looks like ours. */
static void add_text(line *l, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p && !l->full; p++) {
        if (*p < 0x20 || *p == 0x7f)
            addf(l, "\\x%02x", *p);
        else
            add(l, (const char *)p, 1);
    }
}

/* One line, formatted already; `suppressed` > 0 for a summary (a field of
 * its own in JSON). */
static void put_line(const pp_log *lg, int level, const char *msg, unsigned long suppressed)
{
    level = level < 0 ? 0 : level > 3 ? 3 : level;
    struct timeval tv;
    gettimeofday(&tv, NULL);
    struct tm tm;
    char ts[32];
    line l = {.len = 0, .room = LINE_MAX - LINE_CLOSE};
    if (lg->journal)
        addf(&l, "<%c>", syslog_levels[level]);
    if (lg->format == PP_LOG_FORMAT_JSON) {
        gmtime_r(&tv.tv_sec, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%dT%H:%M:%S", &tm);
        addf(&l, "{\"time\":\"%s.%03dZ\",\"level\":\"%s\",\"program\":", ts,
             (int)(tv.tv_usec / 1000), names[level]);
        add_json_string(&l, lg->who ? lg->who : "pp");
        addf(&l, ",\"pid\":%d,\"message\":", (int)getpid());
        add_json_string(&l, msg);
        closing(&l);
        if (suppressed)
            addf(&l, ",\"suppressed\":%lu", suppressed);
        add(&l, "}", 1);
    } else {
        localtime_r(&tv.tv_sec, &tm);
        strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%S", &tm);
        addf(&l, "%s.%03d %d %s %s: ", ts, (int)(tv.tv_usec / 1000), (int)getpid(), tags[level],
             lg->who ? lg->who : "pp");
        add_text(&l, msg);
    }
    l.buf[l.len++] = '\n'; /* room stops short of the end */
    /* One write per line: stdio locks the stream, so lines never mix. */
    fwrite(l.buf, 1, l.len, lg->fp ? lg->fp : stderr);
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
    put_line(lg, k->level, msg, k->suppressed);
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
    put_line(lg, level, msg, 0);
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
