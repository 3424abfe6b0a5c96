/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-protocol.c - the VMM protocol against a real memconvd process.
 *
 * Starts the real daemon on a private socket in a temporary directory,
 * creates real guest_memfd files from /dev/kvm, speaks the wire protocol
 * frame by frame, and checks every refusal: the precise error that comes
 * back, and that nothing changed (the attribute map, probed through the
 * protocol itself; the guest_memfd and shared-memory contents and
 * allocation; the daemon's open fds). Skipped (77) without /dev/kvm.
 *
 * Probing the map without changing it: a conversion request answers RETRY
 * when its whole range is already in the requested state and APPLY
 * otherwise; answering APPLY with Applied(ok = false) rolls it back, so a
 * probe leaves no trace (DESIGN rule 6, itself tested below).
 */
#undef NDEBUG
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "frame.h"
#include "harness.h"
#include "kvm-compat.h"
#include "macro.h"

#define REGION_SIZE (4ULL << 20)
/* ------------------------------------------------------------ tests */

static void test_handshake(void)
{
        struct vmm v = { .sock = raw_connect() };
        Memconv__Message *r;

        /* Anything before hello is refused. */
        memset(v.uuid, 0x11, 16);
        r = attach(&v, "early", 16);
        CU_ASSERT_FATAL(r && r->body_case == MEMCONV__MESSAGE__BODY_ATTACH_REPLY);
        CU_ASSERT_EQUAL(status_code(r->attach_reply->status), MEMCONV__CODE__CODE_PROTOCOL_ERROR);
        CU_ASSERT_PTR_NOT_NULL(strstr(r->attach_reply->status->message, "before hello"));
        memconv__message__free_unpacked(r, NULL);

        r = hello(&v, 7);
        CU_ASSERT_FATAL(r && r->body_case == MEMCONV__MESSAGE__BODY_HELLO_REPLY);
        CU_ASSERT_EQUAL(status_code(r->hello_reply->status), MEMCONV__CODE__CODE_VERSION_MISMATCH);
        CU_ASSERT_PTR_NOT_NULL(strstr(r->hello_reply->status->message, "version 7"));
        memconv__message__free_unpacked(r, NULL);

        r = hello(&v, 1);
        CU_ASSERT_FATAL(r && r->body_case == MEMCONV__MESSAGE__BODY_HELLO_REPLY);
        CU_ASSERT_EQUAL(status_code(r->hello_reply->status), MEMCONV__CODE__CODE_OK);
        CU_ASSERT_EQUAL(r->hello_reply->max_frame, MC_FRAME_MAX);
        memconv__message__free_unpacked(r, NULL);

        /* Not attached yet. */
        expect_decision(convert(&v, REGION_GPA, PAGE, true), MEMCONV__ACTION__ACTION_FAIL,
                        MEMCONV__CODE__CODE_NOT_ATTACHED, "no VM is attached");
        /* Bad attach: uuid of 15 bytes, name with a slash. */
        r = attach(&v, "ok", 15);
        CU_ASSERT_EQUAL(status_code(r->attach_reply->status), MEMCONV__CODE__CODE_INVALID_ARGUMENT);
        CU_ASSERT_PTR_NOT_NULL(strstr(r->attach_reply->status->message, "uuid"));
        memconv__message__free_unpacked(r, NULL);
        r = attach(&v, "a/b", 16);
        CU_ASSERT_EQUAL(status_code(r->attach_reply->status), MEMCONV__CODE__CODE_INVALID_ARGUMENT);
        memconv__message__free_unpacked(r, NULL);
        safe_close(v.sock);
}

static void test_bad_fds(void)
{
        struct vmm v;
        Memconv__Message *r;
        int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        int sp[2], small, before;
        char path[320];
        int regular;

        vmm_open(&v, 0x21);
        r = attach(&v, "badfds", 16);
        CU_ASSERT_EQUAL_FATAL(status_code(r->attach_reply->status), MEMCONV__CODE__CODE_OK);
        memconv__message__free_unpacked(r, NULL);
        snprintf(path, sizeof(path), "%s/regular", tmpdir);
        regular = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        CU_ASSERT_FATAL(regular >= 0 && ftruncate(regular, (off_t) REGION_SIZE) == 0);
        CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == 0);
        small = gmem_create(PAGE * 4);
        CU_ASSERT_FATAL(small >= 0);
        before = daemon_fd_count(NULL);

        /* A memfd posing as guest_memfd, /dev/null, a regular file, a socket. */
        expect_reply(register_region(&v, 0, REGION_GPA, REGION_SIZE, v.shared, -1), MEMCONV__CODE__CODE_BAD_FD,
                     "not a KVM guest_memfd");
        expect_reply(register_region(&v, 0, REGION_GPA, REGION_SIZE, devnull, -1), MEMCONV__CODE__CODE_BAD_FD,
                     "not a KVM guest_memfd");
        expect_reply(register_region(&v, 0, REGION_GPA, REGION_SIZE, regular, -1), MEMCONV__CODE__CODE_BAD_FD,
                     "not a KVM guest_memfd");
        expect_reply(register_region(&v, 0, REGION_GPA, REGION_SIZE, sp[0], -1), MEMCONV__CODE__CODE_BAD_FD,
                     "not a KVM guest_memfd");
        /* Shared side not shared memory; guest_memfd too small; the fd counts wrong. */
        expect_reply(register_region(&v, 0, REGION_GPA, REGION_SIZE, v.gmem, regular), MEMCONV__CODE__CODE_BAD_FD,
                     "the shared fd is not");
        expect_reply(register_region(&v, 0, REGION_GPA, REGION_SIZE, v.gmem, devnull), MEMCONV__CODE__CODE_BAD_FD,
                     "the shared fd is not");
        expect_reply(register_region(&v, 0, REGION_GPA, REGION_SIZE, small, -1), MEMCONV__CODE__CODE_BAD_FD,
                     "smaller than");
        /* Geometry. */
        expect_reply(register_region(&v, 0, REGION_GPA + 1, REGION_SIZE, v.gmem, -1),
                     MEMCONV__CODE__CODE_INVALID_ARGUMENT, "4 KiB aligned");
        expect_reply(register_region(&v, 0, UINT64_MAX - PAGE + 1, REGION_SIZE, v.gmem, -1),
                     MEMCONV__CODE__CODE_INVALID_ARGUMENT, "overflow");

        /* No fd was kept by any refusal. */
        CU_ASSERT_EQUAL(daemon_fd_settle(NULL, before), before);
        CU_ASSERT_EQUAL(daemon_fd_settle("kvm-gmem", 0), 0);
        /* And the VM has no region: a conversion there is out of range. */
        expect_decision(convert(&v, REGION_GPA, PAGE, true), MEMCONV__ACTION__ACTION_FAIL,
                        MEMCONV__CODE__CODE_OUT_OF_RANGE, "not wholly inside");
        assert_backing_intact(&v, 0x21);

        safe_close(regular);
        safe_close(devnull);
        safe_close(small);
        safe_close(sp[0]);
        safe_close(sp[1]);
        vmm_close(&v);
}

