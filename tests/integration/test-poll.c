/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-poll.c - libmemconv's polling for answers (libmemconv(3), Polling)
 * with a real memconvd, real guest_memfd and memfd backing, and the library
 * as a VMM links it. What must hold:
 *  - a bad window is refused with -EINVAL and changes nothing;
 *  - with the window 0 the library never polls, and every conversion is
 *    still answered, applied and recorded;
 *  - with a window the reader polls (its counters move), and every
 *    conversion is answered, applied and recorded just the same;
 *  - the window never exceeds the maximum, also when it is lowered.
 * No timing is asserted: which waits ended while polling depends on the
 * machine; that some wait polled at all does not.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "client-vm.h"
#include "harness.h"
#include "memconv.h"

#define RAM (4ULL << 20)
#define ROUNDS 100

static struct client_vm vm;
static mc_client *client;
#define applies __atomic_load_n(&client_vm_applies, __ATOMIC_RELAXED)

/* convert_rounds() - ROUNDS pages to private and back, each asked of memconvd; the failures */
static unsigned convert_rounds(void)
{
        unsigned failed = 0;

        for (unsigned i = 0; i < ROUNDS; i++)
                for (int to_private = 1; to_private >= 0; to_private--) {
                        struct mc_exit_result res;

                        if (mc_client_convert(client, 0, (uint64_t) (i % 16) * PAGE, PAGE, to_private,
                                              MC_SOURCE_KVM_HC_MAP_GPA_RANGE, MC_PAGE_4K, &res) < 0 ||
                            res.action != MC_EXIT_RETRY)
                                failed++;
                }
        return failed;
}

/* check_converted() - every conversion since @n0 and @a0 was applied once and recorded */
static void check_converted(const struct client_vm_numbers *n0, unsigned a0)
{
        struct client_vm_numbers n1;

        CU_ASSERT_EQUAL(applies - a0, 2 * ROUNDS);
        CU_ASSERT_FATAL(client_vm_numbers_settle("poll", n0->changes + 2 * ROUNDS, &n1));
        CU_ASSERT_EQUAL(n1.changes - n0->changes, 2 * ROUNDS);
        CU_ASSERT_EQUAL(n1.spurious, n0->spurious);
        CU_ASSERT_EQUAL(n1.private_bytes, 0);
}

static void test_bad_window(void)
{
        struct mc_poll_stats st, after;

        mc_client_poll_stats(client, &st);
        CU_ASSERT_EQUAL(st.max_usec, MC_POLL_DEFAULT_USEC);
        CU_ASSERT_EQUAL(mc_client_set_poll(client, 1000001), -EINVAL);
        CU_ASSERT_EQUAL(mc_client_set_poll(client, ~0U), -EINVAL);
        CU_ASSERT_EQUAL(mc_client_set_poll(NULL, 10), -EINVAL);
        mc_client_poll_stats(client, &after);
        CU_ASSERT_EQUAL(memcmp(&st, &after, sizeof(st)), 0);
        memset(&after, 0xff, sizeof(after));
        mc_client_poll_stats(NULL, &after);
        CU_ASSERT_EQUAL(after.max_usec + after.window_usec + after.hits + after.misses + after.poll_usec, 0);
}

static void test_off(void)
{
        struct mc_poll_stats st, after;
        struct client_vm_numbers n0;
        unsigned a0 = applies;

        CU_ASSERT_EQUAL(mc_client_set_poll(client, 0), 0);
        mc_client_poll_stats(client, &st);
        CU_ASSERT_EQUAL(st.max_usec, 0);
        CU_ASSERT_EQUAL(st.window_usec, 0);
        CU_ASSERT_FATAL(client_vm_numbers("poll", &n0));
        CU_ASSERT_EQUAL(convert_rounds(), 0);
        mc_client_poll_stats(client, &after);
        CU_ASSERT_EQUAL(after.hits, st.hits);
        CU_ASSERT_EQUAL(after.misses, st.misses);
        CU_ASSERT_EQUAL(after.poll_usec, st.poll_usec);
        CU_ASSERT_EQUAL(after.window_usec, 0);
        check_converted(&n0, a0);
}

static void test_on(void)
{
        struct mc_poll_stats st, after;
        struct client_vm_numbers n0;
        unsigned a0 = applies;

        /* 100 ms: only a wait longer than that (none here) would stop the polling */
        CU_ASSERT_EQUAL(mc_client_set_poll(client, 100000), 0);
        mc_client_poll_stats(client, &st);
        CU_ASSERT_FATAL(client_vm_numbers("poll", &n0));
        CU_ASSERT_EQUAL(convert_rounds(), 0);
        mc_client_poll_stats(client, &after);
        printf("\n    %u conversions: %llu answers while polling, %llu slept, %llu us polled, window %llu us\n",
               2 * ROUNDS, (unsigned long long) (after.hits - st.hits),
               (unsigned long long) (after.misses - st.misses), (unsigned long long) (after.poll_usec - st.poll_usec),
               (unsigned long long) after.window_usec);
        CU_ASSERT_EQUAL(after.max_usec, 100000);
        CU_ASSERT(after.hits + after.misses > st.hits + st.misses);
        CU_ASSERT(after.poll_usec > st.poll_usec);      /* it did poll, not only count */
        CU_ASSERT(after.window_usec <= 100000);
        check_converted(&n0, a0);

        /* A lower maximum clamps the window at once. */
        CU_ASSERT_EQUAL(mc_client_set_poll(client, 3), 0);
        mc_client_poll_stats(client, &after);
        CU_ASSERT_EQUAL(after.max_usec, 3);
        CU_ASSERT(after.window_usec <= 3);
        a0 = applies;
        CU_ASSERT_FATAL(client_vm_numbers("poll", &n0));
        CU_ASSERT_EQUAL(convert_rounds(), 0);
        mc_client_poll_stats(client, &after);
        CU_ASSERT(after.window_usec <= 3);
        check_converted(&n0, a0);
}

int main(void)
{
        static const struct client_vm_test tests[] = {
                { "a bad window is refused and changes nothing", test_bad_window },
                { "window 0: no polling, every conversion done", test_off },
                { "with a window: the reader polls, every conversion done", test_on },
        };
        int r;

        r = client_vm_setup(&vm, "[Daemon]\nPollUSec=50\n", "poll", "poll-test-000001", RAM, client_vm_count_apply);
        if (r != 0)
                return r;
        client = vm.client;
        return client_vm_run(&vm, "poll", tests, sizeof(tests) / sizeof(tests[0]));
}
