/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
#ifndef PP_Y_H
#define PP_Y_H
int pp_y_two(void);
#endif
