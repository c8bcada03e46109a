/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
#include "pp_x.h"
#include "pp_y.h"

int pp_y_level;

int pp_y_two(void)
{
    return pp_y_level ? 2 : pp_x_one() + 1;
}
