/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
#ifndef PP_X_H
#define PP_X_H
int pp_x_one(void);
#endif
