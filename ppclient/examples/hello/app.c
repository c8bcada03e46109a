/* app.c -- submits one job per input and prints the results. */
#include <pp.h>
#include <stdio.h>

#include "tasks.h"

int main(void)
{
    long inputs[] = {100000, 100100, 100200, 100300, 100400, 100500, 100600, 100700};
    enum { N = sizeof inputs / sizeof inputs[0] };
    pp_server *s = pp_server_new(NULL); /* local workers, one per CPU */
    if (!s) {
        fprintf(stderr, "pp: %s\n", pp_last_error());
        return 1;
    }
    pp_job *jobs[N];
    for (int i = 0; i < N; i++)
        jobs[i] = pp_submitf(s, sum_primes, NULL, "l", inputs[i]);
    for (int i = 0; i < N; i++) {
        long sum;
        if (pp_job_unpack(jobs[i], "l", &sum) == 0)
            printf("Sum of primes below %ld is %ld\n", inputs[i], sum);
        else
            printf("job %d: %s\n", i, pp_last_error());
        pp_job_free(jobs[i]);
    }
    pp_print_stats(s, stdout);
    pp_server_free(s);
    return 0;
}
