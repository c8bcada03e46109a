/* SPDX-License-Identifier: MIT */
/* pp_handshake.c -- the handshake's steps for both roles (see the header). */
#include "pp_handshake.h"

#include <string.h>

#include "pp_common.h"

/* The transcript hash over HELLO and CHALLENGE, bound to the TLS session
 * when there is one.  0 or -1. */
static int transcript(pp_hs *hs, const void *chal, size_t clen)
{
    if (pp_auth_transcript(hs->hello, sizeof hs->hello, chal, clen, hs->transcript) != 0)
        return -1;
    if (!hs->binding)
        return 0;
    uint8_t both[PP_SHA256_LEN + PP_HS_BINDING_LEN];
    memcpy(both, hs->transcript, PP_SHA256_LEN);
    memcpy(both + PP_SHA256_LEN, hs->binding, PP_HS_BINDING_LEN);
    return pp_sha256(both, sizeof both, hs->transcript);
}

static pp_hs_result fail(pp_hs *hs, uint16_t code, const char *msg)
{
    hs->err_code = code;
    pp_seterr(hs->err, "%s", msg);
    return PP_HS_FAIL;
}

pp_hs_result pp_hs_client_hello(pp_hs *hs, const pp_auth_key *key, const uint8_t *binding,
                                uint8_t out[PP_HELLO_LEN])
{
    memset(hs, 0, sizeof *hs);
    hs->key = key;
    hs->binding = binding;
    pp_msg_hello m = {.ver_min = PP_PROTO_MIN, .ver_max = PP_PROTO_MAX};
    if (pp_auth_nonce(m.nonce) != 0)
        return fail(hs, 0, "cannot draw a nonce (OpenSSL)");
    memcpy(hs->nc, m.nonce, PP_NONCE_LEN);
    pp_proto_hello(hs->hello, &m);
    memcpy(out, hs->hello, PP_HELLO_LEN);
    return PP_HS_OK;
}

pp_hs_result pp_hs_client_challenge(pp_hs *hs, const pp_frame *f, uint8_t out[PP_MAC_LEN])
{
    if (pp_proto_challenge_decode(f, &hs->chal) != 0)
        return fail(hs, PP_E_PROTOCOL, "malformed CHALLENGE from the node");
    hs->ver = hs->chal.ver;
    memcpy(hs->ns, hs->chal.nonce, PP_NONCE_LEN);
    if (transcript(hs, f->payload, f->hdr.len) != 0 ||
        pp_auth_proof(hs->key, PP_ROLE_CLIENT, hs->ver, hs->nc, hs->ns, hs->transcript, out))
        return fail(hs, 0, "cannot compute the proof (OpenSSL)");
    return PP_HS_OK;
}

pp_hs_result pp_hs_client_accept(pp_hs *hs, const pp_frame *f)
{
    if (f->hdr.len != PP_MAC_LEN || pp_auth_verify(hs->key, PP_ROLE_SERVER, hs->ver, hs->nc,
                                                   hs->ns, hs->transcript, f->payload) != 0)
        return fail(hs, 0, "the node failed to prove the shared secret");
    return PP_HS_OK;
}

pp_hs_result pp_hs_server_hello(pp_hs *hs, const pp_auth_key *key, const uint8_t *binding,
                                const pp_frame *f, uint32_t max_frame, uint32_t ncpus,
                                uint8_t out[PP_CHALLENGE_LEN])
{
    memset(hs, 0, sizeof *hs);
    hs->key = key;
    hs->binding = binding;
    pp_msg_hello h;
    if (pp_proto_hello_decode(f, &h) != 0)
        return fail(hs, PP_E_PROTOCOL, "malformed HELLO");
    if (h.ver_max < PP_PROTO_MIN || h.ver_min > PP_PROTO_MAX || h.ver_min > h.ver_max) {
        hs->err_code = PP_E_VERSION;
        pp_seterr(hs->err, "no common protocol version: client speaks %u..%u, server speaks "
                           "%u..%u", h.ver_min, h.ver_max, PP_PROTO_MIN, PP_PROTO_MAX);
        return PP_HS_FAIL;
    }
    hs->ver = h.ver_max < PP_PROTO_MAX ? h.ver_max : PP_PROTO_MAX;
    memcpy(hs->nc, h.nonce, PP_NONCE_LEN);
    memcpy(hs->hello, f->payload, sizeof hs->hello);
    pp_msg_challenge c = {.ver = hs->ver, .max_frame = max_frame, .ncpus = ncpus};
    if (pp_auth_nonce(c.nonce) != 0)
        return fail(hs, 0, "cannot draw a nonce (OpenSSL)");
    memcpy(hs->ns, c.nonce, PP_NONCE_LEN);
    pp_proto_challenge(out, &c);
    if (transcript(hs, out, PP_CHALLENGE_LEN) != 0)
        return fail(hs, 0, "cannot hash the transcript (OpenSSL)");
    return PP_HS_OK;
}

pp_hs_result pp_hs_server_proof(pp_hs *hs, const pp_frame *f, uint8_t out[PP_MAC_LEN])
{
    if (f->hdr.len != PP_MAC_LEN || pp_auth_verify(hs->key, PP_ROLE_CLIENT, hs->ver, hs->nc,
                                                   hs->ns, hs->transcript, f->payload) != 0)
        return fail(hs, PP_E_AUTH, "authentication failed");
    if (pp_auth_proof(hs->key, PP_ROLE_SERVER, hs->ver, hs->nc, hs->ns, hs->transcript, out))
        return fail(hs, 0, "cannot compute the proof (OpenSSL)");
    return PP_HS_OK;
}

void pp_hs_wipe(pp_hs *hs)
{
    pp_auth_wipe(hs, sizeof *hs);
}
