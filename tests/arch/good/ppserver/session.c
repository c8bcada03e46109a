/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
/* server_tick below is a parameter, not server.c's function. */
#include "session.h"

static int count_ticks(int server_tick)
{
    return server_tick + 1;
}

int session_open(int id)
{
    return count_ticks(id);
}
