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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    return 0;
}

module *modules_find(server *srv, const uint8_t hash[PP_SHA256_LEN])
{
    if (!srv->mtab)
        return NULL;
    for (module *m = srv->mtab[bucket_of(srv, hash)]; m; m = m->next)
        if (memcmp(m->hash, hash, PP_SHA256_LEN) == 0)
            return m;
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

module *modules_add(server *srv, const uint8_t hash[PP_SHA256_LEN])
{
    if (!srv->mtab)
        return NULL;
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
    /* A file of an earlier run (or planted: a cache is only as safe as
     * every writer since it was made) is taken only if its bytes match its
     * name.  Workers then load this very file by path: the directory is
     * writable by this user alone (checked at start), so nobody else can
     * swap it between this check and their dlopen(); with --worker-user,
     * not even job code. */
    char err[PP_ERR_LEN];
    int v = pp_module_verify(srv->cfg->cache_dir, hash, (gid_t)srv->module_group, err);
    m->present = v == 1;
    if (v < 0)
        pp_log(&srv->log, PP_LOG_WARN, "cached module not used: %s; asking the client for it",
               err);
    if (srv->nmodules >= srv->mbuckets)
        grow(srv);
    size_t b = bucket_of(srv, hash);
    m->next = srv->mtab[b];
    srv->mtab[b] = m;
    srv->nmodules++;
    return m;
}

void modules_release(server *srv, module *m)
{
    if (m->present || m->askers > 0)
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
