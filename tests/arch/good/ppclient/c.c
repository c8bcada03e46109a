/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
/* None of the mentions of d.c's names below is a use of d.c: a comment
 * (d_helper, d_other), a string, a member, a static function of the same
 * name, a local of the same name. */
#include "c.h"
#include "pp_x.h"

static void d_other(void)
{
}

PP_API int pp_twice(int n)
{
    return 2 * n;
}

void c_run(void)
{
    struct c_ops ops = {.d_helper = d_other};
    const char *what = "d_helper d_global";   /* d_helper() */
    int d_global = pp_x_one();
    ops.d_helper();
    (void)what;
    (void)d_global;
}
