/* SPDX-License-Identifier: MIT */
/* pp_announce.h -- discovery datagrams (ppserver --announce, "*" in libpp's
 * node list): their byte layout, the strict decoder, the freshness window
 * and the cache of nonces seen that stops replays.  No I/O.
 *
 * A datagram is exactly PP_ANNOUNCE_LEN (72) bytes, integers big-endian:
 *   off len
 *     0   4  magic "PPAN"
 *     4   1  version, 1
 *     5   1  reserved, 0
 *     6   2  the node's TCP port, 1..65535
 *     8   4  its CPU (worker) count, 0..PP_ANNOUNCE_CPUS_MAX
 *    12   4  its announce interval in ms, PP_ANNOUNCE_IVL_MIN..MAX
 *    16   8  when it was sent: ms since 1970-01-01 UTC, non-zero
 *    24  16  a random nonce
 *    40  32  HMAC-SHA256(K_announce, bytes 0..39)
 * K_announce comes from the secret (pp_auth.h) with a label of its own.
 * Decoding takes nothing on trust: the exact length, every field's range,
 * then the MAC compared in constant time. */
#ifndef PP_ANNOUNCE_H
#define PP_ANNOUNCE_H

#include <stddef.h>
#include <stdint.h>

#define PP_ANNOUNCE_LEN 72
#define PP_ANNOUNCE_VERSION 1
#define PP_ANNOUNCE_NONCE_LEN 16
#define PP_ANNOUNCE_PORT 60001          /* the UDP port, by default */
#define PP_ANNOUNCE_CPUS_MAX 65536
#define PP_ANNOUNCE_IVL_MIN 100         /* ms */
#define PP_ANNOUNCE_IVL_MAX 3600000     /* ms */
#define PP_ANNOUNCE_WINDOW_MS 5000      /* a timestamp this far from now is stale */

typedef struct pp_announce {
    uint16_t port;
    uint32_t ncpus;
    uint32_t interval_ms;
    uint64_t time_ms;
    uint8_t nonce[PP_ANNOUNCE_NONCE_LEN];
} pp_announce;

/* Why a datagram is not taken (the order a receiver checks them in). */
typedef enum pp_ann_result {
    PP_ANN_OK = 0,
    PP_ANN_BAD,        /* not an announcement: length, magic, version, a field */
    PP_ANN_WRONG_KEY,  /* the MAC does not verify: another secret, or changed */
    PP_ANN_STALE,      /* its timestamp is outside the window */
    PP_ANN_REPLAYED,   /* its nonce was seen within the window */
    PP_ANN_REASONS
} pp_ann_result;

/* The datagram for `a` (a fresh nonce drawn into a->nonce first when
 * `draw` is set) into out.  0, or -1 (a field out of range, no random
 * bytes, OpenSSL failure). */
int pp_announce_encode(const uint8_t key[32], pp_announce *a, int draw,
                       uint8_t out[PP_ANNOUNCE_LEN]);

/* Checks len bytes as a datagram under key; PP_ANN_OK fills *out.  Only
 * PP_ANN_OK, PP_ANN_BAD or PP_ANN_WRONG_KEY. */
pp_ann_result pp_announce_decode(const uint8_t key[32], const void *buf, size_t len,
                                 pp_announce *out);

/* PP_ANN_OK when a's timestamp is within PP_ANNOUNCE_WINDOW_MS of now_ms,
 * else PP_ANN_STALE. */
pp_ann_result pp_announce_fresh(const pp_announce *a, uint64_t now_ms);

/* Now, as announcements count time (CLOCK_REALTIME, ms). */
uint64_t pp_announce_now_ms(void);

/* The nonces of fresh announcements taken, each kept until its datagram
 * can no longer be fresh; at most `cap` at once (then it fails closed:
 * a fresh nonce is refused rather than an old one forgotten). */
typedef struct pp_announce_seen pp_announce_seen;

/* NULL when out of memory. */
pp_announce_seen *pp_announce_seen_new(uint32_t cap);
void pp_announce_seen_free(pp_announce_seen *c);

/* Records a's nonce, taken at now_ms.  0: new (recorded); 1: seen before
 * (a replay); -1: the cache is full of live nonces (not recorded). */
int pp_announce_seen_add(pp_announce_seen *c, const pp_announce *a, uint64_t now_ms);

/* Nonces held now (tests). */
uint32_t pp_announce_seen_count(const pp_announce_seen *c);

/* "*", "*:PORT", "*GROUP" or "*GROUP:PORT" (GROUP an IPv4 multicast
 * address, to join): discovery in a node list.  1 when `text` is one of
 * those, filling *group (network order; 0 = none) and *port; 0 when it does
 * not start with '*'; -1 with the reason in err (PP_ERR_LEN bytes) when it
 * starts with '*' but is malformed. */
int pp_announce_parse_listen(const char *text, uint32_t *group, int *port, char *err);

#endif
