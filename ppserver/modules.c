/* SPDX-License-Identifier: MIT */
/* modules.c -- the node's module table: the task modules stored here or
 * asked of a client (by SHA-256), where each lives in the cache, and
 * whether it is there.
 *
 * It holds only those: a module nobody waits for any more and that never
 * came is dropped (modules_release), so JOB frames naming made-up modules
 * cannot grow it (each client may have --max-pending-modules asks open).
 * Lookups go through a hash table keyed with SipHash-2-4 under a random
 * key: the hashes come from clients, and they could otherwise pick 32-byte
 * names that all land in one bucket. */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "pp_module.h"
#include "modules.h"

/* ---- SipHash-2-4 (Aumasson & Bernstein), 64-bit output ---- */

#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND                                                                   \
    do {                                                                           \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32);                  \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2;                                     \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0;                                     \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32);                  \
    } while (0)

static uint64_t load64le(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* SipHash-2-4 of the 32 bytes of a module hash (a multiple of 8 bytes). */
static uint64_t siphash32(const uint64_t key[2], const uint8_t in[PP_SHA256_LEN])
{
    uint64_t v0 = 0x736f6d6570736575ull ^ key[0], v1 = 0x646f72616e646f6dull ^ key[1];
    uint64_t v2 = 0x6c7967656e657261ull ^ key[0], v3 = 0x7465646279746573ull ^ key[1];
    for (int i = 0; i < PP_SHA256_LEN; i += 8) {
        uint64_t m = load64le(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    uint64_t b = (uint64_t)PP_SHA256_LEN << 56;
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

/* ---- the table ---- */

enum { MIN_BUCKETS = 64 };

static size_t bucket_of(const server *srv, const uint8_t hash[PP_SHA256_LEN])
{
    return (size_t)(siphash32(srv->mkey, hash) & (srv->mbuckets - 1));
}

/* ---- the cache directory ---- */

/* The cache directory, opened without following a link: every name below
 * is resolved relative to it, so a planted link cannot lead elsewhere.
 * An fd, or -1. */
static int open_cache_dir(const server *srv)
{
    return open(srv->cfg->cache_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
}

/* Whether name is 64 hex digits then ".so", followed by what (sets *rest). */
static int module_name(const char *name, const char **rest)
{
    for (int i = 0; i < 2 * PP_SHA256_LEN; i++)
        if (!name[i] || !strchr("0123456789abcdef", name[i]))
            return 0;
    if (strncmp(name + 2 * PP_SHA256_LEN, ".so", 3) != 0)
        return 0;
    *rest = name + 2 * PP_SHA256_LEN + 3;
    return 1;
}

static module *insert(server *srv, const uint8_t hash[PP_SHA256_LEN]);
static void shrink(server *srv, const module *keep);
static void verify(server *srv, module *m);

/* A module file of an earlier run: counted, and in the table unverified,
 * so that eviction can take it (the oldest files first: their age puts
 * them before anything used since the start). */
static void found(server *srv, const char *name, const struct stat *st)
{
    uint8_t hash[PP_SHA256_LEN];
    for (int i = 0; i < PP_SHA256_LEN; i++) {
        unsigned v;
        if (sscanf(name + 2 * i, "%2x", &v) != 1)
            return;
        hash[i] = (uint8_t)v;
    }
    module *m = insert(srv, hash);
    if (!m)
        return; /* out of memory: not counted, as if absent */
    m->unverified = 1;
    m->size = (uint64_t)st->st_size;
    double age = difftime(time(NULL), st->st_mtime);
    m->used = -(age > 0 ? age : 0);
    srv->cache_bytes += m->size;
}

/* At start: removes the temporary files an interrupted store left
 * (<hash>.so.tmp.<hex>) and takes the modules already there into the
 * table and cache_bytes (each still verified before its first use, and
 * evicted first if the cache is over its limit).  Links and anything not
 * a regular file are neither followed nor counted. */
static void scan_cache(server *srv)
{
    int dfd = open_cache_dir(srv);
    DIR *d = dfd >= 0 ? fdopendir(dfd) : NULL;
    if (!d) {
        if (dfd >= 0)
            close(dfd);
        return;
    }
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        const char *rest;
        if (!module_name(e->d_name, &rest))
            continue;
        struct stat st;
        if (fstatat(dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0)
            continue;
        if (strncmp(rest, ".tmp.", 5) == 0) {
            if (unlinkat(dfd, e->d_name, 0) == 0) /* a link is removed, never its target */
                pp_log(&srv->log, PP_LOG_INFO, "module cache: stale %s removed", e->d_name);
        } else if (*rest == '\0' && S_ISREG(st.st_mode)) {
            found(srv, e->d_name, &st);
        }
    }
    closedir(d);
}

/* The size of a module's file in the cache (not following a link), or 0. */
static uint64_t file_size(const module *m)
{
    struct stat st;
    if (lstat(m->path, &st) != 0 || !S_ISREG(st.st_mode))
        return 0;
    return (uint64_t)st.st_size;
}

int modules_init(server *srv)
{
    uint8_t rnd[PP_NONCE_LEN];
    if (pp_auth_nonce(rnd) != 0)
        return -1;
    memcpy(srv->mkey, rnd, sizeof srv->mkey);
    srv->mtab = calloc(MIN_BUCKETS, sizeof *srv->mtab);
    if (!srv->mtab)
        return -1;
    srv->mbuckets = MIN_BUCKETS;
    srv->nmodules = 0;
    srv->cache_max = (uint64_t)(srv->cfg->cache_max_mib > 0 ? srv->cfg->cache_max_mib : 0) << 20;
    srv->cache_bytes = srv->cache_evictions = 0;
    srv->cache_over_logged = 0;
    scan_cache(srv);
    shrink(srv, NULL); /* a cache over a limit lowered since the last run */
    return 0;
}

module *modules_find(server *srv, const uint8_t hash[PP_SHA256_LEN])
{
    if (!srv->mtab)
        return NULL;
    for (module *m = srv->mtab[bucket_of(srv, hash)]; m; m = m->next)
        if (memcmp(m->hash, hash, PP_SHA256_LEN) == 0) {
            if (m->unverified) /* a file of an earlier run, named for the first time */
                verify(srv, m);
            m->used = pp_now(); /* each job's lookup: the recency eviction goes by */
            return m;
        }
    return NULL;
}

/* Twice the buckets once there are more entries than buckets (failure to
 * grow only makes chains longer). */
static void grow(server *srv)
{
    size_t n = srv->mbuckets * 2;
    module **t = calloc(n, sizeof *t);
    if (!t)
        return;
    size_t old = srv->mbuckets;
    module **from = srv->mtab;
    srv->mtab = t;
    srv->mbuckets = n;
    for (size_t i = 0; i < old; i++)
        for (module *m = from[i], *next; m; m = next) {
            next = m->next;
            size_t b = bucket_of(srv, m->hash);
            m->next = t[b];
            t[b] = m;
        }
    free(from);
}

/* A new entry for hash in the table, neither verified nor present, or
 * NULL out of memory. */
static module *insert(server *srv, const uint8_t hash[PP_SHA256_LEN])
{
    module *m = calloc(1, sizeof *m);
    size_t plen = strlen(srv->cfg->cache_dir) + 2 * PP_SHA256_LEN + 8;
    char *path = m ? malloc(plen) : NULL;
    if (!path) {
        free(m);
        return NULL;
    }
    memcpy(m->hash, hash, PP_SHA256_LEN);
    pp_module_path(srv->cfg->cache_dir, hash, path, plen);
    m->path = path;
    m->used = pp_now();
    if (srv->nmodules >= srv->mbuckets)
        grow(srv);
    size_t b = bucket_of(srv, hash);
    m->next = srv->mtab[b];
    srv->mtab[b] = m;
    srv->nmodules++;
    return m;
}

/* A file already in the cache (of an earlier run, or planted: a cache is
 * only as safe as every writer since it was made) is taken only if its
 * bytes match its name.  Workers then load this very file by path: the
 * directory is writable by this user alone (checked at start), so nobody
 * else can swap it between this check and their dlopen(); with
 * --worker-user, not even job code. */
static void verify(server *srv, module *m)
{
    char err[PP_ERR_LEN];
    int v = pp_module_verify(srv->cfg->cache_dir, m->hash, (gid_t)srv->module_group, err);
    m->present = v == 1;
    m->unverified = 0;
    if (v < 0)
        pp_log(&srv->log, PP_LOG_WARN, "cached module not used: %s; asking the client for it",
               err);
}

module *modules_add(server *srv, const uint8_t hash[PP_SHA256_LEN])
{
    if (!srv->mtab)
        return NULL;
    module *m = insert(srv, hash);
    if (!m)
        return NULL;
    verify(srv, m);
    /* A file that appeared since the start is counted now; one not used
     * is replaced when the client sends the module, its bytes with it. */
    m->size = file_size(m);
    srv->cache_bytes += m->size;
    return m;
}

void modules_release(server *srv, module *m)
{
    if (m->present || m->unverified || m->askers > 0 || m->jobs > 0)
        return;
    for (module **pp = &srv->mtab[bucket_of(srv, m->hash)]; *pp; pp = &(*pp)->next)
        if (*pp == m) {
            *pp = m->next;
            srv->nmodules--;
            free(m->path);
            free(m);
            return;
        }
}

/* ---- eviction ---- */

/* Asked for by a client, or named by a job here (jobs of a client gone
 * included: they may still be running). */
static int in_use(const module *m)
{
    return m->askers > 0 || m->jobs > 0;
}

/* The least recently used present module other than keep that nobody
 * uses, or NULL. */
static module *lru_victim(server *srv, const module *keep)
{
    module *best = NULL;
    for (size_t b = 0; b < srv->mbuckets; b++)
        for (module *m = srv->mtab[b]; m; m = m->next)
            if (m != keep && (m->present || m->unverified) && (!best || m->used < best->used) &&
                !in_use(m))
                best = m;
    return best;
}

/* Unlinks m's file (by name, relative to the directory: never through a
 * link) and drops it from the table.  0, or -1 (kept). */
static int evict(server *srv, int dfd, module *m)
{
    char name[2 * PP_SHA256_LEN + 8];
    pp_hex(m->hash, PP_SHA256_LEN, name);
    memcpy(name + 2 * PP_SHA256_LEN, ".so", 4);
    if (unlinkat(dfd, name, 0) != 0) {
        pp_log(&srv->log, PP_LOG_WARN, "module cache: cannot evict %.16s...", name);
        return -1;
    }
    pp_log(&srv->log, PP_LOG_INFO, "module %.16s... evicted from the cache (%llu bytes)", name,
           (unsigned long long)m->size);
    srv->cache_bytes -= m->size < srv->cache_bytes ? m->size : srv->cache_bytes;
    srv->cache_evictions++;
    m->present = m->unverified = 0;
    m->size = 0;
    modules_release(srv, m); /* nobody waits for it: the entry goes */
    return 0;
}

/* Evicts the least recently used modules nobody uses (never keep) until
 * the cache fits its limit, or only modules in use are left (logged once). */
static void shrink(server *srv, const module *keep)
{
    if (srv->cache_max == 0 || srv->cache_bytes <= srv->cache_max)
        return;
    int dfd = open_cache_dir(srv);
    if (dfd < 0)
        return;
    module *v;
    while (srv->cache_bytes > srv->cache_max && (v = lru_victim(srv, keep)) != NULL)
        if (evict(srv, dfd, v) != 0)
            break;
    close(dfd);
    if (srv->cache_bytes > srv->cache_max && !srv->cache_over_logged) {
        srv->cache_over_logged = 1; /* once: it stays over while modules are in use */
        pp_log(&srv->log, PP_LOG_WARN,
               "module cache over --cache-max-mib (%llu > %llu bytes): the rest is in use",
               (unsigned long long)srv->cache_bytes, (unsigned long long)srv->cache_max);
    }
}

void modules_stored(server *srv, module *m, size_t len)
{
    srv->cache_bytes -= m->size < srv->cache_bytes ? m->size : srv->cache_bytes;
    m->size = len;
    m->used = pp_now();
    srv->cache_bytes += len;
    shrink(srv, m);
}

void modules_free(server *srv)
{
    for (size_t i = 0; srv->mtab && i < srv->mbuckets; i++)
        for (module *m = srv->mtab[i], *next; m; m = next) {
            next = m->next;
            free(m->path);
            free(m);
        }
    free(srv->mtab);
    srv->mtab = NULL;
    srv->mbuckets = srv->nmodules = 0;
}
