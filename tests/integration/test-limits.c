/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-limits.c - what one peer can make memconvd hold is bounded.
 *
 * The daemon runs with [Limits] VMsPerUID=3, RegionsPerVM=2,
 * RequestsPerVM=2. Going past each limit is refused with
 * CODE_RESOURCE_LIMIT and a text naming the limit, and nothing changes:
 * no VM or region is added (admin list, daemon fd count), the map is as
 * before (probe), and the requests already held are still answered.
 */
#undef NDEBUG
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "harness.h"
#include "macro.h"

static void test_vms_per_uid(void)
{
        struct vmm v[4];
        Memconv__Message *r;
        long before, have = admin_vm_count();
        unsigned n = 0;

        CU_ASSERT_FATAL(have >= 0 && have < 3);
        for (unsigned i = 0; i < (unsigned) (3 - have); i++, n++) {
                vmm_open(&v[i], (uint8_t) (0x10 + i));
                r = attach(&v[i], "lim", 16);
                CU_ASSERT_FATAL(r && r->body_case == MEMCONV__MESSAGE__BODY_ATTACH_REPLY);
                CU_ASSERT_EQUAL(r->attach_reply->status ? r->attach_reply->status->code : 0, MEMCONV__CODE__CODE_OK);
                memconv__message__free_unpacked(r, NULL);
        }
        before = admin_vm_count();
        CU_ASSERT_EQUAL(before, 3);
        vmm_open(&v[n], 0x13);
        r = attach(&v[n], "lim4", 16);
        CU_ASSERT_FATAL(r && r->body_case == MEMCONV__MESSAGE__BODY_ATTACH_REPLY && r->attach_reply->status);
        CU_ASSERT_EQUAL(r->attach_reply->status->code, MEMCONV__CODE__CODE_RESOURCE_LIMIT);
        CU_ASSERT_PTR_NOT_NULL(strstr(r->attach_reply->status->message, "VMsPerUID"));
        memconv__message__free_unpacked(r, NULL);
        CU_ASSERT_EQUAL(admin_vm_count(), before);
        for (unsigned i = 0; i <= n; i++)
                vmm_close(&v[i]);
}

static void test_regions_and_requests(void)
{
        struct vmm v;
        Memconv__Message *r;
        int gm, before;
        uint64_t dec;

        vmm_open(&v, 0x20);
        vmm_attach_region(&v, "lim-regions");  /* region 1 */
        gm = gmem_create(REGION_SIZE);
        CU_ASSERT_FATAL(gm >= 0);
        expect_reply(register_region(&v, 1, 2 * REGION_GPA, REGION_SIZE, gm, -1), MEMCONV__CODE__CODE_OK, NULL);
        safe_close(gm);
        gm = gmem_create(REGION_SIZE);
        before = daemon_fd_count("kvm-gmem");
        expect_reply(register_region(&v, 2, 4 * REGION_GPA, REGION_SIZE, gm, -1), MEMCONV__CODE__CODE_RESOURCE_LIMIT,
                     "RegionsPerVM");
        CU_ASSERT_EQUAL(daemon_fd_settle("kvm-gmem", before), before);  /* the refused fd was not kept */
        safe_close(gm);
        expect_decision(convert(&v, 4 * REGION_GPA, PAGE, true), MEMCONV__ACTION__ACTION_FAIL,
                        MEMCONV__CODE__CODE_OUT_OF_RANGE, NULL);

        /* Two requests held (one decided, one waiting on it); the third is refused. */
        r = convert(&v, REGION_GPA, PAGE, true);
        CU_ASSERT_FATAL(r && r->decision->action == MEMCONV__ACTION__ACTION_APPLY);
        dec = r->decision->decision_id;
        memconv__message__free_unpacked(r, NULL);
        CU_ASSERT(convert(&v, REGION_GPA, PAGE, false) == NULL);  /* waits */
        expect_decision(convert(&v, REGION_GPA + PAGE, PAGE, true), MEMCONV__ACTION__ACTION_FAIL,
                        MEMCONV__CODE__CODE_RESOURCE_LIMIT, "RequestsPerVM");
        /* The held ones are still answered, and the refused one changed nothing. */
        applied(&v, dec, true);
        r = recv_msg(v.sock);
        expect_decision(r, MEMCONV__ACTION__ACTION_APPLY, MEMCONV__CODE__CODE_OK, NULL);
        CU_ASSERT(probe_all(&v, REGION_GPA + PAGE, PAGE, false));
        vmm_close(&v);
}

int main(void)
{
        char conf[] = "/tmp/memconv-limits-XXXXXX";
        CU_pSuite s;
        unsigned failures;
        FILE *f;
        int fd, r;

        fd = mkstemp(conf);
        assert(fd >= 0);
        f = fdopen(fd, "w");
        assert(f);
        fprintf(f, "[Limits]\nVMsPerUID=3\nRegionsPerVM=2\nRequestsPerVM=2\n");
        fclose(f);
        setenv("MEMCONV_TEST_CONFIG", conf, 1);
        r = harness_setup(true);
        unlink(conf);
        if (r != 0)
                return r;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        s = CU_add_suite("limits", NULL, NULL);
        CU_add_test(s, "RegionsPerVM and RequestsPerVM", test_regions_and_requests);
        CU_add_test(s, "VMsPerUID", test_vms_per_uid);
        CU_basic_set_mode(CU_BRM_VERBOSE);
        CU_basic_run_tests();
        failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
        CU_cleanup_registry();
        return harness_finish(failures);
}
