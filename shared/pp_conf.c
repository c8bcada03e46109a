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
            pp_seterr(err, "%s: \"%s\" is not a %s in %g..%g", o->name, value,
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
            pp_seterr(err, "%s: \"%s\" is not yes or no", o->name, value);
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

int pp_conf_load(const pp_conf_opt *table, void *base, const char *path, char *err)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        pp_seterr(err, "%s: %s", path, strerror(errno));
        return -1;
    }
    char line[4096];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, fp)) {
        lineno++;
        size_t n = strlen(line);
        if (n == sizeof line - 1 && line[n - 1] != '\n') {
            pp_seterr(err, "%s:%d: line too long", path, lineno);
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
            pp_seterr(err, "%s:%d: unknown key \"%s\"", path, lineno, key);
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

/* The checks of a file holding a secret, on its open fd. */
static int check_private(int fd, const char *what, const char *path, char *err)
{
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        pp_seterr(err, "the %s %s is not a regular file", what, path);
        return -1;
    }
    if (st.st_mode & 077) {
        pp_seterr(err, "the %s %s is readable by others (mode %03o); run: chmod 600 %s", what,
                  path, (unsigned)(st.st_mode & 0777), path);
        return -1;
    }
    return 0;
}

int pp_conf_private(const char *path, char *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        pp_seterr(err, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = check_private(fd, "configuration file, which holds a secret,", path, err);
    close(fd);
    return rc;
}

char *pp_conf_read_secret(const char *path, char *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        pp_seterr(err, "cannot open the secret file %s: %s", path, strerror(errno));
        return NULL;
    }
    if (check_private(fd, "secret file", path, err) != 0) {
        close(fd);
        return NULL;
    }
    char buf[4097];
    ssize_t n = read(fd, buf, sizeof buf);
    close(fd);
    if (n < 0 || n == (ssize_t)sizeof buf) {
        pp_seterr(err, "cannot read the secret file %s (or it exceeds 4 KiB)", path);
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
