/* SPDX-License-Identifier: MIT */
/* pp_conf.h -- one option table for configuration files, the command line
 * and --help.  A file line is `name value` or `name = value`; `#` starts a
 * comment; names are the long option names. */
#ifndef PP_CONF_H
#define PP_CONF_H

#include <stddef.h>
#include <stdio.h>

/* PP_CONF_LIST: a string whose repeats add up (a key on several lines, an
 * option given several times): the values joined by commas. */
enum { PP_CONF_INT, PP_CONF_DOUBLE, PP_CONF_STR, PP_CONF_BOOL, PP_CONF_LIST };

typedef struct pp_conf_opt {
    const char *name;     /* long option and file key */
    int shortc;           /* short option letter, or 0 */
    int kind;             /* PP_CONF_* */
    size_t offset;        /* of the field in the settings struct:
                             int, double, char * (malloc'd; STR, LIST) or
                             int (bool) */
    double min, max;      /* range for numbers */
    const char *arg;      /* argument name for --help, e.g. "PORT" */
    const char *help;     /* one line */
} pp_conf_opt;

/* Finds an option by name (NULL if unknown). */
const pp_conf_opt *pp_conf_find(const pp_conf_opt *table, const char *name);

/* Parses and stores one value (strings are copied; the old one freed; a
 * LIST's value is appended after a comma).
 * 0, or -1 with the reason in err (PP_ERR_LEN bytes). */
int pp_conf_set(const pp_conf_opt *o, void *base, const char *value, char *err);

/* Reads a configuration file.  0, or -1 with "FILE:LINE: reason" in err. */
int pp_conf_load(const pp_conf_opt *table, void *base, const char *path, char *err);

/* Reads a secret file: a regular file that neither group nor others may
 * read, at most 4 KiB, trailing newlines dropped.  The secret (malloc'd; the
 * caller wipes and frees it), or NULL with the reason in err. */
char *pp_conf_read_secret(const char *path, char *err);

/* Whether path is a regular file that neither group nor others may read,
 * as a file holding a secret must be.  0, or -1 with the reason in err
 * ("... is readable by others (mode 644); run: chmod 600 ..."). */
int pp_conf_private(const char *path, char *err);

/* Prints the table as --help lines. */
void pp_conf_help(const pp_conf_opt *table, FILE *fp);

/* Frees the strings the table's fields hold. */
void pp_conf_free(const pp_conf_opt *table, void *base);

#endif
