/* SPDX-License-Identifier: MIT */
/* lockout.c -- wrong secrets counted per address: an address that sent
 * --max-auth-failures of them within --auth-lockout seconds is refused for
 * that long.  A bounded table (AUTH_FAIL_SLOTS): a flood of addresses evicts
 * the entries touched longest ago, never grows memory. */
#include <stdio.h>
#include <string.h>

#include "lockout.h"

/* The entry for addr, or NULL; with `add`, a new one in a free slot or in
 * place of the entry last touched longest ago. */
static auth_fail *entry(server *srv, const char *addr, int add, double now)
{
    auth_fail *victim = NULL;
    for (int i = 0; i < AUTH_FAIL_SLOTS; i++) {
        auth_fail *f = &srv->fails[i];
        if (f->addr[0] && strcmp(f->addr, addr) == 0)
            return f;
        if (add && (!victim || (victim->addr[0] &&
                                (!f->addr[0] || PP_MAX(f->since, f->until) <
                                                    PP_MAX(victim->since, victim->until)))))
            victim = f;
    }
    if (victim) {
        memset(victim, 0, sizeof *victim);
        snprintf(victim->addr, sizeof victim->addr, "%s", addr);
        victim->since = now;
    }
    return victim;
}

int lockout_count(server *srv, const char *addr, double now)
{
    auth_fail *f = entry(srv, addr, 1, now);
    double window = srv->cfg->auth_lockout;
    if (now - f->since > window) {
        f->count = 0;
        f->since = now;
    }
    f->count++;
    int max = srv->cfg->max_auth_failures;
    if (max > 0 && f->count >= max && f->until <= now) {
        f->until = now + window;
        pp_log(&srv->log, PP_LOG_WARN,
               "%s: %d wrong secrets within %.0f s; refusing connections from it for %.0f s",
               addr, f->count, window, window);
    }
    return f->count;
}

int lockout_active(server *srv, const char *addr, double now)
{
    auth_fail *f = entry(srv, addr, 0, now);
    return f && f->until > now;
}
