/* SPDX-License-Identifier: MIT */
/* spin-cmd MS [IGNORED...] -- burns MS milliseconds of CPU time with the
 * benchmarks' compiled spin task (bench_spin.c), then exits 0.  The GNU
 * parallel side of benchmark B4: `parallel -j2 -N0 spin-cmd 50 ::: ...`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_spin.h"

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: spin-cmd MS\n\nBurns MS milliseconds of CPU time with the same code as "
                "pp-bench's spin task,\nfor GNU parallel in the benchmark suite.\n");
        return argc < 2 ? 2 : 0;
    }
    char *end;
    errno = 0;
    double ms = strtod(argv[1], &end);
    if (errno || end == argv[1] || *end || ms < 0 || ms > 60000) {
        fprintf(stderr, "spin-cmd: \"%s\" is not a number of milliseconds (0..60000)\n",
                argv[1]);
        return 2;
    }
    volatile unsigned long sink = ppbench_spin_us((long)(ms * 1000.0 + 0.5));
    (void)sink;
    return 0;
}
