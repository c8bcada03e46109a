/* SPDX-License-Identifier: MIT */
/* pp_handshake.h -- the mutual handshake, both roles, as pure steps: each
 * takes the frame received and gives the payload to send, so that libpp and
 * ppserver run the same code and tests drive it without sockets.
 *
 *   client                                   server
 *   pp_hs_client_hello()      HELLO  ->
 *                                     <- CHALLENGE  pp_hs_server_hello()
 *   pp_hs_client_challenge()  PROOF  ->
 *                                     <- ACCEPT     pp_hs_server_proof()
 *   pp_hs_client_accept(): the server proved the secret; jobs may go.
 *
 * The proofs are pp_auth's: HMAC(K_auth, role label ‖ ver ‖ Nc ‖ Ns ‖ T),
 * T = SHA-256(HELLO ‖ CHALLENGE) (pp_auth_transcript), and over TLS
 * T = SHA-256(that ‖ the TLS session's binding, pp_tls_binding()): a proof
 * made in one TLS session is worth nothing in another, so no relay can
 * pass a client's proof on to a node over a session of its own.  The client proves first; a server that
 * cannot prove the secret gets nothing.  Nonces on both sides stop replay,
 * the role labels reflection, the version and the transcript downgrades. */
#ifndef PP_HANDSHAKE_H
#define PP_HANDSHAKE_H

#include <stdint.h>

#include "pp_auth.h"
#include "pp_proto.h"

/* How a step ended: go on (send what it gave, if anything), or end the
 * connection, sending ERROR with `err_code` when it is not 0. */
typedef enum pp_hs_result {
    PP_HS_OK = 0,
    PP_HS_FAIL = -1,
} pp_hs_result;

typedef struct pp_hs {
    const pp_auth_key *key;
    const uint8_t *binding;          /* PP_HS_BINDING_LEN bytes, or NULL (plaintext) */
    uint8_t ver;                     /* agreed version */
    uint8_t nc[PP_NONCE_LEN], ns[PP_NONCE_LEN];
    uint8_t hello[PP_HELLO_LEN];
    uint8_t transcript[PP_SHA256_LEN];
    pp_msg_challenge chal;           /* what the server said (client side) */
    uint16_t err_code;               /* with PP_HS_FAIL: the ERROR to send, or 0 */
    char err[PP_ERR_LEN];            /* with PP_HS_FAIL: why */
} pp_hs;

#define PP_HS_BINDING_LEN 32

/* Client: starts the handshake; HELLO's payload into out.  `binding` (NULL
 * on plaintext) must stay valid until the handshake ends. */
pp_hs_result pp_hs_client_hello(pp_hs *hs, const pp_auth_key *key, const uint8_t *binding,
                                uint8_t out[PP_HELLO_LEN]);

/* Client: the CHALLENGE arrived; PROOF's payload (PP_MAC_LEN) into out.
 * hs->chal then holds the node's limits. */
pp_hs_result pp_hs_client_challenge(pp_hs *hs, const pp_frame *f, uint8_t out[PP_MAC_LEN]);

/* Client: the ACCEPT arrived: PP_HS_OK only when it proves the secret. */
pp_hs_result pp_hs_client_accept(pp_hs *hs, const pp_frame *f);

/* Server: the HELLO arrived; CHALLENGE's payload into out, announcing
 * max_frame and ncpus.  A version range with nothing in common fails with
 * PP_E_VERSION and a message naming both ranges. */
pp_hs_result pp_hs_server_hello(pp_hs *hs, const pp_auth_key *key, const uint8_t *binding,
                                const pp_frame *f, uint32_t max_frame, uint32_t ncpus,
                                uint8_t out[PP_CHALLENGE_LEN]);

/* Server: the PROOF arrived; ACCEPT's payload (PP_MAC_LEN) into out.  A
 * wrong proof fails with PP_E_AUTH (the caller delays the refusal). */
pp_hs_result pp_hs_server_proof(pp_hs *hs, const pp_frame *f, uint8_t out[PP_MAC_LEN]);

/* Wipes the handshake's state. */
void pp_hs_wipe(pp_hs *hs);

#endif
