/* SPDX-License-Identifier: MIT */
/* pp_conf.c -- table-driven configuration. */
#include "pp_conf.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pp_auth.h"
#include "pp_common.h"

#define CONF_FILE_MAX (1 << 20) /* bytes of a configuration file */
#define CONF_LINE_MAX 4094      /* bytes of one of its lines, without the newline */

const pp_conf_opt *pp_conf_find(const pp_conf_opt *t, const char *name)
{
    for (; t->name; t++)
        if (strcmp(t->name, name) == 0)
            return t;
    return NULL;
}

int pp_conf_set(const pp_conf_opt *o, void *base, const char *value, char *err)
{
    char *field = (char *)base + o->offset;
    char q[72]; /* the value in a message: quoted, its start enough */
    switch (o->kind) {
    case PP_CONF_INT:
    case PP_CONF_DOUBLE: {
        char *end;
        errno = 0;
        double v = strtod(value, &end);
        /* Plain decimal only: strtod would also take hex, "inf" and blanks. */
        int plain = strspn(value, "0123456789.-+eE") == strlen(value);
        if (errno || end == value || *end || !plain || isnan(v) || v < o->min || v > o->max ||
            (o->kind == PP_CONF_INT && v != floor(v))) {
            pp_seterr(err, "%s: \"%s\" is not a %s in %g..%g", o->name,
                      pp_quote(value, strlen(value), q, sizeof q),
                      o->kind == PP_CONF_INT ? "whole number" : "number", o->min, o->max);
            return -1;
        }
        if (o->kind == PP_CONF_INT)
            *(int *)field = (int)v;
        else
            *(double *)field = v;
        return 0;
    }
    case PP_CONF_BOOL:
        if (!strcasecmp(value, "yes") || !strcasecmp(value, "true") || !strcmp(value, "1"))
            *(int *)field = 1;
        else if (!strcasecmp(value, "no") || !strcasecmp(value, "false") || !strcmp(value, "0"))
            *(int *)field = 0;
        else {
            pp_seterr(err, "%s: \"%s\" is not yes or no", o->name,
                      pp_quote(value, strlen(value), q, sizeof q));
            return -1;
        }
        return 0;
    case PP_CONF_LIST:
        if (*(char **)field) {
            char *old = *(char **)field, *joined = NULL;
            if (asprintf(&joined, "%s,%s", old, value) < 0) {
                pp_seterr(err, "out of memory");
                return -1;
            }
            free(old);
            *(char **)field = joined;
            return 0;
        }
        /* The first value: stored as a string's. */
        /* fall through */
    case PP_CONF_STR: {
        char *copy = strdup(value);
        if (!copy) {
            pp_seterr(err, "out of memory");
            return -1;
        }
        free(*(char **)field);
        *(char **)field = copy;
        return 0;
    }
    }
    pp_seterr(err, "%s: bad option kind", o->name);
    return -1;
}

/* The configuration file opened as a stream, checked (pp_open_regular),
 * with its size then, or NULL with the reason in err. */
static FILE *open_conf(const char *path, size_t *size, char *err)
{
    struct stat st;
    int fd = pp_open_regular(path, &st);
    FILE *fp = NULL;
    if (fd < 0 && errno)
        pp_seterr(err, "%s: %s", path, strerror(errno));
    else if (fd < 0)
        pp_seterr(err, "%s: not a regular file", path);
    else if (st.st_size > CONF_FILE_MAX)
        pp_seterr(err, "%s: larger than %d bytes", path, CONF_FILE_MAX);
    else if (!(fp = fdopen(fd, "r")))
        pp_seterr(err, "%s: %s", path, strerror(errno));
    else
        *size = (size_t)st.st_size;
    if (fd >= 0 && !fp)
        close(fd);
    return fp;
}

