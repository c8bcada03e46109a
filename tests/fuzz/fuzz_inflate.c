/* SPDX-License-Identifier: MIT */
/* fuzz_inflate.c -- the bounded inflate of job payloads and modules: any
 * input either fails with a reason or yields exactly the declared length,
 * never more than the limit. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pp_common.h"
#include "pp_zip.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum { MAX = 1u << 20 };
    void *out = NULL;
    size_t outlen = 0;
    char err[PP_ERR_LEN];
    err[0] = 0;
    if (pp_zip_inflate(data, size, MAX, &out, &outlen, err) == 0) {
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
