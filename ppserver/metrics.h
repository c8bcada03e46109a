/* SPDX-License-Identifier: MIT */
/* metrics.h -- ppserver --metrics ADDR:PORT: Prometheus text exposition
 * (format 0.0.4) of the node's status on GET /metrics, served by
 * libmicrohttpd from the server's own event loop (metrics.c). */
#ifndef PPSERVER_METRICS_H
#define PPSERVER_METRICS_H

#include "pp_buf.h"
#include "node.h"
#include "status.h"

typedef struct metrics metrics;

/* Parses "ADDR:PORT" (ADDR a numeric IPv4 address or [IPv6]; PORT 0 to
 * 65535, 0 = any free port) into host (hostlen bytes) and *port.  0, or -1
 * with the reason in err (PP_ERR_LEN bytes). */
int metrics_parse_addr(const char *s, char *host, size_t hostlen, int *port, char *err);

/* Starts serving srv's metrics on `addr` ("ADDR:PORT", as above) from
 * srv->loop, and logs where.  NULL with the reason in err (PP_ERR_LEN
 * bytes): a malformed address, or one that cannot be bound. */
metrics *metrics_start(server *srv, const char *addr, char *err);

/* The port it listens on (the one bound, for port 0). */
int metrics_port(const metrics *m);

/* Stops serving, closes every connection and frees (before the loop goes).
 * NULL is a no-op. */
void metrics_stop(metrics *m);

/* Appends the exposition of the snapshot `st` (status.h) to out.  0, or
 * -1 when out's cap or memory ran out (out then holds a part). */
int metrics_render(const node_status *st, pp_buf *out);

#endif
