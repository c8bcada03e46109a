/* SPDX-License-Identifier: MIT */
/* test_announce.c -- pp_announce: the datagram byte for byte, and every way
 * a datagram from the network must be refused: each byte changed, a wrong
 * key, truncated, oversized, fields out of range (with a valid MAC, so the
 * range check itself is what refuses them), stale, replayed; the replay
 * cache's bound and expiry; "*[GROUP][:PORT]". */
#include <arpa/inet.h>
#include <stdint.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "cunit_main.h"
#include "pp_announce.h"
#include "pp_auth.h"
#include "pp_common.h"

static uint8_t key[32], other[32];

static int setup(void)
{
    pp_auth_key k, o;
    if (pp_auth_derive("0123456789abcdef0123456789abcdef", 32, &k) != 0 ||
        pp_auth_derive("0123456789abcdef0123456789abcdeX", 32, &o) != 0)
        return -1;
    memcpy(key, k.announce, 32);
    memcpy(other, o.announce, 32);
    return 0;
}

static pp_announce sample(void)
{
    pp_announce a = {.port = 60000, .ncpus = 8, .interval_ms = 2000,
                     .time_ms = 1700000000123ull};
    for (int i = 0; i < PP_ANNOUNCE_NONCE_LEN; i++)
        a.nonce[i] = (uint8_t)(0xa0 + i);
    return a;
}

/* The MAC over the first 40 bytes, as the format says. */
static void sign(uint8_t d[PP_ANNOUNCE_LEN])
{
    unsigned int len = 0;
    CU_ASSERT_PTR_NOT_NULL_FATAL(HMAC(EVP_sha256(), key, 32, d, 40, d + 40, &len));
}

static void test_layout(void)
{
    pp_announce a = sample();
    uint8_t d[PP_ANNOUNCE_LEN];
    CU_ASSERT_EQUAL_FATAL(pp_announce_encode(key, &a, 0, d), 0);
    static const uint8_t head[40] = {
        'P', 'P', 'A', 'N', 1, 0, 0xea, 0x60,           /* magic, version, 0, port */
        0, 0, 0, 8, 0, 0, 0x07, 0xd0,                   /* CPUs, interval 2000 ms */
        0, 0, 0x01, 0x8b, 0xcf, 0xe5, 0x68, 0x7b,       /* 1700000000123 ms */
        0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, /* nonce */
        0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf};
    CU_ASSERT_EQUAL(memcmp(d, head, sizeof head), 0);
    uint8_t want[PP_ANNOUNCE_LEN];
    memcpy(want, d, sizeof want);
    sign(want);
    CU_ASSERT_EQUAL(memcmp(d + 40, want + 40, 32), 0);
    pp_announce b;
    CU_ASSERT_EQUAL(pp_announce_decode(key, d, sizeof d, &b), PP_ANN_OK);
    CU_ASSERT_EQUAL(b.port, 60000);
    CU_ASSERT_EQUAL(b.ncpus, 8);
    CU_ASSERT_EQUAL(b.interval_ms, 2000);
    CU_ASSERT_EQUAL(b.time_ms, 1700000000123ull);
    CU_ASSERT_EQUAL(memcmp(b.nonce, a.nonce, sizeof a.nonce), 0);
}

static void test_fresh_nonces(void)
{
    pp_announce a = sample(), b = sample();
    uint8_t d1[PP_ANNOUNCE_LEN], d2[PP_ANNOUNCE_LEN];
    CU_ASSERT_EQUAL_FATAL(pp_announce_encode(key, &a, 1, d1), 0);
    CU_ASSERT_EQUAL_FATAL(pp_announce_encode(key, &b, 1, d2), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(a.nonce, b.nonce, sizeof a.nonce), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(d1, d2, sizeof d1), 0);
}

/* Every bit of every byte flipped: refused, as malformed or as a wrong
 * MAC, never taken. */
static void test_every_byte(void)
{
    pp_announce a = sample(), b;
    uint8_t d[PP_ANNOUNCE_LEN];
    CU_ASSERT_EQUAL_FATAL(pp_announce_encode(key, &a, 0, d), 0);
    for (size_t i = 0; i < sizeof d; i++)
        for (int bit = 0; bit < 8; bit++) {
            d[i] ^= (uint8_t)(1u << bit);
            pp_ann_result r = pp_announce_decode(key, d, sizeof d, &b);
            CU_ASSERT(r == PP_ANN_BAD || r == PP_ANN_WRONG_KEY);
            if (i >= 24) /* nonce and MAC: no range to check, the MAC refuses it */
                CU_ASSERT_EQUAL(r, PP_ANN_WRONG_KEY);
            d[i] ^= (uint8_t)(1u << bit);
        }
    CU_ASSERT_EQUAL(pp_announce_decode(key, d, sizeof d, &b), PP_ANN_OK);
}

