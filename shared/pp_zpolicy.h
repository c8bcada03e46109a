/* SPDX-License-Identifier: MIT */
/* pp_zpolicy.h -- whether a large job payload is worth compressing on this
 * connection.
 *
 * Compressing a frame pays when deflating it here, sending the smaller
 * frame and inflating it at the peer take less time than sending it as it
 * is.  Every input is measured on our side of the connection: the link's
 * drain rate (pp_conn_link_rate: bytes per second while the socket was
 * full), and per connection a moving estimate of deflate and inflate
 * throughput from the frames this end compressed and inflated; the ratio
 * from a 16 KiB sample of the payload, deflated first.  Nothing the peer
 * says feeds the decision, so a peer cannot make us compress more than
 * "always" would, nor inflate beyond the limits the receive path already
 * enforces. */
#ifndef PP_ZPOLICY_H
#define PP_ZPOLICY_H

#include <stddef.h>

/* The modes of pp_config.compress and ppserver --compress. */
enum {
    PP_ZP_NEVER = -1,  /* never compress job payloads */
    PP_ZP_AUTO = 0,    /* when the model says it pays (the default) */
    PP_ZP_ALWAYS = 1,  /* whenever the sample shrinks by a third */
};

/* "auto", "always", "never" (NULL = auto) to a PP_ZP_* mode; -2 if none. */
int pp_zpolicy_parse(const char *s);

/* Compressing must be this much faster than sending raw: estimates are
 * rough, and a wrong "compress" costs CPU on both ends. */
#define PP_ZP_MARGIN 1.25

/* Before any measurement: deflate (input bytes/s) and inflate (output
 * bytes/s) at zlib level 1 on one core, conservatively low. */
#define PP_ZP_DEFLATE_DEFAULT (150e6)
#define PP_ZP_INFLATE_DEFAULT (500e6)

/* One connection's estimates (zero-initialise; a pp_zpolicy of zeros is
 * valid and knows nothing yet). */
typedef struct pp_zpolicy {
    double deflate_bps;   /* moving estimate, input bytes per second; 0 = none */
    double inflate_bps;   /* moving estimate, output bytes per second; 0 = none */
} pp_zpolicy;

/* What one decision weighs (pure input: testable alone). */
typedef struct pp_zp_input {
    int mode;             /* PP_ZP_* */
    size_t n;             /* payload bytes */
    double ratio;         /* sample's compressed / raw size (0..1+) */
    double link_bps;      /* measured link rate; 0 = not measured (fast) */
    double deflate_bps;   /* 0 = PP_ZP_DEFLATE_DEFAULT */
    double inflate_bps;   /* 0 = PP_ZP_INFLATE_DEFAULT */
} pp_zp_input;

/* 1: compress, 0: send raw.  NEVER: 0.  ALWAYS: 1 when the ratio is at
 * most 2/3 (a sample that shrinks by a third).  AUTO: also needs a
 * measured link on which deflate + send compressed + peer's inflate beats
 * send raw by PP_ZP_MARGIN; an unmeasured link is taken as fast (loopback
 * or a LAN that never filled the socket), so raw. */
int pp_zp_decide(const pp_zp_input *in);

/* Folds one measured deflate (n input bytes in secs) or inflate (n output
 * bytes in secs) into the estimates.  Runs shorter than can be timed are
 * ignored. */
void pp_zpolicy_note_deflate(pp_zpolicy *zp, size_t n, double secs);
void pp_zpolicy_note_inflate(pp_zpolicy *zp, size_t n, double secs);

/* For a body of at least PP_ZIP_MIN bytes: a 16 KiB sample from its
 * middle is deflated and timed (the estimate learns from it), the decision
 * taken on its ratio with this link_bps, and when it says so head ‖ body
 * is compressed (pp_zip_stream, timed too).  AUTO on a link where even
 * data that shrank to nothing would not pay skips the sample: on fast
 * links a large payload costs nothing more than its send.  1 with *out
 * malloc'd (the wire payload), 0 to send raw, -1 on failure (send raw). */
int pp_zpolicy_maybe(pp_zpolicy *zp, int mode, double link_bps, const void *head, size_t hlen,
                     const void *body, size_t blen, void **out, size_t *outlen);

/* pp_zip_inflate, timed into the estimates. */
int pp_zpolicy_inflate(pp_zpolicy *zp, const void *in, size_t n, size_t max, void **out,
                       size_t *outlen, char *err);

/* pp_zip_inflate_into, timed into the estimates. */
int pp_zpolicy_inflate_into(pp_zpolicy *zp, const void *in, size_t n, void *dst, size_t declared,
                            char *err);

#endif
