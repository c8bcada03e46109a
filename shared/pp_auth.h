/* SPDX-License-Identifier: MIT */
/* pp_auth.h -- the cryptography of the handshake (OpenSSL): keys, nonces,
 * proofs, SHA-256.  Pure functions: no I/O except pp_sha256_file().
 *
 * Keys, once per process from the secret:
 *   K          = scrypt(secret, salt "pp key v1", N 2^14, r 8, p 1): 16 MiB
 *                and tens of milliseconds a guess, so that a captured
 *                handshake does not let a human-chosen secret be guessed
 *                at speed
 *   K_auth     = HKDF-SHA256(K, salt "", info "pp auth")
 *   K_psk      = HKDF-SHA256(K, salt "", info "pp tls13 psk"), TLS 1.3's
 *                external pre-shared key
 *   K_announce = HKDF-SHA256(K, salt "", info "pp announce"), the MAC key of
 *                discovery datagrams (pp_announce.h): sent in the clear to
 *                anyone listening, so never a key the handshake uses
 * The handshake (see README "Wire protocol"):
 *   transcript = SHA-256(u32 len ‖ HELLO payload ‖ u32 len ‖ CHALLENGE payload)
 *   client MAC = HMAC-SHA256(K_auth, "pp client proof" ‖ ver ‖ Nc ‖ Ns ‖ transcript)
 *   server MAC = HMAC-SHA256(K_auth, "pp server proof" ‖ ver ‖ Nc ‖ Ns ‖ transcript)
 * The role labels stop reflection, the nonces replay, the version and the
 * transcript inside the MAC a downgrade; comparisons are constant-time. */
#ifndef PP_AUTH_H
#define PP_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define PP_NONCE_LEN 32
#define PP_MAC_LEN 32
#define PP_SHA256_LEN 32
#define PP_SECRET_MIN 16      /* bytes */

enum { PP_ROLE_CLIENT = 0, PP_ROLE_SERVER = 1 };

typedef struct pp_auth_key {
    uint8_t auth[32];         /* K_auth: the proofs' HMAC key */
    uint8_t psk[32];          /* K_psk: TLS 1.3's external PSK */
    uint8_t announce[32];     /* K_announce: the MAC of discovery datagrams */
} pp_auth_key;

/* What stands for the secret when certificates alone authenticate (no
 * secret: ppserver --no-secret, pp_config.no_secret).  Public: the inner
 * proof then proves nothing, the certificates do. */
#define PP_AUTH_NO_SECRET "pp: certificates only, no shared secret"

/* scrypt's cost: N (a power of 2), r, p, and the salt. */
#define PP_KDF_N (1u << 14)
#define PP_KDF_R 8u
#define PP_KDF_P 1u
#define PP_KDF_SALT "pp key v1"

/* The secret's bytes as both sides use them, wherever it came from (a file,
 * PP_SECRET, pp_config.secret, -s): trailing newlines ("\n", "\r\n") are
 * not part of it, so a secret read from a --gen-secret file with its newline
 * still works.  Stores the length in *len.  0, or -1 with the reason in err
 * (PP_ERR_LEN bytes): no secret, shorter than PP_SECRET_MIN bytes, or the
 * placeholder of the shipped configuration file. */
int pp_auth_secret(const char *secret, size_t *len, char *err);

/* The keys from the secret (len bytes): scrypt, then HKDF, as above.
 * Takes tens of milliseconds and 16 MiB: call it once per process (or
 * server).  0, or -1 (OpenSSL failure, out of memory). */
int pp_auth_derive(const void *secret, size_t len, pp_auth_key *out);

/* HKDF-SHA256 (RFC 5869) of ikm with an empty salt and `info`, into out
 * (outlen bytes).  0 or -1. */
int pp_auth_hkdf(const void *ikm, size_t ikmlen, const char *info, uint8_t *out, size_t outlen);

/* Wipes a key (or any secret bytes) so the compiler cannot skip it. */
void pp_auth_wipe(void *p, size_t n);

/* A fresh random nonce (RAND_bytes).  0 or -1. */
int pp_auth_nonce(uint8_t out[PP_NONCE_LEN]);

/* The transcript hash over the HELLO and CHALLENGE payloads.  0 or -1. */
int pp_auth_transcript(const void *hello, size_t hlen, const void *chal, size_t clen,
                       uint8_t out[PP_SHA256_LEN]);

/* The proof of `role`.  0 or -1. */
int pp_auth_proof(const pp_auth_key *k, int role, uint8_t ver, const uint8_t nc[PP_NONCE_LEN],
                  const uint8_t ns[PP_NONCE_LEN], const uint8_t transcript[PP_SHA256_LEN],
                  uint8_t mac[PP_MAC_LEN]);

/* Checks a proof of `role` in constant time: 0 when it is right, -1 when not
 * (or on failure). */
int pp_auth_verify(const pp_auth_key *k, int role, uint8_t ver,
                   const uint8_t nc[PP_NONCE_LEN], const uint8_t ns[PP_NONCE_LEN],
                   const uint8_t transcript[PP_SHA256_LEN], const uint8_t mac[PP_MAC_LEN]);

/* SHA-256 of bytes.  0 or -1. */
int pp_sha256(const void *data, size_t n, uint8_t out[PP_SHA256_LEN]);

/* SHA-256 of a file's contents.  0, or -1 with the reason in err
 * (PP_ERR_LEN bytes). */
int pp_sha256_file(const char *path, uint8_t out[PP_SHA256_LEN], char *err);

/* Lower-case hex of n bytes into out (2n+1 bytes). */
void pp_hex(const uint8_t *in, size_t n, char *out);

/* A fresh secret: 32 random bytes as 64 hex digits + NUL.  0 or -1. */
int pp_auth_gen_secret(char out[65]);

#endif
