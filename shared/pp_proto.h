/* SPDX-License-Identifier: MIT */
/* pp_proto.h -- pp's messages: the type numbers, the payload of each type,
 * an encoder and a decoder for every one, and the protocol's limits.  Pure:
 * no I/O; frames are read and written by pp_conn, their headers coded by
 * pp_wire.
 *
 * Payload fields are big-endian; strings are str16 (u16 length, bytes, no
 * NUL).  Type numbers are pinned.
 *
 * Worker pipes (the pool <-> ppworker):
 *   1  WHELLO    worker -> pool   u32 pid, u32 frame version
 *   2  TASKDEF   pool -> worker   u32 task id, str16 module path, str16 symbol
 *   3  JOB       pool -> worker   id = the pool's sequence; u32 task id, then
 *                                 the argument bytes (a batch argument with
 *                                 PP_WIRE_F_BATCH, below)
 *   4  RESULT    worker -> pool   id as sent; u8 pp_status, 7 zero bytes, u64
 *                                 run time (ns), then the result or the error
 *                                 text (PP_RESULT_HDR bytes in: the result
 *                                 stays 16-byte aligned where it was received).
 *                                 For a batch JOB: PP_DONE and a batch result
 *                                 (below), or the batch's own failure
 *                                 (PP_CRASHED, PP_TIMEOUT, PP_ELOAD, PP_FAILED
 *                                 for a malformed batch) and its error text.
 * Shared memory (pp_shm.h; the worker's fd PP_WORKER_FD_SHM carries fds):
 *   5  WSHM     pool -> worker   id = a slot (< PP_SHM_SLOTS); u64 size: the
 *                                 buffer whose fd waits on the socket (its
 *                                 message: the slot, u32) is now that slot
 *                                 (mapped whole when a job first uses it,
 *                                 read-only if it is the program's); 0 = the
 *                                 slot is emptied
 *   6  SJOB     pool -> worker   id as JOB's; u32 task id, u32 argument slot
 *                                 (PP_SHM_NONE: the argument follows inline),
 *                                 u32 result slot (PP_SHM_NONE: none), u32 0,
 *                                 u64 argument offset, u64 argument length.
 *                                 Answered by a RESULT, or by an SRESULT
 *                                 when the result is in the result slot
 *   7  SRESULT  worker -> pool   id as sent; a RESULT head (PP_DONE), u32 the
 *                                 result slot, u32 0, u64 the result's length,
 *                                 u64 the slot's size now (the worker may
 *                                 have grown it; a NUL follows the result)
 *
 * TCP, client <-> ppserver (protocol version 2).  The handshake first
 * (pre-authentication frames are capped at PP_PREAUTH_MAX bytes;
 * pp_handshake.h has its steps):
 *  16  HELLO      C->S  u8 ver_min, u8 ver_max, Nc[32]
 *  17  CHALLENGE  S->C  u8 ver, Ns[32], u32 max frame, u32 ncpus
 *  18  PROOF      C->S  the client's MAC[32]
 *  19  ACCEPT     S->C  the server's MAC[32]; the client checks it before any job
 *  20  ERROR      either  u16 code, str16 message; the sender then closes
 * Then:
 *  21  RJOB       C->S  id = the dispatch's id; module SHA-256[32], str16
 *                       symbol, u32 timeout (ms, 0 = none), i32 priority
 *                       (higher runs first among the client's queued jobs),
 *                       then the argument (a batch argument with
 *                       PP_WIRE_F_BATCH)
 *  22  RRESULT    S->C  id as sent; as RESULT above.  PP_WIRE_F_BATCH set
 *                       exactly when the data is a batch result (a batch
 *                       RJOB that ended PP_DONE); any other status of a
 *                       batch is the whole batch's, with its error text.
 *  23  NEED       S->C  module SHA-256[32]: send it (once per hash)
 *  24  MODULE     C->S  module SHA-256[32], then the module file as a pp_zip
 *                       payload (always compressed)
 *  25  NCPUS      S->C  u32 workers now offered
 *  26  PING       either  id = a token (microseconds); PONG echoes it.  Any
 *  27  PONG               frame proves liveness.
 *  28  BYE        S->C  str16 reason: the server stops; jobs in flight are
 *                       not run, the client sends them elsewhere.
 *  29  CANCEL     C->S  id = an RJOB's id; empty payload.  Queued or waiting
 *                       for its module: dropped, its RRESULT is PP_CANCELLED;
 *                       running: its worker is killed and replaced, the
 *                       RRESULT is PP_CANCELLED; already answered or
 *                       unknown: ignored.  Every RJOB gets one RRESULT.
 *  30  TAGS       S->C  u8 count (at most PP_TAGS_MAX), then per tag u8 len
 *                       (1..PP_TAG_MAX) and its bytes (A-Z a-z 0-9 _ . -),
 *                       no tag twice: the node's tags (ppserver --tag).
 *                       Sent right after ACCEPT -- to authenticated clients
 *                       only -- and only by a node that has tags, so an
 *                       untagged node talks to any client of protocol 2; a
 *                       client without TAGS closes a tagged node's
 *                       connection (unknown frame type 30).
 *  31  STATUS     C->S  empty payload: the node's status, please.  Only an
 *                       authenticated client may ask (before ACCEPT it is
 *                       an unexpected frame: the connection is closed).
 *  32  STATREPLY  S->C  the status as text, at most PP_STATUS_REPLY_MAX
 *                       bytes: lines "kind key=value ...", the first
 *                       "pp-status 1", the last "end" (ppserver/status.c
 *                       writes it, ppstat parses it).
 * After authentication RJOB and RRESULT payloads may be zlib-compressed
 * (PP_WIRE_F_ZLIB, pp_zip.h): the whole payload, head included.
 *
 * Batches: several items of one task in one job (PP_WIRE_F_BATCH, on JOB
 * and RJOB, and on the RESULT or RRESULT answering a batch; on any other
 * frame it is a protocol error).  The
 * worker runs the task once per item, in order.
 *   argument  u32 count (at most PP_BATCH_MAX), then per item u32 len and
 *             the item's bytes
 *   result    u32 count, then per item u8 pp_status (PP_DONE or PP_FAILED),
 *             3 zero bytes, u32 len and the item's result or error text
 * Nothing may follow the last item.  A crash, a timeout or an exit during
 * an item ends the whole batch (PP_CRASHED, PP_TIMEOUT): no item's result
 * is known then. */
