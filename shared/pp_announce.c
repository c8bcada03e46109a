/* SPDX-License-Identifier: MIT */
/* pp_announce.c -- discovery datagrams (see pp_announce.h): encoding, the
 * strict decoder, freshness, the replay cache, and "*[GROUP][:PORT]". */
#include "pp_announce.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "pp_common.h"

#define MAGIC "PPAN"
#define SIGNED_LEN 40 /* the bytes the MAC covers */

static int fields_ok(const pp_announce *a)
{
    return a->port != 0 && a->ncpus <= PP_ANNOUNCE_CPUS_MAX &&
           a->interval_ms >= PP_ANNOUNCE_IVL_MIN && a->interval_ms <= PP_ANNOUNCE_IVL_MAX &&
           a->time_ms != 0;
}

static int mac(const uint8_t key[32], const uint8_t *msg, uint8_t out[32])
{
    unsigned int len = 0;
    return HMAC(EVP_sha256(), key, 32, msg, SIGNED_LEN, out, &len) && len == 32 ? 0 : -1;
}

int pp_announce_encode(const uint8_t key[32], pp_announce *a, int draw,
                       uint8_t out[PP_ANNOUNCE_LEN])
{
    if (!fields_ok(a))
        return -1;
    if (draw && RAND_bytes(a->nonce, sizeof a->nonce) != 1)
        return -1;
    memcpy(out, MAGIC, 4);
    out[4] = PP_ANNOUNCE_VERSION;
    out[5] = 0;
    pp_store16(out + 6, a->port);
    pp_store32(out + 8, a->ncpus);
    pp_store32(out + 12, a->interval_ms);
    pp_store64(out + 16, a->time_ms);
    memcpy(out + 24, a->nonce, PP_ANNOUNCE_NONCE_LEN);
    return mac(key, out, out + SIGNED_LEN);
}

pp_ann_result pp_announce_decode(const uint8_t key[32], const void *buf, size_t len,
                                 pp_announce *out)
{
    const uint8_t *p = buf;
    if (len != PP_ANNOUNCE_LEN || memcmp(p, MAGIC, 4) != 0 || p[4] != PP_ANNOUNCE_VERSION ||
        p[5] != 0)
        return PP_ANN_BAD;
    pp_announce a = {.port = pp_load16(p + 6),
                     .ncpus = pp_load32(p + 8),
                     .interval_ms = pp_load32(p + 12),
                     .time_ms = pp_load64(p + 16)};
    memcpy(a.nonce, p + 24, sizeof a.nonce);
    if (!fields_ok(&a))
        return PP_ANN_BAD;
    uint8_t want[32];
    if (mac(key, p, want) != 0 || CRYPTO_memcmp(want, p + SIGNED_LEN, 32) != 0)
        return PP_ANN_WRONG_KEY;
    *out = a;
    return PP_ANN_OK;
}

pp_ann_result pp_announce_fresh(const pp_announce *a, uint64_t now_ms)
{
    uint64_t d = a->time_ms > now_ms ? a->time_ms - now_ms : now_ms - a->time_ms;
    return d <= PP_ANNOUNCE_WINDOW_MS ? PP_ANN_OK : PP_ANN_STALE;
}

uint64_t pp_announce_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* ---- the replay cache ----
 * A ring of entries in the order they were taken, which is also the order
 * they expire in (each is kept 2 windows from when it was taken: a datagram
 * stamped up to one window ahead is fresh until one window after that).
 * Entries carry sequence numbers; a slot is seq % cap, and one is live while
 * its seq >= tail, so hash chains (newest first) need no unlinking. */

typedef struct seen_entry {
    uint8_t nonce[PP_ANNOUNCE_NONCE_LEN];
    uint64_t until_ms;
    uint64_t prev;              /* 1 + seq of the next older in its chain; 0 none */
} seen_entry;

struct pp_announce_seen {
    seen_entry *e;
    uint64_t *bucket;           /* 1 + seq of its newest entry; 0 none */
    uint32_t cap, nbuckets;     /* nbuckets: a power of two */
    uint64_t head, tail;        /* seqs: next to take; oldest live */
};

