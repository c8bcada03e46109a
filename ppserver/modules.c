/* SPDX-License-Identifier: MIT */
/* modules.c -- the node's module table: the task modules its clients named
 * (by SHA-256), where each lives in the cache, and whether it is there. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pp_module.h"
#include "modules.h"

int modules_get(server *srv, const uint8_t hash[PP_SHA256_LEN])
{
    for (int i = 0; i < srv->nmodules; i++)
        if (memcmp(srv->modules[i].hash, hash, PP_SHA256_LEN) == 0)
            return i;
    if (srv->nmodules == srv->capmodules) {
        int cap = srv->capmodules ? srv->capmodules * 2 : 8;
        module *m = realloc(srv->modules, (size_t)cap * sizeof *m);
        if (!m)
            return -1;
        srv->modules = m;
        srv->capmodules = cap;
    }
    module *m = &srv->modules[srv->nmodules];
    memcpy(m->hash, hash, PP_SHA256_LEN);
    pp_module_path(srv->cfg->cache_dir, hash, m->path, sizeof m->path);
    /* Cached by an earlier run: verified when it was stored. */
    m->present = access(m->path, R_OK) == 0;
    return srv->nmodules++;
}
