/* SPDX-License-Identifier: MIT */
/* fuzz_inflate.c -- the bounded inflate of job payloads and modules: any
 * input either fails with a reason or yields exactly the declared length,
 * never more than the limit.  The same input is also inflated as the node
 * inflates a large compressed job, straight into a buffer of exactly the
 * declared size (pp_zip_declared, pp_zip_inflate_into; no spare byte to
 * hide a write past its end), and must give the same answer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pp_common.h"
#include "pp_zip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The node's path: the declared size, then an exact buffer.  Checks it
 * agrees with pp_zip_inflate()'s answer (ok, out, outlen). */
static void inflate_into(const uint8_t *data, size_t size, size_t max, int ok, const void *out,
                         size_t outlen)
{
    char err[PP_ERR_LEN];
    size_t declared;
    err[0] = 0;
    if (pp_zip_declared(data, size, max, &declared, err) != 0) {
        if (ok || !err[0])
            abort();
        return;
    }
    uint8_t *dst = malloc(declared ? declared : 1);
    if (!dst)
        return;
    err[0] = 0;
    int rc = pp_zip_inflate_into(data, size, dst, declared, err);
    if ((rc == 0) != ok || (rc != 0 && !err[0]) ||
        (ok && (declared != outlen || memcmp(dst, out, outlen) != 0)))
        abort();
    /* A size other than the one declared is refused before inflating. */
    if (pp_zip_inflate_into(data, size, dst, declared ? declared - 1 : 0, err) == 0 && declared)
        abort();
    free(dst);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum { MAX = 1u << 20 };
    void *out = NULL;
    size_t outlen = 0;
    char err[PP_ERR_LEN];
    err[0] = 0;
    int ok = pp_zip_inflate(data, size, MAX, &out, &outlen, err) == 0;
    inflate_into(data, size, MAX, ok, out, outlen);
    if (ok) {
        if (!out || outlen > MAX || size < 4 || outlen != pp_load32(data))
            abort();
        if (((const uint8_t *)out)[outlen] != 0)
            abort(); /* promised NUL terminator */
        /* What came out goes back in and out again unchanged. */
        void *z = NULL, *back = NULL;
        size_t zlen = 0, blen = 0;
        if (pp_zip_deflate(out, outlen, 1, &z, &zlen) == 0) {
            if (pp_zip_inflate(z, zlen, MAX, &back, &blen, err) != 0 || blen != outlen ||
                memcmp(back, out, outlen) != 0)
                abort();
        }
        free(back);
        free(z);
    } else if (!err[0]) {
        abort(); /* a failure always says why */
    }
    free(out);
    return 0;
}