#ifndef PP_PROTO_H
#define PP_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "pp_auth.h"
#include "pp_buf.h"
#include "pp_tags.h"
#include "pp_wire.h"

/* Frame types. */
#define PP_T_WHELLO 1
#define PP_T_TASKDEF 2
#define PP_T_JOB 3
#define PP_T_RESULT 4
#define PP_T_WSHM 5
#define PP_T_SJOB 6
#define PP_T_SRESULT 7
#define PP_T_MAX 7          /* highest type on worker pipes */
#define PP_T_HELLO 16
#define PP_T_CHALLENGE 17
#define PP_T_PROOF 18
#define PP_T_ACCEPT 19
#define PP_T_ERROR 20
#define PP_T_RJOB 21
#define PP_T_RRESULT 22
#define PP_T_NEED 23
#define PP_T_MODULE 24
#define PP_T_NCPUS 25
#define PP_T_PING 26
#define PP_T_PONG 27
#define PP_T_BYE 28
#define PP_T_CANCEL 29
#define PP_T_TAGS 30
#define PP_T_STATUS 31
#define PP_T_STATREPLY 32
#define PP_T_NET_MAX 32     /* highest type on TCP */
/* Largest STATREPLY payload (a node lists at most 1024 clients and 1024
 * workers in it; its counts cover all). */
#define PP_STATUS_REPLY_MAX (1u << 20)

