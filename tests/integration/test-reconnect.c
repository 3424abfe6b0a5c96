/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-reconnect.c - libmemconv across a memconvd restart, at the moments
 * where the client's own threads race the reconnect. Real daemon (killed
 * with SIGKILL and started again on the same state directory), real
 * guest_memfd and memfd, the library as a VMM links it; the apply callback
 * holds a vCPU thread inside a conversion to pin each moment down.
 *
 *  - A request still waiting for its Decision when the daemon dies stays
 *    tracked (kept off the lease) through the reconnect: the new daemon
 *    decides it, and counts on the VMM not converting over it meanwhile.
 *  - A decision being applied while another thread reconnects is waited
 *    for, and re-sent as Reapplied: without that, the new daemon's map
 *    would miss it and Resumed would discard the side the guest now uses.
 *  - Under a lease, at most 256 ranges wait for memconvd; past that the
 *    vCPU asks, and waits, until memconvd catches up with its discards.
 *  - A report under the lease that memconvd refuses is forgotten: sent
 *    again after a restart, it would fail the reconnect (its region is
 *    gone) or land out of order.
 *  - A Lease the dying daemon sent, read by a thread that is preempted
 *    before it handles it while another reconnects, is dropped: used on the
 *    new connection, it would convert under a lease the new daemon never
 *    granted. The test's own recvmsg() holds that thread.
 *  - A thread preempted inside its send while another reconnects: the old
 *    fd is not closed under it (its number could go to another file at
 *    once), and what it sends never reaches the new connection or a file
 *    that took the number. The test's own sendmsg() holds the thread.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client-vm.h"
#include "harness.h"
#include "memconv.h"
#include "memconv.pb-c.h"

#define RAM (4ULL << 20)
#define WAIT_MS 5000

static mc_client *client;

/* The apply callback: counts, and holds the thread converting @hold_gpa. */
static pthread_mutex_t cb_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cb_cond = PTHREAD_COND_INITIALIZER;
static uint64_t hold_gpa = UINT64_MAX;
static bool held, released;
static unsigned applies;

static int apply_cb(void *userdata, uint64_t gpa, uint64_t size, bool to_private)
{
        pthread_mutex_lock(&cb_lock);
        applies++;
        if (gpa == hold_gpa) {
                held = true;
                pthread_cond_broadcast(&cb_cond);
                while (!released)
                        pthread_cond_wait(&cb_cond, &cb_lock);
        }
        pthread_mutex_unlock(&cb_lock);
        return 0;
}

static void hold(uint64_t gpa)
{
        pthread_mutex_lock(&cb_lock);
        hold_gpa = gpa;
        held = released = false;
        pthread_mutex_unlock(&cb_lock);
}

/* wait_held() - until the held thread is inside the callback; Return: whether it came */
static bool wait_held(void)
{
        uint64_t t0 = now_ms();
        bool h;

        for (;;) {
                pthread_mutex_lock(&cb_lock);
                h = held;
                pthread_mutex_unlock(&cb_lock);
                if (h || now_ms() - t0 > WAIT_MS)
                        return h;
                usleep(1000);
        }
}

static void release(void)
{
        pthread_mutex_lock(&cb_lock);
        released = true;
        hold_gpa = UINT64_MAX;
        pthread_cond_broadcast(&cb_cond);
        pthread_mutex_unlock(&cb_lock);
}

static unsigned applies_now(void)
{
        unsigned n;

        pthread_mutex_lock(&cb_lock);
        n = applies;
        pthread_mutex_unlock(&cb_lock);
        return n;
}

static void daemon_kill(void)
{
        kill(daemon_pid, SIGKILL);
        waitpid(daemon_pid, NULL, 0);
}

/* lease_wait() - dispatch until the lease stats satisfy @pred; Return: whether they did */
static bool lease_wait(bool (*pred)(const struct mc_lease_stats *), bool dispatch)
{
        struct mc_lease_stats st;
        uint64_t t0 = now_ms();

        for (;;) {
                if (dispatch)
                        (void) mc_client_dispatch(client);
                mc_client_lease_stats(client, &st);
                if (pred(&st))
                        return true;
                if (now_ms() - t0 > WAIT_MS)
                        return false;
                usleep(1000);
        }
}