static void test_refusals_change_nothing(void)
{
        struct vmm v;
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__Convert c = MEMCONV__CONVERT__INIT;
        Memconv__Message *r;

        vmm_open(&v, 0x31);
        vmm_attach_region(&v, "refusals");

        expect_decision(convert(&v, REGION_GPA + 1, PAGE, true), MEMCONV__ACTION__ACTION_FAIL,
                        MEMCONV__CODE__CODE_INVALID_ARGUMENT, "4 KiB aligned");
        expect_decision(convert(&v, REGION_GPA, PAGE + 512, true), MEMCONV__ACTION__ACTION_FAIL,
                        MEMCONV__CODE__CODE_INVALID_ARGUMENT, "4 KiB aligned");
        expect_decision(convert(&v, REGION_GPA, 0, true), MEMCONV__ACTION__ACTION_FAIL,
                        MEMCONV__CODE__CODE_INVALID_ARGUMENT, NULL);
        expect_decision(convert(&v, UINT64_MAX - PAGE + 1, 2 * PAGE, true), MEMCONV__ACTION__ACTION_FAIL,
                        MEMCONV__CODE__CODE_INVALID_ARGUMENT, "overflow");
        expect_decision(convert(&v, REGION_GPA + REGION_SIZE - PAGE, 2 * PAGE, true), MEMCONV__ACTION__ACTION_FAIL,
                        MEMCONV__CODE__CODE_OUT_OF_RANGE, "not wholly inside");
        expect_decision(convert(&v, 0, PAGE, true), MEMCONV__ACTION__ACTION_FAIL,
                        MEMCONV__CODE__CODE_OUT_OF_RANGE, NULL);
        /* To shared outside RAM is a successful no-op (an MMIO hole). */
        expect_decision(convert(&v, 0, PAGE, false), MEMCONV__ACTION__ACTION_RETRY, MEMCONV__CODE__CODE_OK, NULL);
        /* An unknown target attribute. */
        c.gpa = REGION_GPA;
        c.size = PAGE;
        c.to = 5;
        m.body_case = MEMCONV__MESSAGE__BODY_CONVERT;
        m.convert = &c;
        expect_decision(call(&v, &m, NULL, 0), MEMCONV__ACTION__ACTION_FAIL, MEMCONV__CODE__CODE_INVALID_ARGUMENT,
                        "unknown target attribute");
        /* Faults that are not conversions go back to the VMM. */
        expect_decision(fault(&v, REGION_GPA, 1ULL << 5), MEMCONV__ACTION__ACTION_NOT_HANDLED,
                        MEMCONV__CODE__CODE_OK, "flags 0x20");
        expect_decision(fault(&v, 0x1000, 1ULL << 3), MEMCONV__ACTION__ACTION_NOT_HANDLED, MEMCONV__CODE__CODE_OK,
                        "no region");
        /* Applied for a decision that does not exist. */
        applied(&v, 999999, true);
        r = recv_msg(v.sock);
        expect_reply(r, MEMCONV__CODE__CODE_NOT_FOUND, "no decision 999999");

        /* Nothing changed: all still shared, backing untouched. */
        CU_ASSERT(probe_all(&v, REGION_GPA, REGION_SIZE, false));
        usleep(50000);
        assert_backing_intact(&v, 0x31);
        CU_ASSERT(log_wait("MEMCONV_EVENT=refused", "MEMCONV_CODE=invalid-argument"));
        CU_ASSERT(log_wait("MEMCONV_EVENT=refused", "MEMCONV_CODE=out-of-range"));
        CU_ASSERT(!log_contains("MEMCONV_EVENT=change", "MEMCONV_VM=refusals"));
        vmm_close(&v);
}

