/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
#ifndef B_H
#define B_H
void b_step(int n);
#endif
