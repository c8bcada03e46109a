/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
#ifndef C_H
#define C_H
#include "pp.h"
struct c_ops {
    void (*d_helper)(void);
};
void c_run(void);
#endif