static void test_wrong_key(void)
{
    pp_announce a = sample(), b;
    uint8_t d[PP_ANNOUNCE_LEN];
    CU_ASSERT_EQUAL_FATAL(pp_announce_encode(other, &a, 0, d), 0);
    CU_ASSERT_EQUAL(pp_announce_decode(key, d, sizeof d, &b), PP_ANN_WRONG_KEY);
    /* The discovery key is neither of the handshake's keys. */
    pp_auth_key k;
    CU_ASSERT_EQUAL_FATAL(pp_auth_derive("0123456789abcdef0123456789abcdef", 32, &k), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(k.announce, k.auth, 32), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(k.announce, k.psk, 32), 0);
    CU_ASSERT_EQUAL_FATAL(pp_announce_encode(k.auth, &a, 0, d), 0);
    CU_ASSERT_EQUAL(pp_announce_decode(key, d, sizeof d, &b), PP_ANN_WRONG_KEY);
}

static void test_lengths(void)
{
    pp_announce a = sample(), b;
    uint8_t d[PP_ANNOUNCE_LEN + 64];
    CU_ASSERT_EQUAL_FATAL(pp_announce_encode(key, &a, 0, d), 0);
    memset(d + PP_ANNOUNCE_LEN, 0, 64);
    for (size_t n = 0; n < sizeof d; n++)
        if (n != PP_ANNOUNCE_LEN)
            CU_ASSERT_EQUAL(pp_announce_decode(key, d, n, &b), PP_ANN_BAD);
    CU_ASSERT_EQUAL(pp_announce_decode(key, d, PP_ANNOUNCE_LEN, &b), PP_ANN_OK);
}

/* A field out of range with a MAC that verifies (a holder of the key that
 * misbehaves): the range check refuses it. */
static void test_ranges(void)
{
    static const struct { size_t off, len; uint64_t v; } bad[] = {
        {4, 1, 2},                          /* version */
        {5, 1, 1},                          /* reserved */
        {6, 2, 0},                          /* port 0 */
        {8, 4, PP_ANNOUNCE_CPUS_MAX + 1},
        {8, 4, 0xffffffffu},
        {12, 4, PP_ANNOUNCE_IVL_MIN - 1},
        {12, 4, PP_ANNOUNCE_IVL_MAX + 1},
        {16, 8, 0},                         /* no time */
    };
    pp_announce a = sample(), b;
    uint8_t d[PP_ANNOUNCE_LEN];
    for (size_t i = 0; i < PP_ARRAY_LEN(bad); i++) {
        CU_ASSERT_EQUAL_FATAL(pp_announce_encode(key, &a, 0, d), 0);
        for (size_t k = 0; k < bad[i].len; k++)
            d[bad[i].off + k] = (uint8_t)(bad[i].v >> (8 * (bad[i].len - 1 - k)));
        sign(d);
        CU_ASSERT_EQUAL(pp_announce_decode(key, d, sizeof d, &b), PP_ANN_BAD);
    }
    /* The edges themselves are fine. */
    a.ncpus = PP_ANNOUNCE_CPUS_MAX;
    a.interval_ms = PP_ANNOUNCE_IVL_MIN;
    a.port = 65535;
    CU_ASSERT_EQUAL_FATAL(pp_announce_encode(key, &a, 0, d), 0);
    CU_ASSERT_EQUAL(pp_announce_decode(key, d, sizeof d, &b), PP_ANN_OK);
    /* And the encoder refuses what the decoder would. */
    a.port = 0;
    CU_ASSERT_EQUAL(pp_announce_encode(key, &a, 0, d), -1);
}

static void test_window(void)
{
    pp_announce a = sample();
    uint64_t t = a.time_ms;
    CU_ASSERT_EQUAL(pp_announce_fresh(&a, t), PP_ANN_OK);
    CU_ASSERT_EQUAL(pp_announce_fresh(&a, t + PP_ANNOUNCE_WINDOW_MS), PP_ANN_OK);
    CU_ASSERT_EQUAL(pp_announce_fresh(&a, t - PP_ANNOUNCE_WINDOW_MS), PP_ANN_OK);
    CU_ASSERT_EQUAL(pp_announce_fresh(&a, t + PP_ANNOUNCE_WINDOW_MS + 1), PP_ANN_STALE);
    CU_ASSERT_EQUAL(pp_announce_fresh(&a, t - PP_ANNOUNCE_WINDOW_MS - 1), PP_ANN_STALE);
    CU_ASSERT_EQUAL(pp_announce_fresh(&a, 0), PP_ANN_STALE);
    a.time_ms = UINT64_MAX;
    CU_ASSERT_EQUAL(pp_announce_fresh(&a, t), PP_ANN_STALE);
    uint64_t now = pp_announce_now_ms();
    CU_ASSERT(now > 1600000000000ull);
}