pp_announce_seen *pp_announce_seen_new(uint32_t cap)
{
    if (cap == 0 || cap > (1u << 24))
        return NULL;
    pp_announce_seen *c = calloc(1, sizeof *c);
    uint32_t nb = 1;
    while (nb < cap)
        nb <<= 1;
    if (c) {
        c->e = calloc(cap, sizeof *c->e);
        c->bucket = calloc(nb, sizeof *c->bucket);
        c->cap = cap;
        c->nbuckets = nb;
    }
    if (!c || !c->e || !c->bucket) {
        pp_announce_seen_free(c);
        return NULL;
    }
    return c;
}

void pp_announce_seen_free(pp_announce_seen *c)
{
    if (!c)
        return;
    free(c->e);
    free(c->bucket);
    free(c);
}

/* Nonces are random (and MAC'd: only holders of the key choose them). */
static uint32_t bucket_of(const pp_announce_seen *c, const uint8_t *nonce)
{
    return pp_load32(nonce) & (c->nbuckets - 1);
}

int pp_announce_seen_add(pp_announce_seen *c, const pp_announce *a, uint64_t now_ms)
{
    /* Expired; or taken so far "ahead" that the clock must have gone back
     * since: its datagram, stamped at least a window after now, is stale. */
    while (c->tail < c->head && (c->e[c->tail % c->cap].until_ms <= now_ms ||
                                 c->e[c->tail % c->cap].until_ms >
                                     now_ms + 4 * PP_ANNOUNCE_WINDOW_MS))
        c->tail++;
    uint32_t b = bucket_of(c, a->nonce);
    for (uint64_t s = c->bucket[b]; s && s - 1 >= c->tail; s = c->e[(s - 1) % c->cap].prev)
        if (memcmp(c->e[(s - 1) % c->cap].nonce, a->nonce, PP_ANNOUNCE_NONCE_LEN) == 0)
            return 1;
    if (c->head - c->tail >= c->cap)
        return -1;
    seen_entry *e = &c->e[c->head % c->cap];
    memcpy(e->nonce, a->nonce, PP_ANNOUNCE_NONCE_LEN);
    e->until_ms = now_ms + 2 * PP_ANNOUNCE_WINDOW_MS;
    e->prev = c->bucket[b];
    c->bucket[b] = ++c->head;
    return 0;
}

uint32_t pp_announce_seen_count(const pp_announce_seen *c)
{
    return (uint32_t)(c->head - c->tail);
}

/* A decimal port, 1..65535, nothing after it.  0 or -1. */
static int parse_port(const char *s, int *port)
{
    if (!*s || strlen(s) > 5)
        return -1;
    int v = 0;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (*s - '0');
    }
    if (v < 1 || v > 65535)
        return -1;
    *port = v;
    return 0;
}

int pp_announce_parse_listen(const char *text, uint32_t *group, int *port, char *err)
{
    if (!text || text[0] != '*')
        return 0;
    *group = 0;
    *port = PP_ANNOUNCE_PORT;
    const char *rest = text + 1, *colon = strchr(rest, ':');
    char addr[16];
    size_t alen = colon ? (size_t)(colon - rest) : strlen(rest);
    if (colon && parse_port(colon + 1, port) != 0) {
        pp_seterr(err, "\"%.64s\": the discovery port must be 1..65535", text);
        return -1;
    }
    if (alen == 0)
        return 1;
    struct in_addr in;
    if (alen >= sizeof addr || (memcpy(addr, rest, alen), addr[alen] = 0,
                                inet_pton(AF_INET, addr, &in) != 1) ||
        !IN_MULTICAST(ntohl(in.s_addr))) {
        pp_seterr(err, "\"%.64s\": after '*' an IPv4 multicast group (224.0.0.0/4) or "
                       "\":PORT\" only", text);
        return -1;
    }
    *group = in.s_addr;
    return 1;
}
