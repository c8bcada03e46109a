/* SPDX-License-Identifier: MIT */
/* test_auth.c -- pp_auth: the OpenSSL primitives against their RFC vectors
 * (HMAC-SHA256 of RFC 4231, HKDF-SHA256 of RFC 5869, SHA-256 of FIPS 180-2),
 * then the key, the proofs and what verify must reject, the transcript,
 * nonces, file hashing, hex and secret generation. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include "cunit_main.h"
#include "pp_auth.h"
#include "pp_common.h"

/* Decodes hex into out (at most cap bytes); returns the byte count. */
static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = strlen(hex) / 2;
    CU_ASSERT_FATAL(n <= cap);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        CU_ASSERT_FATAL(sscanf(hex + 2 * i, "%2x", &v) == 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

static int hex_equals(const uint8_t *bytes, size_t n, const char *want)
{
    char got[2 * 64 + 1];
    CU_ASSERT_FATAL(n <= 64);
    pp_hex(bytes, n, got);
    return strcmp(got, want) == 0;
}

/* HKDF-SHA256 through EVP_KDF with every parameter explicit. */
static int hkdf(const uint8_t *ikm, size_t ikmlen, const uint8_t *salt, size_t saltlen,
                const uint8_t *info, size_t infolen, uint8_t *out, size_t outlen)
{
    OSSL_PARAM params[5];
    size_t i = 0;
    params[i++] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA256", 0);
    params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikmlen);
    if (salt)
        params[i++] =
            OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen);
    params[i++] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, infolen);
    params[i] = OSSL_PARAM_construct_end();
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    EVP_KDF_CTX *ctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    int ok = ctx && EVP_KDF_derive(ctx, out, outlen, params) == 1;
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
    return ok ? 0 : -1;
}

/* ---- the primitives against their vectors ---- */

static void test_hmac_rfc4231(void)
{
    uint8_t mac[32];
    unsigned int len = 0;

    /* Test case 1: key 0x0b * 20, "Hi There". */
    uint8_t key1[20];
    memset(key1, 0x0b, sizeof key1);
    CU_ASSERT_PTR_NOT_NULL_FATAL(HMAC(EVP_sha256(), key1, sizeof key1,
                                      (const unsigned char *)"Hi There", 8, mac, &len));
    CU_ASSERT_EQUAL(len, 32);
    CU_ASSERT(hex_equals(mac, 32,
                         "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"));

    /* Test case 2: key "Jefe", "what do ya want for nothing?". */
    static const char data2[] = "what do ya want for nothing?";
    CU_ASSERT_PTR_NOT_NULL_FATAL(HMAC(EVP_sha256(), "Jefe", 4, (const unsigned char *)data2,
                                      sizeof data2 - 1, mac, &len));
    CU_ASSERT_EQUAL(len, 32);
    CU_ASSERT(hex_equals(mac, 32,
                         "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"));
}

static void test_hkdf_rfc5869(void)
{
    /* Test case 1. */
    uint8_t ikm[22], salt[13], info[10], okm[42];
    memset(ikm, 0x0b, sizeof ikm);
    for (size_t i = 0; i < sizeof salt; i++)
        salt[i] = (uint8_t)i;
    for (size_t i = 0; i < sizeof info; i++)
        info[i] = (uint8_t)(0xf0 + i);
    CU_ASSERT_EQUAL_FATAL(hkdf(ikm, sizeof ikm, salt, sizeof salt, info, sizeof info, okm,
                               sizeof okm),
                          0);
    uint8_t want[42];
    CU_ASSERT_EQUAL_FATAL(unhex("3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4"
                                "c5bf34007208d5b887185865",
                                want, sizeof want),
                          sizeof want);
    CU_ASSERT_EQUAL(memcmp(okm, want, sizeof want), 0);
}

