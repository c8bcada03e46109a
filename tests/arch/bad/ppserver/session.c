/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
/* PLANTED: a cycle with server.c, and a layer violation (a_done is
 * ppclient's). */
#include "server.h"

void a_done(int n);

int session_open(server *s)
{
    server_forget(s, 0);
    a_done(1);
    return 0;
}