static void test_bad_frames(void)
{
        struct vmm v;
        uint8_t big[MC_FRAME_MAX + 100];
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__Convert c = MEMCONV__CONVERT__INIT;
        Memconv__Message *r;
        int before, extra;

        vmm_open(&v, 0x41);
        vmm_attach_region(&v, "frames");
        before = daemon_fd_count(NULL);

        memset(big, 0x5a, sizeof(big));
        CU_ASSERT_FATAL(send(v.sock, big, sizeof(big), 0) == (ssize_t) sizeof(big));
        expect_reply(recv_msg(v.sock), MEMCONV__CODE__CODE_PROTOCOL_ERROR, "larger than");
        CU_ASSERT_FATAL(send(v.sock, "\xff\xff\xff\xff\x0f garbage", 14, 0) == 14);
        expect_reply(recv_msg(v.sock), MEMCONV__CODE__CODE_PROTOCOL_ERROR, "not a memconv.Message");

        /* An fd on a message that takes none is refused and not kept. */
        extra = memfd_create("extra", MFD_CLOEXEC);
        c.gpa = REGION_GPA;
        c.size = PAGE;
        c.to = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
        m.body_case = MEMCONV__MESSAGE__BODY_CONVERT;
        m.convert = &c;
        r = call(&v, &m, &extra, 1);
        expect_decision(r, MEMCONV__ACTION__ACTION_FAIL, MEMCONV__CODE__CODE_BAD_FD, "takes 0 fd(s), 1 came");
        safe_close(extra);
        CU_ASSERT_EQUAL(daemon_fd_settle(NULL, before), before);

        /* The connection still works and nothing changed. */
        CU_ASSERT(probe_all(&v, REGION_GPA, REGION_SIZE, false));
        assert_backing_intact(&v, 0x41);
        vmm_close(&v);
}

