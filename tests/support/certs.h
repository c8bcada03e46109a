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

/* After certs_make(): inter.crt/key, an intermediate CA the CA signed;
 * leaf.crt/key signed by it; chain.crt, leaf then intermediate (what a
 * node presents when only the root is trusted); bundle.crt, other.crt then
 * ca.crt (a CA file of two).  0, or -1 (the caller skips, saying so). */
int certs_make_chain(const char *dir);

#endif
