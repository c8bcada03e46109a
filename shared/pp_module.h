/* SPDX-License-Identifier: MIT */
/* pp_module.h -- the module cache of a node: task modules stored under
 * their SHA-256, written atomically (temporary file, then rename). */
#ifndef PP_MODULE_H
#define PP_MODULE_H

#include <stddef.h>
#include <stdint.h>

#include "pp_auth.h"

/* Creates the cache directory (and parents) with mode 0700 if missing.
 * 0, or -1 with the reason in err. */
int pp_module_cache_init(const char *dir, char *err);

/* The cache path of a module: DIR/<64 hex digits>.so */
void pp_module_path(const char *dir, const uint8_t hash[PP_SHA256_LEN], char *out,
                    size_t outlen);

/* Stores a module after checking that its bytes hash to `hash`.  0, or -1
 * with the reason in err (hash mismatch, I/O error). */
int pp_module_store(const char *dir, const uint8_t hash[PP_SHA256_LEN], const void *data,
                    size_t len, char *err);

#endif
