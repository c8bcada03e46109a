/* SPDX-License-Identifier: MIT */
/* pp_proto.c -- encoders and decoders of pp's messages (layouts in
 * pp_proto.h).  Every decoder checks the whole payload: a field missing, a
 * byte too many or a value out of range is -1, never a partial message. */
#include "pp_proto.h"

#include <stdio.h>
#include <string.h>

#include "pp_common.h"

/* ---- worker pipes ---- */

size_t pp_proto_whello(uint8_t out[8], uint32_t pid)
{
    pp_store32(out, pid);
    pp_store32(out + 4, PP_WIRE_VERSION);
    return 8;
}

int pp_proto_whello_decode(const pp_frame *f, pp_msg_whello *m)
{
    pp_rd rd = pp_rd_make(f->payload, f->hdr.len);
    m->pid = pp_rd_u32(&rd);
    m->version = pp_rd_u32(&rd);
    return rd.bad || rd.left || m->version != PP_WIRE_VERSION ? -1 : 0;
}

int pp_proto_taskdef(pp_buf *b, uint32_t id, const char *module, const char *symbol)
{
    b->len = 0;
    if (strlen(module) >= sizeof ((pp_msg_taskdef *)0)->module || strlen(symbol) > PP_SYMBOL_MAX)
        return -1;
    return pp_wr_u32(b, id) || pp_wr_str16(b, module) || pp_wr_str16(b, symbol) ? -1 : 0;
}

int pp_proto_taskdef_decode(const pp_frame *f, pp_msg_taskdef *m)
{
    pp_rd rd = pp_rd_make(f->payload, f->hdr.len);
    m->id = pp_rd_u32(&rd);
    pp_rd_str16(&rd, m->module, sizeof m->module);
    pp_rd_str16(&rd, m->symbol, sizeof m->symbol);
    return rd.bad || rd.left || !m->module[0] || !m->symbol[0] ? -1 : 0;
}

void pp_proto_job_head(uint8_t out[PP_JOB_HEAD], uint32_t task)
{
    pp_store32(out, task);
}

int pp_proto_job_decode(const pp_frame *f, pp_msg_job *m)
{
    if (f->hdr.len < PP_JOB_HEAD)
        return -1;
    m->task = pp_load32(f->payload);
    m->arg = f->payload + PP_JOB_HEAD;
    m->len = f->hdr.len - PP_JOB_HEAD;
    return 0;
}

void pp_proto_sjob(uint8_t out[PP_SJOB_HEAD], const pp_msg_sjob *m)
{
    pp_store32(out, m->task);
    pp_store32(out + 4, m->aslot);
    pp_store32(out + 8, m->rslot);
    pp_store32(out + 12, 0);
    pp_store64(out + 16, m->aoff);
    pp_store64(out + 24, m->alen);
}

int pp_proto_sjob_decode(const pp_frame *f, pp_msg_sjob *m)
{
    if (f->hdr.len < PP_SJOB_HEAD || pp_load32(f->payload + 12) != 0)
        return -1;
    const uint8_t *p = f->payload;
    m->task = pp_load32(p);
    m->aslot = pp_load32(p + 4);
    m->rslot = pp_load32(p + 8);
    m->aoff = pp_load64(p + 16);
    m->alen = pp_load64(p + 24);
    size_t rest = f->hdr.len - PP_SJOB_HEAD;
    if (m->aslot == PP_SHM_NONE) {
        if (m->aoff != 0 || m->alen != rest)
            return -1;
        m->inl = p + PP_SJOB_HEAD;
    } else {
        if (rest != 0)
            return -1;
        m->inl = NULL;
    }
    return 0;
}

void pp_proto_sresult(uint8_t out[PP_SRESULT_LEN], const pp_msg_sresult *m)
{
    pp_proto_result_head(out, PP_DONE, m->run_ns);
    pp_store32(out + PP_RESULT_HDR, m->rslot);
    pp_store32(out + PP_RESULT_HDR + 4, 0);
    pp_store64(out + PP_RESULT_HDR + 8, m->len);
    pp_store64(out + PP_RESULT_HDR + 16, m->size);
}

