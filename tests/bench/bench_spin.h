/* SPDX-License-Identifier: MIT */
/* bench_spin.h -- the CPU-bound work of the benchmarks: burn `us`
 * microseconds of the calling thread's CPU time.  One compiled object is
 * linked into the pp task module and into spin-cmd (the GNU parallel peer),
 * so that both run exactly the same code. */
#ifndef PP_BENCH_SPIN_H
#define PP_BENCH_SPIN_H

/* Spins until the calling thread has used `us` microseconds of CPU time
 * (CLOCK_THREAD_CPUTIME_ID), or 60 s of wall time have passed, whichever
 * comes first.  Returns a value derived from the work (so that it is not
 * optimised away). */
unsigned long ppbench_spin_us(long us);

#endif