static bool is_active(const struct mc_lease_stats *s) { return s->active; }
static bool is_inactive(const struct mc_lease_stats *s) { return !s->active; }
static bool one_tracked(const struct mc_lease_stats *s) { return s->tracked == 1; }
static bool none_tracked(const struct mc_lease_stats *s) { return s->tracked == 0; }

struct conv_job {
        pthread_t thread;
        unsigned vcpu;
        uint64_t gpa, size;
        int result;
        bool done;
};

static void *conv_thread(void *arg)
{
        struct conv_job *j = arg;

        j->result = mc_client_convert(client, j->vcpu, j->gpa, j->size, true, MC_SOURCE_KVM_HC_MAP_GPA_RANGE,
                                      MC_PAGE_4K, NULL);
        __atomic_store_n(&j->done, true, __ATOMIC_RELEASE);
        return NULL;
}

static void conv_start(struct conv_job *j, unsigned vcpu, uint64_t gpa, uint64_t size)
{
        *j = (struct conv_job) { .vcpu = vcpu, .gpa = gpa, .size = size };
        CU_ASSERT_FATAL(pthread_create(&j->thread, NULL, conv_thread, j) == 0);
}

/* already_private() - the daemon's map has [gpa, +size) private: converting it again is spurious */
static bool already_private(uint64_t gpa, uint64_t size)
{
        unsigned before = applies_now();
        int r = mc_client_convert(client, 0, gpa, size, true, MC_SOURCE_KVM_HC_MAP_GPA_RANGE, MC_PAGE_4K, NULL);

        return r == MC_EXIT_RETRY && applies_now() == before;
}

/* An answered Attach survives a crash right after it: the token resumes the VM. */
static void test_attach_durable(void)
{
        struct mc_vm_info info = { .name = "durable-attach", .cc_type = MC_CC_TDX, .arch = MC_ARCH_X86_64 };
        mc_client *c = NULL;
        int r;

        memcpy(info.uuid, "durable-attach-1", 16);
        CU_ASSERT_FATAL(mc_client_connect(sock_path, &c) == 0);
        CU_ASSERT_FATAL(mc_client_attach(c, &info, NULL) == 0);
        daemon_kill();
        CU_ASSERT_FATAL(daemon_start() == 0);
        CU_ASSERT(log_wait("VM durable-attach", "restored from"));
        /* The request reconnects (attach with the token) and is then asked: the VM has no
         * memory there, so it is refused; what matters is that it is not -ESTALE. */
        mc_client_set_reconnect(c, 20000);
        r = mc_client_convert(c, 0, 0, PAGE, true, MC_SOURCE_KVM_HC_MAP_GPA_RANGE, MC_PAGE_4K, NULL);
        CU_ASSERT_NOT_EQUAL(r, -ESTALE);
        CU_ASSERT(log_wait("VM durable-attach", "resumed by pid"));
        mc_client_free(c);
        /* The other VM's client reconnects at its next request too. */
        CU_ASSERT_EQUAL(mc_client_convert(client, 0, 0x70000, 2 * PAGE, true, MC_SOURCE_KVM_HC_MAP_GPA_RANGE,
                                          MC_PAGE_4K, NULL), MC_EXIT_RETRY);
}

/*
 * The lease covers 4 KiB (LeaseMaxBytes=4K): 8 KiB requests are asked of
 * the daemon, and tracked by the library until settled.
 */
static void test_pending_request_stays_tracked(void)
{
        struct mc_lease_stats st;
        struct conv_job j;

        CU_ASSERT_FATAL(mc_client_set_lease(client, true) == 0);
        CU_ASSERT_FATAL(lease_wait(is_active, true));

        /* The daemon takes the request but does not answer. */
        kill(daemon_pid, SIGSTOP);
        conv_start(&j, 0, 0x10000, 2 * PAGE);
        CU_ASSERT_FATAL(lease_wait(one_tracked, false));
        daemon_kill();
        /* The vCPU thread notices, and reconnects with backoff: nobody listens. */
        CU_ASSERT_FATAL(lease_wait(is_inactive, false));
        mc_client_lease_stats(client, &st);
        CU_ASSERT_EQUAL(st.tracked, 1);  /* still waiting for its Decision, from the next daemon */
        CU_ASSERT_FALSE(__atomic_load_n(&j.done, __ATOMIC_ACQUIRE));

        CU_ASSERT_FATAL(daemon_start() == 0);
        pthread_join(j.thread, NULL);
        CU_ASSERT_EQUAL(j.result, MC_EXIT_RETRY);
        /* Decided by the new daemon, applied, then settled; and leased again. */
        CU_ASSERT(lease_wait(none_tracked, true));
        CU_ASSERT(lease_wait(is_active, true));
        CU_ASSERT(already_private(0x10000, 2 * PAGE));
}

