/* SPDX-License-Identifier: MIT */
/* session.h -- one client connection (session.c). */
#ifndef PPSERVER_SESSION_H
#define PPSERVER_SESSION_H

#include "node.h"

session *session_new(server *srv, int fd, const char *peer);
/* Frees the session; its queued jobs are dropped and its running ones
 * stopped (their workers killed and replaced). */
void session_free(session *s);
/* Sends a job's result (or drops it when the session is gone); block (which
 * holds data) is freed once written. */
void session_job_done(sjob *j, int status, void *block, const char *data, size_t len,
                      uint64_t run_ns);
/* Puts a job back at the front of its session's queue (of its priority);
 * one the client cancelled ends PP_CANCELLED instead. */
void session_job_requeue(sjob *j);
/* Takes in the JOB frames waiting in its backlog that fit the budgets now
 * (call when memory was given back: every loop turn). */
void session_admit(session *s);
/* The job that runs next (highest priority, then oldest), or NULL. */
sjob *session_peek_job(const session *s);
/* Takes that job (it is on a worker from now on), or NULL. */
sjob *session_next_job(session *s);
/* Heartbeat duties: PING, liveness, idle and stuck-output checks. */
void session_tick(session *s, double now);
/* Tells an authenticated client that the node stops, then closes. */
void session_bye(session *s, const char *why);
void session_announce_ncpus(session *s, int n);

#endif
