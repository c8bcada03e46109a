/* SPDX-License-Identifier: MIT */
/* pp_wire.h -- frames: the unit of every pp conversation, on TCP and on the
 * workers' named pipes alike.
 *
 * Header (20 bytes, big-endian):
 *
 *   0       2       3       4               6               8
 *   +-------+-------+-------+-------+-------+-------+-------+
 *   | magic "PP"    | ver   | type  | flags         | zero          |
 *   +-------+-------+-------+-------+-------+-------+-------+
 *   | job id (u64)                                  | payload length (u32) |
 *   8                                               16             20
 *
 * then `payload length` bytes.  ver is PP_WIRE_VERSION.  flags bit 0 means the
 * payload is zlib-compressed (only after authentication), bit 1 that it is a
 * batch of items (pp_proto.h says on which types each may appear).  A reader
 * refuses a bad magic, another version, an unknown type, unknown flag bits, a
 * non-zero reserved field and a length above its maximum, before allocating
 * anything.
 *
 * The messages -- type numbers and payloads -- are pp_proto.h's; this file
 * frames them and gives the field codecs their decoders use. */
#ifndef PP_WIRE_H
#define PP_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "pp_buf.h"
#include "pp_common.h"

#define PP_WIRE_MAGIC0 'P'
#define PP_WIRE_MAGIC1 'P'
#define PP_WIRE_VERSION 1
#define PP_WIRE_HDR 20

#define PP_WIRE_F_ZLIB 0x0001u
#define PP_WIRE_F_BATCH 0x0002u
#define PP_WIRE_F_ALL 0x0003u

/* A decoded header. */
typedef struct pp_frame_hdr {
    uint8_t type;
    uint16_t flags;
    uint64_t id;
    uint32_t len;
} pp_frame_hdr;

/* A frame handed out by the reader.  `payload` is valid until the next call
 * to the reader, unless taken with pp_wire_reader_take(). */
typedef struct pp_frame {
    pp_frame_hdr hdr;
    const uint8_t *payload;
} pp_frame;

/* Writes the 20-byte header for a frame. */
void pp_wire_encode_hdr(uint8_t out[PP_WIRE_HDR], uint8_t type, uint16_t flags, uint64_t id,
                        uint32_t len);

/* Checks and decodes a header.  Returns 0, or -1 with the reason in err. */
int pp_wire_decode_hdr(const uint8_t in[PP_WIRE_HDR], uint32_t max_len, uint8_t max_type,
                       pp_frame_hdr *out, char *err);

/* Incremental frame reader: feed it bytes (or read straight into its space),
 * then take frames out.  Bodies larger than PP_WIRE_BIG get their own exact
 * allocation, which the caller may take without a copy. */
#define PP_WIRE_BIG (64 * 1024)

typedef struct pp_wire_reader {
    uint8_t *buf;          /* staging: headers and small frames */
    size_t cap, start, end;
    uint32_t max_len;      /* largest payload accepted */
    uint8_t max_type;
    pp_frame_hdr big_hdr;  /* large body in progress when big != NULL */
    uint8_t *big;
    struct pp_shm *big_shm;      /* the shared buffer big lies in, or NULL (malloc) */
    struct pp_shm_cache *shm;    /* where large plain bodies go; NULL: malloc */
    uint32_t shm_min;            /* from this size on (else malloc) */
    size_t big_have;
    int big_ready;         /* the last frame returned was `big` */
    char errstr[PP_ERR_LEN];
} pp_wire_reader;

/* Returns 0, or -1 out of memory. */
int pp_wire_reader_init(pp_wire_reader *r, uint32_t max_len, uint8_t max_type);
void pp_wire_reader_free(pp_wire_reader *r);

/* Where to put incoming bytes: at most *n of them.  NULL when out of memory. */
void *pp_wire_reader_space(pp_wire_reader *r, size_t *n);
/* Records that n bytes were written to the space. */
void pp_wire_reader_commit(pp_wire_reader *r, size_t n);
/* Copies bytes in (tests, and callers holding bytes already).  0 or -1. */
int pp_wire_reader_feed(pp_wire_reader *r, const void *data, size_t n);

/* Returns 1 with a frame, 0 when more bytes are needed, -1 on a malformed
 * stream (r->errstr says why; the reader is then unusable). */
int pp_wire_reader_next(pp_wire_reader *r, pp_frame *f);

/* The payload of the frame just returned, as a malloc'd block the caller
 * owns (NUL-terminated, len bytes).  Large payloads move without a copy.
 * NULL out of memory. */
void *pp_wire_reader_take(pp_wire_reader *r, const pp_frame *f);

/* Bodies of uncompressed frames of at least `min` bytes (and above
 * PP_WIRE_BIG) go into shared buffers of c from now on (the node's jobs:
 * its workers read them there), NULL: malloc. */
void pp_wire_reader_use_shm(pp_wire_reader *r, struct pp_shm_cache *c, uint32_t min);

/* The shared buffer holding the payload of the frame just returned, its
 * reference now the caller's (the payload at its start, a NUL after it),
 * or NULL when the payload is not in one. */
struct pp_shm *pp_wire_reader_take_shm(pp_wire_reader *r, const pp_frame *f);

/* Bytes buffered but not yet returned as frames (for deadlines). */
size_t pp_wire_reader_pending(const pp_wire_reader *r);

/* Bounded field reader over a payload: any overrun sets `bad` and returns
 * zeros, so a parser checks once at the end. */
typedef struct pp_rd {
    const uint8_t *p;
    size_t left;
    int bad;
} pp_rd;

static inline pp_rd pp_rd_make(const void *p, size_t n)
{
    pp_rd r = {(const uint8_t *)p, n, 0};
    return r;
}
uint8_t pp_rd_u8(pp_rd *r);
uint16_t pp_rd_u16(pp_rd *r);
uint32_t pp_rd_u32(pp_rd *r);
uint64_t pp_rd_u64(pp_rd *r);
/* n bytes in place, or NULL (and bad) if fewer are left. */
const uint8_t *pp_rd_bytes(pp_rd *r, size_t n);
/* A str16 (u16 length, bytes) copied into out as a C string; bad when it does
 * not fit in outlen-1 bytes or contains a NUL. */
void pp_rd_str16(pp_rd *r, char *out, size_t outlen);

/* Field writers append to a pp_buf; they return 0 or -1 (cap, memory). */
int pp_wr_u8(pp_buf *b, uint8_t v);
int pp_wr_u16(pp_buf *b, uint16_t v);
int pp_wr_u32(pp_buf *b, uint32_t v);
int pp_wr_u64(pp_buf *b, uint64_t v);
int pp_wr_str16(pp_buf *b, const char *s);

#endif