static void test_applying_decision_resent(void)
{
        struct conv_job t, u;
        uint64_t t0;

        /* vCPU 0 is inside the attribute callback of a decision of the old daemon. */
        hold(0x20000);
        conv_start(&t, 0, 0x20000, 2 * PAGE);
        CU_ASSERT_FATAL(wait_held());
        daemon_kill();
        CU_ASSERT_FATAL(daemon_start() == 0);

        /* vCPU 1 finds the connection dead and reconnects: it must wait for vCPU 0's
         * conversion to be remembered, or the handshake would not re-send it. */
        conv_start(&u, 1, 0x40000, 2 * PAGE);
        t0 = now_ms();
        while (!__atomic_load_n(&u.done, __ATOMIC_ACQUIRE) && now_ms() - t0 < 1000)
                usleep(1000);
        CU_ASSERT_FALSE(__atomic_load_n(&u.done, __ATOMIC_ACQUIRE));
        release();
        pthread_join(t.thread, NULL);
        pthread_join(u.thread, NULL);
        CU_ASSERT_EQUAL(t.result, MC_EXIT_RETRY);
        CU_ASSERT_EQUAL(u.result, MC_EXIT_RETRY);

        /* The new daemon knows both: the map has them, so converting again changes nothing. */
        CU_ASSERT(already_private(0x20000, 2 * PAGE));
        CU_ASSERT(already_private(0x40000, 2 * PAGE));
}

/* Under a lease, at most LEASE_MAX_UNSETTLED (256) ranges are waiting for memconvd: past
 * that, a conversion is asked of it and its vCPU waits until memconvd catches up. */
#define MAX_UNSETTLED 256

struct burst {
        pthread_t thread;
        unsigned n, done;
        int failed;
};

static void *burst_thread(void *arg)
{
        struct burst *b = arg;

        for (unsigned i = 0; i < b->n; i++) {
                /* A page each, none overlapping: only the bound stops the lease. */
                int r = mc_client_convert(client, 2, 0x100000 + (uint64_t) i * PAGE, PAGE, true,
                                          MC_SOURCE_KVM_HC_MAP_GPA_RANGE, MC_PAGE_4K, NULL);

                if (r != MC_EXIT_RETRY)
                        b->failed++;
                __atomic_store_n(&b->done, i + 1, __ATOMIC_RELEASE);
        }
        return NULL;
}

static bool bound_reached(const struct mc_lease_stats *s) { return s->tracked == MAX_UNSETTLED + 1; }

static void test_unsettled_bound(void)
{
        struct mc_lease_stats before, st;
        struct burst b = { .n = MAX_UNSETTLED + 20 };

        CU_ASSERT_FATAL(lease_wait(is_active, true));
        CU_ASSERT_FATAL(lease_wait(none_tracked, true));
        mc_client_lease_stats(client, &before);
        /* Nothing memconvd does reaches the client now: no conversion is ever settled. */
        kill(daemon_pid, SIGSTOP);
        CU_ASSERT_FATAL(pthread_create(&b.thread, NULL, burst_thread, &b) == 0);
        /* MAX_UNSETTLED under the lease, then one asked, which waits for the daemon. */
        CU_ASSERT(lease_wait(bound_reached, false));
        mc_client_lease_stats(client, &st);
        CU_ASSERT_EQUAL(st.leased, before.leased + MAX_UNSETTLED);
        CU_ASSERT_EQUAL(st.asked, before.asked + 1);
        CU_ASSERT_EQUAL(__atomic_load_n(&b.done, __ATOMIC_ACQUIRE), MAX_UNSETTLED);
        kill(daemon_pid, SIGCONT);
        pthread_join(b.thread, NULL);
        CU_ASSERT_EQUAL(b.failed, 0);
        CU_ASSERT_EQUAL(b.done, b.n);
        /* Everything is settled in the end; all of it is in memconvd's map. */
        CU_ASSERT(lease_wait(none_tracked, true));
        CU_ASSERT(already_private(0x100000, (uint64_t) b.n * PAGE));
}