static void test_sha256_fips(void)
{
    uint8_t d[PP_SHA256_LEN];
    CU_ASSERT_EQUAL_FATAL(pp_sha256("abc", 3, d), 0);
    CU_ASSERT(hex_equals(d, sizeof d,
                         "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"));
    CU_ASSERT_EQUAL_FATAL(pp_sha256(NULL, 0, d), 0);
    CU_ASSERT(hex_equals(d, sizeof d,
                         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    static const char two[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    CU_ASSERT_EQUAL_FATAL(pp_sha256(two, sizeof two - 1, d), 0);
    CU_ASSERT(hex_equals(d, sizeof d,
                         "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"));
}

/* ---- the key ---- */

/* scrypt itself, RFC 7914 section 12's second vector, through the same
 * EVP_KDF parameters pp_auth_derive() uses. */
static void test_scrypt_rfc7914(void)
{
    uint64_t n = 1024, maxmem = 64u << 20;
    uint32_t r = 8, p = 16;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)"password", 8),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)"NaCl", 4),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
        OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
        OSSL_PARAM_construct_end(),
    };
    uint8_t out[64];
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
    EVP_KDF_CTX *kctx = kdf ? EVP_KDF_CTX_new(kdf) : NULL;
    CU_ASSERT_FATAL(kctx && EVP_KDF_derive(kctx, out, sizeof out, params) == 1);
    EVP_KDF_CTX_free(kctx);
    EVP_KDF_free(kdf);
    CU_ASSERT(hex_equals(out, sizeof out,
                         "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
                         "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"));
}

/* The key schedule, computed again another way: scrypt through
 * EVP_PBE_scrypt, HKDF by hand from HMAC (RFC 5869 section 2: PRK =
 * HMAC(salt "", IKM); OKM = T(1) = HMAC(PRK, info || 0x01)). */
static void test_derive_wiring(void)
{
    static const char secret[] = "0123456789abcdef0123456789abcdef";
    pp_auth_key k;
    CU_ASSERT_EQUAL_FATAL(pp_auth_derive(secret, sizeof secret - 1, &k), 0);
    uint8_t master[32];
    CU_ASSERT_EQUAL_FATAL(EVP_PBE_scrypt(secret, sizeof secret - 1,
                                         (const unsigned char *)PP_KDF_SALT,
                                         sizeof PP_KDF_SALT - 1, PP_KDF_N, PP_KDF_R, PP_KDF_P,
                                         64u << 20, master, sizeof master),
                          1);
    uint8_t prk[32], t1[32];
    unsigned int len = 0;
    CU_ASSERT_PTR_NOT_NULL_FATAL(HMAC(EVP_sha256(), "", 0, master, sizeof master, prk, &len));
    static const uint8_t auth1[] = {'p', 'p', ' ', 'a', 'u', 't', 'h', 0x01};
    CU_ASSERT_PTR_NOT_NULL_FATAL(
        HMAC(EVP_sha256(), prk, sizeof prk, auth1, sizeof auth1, t1, &len));
    CU_ASSERT_EQUAL(memcmp(k.auth, t1, sizeof t1), 0);
    static const char psk_info[] = "pp tls13 psk\x01";
    CU_ASSERT_PTR_NOT_NULL_FATAL(HMAC(EVP_sha256(), prk, sizeof prk,
                                      (const unsigned char *)psk_info, sizeof psk_info - 1, t1,
                                      &len));
    CU_ASSERT_EQUAL(memcmp(k.psk, t1, sizeof t1), 0);
    /* The two keys differ, and neither is the scrypt output itself. */
    CU_ASSERT_NOT_EQUAL(memcmp(k.auth, k.psk, 32), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(k.auth, master, 32), 0);
    /* pp_auth_hkdf() is that HKDF. */
    uint8_t h[32];
    CU_ASSERT_EQUAL_FATAL(pp_auth_hkdf(master, sizeof master, "pp auth", h, sizeof h), 0);
    CU_ASSERT_EQUAL(memcmp(h, k.auth, 32), 0);
    /* Discovery's key: its own label, neither of the others. */
    CU_ASSERT_EQUAL_FATAL(pp_auth_hkdf(master, sizeof master, "pp announce", h, sizeof h), 0);
    CU_ASSERT_EQUAL(memcmp(h, k.announce, 32), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(k.announce, k.auth, 32), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(k.announce, k.psk, 32), 0);
}

