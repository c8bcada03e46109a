/* SPDX-License-Identifier: MIT */
/* autodiff_tasks.h -- the task module of pp-auto-diff. */
#ifndef PP_EX_AUTODIFF_TASKS_H
#define PP_EX_AUTODIFF_TASKS_H
#include <pp.h>

/* The largest number of terms ppex_t_log takes. */
#define PPEX_TERMS_MAX 100000000L

/* t_log(x) = sum for i = 1 .. n-1 of (-1)^(i+1) (x-1)^i / i, the series of
 * ln(x) cut after n-1 terms, evaluated on the dual number (x, dx): the
 * result is t_log(x) and its derivative times dx (automatic differentiation
 * in forward mode).  Argument: "ddl" x, dx, n; result: "dd" value,
 * derivative. */
int ppex_t_log(const void *arg, size_t len, pp_buf *out);
#endif