/* ERROR codes. */
#define PP_E_AUTH 1         /* authentication failed */
#define PP_E_VERSION 2      /* no common protocol version */
#define PP_E_PROTOCOL 3     /* malformed or unexpected frame */
#define PP_E_LIMIT 4        /* a limit was exceeded */
#define PP_E_BUSY 5         /* too many connections */
#define PP_E_TLS 6          /* TLS on one side, plaintext on the other */

/* Limits and constants, each defined here only. */
#define PP_PROTO_MIN 2             /* protocol versions this build speaks */
#define PP_PROTO_MAX 2
#define PP_PREAUTH_MAX 4096        /* largest frame before authentication */
#define PP_RESULT_HDR 16           /* status and run time before a result */
#define PP_MODULE_MAX (256u << 20) /* largest task module, inflated */
#define PP_SYMBOL_MAX 255          /* longest task symbol name */
#define PP_NCPUS_MAX 65536         /* most CPUs a node may announce */
#define PP_ERRMSG_MAX 511          /* longest ERROR and BYE text */
#define PP_RJOB_HEAD_MAX (PP_SHA256_LEN + 2 + PP_SYMBOL_MAX + 4 + 4)
#define PP_BATCH_MAX 65536         /* most items in one batch */
#define PP_BATCH_ITEM_HDR 8        /* before each item of a batch result */
#define PP_TAGS_PAYLOAD_MAX (1 + PP_TAGS_MAX * (1 + PP_TAG_MAX)) /* largest TAGS */

/* ---- worker pipes ---- */

typedef struct pp_msg_whello {
    uint32_t pid;
    uint32_t version;
} pp_msg_whello;

/* The 8-byte WHELLO payload into out; returns 8. */
size_t pp_proto_whello(uint8_t out[8], uint32_t pid);
int pp_proto_whello_decode(const pp_frame *f, pp_msg_whello *m);

typedef struct pp_msg_taskdef {
    uint32_t id;
    char module[4096];
    char symbol[PP_SYMBOL_MAX + 1];
} pp_msg_taskdef;

/* TASKDEF into b (emptied first).  0, or -1 (too long, memory). */
int pp_proto_taskdef(pp_buf *b, uint32_t id, const char *module, const char *symbol);
int pp_proto_taskdef_decode(const pp_frame *f, pp_msg_taskdef *m);

/* JOB: a 4-byte head (the task id) before the argument bytes. */
#define PP_JOB_HEAD 4
void pp_proto_job_head(uint8_t out[PP_JOB_HEAD], uint32_t task);
typedef struct pp_msg_job {
    uint32_t task;
    const uint8_t *arg;     /* into the frame's payload */
    size_t len;
} pp_msg_job;
int pp_proto_job_decode(const pp_frame *f, pp_msg_job *m);

/* SJOB, SRESULT and WSHM. */
#define PP_SHM_NONE 0xFFFFFFFFu
#define PP_SJOB_HEAD 32
typedef struct pp_msg_sjob {
    uint32_t task, aslot, rslot;
    uint64_t aoff, alen;
    const uint8_t *inl;     /* the inline argument (aslot PP_SHM_NONE), or NULL */
} pp_msg_sjob;
void pp_proto_sjob(uint8_t out[PP_SJOB_HEAD], const pp_msg_sjob *m);
/* 0, or -1 (short, bad padding, inline bytes that do not match). */
int pp_proto_sjob_decode(const pp_frame *f, pp_msg_sjob *m);
#define PP_SRESULT_LEN 40
typedef struct pp_msg_sresult {
    uint64_t run_ns;
    uint32_t rslot;
    uint64_t len, size;
} pp_msg_sresult;
void pp_proto_sresult(uint8_t out[PP_SRESULT_LEN], const pp_msg_sresult *m);
/* 0, or -1 (wrong length, a status other than PP_DONE, bad padding, a
 * result and its NUL that do not fit the size). */