static void test_derive_deterministic(void)
{
    pp_auth_key a, b, c;
    CU_ASSERT_EQUAL_FATAL(pp_auth_derive("correct horse battery", 21, &a), 0);
    CU_ASSERT_EQUAL_FATAL(pp_auth_derive("correct horse battery", 21, &b), 0);
    CU_ASSERT_EQUAL_FATAL(pp_auth_derive("correct horse batterz", 21, &c), 0);
    CU_ASSERT_EQUAL(memcmp(a.auth, b.auth, sizeof a.auth), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(a.auth, c.auth, sizeof a.auth), 0);
    /* A prefix is a different secret. */
    CU_ASSERT_EQUAL_FATAL(pp_auth_derive("correct horse batter", 20, &c), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(a.auth, c.auth, sizeof a.auth), 0);
}

static void test_wipe(void)
{
    uint8_t b[40];
    memset(b, 0xA5, sizeof b);
    pp_auth_wipe(b + 4, 32);
    for (size_t i = 0; i < sizeof b; i++)
        CU_ASSERT_EQUAL(b[i], (i >= 4 && i < 36) ? 0 : 0xA5);
    pp_auth_wipe(NULL, 0);
    pp_auth_wipe(b, 0);
}

/* ---- proofs ---- */

typedef struct fixture {
    pp_auth_key k;
    uint8_t nc[PP_NONCE_LEN], ns[PP_NONCE_LEN], tr[PP_SHA256_LEN];
    uint8_t ver;
} fixture;

static void fixture_init(fixture *f)
{
    static const char secret[] = "a shared secret of enough bytes";
    CU_ASSERT_EQUAL_FATAL(pp_auth_derive(secret, sizeof secret - 1, &f->k), 0);
    for (size_t i = 0; i < PP_NONCE_LEN; i++) {
        f->nc[i] = (uint8_t)(i * 7 + 1);
        f->ns[i] = (uint8_t)(i * 13 + 5);
    }
    CU_ASSERT_EQUAL_FATAL(pp_auth_transcript("hello", 5, "challenge", 9, f->tr), 0);
    f->ver = 1;
}

static void test_proof_layout(void)
{
    fixture f;
    fixture_init(&f);
    static const char *const labels[2] = {"pp client proof", "pp server proof"};
    for (int role = PP_ROLE_CLIENT; role <= PP_ROLE_SERVER; role++) {
        uint8_t mac[PP_MAC_LEN];
        CU_ASSERT_EQUAL_FATAL(pp_auth_proof(&f.k, role, f.ver, f.nc, f.ns, f.tr, mac), 0);
        uint8_t msg[15 + 1 + 32 + 32 + 32];
        memcpy(msg, labels[role], 15);
        msg[15] = f.ver;
        memcpy(msg + 16, f.nc, 32);
        memcpy(msg + 48, f.ns, 32);
        memcpy(msg + 80, f.tr, 32);
        uint8_t want[32];
        unsigned int len = 0;
        CU_ASSERT_PTR_NOT_NULL_FATAL(
            HMAC(EVP_sha256(), f.k.auth, sizeof f.k.auth, msg, sizeof msg, want, &len));
        CU_ASSERT_EQUAL(memcmp(mac, want, sizeof want), 0);
    }
}

static void test_proof_roles_differ(void)
{
    fixture f;
    fixture_init(&f);
    uint8_t c[PP_MAC_LEN], s[PP_MAC_LEN], c2[PP_MAC_LEN];
    CU_ASSERT_EQUAL_FATAL(pp_auth_proof(&f.k, PP_ROLE_CLIENT, f.ver, f.nc, f.ns, f.tr, c), 0);
    CU_ASSERT_EQUAL_FATAL(pp_auth_proof(&f.k, PP_ROLE_SERVER, f.ver, f.nc, f.ns, f.tr, s), 0);
    CU_ASSERT_EQUAL_FATAL(pp_auth_proof(&f.k, PP_ROLE_CLIENT, f.ver, f.nc, f.ns, f.tr, c2), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(c, s, PP_MAC_LEN), 0);
    CU_ASSERT_EQUAL(memcmp(c, c2, PP_MAC_LEN), 0);
    /* An unknown role is refused. */
    CU_ASSERT_EQUAL(pp_auth_proof(&f.k, 2, f.ver, f.nc, f.ns, f.tr, c2), -1);
    CU_ASSERT_EQUAL(pp_auth_proof(&f.k, -1, f.ver, f.nc, f.ns, f.tr, c2), -1);
}