int pp_proto_sresult_decode(const pp_frame *f, pp_msg_sresult *m)
{
    pp_msg_result r;
    if (f->hdr.len != PP_SRESULT_LEN ||
        pp_proto_result_decode(f->payload, PP_RESULT_HDR, 1u << PP_DONE, &r) != 0)
        return -1;
    const uint8_t *p = f->payload + PP_RESULT_HDR;
    m->run_ns = r.run_ns;
    m->rslot = pp_load32(p);
    m->len = pp_load64(p + 8);
    m->size = pp_load64(p + 16);
    if (pp_load32(p + 4) != 0 || m->len >= m->size)
        return -1;
    return 0;
}

void pp_proto_result_head(uint8_t out[PP_RESULT_HDR], int status, uint64_t run_ns)
{
    memset(out, 0, PP_RESULT_HDR);
    out[0] = (uint8_t)status;
    pp_store64(out + 8, run_ns);
}

int pp_proto_result_decode(const uint8_t *p, size_t n, unsigned allowed, pp_msg_result *m)
{
    if (n < PP_RESULT_HDR)
        return -1;
    for (int i = 1; i < 8; i++)
        if (p[i])
            return -1;
    m->status = p[0];
    if (m->status >= 32 || !(allowed & (1u << m->status)))
        return -1;
    m->run_ns = pp_load64(p + 8);
    m->data = p + PP_RESULT_HDR;
    m->len = n - PP_RESULT_HDR;
    return 0;
}

/* ---- TCP ---- */

void pp_proto_hello(uint8_t out[PP_HELLO_LEN], const pp_msg_hello *m)
{
    out[0] = m->ver_min;
    out[1] = m->ver_max;
    memcpy(out + 2, m->nonce, PP_NONCE_LEN);
}

int pp_proto_hello_decode(const pp_frame *f, pp_msg_hello *m)
{
    pp_rd rd = pp_rd_make(f->payload, f->hdr.len);
    m->ver_min = pp_rd_u8(&rd);
    m->ver_max = pp_rd_u8(&rd);
    const uint8_t *nc = pp_rd_bytes(&rd, PP_NONCE_LEN);
    if (rd.bad || rd.left)
        return -1;
    memcpy(m->nonce, nc, PP_NONCE_LEN);
    return 0;
}

void pp_proto_challenge(uint8_t out[PP_CHALLENGE_LEN], const pp_msg_challenge *m)
{
    out[0] = m->ver;
    memcpy(out + 1, m->nonce, PP_NONCE_LEN);
    pp_store32(out + 1 + PP_NONCE_LEN, m->max_frame);
    pp_store32(out + 5 + PP_NONCE_LEN, m->ncpus);
}

int pp_proto_challenge_decode(const pp_frame *f, pp_msg_challenge *m)
{
    pp_rd rd = pp_rd_make(f->payload, f->hdr.len);
    m->ver = pp_rd_u8(&rd);
    const uint8_t *ns = pp_rd_bytes(&rd, PP_NONCE_LEN);
    m->max_frame = pp_rd_u32(&rd);
    m->ncpus = pp_rd_u32(&rd);
    if (rd.bad || rd.left || m->ver < PP_PROTO_MIN || m->ver > PP_PROTO_MAX ||
        m->ncpus > PP_NCPUS_MAX)
        return -1;
    memcpy(m->nonce, ns, PP_NONCE_LEN);
    return 0;
}

int pp_proto_error(pp_buf *b, uint16_t code, const char *msg)
{
    char m[PP_ERRMSG_MAX + 1];
    snprintf(m, sizeof m, "%s", msg);
    b->len = 0;
    return pp_wr_u16(b, code) || pp_wr_str16(b, m) ? -1 : 0;
}

