/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
#ifndef A_H
#define A_H
void a_start(void);
void a_done(int n);
#endif
