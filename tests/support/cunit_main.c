/* SPDX-License-Identifier: MIT */
/* cunit_main.c -- the main() of every suite: registers the suites a test
 * file declares with PP_SUITES and exits non-zero on any failure.
 * CU_basic_run_tests() returns framework errors, not failures, hence
 * CU_get_number_of_failures(). */
#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    /* PP_TEST_ONLY=TEXT: only the tests whose suite or test name contains
     * TEXT (for working on one test; CTest never sets it). */
    const char *only = getenv("PP_TEST_ONLY");
    if (only && *only) {
        for (CU_pSuite su = CU_get_registry()->pSuite; su; su = su->pNext) {
            int any = 0;
            for (CU_pTest t = su->pTest; t; t = t->pNext) {
                int on = strstr(su->pName, only) || strstr(t->pName, only);
                CU_set_test_active(t, on ? CU_TRUE : CU_FALSE);
                any |= on;
            }
            CU_set_suite_active(su, any ? CU_TRUE : CU_FALSE);
        }
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