static void test_refused_report_forgotten(void)
{
        struct mc_region_info ri = {
                .slot = 1,
                .gpa = RAM,
                .size = RAM,
                .guest_memfd = gmem_create(RAM),
                .shared_fd = memfd_create("reconnect-shared-1", MFD_CLOEXEC),
        };
        struct mc_lease_stats before, after;
        struct conv_job j;
        int r;

        CU_ASSERT_FATAL(ri.guest_memfd >= 0 && ri.shared_fd >= 0 && ftruncate(ri.shared_fd, RAM) == 0);
        CU_ASSERT_FATAL(mc_client_register_region(client, &ri) == 0);
        CU_ASSERT_FATAL(lease_wait(is_active, true));
        mc_client_lease_stats(client, &before);

        /* A 4 KiB conversion in slot 1 goes under the lease; while it is being applied the
         * VMM unplugs slot 1, so memconvd refuses the report (not its memory any more). */
        hold(RAM + 0x3000);
        conv_start(&j, 0, RAM + 0x3000, PAGE);
        CU_ASSERT_FATAL(wait_held());
        CU_ASSERT_FATAL(mc_client_unregister_region(client, 1) == 0);
        release();
        pthread_join(j.thread, NULL);
        CU_ASSERT_EQUAL(j.result, MC_EXIT_RETRY);
        CU_ASSERT(log_wait("leased-applied", "is not inside this VM's registered memory"));
        /* The refusal revokes the lease; reading it also reads the refusal. */
        CU_ASSERT(lease_wait(is_inactive, true));
        mc_client_lease_stats(client, &after);
        CU_ASSERT_EQUAL(after.revocations, before.revocations + 1);
        CU_ASSERT_EQUAL(after.leased, before.leased + 1);

        /* After a restart the refused report is not re-sent: the new daemon refuses no
         * Reapplied, and the reconnect goes through at once. */
        daemon_kill();
        CU_ASSERT_FATAL(daemon_start() == 0);
        r = mc_client_convert(client, 0, 0x60000, 2 * PAGE, true, MC_SOURCE_KVM_HC_MAP_GPA_RANGE, MC_PAGE_4K, NULL);
        CU_ASSERT_EQUAL(r, MC_EXIT_RETRY);
        CU_ASSERT_FALSE(log_contains("reapplied:", NULL));
        CU_ASSERT(already_private(0x60000, 2 * PAGE));
        close(ri.guest_memfd);
        close(ri.shared_fd);
}

/*
 * sendmsg() - the test's own, which libmemconv's calls reach first (the
 * executable's definition interposes libc's): a thread that set
 * @send_hold_me stops before its next send until send_release() or
 * SEND_HOLD_MS, as if preempted there, and its fd is noted.
 */
#define SEND_HOLD_MS 1000

static __thread bool send_hold_me;
static int send_held_fd = -1;
static bool send_held, send_released;

__attribute__((visibility("default"))) ssize_t sendmsg(int fd, const struct msghdr *mh, int flags)
{
        static ssize_t (*real)(int, const struct msghdr *, int);

        if (!real)
                real = (ssize_t (*)(int, const struct msghdr *, int)) dlsym(RTLD_NEXT, "sendmsg");
        if (send_hold_me) {
                uint64_t t0 = now_ms();

                send_hold_me = false;
                pthread_mutex_lock(&cb_lock);
                send_held_fd = fd;
                send_held = true;
                pthread_cond_broadcast(&cb_cond);
                while (!send_released && now_ms() - t0 < SEND_HOLD_MS) {
                        pthread_mutex_unlock(&cb_lock);
                        usleep(1000);
                        pthread_mutex_lock(&cb_lock);
                }
                pthread_mutex_unlock(&cb_lock);
        }
        return real(fd, mh, flags);
}

static void send_release(void)
{
        pthread_mutex_lock(&cb_lock);
        send_released = true;
        pthread_mutex_unlock(&cb_lock);
}

static void *held_send_thread(void *arg)
{
        struct conv_job *j = arg;

        send_hold_me = true;
        j->result = mc_client_convert(client, j->vcpu, j->gpa, j->size, true, MC_SOURCE_KVM_HC_MAP_GPA_RANGE,
                                      MC_PAGE_4K, NULL);
        __atomic_store_n(&j->done, true, __ATOMIC_RELEASE);
        return NULL;
}

