/* SPDX-License-Identifier: MIT */
/* pp_resolve.h -- a host name looked up on a short-lived thread of its own,
 * so that a slow DNS server never stalls an event loop.  The thread reports
 * through an eventfd the loop watches.
 *
 * The thread and the owner hold a reference each, and the last one frees
 * the request: the owner never waits for a slow lookup (pp_resolve_drop()
 * returns at once), and the thread, when done, touches only the request. */
#ifndef PP_RESOLVE_H
#define PP_RESOLVE_H

struct addrinfo;
typedef struct pp_resolve pp_resolve;

/* Starts looking host:port up.  The request, or NULL with the reason in
 * err (PP_ERR_LEN bytes). */
pp_resolve *pp_resolve_start(const char *host, int port, char *err);

/* The fd that becomes readable when the lookup ended (watch it). */
int pp_resolve_fd(const pp_resolve *r);

/* 0 while the lookup runs; 1 when it ended: *res gets the addresses (the
 * caller frees them with freeaddrinfo()), or NULL with the reason in err. */
int pp_resolve_take(pp_resolve *r, struct addrinfo **res, char *err);

/* The owner lets go (stop watching the fd first): a lookup still running
 * finishes alone and frees itself.  NULL is a no-op. */
void pp_resolve_drop(pp_resolve *r);

#endif
