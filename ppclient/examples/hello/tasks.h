/* tasks.h -- the tasks of the hello example. */
#ifndef HELLO_TASKS_H
#define HELLO_TASKS_H
#include <pp.h>

/* Sums the primes below n.  Argument: pp_pack "l" n; result: "l" sum. */
int sum_primes(const void *arg, size_t len, pp_buf *out);
#endif
