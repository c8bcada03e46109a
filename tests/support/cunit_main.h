/* SPDX-License-Identifier: MIT */
/* cunit_main.h -- suite registration for the shared test main(). */
#ifndef PP_CUNIT_MAIN_H
#define PP_CUNIT_MAIN_H

#include <CUnit/CUnit.h>

typedef struct pp_test {
    const char *name;
    void (*fn)(void);
} pp_test;

/* Each test file defines this: it adds its suites to the registry.
 * Returns 0, or -1 on a registry error. */
int pp_register_suites(void);

/* Adds a suite with the tests of a {NULL, NULL}-terminated array, each
 * test between setup and teardown (either may be NULL). */
static inline int pp_add_suite_with(const char *name, CU_InitializeFunc init,
                                    CU_CleanupFunc clean, CU_SetUpFunc setup,
                                    CU_TearDownFunc teardown, const pp_test *tests)
{
    CU_pSuite s = CU_add_suite_with_setup_and_teardown(name, init, clean, setup, teardown);
    if (!s)
        return -1;
    for (const pp_test *t = tests; t->name; t++)
        if (!CU_add_test(s, t->name, t->fn))
            return -1;
    return 0;
}

/* The same without setup and teardown. */
static inline int pp_add_suite(const char *name, CU_InitializeFunc init,
                               CU_CleanupFunc clean, const pp_test *tests)
{
    return pp_add_suite_with(name, init, clean, NULL, NULL, tests);
}

#endif
