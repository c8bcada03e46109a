/* SPDX-License-Identifier: MIT */
/* pp_auth.c -- the cryptography of the handshake on OpenSSL 3.0: HKDF for
 * the key, HMAC-SHA256 proofs with role labels, the transcript hash, nonces
 * and SHA-256 of bytes and files. */
#include "pp_auth.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "pp_common.h"

#define HKDF_INFO "pp auth"
#define HKDF_INFO_PSK "pp tls13 psk"
#define HKDF_INFO_ANNOUNCE "pp announce"
#define LABEL_CLIENT "pp client proof"
#define LABEL_SERVER "pp server proof"
#define FILE_CHUNK (64u * 1024u)

int pp_auth_secret(const char *secret, size_t *len, char *err)
{
    size_t n = secret ? strlen(secret) : 0;
    while (n > 0 && (secret[n - 1] == '\n' || secret[n - 1] == '\r'))
        n--;
    *len = n;
    if (n == 0) {
        pp_seterr(err, "no secret");
        return -1;
    }
    if (n < PP_SECRET_MIN) {
        pp_seterr(err, "the secret is too short (%zu bytes; at least %d): create one with "
                       "ppserver --gen-secret FILE", n, PP_SECRET_MIN);
        return -1;
    }
    /* The example of the shipped configuration file is no secret. */
    static const char *const placeholders[] = {"use-a-generated-secret-instead"};
    for (size_t i = 0; i < PP_ARRAY_LEN(placeholders); i++) {
        if (n == strlen(placeholders[i]) && memcmp(secret, placeholders[i], n) == 0) {
            pp_seterr(err, "the secret is the example of the shipped configuration file: "
                           "create one with ppserver --gen-secret FILE");
            return -1;
        }
    }
    return 0;
}

int pp_auth_hkdf(const void *ikm, size_t ikmlen, const char *info, uint8_t *out, size_t outlen)
{
    static const uint8_t none = 0;
    /* No salt parameter: HKDF then uses HashLen zero bytes, which is the
     * same HMAC key as the empty salt of RFC 5869. */
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)(ikm ? ikm : &none),
                                          ikmlen),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info)),
        OSSL_PARAM_construct_end(),
    };
    int rc = -1;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    if (kctx && EVP_KDF_derive(kctx, out, outlen, params) == 1)
        rc = 0;
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    if (rc != 0)
        pp_auth_wipe(out, outlen);
    return rc;
}

/* K = scrypt(secret) into out (32 bytes).  0 or -1. */
static int scrypt_key(const void *secret, size_t len, uint8_t out[32])
{
    static const uint8_t none = 0;
    uint64_t n = PP_KDF_N, maxmem = 64u << 20;
    uint32_t r = PP_KDF_R, p = PP_KDF_P;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
                                          (void *)(secret ? secret : &none), len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)PP_KDF_SALT,
                                          sizeof PP_KDF_SALT - 1),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
        OSSL_PARAM_construct_end(),
    };
    int rc = -1;
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    if (kctx && EVP_KDF_derive(kctx, out, 32, params) == 1)
        rc = 0;
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    return rc;
}

int pp_auth_derive(const void *secret, size_t len, pp_auth_key *out)
{
    uint8_t k[32];
    int rc = -1;
    if (scrypt_key(secret, len, k) == 0 &&
        pp_auth_hkdf(k, sizeof k, HKDF_INFO, out->auth, sizeof out->auth) == 0 &&
        pp_auth_hkdf(k, sizeof k, HKDF_INFO_PSK, out->psk, sizeof out->psk) == 0 &&
        pp_auth_hkdf(k, sizeof k, HKDF_INFO_ANNOUNCE, out->announce, sizeof out->announce) == 0)
        rc = 0;
    pp_auth_wipe(k, sizeof k);
    if (rc != 0)
        pp_auth_wipe(out, sizeof *out);
    return rc;
}

void pp_auth_wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

int pp_auth_nonce(uint8_t out[PP_NONCE_LEN])
{
    return RAND_bytes(out, PP_NONCE_LEN) == 1 ? 0 : -1;
}

int pp_auth_transcript(const void *hello, size_t hlen, const void *chal, size_t clen,
                       uint8_t out[PP_SHA256_LEN])
{
    static const uint8_t empty = 0;
    if (hlen > UINT32_MAX || clen > UINT32_MAX)
        return -1;
    uint8_t hl[4], cl[4];
    pp_store32(hl, (uint32_t)hlen);
    pp_store32(cl, (uint32_t)clen);
    unsigned int outl = 0;
    int rc = -1;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (md && EVP_DigestInit_ex(md, EVP_sha256(), NULL) == 1 &&
        EVP_DigestUpdate(md, hl, sizeof hl) == 1 &&
        EVP_DigestUpdate(md, hello ? hello : &empty, hlen) == 1 &&
        EVP_DigestUpdate(md, cl, sizeof cl) == 1 &&
        EVP_DigestUpdate(md, chal ? chal : &empty, clen) == 1 &&
        EVP_DigestFinal_ex(md, out, &outl) == 1 && outl == PP_SHA256_LEN)
        rc = 0;
    EVP_MD_CTX_free(md);
    return rc;
}

