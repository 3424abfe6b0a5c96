/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-sandbox.c - daemon/sandbox.c for real: the filter memconvd loads,
 * loaded in a forked child, must kill that child with SIGSYS for system
 * calls outside the allow-list (and for the allowed ones with arguments
 * memconvd never uses), and must let through what the daemon does: threads,
 * files, AF_UNIX sockets, NSS lookups. The capability drop must leave
 * nothing. Each case runs in a child of its own, since none of it can be
 * undone; children end with _exit() so that no at-exit handler (or leak
 * checker) runs under the filter.
 *
 * Exits 77 where the kernel has no seccomp filters. Under valgrind (which
 * has no seccomp() and whose own system calls would run under the filter)
 * the filter cases are skipped with a message and the rest runs, so that
 * the valgrind stage of .ci/run checks the memory handling.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <pthread.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "sandbox.h"
#include "test-util.h"

static bool under_valgrind;

/**
 * run_child() - run @fn in a forked child
 * Return: the child's wait status
 */
static int run_child(int (*fn)(void))
{
        int status = 0;
        pid_t pid;

        fflush(NULL);
        pid = fork();
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0)
                _exit(fn());
        CU_ASSERT_FATAL(waitpid(pid, &status, 0) == pid);
        return status;
}

static void describe(const char *what, int status)
{
        if (WIFSIGNALED(status))
                fprintf(stderr, "  %s: killed by signal %d (%s)\n", what, WTERMSIG(status), strsignal(WTERMSIG(status)));
        else
                fprintf(stderr, "  %s: exited with %d\n", what, WEXITSTATUS(status));
}

static bool filter_testable(void)
{
        if (under_valgrind)
                printf("skipped under valgrind: it has no seccomp(), and its own system calls would run under the filter\n");
        return !under_valgrind;
}

/* The filter in kill mode, as memconvd loads it; 100 if it cannot be loaded. */
#define LOAD_FILTER(mode)                                               \
        do {                                                            \
                if (sandbox_filter_load((mode), NULL) < 0)              \
                        return 100;                                     \
        } while (0)

/* ------------------------------------------------------------ parsing */

static void test_filter_strings(void)
{
        static const struct {
                const char *s;
                int mode;
        } cases[] = {
                { "yes", SANDBOX_FILTER_YES }, { "YES", SANDBOX_FILTER_YES }, { "true", SANDBOX_FILTER_YES },
                { "on", SANDBOX_FILTER_YES },  { "1", SANDBOX_FILTER_YES },   { "no", SANDBOX_FILTER_NO },
                { "false", SANDBOX_FILTER_NO }, { "off", SANDBOX_FILTER_NO }, { "0", SANDBOX_FILTER_NO },
                { "log", SANDBOX_FILTER_LOG }, { "Log", SANDBOX_FILTER_LOG },
                { "", -EINVAL }, { "kill", -EINVAL }, { "yes ", -EINVAL }, { "2", -EINVAL }, { "logs", -EINVAL },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int m = sandbox_filter_from_string(cases[i].s);

                if (m != cases[i].mode)
                        fprintf(stderr, "  '%s' parsed as %d, expected %d\n", cases[i].s, m, cases[i].mode);
                CU_ASSERT_EQUAL(m, cases[i].mode);
        }
        CU_ASSERT_STRING_EQUAL(sandbox_filter_to_string(SANDBOX_FILTER_YES), "yes");
        CU_ASSERT_STRING_EQUAL(sandbox_filter_to_string(SANDBOX_FILTER_NO), "no");
        CU_ASSERT_STRING_EQUAL(sandbox_filter_to_string(SANDBOX_FILTER_LOG), "log");
        CU_ASSERT_EQUAL(sandbox_filter_load(SANDBOX_FILTER_NO, NULL), -EINVAL);
}

/* ------------------------------------------------------------ capabilities */

static bool caps_all_zero(void)
{
        struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};

        if (syscall(SYS_capget, &hdr, data) < 0)
                return false;
        for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
                if (data[i].effective || data[i].permitted || data[i].inheritable)
                        return false;
        return true;
}

