/* SPDX-License-Identifier: MIT */
/* fuzz_frames.c -- the frame decoder: pp_wire_reader fed the input in
 * chunks whose sizes the input's first byte chooses (so a header or body may
 * be split anywhere), each frame's payload then read with the bounded field
 * readers as the protocol's parsers do, and through the TAGS decoder.  Both limits are exercised: the one
 * before authentication (4 KiB) and a post-authentication one. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pp_common.h"
#include "pp_proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void read_fields(const pp_frame *f)
{
    pp_rd rd = pp_rd_make(f->payload, f->hdr.len);
    char s[256];
    (void)pp_rd_u8(&rd);
    (void)pp_rd_bytes(&rd, 32);
    pp_rd_str16(&rd, s, sizeof s);
    (void)pp_rd_u16(&rd);
    (void)pp_rd_u32(&rd);
    (void)pp_rd_u64(&rd);
    if (!rd.bad && rd.left)
        (void)pp_rd_bytes(&rd, rd.left);
    /* The node's tags: a decoder that takes what any peer sends. */
    pp_tags t;
    char err[PP_ERR_LEN];
    if (pp_proto_tags_decode(f, &t, err) == 0 && t.n > PP_TAGS_MAX)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    unsigned mode = data[0];
    data++;
    size--;
    uint32_t max_len = (mode & 0x80) ? PP_PREAUTH_MAX : 1u << 20;
    uint8_t max_type = (mode & 0x40) ? PP_T_MAX : PP_T_NET_MAX;
    size_t chunk = (mode & 0x3F) + 1; /* 1..64 bytes per feed */
    pp_wire_reader r;
    if (pp_wire_reader_init(&r, max_len, max_type) != 0)
        return 0;
    size_t off = 0;
    int dead = 0;
    while (off < size && !dead) {
        size_t k = PP_MIN(chunk, size - off);
        if (pp_wire_reader_feed(&r, data + off, k) != 0)
            break;
        off += k;
        pp_frame f;
        int rc;
        while ((rc = pp_wire_reader_next(&r, &f)) == 1) {
            if (f.hdr.len > max_len || f.hdr.type > max_type)
                abort(); /* the reader let through what it must refuse */
            read_fields(&f);
            if (f.hdr.id & 1)
                free(pp_wire_reader_take(&r, &f));
        }
        dead = rc < 0;
    }
    pp_wire_reader_free(&r);
    return 0;
}
