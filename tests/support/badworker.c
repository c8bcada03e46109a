/* SPDX-License-Identifier: MIT */
/* badworker.c -- a stand-in for ppworker that misbehaves on purpose, chosen
 * by the job's argument: "garbage" writes bytes that are no frame,
 * "exit" exits while holding the job, "wrongid" answers for another job;
 * anything else is echoed back properly.  For the pool's bad-input tests. */
#include <fcntl.h>
#include <sys/mman.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pp.h"
#include "pp_worker.h"
#include "pp_proto.h"

static void put(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n) {
        ssize_t w = write(fd, c, n);
        if (w <= 0)
            exit(1);
        c += w;
        n -= (size_t)w;
    }
}

static void frame(int fd, uint8_t type, uint64_t id, const void *payload, uint32_t len)
{
    uint8_t h[PP_WIRE_HDR];
    pp_wire_encode_hdr(h, type, 0, id, len);
    put(fd, h, sizeof h);
    put(fd, payload, len);
}

int main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    /* As ppworker: request FIFO on fd 3, response FIFO on 4, state on 5. */
    pp_worker_state *st = mmap(NULL, sizeof *st, PROT_READ | PROT_WRITE, MAP_SHARED,
                               PP_WORKER_FD_STATE, 0);
    if (st == MAP_FAILED)
        return 2;
    int rfd = PP_WORKER_FD_REQ, wfd = PP_WORKER_FD_RESP;
    uint8_t hello[8];
    pp_store32(hello, (uint32_t)getpid());
    pp_store32(hello + 4, PP_WIRE_VERSION);
    frame(wfd, PP_T_WHELLO, 0, hello, sizeof hello);

    pp_wire_reader rd;
    pp_wire_reader_init(&rd, 1u << 20, PP_T_MAX);
    for (;;) {
        pp_frame f;
        int rc;
        while ((rc = pp_wire_reader_next(&rd, &f)) == 1) {
            if (f.hdr.type != PP_T_JOB)
                continue;
            atomic_store(&st->seq, f.hdr.id); /* like ppworker: the job running */
            const char *arg = (const char *)f.payload + 4;
            size_t len = f.hdr.len - 4;
            if (len == 7 && memcmp(arg, "garbage", 7) == 0) {
                put(wfd, "this is not a frame at all........", 34);
                pause();
            }
            if (len == 4 && memcmp(arg, "exit", 4) == 0)
                exit(0);
            uint8_t res[PP_RESULT_HDR + 64] = {0};
            size_t n = len < 64 ? len : 64;
            res[0] = PP_DONE;
            pp_store64(res + 8, 1000);
            memcpy(res + PP_RESULT_HDR, arg, n);
            uint64_t id = f.hdr.id;
            if (len == 7 && memcmp(arg, "wrongid", 7) == 0)
                id += 1000;
            atomic_store(&st->seq, 0);
            frame(wfd, PP_T_RESULT, id, res, (uint32_t)(PP_RESULT_HDR + n));
        }
        if (rc < 0)
            return 3;
        size_t room;
        void *dst = pp_wire_reader_space(&rd, &room);
        ssize_t n = read(rfd, dst, room);
        if (n <= 0)
            return 0;
        pp_wire_reader_commit(&rd, (size_t)n);
    }
}