int pp_proto_error_decode(const pp_frame *f, pp_msg_error *m)
{
    pp_rd rd = pp_rd_make(f->payload, f->hdr.len);
    m->code = pp_rd_u16(&rd);
    pp_rd_str16(&rd, m->msg, sizeof m->msg);
    return rd.bad || rd.left ? -1 : 0;
}

/* An i32 as sent (two's complement), and back, without relying on how C
 * converts an out-of-range unsigned value. */
static uint32_t from_i32(int32_t v)
{
    return v >= 0 ? (uint32_t)v : ~(uint32_t)(-(v + 1));
}

static int32_t to_i32(uint32_t v)
{
    return v <= INT32_MAX ? (int32_t)v : -(int32_t)(~v) - 1;
}

size_t pp_proto_rjob_head(uint8_t out[PP_RJOB_HEAD_MAX], const uint8_t hash[PP_SHA256_LEN],
                          const char *symbol, double timeout, int32_t priority)
{
    size_t slen = strlen(symbol);
    if (!slen || slen > PP_SYMBOL_MAX)
        return 0;
    memcpy(out, hash, PP_SHA256_LEN);
    pp_store16(out + PP_SHA256_LEN, (uint16_t)slen);
    memcpy(out + PP_SHA256_LEN + 2, symbol, slen);
    double ms = timeout * 1000.0;
    pp_store32(out + PP_SHA256_LEN + 2 + slen,
               ms <= 0 ? 0 : ms >= 4e9 ? 0xFFFFFFFFu : (uint32_t)(ms < 1 ? 1 : ms));
    pp_store32(out + PP_SHA256_LEN + 2 + slen + 4, from_i32(priority));
    return PP_SHA256_LEN + 2 + slen + 8;
}

int pp_proto_rjob_decode(const uint8_t *p, size_t n, pp_msg_rjob *m)
{
    pp_rd rd = pp_rd_make(p, n);
    m->hash = pp_rd_bytes(&rd, PP_SHA256_LEN);
    pp_rd_str16(&rd, m->symbol, sizeof m->symbol);
    m->timeout_ms = pp_rd_u32(&rd);
    m->priority = to_i32(pp_rd_u32(&rd));
    if (rd.bad || !m->symbol[0])
        return -1;
    m->arg_off = n - rd.left;
    m->arg = p + m->arg_off;
    m->len = rd.left;
    return 0;
}

int pp_proto_need_decode(const pp_frame *f, const uint8_t **hash)
{
    if (f->hdr.len != PP_SHA256_LEN)
        return -1;
    *hash = f->payload;
    return 0;
}

int pp_proto_module_decode(const pp_frame *f, pp_msg_module *m)
{
    if (f->hdr.len < PP_SHA256_LEN)
        return -1;
    m->hash = f->payload;
    m->zip = f->payload + PP_SHA256_LEN;
    m->ziplen = f->hdr.len - PP_SHA256_LEN;
    return 0;
}

void pp_proto_ncpus(uint8_t out[4], uint32_t n)
{
    pp_store32(out, n);
}

int pp_proto_ncpus_decode(const pp_frame *f, uint32_t *n)
{
    if (f->hdr.len != 4)
        return -1;
    *n = pp_load32(f->payload);
    return *n > PP_NCPUS_MAX ? -1 : 0;
}

int pp_proto_bye(pp_buf *b, const char *reason)
{
    char m[PP_ERRMSG_MAX + 1];
    snprintf(m, sizeof m, "%s", reason);
    b->len = 0;
    return pp_wr_str16(b, m);
}

int pp_proto_bye_decode(const pp_frame *f, char reason[PP_ERRMSG_MAX + 1])
{
    pp_rd rd = pp_rd_make(f->payload, f->hdr.len);
    pp_rd_str16(&rd, reason, PP_ERRMSG_MAX + 1);
    return rd.bad || rd.left ? -1 : 0;
}

