/* SPDX-License-Identifier: MIT */
/* certs.h -- test certificates made with the openssl command: in `dir`,
 * ca.crt/ca.key (a CA), server.crt/key and client.crt/key signed by it,
 * stranger.crt/key signed by another CA (other.crt), and expired.crt/key
 * signed by the CA but no longer valid. */
#ifndef PP_TEST_CERTS_H
#define PP_TEST_CERTS_H

/* 0 when all were made; -1 when the openssl command is missing or failed
 * (the caller skips its certificate cases, saying so). */
int certs_make(const char *dir);

#endif
