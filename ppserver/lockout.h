/* SPDX-License-Identifier: MIT */
/* lockout.h -- wrong secrets counted per address (lockout.c). */
#ifndef PPSERVER_LOCKOUT_H
#define PPSERVER_LOCKOUT_H

#include "node.h"

/* Counts a wrong secret from addr; the failures from it in the current
 * window (past the limit, the address is refused for a while). */
int lockout_count(server *srv, const char *addr, double now);
/* 1 while addr is refused for its wrong secrets. */
int lockout_active(server *srv, const char *addr, double now);

#endif