int pp_proto_cancel_decode(const pp_frame *f)
{
    return f->hdr.len == 0 ? 0 : -1;
}

int pp_proto_tags(pp_buf *b, const pp_tags *t)
{
    b->len = 0;
    if (t->n < 0 || t->n > PP_TAGS_MAX || pp_wr_u8(b, (uint8_t)t->n))
        return -1;
    for (int i = 0; i < t->n; i++) {
        size_t len = strlen(t->tag[i]);
        if (pp_wr_u8(b, (uint8_t)len) || pp_buf_append(b, t->tag[i], len))
            return -1;
    }
    return 0;
}

int pp_proto_tags_decode(const pp_frame *f, pp_tags *t, char *err)
{
    t->n = 0;
    if (f->hdr.len > PP_TAGS_PAYLOAD_MAX) {
        pp_seterr(err, "%u bytes of tags, more than %d tags of %d bytes take", f->hdr.len,
                  PP_TAGS_MAX, PP_TAG_MAX);
        return -1;
    }
    pp_rd rd = pp_rd_make(f->payload, f->hdr.len);
    unsigned count = pp_rd_u8(&rd);
    if (!rd.bad && count > PP_TAGS_MAX) {
        pp_seterr(err, "%u tags, more than %d", count, PP_TAGS_MAX);
        return -1;
    }
    for (unsigned i = 0; i < count && !rd.bad; i++) {
        size_t len = pp_rd_u8(&rd);
        const uint8_t *p = pp_rd_bytes(&rd, len);
        if (rd.bad)
            break;
        char why[PP_ERR_LEN];
        int r = pp_tags_add(t, (const char *)p, len, why);
        if (r != 0) {
            pp_seterr(err, "tag %u: %s", i + 1, r > 0 ? "the same tag twice" : why);
            return -1;
        }
    }
    if (rd.bad || rd.left) {
        pp_seterr(err, "%s", rd.bad ? "tags cut short" : "bytes after the last tag");
        return -1;
    }
    return 0;
}

uint16_t pp_proto_flags_allowed(uint8_t type)
{
    switch (type) {
    case PP_T_JOB:
    case PP_T_RESULT:
        return PP_WIRE_F_BATCH;
    case PP_T_RJOB:
    case PP_T_RRESULT:
        return PP_WIRE_F_ZLIB | PP_WIRE_F_BATCH;
    default:
        return 0;
    }
}

/* ---- batches ---- */

int pp_proto_batch_begin(pp_buf *b)
{
    b->len = 0;
    return pp_wr_u32(b, 0);
}

/* Appends an item's header and bytes, then counts it.  All or nothing. */
static int batch_append(pp_buf *b, const uint8_t *head, size_t hlen, const void *data,
                        size_t len)
{
    if (b->len < 4 || len > UINT32_MAX)
        return -1;
    uint32_t count = pp_load32(b->data);
    if (count >= PP_BATCH_MAX || pp_buf_reserve(b, hlen + len) != 0)
        return -1;
    if (pp_buf_append(b, head, hlen) != 0 || (len && pp_buf_append(b, data, len) != 0))
        return -1; /* cannot happen: reserved */
    pp_store32(b->data, count + 1);
    return 0;
}

int pp_proto_batch_add(pp_buf *b, const void *item, size_t len)
{
    uint8_t head[4];
    pp_store32(head, (uint32_t)len);
    return batch_append(b, head, sizeof head, item, len);
}

int pp_proto_batch_add_result(pp_buf *b, int status, const void *data, size_t len)
{
    if (status != PP_DONE && status != PP_FAILED)
        return -1;
    uint8_t head[PP_BATCH_ITEM_HDR] = {(uint8_t)status};
    pp_store32(head + 4, (uint32_t)len);
    return batch_append(b, head, sizeof head, data, len);
}

/* Bytes before each item's data. */
static size_t item_head(pp_batch_kind kind)
{
    return kind == PP_BATCH_RESULTS ? PP_BATCH_ITEM_HDR : 4;
}