static void test_convert_commit_and_rollback(void)
{
        struct vmm v;
        Memconv__Message *r;
        uint64_t gpa = REGION_GPA + 8 * PAGE, off = 8 * PAGE, dec;

        vmm_open(&v, 0x51);
        vmm_attach_region(&v, "commit");

        /* To private: apply, report, then the shared copy is discarded. */
        r = convert(&v, gpa, 2 * PAGE, true);
        CU_ASSERT_FATAL(r && r->decision->action == MEMCONV__ACTION__ACTION_APPLY);
        CU_ASSERT_EQUAL_FATAL(r->decision->n_ranges, 1);
        CU_ASSERT_EQUAL(r->decision->ranges[0]->gpa, gpa);
        CU_ASSERT_EQUAL(r->decision->ranges[0]->size, 2 * PAGE);
        CU_ASSERT_EQUAL(r->decision->to, MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE);
        dec = r->decision->decision_id;
        memconv__message__free_unpacked(r, NULL);
        applied(&v, dec, true);
        /* Rule 4: this request waits for the discard, then is spurious. */
        expect_decision(convert(&v, gpa, 2 * PAGE, true), MEMCONV__ACTION__ACTION_RETRY, MEMCONV__CODE__CODE_OK, NULL);
        /* Once journaled, the daemon confirms the decision (rule 5). */
        {
                uint64_t t0 = now_ms();

                while (last_committed < dec && now_ms() - t0 < SETTLE_MS) {
                        Memconv__Message *x = recv_msg(v.sock);

                        if (x)
                                memconv__message__free_unpacked(x, NULL);
                }
                CU_ASSERT(last_committed >= dec);
        }
        CU_ASSERT(is_hole(v.shared, off));
        CU_ASSERT(is_hole(v.shared, off + PAGE));
        CU_ASSERT(!is_hole(v.shared, off + 2 * PAGE));
        CU_ASSERT(!is_hole(v.shared, off - PAGE));
        CU_ASSERT(log_wait("MEMCONV_EVENT=change", "MEMCONV_GPA=0x100008000"));
        CU_ASSERT(log_wait("MEMCONV_GPA=0x100008000", "MEMCONV_TO=private"));

        /* To shared, but the VMM fails to apply: rollback, nothing discarded. */
        r = convert(&v, gpa, 2 * PAGE, false);
        CU_ASSERT_FATAL(r && r->decision->action == MEMCONV__ACTION__ACTION_APPLY);
        dec = r->decision->decision_id;
        memconv__message__free_unpacked(r, NULL);
        applied(&v, dec, false);
        CU_ASSERT(probe_all(&v, gpa, 2 * PAGE, true));
        if (gmem_mmap)
                CU_ASSERT(same(v.gmem_map + off, 2 * PAGE, (uint8_t) (0x51 + 0x80 + 8)));
        CU_ASSERT(log_wait("failed to apply decision", "rolled back"));

        /* A spanning request: part already private, only the rest changes. */
        r = convert(&v, gpa - PAGE, 4 * PAGE, true);
        CU_ASSERT_FATAL(r && r->decision->action == MEMCONV__ACTION__ACTION_APPLY);
        CU_ASSERT_EQUAL_FATAL(r->decision->n_ranges, 2);
        CU_ASSERT_EQUAL(r->decision->ranges[0]->gpa, gpa - PAGE);
        CU_ASSERT_EQUAL(r->decision->ranges[0]->size, PAGE);
        CU_ASSERT_EQUAL(r->decision->ranges[1]->gpa, gpa + 2 * PAGE);
        dec = r->decision->decision_id;
        memconv__message__free_unpacked(r, NULL);
        /* While it is in flight, an overlapping request waits: no answer yet. */
        r = convert(&v, gpa - PAGE, PAGE, false);
        CU_ASSERT(r == NULL);
        applied(&v, dec, true);
        /* Once committed and discarded, the waiting request is decided. */
        r = recv_msg(v.sock);
        expect_decision(r, MEMCONV__ACTION__ACTION_APPLY, MEMCONV__CODE__CODE_OK, NULL);
        vmm_close(&v);
}