static void test_send_across_reconnect(void)
{
        struct conv_job a = { .vcpu = 1, .gpa = 0x80000, .size = 2 * PAGE };
        int sp[2] = { -1, -1 }, r, fd;
        bool reused = false;
        uint64_t t0 = now_ms();
        char buf[256];

        /* 8 KiB, past the lease: asked, and on the socket. */
        mc_client_set_ring(client, false);
        CU_ASSERT_FATAL(pthread_create(&a.thread, NULL, held_send_thread, &a) == 0);
        for (;;) {
                pthread_mutex_lock(&cb_lock);
                fd = send_held ? send_held_fd : -1;
                pthread_mutex_unlock(&cb_lock);
                if (fd >= 0 || now_ms() - t0 > WAIT_MS)
                        break;
                usleep(1000);
        }
        CU_ASSERT_FATAL(fd >= 0);

        /* The daemon dies while vCPU 1 is inside its send; vCPU 0 reconnects meanwhile. */
        daemon_kill();
        CU_ASSERT_FATAL(daemon_start() == 0);
        r = mc_client_convert(client, 0, 0xa0000, 2 * PAGE, true, MC_SOURCE_KVM_HC_MAP_GPA_RANGE, MC_PAGE_4K,
                              NULL);
        CU_ASSERT_EQUAL(r, MC_EXIT_RETRY);

        /* Fixed, the reconnect above waited for vCPU 1's send, which its hold lets go of after
         * SEND_HOLD_MS; before, it closed the fd under the held thread at once. Whatever
         * takes that fd number now gets the number: a file of the VMM's own. */
        if (fcntl(fd, F_GETFD) < 0) {
                CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == 0);
                CU_ASSERT_FATAL(dup2(sp[0], fd) == fd);
                reused = true;
        }
        send_release();
        pthread_join(a.thread, NULL);
        CU_ASSERT_EQUAL(a.result, MC_EXIT_RETRY);
        if (reused) {
                /* Nothing libmemconv meant for memconvd may land there. */
                ssize_t n = recv(sp[1], buf, sizeof(buf), MSG_DONTWAIT);

                if (n >= 0)
                        fprintf(stderr, "\n    a %zd-byte datagram went to the file that reused fd %d\n", n, fd);
                CU_ASSERT(n < 0 && errno == EAGAIN);
                close(fd);
                close(sp[0]);
                close(sp[1]);
        }
        CU_ASSERT(already_private(0x80000, 2 * PAGE));
        CU_ASSERT(already_private(0xa0000, 2 * PAGE));
        /* One reconnect to the new daemon (its log is new): the stale send did not fail the
         * new connection. */
        CU_ASSERT_EQUAL(log_count("VM reconnect", "resumed by pid"), 1);
        mc_client_set_ring(client, true);
}

/*
 * recvmsg() - the test's own, as sendmsg() above: while @hold_lease_grant is
 * set, the first thread to receive a Lease grant stops, with it in hand,
 * until send_release() or SEND_HOLD_MS.
 */
static bool hold_lease_grant, lease_held;

__attribute__((visibility("default"))) ssize_t recvmsg(int fd, struct msghdr *mh, int flags)
{
        static ssize_t (*real)(int, struct msghdr *, int);
        Memconv__Message *m;
        bool grant;
        ssize_t n;

        if (!real)
                real = (ssize_t (*)(int, struct msghdr *, int)) dlsym(RTLD_NEXT, "recvmsg");
        n = real(fd, mh, flags);
        if (n <= 0 || !__atomic_load_n(&hold_lease_grant, __ATOMIC_ACQUIRE) || mh->msg_iovlen < 1)
                return n;
        m = memconv__message__unpack(NULL, (size_t) n, mh->msg_iov[0].iov_base);
        grant = m && m->body_case == MEMCONV__MESSAGE__BODY_LEASE && !m->lease->revoked;
        if (m)
                memconv__message__free_unpacked(m, NULL);
        if (grant && __atomic_exchange_n(&hold_lease_grant, false, __ATOMIC_ACQ_REL)) {
                uint64_t t0 = now_ms();

                pthread_mutex_lock(&cb_lock);
                lease_held = true;
                while (!send_released && now_ms() - t0 < SEND_HOLD_MS) {
                        pthread_mutex_unlock(&cb_lock);
                        usleep(1000);
                        pthread_mutex_lock(&cb_lock);
                }
                pthread_mutex_unlock(&cb_lock);
        }
        return n;
}

