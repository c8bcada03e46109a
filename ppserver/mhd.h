/* SPDX-License-Identifier: MIT */
/* mhd.h -- libmicrohttpd, loaded only when --metrics asks for it.
 *
 * Why not linked: libmicrohttpd pulls in GnuTLS, p11-kit, Nettle and GMP,
 * whose start-up code runs in every process that links them and keeps
 * about 2.5 MB resident in a node that serves no metrics at all.  Loaded
 * with dlopen() by the one node that needs it, they cost the others
 * nothing.  The functions pp calls, and nothing else, are in the table;
 * their types are checked against <microhttpd.h> at compile time. */
#ifndef PP_SERVER_MHD_H
#define PP_SERVER_MHD_H

#include <microhttpd.h>
#include <stddef.h>
#include <stdint.h>

/* The library's file, as Debian's libmicrohttpd12 installs it. */
#define MHD_LIBRARY "libmicrohttpd.so.12"

typedef struct mhd_api {
    void *handle; /* dlopen()'s */
    struct MHD_Daemon *(*start_daemon)(unsigned int flags, uint16_t port,
                                       MHD_AcceptPolicyCallback apc, void *apc_cls,
                                       MHD_AccessHandlerCallback dh, void *dh_cls, ...);
    void (*stop_daemon)(struct MHD_Daemon *daemon);
    enum MHD_Result (*run)(struct MHD_Daemon *daemon);
    enum MHD_Result (*get_timeout)(struct MHD_Daemon *daemon, MHD_UNSIGNED_LONG_LONG *timeout);
    const union MHD_DaemonInfo *(*get_daemon_info)(struct MHD_Daemon *daemon,
                                                   enum MHD_DaemonInfoType info_type, ...);
    struct MHD_Response *(*create_response_from_buffer)(size_t size, void *buffer,
                                                        enum MHD_ResponseMemoryMode mode);
    enum MHD_Result (*add_response_header)(struct MHD_Response *response, const char *header,
                                           const char *content);
    enum MHD_Result (*queue_response)(struct MHD_Connection *connection, unsigned int status_code,
                                      struct MHD_Response *response);
    void (*destroy_response)(struct MHD_Response *response);
} mhd_api;

/* Loads the library and fills the table: 0, or -1 with err (the library
 * is missing, or lacks a function). */
int mhd_load(mhd_api *api, char *err);

/* Unloads it (a table never loaded, or zeroed, is fine). */
void mhd_unload(mhd_api *api);

#endif
