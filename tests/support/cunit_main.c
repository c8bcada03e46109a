/* SPDX-License-Identifier: MIT */
/* cunit_main.c -- the main() of every suite: registers the suites a test
 * file declares with PP_SUITES and exits non-zero on any failure.
 * CU_basic_run_tests() returns framework errors, not failures, hence
 * CU_get_number_of_failures(). */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>

#include "cunit_main.h"

int main(void)
{
    if (CU_initialize_registry() != CUE_SUCCESS)
        return 2;
    if (pp_register_suites() != 0) {
        fprintf(stderr, "suite registration failed: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        return 2;
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (run == 0) {
        fprintf(stderr, "no test ran\n");
        return 2;
    }
    return failed ? 1 : 0;
}
