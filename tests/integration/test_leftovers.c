/* SPDX-License-Identifier: MIT */
/* test_leftovers.c -- nothing is left behind by a program that is killed:
 * a program whose workers keep (re)starting is killed with SIGKILL or
 * SIGTERM at random moments in its first milliseconds, many times, in a
 * private TMPDIR; the FIFO directories it may have been making are gone
 * once the next program of the same user has started (which sweeps what
 * killed processes left), and its workers die with it. */
#include <CUnit/CUnit.h>
#include <dirent.h>
#include <pp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cunit_main.h"
#include "test_util.h"

static char tmpdir[64];

static int entries(void)
{
    return dir_entries(tmpdir);
}

/* ppworker processes whose parent is gone (PR_SET_PDEATHSIG failed). */
static int orphan_workers(void)
{
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        int pid = atoi(e->d_name);
        if (pid <= 0)
            continue;
        char path[64], comm[64] = "";
        snprintf(path, sizeof path, "/proc/%d/comm", pid);
        FILE *fp = fopen(path, "r");
        if (!fp)
            continue;
        if (fgets(comm, sizeof comm, fp) && strncmp(comm, "ppworker", 8) == 0 &&
            parent_of(pid) == 1)
            n++;
        fclose(fp);
    }
    closedir(d);
    return n;
}

static int suite_init(void)
{
    if (tmpdir_make(tmpdir, sizeof tmpdir, "kill") != 0)
        return -1;
    return getenv("PP_WORKER") && getenv("PP_TEST_CHURN") ? 0 : -1;
}

static int suite_clean(void)
{
    rm_tree(tmpdir);
    return 0;
}

/* Starts the churn program in `mode`, kills it with sig after 0..10 ms. */
static void run_and_kill(const char *mode, int sig, unsigned *seed)
{
    pid_t pid = fork();
    if (pid == 0) {
        execl(getenv("PP_TEST_CHURN"), "pptest_churn", mode, (char *)NULL);
        _exit(127);
    }
    if (pid < 0)
        return;
    sleep_s((double)(rand_r(seed) % 10001) * 1e-6);
    kill(pid, sig);
    waitpid(pid, NULL, 0);
}

static void kill_many(const char *mode)
{
    unsigned seed = (unsigned)time(NULL);
    printf("\n    seed %u: directories present after 30 kills: ", seed);
    const int sigs[2] = {SIGKILL, SIGTERM};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; i < 30; i++)
            run_and_kill(mode, sigs[k], &seed);
        /* Each start of the program also sweeps what the kills before it
         * left, so this counts only what the last ones left. */
        printf("%s %d, ", k ? "SIGTERM" : "SIGKILL", entries());
    }
    /* The next program sweeps what a kill inside its few system calls left. */
    pp_server *s = pp_server_new(&(pp_config){.ncpus = 1});
    CU_ASSERT_PTR_NOT_NULL_FATAL(s);
    pp_server_free(s);
    int after = entries();
    printf("after the next start %d ", after);
    CU_ASSERT_EQUAL(after, 0);
    /* Their workers died with them. */
    double end = now_s() + 5;
    while (orphan_workers() > 0 && now_s() < end)
        sleep_s(0.05);
    CU_ASSERT_EQUAL(orphan_workers(), 0);
}

static void test_resize_killed(void)
{
    kill_many("resize");
}

static void test_crash_killed(void)
{
    kill_many("crash");
}

int pp_register_suites(void)
{
    static const pp_test tests[] = {
        {"killed while its pool grows and shrinks", test_resize_killed},
        {"killed while its crashing workers restart", test_crash_killed},
        {NULL, NULL},
    };
    return pp_add_suite("leftovers", suite_init, suite_clean, tests);
}
