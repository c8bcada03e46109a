/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
/* PLANTED: a.c and b.c call each other, a two-file cycle in ppclient/. */
#include "a.h"
#include "b.h"

static int count;

void a_start(void)
{
    b_step(1);
}

void a_done(int n)
{
    count += n;
}