int pp_proto_sresult_decode(const pp_frame *f, pp_msg_sresult *m);

/* RESULT and RRESULT: the 16-byte head before the data. */
void pp_proto_result_head(uint8_t out[PP_RESULT_HDR], int status, uint64_t run_ns);
typedef struct pp_msg_result {
    int status;
    uint64_t run_ns;
    const uint8_t *data;    /* into the payload given */
    size_t len;
} pp_msg_result;
/* Decodes n payload bytes; `allowed` is a mask of the statuses the sender
 * may report (1u << status).  0, or -1 (short, bad padding, a status not
 * allowed). */
int pp_proto_result_decode(const uint8_t *p, size_t n, unsigned allowed, pp_msg_result *m);

/* ---- TCP ---- */

#define PP_HELLO_LEN (2 + PP_NONCE_LEN)
#define PP_CHALLENGE_LEN (1 + PP_NONCE_LEN + 8)

typedef struct pp_msg_hello {
    uint8_t ver_min, ver_max;
    uint8_t nonce[PP_NONCE_LEN];
} pp_msg_hello;
void pp_proto_hello(uint8_t out[PP_HELLO_LEN], const pp_msg_hello *m);
int pp_proto_hello_decode(const pp_frame *f, pp_msg_hello *m);

typedef struct pp_msg_challenge {
    uint8_t ver;
    uint8_t nonce[PP_NONCE_LEN];
    uint32_t max_frame;
    uint32_t ncpus;
} pp_msg_challenge;
void pp_proto_challenge(uint8_t out[PP_CHALLENGE_LEN], const pp_msg_challenge *m);
/* Also refuses a version outside PP_PROTO_MIN..MAX and ncpus above
 * PP_NCPUS_MAX. */
int pp_proto_challenge_decode(const pp_frame *f, pp_msg_challenge *m);

typedef struct pp_msg_error {
    uint16_t code;
    char msg[PP_ERRMSG_MAX + 1];
} pp_msg_error;
/* ERROR into b (emptied first; a longer message is cut).  0 or -1. */
int pp_proto_error(pp_buf *b, uint16_t code, const char *msg);
int pp_proto_error_decode(const pp_frame *f, pp_msg_error *m);

typedef struct pp_msg_rjob {
    const uint8_t *hash;    /* PP_SHA256_LEN bytes, into the payload */
    char symbol[PP_SYMBOL_MAX + 1];
    uint32_t timeout_ms;
    int32_t priority;
    const uint8_t *arg;     /* into the payload */
    size_t len;
    size_t arg_off;         /* where arg starts in the payload */
} pp_msg_rjob;
/* The RJOB head (before the argument) into out; returns its length, or 0
 * when the symbol is empty or longer than PP_SYMBOL_MAX.  timeout in
 * seconds (0 = none), sent in whole milliseconds (at least 1). */
size_t pp_proto_rjob_head(uint8_t out[PP_RJOB_HEAD_MAX], const uint8_t hash[PP_SHA256_LEN],
                          const char *symbol, double timeout, int32_t priority);
/* Decodes n payload bytes (inflated already, if they were compressed). */
int pp_proto_rjob_decode(const uint8_t *p, size_t n, pp_msg_rjob *m);

/* NEED: exactly a SHA-256.  0 or -1. */
int pp_proto_need_decode(const pp_frame *f, const uint8_t **hash);

typedef struct pp_msg_module {
    const uint8_t *hash;    /* into the payload */
    const uint8_t *zip;     /* the pp_zip payload */
    size_t ziplen;
} pp_msg_module;
int pp_proto_module_decode(const pp_frame *f, pp_msg_module *m);

void pp_proto_ncpus(uint8_t out[4], uint32_t n);
/* At most PP_NCPUS_MAX.  0 or -1. */
int pp_proto_ncpus_decode(const pp_frame *f, uint32_t *n);

