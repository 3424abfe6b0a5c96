/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * harness.c - the shared helpers of the C integration tests; see harness.h.
 */
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
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "kvm-compat.h"
#include "macro.h"

char tmpdir[256], sock_path[300], log_path[300], admin_path[300];
pid_t daemon_pid = -1;
const char *daemon_extra_arg;
int kvm_fd = -1, vm_fd = -1;
bool gmem_mmap;

uint64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ daemon process */

int daemon_start(void)
{
        snprintf(admin_path, sizeof(admin_path), "%s/admin.sock", tmpdir);
        const char *top = getenv("top_builddir");
        char bin[512];

        snprintf(bin, sizeof(bin), "%s/memconvd", top ? top : ".");
        snprintf(sock_path, sizeof(sock_path), "%s/vmm.sock", tmpdir);
        snprintf(log_path, sizeof(log_path), "%s/daemon.log", tmpdir);
        pid_t parent = getpid();

        daemon_pid = fork();
        if (daemon_pid == 0) {
                int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

                /* A test that aborts (a failed assert(), a crash) must not leave its daemon
                 * behind: it stops when the test does (the setting survives the exec). */
                if (prctl(PR_SET_PDEATHSIG, SIGTERM) < 0 || getppid() != parent)
                        _exit(127);

                dup2(fd, STDERR_FILENO);
                char state[320];

                snprintf(state, sizeof(state), "%s/state", tmpdir);
                const char *conf = getenv("MEMCONV_TEST_CONFIG");

                execl(bin, bin, "--config", conf ? conf : "/dev/null", "--socket", sock_path, "--state-dir", state,
                      "--log-target=stderr", "--log-level=debug", daemon_extra_arg,
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
int daemon_fd_count(const char *match)
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

int daemon_fd_settle(const char *match, int want)
{
        uint64_t t0 = now_ms();
        int n;

        while ((n = daemon_fd_count(match)) > want && now_ms() - t0 < SETTLE_MS)
                usleep(2000);
        return n;
}

bool log_wait(const char *a, const char *b)
{
        return log_wait_count(a, b, 1);
}

int log_count(const char *a, const char *b)
{
        char line[4096];
        int n = 0;
        FILE *f = fopen(log_path, "re");

        if (!f)
                return 0;
        while (fgets(line, sizeof(line), f))
                n += strstr(line, a) && (!b || strstr(line, b));
        fclose(f);
        return n;
}

bool log_contains(const char *a, const char *b)
{
        return log_count(a, b) > 0;
}

bool log_wait_count(const char *a, const char *b, int n)
{
        uint64_t t0 = now_ms();

        while (log_count(a, b) < n) {
                if (now_ms() - t0 >= SETTLE_MS)
                        return false;
                usleep(2000);
        }
        return true;
}

/* ------------------------------------------------------------ raw client */

int raw_connect(void)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        assert(fd >= 0);
        strcpy(sa.sun_path, sock_path);
        assert(connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0);
        return fd;
}

uint64_t last_committed;

/* Wait up to SETTLE_MS for one message; Committed notices are noted and skipped. */
Memconv__Message *recv_msg(int sock)
{
        for (;;) {
                struct pollfd p = { .fd = sock, .events = POLLIN };
                Memconv__Message *m = NULL;
                int fds[MC_FRAME_MAX_FDS];
                size_t n = 0;

                if (poll(&p, 1, SETTLE_MS) != 1)
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

Memconv__Message *call(struct vmm *v, Memconv__Message *m, const int *fds, size_t n)
{
        m->id = ++v->next_id;
        CU_ASSERT_FATAL(mc_frame_send(v->sock, m, fds, n) == 0);
        return recv_msg(v->sock);
}

Memconv__Code status_code(const Memconv__Status *s)
{
        return s ? s->code : MEMCONV__CODE__CODE_OK;
}

Memconv__Message *hello(struct vmm *v, uint32_t version)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__Hello h = MEMCONV__HELLO__INIT;

        h.version = version;
        m.body_case = MEMCONV__MESSAGE__BODY_HELLO;
        m.hello = &h;
        return call(v, &m, NULL, 0);
}

Memconv__Message *attach_token(struct vmm *v, const char *name, size_t uuid_len, const uint8_t *token)
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

Memconv__Message *attach(struct vmm *v, const char *name, size_t uuid_len)
{
        return attach_token(v, name, uuid_len, NULL);
}

Memconv__Message *register_region(struct vmm *v, uint32_t slot, uint64_t gpa, uint64_t size, int gmem,
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

Memconv__Message *convert(struct vmm *v, uint64_t gpa, uint64_t size, bool to_private)
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

Memconv__Message *fault(struct vmm *v, uint64_t gpa, uint64_t flags)
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

void applied(struct vmm *v, uint64_t decision_id, bool ok)
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
void expect_decision(Memconv__Message *r, Memconv__Action action, Memconv__Code code, const char *text)
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

void expect_reply(Memconv__Message *r, Memconv__Code code, const char *text)
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
bool probe_all(struct vmm *v, uint64_t gpa, uint64_t size, bool private_)
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

int gmem_create(uint64_t size)
{
        struct kvm_create_guest_memfd g = { .size = size, .flags = gmem_mmap ? 3 : 0 };

        return ioctl(vm_fd, KVM_CREATE_GUEST_MEMFD, &g);
}

void fill(uint8_t *p, uint64_t len, uint8_t seed)
{
        for (uint64_t i = 0; i < len; i += 64)
                p[i] = (uint8_t) (seed + i / PAGE);
}

bool same(const uint8_t *p, uint64_t len, uint8_t seed)
{
        for (uint64_t i = 0; i < len; i += 64)
                if (p[i] != (uint8_t) (seed + i / PAGE))
                        return false;
        return true;
}

bool is_hole(int fd, uint64_t off)
{
        off_t d = lseek(fd, (off_t) off, SEEK_DATA);

        return d < 0 || (uint64_t) d >= off + PAGE;
}

void vmm_open(struct vmm *v, uint8_t tag)
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

void vmm_attach_region(struct vmm *v, const char *name)
{
        Memconv__Message *r = attach(v, name, 16);

        CU_ASSERT_FATAL(r && r->body_case == MEMCONV__MESSAGE__BODY_ATTACH_REPLY);
        CU_ASSERT_EQUAL_FATAL(status_code(r->attach_reply->status), MEMCONV__CODE__CODE_OK);
        CU_ASSERT_EQUAL(r->attach_reply->token.len, 16);
        memconv__message__free_unpacked(r, NULL);
        expect_reply(register_region(v, 0, REGION_GPA, REGION_SIZE, v->gmem, v->shared), MEMCONV__CODE__CODE_OK, NULL);
}

void vmm_close(struct vmm *v)
{
        if (v->gmem_map)
                munmap(v->gmem_map, REGION_SIZE);
        munmap(v->shared_map, REGION_SIZE);
        safe_close(v->gmem);
        safe_close(v->shared);
        safe_close(v->sock);
}

/* Backing untouched: both sides still hold their patterns and are allocated. */
void assert_backing_intact(struct vmm *v, uint8_t tag)
{
        CU_ASSERT(same(v->shared_map, REGION_SIZE, tag));
        if (gmem_mmap)
                CU_ASSERT(same(v->gmem_map, REGION_SIZE, (uint8_t) (tag + 0x80)));
        /* guest_memfd has no SEEK_DATA (ESPIPE): its content is checked above. */
        for (uint64_t off = 0; off < REGION_SIZE; off += 64 * PAGE)
                CU_ASSERT(!is_hole(v->shared, off));
}
/* ------------------------------------------------------------ set-up and tear-down */

int harness_setup(bool need_kvm)
{
        kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (kvm_fd < 0) {
                if (need_kvm) {
                        printf("SKIP: /dev/kvm not available (%s)\n", strerror(errno));
                        return 77;
                }
        } else {
                vm_fd = ioctl(kvm_fd, KVM_CREATE_VM, 0);
                if (vm_fd < 0 || ioctl(kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD) <= 0) {
                        if (need_kvm) {
                                printf("SKIP: this KVM cannot create guest_memfd\n");
                                return 77;
                        }
                        vm_fd = safe_close(vm_fd);
                } else
                        gmem_mmap = (ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_GUEST_MEMFD_FLAGS) & 3) == 3;
        }
        signal(SIGPIPE, SIG_IGN);
        snprintf(tmpdir, sizeof(tmpdir), "/tmp/memconv-test-XXXXXX");
        if (!mkdtemp(tmpdir) || daemon_start() < 0) {
                fprintf(stderr, "cannot start memconvd\n");
                return 1;
        }
        return 0;
}

int harness_finish(unsigned failures)
{
        int status;

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

bool daemon_alive(void)
{
        return daemon_pid > 0 && waitpid(daemon_pid, NULL, WNOHANG) == 0;
}

long daemon_rss_kb(void)
{
        char path[64], line[256];
        long kb = -1;
        FILE *f;

        snprintf(path, sizeof(path), "/proc/%d/status", (int) daemon_pid);
        f = fopen(path, "re");
        if (!f)
                return -1;
        while (fgets(line, sizeof(line), f))
                if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
                        break;
        fclose(f);
        return kb;
}

/* ------------------------------------------------------------ admin client */

int admin_connect(void)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

        assert(fd >= 0);
        strcpy(sa.sun_path, admin_path);
        /* The admin socket is bound just after the VMM socket: allow a moment. */
        for (int i = 0; i < 200; i++) {
                if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) == 0)
                        return fd;
                usleep(5000);
        }
        safe_close(fd);
        return -1;
}

Memconv__AdminReply *admin_call(int sock, const Memconv__AdminRequest *req)
{
        struct pollfd p = { .fd = sock, .events = POLLIN };
        ProtobufCMessage *m = NULL;
        int fds[MC_FRAME_MAX_FDS];
        size_t n = 0;

        if (mc_frame_send_pb(sock, &req->base, NULL, 0) < 0)
                return NULL;
        if (poll(&p, 1, SETTLE_MS) != 1)
                return NULL;
        if (mc_frame_recv_pb(sock, 0, &memconv__admin_reply__descriptor, &m, fds, &n) < 0)
                return NULL;
        mc_frame_close_fds(fds, n);
        return (Memconv__AdminReply *) m;
}

Memconv__AdminReply *admin_show(const char *name)
{
        Memconv__AdminRequest req = MEMCONV__ADMIN_REQUEST__INIT;
        Memconv__ShowRequest sr = MEMCONV__SHOW_REQUEST__INIT;
        Memconv__VmSelector sel = MEMCONV__VM_SELECTOR__INIT;
        Memconv__AdminReply *r;
        int sock = admin_connect();

        if (sock < 0)
                return NULL;
        sel.spec = (char *) name;
        sr.vm = &sel;
        req.id = 1;
        req.body_case = MEMCONV__ADMIN_REQUEST__BODY_SHOW;
        req.show = &sr;
        r = admin_call(sock, &req);
        safe_close(sock);
        if (r && (r->body_case != MEMCONV__ADMIN_REPLY__BODY_SHOW || !r->show->vm || !r->show->vm->stats)) {
                memconv__admin_reply__free_unpacked(r, NULL);
                r = NULL;
        }
        return r;
}

long admin_vm_count(void)
{
        Memconv__AdminRequest req = MEMCONV__ADMIN_REQUEST__INIT;
        Memconv__ListRequest l = MEMCONV__LIST_REQUEST__INIT;
        Memconv__AdminReply *r;
        long n = -1;
        int sock = admin_connect();

        if (sock < 0)
                return -1;
        req.id = 1;
        req.body_case = MEMCONV__ADMIN_REQUEST__BODY_LIST;
        req.list = &l;
        r = admin_call(sock, &req);
        if (r && r->body_case == MEMCONV__ADMIN_REPLY__BODY_LIST &&
            (!r->status || r->status->code == MEMCONV__CODE__CODE_OK))
                n = (long) r->list->n_vms;
        if (r)
                memconv__admin_reply__free_unpacked(r, NULL);
        safe_close(sock);
        return n;
}
