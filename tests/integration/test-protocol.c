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
#include "kvm-compat.h"
#include "macro.h"

#define REGION_SIZE (4ULL << 20)
#define REGION_GPA 0x100000000ULL
#define PAGE 4096ULL

static char tmpdir[256], sock_path[300], log_path[300];
static pid_t daemon_pid = -1;
static int kvm_fd = -1, vm_fd = -1;
static bool gmem_mmap;

struct vmm {
        int sock;
        uint64_t next_id;
        int gmem, shared;
        uint8_t *gmem_map, *shared_map;
        uint8_t uuid[16];
};

static uint64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ daemon process */

static int daemon_start(void)
{
        const char *top = getenv("top_builddir");
        char bin[512];

        snprintf(bin, sizeof(bin), "%s/memconvd", top ? top : ".");
        snprintf(sock_path, sizeof(sock_path), "%s/vmm.sock", tmpdir);
        snprintf(log_path, sizeof(log_path), "%s/daemon.log", tmpdir);
        daemon_pid = fork();
        if (daemon_pid == 0) {
                int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

                dup2(fd, STDERR_FILENO);
                char state[320];

                snprintf(state, sizeof(state), "%s/state", tmpdir);
                execl(bin, bin, "--socket", sock_path, "--state-dir", state, "--log-target=stderr", "--log-level=debug",
                      (char *) NULL);
                _exit(127);
        }
        for (int i = 0; i < 500; i++) {
                struct stat st;

                if (stat(sock_path, &st) == 0)
                        return 0;
                usleep(10000);
        }
        return -ETIMEDOUT;
}

/* The daemon's open fds whose target contains @match (all when NULL); its
 * journal files, opened in the background, are never counted. */
static int daemon_fd_count(const char *match)
{
        char path[400], link[256], dpath[64];
        struct dirent *de;
        int n = 0;
        DIR *d;

        snprintf(dpath, sizeof(dpath), "/proc/%d/fd", (int) daemon_pid);
        d = opendir(dpath);
        if (!d)
                return -1;
        while ((de = readdir(d))) {
                ssize_t l;

                if (de->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "%s/%s", dpath, de->d_name);
                l = readlink(path, link, sizeof(link) - 1);
                if (l < 0)
                        continue;
                link[l] = 0;
                if (strstr(link, ".journal"))
                        continue;
                if (!match || strstr(link, match))
                        n++;
        }
        closedir(d);
        return n;
}

static bool log_contains(const char *a, const char *b)
{
        char line[4096];
        bool found = false;
        FILE *f = fopen(log_path, "re");

        if (!f)
                return false;
        while (!found && fgets(line, sizeof(line), f))
                found = strstr(line, a) && (!b || strstr(line, b));
        fclose(f);
        return found;
}

/* ------------------------------------------------------------ raw client */

static int raw_connect(void)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        assert(fd >= 0);
        strcpy(sa.sun_path, sock_path);
        assert(connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0);
        return fd;
}

static uint64_t last_committed; /* highest decision id seen in a Committed */

/* Wait up to 2 s for one message; Committed notices are noted and skipped. */
static Memconv__Message *recv_msg(int sock)
{
        for (;;) {
                struct pollfd p = { .fd = sock, .events = POLLIN };
                Memconv__Message *m = NULL;
                int fds[MC_FRAME_MAX_FDS];
                size_t n = 0;

                if (poll(&p, 1, 2000) != 1)
                        return NULL;
                if (mc_frame_recv(sock, 0, &m, fds, &n) < 0)
                        return NULL;
                mc_frame_close_fds(fds, n);
                if (m->body_case != MEMCONV__MESSAGE__BODY_COMMITTED)
                        return m;
                for (size_t i = 0; i < m->committed->n_decision_ids; i++)
                        if (m->committed->decision_ids[i] > last_committed)
                                last_committed = m->committed->decision_ids[i];
                memconv__message__free_unpacked(m, NULL);
        }
}

static Memconv__Message *call(struct vmm *v, Memconv__Message *m, const int *fds, size_t n)
{
        m->id = ++v->next_id;
        CU_ASSERT_FATAL(mc_frame_send(v->sock, m, fds, n) == 0);
        return recv_msg(v->sock);
}

static Memconv__Code status_code(const Memconv__Status *s)
{
        return s ? s->code : MEMCONV__CODE__CODE_OK;
}

