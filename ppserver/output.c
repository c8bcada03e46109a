/* SPDX-License-Identifier: MIT */
/* output.c -- see output.h. */
#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pp_common.h"

_Static_assert(OUTPUT_LINE_MAX == 900, "emit()'s note names the limit");

#define OUTPUT_READS_PER_TURN 16 /* reads of 4 KiB before the loop moves on */

struct worker_output {
    pp_loop *loop;
    const pp_log *log;
    int rfd, wfd;
    pp_io io;
    char line[OUTPUT_LINE_MAX + 1];
    size_t len;
    int cut;                 /* the line went past OUTPUT_LINE_MAX */
};

static void emit(worker_output *o)
{
    o->line[o->len] = '\0'; /* control characters: the logger escapes them */
    pp_log(o->log, PP_LOG_INFO, "worker output: %s%s", o->line,
           o->cut ? " [cut: only its first 900 bytes are logged]" : "");
    o->len = 0;
    o->cut = 0;
}

/* Splits bytes into lines, each logged once its end is seen. */
static void take(worker_output *o, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n')
            emit(o);
        else if (o->len < OUTPUT_LINE_MAX)
            o->line[o->len++] = p[i];
        else
            o->cut = 1;
    }
}

/* Reads what is there, at most OUTPUT_READS_PER_TURN times (other events
 * wait for no printing task); 1 once the pipe has nothing more. */
static int drain(worker_output *o)
{
    char buf[4096];
    for (int i = 0; i < OUTPUT_READS_PER_TURN; i++) {
        ssize_t n = read(o->rfd, buf, sizeof buf);
        if (n > 0) {
            take(o, buf, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        return 1; /* EAGAIN, or no writer left (we hold one: never) */
    }
    return 0;
}

static void on_readable(pp_loop *loop, pp_io *io, unsigned events)
{
    (void)loop;
    (void)events;
    (void)drain(io->data);
}

worker_output *worker_output_start(pp_loop *loop, const pp_log *log, char *err)
{
    worker_output *o = calloc(1, sizeof *o);
    int fds[2];
    if (!o || pipe2(fds, O_CLOEXEC) != 0) {
        pp_seterr(err, "the workers' output pipe: %s", o ? strerror(errno) : "out of memory");
        free(o);
        return NULL;
    }
    o->loop = loop;
    o->log = log;
    o->rfd = fds[0];
    o->wfd = fds[1]; /* blocking: a worker waits rather than lose output */
    o->io = (pp_io){.fd = o->rfd, .fn = on_readable, .data = o};
    if (fcntl(o->rfd, F_SETFL, O_NONBLOCK) != 0 || pp_loop_add(loop, &o->io, PP_EV_READ) != 0) {
        pp_seterr(err, "the workers' output pipe: %s", strerror(errno));
        close(o->rfd);
        close(o->wfd);
        free(o);
        return NULL;
    }
    return o;
}

int worker_output_fd(const worker_output *o)
{
    return o ? o->wfd : -1;
}

void worker_output_stop(worker_output *o)
{
    if (!o)
        return;
    pp_loop_del(o->loop, &o->io);
    close(o->wfd); /* the workers' copies are gone with them */
    for (int i = 0; i < 64 && !drain(o); i++)
        ;
    if (o->len > 0 || o->cut)
        emit(o); /* a last line without its newline */
    close(o->rfd);
    free(o);
}
