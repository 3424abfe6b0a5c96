/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * test-util.h - the CUnit runner every unit suite shares: register one
 * suite from a table, run it verbosely, and turn any failed assert, test or
 * suite set-up into a non-zero exit status for the automake harness.
 */
#pragma once

#undef NDEBUG
#include <stdio.h>
#include <stdlib.h>

#include <CUnit/Basic.h>

struct mc_test {
        const char *name;
        CU_TestFunc fn;
};

/**
 * mc_test_run() - run @tests as one suite named @suite
 * @init: suite set-up or NULL
 * @cleanup: suite tear-down or NULL
 * Return: EXIT_SUCCESS if everything passed, EXIT_FAILURE otherwise
 */
static inline int mc_test_run(const char *suite, CU_InitializeFunc init, CU_CleanupFunc cleanup,
                              const struct mc_test *tests, size_t n)
{
        CU_pSuite s;
        unsigned failures;

        if (CU_initialize_registry() != CUE_SUCCESS)
                return EXIT_FAILURE;
        s = CU_add_suite(suite, init, cleanup);
        if (!s)
                goto fail;
        for (size_t i = 0; i < n; i++)
                if (!CU_add_test(s, tests[i].name, tests[i].fn))
                        goto fail;
        CU_basic_set_mode(CU_BRM_VERBOSE);
        if (CU_basic_run_tests() != CUE_SUCCESS)
                goto fail;
        failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed() +
                   CU_get_number_of_suites_failed();
        CU_cleanup_registry();
        return failures ? EXIT_FAILURE : EXIT_SUCCESS;
fail:
        fprintf(stderr, "CUnit: %s\n", CU_get_error_msg());
        CU_cleanup_registry();
        return EXIT_FAILURE;
}
