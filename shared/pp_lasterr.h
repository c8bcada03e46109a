/* SPDX-License-Identifier: MIT */
/* pp_lasterr.h -- setting the message pp_last_error() returns (per thread). */
#ifndef PP_LASTERR_H
#define PP_LASTERR_H

#include "pp_common.h"

/* Formats the calling thread's last-error message. */
__attribute__((visibility("hidden"))) void pp_set_error(const char *fmt, ...) PP_PRINTF(1, 2);

#endif
