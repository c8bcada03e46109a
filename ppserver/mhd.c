/* SPDX-License-Identifier: MIT */
/* mhd.c -- see mhd.h. */
#include "mhd.h"

#include <dlfcn.h>
#include <string.h>

#include "pp_common.h"

/* Each entry's type must be the declared function's: the comparison below
 * is never evaluated (so nothing links to the library), but the compiler
 * rejects two distinct pointer types (-Werror). */
#define MHD_ENTRY(field, name)                                                                 \
    {#name, offsetof(mhd_api, field), sizeof(&name == ((mhd_api *)0)->field)}

static const struct {
    const char *name;
    size_t offset;
    size_t typecheck;
} mhd_functions[] = {
    MHD_ENTRY(start_daemon, MHD_start_daemon),
    MHD_ENTRY(stop_daemon, MHD_stop_daemon),
    MHD_ENTRY(run, MHD_run),
    MHD_ENTRY(get_timeout, MHD_get_timeout),
    MHD_ENTRY(get_daemon_info, MHD_get_daemon_info),
    MHD_ENTRY(create_response_from_buffer, MHD_create_response_from_buffer),
    MHD_ENTRY(add_response_header, MHD_add_response_header),
    MHD_ENTRY(queue_response, MHD_queue_response),
    MHD_ENTRY(destroy_response, MHD_destroy_response),
};

_Static_assert(sizeof(void *) == sizeof(void (*)(void)), "function pointers as void *");

int mhd_load(mhd_api *api, char *err)
{
    memset(api, 0, sizeof *api);
    api->handle = dlopen(MHD_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!api->handle) {
        const char *why = dlerror();
        pp_seterr(err, "--metrics needs libmicrohttpd (Debian: apt-get install "
                       "libmicrohttpd12): %s", why ? why : "cannot load " MHD_LIBRARY);
        return -1;
    }
    for (size_t i = 0; i < sizeof mhd_functions / sizeof mhd_functions[0]; i++) {
        void *f = dlsym(api->handle, mhd_functions[i].name);
        if (!f) {
            pp_seterr(err, "--metrics: %s has no %s", MHD_LIBRARY, mhd_functions[i].name);
            mhd_unload(api);
            return -1;
        }
        /* POSIX: a function pointer has the representation of a void *. */
        memcpy((char *)api + mhd_functions[i].offset, &f, sizeof f);
    }
    return 0;
}

void mhd_unload(mhd_api *api)
{
    if (api->handle)
        dlclose(api->handle);
    memset(api, 0, sizeof *api);
}