static Memconv__Message *hello(struct vmm *v, uint32_t version)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__Hello h = MEMCONV__HELLO__INIT;

        h.version = version;
        m.body_case = MEMCONV__MESSAGE__BODY_HELLO;
        m.hello = &h;
        return call(v, &m, NULL, 0);
}

static Memconv__Message *attach_token(struct vmm *v, const char *name, size_t uuid_len, const uint8_t *token)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__Attach a = MEMCONV__ATTACH__INIT;

        if (token) {
                a.token.data = (uint8_t *) token;
                a.token.len = 16;
        }

        a.uuid.data = v->uuid;
        a.uuid.len = uuid_len;
        a.name = (char *) name;
        a.cc_type = MEMCONV__CC_TYPE__CC_TYPE_SW_PROTECTED;
        a.arch = MEMCONV__ARCH__ARCH_X86_64;
        m.body_case = MEMCONV__MESSAGE__BODY_ATTACH;
        m.attach = &a;
        return call(v, &m, NULL, 0);
}

static Memconv__Message *attach(struct vmm *v, const char *name, size_t uuid_len)
{
        return attach_token(v, name, uuid_len, NULL);
}

static Memconv__Message *register_region(struct vmm *v, uint32_t slot, uint64_t gpa, uint64_t size, int gmem,
                                         int shared)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__RegisterRegion r = MEMCONV__REGISTER_REGION__INIT;
        int fds[2] = { gmem, shared };

        r.slot = slot;
        r.gpa = gpa;
        r.size = size;
        r.has_shared = shared >= 0;
        m.body_case = MEMCONV__MESSAGE__BODY_REGISTER_REGION;
        m.register_region = &r;
        return call(v, &m, fds, shared >= 0 ? 2 : 1);
}

static Memconv__Message *convert(struct vmm *v, uint64_t gpa, uint64_t size, bool to_private)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__Convert c = MEMCONV__CONVERT__INIT;

        c.gpa = gpa;
        c.size = size;
        c.to = to_private ? MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE : MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
        c.source = MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_KVM_HC_MAP_GPA_RANGE;
        m.body_case = MEMCONV__MESSAGE__BODY_CONVERT;
        m.convert = &c;
        return call(v, &m, NULL, 0);
}

static Memconv__Message *fault(struct vmm *v, uint64_t gpa, uint64_t flags)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__MemoryFault f = MEMCONV__MEMORY_FAULT__INIT;

        f.gpa = gpa;
        f.size = PAGE;
        f.flags = flags;
        m.body_case = MEMCONV__MESSAGE__BODY_MEMORY_FAULT;
        m.memory_fault = &f;
        return call(v, &m, NULL, 0);
}

static void applied(struct vmm *v, uint64_t decision_id, bool ok)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__Applied a = MEMCONV__APPLIED__INIT;

        a.decision_id = decision_id;
        a.ok = ok;
        a.errno_value = ok ? 0 : -EIO;
        m.body_case = MEMCONV__MESSAGE__BODY_APPLIED;
        m.applied = &a;
        CU_ASSERT_FATAL(mc_frame_send(v->sock, &m, NULL, 0) == 0);
}

/* Decision for a request, asserting its action (and code when refused). */
static void expect_decision(Memconv__Message *r, Memconv__Action action, Memconv__Code code, const char *text)
{
        CU_ASSERT_FATAL(r != NULL);
        CU_ASSERT_FATAL(r->body_case == MEMCONV__MESSAGE__BODY_DECISION);
        CU_ASSERT_EQUAL(r->decision->action, action);
        CU_ASSERT_EQUAL(status_code(r->decision->status), code);
        if (text) {
                CU_ASSERT_PTR_NOT_NULL_FATAL(r->decision->status);
                CU_ASSERT_PTR_NOT_NULL(strstr(r->decision->status->message, text));
        }
        memconv__message__free_unpacked(r, NULL);
}

static void expect_reply(Memconv__Message *r, Memconv__Code code, const char *text)
{
        CU_ASSERT_FATAL(r != NULL);
        CU_ASSERT_FATAL(r->body_case == MEMCONV__MESSAGE__BODY_REPLY);
        CU_ASSERT_EQUAL(status_code(r->reply->status), code);
        if (text && r->reply->status && !strstr(r->reply->status->message, text)) {
                printf("\n  expected \"%s\" in \"%s\"\n", text, r->reply->status->message);
                CU_FAIL("reply text");
        }
        memconv__message__free_unpacked(r, NULL);
}