int pp_proto_batch_open(pp_batch_iter *it, const void *p, size_t n, pp_batch_kind kind)
{
    *it = (pp_batch_iter){.kind = kind, .bad = 1};
    if (n < 4)
        return -1;
    it->bad = 0;
    it->count = pp_load32(p);
    it->p = (const uint8_t *)p + 4;
    it->left = n - 4;
    /* Every item takes its header at least: a count the bytes cannot hold
     * is refused before any item is read. */
    if (it->count > PP_BATCH_MAX || it->count > it->left / item_head(kind)) {
        it->bad = 1;
        return -1;
    }
    return 0;
}

/* Marks the iterator failed for good; returns -1. */
static int batch_bad(pp_batch_iter *it)
{
    it->bad = 1;
    return -1;
}

int pp_proto_batch_next(pp_batch_iter *it, pp_batch_item *item)
{
    if (it->bad)
        return -1;
    if (it->done == it->count)
        return it->left == 0 ? 0 : batch_bad(it); /* bytes after the last item */
    size_t hl = item_head(it->kind);
    if (it->left < hl)
        return batch_bad(it);
    const uint8_t *h = it->p;
    int status = PP_DONE;
    if (it->kind == PP_BATCH_RESULTS) {
        status = h[0];
        if ((status != PP_DONE && status != PP_FAILED) || h[1] || h[2] || h[3])
            return batch_bad(it);
    }
    uint32_t len = pp_load32(h + hl - 4);
    if (len > it->left - hl) /* past the end */
        return batch_bad(it);
    item->status = status;
    item->data = h + hl;
    item->len = len;
    it->p += hl + len;
    it->left -= hl + len;
    it->done++;
    return 1;
}

int pp_proto_batch_check(const void *p, size_t n, pp_batch_kind kind, uint32_t *count)
{
    pp_batch_iter it;
    pp_batch_item item;
    if (pp_proto_batch_open(&it, p, n, kind) != 0)
        return -1;
    int r;
    while ((r = pp_proto_batch_next(&it, &item)) == 1) {
    }
    if (r != 0)
        return -1;
    if (count)
        *count = it.count;
    return 0;
}

uint64_t pp_proto_ping_token(double t)
{
    return t > 0 ? (uint64_t)(t * 1e6) : 0;
}

double pp_proto_token_time(uint64_t token)
{
    return (double)token * 1e-6;
}

const char *pp_proto_type_name(uint8_t type, char buf[16])
{
    static const char *const names[] = {
        [PP_T_WHELLO] = "WHELLO", [PP_T_TASKDEF] = "TASKDEF", [PP_T_JOB] = "JOB",
        [PP_T_RESULT] = "RESULT", [PP_T_WSHM] = "WSHM", [PP_T_SJOB] = "SJOB",
        [PP_T_SRESULT] = "SRESULT", [PP_T_HELLO] = "HELLO", [PP_T_CHALLENGE] = "CHALLENGE",
        [PP_T_PROOF] = "PROOF", [PP_T_ACCEPT] = "ACCEPT", [PP_T_ERROR] = "ERROR",
        [PP_T_RJOB] = "RJOB", [PP_T_RRESULT] = "RRESULT", [PP_T_NEED] = "NEED",
        [PP_T_MODULE] = "MODULE", [PP_T_NCPUS] = "NCPUS", [PP_T_PING] = "PING",
        [PP_T_PONG] = "PONG", [PP_T_BYE] = "BYE", [PP_T_CANCEL] = "CANCEL",
        [PP_T_TAGS] = "TAGS",
        [PP_T_STATUS] = "STATUS",
        [PP_T_STATREPLY] = "STATREPLY",
    };
    if (type < PP_ARRAY_LEN(names) && names[type])
        return names[type];
    snprintf(buf, 16, "type %u", type);
    return buf;
}
