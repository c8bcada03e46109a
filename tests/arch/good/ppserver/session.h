/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
#ifndef SESSION_H
#define SESSION_H
int session_open(int id);
#endif
