/* SPDX-License-Identifier: MIT */
/* test_tasks.h -- the tasks of the test task module (see test_tasks.c). */
#ifndef PP_TEST_TASKS_H
#define PP_TEST_TASKS_H
#include <pp.h>

int t_echo(const void *arg, size_t len, pp_buf *out);          /* result = arg */
int t_square(const void *arg, size_t len, pp_buf *out);        /* "l" n -> "l" n*n */
int t_fail(const void *arg, size_t len, pp_buf *out);          /* fails, echoing arg */
int t_segv(const void *arg, size_t len, pp_buf *out);          /* SIGSEGV */
int t_abort(const void *arg, size_t len, pp_buf *out);         /* SIGABRT */
int t_exit3(const void *arg, size_t len, pp_buf *out);         /* _exit(3) */
int t_sleep(const void *arg, size_t len, pp_buf *out);         /* "l" ms -> "l" pid */
int t_spin(const void *arg, size_t len, pp_buf *out);          /* loops forever */
int t_fork_spin(const void *arg, size_t len, pp_buf *out);     /* 2 children, pids to file arg */
int t_getenv(const void *arg, size_t len, pp_buf *out);        /* value of variable arg */
int t_pid_file_sleep(const void *arg, size_t len, pp_buf *out);/* pid to file arg, sleeps 30 s */
int t_pid(const void *arg, size_t len, pp_buf *out);           /* -> "l" pid */
int t_alloc(const void *arg, size_t len, pp_buf *out);         /* "l" MiB allocated and touched */
int t_pattern(const void *arg, size_t len, pp_buf *out);       /* "l" n -> n pattern bytes */
int t_parent_file(const void *arg, size_t len, pp_buf *out);   /* "s" name -> /proc/<ppid>/name */
int t_ids(const void *arg, size_t len, pp_buf *out);           /* -> "ll" uid, gid */
int t_try_create(const void *arg, size_t len, pp_buf *out);    /* "s" path -> "l" 0 or errno */
int t_item(const void *arg, size_t len, pp_buf *out);          /* a batch item: "fail", "segv", "exit", "sleep", else echo */
/* pp_map's items: 8 bytes, an int64_t in host order. */
#define T_SQ8_CRASH_AT 4321
int t_sq8(const void *arg, size_t len, pp_buf *out);           /* v -> v*v */
int t_sq8_fail7(const void *arg, size_t len, pp_buf *out);     /* fails on multiples of 7 */
int t_sq8_crash(const void *arg, size_t len, pp_buf *out);     /* SIGSEGV on T_SQ8_CRASH_AT */
int t_sleep8(const void *arg, size_t len, pp_buf *out);        /* sleeps v ms -> v */
int t_sq8_fail_once(const void *arg, size_t len, pp_buf *out); /* fails the 1st run per v (a file in $TMPDIR) */
/* Job control (test_control): */
int t_stamp(const void *arg, size_t len, pp_buf *out);         /* "l" ms: sleeps -> "ll" start, end ns (CLOCK_MONOTONIC) */
int t_touch(const void *arg, size_t len, pp_buf *out);         /* "s" path: creates it -> "l" pid */
int t_first_run(const void *arg, size_t len, pp_buf *out);     /* "ss" marker, how: 1st run makes marker, then fails/segv/hangs; later runs -> "l" pid */
/* Nodes at run time (test_nodes): */
int t_touch_sleep(const void *arg, size_t len, pp_buf *out);   /* "sll" path, ms, v: creates path, sleeps -> "l" v*v */
/* Large data (test_pool): echoes its argument, then sleeps as many ms as
 * its first 8 bytes say (native int64): a timeout with its result written. */
int t_echo_sleep(const void *arg, size_t len, pp_buf *out);
/* Worker output (test_logs): a line to stdout, a forged log line with an
 * escape sequence and a 3,000-byte line to stderr, then "l" n lines
 * "flood line I" to stderr -> "l" n. */
int t_print(const void *arg, size_t len, pp_buf *out);
/* -> "l" 1 when its argument lies in a shared buffer mapped read-only
 * (/memfd:pp-shm, r--s), else 0 (test_compress). */
int t_arg_where(const void *arg, size_t len, pp_buf *out);
/* A task that is not exported (static): pp_submit must refuse it. */
pp_task t_hidden_task_pointer(void);
#endif
