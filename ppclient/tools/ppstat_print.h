/* SPDX-License-Identifier: MIT */
/* ppstat_print.h -- ppstat's output: a table per node for people, or one
 * JSON document for scripts (every string escaped). */
#ifndef PPSTAT_PRINT_H
#define PPSTAT_PRINT_H

#include <stddef.h>
#include <stdio.h>

#include "ppstat_parse.h"

/* One node's answer in a round. */
typedef struct ppstat_result {
    const char *name;          /* "host:port" */
    const char *error;         /* why it could not be asked, or NULL */
    const ppstat_node *node;   /* its status when error is NULL */
} ppstat_result;

/* The tables of n nodes, in order. */
void ppstat_print_table(FILE *fp, const ppstat_result *r, size_t n);

/* {"nodes": [...]} on one line, then "\n". */
void ppstat_print_json(FILE *fp, const ppstat_result *r, size_t n);

#endif