int pp_auth_proof(const pp_auth_key *k, int role, uint8_t ver, const uint8_t nc[PP_NONCE_LEN],
                  const uint8_t ns[PP_NONCE_LEN], const uint8_t transcript[PP_SHA256_LEN],
                  uint8_t mac[PP_MAC_LEN])
{
    const char *label;
    if (role == PP_ROLE_CLIENT)
        label = LABEL_CLIENT;
    else if (role == PP_ROLE_SERVER)
        label = LABEL_SERVER;
    else
        return -1;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    int rc = -1;
    size_t outl = 0;
    EVP_MAC *m = EVP_MAC_fetch(NULL, "HMAC", NULL);
    EVP_MAC_CTX *ctx = m ? EVP_MAC_CTX_new(m) : NULL;
    if (ctx && EVP_MAC_init(ctx, k->auth, sizeof k->auth, params) == 1 &&
        EVP_MAC_update(ctx, (const unsigned char *)label, strlen(label)) == 1 &&
        EVP_MAC_update(ctx, &ver, 1) == 1 && EVP_MAC_update(ctx, nc, PP_NONCE_LEN) == 1 &&
        EVP_MAC_update(ctx, ns, PP_NONCE_LEN) == 1 &&
        EVP_MAC_update(ctx, transcript, PP_SHA256_LEN) == 1 &&
        EVP_MAC_final(ctx, mac, &outl, PP_MAC_LEN) == 1 && outl == PP_MAC_LEN)
        rc = 0;
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(m);
    return rc;
}

int pp_auth_verify(const pp_auth_key *k, int role, uint8_t ver,
                   const uint8_t nc[PP_NONCE_LEN], const uint8_t ns[PP_NONCE_LEN],
                   const uint8_t transcript[PP_SHA256_LEN], const uint8_t mac[PP_MAC_LEN])
{
    uint8_t want[PP_MAC_LEN];
    int rc = -1;
    if (pp_auth_proof(k, role, ver, nc, ns, transcript, want) == 0 &&
        CRYPTO_memcmp(want, mac, PP_MAC_LEN) == 0)
        rc = 0;
    pp_auth_wipe(want, sizeof want);
    return rc;
}

int pp_sha256(const void *data, size_t n, uint8_t out[PP_SHA256_LEN])
{
    static const uint8_t empty = 0;
    unsigned int outl = 0;
    if (EVP_Digest(data ? data : &empty, n, out, &outl, EVP_sha256(), NULL) != 1 ||
        outl != PP_SHA256_LEN)
        return -1;
    return 0;
}

int pp_sha256_file(const char *path, uint8_t out[PP_SHA256_LEN], char *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        pp_seterr(err, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    int rc = -1;
    unsigned int outl = 0;
    uint8_t *buf = malloc(FILE_CHUNK);
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!buf || !md) {
        pp_seterr(err, "cannot hash %s: out of memory", path);
        goto done;
    }
    if (EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1) {
        pp_seterr(err, "cannot hash %s: SHA-256 unavailable", path);
        goto done;
    }
    for (;;) {
        ssize_t r = read(fd, buf, FILE_CHUNK);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            pp_seterr(err, "cannot read %s: %s", path, strerror(errno));
            goto done;
        }
        if (r == 0)
            break;
        if (EVP_DigestUpdate(md, buf, (size_t)r) != 1) {
            pp_seterr(err, "cannot hash %s: SHA-256 failed", path);
            goto done;
        }
    }
    if (EVP_DigestFinal_ex(md, out, &outl) != 1 || outl != PP_SHA256_LEN) {
        pp_seterr(err, "cannot hash %s: SHA-256 failed", path);
        goto done;
    }
    rc = 0;
done:
    EVP_MD_CTX_free(md);
    free(buf);
    close(fd);
    return rc;
}

void pp_hex(const uint8_t *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 0x0F];
    }
    out[2 * n] = '\0';
}

int pp_auth_gen_secret(char out[65])
{
    uint8_t raw[32];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        pp_auth_wipe(raw, sizeof raw);
        return -1;
    }
    pp_hex(raw, sizeof raw, out);
    pp_auth_wipe(raw, sizeof raw);
    return 0;
}
