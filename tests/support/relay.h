/* SPDX-License-Identifier: MIT */
/* relay.h -- an attacker on the path, for tests: a TCP relay on 127.0.0.1
 * between clients and a server that records every byte both ways and, when
 * armed, flips one bit of, or injects bytes before, the next chunk that
 * arrives in one direction.  Arming is one-shot and applies to whichever
 * connection carries that chunk: the test arms it once the client is up,
 * so the tampering lands after the handshake, at a write boundary (the next
 * chunk after a quiet stream starts a new TLS record or plaintext frame). */
#ifndef PP_TEST_RELAY_H
#define PP_TEST_RELAY_H

#include <stddef.h>
#include <stdint.h>

enum { RELAY_TO_SERVER = 0, RELAY_TO_CLIENT = 1 };

typedef struct relay relay;

/* Starts the relay to 127.0.0.1:target_port; it listens on a free port of
 * 127.0.0.1.  NULL on failure. */
relay *relay_start(int target_port);

/* The port clients connect to. */
int relay_port(const relay *r);

/* Arms a bit flip: bit 0 of byte `at` of the next chunk in `dir` (or its
 * last byte when shorter). */
void relay_arm_flip(relay *r, int dir, size_t at);

/* Arms an injection: `len` bytes (copied; at most 64 KiB) written to the
 * server before the next chunk towards it. */
void relay_arm_inject(relay *r, const void *bytes, size_t len);

/* Whether the armed tampering happened. */
int relay_tampered(relay *r);

/* Every byte relayed in one direction so far, all connections in order,
 * injected bytes included (malloc'd copy; *len its length).  NULL when none. */
uint8_t *relay_recorded(relay *r, int dir, size_t *len);

/* Connections accepted so far. */
int relay_connections(relay *r);

/* Stops it, closes every connection, frees it.  NULL is a no-op. */
void relay_stop(relay *r);

#endif
