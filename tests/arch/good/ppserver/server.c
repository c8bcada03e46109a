/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
#include "server.h"
#include "session.h"
#include "pp_x.h"

int server_tick(int n)
{
    return session_open(n) + pp_x_one();
}
