/* SPDX-License-Identifier: MIT */
/* modules.h -- the node's module table (modules.c). */
#ifndef PPSERVER_MODULES_H
#define PPSERVER_MODULES_H

#include <stdint.h>

#include "node.h"

/* Finds or adds a module by hash; its index, or -1 out of memory. */
int modules_get(server *srv, const uint8_t hash[PP_SHA256_LEN]);

#endif