static void test_two_vms(void)
{
        struct vmm a, b;
        Memconv__Message *r;
        uint64_t dec;

        vmm_open(&a, 0x61);
        vmm_attach_region(&a, "vm-a");
        vmm_open(&b, 0x62);
        r = attach(&b, "vm-b", 16);
        memconv__message__free_unpacked(r, NULL);

        /* B cannot register A's guest_memfd. */
        expect_reply(register_region(&b, 0, REGION_GPA, REGION_SIZE, a.gmem, -1), MEMCONV__CODE__CODE_EXISTS,
                     "another VM");
        expect_reply(register_region(&b, 0, 2 * REGION_GPA, REGION_SIZE, b.gmem, b.shared), MEMCONV__CODE__CODE_OK, NULL);
        /* B cannot convert A's range (it is not B's RAM) ... */
        expect_decision(convert(&b, REGION_GPA, PAGE, true), MEMCONV__ACTION__ACTION_FAIL,
                        MEMCONV__CODE__CODE_OUT_OF_RANGE, NULL);
        /* ... nor report A's decision. */
        r = convert(&a, REGION_GPA, PAGE, true);
        CU_ASSERT_FATAL(r && r->decision->action == MEMCONV__ACTION__ACTION_APPLY);
        dec = r->decision->decision_id;
        memconv__message__free_unpacked(r, NULL);
        applied(&b, dec, true);
        expect_reply(recv_msg(b.sock), MEMCONV__CODE__CODE_NOT_FOUND, "no decision");
        /* B attaching A's uuid is refused while A is attached. */
        {
                struct vmm c;

                vmm_open(&c, 0x61);
                r = attach(&c, "thief", 16);
                CU_ASSERT_EQUAL(status_code(r->attach_reply->status), MEMCONV__CODE__CODE_EXISTS);
                memconv__message__free_unpacked(r, NULL);
                vmm_close(&c);
        }
        /* A's decision is still A's to report; A's memory untouched by B. */
        applied(&a, dec, true);
        CU_ASSERT(probe_all(&a, REGION_GPA, PAGE, true));
        CU_ASSERT(probe_all(&b, 2 * REGION_GPA, REGION_SIZE, false));
        vmm_close(&b);
        vmm_close(&a);
}

static void test_disconnect_closes_fds(void)
{
        struct vmm v;
        uint64_t t0;
        int n;

        vmm_open(&v, 0x71);
        vmm_attach_region(&v, "leaver");
        CU_ASSERT(daemon_fd_count("kvm-gmem") >= 1);
        CU_ASSERT(daemon_fd_count("memfd:shared") >= 1);
        safe_close(v.sock);
        t0 = now_ms();
        /* The daemon closes the fds and logs the detach one after the other
         * on its own thread; wait for all three (the deadline only bounds a
         * hang, it is not what is being tested). */
        while (((n = daemon_fd_count("kvm-gmem")) > 0 || daemon_fd_count("memfd:shared") > 0 ||
                !log_contains("VM leaver", "detached: the VMM disconnected")) &&
               now_ms() - t0 < 10000)
                usleep(1000);
        CU_ASSERT_EQUAL(n, 0);
        CU_ASSERT_EQUAL(daemon_fd_count("memfd:shared"), 0);
        printf("\n  guest_memfd released %" PRIu64 " ms after disconnect\n", now_ms() - t0);
        CU_ASSERT(log_wait("VM leaver", "detached: the VMM disconnected"));
        v.sock = -1;
        vmm_close(&v);
}