/* Whole-region probe: 1 if every page of [gpa, +size) is private, 0 if all shared. */
static bool probe_all(struct vmm *v, uint64_t gpa, uint64_t size, bool private_)
{
        Memconv__Message *r = convert(v, gpa, size, private_);
        bool all;

        CU_ASSERT_FATAL(r && r->body_case == MEMCONV__MESSAGE__BODY_DECISION);
        all = r->decision->action == MEMCONV__ACTION__ACTION_RETRY;
        if (r->decision->action == MEMCONV__ACTION__ACTION_APPLY)
                applied(v, r->decision->decision_id, false); /* roll the probe back */
        memconv__message__free_unpacked(r, NULL);
        return all;
}

/* ------------------------------------------------------------ KVM memory */

static int gmem_create(uint64_t size)
{
        struct kvm_create_guest_memfd g = { .size = size, .flags = gmem_mmap ? 3 : 0 };

        return ioctl(vm_fd, KVM_CREATE_GUEST_MEMFD, &g);
}

static void fill(uint8_t *p, uint64_t len, uint8_t seed)
{
        for (uint64_t i = 0; i < len; i += 64)
                p[i] = (uint8_t) (seed + i / PAGE);
}

static bool same(const uint8_t *p, uint64_t len, uint8_t seed)
{
        for (uint64_t i = 0; i < len; i += 64)
                if (p[i] != (uint8_t) (seed + i / PAGE))
                        return false;
        return true;
}

static bool is_hole(int fd, uint64_t off)
{
        off_t d = lseek(fd, (off_t) off, SEEK_DATA);

        return d < 0 || (uint64_t) d >= off + PAGE;
}

static void vmm_open(struct vmm *v, uint8_t tag)
{
        Memconv__Message *r;

        memset(v, 0, sizeof(*v));
        memset(v->uuid, tag, sizeof(v->uuid));
        v->sock = raw_connect();
        r = hello(v, 1);
        CU_ASSERT_FATAL(r && r->body_case == MEMCONV__MESSAGE__BODY_HELLO_REPLY);
        CU_ASSERT_EQUAL(status_code(r->hello_reply->status), MEMCONV__CODE__CODE_OK);
        memconv__message__free_unpacked(r, NULL);
        v->gmem = gmem_create(REGION_SIZE);
        CU_ASSERT_FATAL(v->gmem >= 0);
        v->shared = memfd_create("shared", MFD_CLOEXEC);
        CU_ASSERT_FATAL(v->shared >= 0 && ftruncate(v->shared, (off_t) REGION_SIZE) == 0);
        v->shared_map = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, v->shared, 0);
        CU_ASSERT_FATAL(v->shared_map != MAP_FAILED);
        fill(v->shared_map, REGION_SIZE, tag);
        if (gmem_mmap) {
                v->gmem_map = mmap(NULL, REGION_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, v->gmem, 0);
                CU_ASSERT_FATAL(v->gmem_map != MAP_FAILED);
                fill(v->gmem_map, REGION_SIZE, (uint8_t) (tag + 0x80));
        } else
                CU_ASSERT_FATAL(fallocate(v->gmem, FALLOC_FL_KEEP_SIZE, 0, (off_t) REGION_SIZE) == 0);
}

static void vmm_attach_region(struct vmm *v, const char *name)
{
        Memconv__Message *r = attach(v, name, 16);

        CU_ASSERT_FATAL(r && r->body_case == MEMCONV__MESSAGE__BODY_ATTACH_REPLY);
        CU_ASSERT_EQUAL_FATAL(status_code(r->attach_reply->status), MEMCONV__CODE__CODE_OK);
        CU_ASSERT_EQUAL(r->attach_reply->token.len, 16);
        memconv__message__free_unpacked(r, NULL);
        expect_reply(register_region(v, 0, REGION_GPA, REGION_SIZE, v->gmem, v->shared), MEMCONV__CODE__CODE_OK, NULL);
}

static void vmm_close(struct vmm *v)
{
        if (v->gmem_map)
                munmap(v->gmem_map, REGION_SIZE);
        munmap(v->shared_map, REGION_SIZE);
        safe_close(v->gmem);
        safe_close(v->shared);
        safe_close(v->sock);
}

