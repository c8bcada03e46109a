/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
#include "c.h"

int d_global;

void d_helper(void)
{
    c_run();
}

void d_other(void)
{
    d_global = pp_twicev(1);
}