static void test_verify(void)
{
    fixture f;
    fixture_init(&f);
    uint8_t mac[PP_MAC_LEN];
    CU_ASSERT_EQUAL_FATAL(pp_auth_proof(&f.k, PP_ROLE_CLIENT, f.ver, f.nc, f.ns, f.tr, mac), 0);

    /* The right proof. */
    CU_ASSERT_EQUAL(pp_auth_verify(&f.k, PP_ROLE_CLIENT, f.ver, f.nc, f.ns, f.tr, mac), 0);

    /* One flipped bit anywhere in the MAC. */
    for (size_t bit = 0; bit < 8 * PP_MAC_LEN; bit += 37) {
        uint8_t bad[PP_MAC_LEN];
        memcpy(bad, mac, sizeof bad);
        bad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        CU_ASSERT_EQUAL(pp_auth_verify(&f.k, PP_ROLE_CLIENT, f.ver, f.nc, f.ns, f.tr, bad), -1);
    }
    uint8_t last[PP_MAC_LEN];
    memcpy(last, mac, sizeof last);
    last[PP_MAC_LEN - 1] ^= 0x80;
    CU_ASSERT_EQUAL(pp_auth_verify(&f.k, PP_ROLE_CLIENT, f.ver, f.nc, f.ns, f.tr, last), -1);

    /* A different secret. */
    pp_auth_key other;
    CU_ASSERT_EQUAL_FATAL(pp_auth_derive("another secret of enough bytes", 30, &other), 0);
    CU_ASSERT_EQUAL(pp_auth_verify(&other, PP_ROLE_CLIENT, f.ver, f.nc, f.ns, f.tr, mac), -1);

    /* The other role: a client proof reflected back as the server's. */
    CU_ASSERT_EQUAL(pp_auth_verify(&f.k, PP_ROLE_SERVER, f.ver, f.nc, f.ns, f.tr, mac), -1);

    /* Another version (downgrade). */
    CU_ASSERT_EQUAL(pp_auth_verify(&f.k, PP_ROLE_CLIENT, 0, f.nc, f.ns, f.tr, mac), -1);
    CU_ASSERT_EQUAL(pp_auth_verify(&f.k, PP_ROLE_CLIENT, 2, f.nc, f.ns, f.tr, mac), -1);

    /* Another client nonce, another server nonce (replay). */
    uint8_t n2[PP_NONCE_LEN];
    memcpy(n2, f.nc, sizeof n2);
    n2[17] ^= 1;
    CU_ASSERT_EQUAL(pp_auth_verify(&f.k, PP_ROLE_CLIENT, f.ver, n2, f.ns, f.tr, mac), -1);
    memcpy(n2, f.ns, sizeof n2);
    n2[0] ^= 1;
    CU_ASSERT_EQUAL(pp_auth_verify(&f.k, PP_ROLE_CLIENT, f.ver, f.nc, n2, f.tr, mac), -1);
    /* The nonces swapped. */
    CU_ASSERT_EQUAL(pp_auth_verify(&f.k, PP_ROLE_CLIENT, f.ver, f.ns, f.nc, f.tr, mac), -1);

    /* Another transcript. */
    uint8_t tr2[PP_SHA256_LEN];
    CU_ASSERT_EQUAL_FATAL(pp_auth_transcript("hello", 5, "challengf", 9, tr2), 0);
    CU_ASSERT_EQUAL(pp_auth_verify(&f.k, PP_ROLE_CLIENT, f.ver, f.nc, f.ns, tr2, mac), -1);

    /* An unknown role. */
    CU_ASSERT_EQUAL(pp_auth_verify(&f.k, 7, f.ver, f.nc, f.ns, f.tr, mac), -1);

    /* And the right proof once more, after all that. */
    CU_ASSERT_EQUAL(pp_auth_verify(&f.k, PP_ROLE_CLIENT, f.ver, f.nc, f.ns, f.tr, mac), 0);
}

/* ---- transcript ---- */

