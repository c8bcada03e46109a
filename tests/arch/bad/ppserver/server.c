/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
/* PLANTED: server.c calls session.c, session.c calls back into server.c. */
#include "server.h"

struct server {
    int nsessions;
};

int session_open(server *s);

void server_forget(server *s, int id)
{
    (void)id;
    s->nsessions--;
}

int server_accept(server *s)
{
    s->nsessions++;
    return session_open(s);
}