static void test_reattach(void)
{
        struct vmm v, w;
        Memconv__Message *r, m = MEMCONV__MESSAGE__INIT;
        Memconv__Detach d = MEMCONV__DETACH__INIT;
        uint8_t token[16], bad[16];
        uint64_t id1, dec;
        int gone;

        vmm_open(&v, 0x81);
        r = attach(&v, "phoenix", 16);
        CU_ASSERT_EQUAL_FATAL(status_code(r->attach_reply->status), MEMCONV__CODE__CODE_OK);
        memcpy(token, r->attach_reply->token.data, 16);
        id1 = r->attach_reply->vm_id;
        memconv__message__free_unpacked(r, NULL);
        expect_reply(register_region(&v, 0, REGION_GPA, REGION_SIZE, v.gmem, v.shared), MEMCONV__CODE__CODE_OK, NULL);

        /* A request waiting on a busy range is answered when the VMM detaches. */
        r = convert(&v, REGION_GPA, PAGE, true);
        CU_ASSERT_FATAL(r && r->decision->action == MEMCONV__ACTION__ACTION_APPLY);
        dec = r->decision->decision_id;
        memconv__message__free_unpacked(r, NULL);
        CU_ASSERT(convert(&v, REGION_GPA, PAGE, false) == NULL); /* waits */
        m.body_case = MEMCONV__MESSAGE__BODY_DETACH;
        m.detach = &d;
        m.id = 4242;
        CU_ASSERT_FATAL(mc_frame_send(v.sock, &m, NULL, 0) == 0);
        r = recv_msg(v.sock);
        expect_decision(r, MEMCONV__ACTION__ACTION_FAIL, MEMCONV__CODE__CODE_NOT_ATTACHED, "detached while");
        expect_reply(recv_msg(v.sock), MEMCONV__CODE__CODE_OK, NULL);
        CU_ASSERT(log_wait("decision", "abandoned"));
        (void) dec;

        /* A wrong token resumes nothing; the right one resumes the same VM. */
        memset(bad, 0xee, sizeof(bad));
        r = attach_token(&v, "phoenix", 16, bad);
        CU_ASSERT_EQUAL(status_code(r->attach_reply->status), MEMCONV__CODE__CODE_PERMISSION_DENIED);
        memconv__message__free_unpacked(r, NULL);
        r = attach_token(&v, "phoenix", 16, token);
        CU_ASSERT_EQUAL_FATAL(status_code(r->attach_reply->status), MEMCONV__CODE__CODE_OK);
        CU_ASSERT_EQUAL(r->attach_reply->vm_id, id1);
        memconv__message__free_unpacked(r, NULL);
        gone = log_count("VM phoenix", "detached: the VMM disconnected");
        safe_close(v.sock);

        /* Without a token, the same uuid starts a new instance (the old one is kept). */
        CU_ASSERT(log_wait_count("VM phoenix", "detached: the VMM disconnected", gone + 1));
        vmm_open(&w, 0x81);
        r = attach(&w, "phoenix", 16);
        CU_ASSERT_EQUAL_FATAL(status_code(r->attach_reply->status), MEMCONV__CODE__CODE_OK);
        CU_ASSERT_NOT_EQUAL(r->attach_reply->vm_id, id1);
        memconv__message__free_unpacked(r, NULL);
        v.sock = -1;
        vmm_close(&v);
        vmm_close(&w);
}


int main(void)
{
        CU_pSuite s;
        unsigned failures;
        int r;

        r = harness_setup(true);
        if (r != 0)
                return r;

        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        s = CU_add_suite("protocol", NULL, NULL);
        CU_add_test(s, "handshake and attach refusals", test_handshake);
        CU_add_test(s, "fds of the wrong kind", test_bad_fds);
        CU_add_test(s, "conversion refusals change nothing", test_refusals_change_nothing);
        CU_add_test(s, "oversized, garbage and fd-carrying frames", test_bad_frames);
        CU_add_test(s, "commit, discard, rollback, ordering", test_convert_commit_and_rollback);
        CU_add_test(s, "two VMs cannot touch each other", test_two_vms);
        CU_add_test(s, "disconnect closes the VM's fds", test_disconnect_closes_fds);
        CU_add_test(s, "detach answers waiters; re-attach by token or as a new instance", test_reattach);
        CU_basic_set_mode(CU_BRM_VERBOSE);
        CU_basic_run_tests();
        failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
        CU_cleanup_registry();
        return harness_finish(failures);
}