static void test_transcript_layout(void)
{
    uint8_t t[PP_SHA256_LEN], want[PP_SHA256_LEN];
    CU_ASSERT_EQUAL_FATAL(pp_auth_transcript("hello", 5, "chal!", 5, t), 0);
    static const uint8_t msg[] = {0, 0, 0, 5, 'h', 'e', 'l', 'l', 'o',
                                  0, 0, 0, 5, 'c', 'h', 'a', 'l', '!'};
    CU_ASSERT_EQUAL_FATAL(pp_sha256(msg, sizeof msg, want), 0);
    CU_ASSERT_EQUAL(memcmp(t, want, sizeof want), 0);

    /* Empty payloads still hash their two lengths. */
    static const uint8_t zeros[8] = {0};
    CU_ASSERT_EQUAL_FATAL(pp_auth_transcript(NULL, 0, NULL, 0, t), 0);
    CU_ASSERT_EQUAL_FATAL(pp_sha256(zeros, sizeof zeros, want), 0);
    CU_ASSERT_EQUAL(memcmp(t, want, sizeof want), 0);
}

static void test_transcript_boundary(void)
{
    uint8_t a[PP_SHA256_LEN], b[PP_SHA256_LEN], c[PP_SHA256_LEN], d[PP_SHA256_LEN];
    CU_ASSERT_EQUAL_FATAL(pp_auth_transcript("ab", 2, "c", 1, a), 0);
    CU_ASSERT_EQUAL_FATAL(pp_auth_transcript("a", 1, "bc", 2, b), 0);
    CU_ASSERT_EQUAL_FATAL(pp_auth_transcript("abc", 3, "", 0, c), 0);
    CU_ASSERT_EQUAL_FATAL(pp_auth_transcript("ab", 2, "c", 1, d), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(a, b, sizeof a), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(a, c, sizeof a), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(b, c, sizeof a), 0);
    CU_ASSERT_EQUAL(memcmp(a, d, sizeof a), 0);
}

/* ---- randomness ---- */

static void test_nonces_differ(void)
{
    uint8_t a[PP_NONCE_LEN], b[PP_NONCE_LEN];
    static const uint8_t zero[PP_NONCE_LEN] = {0};
    CU_ASSERT_EQUAL_FATAL(pp_auth_nonce(a), 0);
    CU_ASSERT_EQUAL_FATAL(pp_auth_nonce(b), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(a, b, sizeof a), 0);
    CU_ASSERT_NOT_EQUAL(memcmp(a, zero, sizeof a), 0);
}

static void test_gen_secret(void)
{
    char a[65], b[65];
    memset(a, 'X', sizeof a);
    memset(b, 'X', sizeof b);
    CU_ASSERT_EQUAL_FATAL(pp_auth_gen_secret(a), 0);
    CU_ASSERT_EQUAL_FATAL(pp_auth_gen_secret(b), 0);
    CU_ASSERT_EQUAL(strlen(a), 64);
    CU_ASSERT_EQUAL(strlen(b), 64);
    CU_ASSERT_EQUAL(strspn(a, "0123456789abcdef"), 64);
    CU_ASSERT_EQUAL(strspn(b, "0123456789abcdef"), 64);
    CU_ASSERT_NOT_EQUAL(strcmp(a, b), 0);
    /* Long enough for a secret. */
    CU_ASSERT(strlen(a) >= PP_SECRET_MIN);
}

/* ---- hex ---- */

static void test_hex(void)
{
    static const uint8_t in[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xCD, 0xff, 0x10};
    char out[2 * sizeof in + 1];
    memset(out, 'X', sizeof out);
    pp_hex(in, sizeof in, out);
    CU_ASSERT_STRING_EQUAL(out, "00017f80abcdff10");
    char empty[1] = {'X'};
    pp_hex(in, 0, empty);
    CU_ASSERT_EQUAL(empty[0], '\0');
    char one[3];
    pp_hex(in + 6, 1, one);
    CU_ASSERT_STRING_EQUAL(one, "ff");
}

/* ---- files ---- */

static void temp_path(char *path, size_t len)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, len, "%s/pp_test_auth_XXXXXX", dir && *dir ? dir : "/tmp");
}