static int child_drop_caps(void)
{
        char path[] = "/tmp/test-sandbox.XXXXXX";
        uint64_t before = 0;
        bool bounding = false;
        int fd, r;

        fd = mkstemp(path);
        if (fd < 0)
                return 1;
        r = sandbox_drop_capabilities(&before, &bounding);
        if (r < 0) {
                (void) unlink(path);
                return 2;
        }
        if (!caps_all_zero())
                r = 3;
        else if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, CAP_SYS_ADMIN, 0, 0) > 0)
                r = 4;
        else if (geteuid() == 0 && !bounding)
                r = 5;
        else if (bounding && (prctl(PR_CAPBSET_READ, CAP_SYS_ADMIN, 0, 0, 0) != 0 ||
                              prctl(PR_CAPBSET_READ, CAP_CHOWN, 0, 0, 0) != 0))
                r = 6;
        /* Even as uid 0: giving a file away needs CAP_CHOWN, which is gone. */
        else if (fchown(fd, 4242, (gid_t) -1) == 0 || errno != EPERM)
                r = 7;
        else if (geteuid() == 0 && (before & (1ULL << CAP_SYS_ADMIN)) == 0)
                r = 8; /* root started with CAP_SYS_ADMIN: the report must say so */
        else
                r = 0;
        close(fd);
        (void) unlink(path);
        return r;
}

static void test_drop_capabilities(void)
{
        int st = run_child(child_drop_caps);

        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                describe("capability drop", st);
        CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ------------------------------------------------------------ what the filter refuses */

static int deny_socket_inet(void)
{
        LOAD_FILTER(SANDBOX_FILTER_YES);
        (void) socket(AF_INET, SOCK_STREAM, 0);
        return 101;
}

static int deny_socket_inet6(void)
{
        LOAD_FILTER(SANDBOX_FILTER_YES);
        (void) socket(AF_INET6, SOCK_DGRAM, 0);
        return 101;
}

static int deny_socket_netlink(void)
{
        LOAD_FILTER(SANDBOX_FILTER_YES);
        (void) socket(AF_NETLINK, SOCK_RAW, 0);
        return 101;
}

static int deny_bind(void)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        LOAD_FILTER(SANDBOX_FILTER_YES);
        fd = socket(AF_UNIX, SOCK_SEQPACKET, 0); /* allowed ... */
        if (fd < 0)
                return 102;
        (void) bind(fd, (struct sockaddr *) &sa, sizeof(sa_family_t)); /* ... but no new listeners */
        return 101;
}

static int deny_fork(void)
{
        pid_t pid;

        LOAD_FILTER(SANDBOX_FILTER_YES);
        pid = fork();
        if (pid == 0)
                _exit(0);
        return 101;
}

static int deny_execve(void)
{
        char *const argv[] = { (char *) "true", NULL };

        LOAD_FILTER(SANDBOX_FILTER_YES);
        (void) execve("/bin/true", argv, NULL);
        return 101;
}

static int deny_ptrace(void)
{
        LOAD_FILTER(SANDBOX_FILTER_YES);
        (void) ptrace(PTRACE_TRACEME, 0, NULL, NULL);
        return 101;
}

static int deny_mount(void)
{
        LOAD_FILTER(SANDBOX_FILTER_YES);
        (void) mount("none", "/nonexistent", "tmpfs", 0, NULL);
        return 101;
}

static int deny_kill(void)
{
        pid_t parent = getppid(); /* getppid() is not on the list either */

        LOAD_FILTER(SANDBOX_FILTER_YES);
        (void) kill(parent, 0);
        return 101;
}

static int deny_tgkill_other(void)
{
        pid_t parent = getppid();

        LOAD_FILTER(SANDBOX_FILTER_YES);
        (void) syscall(SYS_tgkill, parent, parent, 0);
        return 101;
}

