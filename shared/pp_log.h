/* SPDX-License-Identifier: MIT */
/* pp_log.h -- leveled logging into a per-owner sink (no global state).
 * A line: time, pid, level, subsystem, message; as text (local time) or as
 * one JSON object (PP_LOG_FORMAT_JSON: "time" RFC 3339 UTC, "level", "program",
 * "pid", "message").  Whatever a message holds -- a peer's address, text a
 * client sent -- it stays one line: text lines write control bytes as \xNN,
 * JSON strings are escaped per RFC 8259 with bytes that are not UTF-8
 * replaced by U+FFFD.  With `journal` set, each line starts with its syslog
 * level, "<3>" to "<7>" (sd-daemon(3)), which journald takes off and keeps
 * as the entry's priority.
 *
 * An owner may bound the rate of its lines (a pp_log_limit of its own):
 * each kind of line -- one format string, i.e. one call site -- may write
 * `rate` lines a second on average, `burst` at once; what a kind writes
 * beyond that is counted, and pp_log_flush() writes one summary per kind
 * saying how many were suppressed.  A flood of refusals then costs a
 * bounded number of lines, not one each. */
#ifndef PP_LOG_H
#define PP_LOG_H

#include <pthread.h>
#include <stdio.h>

#include "pp_common.h"

enum { PP_LOG_ERROR = 0, PP_LOG_WARN = 1, PP_LOG_INFO = 2, PP_LOG_DEBUG = 3 };

enum { PP_LOG_FORMAT_TEXT = 0, PP_LOG_FORMAT_JSON = 1 };

/* The kinds a limit tracks at once; beyond them the one written longest
 * ago is forgotten (its summary written first). */
enum { PP_LOG_KINDS = 64 };

typedef struct pp_log_kind {
    const char *fmt;          /* the kind: its format string (NULL = free slot) */
    int level;                /* of its last line */
    double tokens;            /* lines it may write now */
    double last;              /* when tokens were last topped up */
    double since;             /* first line suppressed since the last summary */
    unsigned long suppressed; /* lines dropped since the last summary */
} pp_log_kind;

typedef struct pp_log_limit {
    double rate;              /* lines a second per kind, on average; <= 0: no limit */
    double burst;             /* lines a kind may write at once (>= 1) */
    double (*clock)(void);    /* NULL = pp_now(); tests give their own */
    pthread_mutex_t mu;       /* a log may be shared by threads */
    pp_log_kind kinds[PP_LOG_KINDS];
} pp_log_limit;

typedef struct pp_log {
    int level;                /* messages above it are dropped before formatting */
    FILE *fp;                 /* NULL = stderr */
    const char *who;          /* subsystem, e.g. "ppserver", "libpp" */
    pp_log_limit *limit;      /* NULL = every line is written */
    int format;               /* PP_LOG_FORMAT_TEXT (0) or PP_LOG_FORMAT_JSON */
    int journal;              /* 1: "<N>" syslog level prefixes (pp_log_is_journal) */
} pp_log;

/* "error", "warn", "info", "debug" (or 0..3) to a level; -1 if unknown. */
int pp_log_parse_level(const char *s);

/* "text" or "json" to a PP_LOG_FORMAT_*; -1 if unknown. */
int pp_log_parse_format(const char *s);

/* Whether fd is the systemd journal's stream: $JOURNAL_STREAM names its
 * device and inode ("DEV:INO", systemd.exec(5)).  1 or 0; a variable
 * inherited by a process whose fd went elsewhere (a --log-file, a pipe)
 * does not match, so that output gets no prefixes. */
int pp_log_is_journal(int fd);

void pp_log_write(const pp_log *lg, int level, const char *fmt, ...) PP_PRINTF(3, 4);

/* Sets a limit up: `rate` lines a second per kind (<= 0: no limit), in
 * bursts of up to `burst`.  pp_log_limit_destroy() when done. */
void pp_log_limit_init(pp_log_limit *l, double rate, double burst);
void pp_log_limit_destroy(pp_log_limit *l);

/* Writes the summary of every kind that had lines suppressed ("... N more
 * lines like ... suppressed in S s"), once; call it now and then (ppserver:
 * every heartbeat).  No-op without a limit. */
void pp_log_flush(const pp_log *lg);

#define pp_log(lg, lvl, ...)                                                   \
    do {                                                                       \
        if ((lg) && (lvl) <= (lg)->level)                                      \
            pp_log_write((lg), (lvl), __VA_ARGS__);                            \
    } while (0)

#endif
