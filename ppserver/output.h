/* SPDX-License-Identifier: MIT */
/* output.h -- what the node's workers print (their stdout and stderr),
 * into the node's log a line at a time.
 *
 * Why: a task's printf() or perror() written straight to the node's stderr
 * would land in the log stream raw, which breaks a JSON log (one object a
 * line) and can pass for a line of the node's own.  Here each line of the
 * workers' output becomes one log line, "worker output: ...", escaped by
 * the logger (JSON) and rate-limited with the node's other lines
 * (--log-rate); a line longer than OUTPUT_LINE_MAX is cut there.  The
 * workers write into one pipe, blocking: output is never lost to a full
 * pipe, and a task that prints without end slows only itself. */
#ifndef PP_SERVER_OUTPUT_H
#define PP_SERVER_OUTPUT_H

#include "pp_log.h"
#include "pp_loop.h"

#define OUTPUT_LINE_MAX 900 /* bytes of one line that are logged (with its prefix
                             * and note, within the logger's 1,023-byte message) */

typedef struct worker_output worker_output;

/* The pipe, watched by the loop.  NULL with err (PP_ERR_LEN bytes). */
worker_output *worker_output_start(pp_loop *loop, const pp_log *log, char *err);

/* Its write end, for the workers (pp_pool_opts.output_fd). */
int worker_output_fd(const worker_output *o);

/* Logs what is left to read (the workers are gone), then closes.  NULL is
 * a no-op. */
void worker_output_stop(worker_output *o);

#endif
