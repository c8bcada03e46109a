/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
/* A cycle among shared/ modules (pp_x.c <-> pp_y.c): reported, not a
 * failure. */
#include "pp.h"
#include "pp_x.h"
#include "pp_y.h"

int pp_x_one(void)
{
    return pp_y_two() - 1;
}
