/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-hostile.c - hostile peers against a real memconvd (issue #6).
 *
 * test-protocol.c checks each refusal of a well-behaved connection; this
 * file checks what a peer can do to the daemon as a whole: connect as a
 * uid that is not allowed, pass more fds than a frame may carry, connect
 * and say nothing, send without ever reading the answers, hang up in the
 * middle of every request type, and send random frames. After each, the
 * daemon must still be running and serving another peer promptly, hold no
 * fd it should not (guest_memfd and shared fds above all: DESIGN rule 7),
 * keep its memory bounded, and have changed nothing a refusal touched
 * (VMs listed by the admin socket, the attribute map probed through the
 * protocol).
 *
 * Needs root for the uid test (skipped otherwise) and /dev/kvm with
 * guest_memfd for the parts that register memory (skipped otherwise).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "frame.h"
#include "harness.h"
#include "macro.h"

#define NOBODY 65534

/* ------------------------------------------------------------ helpers */

/* A fresh VMM: connected, hello done, a VM attached (no region). */
static void vmm_hello_attach(struct vmm *v, uint8_t tag, const char *name, uint8_t token[16])
{
        Memconv__Message *r;

        memset(v, 0, sizeof(*v));
        v->gmem = v->shared = -EBADF;
        memset(v->uuid, tag, sizeof(v->uuid));
        v->sock = raw_connect();
        r = hello(v, 1);
        CU_ASSERT_FATAL(r && r->body_case == MEMCONV__MESSAGE__BODY_HELLO_REPLY);
        memconv__message__free_unpacked(r, NULL);
        r = attach(v, name, 16);
        CU_ASSERT_FATAL(r && r->body_case == MEMCONV__MESSAGE__BODY_ATTACH_REPLY);
        CU_ASSERT_EQUAL_FATAL(status_code(r->attach_reply->status), MEMCONV__CODE__CODE_OK);
        if (token)
                memcpy(token, r->attach_reply->token.data, 16);
        memconv__message__free_unpacked(r, NULL);
}

/* The daemon answers a new VMM and an admin client, each within @ms. */
static void assert_serving(uint64_t ms)
{
        struct vmm v = { .gmem = -EBADF, .shared = -EBADF };
        uint64_t t0 = now_ms();
        Memconv__Message *r;

        CU_ASSERT_FATAL(daemon_alive());
        v.sock = raw_connect();
        r = hello(&v, 1);
        CU_ASSERT(r && r->body_case == MEMCONV__MESSAGE__BODY_HELLO_REPLY &&
                  status_code(r->hello_reply->status) == MEMCONV__CODE__CODE_OK);
        if (r)
                memconv__message__free_unpacked(r, NULL);
        /* to-shared outside RAM: answered without touching anything */
        CU_ASSERT(admin_vm_count() >= 0);
        CU_ASSERT(now_ms() - t0 <= ms);
        safe_close(v.sock);
}

/* The daemon's fd count once connections the test just closed are gone. */
static int fds_baseline(void)
{
        usleep(50000);
        return daemon_fd_count(NULL);
}

/* Wait for the daemon's fd count to fall back to @want (or below). */
static int fds_settle(int want)
{
        int n = daemon_fd_settle(NULL, want);

        if (n != want && getenv("HOSTILE_DEBUG")) {
                char cmd[128];

                snprintf(cmd, sizeof(cmd), "ls -l /proc/%d/fd >&2", (int) daemon_pid);
                fprintf(stderr, "fds: want %d, have %d\n", want, n);
                (void) !system(cmd);
        }
        return n;
}

/* sendmsg() of @len bytes with @n fds in one SCM_RIGHTS message. */
static ssize_t send_with_fds(int sock, const void *buf, size_t len, const int *fds, size_t n)
{
        char control[CMSG_SPACE(sizeof(int) * 8)];
        struct iovec iov = { .iov_base = (void *) buf, .iov_len = len };
        struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
        struct cmsghdr *cm;

        memset(control, 0, sizeof(control));
        mh.msg_control = control;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
        return sendmsg(sock, &mh, MSG_NOSIGNAL);
}

static size_t pack_msg(const Memconv__Message *m, uint8_t *buf)
{
        return memconv__message__pack(m, buf);
}

static uint64_t status_peers_refused(void)
{
        Memconv__AdminRequest req = MEMCONV__ADMIN_REQUEST__INIT;
        Memconv__StatusRequest sq = MEMCONV__STATUS_REQUEST__INIT;
        Memconv__AdminReply *r;
        uint64_t n = UINT64_MAX;
        int sock = admin_connect();

        CU_ASSERT_FATAL(sock >= 0);
        req.id = 5;
        req.body_case = MEMCONV__ADMIN_REQUEST__BODY_STATUS;
        req.status = &sq;
        r = admin_call(sock, &req);
        if (r && r->body_case == MEMCONV__ADMIN_REPLY__BODY_STATUS_REPLY)
                n = r->status_reply->peers_refused;
        if (r)
                memconv__admin_reply__free_unpacked(r, NULL);
        safe_close(sock);
        return n;
}

/* ------------------------------------------------------------ a uid that is not allowed */

struct refused_result {
        int vmm_connect_errno;      /* with the sockets' own mode (0600) */
        int admin_connect_errno;
        int hello_code;             /* after chmod 0666: the daemon's own check */
        int hello_closed;
        int attach_code;
        int admin_code;
        int admin_closed;
};

static int connect_path(const char *path)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        strcpy(sa.sun_path, path);
        if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) < 0) {
                int e = errno;

                close(fd);
                errno = e;
                return -1;
        }
        return fd;
}

