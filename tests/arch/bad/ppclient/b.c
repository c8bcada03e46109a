/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
#include "a.h"
#include "b.h"

void b_step(int n)
{
    a_done(n);
}
