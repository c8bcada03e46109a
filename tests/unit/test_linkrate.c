/* SPDX-License-Identifier: MIT */
/* test_linkrate.c -- pp_conn_link_rate(), the link measurement compression
 * decides on (pp_zpolicy.h), over a socketpair whose far end this test
 * drives by hand at a bounded pace: nothing measured before a large
 * transfer or from small frames; output that drains through a slow reader
 * and a large frame that arrives slowly are both measured, at no more than
 * the pace allowed.  The pace is an upper bound the test sets, so the
 * checks hold however slow the machine is (they never assert on speed,
 * only that the measurement does not exceed what the peer let through). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cunit_main.h"
#include "pp_common.h"
#include "pp_conn.h"
#include "pp_loop.h"
#include "pp_proto.h"
#include "pp_wire.h"
#include "test_util.h"

#define MIB (1024u * 1024u)
#define PIECE (64 * 1024) /* the far end moves this much a step */
#define STEP_SECS 0.002   /* ...and then sleeps this long: <= 32 MB/s */
#define PACE (PIECE / STEP_SECS)

typedef struct rig {
    pp_loop *loop;
    pp_conn *c;
    int far;                 /* the other end of the socketpair */
    int frames;              /* frames c received */
    uint32_t last_len;
} rig;

static int on_frame(pp_conn *c, const pp_frame *f, void *data)
{
    (void)c;
    rig *r = data;
    r->frames++;
    r->last_len = f->hdr.len;
    return 0;
}

static void on_close(pp_conn *c, const char *why, void *data)
{
    (void)c;
    (void)why;
    (void)data;
}

static void rig_open(rig *r)
{
    memset(r, 0, sizeof *r);
    int s[2];
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, s) == 0);
    r->loop = pp_loop_new();
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->loop);
    static const pp_conn_cbs cbs = {.on_frame = on_frame, .on_close = on_close};
    r->c = pp_conn_new(r->loop, s[0], s[0], 16 * MIB, PP_T_MAX, NULL, &cbs, r);
    CU_ASSERT_PTR_NOT_NULL_FATAL(r->c);
    r->far = s[1];
}

static void rig_close(rig *r)
{
    pp_conn_free(r->c);
    pp_loop_run_once(r->loop, 0); /* the deferred free */
    pp_loop_free(r->loop);
    close(r->far);
}

/* Reads up to PIECE bytes at the far end: how many (0 when none). */
static size_t far_read(rig *r)
{
    static uint8_t sink[PIECE];
    ssize_t n = read(r->far, sink, sizeof sink);
    return n > 0 ? (size_t)n : 0;
}

static void test_nothing_measured_yet(void)
{
    rig r;
    rig_open(&r);
    CU_ASSERT_EQUAL(pp_conn_link_rate(NULL), 0);
    CU_ASSERT_EQUAL(pp_conn_link_rate(r.c), 0);
    /* 200 small frames (under 256 KiB in all), read as fast as they come:
     * too little to time, so nothing says the link is slow. */
    uint8_t small[1024] = {0};
    size_t got = 0, want = 200 * (PP_WIRE_HDR + sizeof small);
    for (int i = 0; i < 200; i++)
        CU_ASSERT_EQUAL(pp_conn_send(r.c, PP_T_RESULT, 0, (uint64_t)i, small, sizeof small), 0);
    double end = pp_now() + 10;
    for (int i = 0; i < 100000 && got < want && pp_now() < end; i++) {
        pp_conn_flush(r.c);
        got += far_read(&r);
    }
    CU_ASSERT_EQUAL(got, want);
    CU_ASSERT_EQUAL(pp_conn_link_rate(r.c), 0);
    rig_close(&r);
}

/* 8 MiB out through a far end that reads PIECE per STEP_SECS at most. */
static void test_slow_drain_measured(void)
{
    rig r;
    rig_open(&r);
    const size_t len = 8 * MIB;
    uint8_t *body = calloc(1, len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(body);
    CU_ASSERT_EQUAL_FATAL(pp_conn_send_ref(r.c, PP_T_RESULT, 0, 1, NULL, 0, body, len, free,
                                           body), 0);
    size_t got = 0;
    double end = pp_now() + 60;
    for (int i = 0; i < 1000000 && got < len + PP_WIRE_HDR && pp_now() < end; i++) {
        pp_loop_run_once(r.loop, 0);
        pp_conn_flush(r.c);
        got += far_read(&r);
        sleep_s(STEP_SECS);
    }
    CU_ASSERT_EQUAL(got, len + PP_WIRE_HDR);
    double rate = pp_conn_link_rate(r.c);
    printf("\n    measured %.1f MB/s, the far end's pace at most %.1f ", rate / 1e6, PACE / 1e6);
    CU_ASSERT(rate > 0);
    CU_ASSERT(rate <= 2 * PACE); /* never faster than the far end let it */
    rig_close(&r);
}

/* A 4 MiB frame in, written at the far end PIECE per STEP_SECS at most. */
static void test_slow_arrival_measured(void)
{
    rig r;
    rig_open(&r);
    const size_t len = 4 * MIB;
    uint8_t *frame = calloc(1, PP_WIRE_HDR + len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(frame);
    pp_wire_encode_hdr(frame, PP_T_RESULT, 0, 9, (uint32_t)len);
    size_t put = 0, total = PP_WIRE_HDR + len;
    double end = pp_now() + 60;
    for (int i = 0; i < 1000000 && r.frames == 0 && pp_now() < end; i++) {
        if (put < total) {
            ssize_t n = write(r.far, frame + put, PP_MIN((size_t)PIECE, total - put));
            put += n > 0 ? (size_t)n : 0;
        }
        pp_loop_run_once(r.loop, 0);
        sleep_s(STEP_SECS);
    }
    free(frame);
    CU_ASSERT_EQUAL(r.frames, 1);
    CU_ASSERT_EQUAL(r.last_len, len);
    double rate = pp_conn_link_rate(r.c);
    printf("\n    measured %.1f MB/s, the far end's pace at most %.1f ", rate / 1e6, PACE / 1e6);
    CU_ASSERT(rate > 0);
    CU_ASSERT(rate <= 2 * PACE);
    rig_close(&r);
}

int pp_register_suites(void)
{
    static const pp_test tests[] = {
        {"nothing measured before a large transfer, nor from small frames",
         test_nothing_measured_yet},
        {"output draining through a slow reader is measured", test_slow_drain_measured},
        {"a large frame arriving slowly is measured", test_slow_arrival_measured},
        {NULL, NULL},
    };
    return pp_add_suite("pp_conn link rate", NULL, NULL, tests);
}