/* After a refusal the daemon hangs up: the next read sees the end. */
static int closed_soon(int sock)
{
        struct pollfd p = { .fd = sock, .events = POLLIN };
        char b[16];

        if (poll(&p, 1, SETTLE_MS) != 1)
                return 0;
        return recv(sock, b, sizeof(b), MSG_DONTWAIT) == 0;
}

/* In a child, as nobody: fill @res. phase 0: connect only; 1: speak. */
static void child_as_nobody(int phase, struct refused_result *res)
{
        gid_t g = NOBODY;

        if (setgroups(1, &g) < 0 || setresgid(NOBODY, NOBODY, NOBODY) < 0 ||
            setresuid(NOBODY, NOBODY, NOBODY) < 0)
                _exit(3);
        if (phase == 0) {
                int fd = connect_path(sock_path);

                res->vmm_connect_errno = fd < 0 ? errno : 0;
                fd = connect_path(admin_path);
                res->admin_connect_errno = fd < 0 ? errno : 0;
                return;
        }
        {
                struct vmm v = { .gmem = -EBADF, .shared = -EBADF };
                Memconv__Message *r;

                v.sock = connect_path(sock_path);
                if (v.sock < 0)
                        _exit(4);
                r = hello(&v, 1);
                res->hello_code = r && r->body_case == MEMCONV__MESSAGE__BODY_HELLO_REPLY ?
                                  (int) status_code(r->hello_reply->status) : -1;
                res->hello_closed = closed_soon(v.sock);
                close(v.sock);
                /* An attach as the very first message: refused the same way. */
                v.sock = connect_path(sock_path);
                memset(v.uuid, 0xe1, 16);
                r = attach(&v, "intruder", 16);
                res->attach_code = r && r->body_case == MEMCONV__MESSAGE__BODY_ATTACH_REPLY ?
                                   (int) status_code(r->attach_reply->status) : -1;
                close(v.sock);
        }
        {
                Memconv__AdminRequest req = MEMCONV__ADMIN_REQUEST__INIT;
                Memconv__ListRequest l = MEMCONV__LIST_REQUEST__INIT;
                Memconv__AdminReply *r;
                int sock = connect_path(admin_path);

                if (sock < 0)
                        _exit(5);
                req.id = 9;
                req.body_case = MEMCONV__ADMIN_REQUEST__BODY_LIST;
                req.list = &l;
                r = admin_call(sock, &req);
                res->admin_code = r ? (r->status ? (int) r->status->code : 0) : -1;
                if (r && r->body_case == MEMCONV__ADMIN_REPLY__BODY_LIST && r->list->n_vms > 0)
                        res->admin_code = 1000; /* it listed VMs to a stranger */
                res->admin_closed = closed_soon(sock);
                close(sock);
        }
}

