/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-batch.c - leased conversion reports held back and sent in batches
 * (memconv-protocol(7), LEASES; libmemconv(3)), with a real memconvd, real
 * guest_memfd and memfd backing, and the library as a VMM links it.
 *
 * The daemon lets reports wait LeaseReportDelayUSec=100000 (the most it
 * allows), so that holding is visible. What must hold:
 *  - a burst of conversions reaches memconvd in fewer messages than
 *    conversions (LeasedBatch), and every one of them is in its map;
 *  - a held report is sent by the flusher thread when due, with no other
 *    call into the library;
 *  - held reports go out before any other message: before a request for a
 *    range they converted (else memconvd would decide it on a stale map and
 *    answer "already done"), and before Detach (else they would be lost);
 *  - with LeaseReportDelayUSec=0 (after a reload) no batch is sent.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "client-vm.h"
#include "harness.h"
#include "memconv.h"

#define RAM (4ULL << 20)
#define WAIT_MS 5000
#define DELAY_MS 100

static struct client_vm vm;
static mc_client *client;

static void config_text(char *buf, size_t size, unsigned delay_usec)
{
        snprintf(buf, size, "[Policy]\nLeases=yes\nLeaseMaxBytes=4K\nLeaseReportDelayUSec=%u\n", delay_usec);
}

/* write_config() - the daemon's configuration with @delay_usec (takes effect on SIGHUP) */
static bool write_config(unsigned delay_usec)
{
        FILE *f = fopen(vm.conf_path, "we");
        char conf[128];

        if (!f)
                return false;
        config_text(conf, sizeof(conf), delay_usec);
        fputs(conf, f);
        return fclose(f) == 0;
}

/* wait_private() - until memconvd's map holds @bytes private for @name; no library call meanwhile */
static bool wait_private(const char *name, uint64_t bytes)
{
        uint64_t t0 = now_ms();
        struct client_vm_numbers n;

        while (now_ms() - t0 < WAIT_MS) {
                if (client_vm_numbers(name, &n) && n.private_bytes == bytes)
                        return true;
                usleep(2000);
        }
        return false;
}

static bool lease_active(void)
{
        struct mc_lease_stats st;
        uint64_t t0 = now_ms();

        for (;;) {
                (void) mc_client_dispatch(client);
                mc_client_lease_stats(client, &st);
                if (st.active)
                        return true;
                if (now_ms() - t0 > WAIT_MS)
                        return false;
                usleep(1000);
        }
}

static int conv_page(uint64_t gpa, bool to_private)
{
        return mc_client_convert(client, 0, gpa, PAGE, to_private, MC_SOURCE_KVM_HC_MAP_GPA_RANGE, MC_PAGE_4K,
                                 NULL);
}

/* A burst of single pages: fewer messages than reports, all of them recorded. */
static void test_burst_batched(void)
{
        struct mc_lease_stats before, after;
        struct client_vm_numbers n0, n1;

        CU_ASSERT_FATAL(lease_active());
        CU_ASSERT_FATAL(client_vm_numbers("batch", &n0));
        mc_client_lease_stats(client, &before);
        for (unsigned i = 0; i < 200; i++)
                CU_ASSERT_EQUAL(conv_page(0x100000 + (uint64_t) i * PAGE, true), MC_EXIT_RETRY);
        mc_client_lease_stats(client, &after);
        CU_ASSERT_EQUAL(after.leased, before.leased + 200);
        CU_ASSERT(wait_private("batch", n0.private_bytes + 200 * PAGE));
        CU_ASSERT_FATAL(client_vm_numbers("batch", &n1));
        CU_ASSERT_EQUAL(n1.leased, n0.leased + 200);
        /* 200 reports in at most 128 per batch: 2 batches at least, and far fewer than 200. */
        CU_ASSERT(n1.batches >= n0.batches + 2);
        CU_ASSERT(n1.batches - n0.batches < 100);
        printf("\n    200 reports in %" PRIu64 " batches ", n1.batches - n0.batches);
}

/* One conversion, then nothing: the flusher sends it when due. */
static void test_flusher_sends(void)
{
        struct client_vm_numbers n0, n1;
        uint64_t t0;

        CU_ASSERT_FATAL(lease_active());
        CU_ASSERT_FATAL(client_vm_numbers("batch", &n0));
        t0 = now_ms();
        CU_ASSERT_EQUAL(conv_page(0x300000, true), MC_EXIT_RETRY);
        CU_ASSERT_FATAL(client_vm_numbers("batch", &n1));
        /* Held for DELAY_MS: only a machine that stalled that long could see it already. */
        if (now_ms() - t0 < DELAY_MS / 2)
                CU_ASSERT_EQUAL(n1.private_bytes, n0.private_bytes);
        /* No call into the library from here on: only its flusher thread can send it. */
        CU_ASSERT(wait_private("batch", n0.private_bytes + PAGE));
}