int pp_conf_load(const pp_conf_opt *table, void *base, const char *path, char *err)
{
    size_t size = 0;
    FILE *fp = open_conf(path, &size, err);
    if (!fp)
        return -1;
    char *line = NULL;
    size_t cap = 0, total = 0;
    ssize_t got;
    int lineno = 0, rc = 0;
    while ((got = getline(&line, &cap, fp)) > 0) {
        lineno++;
        size_t n = (size_t)got;
        total += n;
        if (n - (line[n - 1] == '\n') > CONF_LINE_MAX) {
            pp_seterr(err, "%s:%d: line too long", path, lineno);
            rc = -1;
            break;
        }
        if (memchr(line, 0, n) || total > size) {
            /* A NUL would end the line early: a setting other than the
             * file's.  More bytes than its size said: it is growing. */
            pp_seterr(err, "%s:%d: %s", path, lineno,
                      total > size ? "the file grows while read" : "a NUL byte");
            rc = -1;
            break;
        }
        char *hash = strchr(line, '#');
        if (hash)
            *hash = 0;
        char *p = line;
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            continue;
        char *key = p;
        while (*p && !isspace((unsigned char)*p) && *p != '=')
            p++;
        char *keyend = p;
        while (isspace((unsigned char)*p) || *p == '=')
            p++;
        *keyend = 0;
        char *val = p;
        char *e = val + strlen(val);
        while (e > val && isspace((unsigned char)e[-1]))
            *--e = 0;
        const pp_conf_opt *o = pp_conf_find(table, key);
        char why[PP_ERR_LEN];
        if (!o) {
            char q[72];
            pp_seterr(err, "%s:%d: unknown key \"%s\"", path, lineno,
                      pp_quote(key, strlen(key), q, sizeof q));
            rc = -1;
            break;
        }
        if (!*val) {
            pp_seterr(err, "%s:%d: %s needs a value", path, lineno, key);
            rc = -1;
            break;
        }
        if (pp_conf_set(o, base, val, why) != 0) {
            pp_seterr(err, "%s:%d: %s", path, lineno, why);
            rc = -1;
            break;
        }
    }
    if (rc == 0 && got < 0 && ferror(fp)) {
        pp_seterr(err, "%s: %s", path, strerror(errno));
        rc = -1;
    }
    free(line);
    fclose(fp);
    return rc;
}

void pp_conf_help(const pp_conf_opt *t, FILE *fp)
{
    for (; t->name; t++) {
        char left[64];
        if (t->shortc)
            snprintf(left, sizeof left, "-%c, --%s%s%s", t->shortc, t->name,
                     t->kind == PP_CONF_BOOL ? "" : " ", t->kind == PP_CONF_BOOL ? "" : t->arg);
        else
            snprintf(left, sizeof left, "    --%s%s%s", t->name,
                     t->kind == PP_CONF_BOOL ? "" : " ", t->kind == PP_CONF_BOOL ? "" : t->arg);
        fprintf(fp, "  %-30s %s\n", left, t->help);
    }
}

void pp_conf_free(const pp_conf_opt *t, void *base)
{
    for (; t->name; t++) {
        if (t->kind == PP_CONF_STR || t->kind == PP_CONF_LIST) {
            char **f = (char **)((char *)base + t->offset);
            free(*f);
            *f = NULL;
        }
    }
}

/* A file holding a secret, opened and checked: regular (pp_open_regular), and
 * neither group nor others may read it.  The fd, or -1 with the reason in
 * err. */
static int open_private(const char *path, const char *what, char *err)
{
    struct stat st;
    int fd = pp_open_regular(path, &st);
    if (fd < 0 && errno) {
        pp_seterr(err, "cannot open the %s %s: %s", what, path, strerror(errno));
    } else if (fd < 0) {
        pp_seterr(err, "the %s %s is not a regular file", what, path);
    } else if (st.st_mode & 077) {
        pp_seterr(err, "the %s %s is readable by others (mode %03o); run: chmod 600 %s", what,
                  path, (unsigned)(st.st_mode & 0777), path);
        close(fd);
        fd = -1;
    }
    return fd;
}

int pp_conf_private(const char *path, char *err)
{
    int fd = open_private(path, "configuration file, which holds a secret,", err);
    if (fd < 0)
        return -1;
    close(fd);
    return 0;
}

char *pp_conf_read_secret(const char *path, char *err)
{
    int fd = open_private(path, "secret file", err);
    if (fd < 0)
        return NULL;
    char buf[4097];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n < 0 || n == (ssize_t)sizeof buf) {
        pp_seterr(err, "cannot read the secret file %s (or it exceeds 4 KiB)", path);
        pp_auth_wipe(buf, sizeof buf);
        return NULL;
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    if (memchr(buf, 0, (size_t)n)) {
        /* It would end the secret early: another secret than the file's. */
        pp_seterr(err, "the secret file %s contains a NUL byte", path);
        pp_auth_wipe(buf, sizeof buf);
        return NULL;
    }
    buf[n] = 0;
    char *s = strdup(buf);
    pp_auth_wipe(buf, sizeof buf);
    if (!s)
        pp_seterr(err, "out of memory");
    return s;
}
