/* SPDX-License-Identifier: MIT */
/* pp_worker.h -- what the worker pool (pp_pool.c) and each ppworker process
 * (ppworker.c) share besides the frames of pp_proto.h: the fds a worker
 * inherits, and a page both map, through which the pool knows which job
 * runs now and can take back the jobs not started yet.
 *
 * A worker reads JOB and TASKDEF frames from its request FIFO and writes
 * WHELLO once, then a RESULT per job, to its response FIFO, in the order of
 * the jobs.  Results of tiny jobs are batched; the pool asks for the batch
 * through the page when a job runs long. */
#ifndef PP_WORKER_H
#define PP_WORKER_H

#include <stdatomic.h>
#include <stdint.h>

/* The fds a worker inherits: its request FIFO (read end), its response
 * FIFO (write end), and its state page (a memfd it maps shared). */
#define PP_WORKER_FD_REQ 3
#define PP_WORKER_FD_RESP 4
#define PP_WORKER_FD_STATE 5
/* Its end of a Unix socket pair over which the pool passes the fds of
 * shared-memory buffers (pp_shm.h), one per WSHM frame (pp_proto.h). */
#define PP_WORKER_FD_SHM 6
/* Shared-memory buffers a worker has mapped at once, at most. */
#define PP_SHM_SLOTS 8

/* The shared page: which job the worker is running now.  A death or a
 * timeout is then charged to that job alone, even while the results of the
 * jobs before it still sit in the worker's batch (those jobs run again
 * elsewhere). */
typedef struct pp_worker_state {
    _Atomic uint64_t seq;       /* frame id of the job running; 0 = none */
    _Atomic uint64_t start_ns;  /* its start, CLOCK_MONOTONIC nanoseconds */
    /* Taking jobs back: the worker claims each job before it starts by
     * swapping its id in here; the pool revokes the jobs still queued on the
     * worker by swapping in PP_WORKER_REVOKE | the last id revoked.  A
     * worker that finds its next job revoked answers PP_WORKER_REVOKED
     * instead of running it.  One compare-and-swap each way: no job runs
     * twice. */
    _Atomic uint64_t gate;
    /* The pool sets this (and wakes the futex on it) to have the worker send
     * the results it still batches, when its current job runs long. */
    _Atomic uint32_t flush_req;
} pp_worker_state;

#define PP_WORKER_REVOKE (1ull << 63)
#define PP_WORKER_REVOKED 31         /* RESULT status: not run, taken back */

#endif