/* BYE into b (emptied first).  0 or -1. */
int pp_proto_bye(pp_buf *b, const char *reason);
int pp_proto_bye_decode(const pp_frame *f, char reason[PP_ERRMSG_MAX + 1]);

/* CANCEL: no payload (pp_conn_send(c, PP_T_CANCEL, 0, id, NULL, 0)); a
 * payload is malformed.  0 or -1. */
int pp_proto_cancel_decode(const pp_frame *f);

/* TAGS into b (emptied first).  0 or -1 (memory). */
int pp_proto_tags(pp_buf *b, const pp_tags *t);
/* Into *t (emptied first).  0, or -1 with the reason in err (PP_ERR_LEN
 * bytes): too long, a count or a length out of range, a tag not allowed
 * (shown escaped), a tag twice, bytes after the last tag. */
int pp_proto_tags_decode(const pp_frame *f, pp_tags *t, char *err);

/* The header flags a frame of this type may carry: PP_WIRE_F_ZLIB on RJOB
 * and RRESULT, PP_WIRE_F_BATCH on JOB, RESULT, RJOB and RRESULT, none on
 * the others.  (Whether zlib is expected yet, and whether a RESULT or
 * RRESULT answers a batch, is the receiver's business.) */
uint16_t pp_proto_flags_allowed(uint8_t type);

/* ---- batches (layouts above) ---- */

/* A batch argument: pp_proto_batch_begin() empties b and writes a count of
 * 0; each pp_proto_batch_add() appends an item and patches the count, so b
 * holds a whole batch after every call.  0, or -1 (PP_BATCH_MAX items
 * already, b's cap, no memory; b unchanged then). */
int pp_proto_batch_begin(pp_buf *b);
int pp_proto_batch_add(pp_buf *b, const void *item, size_t len);
/* The same for a batch result (after pp_proto_batch_begin()): an item's
 * status (PP_DONE or PP_FAILED, else -1) and its result or error text. */
int pp_proto_batch_add_result(pp_buf *b, int status, const void *data, size_t len);

/* What a batch holds: arguments (items without a status) or results. */
typedef enum pp_batch_kind { PP_BATCH_ARGS, PP_BATCH_RESULTS } pp_batch_kind;

typedef struct pp_batch_item {
    int status;             /* PP_DONE or PP_FAILED; PP_DONE for an argument */
    const uint8_t *data;    /* into the batch */
    size_t len;
} pp_batch_item;

/* Reads a batch in place, checking each length against the bytes left
 * before it is used: never reads past the n bytes given. */
typedef struct pp_batch_iter {
    const uint8_t *p;       /* the next item */
    size_t left;            /* bytes from p to the end */
    uint32_t count, done;   /* items in the batch, items read */
    pp_batch_kind kind;
    int bad;                /* malformed: every call fails */
} pp_batch_iter;

/* Starts reading n bytes at p.  0, or -1 when they cannot hold a batch: no
 * count, a count above PP_BATCH_MAX or larger than the bytes could hold. */
int pp_proto_batch_open(pp_batch_iter *it, const void *p, size_t n, pp_batch_kind kind);
/* The next item: 1 with it in *item, 0 after the last one (every byte
 * used), -1 when the batch is malformed (a length past the end, a status
 * not allowed, non-zero padding, bytes after the last item).  Once -1,
 * always -1. */
int pp_proto_batch_next(pp_batch_iter *it, pp_batch_item *item);
/* Checks a whole batch: 0 with its item count in *count (may be NULL), or
 * -1 when it is malformed. */
int pp_proto_batch_check(const void *p, size_t n, pp_batch_kind kind, uint32_t *count);

/* PING tokens: a time in microseconds, so that the PONG gives a round
 * trip.  The token for pp_now() time t, and the time a token stands for. */
uint64_t pp_proto_ping_token(double t);
double pp_proto_token_time(uint64_t token);

/* The name of a frame type ("RJOB", "type 99"); buf holds 16 bytes. */
const char *pp_proto_type_name(uint8_t type, char buf[16]);

#endif
