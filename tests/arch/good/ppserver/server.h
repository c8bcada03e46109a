/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
#ifndef SERVER_H
#define SERVER_H
#include "pp.h"
int server_tick(int n);
#endif