static bool run_as_nobody(int phase, struct refused_result *res)
{
        struct refused_result *shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
                                             MAP_SHARED | MAP_ANONYMOUS, -1, 0);
        int status;
        pid_t pid;

        CU_ASSERT_FATAL(shared != MAP_FAILED);
        memset(shared, 0xff, sizeof(*shared));
        pid = fork();
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0) {
                child_as_nobody(phase, shared);
                _exit(0);
        }
        waitpid(pid, &status, 0);
        *res = *shared;
        munmap(shared, sizeof(*shared));
        return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static void test_uid_refused(void)
{
        struct refused_result res;
        long vms_before;
        uint64_t refused_before;
        int fds_before;

        if (geteuid() != 0) {
                printf("\n  skipped: needs root to become uid %d\n", NOBODY);
                return;
        }
        vms_before = admin_vm_count();
        refused_before = status_peers_refused();
        fds_before = fds_baseline();
        CU_ASSERT_FATAL(vms_before >= 0);
        CU_ASSERT_FATAL(chmod(tmpdir, 0755) == 0);

        /* The sockets' file mode keeps a stranger out before the daemon sees it. */
        CU_ASSERT_FATAL(run_as_nobody(0, &res));
        CU_ASSERT_EQUAL(res.vmm_connect_errno, EACCES);
        CU_ASSERT_EQUAL(res.admin_connect_errno, EACCES);

        /* With the mode opened (a misconfigured unit): the daemon's own check. */
        CU_ASSERT_FATAL(chmod(sock_path, 0666) == 0 && chmod(admin_path, 0666) == 0);
        CU_ASSERT_FATAL(run_as_nobody(1, &res));
        CU_ASSERT(chmod(sock_path, 0600) == 0 && chmod(admin_path, 0600) == 0 && chmod(tmpdir, 0700) == 0);
        CU_ASSERT_EQUAL(res.hello_code, MEMCONV__CODE__CODE_PERMISSION_DENIED);
        CU_ASSERT_EQUAL(res.hello_closed, 1);
        CU_ASSERT_EQUAL(res.attach_code, MEMCONV__CODE__CODE_PERMISSION_DENIED);
        CU_ASSERT_EQUAL(res.admin_code, MEMCONV__CODE__CODE_PERMISSION_DENIED);
        CU_ASSERT_EQUAL(res.admin_closed, 1);

        /* Nothing changed: no VM, the refusals counted and logged, no fd kept. */
        CU_ASSERT_EQUAL(admin_vm_count(), vms_before);
        CU_ASSERT_EQUAL(status_peers_refused(), refused_before + 2);
        CU_ASSERT(log_wait("Refusing VMM connection", "uid 65534"));
        CU_ASSERT(log_wait("Refusing admin connection", "uid 65534"));
        CU_ASSERT(!log_contains("intruder", NULL));
        CU_ASSERT(fds_settle(fds_before) <= fds_before);
        assert_serving(SETTLE_MS);
}

/* ------------------------------------------------------------ more fds than a frame carries */

static void test_too_many_fds(void)
{
        struct vmm v;
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__Convert c = MEMCONV__CONVERT__INIT;
        Memconv__RegisterRegion rr = MEMCONV__REGISTER_REGION__INIT;
        Memconv__AdminRequest areq = MEMCONV__ADMIN_REQUEST__INIT;
        Memconv__ListRequest l = MEMCONV__LIST_REQUEST__INIT;
        uint8_t buf[256];
        int extra[3], before, admin;
        long vms;
        size_t len;

        for (int i = 0; i < 3; i++)
                extra[i] = memfd_create("hostile-extra", MFD_CLOEXEC);
        vmm_hello_attach(&v, 0x91, "fds3", NULL);
        vms = admin_vm_count();
        before = fds_baseline();

        /* A convert (takes none) and a register-region (takes 1 or 2) with 3 fds. */
        c.gpa = REGION_GPA;
        c.size = PAGE;
        c.to = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
        m.id = 77;
        m.body_case = MEMCONV__MESSAGE__BODY_CONVERT;
        m.convert = &c;
        len = pack_msg(&m, buf);
        CU_ASSERT_FATAL(send_with_fds(v.sock, buf, len, extra, 3) == (ssize_t) len);
        /* Answered by its id, in the answer type the request waits for: the vCPU is not left hanging. */
        {
                Memconv__Message *r = recv_msg(v.sock);

                CU_ASSERT_FATAL(r != NULL);
                CU_ASSERT_EQUAL(r->id, 77);
                expect_decision(r, MEMCONV__ACTION__ACTION_FAIL, MEMCONV__CODE__CODE_BAD_FD, "more than 2 fds");
        }
        rr.gpa = REGION_GPA;
        rr.size = REGION_SIZE;
        rr.has_shared = true;
        m.id = 78;
        m.body_case = MEMCONV__MESSAGE__BODY_REGISTER_REGION;
        m.register_region = &rr;
        len = pack_msg(&m, buf);
        CU_ASSERT_FATAL(send_with_fds(v.sock, buf, len, extra, 3) == (ssize_t) len);
        {
                Memconv__Message *r = recv_msg(v.sock);

                CU_ASSERT_FATAL(r != NULL);
                CU_ASSERT_EQUAL(r->id, 78);
                expect_reply(r, MEMCONV__CODE__CODE_BAD_FD, "more than 2 fds");
        }

        /* The admin socket takes no fds at all: 1 and 3 are both refused. */
        admin = admin_connect();
        CU_ASSERT_FATAL(admin >= 0);
        areq.id = 3;
        areq.body_case = MEMCONV__ADMIN_REQUEST__BODY_LIST;
        areq.list = &l;
        len = memconv__admin_request__pack(&areq, buf);
        for (size_t n = 1; n <= 3; n += 2) {
                Memconv__AdminReply *r;
                ProtobufCMessage *pm = NULL;
                int fds[MC_FRAME_MAX_FDS];
                size_t nf = 0;
                struct pollfd p = { .fd = admin, .events = POLLIN };

                CU_ASSERT_FATAL(send_with_fds(admin, buf, len, extra, n) == (ssize_t) len);
                CU_ASSERT_FATAL(poll(&p, 1, SETTLE_MS) == 1);
                CU_ASSERT_FATAL(mc_frame_recv_pb(admin, 0, &memconv__admin_reply__descriptor, &pm, fds, &nf) == 0);
                r = (Memconv__AdminReply *) pm;
                CU_ASSERT_PTR_NOT_NULL_FATAL(r->status);
                CU_ASSERT_EQUAL(r->status->code, n == 1 ? MEMCONV__CODE__CODE_BAD_FD : MEMCONV__CODE__CODE_PROTOCOL_ERROR);
                CU_ASSERT_EQUAL(r->body_case, MEMCONV__ADMIN_REPLY__BODY__NOT_SET);
                memconv__admin_reply__free_unpacked(r, NULL);
        }
        safe_close(admin);

        /* None of the fds was kept; nothing changed; the connection still works. */
        CU_ASSERT_EQUAL(daemon_fd_settle("hostile-extra", 0), 0);
        CU_ASSERT(fds_settle(before) <= before);
        CU_ASSERT_EQUAL(admin_vm_count(), vms);
        expect_decision(convert(&v, REGION_GPA, PAGE, true), MEMCONV__ACTION__ACTION_FAIL,
                        MEMCONV__CODE__CODE_OUT_OF_RANGE, NULL);
        for (int i = 0; i < 3; i++)
                safe_close(extra[i]);
        safe_close(v.sock);
}