static void test_replay_cache(void)
{
    pp_announce_seen *c = pp_announce_seen_new(4);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    pp_announce a = sample();
    uint64_t t = 1000000;
    CU_ASSERT_EQUAL(pp_announce_seen_add(c, &a, t), 0);
    CU_ASSERT_EQUAL(pp_announce_seen_add(c, &a, t + 1), 1);
    /* Kept for two windows from when it was taken, then forgotten (by then
     * its timestamp is stale anyway). */
    CU_ASSERT_EQUAL(pp_announce_seen_add(c, &a, t + 2 * PP_ANNOUNCE_WINDOW_MS - 1), 1);
    CU_ASSERT_EQUAL(pp_announce_seen_count(c), 1);
    /* Full of live nonces: a new one is refused, an old one not forgotten. */
    for (int i = 1; i < 4; i++) {
        a.nonce[0] = (uint8_t)i;
        CU_ASSERT_EQUAL(pp_announce_seen_add(c, &a, t + 10), 0);
    }
    a.nonce[0] = 99;
    CU_ASSERT_EQUAL(pp_announce_seen_add(c, &a, t + 20), -1);
    a.nonce[0] = 0xa0;
    CU_ASSERT_EQUAL(pp_announce_seen_add(c, &a, t + 20), 1);
    /* Time passes: the first expires and makes room. */
    a.nonce[0] = 99;
    CU_ASSERT_EQUAL(pp_announce_seen_add(c, &a, t + 2 * PP_ANNOUNCE_WINDOW_MS), 0);
    CU_ASSERT_EQUAL(pp_announce_seen_count(c), 4);
    /* Much later everything has gone; many rounds through the ring. */
    for (uint32_t i = 0; i < 1000; i++) {
        memcpy(a.nonce, &i, sizeof i);
        uint64_t at = t + 100000 + (uint64_t)i * 2 * PP_ANNOUNCE_WINDOW_MS;
        CU_ASSERT_EQUAL(pp_announce_seen_add(c, &a, at), 0);
        CU_ASSERT_EQUAL(pp_announce_seen_add(c, &a, at), 1);
    }
    /* The clock set back an hour: what was taken "later" cannot block the
     * cache (its datagrams are stale by now) and is forgotten. */
    uint64_t back = t + 100000 + 999ull * 2 * PP_ANNOUNCE_WINDOW_MS - 3600000;
    for (uint32_t i = 0; i < 4; i++) {
        a.nonce[0] = (uint8_t)(200 + i);
        CU_ASSERT_EQUAL(pp_announce_seen_add(c, &a, back), 0);
    }
    CU_ASSERT_EQUAL(pp_announce_seen_count(c), 4);
    pp_announce_seen_free(c);
    CU_ASSERT_PTR_NULL(pp_announce_seen_new(0));
    pp_announce_seen_free(NULL);
}

static void test_listen_entry(void)
{
    uint32_t g;
    int port;
    char err[PP_ERR_LEN];
    CU_ASSERT_EQUAL(pp_announce_parse_listen("node:60000", &g, &port, err), 0);
    CU_ASSERT_EQUAL(pp_announce_parse_listen("*", &g, &port, err), 1);
    CU_ASSERT_EQUAL(g, 0);
    CU_ASSERT_EQUAL(port, PP_ANNOUNCE_PORT);
    CU_ASSERT_EQUAL(pp_announce_parse_listen("*:7000", &g, &port, err), 1);
    CU_ASSERT_EQUAL(port, 7000);
    CU_ASSERT_EQUAL(pp_announce_parse_listen("*239.1.2.3", &g, &port, err), 1);
    CU_ASSERT_EQUAL(g, inet_addr("239.1.2.3"));
    CU_ASSERT_EQUAL(port, PP_ANNOUNCE_PORT);
    CU_ASSERT_EQUAL(pp_announce_parse_listen("*239.1.2.3:9", &g, &port, err), 1);
    CU_ASSERT_EQUAL(port, 9);
    static const char *const bad[] = {"*:", "*:0", "*:65536", "*:-1", "*:+5", "*:12x",
                                      "*10.0.0.1", "*host", "*239.1.2.3:", "**",
                                      "*239.1.2.3.4:1", "*:1234567"};
    for (size_t i = 0; i < PP_ARRAY_LEN(bad); i++) {
        err[0] = 0;
        CU_ASSERT_EQUAL(pp_announce_parse_listen(bad[i], &g, &port, err), -1);
        CU_ASSERT(err[0] != 0);
    }
}

int pp_register_suites(void)
{
    static const pp_test tests[] = {
        {"the layout, byte for byte, and back", test_layout},
        {"a fresh nonce each time", test_fresh_nonces},
        {"every bit of every byte flipped is refused", test_every_byte},
        {"a wrong key, and the handshake's keys, are refused", test_wrong_key},
        {"truncated and oversized datagrams are refused", test_lengths},
        {"fields out of range are refused under a valid MAC", test_ranges},
        {"the freshness window", test_window},
        {"the replay cache: replays, expiry, its bound", test_replay_cache},
        {"\"*\", \"*:PORT\", \"*GROUP[:PORT]\"", test_listen_entry},
        {NULL, NULL},
    };
    return pp_add_suite("pp_announce", setup, NULL, tests);
}
