/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
#ifndef PP_H
#define PP_H
#define PP_API __attribute__((visibility("default")))
PP_API int pp_twice(int n);
#define pp_twicev(n) pp_twice(n)
#endif
