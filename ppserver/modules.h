/* SPDX-License-Identifier: MIT */
/* modules.h -- the node's module table (modules.c). */
#ifndef PPSERVER_MODULES_H
#define PPSERVER_MODULES_H

#include <stdint.h>

#include "node.h"

/* Sets up the (empty) table with a fresh random key.  0, or -1. */
int modules_init(server *srv);

/* The module with this hash, or NULL: one bucket's look. */
module *modules_find(server *srv, const uint8_t hash[PP_SHA256_LEN]);

/* Adds a module the node is about to ask for (not found before).  A file
 * already in the cache under its name is verified first (its bytes must
 * hash to the name; see pp_module_verify): present when it does, else
 * absent (logged), to be replaced by what the client sends.  NULL out of
 * memory. */
module *modules_add(server *srv, const uint8_t hash[PP_SHA256_LEN]);

/* Counts a module just stored (len bytes) into the cache, then, over
 * --cache-max-mib, evicts the least recently used modules nobody uses
 * (never m, never one a job or a waiting client needs). */
void modules_stored(server *srv, module *m, size_t len);

/* Drops a module that is neither present nor waited for by anyone. */
void modules_release(server *srv, module *m);

/* Frees the table. */
void modules_free(server *srv);

#endif
