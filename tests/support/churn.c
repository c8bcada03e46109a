/* SPDX-License-Identifier: MIT */
/* churn.c -- a program whose workers keep starting, for the tests that kill
 * it at random moments: "resize" grows and shrinks its pool, "crash" runs
 * jobs that crash their workers (each crash starts a replacement).  It runs
 * until killed (at most 30 s).  "sleep HOST:PORT MS" runs one long job on a
 * node instead (the secret from PP_SECRET). */
#include <pp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_tasks.h"
#include "test_util.h"

/* "sleep HOST:PORT MS": a long job on that node (PP_SECRET), then wait. */
static int remote_sleep(const char *node, long ms)
{
    const char *list[] = {node, NULL};
    pp_server *s = pp_server_new(&(pp_config){.ncpus = 0, .ppservers = list});
    if (!s) {
        fprintf(stderr, "%s\n", pp_last_error());
        return 1;
    }
    pp_job *j = pp_submitf(s, t_sleep, NULL, "l", ms);
    pp_job_wait(j);
    pp_job_free(j);
    pp_server_free(s);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && strcmp(argv[1], "sleep") == 0)
        return remote_sleep(argv[2], atol(argv[3]));
    int crash = argc > 1 && strcmp(argv[1], "crash") == 0;
    pp_server *s = pp_server_new(&(pp_config){.ncpus = 4});
    if (!s) {
        fprintf(stderr, "%s\n", pp_last_error());
        return 1;
    }
    double end = now_s() + 30;
    for (int i = 0; i < 100000 && now_s() < end; i++) {
        if (crash) {
            pp_job *j = pp_submit(s, t_segv, NULL, 0, NULL);
            pp_job_wait(j);
            pp_job_free(j);
        } else {
            pp_set_ncpus(s, 1 + i % 4);
            sleep_s(0.001);
        }
    }
    pp_server_free(s);
    return 0;
}