static int deny_setrlimit(void)
{
        struct rlimit rl;

        LOAD_FILTER(SANDBOX_FILTER_YES);
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0) /* reading is allowed ... */
                return 102;
        (void) setrlimit(RLIMIT_NOFILE, &rl);  /* ... changing is not */
        return 101;
}

static int deny_prctl_dumpable(void)
{
        LOAD_FILTER(SANDBOX_FILTER_YES);
        (void) prctl(PR_SET_DUMPABLE, 1, 0, 0, 0);
        return 101;
}

static int deny_chmod(void)
{
        LOAD_FILTER(SANDBOX_FILTER_YES);
        (void) chmod("/nonexistent", 0777);
        return 101;
}

static int deny_setuid(void)
{
        LOAD_FILTER(SANDBOX_FILTER_YES);
        (void) syscall(SYS_setuid, 0);
        return 101;
}

static void test_filter_kills(void)
{
        static const struct {
                const char *what;
                int (*fn)(void);
        } cases[] = {
                { "socket(AF_INET)", deny_socket_inet },
                { "socket(AF_INET6)", deny_socket_inet6 },
                { "socket(AF_NETLINK)", deny_socket_netlink },
                { "bind()", deny_bind },
                { "fork()", deny_fork },
                { "execve()", deny_execve },
                { "ptrace()", deny_ptrace },
                { "mount()", deny_mount },
                { "kill()", deny_kill },
                { "tgkill() of another process", deny_tgkill_other },
                { "setrlimit()", deny_setrlimit },
                { "prctl(PR_SET_DUMPABLE)", deny_prctl_dumpable },
                { "chmod()", deny_chmod },
                { "setuid()", deny_setuid },
        };

        if (!filter_testable())
                return;
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                int st = run_child(cases[i].fn);
                bool ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS;

                if (!ok)
                        describe(cases[i].what, st);
                CU_ASSERT(ok);
        }
}

/* ------------------------------------------------------------ what the daemon needs */

static void *thread_fn(void *arg)
{
        int *out = arg;

        *out = (int) gettid();
        return NULL;
}

/* The calls memconvd makes while it runs: each failure returns its own code. */
static int exercise_allowed(void)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        char tmpl[] = "/tmp/test-sandbox.XXXXXX";
        struct rlimit rl;
        struct timespec ts;
        pthread_t t;
        uint8_t rnd[16];
        int fds[2], fd, tid = 0;
        void *big;
        char c = 'x';

        if (pipe2(fds, O_CLOEXEC) < 0) /* before the filter: pipe2 is not on the list */
                return 1;
        /* mkstemp before the filter, so its name can be renamed and unlinked under it */
        fd = mkstemp(tmpl);
        if (fd < 0)
                return 2;
        LOAD_FILTER(SANDBOX_FILTER_YES);

        if (write(fds[1], &c, 1) != 1 || read(fds[0], &c, 1) != 1)
                return 3;
        if (clock_gettime(CLOCK_MONOTONIC, &ts) < 0 || clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return 4;
        if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t) sizeof(rnd))
                return 5;
        /* Threads: clone3() answers ENOSYS and glibc falls back to clone(CLONE_THREAD). */
        if (pthread_create(&t, NULL, thread_fn, &tid) != 0 || pthread_join(t, NULL) != 0 || tid <= 0)
                return 6;
        big = malloc(64 << 20); /* mmap/munmap */
        if (!big)
                return 7;
        memset(big, 1, 4096);
        free(big);
        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return 8;
        /* The journal's file operations. */
        if (pwrite(fd, "journal", 7, 0) != 7 || fdatasync(fd) < 0 || fallocate(fd, 0, 0, 8192) < 0 ||
            ftruncate(fd, 4096) < 0 || fsync(fd) < 0)
                return 9;
        {
                char moved[sizeof(tmpl) + 4];

                snprintf(moved, sizeof(moved), "%s.new", tmpl);
                if (rename(tmpl, moved) < 0 || unlink(moved) < 0)
                        return 10;
        }
        close(fd);
        /* A reload: read the configuration, resolve a group through NSS (may dlopen, may connect). */
        fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, &c, 1) != 0)
                return 11;
        close(fd);
        errno = 0;
        if (!getgrnam("root") && errno != 0)
                return 12;
        /* AF_UNIX sockets (sd_notify, sd-journal, accepted peers) */
        fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return 13;
        strcpy(sa.sun_path, "/nonexistent/socket");
        if (sendto(fd, "x", 1, MSG_NOSIGNAL, (struct sockaddr *) &sa, sizeof(sa)) >= 0 || errno != ENOENT)
                return 14;
        close(fd);
        if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
                return 15;
        if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 2)
                return 16;
        return 0;
}