/*
 * A held report, then a request for the same page (it is kept off the lease
 * until settled, so it is asked): memconvd must see the report first, and
 * so perform a real conversion back to shared, not answer "already shared".
 */
static void test_flushed_before_request(void)
{
        struct client_vm_numbers n0, n1;
        unsigned a0;

        CU_ASSERT_FATAL(lease_active());
        CU_ASSERT_FATAL(client_vm_numbers("batch", &n0));
        CU_ASSERT_EQUAL(conv_page(0x310000, true), MC_EXIT_RETRY);
        a0 = __atomic_load_n(&client_vm_applies, __ATOMIC_RELAXED);
        CU_ASSERT_EQUAL(conv_page(0x310000, false), MC_EXIT_RETRY);
        CU_ASSERT_EQUAL(__atomic_load_n(&client_vm_applies, __ATOMIC_RELAXED), a0 + 1);  /* applied: not spurious */
        CU_ASSERT(wait_private("batch", n0.private_bytes));
        CU_ASSERT_FATAL(client_vm_numbers("batch", &n1));
        CU_ASSERT_EQUAL(n1.spurious, n0.spurious);
        CU_ASSERT_EQUAL(n1.changes, n0.changes + 2);
}

/* LeaseReportDelayUSec=0 after a reload: every report goes alone. */
static void test_no_delay(void)
{
        struct client_vm_numbers n0, n1;

        CU_ASSERT_FATAL(write_config(0));
        kill(daemon_pid, SIGHUP);
        CU_ASSERT(log_wait_count("Configuration reloaded", NULL, 1));
        CU_ASSERT_FATAL(lease_active());
        CU_ASSERT_FATAL(client_vm_numbers("batch", &n0));
        for (unsigned i = 0; i < 50; i++)
                CU_ASSERT_EQUAL(conv_page(0x200000 + (uint64_t) i * PAGE, true), MC_EXIT_RETRY);
        CU_ASSERT(wait_private("batch", n0.private_bytes + 50 * PAGE));
        CU_ASSERT_FATAL(client_vm_numbers("batch", &n1));
        CU_ASSERT_EQUAL(n1.leased, n0.leased + 50);
        CU_ASSERT_EQUAL(n1.batches, n0.batches);
        CU_ASSERT(write_config(DELAY_MS * 1000));
        kill(daemon_pid, SIGHUP);
        CU_ASSERT(log_wait_count("Configuration reloaded", NULL, 2));
}

/* Held reports go out before Detach: the detached VM's state has them. */
static void test_flushed_before_detach(void)
{
        struct client_vm_numbers n0, n1;

        CU_ASSERT_FATAL(lease_active());
        CU_ASSERT_FATAL(client_vm_numbers("batch", &n0));
        for (unsigned i = 0; i < 3; i++)
                CU_ASSERT_EQUAL(conv_page(0x320000 + (uint64_t) i * PAGE, true), MC_EXIT_RETRY);
        CU_ASSERT_EQUAL(mc_client_detach(client), 0);
        CU_ASSERT_FATAL(client_vm_numbers("batch", &n1));
        CU_ASSERT_EQUAL(n1.private_bytes, n0.private_bytes + 3 * PAGE);
        CU_ASSERT_EQUAL(n1.leased, n0.leased + 3);
}

int main(void)
{
        static const struct client_vm_test tests[] = {
                { "a burst of reports goes in batches, all recorded", test_burst_batched },
                { "a held report is sent when due by the flusher", test_flusher_sends },
                { "held reports go before a request that depends on them", test_flushed_before_request },
                { "LeaseReportDelayUSec=0: no batches", test_no_delay },
                { "held reports go before Detach", test_flushed_before_detach },
        };
        char conf[128];
        int r;

        config_text(conf, sizeof(conf), DELAY_MS * 1000);
        r = client_vm_setup(&vm, conf, "batch", "batch-test-0001", RAM, client_vm_count_apply);
        if (r != 0)
                return r;
        client = vm.client;
        if (mc_client_set_lease(client, true) < 0) {
                fprintf(stderr, "no lease (log: %s)\n", log_path);
                client_vm_teardown(&vm);
                return harness_finish(1);
        }
        return client_vm_run(&vm, "batch", tests, sizeof(tests) / sizeof(tests[0]));
}
