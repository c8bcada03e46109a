/* SPDX-License-Identifier: MIT */
/* pp_transport.c -- the plain transport: read(2) and writev(2). */
#include "pp_transport.h"

#include <unistd.h>

static ssize_t plain_read(void *ctx, int fd, void *buf, size_t n, pp_tr_status *want)
{
    (void)ctx;
    *want = PP_TR_WANT_READ; /* set first: errno is read(2)'s */
    return read(fd, buf, n);
}

static ssize_t plain_writev(void *ctx, int fd, const struct iovec *iov, int iovcnt,
                            pp_tr_status *want)
{
    (void)ctx;
    *want = PP_TR_WANT_WRITE;
    return writev(fd, iov, iovcnt);
}

const pp_transport_ops pp_transport_plain_ops = {
    .read = plain_read,
    .writev = plain_writev,
};