/* Writes n bytes into a new temporary file; returns its path in path. */
static void write_temp(const uint8_t *data, size_t n, char *path, size_t len)
{
    temp_path(path, len);
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(fd, data + off, n - off);
        CU_ASSERT_FATAL(w > 0);
        off += (size_t)w;
    }
    CU_ASSERT_FATAL(close(fd) == 0);
}

static void test_sha256_file(void)
{
    /* Larger than one 64 KiB chunk and not a multiple of it. */
    size_t n = 3 * 65536 + 12345;
    uint8_t *data = malloc(n);
    CU_ASSERT_PTR_NOT_NULL_FATAL(data);
    uint32_t x = 2463534242u;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        data[i] = (uint8_t)x;
    }
    char path[512];
    write_temp(data, n, path, sizeof path);
    uint8_t want[PP_SHA256_LEN], got[PP_SHA256_LEN];
    char err[PP_ERR_LEN] = "";
    CU_ASSERT_EQUAL(pp_sha256(data, n, want), 0);
    CU_ASSERT_EQUAL(pp_sha256_file(path, got, err), 0);
    CU_ASSERT_EQUAL(memcmp(want, got, sizeof want), 0);
    unlink(path);

    /* Exactly one chunk. */
    write_temp(data, 65536, path, sizeof path);
    CU_ASSERT_EQUAL(pp_sha256(data, 65536, want), 0);
    CU_ASSERT_EQUAL(pp_sha256_file(path, got, err), 0);
    CU_ASSERT_EQUAL(memcmp(want, got, sizeof want), 0);
    unlink(path);
    free(data);

    /* An empty file. */
    write_temp(NULL, 0, path, sizeof path);
    CU_ASSERT_EQUAL(pp_sha256_file(path, got, err), 0);
    CU_ASSERT(hex_equals(got, sizeof got,
                         "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"));
    unlink(path);
}

static void test_sha256_file_errors(void)
{
    uint8_t got[PP_SHA256_LEN];
    char err[PP_ERR_LEN] = "";
    char path[512];
    temp_path(path, sizeof path);
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    close(fd);
    unlink(path); /* now surely missing */
    CU_ASSERT_EQUAL(pp_sha256_file(path, got, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "No such file"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot open"));
    CU_ASSERT_PTR_NOT_NULL(strstr(err, path));

    /* A directory opens but cannot be read. */
    err[0] = 0;
    CU_ASSERT_EQUAL(pp_sha256_file("/", got, err), -1);
    CU_ASSERT_PTR_NOT_NULL(strstr(err, "Is a directory"));

    /* err may be NULL. */
    CU_ASSERT_EQUAL(pp_sha256_file(path, got, NULL), -1);
}

int pp_register_suites(void)
{
    static const pp_test vectors[] = {
        {"HMAC-SHA256, RFC 4231 cases 1 and 2", test_hmac_rfc4231},
        {"HKDF-SHA256, RFC 5869 case 1", test_hkdf_rfc5869},
        {"scrypt, RFC 7914 vector 2", test_scrypt_rfc7914},
        {"SHA-256, FIPS 180-2", test_sha256_fips},
        {NULL, NULL},
    };
    static const pp_test auth[] = {
        {"derive: salt, info and digest wiring", test_derive_wiring},
        {"derive: deterministic, differs per secret", test_derive_deterministic},
        {"wipe", test_wipe},
        {"proof: exact MAC input layout", test_proof_layout},
        {"proof: client != server (reflection)", test_proof_roles_differ},
        {"verify accepts the right proof, rejects the rest", test_verify},
        {"transcript layout", test_transcript_layout},
        {"transcript: hello/challenge boundary", test_transcript_boundary},
        {"nonces differ", test_nonces_differ},
        {"gen_secret", test_gen_secret},
        {"hex", test_hex},
        {"sha256_file", test_sha256_file},
        {"sha256_file errors", test_sha256_file_errors},
        {NULL, NULL},
    };
    if (pp_add_suite("crypto vectors", NULL, NULL, vectors) != 0 ||
        pp_add_suite("pp_auth", NULL, NULL, auth) != 0)
        return -1;
    return 0;
}
