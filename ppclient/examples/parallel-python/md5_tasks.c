/* SPDX-License-Identifier: MIT */
/* md5_tasks.c -- the job of Parallel Python's reverse_md5 example: the MD5
 * digest of each integer of a range (its decimal text), compared with the
 * one wanted.  MD5 comes from OpenSSL's libcrypto (EVP interface). */
#include <openssl/evp.h>
#include <pp.h>
#include <stdio.h>
#include <string.h>

#include "md5_tasks.h"

static int unhex(const char *hex, unsigned char out[16])
{
    if (strlen(hex) != 32)
        return -1;
    for (int i = 0; i < 32; i++) {
        char c = hex[i];
        int v = c >= '0' && c <= '9' ? c - '0'
              : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (v < 0)
            return -1;
        out[i / 2] = (unsigned char)(i % 2 ? out[i / 2] | v : v << 4);
    }
    return 0;
}

int ppex_md5_hex(const void *data, size_t n, char hex[33])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(data, n, md, &mdlen, EVP_md5(), NULL) || mdlen != 16)
        return -1;
    for (int i = 0; i < 16; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    return 0;
}

int ppex_md5test(const void *arg, size_t len, pp_buf *out)
{
    const char *hash;
    long start, end;
    unsigned char want[16];
    if (pp_unpack(arg, len, "sll", &hash, &start, &end) != 0)
        return pp_buf_printf(out, "md5test: %s", pp_last_error()), 1;
    if (unhex(hash, want) != 0)
        return pp_buf_printf(out, "md5test: \"%s\" is not an MD5 digest (32 hex digits)", hash), 1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return pp_buf_printf(out, "md5test: out of memory"), 1;
    const EVP_MD *md5 = EVP_md5();
    int rc = 0, found = 0;
    for (long x = start; x < end; x++) {
        char text[24];
        int n = snprintf(text, sizeof text, "%ld", x);
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        if (!EVP_DigestInit_ex(ctx, md5, NULL) || !EVP_DigestUpdate(ctx, text, (size_t)n) ||
            !EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen != 16) {
            rc = 1;
            pp_buf_printf(out, "md5test: libcrypto cannot compute MD5 (FIPS mode?)");
            break;
        }
        if (memcmp(md, want, 16) == 0) {
            rc = pp_pack(out, "l", x) == 0 ? 0 : 1;
            found = 1;
            break;
        }
    }
    EVP_MD_CTX_free(ctx);
    if (rc == 0 && !found) /* None */
        rc = pp_pack(out, "n") == 0 ? 0 : 1;
    return rc;
}
