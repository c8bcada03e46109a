/* SPDX-License-Identifier: MIT */
/* pp_spawn.h -- starting and ending ppworker processes: finding the
 * executable, the workers' environment, their FIFOs and state page, their
 * process group, reaping them, and sweeping what killed programs left.
 * The worker pool (pp_pool.c) decides when; this file knows how. */
#ifndef PP_SPAWN_H
#define PP_SPAWN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "pp_log.h"
#include "pp_worker.h"

/* A running ppworker. */
typedef struct pp_worker_proc {
    pid_t pid;
    int pidfd;              /* readable when it exits, or -1 (old kernels) */
    int rfd, wfd;           /* our ends: its response FIFO, its request FIFO
                               (non-blocking, close-on-exec) */
    int sfd;                /* our end of its buffer socket (non-blocking) */
    pp_worker_state *st;    /* the page it shares with us */
} pp_worker_proc;

typedef struct pp_spawn_opts {
    const char *worker_path;
    const char *tmpdir;     /* where the FIFO directory is made */
    char *const *envp;      /* from pp_spawn_env() */
    uint32_t max_frame;
    unsigned job_memory_mib; /* 0 = no limit */
    int user_set;           /* the worker drops to uid:gid before loading modules */
    uid_t uid;
    gid_t gid;
    int output_fd;          /* > 2: becomes its fds 1 and 2; else they are ours */
} pp_spawn_opts;

/* Starts a worker in its own process group with default signal handling,
 * fds 0 = /dev/null, 1 and 2 = output_fd (or ours), 3, 4, 5 = its FIFOs and state page (the names of the
 * FIFOs are gone before it starts) and 6 = its buffer socket.  0 with *out filled, or -1 with the
 * reason in err. */
int pp_spawn_worker(const pp_spawn_opts *o, pp_worker_proc *out, char *err);

/* Kills its process group (children included), reaps it and closes the
 * pidfd (the FIFO ends stay the caller's; the page stays mapped, final now,
 * for the caller to read).  How it ended ("worker killed by signal 11
 * (SIGSEGV)") goes to desc. */
void pp_spawn_end(pp_worker_proc *w, char *desc, size_t desclen);

/* Unmaps the state page (after pp_spawn_end()). */
void pp_spawn_unmap(pp_worker_proc *w);

/* The workers' environment: PATH, LD_LIBRARY_PATH, HOME, TMPDIR, TZ, LANG,
 * LC_ALL, the sanitizers' options, and the variables named in `extra`
 * (NULL-terminated, or NULL), from ours.  NULL out of memory. */
char **pp_spawn_env(const char *const *extra);
void pp_spawn_env_free(char **env);

/* Whether `name` may be passed to workers: a variable name, and none that
 * carries the secret.  0, or -1 with the reason in err. */
int pp_spawn_env_name_ok(const char *name, char *err);

/* Removes the FIFO directories that processes of this user, killed while
 * starting a worker, left in tmpdir: only directories owned by us, of mode
 * 0700, named like ours, whose process is gone, and in them only the names
 * we make; no link is followed. */
void pp_spawn_sweep(const char *tmpdir, const pp_log *log);

/* The ppworker executable: `configured` if set, else $PP_WORKER, else beside
 * this code or the program (DIR/ppworker, DIR/../bin, DIR/../libexec/pp, one
 * level further up too: the build tree and installations), else the
 * installation path compiled in.  Malloc'd, or NULL with the reason in
 * err. */
char *pp_spawn_find_worker(const char *configured, char *err);

#endif
