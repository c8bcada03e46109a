/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
/* PLANTED: shared/ includes a ppserver/ header. */
#include "server.h"

int pp_util_twice(int n)
{
    return 2 * n;
}