/* ------------------------------------------------------------ peers that say nothing */

static void test_silent_peers(void)
{
        enum { SILENT_VMM = 64, SILENT_ADMIN = 16 };
        int silent[SILENT_VMM + SILENT_ADMIN];
        struct vmm v;
        int before = fds_baseline();
        uint64_t t0;

        for (int i = 0; i < SILENT_VMM; i++)
                silent[i] = raw_connect();
        for (int i = 0; i < SILENT_ADMIN; i++)
                silent[SILENT_VMM + i] = admin_connect();
        /* One more that said hello and then nothing. */
        vmm_hello_attach(&v, 0x92, "talker", NULL);

        t0 = now_ms();
        assert_serving(SETTLE_MS);
        expect_decision(convert(&v, 0, PAGE, false), MEMCONV__ACTION__ACTION_RETRY, MEMCONV__CODE__CODE_OK, NULL);
        printf("\n  a VMM and an admin client served in %" PRIu64 " ms beside %d silent peers\n",
               now_ms() - t0, SILENT_VMM + SILENT_ADMIN);

        for (size_t i = 0; i < ELEMENTSOF(silent); i++)
                safe_close(silent[i]);
        safe_close(v.sock);
        CU_ASSERT(fds_settle(before) <= before);
}

/* ------------------------------------------------------------ answers never read */

