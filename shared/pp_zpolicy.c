/* SPDX-License-Identifier: MIT */
/* pp_zpolicy.c -- compress a large payload only when it pays on this link
 * (the model is in pp_zpolicy.h). */
#include "pp_zpolicy.h"

#include <stdint.h>
#include <string.h>
#include <zlib.h>

#include "pp_common.h"
#include "pp_zip.h"

/* Timings shorter than this say more about the clock than the rate. */
#define MIN_TIMED (20e-6)
/* Weight of a new timing in the moving estimates. */
#define EWMA_NEW 0.3
/* The sample pp_zpolicy_maybe deflates: 16 KiB from the middle. */
#define SAMPLE 16384

int pp_zpolicy_parse(const char *s)
{
    if (!s || !strcmp(s, "auto"))
        return PP_ZP_AUTO;
    if (!strcmp(s, "always"))
        return PP_ZP_ALWAYS;
    if (!strcmp(s, "never"))
        return PP_ZP_NEVER;
    return -2;
}

int pp_zp_decide(const pp_zp_input *in)
{
    if (in->mode == PP_ZP_NEVER || in->ratio > 2.0 / 3.0 || in->ratio < 0)
        return 0;
    if (in->mode == PP_ZP_ALWAYS)
        return 1;
    if (!(in->link_bps > 0))
        return 0; /* never seen the link slow: take it as fast */
    double d = in->deflate_bps > 0 ? in->deflate_bps : PP_ZP_DEFLATE_DEFAULT;
    double i = in->inflate_bps > 0 ? in->inflate_bps : PP_ZP_INFLATE_DEFAULT;
    /* Per payload byte, all three steps one after another (a frame is
     * deflated whole before it is sent, inflated whole once received). */
    double zipped = 1.0 / d + in->ratio / in->link_bps + 1.0 / i;
    double raw = 1.0 / in->link_bps;
    return zipped * PP_ZP_MARGIN < raw;
}

static void fold(double *est, size_t n, double secs)
{
    if (!(secs >= MIN_TIMED) || n == 0)
        return;
    double rate = (double)n / secs;
    *est = *est > 0 ? *est * (1 - EWMA_NEW) + rate * EWMA_NEW : rate;
}

void pp_zpolicy_note_deflate(pp_zpolicy *zp, size_t n, double secs)
{
    fold(&zp->deflate_bps, n, secs);
}

void pp_zpolicy_note_inflate(pp_zpolicy *zp, size_t n, double secs)
{
    fold(&zp->inflate_bps, n, secs);
}

/* Deflates the sample at level 1: its compressed / raw ratio, or -1.  The
 * time deflate() itself took goes to *secs (zlib's setup, which costs as
 * much as a small sample, left out: the rate is the data's). */
static double sample_ratio(const uint8_t *body, size_t blen, double *secs)
{
    const uint8_t *sample = body + (blen - SAMPLE) / 2;
    uint8_t tmp[SAMPLE + 1024];
    z_stream zs;
    memset(&zs, 0, sizeof zs);
    *secs = 0;
    if (deflateInit(&zs, 1) != Z_OK)
        return -1;
    zs.next_in = (Bytef *)sample;
    zs.avail_in = SAMPLE;
    zs.next_out = tmp;
    zs.avail_out = sizeof tmp;
    double t0 = pp_now();
    int rc = deflate(&zs, Z_FINISH);
    *secs = pp_now() - t0;
    size_t out = zs.total_out;
    deflateEnd(&zs);
    return rc == Z_STREAM_END ? (double)out / SAMPLE : -1;
}

/* Whether compressing could pay on this link at all, even for data that
 * shrank to nothing and deflated and inflated twice as fast as estimated:
 * if not (a link never seen slow, or a fast one), the sample is not worth
 * its time either. */
static int could_pay(const pp_zpolicy *zp, double link_bps)
{
    pp_zp_input in = {.mode = PP_ZP_AUTO,
                      .ratio = 0,
                      .link_bps = link_bps,
                      .deflate_bps = 2 * PP_MAX(zp->deflate_bps, PP_ZP_DEFLATE_DEFAULT),
                      .inflate_bps = 2 * PP_MAX(zp->inflate_bps, PP_ZP_INFLATE_DEFAULT)};
    return pp_zp_decide(&in);
}

int pp_zpolicy_maybe(pp_zpolicy *zp, int mode, double link_bps, const void *head, size_t hlen,
                     const void *body, size_t blen, void **out, size_t *outlen)
{
    if (mode == PP_ZP_NEVER || blen < PP_ZIP_MIN || hlen + blen > UINT32_MAX ||
        (mode == PP_ZP_AUTO && !could_pay(zp, link_bps)))
        return 0;
    double secs;
    double ratio = sample_ratio(body, blen, &secs);
    /* The sample says how fast this data deflates, also while nothing is
     * compressed (else a low first guess would never be corrected). */
    if (ratio >= 0)
        pp_zpolicy_note_deflate(zp, SAMPLE, secs);
    pp_zp_input in = {.mode = mode,
                      .n = blen,
                      .ratio = ratio,
                      .link_bps = link_bps,
                      .deflate_bps = zp->deflate_bps,
                      .inflate_bps = zp->inflate_bps};
    if (!pp_zp_decide(&in))
        return 0;
    double t0 = pp_now();
    int rc = pp_zip_stream(head, hlen, body, blen, out, outlen);
    if (rc == 0)
        pp_zpolicy_note_deflate(zp, hlen + blen, pp_now() - t0);
    return rc == 0 ? 1 : -1;
}

int pp_zpolicy_inflate(pp_zpolicy *zp, const void *in, size_t n, size_t max, void **out,
                       size_t *outlen, char *err)
{
    double t0 = pp_now();
    int rc = pp_zip_inflate(in, n, max, out, outlen, err);
    if (rc == 0)
        pp_zpolicy_note_inflate(zp, *outlen, pp_now() - t0);
    return rc;
}

int pp_zpolicy_inflate_into(pp_zpolicy *zp, const void *in, size_t n, void *dst, size_t declared,
                            char *err)
{
    double t0 = pp_now();
    int rc = pp_zip_inflate_into(in, n, dst, declared, err);
    if (rc == 0)
        pp_zpolicy_note_inflate(zp, declared, pp_now() - t0);
    return rc;
}
