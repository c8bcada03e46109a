/* SPDX-License-Identifier: MIT */
/* Fixture for scripts/arch (tests/arch/run.sh): never compiled. */
#ifndef SERVER_H
#define SERVER_H
typedef struct server server;
void server_forget(server *s, int id);
#endif