static void test_unread_answers(void)
{
        enum { REQUESTS = 5000 };
        struct vmm a, b;
        struct timeval tv = { .tv_sec = 2 };
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__Convert c = MEMCONV__CONVERT__INIT;
        uint64_t worst = 0;
        long rss0, rss1;
        int sent = 0, admin, before;

        vmm_hello_attach(&a, 0x93, "deaf", NULL);
        vmm_hello_attach(&b, 0x94, "bystander", NULL);
        before = fds_baseline();
        rss0 = daemon_rss_kb();
        CU_ASSERT_FATAL(setsockopt(a.sock, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0);

        /* To shared outside RAM: each answered at once with a Decision. */
        c.gpa = 0;
        c.size = PAGE;
        c.to = MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
        m.body_case = MEMCONV__MESSAGE__BODY_CONVERT;
        m.convert = &c;
        for (int i = 0; i < REQUESTS; i++) {
                m.id = (uint64_t) i + 1;
                if (mc_frame_send(a.sock, &m, NULL, 0) < 0)
                        break;
                sent++;
                if (i % 500 == 0) {
                        /* The bystander is answered while the deaf peer floods. */
                        uint64_t t0 = now_ms(), dt;

                        expect_decision(convert(&b, 0, PAGE, false), MEMCONV__ACTION__ACTION_RETRY,
                                        MEMCONV__CODE__CODE_OK, NULL);
                        dt = now_ms() - t0;
                        worst = dt > worst ? dt : worst;
                }
        }
        usleep(100000);
        rss1 = daemon_rss_kb();
        printf("\n  deaf VMM: %d of %d requests sent before the daemon stopped taking them; "
               "bystander worst %" PRIu64 " ms; VmRSS %ld -> %ld KiB\n", sent, REQUESTS, worst, rss0, rss1);
        CU_ASSERT(worst < SETTLE_MS);
        CU_ASSERT(rss1 > 0 && rss1 - rss0 < 8 * 1024);
        CU_ASSERT(daemon_alive());
        /* Either the daemon dropped the deaf peer (its queue is bounded) or it
         * held everything within the socket buffers; never unbounded memory. */
        if (sent < REQUESTS) {
                CU_ASSERT(log_wait("does not read its answers", NULL));
        }
        expect_decision(convert(&b, 0, PAGE, false), MEMCONV__ACTION__ACTION_RETRY, MEMCONV__CODE__CODE_OK, NULL);
        safe_close(a.sock);

        /* The same on the admin socket. */
        admin = admin_connect();
        CU_ASSERT_FATAL(admin >= 0);
        CU_ASSERT_FATAL(setsockopt(admin, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0);
        {
                Memconv__AdminRequest req = MEMCONV__ADMIN_REQUEST__INIT;
                Memconv__StatusRequest sq = MEMCONV__STATUS_REQUEST__INIT;

                req.body_case = MEMCONV__ADMIN_REQUEST__BODY_STATUS;
                req.status = &sq;
                for (sent = 0; sent < REQUESTS; sent++) {
                        req.id = (uint64_t) sent + 1;
                        if (mc_frame_send_pb(admin, &req.base, NULL, 0) < 0)
                                break;
                }
        }
        usleep(100000);
        printf("  deaf admin client: %d of %d requests sent; VmRSS now %ld KiB\n", sent, REQUESTS,
               daemon_rss_kb());
        CU_ASSERT(daemon_rss_kb() - rss0 < 8 * 1024);
        assert_serving(SETTLE_MS);
        safe_close(admin);
        safe_close(b.sock);
        CU_ASSERT(fds_settle(before - 2) <= before - 2);
}

/* ------------------------------------------------------------ hanging up mid-request */

enum hangup_kind {
        HANG_HELLO, HANG_ATTACH, HANG_DETACH, HANG_REGISTER, HANG_UNREGISTER, HANG_FAULT, HANG_CONVERT,
        HANG_APPLIED, HANG_REAPPLIED, HANG_RESUMED, HANG_GARBAGE, HANG__MAX,
};

static const char *const hangup_names[HANG__MAX] = {
        "hello", "attach", "detach", "register-region", "unregister-region", "memory-fault", "convert",
        "applied", "reapplied", "resumed", "garbage",
};

/* Connect, bring the connection to the state @k needs, send it, hang up. */
static void hangup_one(enum hangup_kind k, uint8_t tag)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__Hello h = MEMCONV__HELLO__INIT;
        Memconv__Attach at = MEMCONV__ATTACH__INIT;
        Memconv__Detach de = MEMCONV__DETACH__INIT;
        Memconv__RegisterRegion rr = MEMCONV__REGISTER_REGION__INIT;
        Memconv__UnregisterRegion ur = MEMCONV__UNREGISTER_REGION__INIT;
        Memconv__MemoryFault f = MEMCONV__MEMORY_FAULT__INIT;
        Memconv__Convert c = MEMCONV__CONVERT__INIT;
        Memconv__Applied ap = MEMCONV__APPLIED__INIT;
        Memconv__Reapplied ra = MEMCONV__REAPPLIED__INIT;
        Memconv__Resumed rs = MEMCONV__RESUMED__INIT;
        Memconv__Range range = MEMCONV__RANGE__INIT, *ranges[1] = { &range };
        struct vmm v;
        char name[32];
        int fds[2] = { -EBADF, -EBADF };
        size_t n_fds = 0;

        snprintf(name, sizeof(name), "hangup-%s", hangup_names[k]);
        if (k <= HANG_ATTACH) {
                memset(&v, 0, sizeof(v));
                v.gmem = v.shared = -EBADF;
                memset(v.uuid, tag, 16);
                v.sock = raw_connect();
                if (k == HANG_ATTACH) {
                        Memconv__Message *r = hello(&v, 1);

                        memconv__message__free_unpacked(r, NULL);
                }
        } else if (vm_fd >= 0) {
                vmm_open(&v, tag);
                vmm_attach_region(&v, name);
        } else
                vmm_hello_attach(&v, tag, name, NULL);

        m.id = 4000 + (uint64_t) k;
        switch (k) {
        case HANG_HELLO:
                h.version = 1;
                m.body_case = MEMCONV__MESSAGE__BODY_HELLO;
                m.hello = &h;
                break;
        case HANG_ATTACH:
                at.uuid.data = v.uuid;
                at.uuid.len = 16;
                at.name = name;
                at.cc_type = MEMCONV__CC_TYPE__CC_TYPE_SW_PROTECTED;
                at.arch = MEMCONV__ARCH__ARCH_X86_64;
                m.body_case = MEMCONV__MESSAGE__BODY_ATTACH;
                m.attach = &at;
                break;
        case HANG_DETACH:
                m.body_case = MEMCONV__MESSAGE__BODY_DETACH;
                m.detach = &de;
                break;
        case HANG_REGISTER:
                /* a second region, with fresh fds the daemon would keep */
                rr.slot = 1;
                rr.gpa = 2 * REGION_GPA;
                rr.size = REGION_SIZE;
                if (vm_fd >= 0) {
                        fds[0] = gmem_create(REGION_SIZE);
                        fds[1] = memfd_create("hangup-shared", MFD_CLOEXEC);
                        CU_ASSERT_FATAL(fds[0] >= 0 && fds[1] >= 0 && ftruncate(fds[1], (off_t) REGION_SIZE) == 0);
                        rr.has_shared = true;
                        n_fds = 2;
                }
                m.body_case = MEMCONV__MESSAGE__BODY_REGISTER_REGION;
                m.register_region = &rr;
                break;
        case HANG_UNREGISTER:
                m.body_case = MEMCONV__MESSAGE__BODY_UNREGISTER_REGION;
                m.unregister_region = &ur;
                break;
        case HANG_FAULT:
                f.gpa = REGION_GPA;
                f.size = PAGE;
                f.flags = 1ULL << 3;
                m.body_case = MEMCONV__MESSAGE__BODY_MEMORY_FAULT;
                m.memory_fault = &f;
                break;
        case HANG_CONVERT:
                c.gpa = REGION_GPA;
                c.size = REGION_SIZE;
                c.to = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
                m.body_case = MEMCONV__MESSAGE__BODY_CONVERT;
                m.convert = &c;
                break;
        case HANG_APPLIED: {
                /* a decision in flight, then its Applied(ok) and the hang-up at once */
                Memconv__Message *r = convert(&v, REGION_GPA, PAGE, true);

                CU_ASSERT_FATAL(r && r->body_case == MEMCONV__MESSAGE__BODY_DECISION);
                ap.decision_id = r->decision->decision_id ? r->decision->decision_id : 1;
                memconv__message__free_unpacked(r, NULL);
                ap.ok = true;
                m.body_case = MEMCONV__MESSAGE__BODY_APPLIED;
                m.applied = &ap;
                break;
        }
        case HANG_REAPPLIED:
                range.gpa = REGION_GPA + 16 * PAGE;
                range.size = PAGE;
                ra.n_ranges = 1;
                ra.ranges = ranges;
                ra.to = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
                m.body_case = MEMCONV__MESSAGE__BODY_REAPPLIED;
                m.reapplied = &ra;
                break;
        case HANG_RESUMED:
                m.body_case = MEMCONV__MESSAGE__BODY_RESUMED;
                m.resumed = &rs;
                break;
        default:
                break;
        }
        if (k == HANG_GARBAGE) {
                CU_ASSERT(send(v.sock, "\xff\xff\xff\xff\x0f", 5, MSG_NOSIGNAL) == 5);
        } else {
                CU_ASSERT(mc_frame_send(v.sock, &m, fds, n_fds) == 0);
        }
        v.sock = safe_close(v.sock);
        if (fds[0] >= 0)
                safe_close(fds[0]);
        if (fds[1] >= 0)
                safe_close(fds[1]);
        if (k > HANG_ATTACH && vm_fd >= 0)
                vmm_close(&v);
}

static void test_hangup_mid_request(void)
{
        int before;
        long vms;

        /* One round first, so lazily created daemon state does not count. */
        hangup_one(HANG_HELLO, 0xa0);
        usleep(50000);
        before = fds_baseline();
        vms = admin_vm_count();
        for (int k = 0; k < HANG__MAX; k++)
                hangup_one((enum hangup_kind) k, (uint8_t) (0xa1 + k));

        /* Alive and serving; every fd of the gone peers released at once. */
        assert_serving(SETTLE_MS);
        CU_ASSERT(fds_settle(before) <= before);
        CU_ASSERT_EQUAL(daemon_fd_count("kvm-gmem"), 0);
        CU_ASSERT_EQUAL(daemon_fd_count("memfd:shared"), 0);
        CU_ASSERT_EQUAL(daemon_fd_count("hangup-shared"), 0);
        /* One VM per connection that got as far as an attach (kept for inspection). */
        CU_ASSERT_EQUAL(admin_vm_count(), vms + HANG__MAX - 1);
        CU_ASSERT(!log_contains("detached: the VMM disconnected", "hangup-hello"));
}

/* A VMM that hangs up with a decision in flight: after it re-attaches, the
 * map holds exactly what was applied before the hang-up. */
static void test_hangup_keeps_map(void)
{
        struct vmm v, w;
        uint8_t token[16];
        Memconv__Message *r;
        uint64_t dec;

        if (vm_fd < 0) {
                printf("\n  skipped: no guest_memfd\n");
                return;
        }
        vmm_open(&v, 0xc1);
        r = attach(&v, "hangup-map", 16);
        CU_ASSERT_FATAL(r && status_code(r->attach_reply->status) == MEMCONV__CODE__CODE_OK);
        memcpy(token, r->attach_reply->token.data, 16);
        memconv__message__free_unpacked(r, NULL);
        expect_reply(register_region(&v, 0, REGION_GPA, REGION_SIZE, v.gmem, v.shared), MEMCONV__CODE__CODE_OK, NULL);
        /* page 0 applied and acknowledged; pages 1-3 decided but never applied */
        r = convert(&v, REGION_GPA, PAGE, true);
        CU_ASSERT_FATAL(r && r->decision->action == MEMCONV__ACTION__ACTION_APPLY);
        dec = r->decision->decision_id;
        memconv__message__free_unpacked(r, NULL);
        applied(&v, dec, true);
        r = convert(&v, REGION_GPA + PAGE, 3 * PAGE, true);
        CU_ASSERT_FATAL(r && r->decision->action == MEMCONV__ACTION__ACTION_APPLY);
        memconv__message__free_unpacked(r, NULL);
        v.sock = safe_close(v.sock);

        /* The same memory, re-attached by token from a new connection. */
        CU_ASSERT(log_wait("VM hangup-map", "detached: the VMM disconnected"));
        memset(&w, 0, sizeof(w));
        memcpy(w.uuid, v.uuid, 16);
        w.sock = raw_connect();
        r = hello(&w, 1);
        memconv__message__free_unpacked(r, NULL);
        r = attach_token(&w, "hangup-map", 16, token);
        CU_ASSERT_FATAL(r && status_code(r->attach_reply->status) == MEMCONV__CODE__CODE_OK);
        memconv__message__free_unpacked(r, NULL);
        expect_reply(register_region(&w, 0, REGION_GPA, REGION_SIZE, v.gmem, v.shared), MEMCONV__CODE__CODE_OK, NULL);
        CU_ASSERT(probe_all(&w, REGION_GPA, PAGE, true));
        CU_ASSERT(probe_all(&w, REGION_GPA + PAGE, REGION_SIZE - PAGE, false));
        safe_close(w.sock);
        vmm_close(&v);
}

/* ------------------------------------------------------------ random frames */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

/* Valid messages of several types to mutate. */
static size_t seed_frame(uint8_t *buf, unsigned which)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__Convert c = MEMCONV__CONVERT__INIT;
        Memconv__MemoryFault f = MEMCONV__MEMORY_FAULT__INIT;
        Memconv__Applied ap = MEMCONV__APPLIED__INIT;
        Memconv__Reapplied ra = MEMCONV__REAPPLIED__INIT;
        Memconv__UnregisterRegion ur = MEMCONV__UNREGISTER_REGION__INIT;
        Memconv__Range range = MEMCONV__RANGE__INIT, *ranges[1] = { &range };

        m.id = rng() % 1000 + 1;
        switch (which % 5) {
        case 0:
                c.gpa = REGION_GPA + (rng() % 1024) * PAGE;
                c.size = PAGE * (rng() % 4 + 1);
                c.to = (Memconv__Attribute) (rng() % 2);
                m.body_case = MEMCONV__MESSAGE__BODY_CONVERT;
                m.convert = &c;
                break;
        case 1:
                f.gpa = REGION_GPA + (rng() % 1024) * PAGE;
                f.size = PAGE;
                f.flags = rng() % 16;
                m.body_case = MEMCONV__MESSAGE__BODY_MEMORY_FAULT;
                m.memory_fault = &f;
                break;
        case 2:
                ap.decision_id = rng() % 100 + 1;
                ap.ok = true;
                m.body_case = MEMCONV__MESSAGE__BODY_APPLIED;
                m.applied = &ap;
                break;
        case 3:
                range.gpa = REGION_GPA;
                range.size = PAGE;
                ra.n_ranges = 1;
                ra.ranges = ranges;
                m.body_case = MEMCONV__MESSAGE__BODY_REAPPLIED;
                m.reapplied = &ra;
                break;
        default:
                m.body_case = MEMCONV__MESSAGE__BODY_UNREGISTER_REGION;
                m.unregister_region = &ur;
                break;
        }
        return memconv__message__pack(&m, buf);
}