/* grant_reader() - ask for a lease, then read until the grant has been read (and held) */
static void *grant_reader(void *arg)
{
        uint64_t t0 = now_ms();

        (void) arg;
        (void) mc_client_set_lease(client, true);
        while (__atomic_load_n(&hold_lease_grant, __ATOMIC_ACQUIRE) && now_ms() - t0 < WAIT_MS) {
                (void) mc_client_dispatch(client);
                usleep(1000);
        }
        return NULL;
}

static void test_stale_lease_dropped(void)
{
        struct mc_lease_stats before, after;
        pthread_t t;
        bool got;
        int r;

        /* No lease, nothing in flight. */
        CU_ASSERT_FATAL(mc_client_set_lease(client, false) == 0);
        CU_ASSERT_FATAL(lease_wait(is_inactive, true));
        (void) mc_client_dispatch(client);
        pthread_mutex_lock(&cb_lock);
        send_released = false;
        pthread_mutex_unlock(&cb_lock);

        /* A thread asks for a lease and is held with the grant read but not handled. */
        __atomic_store_n(&hold_lease_grant, true, __ATOMIC_RELEASE);
        CU_ASSERT_FATAL(pthread_create(&t, NULL, grant_reader, NULL) == 0);
        for (uint64_t t0 = now_ms();; usleep(1000)) {
                pthread_mutex_lock(&cb_lock);
                got = lease_held;
                pthread_mutex_unlock(&cb_lock);
                if (got || now_ms() - t0 > WAIT_MS)
                        break;
        }
        CU_ASSERT_FATAL(got);

        /* That daemon dies; the next has leases off. A conversion reconnects meanwhile. */
        daemon_kill();
        daemon_extra_arg = "--leases=no";
        r = daemon_start();
        daemon_extra_arg = NULL;
        CU_ASSERT_FATAL(r == 0);
        r = mc_client_convert(client, 0, 0xc0000, PAGE, true, MC_SOURCE_KVM_HC_MAP_GPA_RANGE, MC_PAGE_4K, NULL);
        CU_ASSERT_EQUAL(r, MC_EXIT_RETRY);
        send_release();
        pthread_join(t, NULL);

        /* The old grant was not taken up: no lease, and the next 4 KiB conversion is asked. */
        mc_client_lease_stats(client, &before);
        CU_ASSERT_FALSE(before.active);
        r = mc_client_convert(client, 0, 0xc1000, PAGE, true, MC_SOURCE_KVM_HC_MAP_GPA_RANGE, MC_PAGE_4K, NULL);
        CU_ASSERT_EQUAL(r, MC_EXIT_RETRY);
        mc_client_lease_stats(client, &after);
        CU_ASSERT_FALSE(after.active);
        CU_ASSERT_EQUAL(after.leased, before.leased);
        CU_ASSERT_EQUAL(after.asked, before.asked + 1);
        CU_ASSERT(already_private(0xc0000, 2 * PAGE));
        CU_ASSERT_FALSE(log_contains("leased-applied", NULL));
}

int main(void)
{
        static const struct client_vm_test tests[] = {
                { "an answered attach survives a crash", test_attach_durable },
                { "a request waiting for its Decision stays tracked", test_pending_request_stays_tracked },
                { "a decision being applied is re-sent", test_applying_decision_resent },
                { "at most 256 ranges wait for memconvd under a lease", test_unsettled_bound },
                { "a refused report under the lease is forgotten", test_refused_report_forgotten },
                { "a send held across a reconnect goes nowhere else", test_send_across_reconnect },
                { "a lease read from the dying connection is dropped", test_stale_lease_dropped },
        };
        struct client_vm vm;
        int r;

        /* A lease of 4 KiB: larger requests are asked, and tracked. */
        r = client_vm_setup(&vm, "[Policy]\nLeases=yes\nLeaseMaxBytes=4K\n", "reconnect", "reconnect-test-1", RAM,
                            apply_cb);
        if (r != 0)
                return r;
        client = vm.client;
        mc_client_set_reconnect(client, 20000);
        return client_vm_run(&vm, "reconnect", tests, sizeof(tests) / sizeof(tests[0]));
}
