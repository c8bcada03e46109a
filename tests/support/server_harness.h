/* SPDX-License-Identifier: MIT */
/* server_harness.h -- real ppserver processes for the integration suites.
 *
 * srv_start() makes a private temporary directory, writes a fresh secret
 * into it with `ppserver --gen-secret`, and starts $PP_SERVER on 127.0.0.1
 * with `-p 0 --port-file` (or a given port), its own --cache-dir, --log-file
 * and --secret-file, plus the caller's extra arguments.  The environment is
 * passed through (PP_WORKER finds ppworker), except PP_SECRET, which is
 * removed, and TMPDIR, which points into the private directory.  ppserver's
 * stderr goes to a file there too.
 *
 * Every wait is bounded; every process started is reaped. */
#ifndef PP_SERVER_HARNESS_H
#define PP_SERVER_HARNESS_H

#include <stddef.h>
#include <sys/types.h>

typedef struct srv_harness {
    pid_t pid;               /* 0 when not running */
    int port;
    char host[64];           /* the address clients use; "" = 127.0.0.1 */
    int status;              /* waitpid() status once reaped */
    char dir[256];           /* private directory */
    char secret_file[320];
    char secret[128];        /* the secret (the file's text without newline) */
    char port_file[320];
    char log_file[320];
    char err_file[320];      /* ppserver's stderr */
    char cache_dir[320];
} srv_harness;

typedef struct srv_opts {
    const char *const *args; /* extra arguments, NULL-terminated; may be NULL */
    int port;                /* 0: any free port */
    int no_secret_file;      /* do not pass --secret-file (args give the secret) */
    int no_log_file;         /* no --log-file: the log goes to err_file */
    double start_timeout;    /* seconds to wait for the port file; 0 = 20 */
    const struct srv_harness *share_secret; /* use this server's secret */
    const char *env_secret;  /* PP_SECRET in ppserver's environment, or NULL */
    const char *addr;        /* -i ADDR; NULL = 127.0.0.1 */
    int own_netns;           /* start it in a new network namespace of its own
                                (needs CAP_SYS_ADMIN; only its loopback, down) */
    const char *const *env;  /* more "NAME=VALUE" for its environment, or NULL */
} srv_opts;

/* The ppserver executable ($PP_SERVER), or NULL. */
const char *srv_exe(void);

/* Creates the private directory and the secret.  0 or -1 (message on
 * stderr).  srv_start() calls it when h->dir is still empty. */
int srv_prepare(srv_harness *h);

/* Starts ppserver (see above) and waits, bounded, for its port file.
 * Returns 0 with h->pid and h->port set, or -1 (it is then reaped, its
 * status in h->status, and the reason on stderr).  Calling it again on a
 * stopped harness restarts the server in the same directory with the same
 * secret (pass opts->port to keep the port). */
int srv_start(srv_harness *h, const srv_opts *opts);

/* Runs ppserver with exactly `argv` (argv[0] is replaced by the
 * executable), stderr captured into *err_text (malloc'd), and waits at most
 * `limit` seconds for it to exit (then SIGKILL).  Returns the waitpid()
 * status, or -1 on failure to run it.  The environment is the harness one
 * (no PP_SECRET) unless env_secret is not NULL. */
int srv_run_once(const char *const *argv, const char *env_secret, double limit,
                 char **err_text);

/* SIGTERM, then SIGKILL after `limit` seconds; always reaps.  Returns the
 * waitpid() status (also in h->status), or -1 if nothing was running. */
int srv_stop(srv_harness *h, double limit);

/* Waits up to `limit` seconds for the server to exit by itself.  1 when it
 * exited (reaped, status in h->status), 0 when it still runs. */
int srv_wait_exit(srv_harness *h, double limit);

/* kill -9 and reap. */
void srv_kill9(srv_harness *h);

/* kill -STOP / kill -CONT.  0 or -1. */
int srv_freeze(srv_harness *h);
int srv_thaw(srv_harness *h);

/* 1 while the process runs (not yet exited), else 0 (reaps it). */
int srv_alive(srv_harness *h);

/* The log file's (or, with no_log_file, stderr's) text, malloc'd; "" when
 * empty.  Never NULL unless out of memory. */
char *srv_read_log(const srv_harness *h);
/* ppserver's stderr file, malloc'd. */
char *srv_read_stderr(const srv_harness *h);

/* Whether ppserver or one of its workers reported a sanitizer error in its
 * stderr or its log (workers' output goes to the log): 1, the report then
 * printed on stderr, or 0.  Call it once the server has stopped. */
int srv_sanitizer_report(const srv_harness *h);

/* Lines of the log containing every one of the NULL-terminated needles. */
int srv_log_count(const srv_harness *h, const char *const *needles);

/* A field of /proc/PID/status in kB ("VmRSS", "VmHWM"), or -1. */
long srv_status_kb(pid_t pid, const char *field);

/* Stops the server if it runs and removes the private directory. */
void srv_cleanup(srv_harness *h);

/* A whole file, malloc'd and NUL-terminated, or NULL. */
char *srv_slurp(const char *path, size_t *len);

#endif
