/* SPDX-License-Identifier: MIT */
/* pp_module.h -- the module cache of a node: task modules stored under
 * their SHA-256, written atomically (a fresh temporary file, then rename).
 *
 * What the workers dlopen() is what a client sent and the node verified:
 *  - the directory must belong to the node's user and be writable by no one
 *    else (pp_module_cache_check), so nobody else can add, swap or link a
 *    file there between the check and a worker's dlopen();
 *  - a file is created under a fresh random name with O_CREAT | O_EXCL |
 *    O_NOFOLLOW (a link planted at that name makes the open fail, it is
 *    never followed) and renamed over the final name (rename replaces a link
 *    planted there, never its target);
 *  - a cached file is hashed before its first use in a server's life
 *    (pp_module_verify), opened with O_NOFOLLOW: a symlink, a file of
 *    another user or one whose bytes do not match its name counts as absent
 *    and is replaced by what the client sends. */
#ifndef PP_MODULE_H
#define PP_MODULE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pp_auth.h"

/* No group: files are the owner's alone (mode 0600). */
#define PP_MODULE_NO_GROUP ((gid_t)-1)

/* Creates the cache directory (and parents) with mode 0700 if missing, then
 * checks it as pp_module_cache_check() does.  0, or -1 with the reason in
 * err. */
int pp_module_cache_init(const char *dir, char *err);

/* Whether dir may hold modules the workers load: a directory owned by this
 * process's effective user and writable by neither group nor others.  0, or
 * -1 with the reason in err. */
int pp_module_cache_check(const char *dir, char *err);

/* For workers running as another user (ppserver --worker-user): gives the
 * directory that user's group, mode 0750 -- they may read modules, never
 * write.  0, or -1 with the reason in err. */
int pp_module_cache_share(const char *dir, gid_t group, char *err);

/* The cache path of a module: DIR/<64 hex digits>.so */
void pp_module_path(const char *dir, const uint8_t hash[PP_SHA256_LEN], char *out,
                    size_t outlen);

/* Stores a module after checking that its bytes hash to `hash` (see
 * above), mode 0600.  0, or -1 with the reason in err (hash mismatch, I/O
 * error). */
int pp_module_store(const char *dir, const uint8_t hash[PP_SHA256_LEN], const void *data,
                    size_t len, char *err);

/* The same with the file given to `group` (mode 0640) unless it is
 * PP_MODULE_NO_GROUP. */
int pp_module_store_as(const char *dir, const uint8_t hash[PP_SHA256_LEN], const void *data,
                       size_t len, gid_t group, char *err);

/* Checks a cached module before its first use: 1 when DIR/<hash>.so is a
 * regular file (not a link) of ours, writable by nobody else, at most
 * PP_MODULE_MAX bytes, whose bytes hash to its name (with `group` not
 * PP_MODULE_NO_GROUP, it is given that group, mode 0640); 0 when there is
 * none; -1 when there is one not to be used, the reason in err (the caller
 * treats it as absent: storing the module replaces it). */
int pp_module_verify(const char *dir, const uint8_t hash[PP_SHA256_LEN], gid_t group,
                     char *err);

#endif