/* Read and drop whatever answers are waiting. Return: false once the peer hung up. */
static bool drain(int sock)
{
        char b[MC_FRAME_MAX];

        for (;;) {
                ssize_t n = recv(sock, b, sizeof(b), MSG_DONTWAIT);

                if (n > 0)
                        continue;
                return n < 0 && errno == EAGAIN;
        }
}

static void test_random_frames(void)
{
        enum { FRAMES = 10000, ADMIN_FRAMES = 2000 };
        struct vmm v = { .sock = -EBADF };
        uint8_t buf[2048];
        unsigned connections = 0, answered = 0;
        long rss0 = daemon_rss_kb(), vms = admin_vm_count();
        int before = fds_baseline(), admin = -EBADF;

        for (int i = 0; i < FRAMES; i++) {
                size_t len;

                if (v.sock < 0) {
                        char name[32];

                        snprintf(name, sizeof(name), "random-%u", connections);
                        vmm_hello_attach(&v, (uint8_t) (0xd0 + connections % 32), name, NULL);
                        connections++;
                }
                if (i % 4 == 0) {
                        /* a valid message with a few bytes changed */
                        len = seed_frame(buf, (unsigned) rng());
                        for (int k = rng() % 4; k >= 0 && len; k--)
                                buf[rng() % len] = (uint8_t) rng();
                } else {
                        len = rng() % (i % 100 == 1 ? sizeof(buf) : 64);
                        for (size_t k = 0; k < len; k++)
                                buf[k] = (uint8_t) rng();
                }
                if (send(v.sock, buf, len, MSG_NOSIGNAL) < 0 || !drain(v.sock)) {
                        v.sock = safe_close(v.sock);
                        continue;
                }
                answered++;
        }
        safe_close(v.sock);

        for (int i = 0; i < ADMIN_FRAMES; i++) {
                size_t len = rng() % 256;

                if (admin < 0)
                        admin = admin_connect();
                CU_ASSERT_FATAL(admin >= 0);
                for (size_t k = 0; k < len; k++)
                        buf[k] = (uint8_t) rng();
                if (send(admin, buf, len, MSG_NOSIGNAL) < 0 || !drain(admin))
                        admin = safe_close(admin);
        }
        safe_close(admin);

        usleep(100000);
        printf("\n  %d random VMM frames over %u connections, %d admin frames; VmRSS %ld -> %ld KiB; "
               "VMs %ld -> %ld\n", FRAMES, connections, ADMIN_FRAMES, rss0, daemon_rss_kb(), vms, admin_vm_count());
        assert_serving(SETTLE_MS);
        CU_ASSERT(daemon_rss_kb() - rss0 < 16 * 1024);
        CU_ASSERT(fds_settle(before) <= before);
        /* Only the attaches the test made itself created VMs. */
        CU_ASSERT(admin_vm_count() <= vms + (long) connections);
        CU_ASSERT(!log_contains("MEMCONV_EVENT=change", "random-"));
}

int main(void)
{
        CU_pSuite s;
        unsigned failures;
        int r;

        r = harness_setup(false);
        if (r != 0)
                return r;
        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        s = CU_add_suite("hostile", NULL, NULL);
        CU_add_test(s, "a uid that is not allowed changes nothing", test_uid_refused);
        CU_add_test(s, "three fds in one frame", test_too_many_fds);
        CU_add_test(s, "peers that connect and say nothing", test_silent_peers);
        CU_add_test(s, "answers never read: bounded memory, others served", test_unread_answers);
        CU_add_test(s, "hang-up in the middle of every request type", test_hangup_mid_request);
        CU_add_test(s, "hang-up with a decision in flight keeps the map", test_hangup_keeps_map);
        CU_add_test(s, "random frames", test_random_frames);
        CU_basic_set_mode(CU_BRM_VERBOSE);
        CU_basic_run_tests();
        failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
        CU_cleanup_registry();
        return harness_finish(failures);
}