/* Backing untouched: both sides still hold their patterns and are allocated. */
static void assert_backing_intact(struct vmm *v, uint8_t tag)
{
        CU_ASSERT(same(v->shared_map, REGION_SIZE, tag));
        if (gmem_mmap)
                CU_ASSERT(same(v->gmem_map, REGION_SIZE, (uint8_t) (tag + 0x80)));
        /* guest_memfd has no SEEK_DATA (ESPIPE): its content is checked above. */
        for (uint64_t off = 0; off < REGION_SIZE; off += 64 * PAGE)
                CU_ASSERT(!is_hole(v->shared, off));
}

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
        usleep(50000);
        CU_ASSERT_EQUAL(daemon_fd_count(NULL), before);
        CU_ASSERT_EQUAL(daemon_fd_count("kvm-gmem"), 0);
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
        CU_ASSERT(log_contains("MEMCONV_EVENT=refused", "MEMCONV_CODE=invalid-argument"));
        CU_ASSERT(log_contains("MEMCONV_EVENT=refused", "MEMCONV_CODE=out-of-range"));
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
        usleep(50000);
        CU_ASSERT_EQUAL(daemon_fd_count(NULL), before);

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

                while (last_committed < dec && now_ms() - t0 < 2000) {
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
        CU_ASSERT(log_contains("MEMCONV_EVENT=change", "MEMCONV_GPA=0x100008000"));
        CU_ASSERT(log_contains("MEMCONV_GPA=0x100008000", "MEMCONV_TO=private"));

        /* To shared, but the VMM fails to apply: rollback, nothing discarded. */
        r = convert(&v, gpa, 2 * PAGE, false);
        CU_ASSERT_FATAL(r && r->decision->action == MEMCONV__ACTION__ACTION_APPLY);
        dec = r->decision->decision_id;
        memconv__message__free_unpacked(r, NULL);
        applied(&v, dec, false);
        CU_ASSERT(probe_all(&v, gpa, 2 * PAGE, true));
        if (gmem_mmap)
                CU_ASSERT(same(v.gmem_map + off, 2 * PAGE, (uint8_t) (0x51 + 0x80 + 8)));
        CU_ASSERT(log_contains("failed to apply decision", "rolled back"));

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
        while ((n = daemon_fd_count("kvm-gmem")) > 0 && now_ms() - t0 < 1000)
                usleep(1000);
        CU_ASSERT_EQUAL(n, 0);
        CU_ASSERT_EQUAL(daemon_fd_count("memfd:shared"), 0);
        printf("\n  guest_memfd released %" PRIu64 " ms after disconnect\n", now_ms() - t0);
        CU_ASSERT(log_contains("VM leaver", "detached: the VMM disconnected"));
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
        CU_ASSERT(log_contains("decision", "abandoned"));
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
        safe_close(v.sock);

        /* Without a token, the same uuid starts a new instance (the old one is kept). */
        usleep(20000);
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
        int status;

        kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (kvm_fd < 0) {
                printf("SKIP: /dev/kvm not available (%s)\n", strerror(errno));
                return 77;
        }
        vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
        if (vm_fd < 0 || ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD) <= 0) {
                printf("SKIP: this KVM cannot create guest_memfd\n");
                return 77;
        }
        gmem_mmap = (ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS) & 3) == 3;
        signal(SIGPIPE, SIG_IGN);
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/memconv-test-XXXXXX");
        if (!mkdtemp(tmpdir) || daemon_start() < 0) {
                fprintf(stderr, "cannot start memconvd\n");
                return 1;
        }

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

        kill(daemon_pid, SIGTERM);
        waitpid(daemon_pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                fprintf(stderr, "memconvd did not exit cleanly on SIGTERM (status 0x%x); log in %s\n", status, log_path);
                failures++;
        }
        if (failures) {
                fprintf(stderr, "daemon log kept in %s\n", log_path);
                return 1;
        }
        unlink(log_path);
        unlink(sock_path);
        {
                char cmd[600];

                snprintf(cmd, sizeof(cmd), "rm -rf '%s/state' '%s/admin.sock'", tmpdir, tmpdir);
                (void) !system(cmd);
        }
        {
                char p[320];

                snprintf(p, sizeof(p), "%s/regular", tmpdir);
                unlink(p);
        }
        rmdir(tmpdir);
        return 0;
}