static void test_filter_allows(void)
{
        int st;

        if (!filter_testable())
                return;
        st = run_child(exercise_allowed);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                describe("allowed calls", st);
        CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* Log mode: the same filter, but a call outside the list goes through. */
static int log_mode_socket_inet(void)
{
        int fd;

        LOAD_FILTER(SANDBOX_FILTER_LOG);
        fd = socket(AF_INET, SOCK_DGRAM, 0);
        if (fd < 0)
                return 1;
        close(fd);
        return prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 2 ? 0 : 2;
}

static void test_filter_log_mode(void)
{
        int st;

        if (!filter_testable())
                return;
        st = run_child(log_mode_socket_inet);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                describe("log mode", st);
        CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

/* ------------------------------------------------------------ sandbox_apply(), as main.c calls it */

static int apply_yes(void)
{
        if (sandbox_apply(SANDBOX_FILTER_YES) < 0)
                return 1;
        if (!caps_all_zero())
                return 2;
        if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
                return 3;
        if (sandbox_filter_skip_reason())
                return prctl(PR_GET_SECCOMP, 0, 0, 0, 0) == 0 ? 0 : 4;
        if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 2)
                return 5;
        (void) socket(AF_INET, SOCK_STREAM, 0);
        return 101;
}

static int apply_no(void)
{
        int fd;

        if (sandbox_apply(SANDBOX_FILTER_NO) < 0)
                return 1;
        if (!caps_all_zero())
                return 2;
        if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
                return 3;
        if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) != 0)
                return 4;
        fd = socket(AF_INET, SOCK_STREAM, 0);
        if (fd < 0)
                return 5;
        close(fd);
        return 0;
}

static void test_apply(void)
{
        int st = run_child(apply_yes);
        bool ok;

        if (sandbox_filter_skip_reason()) {
                printf("filter not installed by sandbox_apply() here: %s\n", sandbox_filter_skip_reason());
                ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        } else
                ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGSYS;
        if (!ok)
                describe("sandbox_apply(yes)", st);
        CU_ASSERT(ok);

        st = run_child(apply_no);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                describe("sandbox_apply(no)", st);
        CU_ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void)
{
        static const struct mc_test tests[] = {
                { "SystemCallFilter= values", test_filter_strings },
                { "capabilities are all dropped", test_drop_capabilities },
                { "the filter kills calls outside the list", test_filter_kills },
                { "the filter allows what the daemon does", test_filter_allows },
                { "log mode lets calls through", test_filter_log_mode },
                { "sandbox_apply() as the daemon calls it", test_apply },
        };
        const char *preload = getenv("LD_PRELOAD");

        /* valgrind has no seccomp() (libseccomp sees API level 1): the filter cases say they skip. */
        under_valgrind = getenv("VALGRIND_LAUNCHER") || (preload && strstr(preload, "vgpreload"));
        if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 && errno == EINVAL) {
                printf("skipped: this kernel has no seccomp\n");
                return 77;
        }
        if (!under_valgrind && seccomp_api_get() < 3) {
                printf("skipped: libseccomp/kernel API level %u < 3 (no kill-process and log actions)\n",
                       seccomp_api_get());
                return 77;
        }
        log_setup(LOG_TARGET_STDERR, LOG_INFO);
        return mc_test_run("sandbox", NULL, NULL, tests, ELEMENTSOF(tests));
}
