/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sandbox.c - capability drop, no_new_privs and the system call allow-list;
 * see sandbox.h.
 *
 * The list holds what memconvd itself, glibc (malloc, threads, stdio, NSS
 * for the group names a reload resolves, dlopen() of policy plugins at a
 * reload), libsystemd (sd-event, sd-journal, sd_notify and the watchdog)
 * and protobuf-c call after start-up. It was taken from `strace -f -c` of
 * the integration tests and checked by running them with the filter in
 * log mode (SystemCallFilter=log: the kernel logs every call outside the
 * list) and then in kill mode. A few calls are allowed only with the
 * arguments memconvd uses, so that a hijacked daemon cannot use them for
 * more: sockets only AF_UNIX (the unit's RestrictAddressFamilies= says the
 * same), clone() only for threads (memconvd never forks or executes),
 * prctl() only to read settings (and name threads), prlimit64() only to
 * read limits, tgkill() only in this process. clone3() fails with ENOSYS, its arguments being out of a
 * filter's reach; glibc then creates threads with clone().
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "macro.h"
#include "sandbox.h"

#ifndef PR_CAP_AMBIENT
#define PR_CAP_AMBIENT 47
#define PR_CAP_AMBIENT_IS_SET 1
#define PR_CAP_AMBIENT_CLEAR_ALL 4
#endif

#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_ASAN 1
#endif
#endif

/* Allowed with any arguments. Names unknown on an architecture are skipped. */
static const char *const allowed_syscalls[] = {
        /* memory: malloc, thread stacks, dlopen(), the mincore() of memconvctl check */
        "brk", "mmap", "munmap", "mremap", "mprotect", "madvise", "mincore",
        /* threads and locks: pthreads, the discard and journal workers */
        "futex", "set_robust_list", "get_robust_list", "rseq", "gettid", "getpid",
        "sched_yield", "sched_getaffinity", "getcpu", "exit", "exit_group", "restart_syscall",
        /* time (normally the vDSO) */
        "clock_gettime", "clock_getres", "gettimeofday", "time", "nanosleep", "clock_nanosleep",
        /* signals: sd-event's signalfd, SIGPIPE ignored, abort() */
        "rt_sigprocmask", "rt_sigaction", "rt_sigreturn", "sigaltstack", "signalfd4",
        /* the event loop */
        "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "epoll_pwait2", "poll", "ppoll",
        "timerfd_create", "timerfd_settime", "timerfd_gettime", "eventfd2",
        /* files: the configuration and plugins at a reload, the state directory (made if
         * missing), the journals, the fd checks of regions */
        "openat", "open", "close", "read", "pread64", "readv", "preadv", "write", "pwrite64", "writev",
        "pwritev", "lseek", "fstat", "newfstatat", "stat", "lstat", "statx", "fstatfs", "statfs",
        "readlink", "readlinkat", "getdents64", "access", "faccessat", "faccessat2", "fcntl", "dup",
        "dup3", "fsync", "fdatasync", "fallocate", "ftruncate", "rename", "renameat", "renameat2",
        "unlink", "unlinkat", "mkdir", "mkdirat",
        /* sockets (socket() itself is limited to AF_UNIX below) */
        "accept4", "connect", "recvmsg", "recvfrom", "sendmsg", "sendto", "getsockopt", "setsockopt",
        "getsockname", "getpeername", "shutdown",
        /* sd-journal passes records too large for a datagram in a sealed memfd */
        "memfd_create",
        /* identity, entropy (attach tokens), system facts glibc reads */
        "getuid", "geteuid", "getgid", "getegid", "getresuid", "getresgid", "getgroups",
        "getrandom", "uname", "sysinfo",
        /* the libvirt policy plugin: libnuma's set-up in libvirt, libvirt's wake-up pipes */
        "get_mempolicy", "set_mempolicy", "pipe2",
};

int sandbox_filter_from_string(const char *s)
{
        if (!strcasecmp(s, "yes") || !strcasecmp(s, "true") || !strcasecmp(s, "on") || !strcmp(s, "1"))
                return SANDBOX_FILTER_YES;
        if (!strcasecmp(s, "no") || !strcasecmp(s, "false") || !strcasecmp(s, "off") || !strcmp(s, "0"))
                return SANDBOX_FILTER_NO;
        if (!strcasecmp(s, "log"))
                return SANDBOX_FILTER_LOG;
        return -EINVAL;
}

const char *sandbox_filter_to_string(enum sandbox_filter mode)
{
        switch (mode) {
        case SANDBOX_FILTER_NO:
                return "no";
        case SANDBOX_FILTER_YES:
                return "yes";
        case SANDBOX_FILTER_LOG:
                return "log";
        }
        return "?";
}

const char *sandbox_filter_skip_reason(void)
{
        const char *preload = getenv("LD_PRELOAD");

#ifdef SANDBOX_ASAN
        return "built with AddressSanitizer, whose leak check at exit needs clone() and ptrace()";
#endif
        /* valgrind runs its own system calls in our process, under our filter. */
        if (getenv("VALGRIND_LAUNCHER") || (preload && strstr(preload, "vgpreload")))
                return "running under valgrind, whose own system calls the filter would see";
        return NULL;
}

/**
 * cap_last() - the highest capability number this kernel knows
 */
static int cap_last(void)
{
        int c = CAP_LAST_CAP;

        /* The kernel may know more than our headers, or fewer. */
        while (prctl(PR_CAPBSET_READ, (unsigned long) c + 1, 0, 0, 0) >= 0)
                c++;
        while (c > 0 && prctl(PR_CAPBSET_READ, (unsigned long) c, 0, 0, 0) < 0)
                c--;
        return c;
}

int sandbox_drop_capabilities(uint64_t *ret_before, bool *ret_bounding_cleared)
{
        struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
        struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};
        bool bounding = true;
        int last = cap_last();

        if (syscall(SYS_capget, &hdr, data) < 0)
                return negative_errno();
        if (ret_before)
                *ret_before = (uint64_t) data[1].permitted << 32 | data[0].permitted;

        /* The bounding set first: dropping from it needs CAP_SETPCAP, which capset() takes away. */
        for (int c = 0; c <= last; c++) {
                if (prctl(PR_CAPBSET_READ, (unsigned long) c, 0, 0, 0) <= 0)
                        continue;
                if (prctl(PR_CAPBSET_DROP, (unsigned long) c, 0, 0, 0) < 0) {
                        if (errno != EPERM)
                                return negative_errno();
                        /* Unprivileged start: nothing to drop, and no_new_privs keeps it so. */
                        bounding = false;
                        break;
                }
        }
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                return negative_errno();

        memset(data, 0, sizeof(data));
        if (syscall(SYS_capset, &hdr, data) < 0)
                return negative_errno();
        if (ret_bounding_cleared)
                *ret_bounding_cleared = bounding;
        return 0;
}

/**
 * add_rule() - one rule; a name this architecture does not have is skipped
 * Return: 1 added, 0 skipped, or negative errno
 */
static int add_rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n_args,
                    const struct scmp_arg_cmp *args)
{
        int nr = seccomp_syscall_resolve_name(name);
        int r;

        if (nr == __NR_SCMP_ERROR)
                return 0;
        r = seccomp_rule_add_array(ctx, action, nr, n_args, args);
        return r < 0 ? r : 1;
}

int sandbox_filter_load(enum sandbox_filter mode, unsigned *ret_n_allowed)
{
        uint32_t deny = mode == SANDBOX_FILTER_LOG ? SCMP_ACT_LOG : SCMP_ACT_KILL_PROCESS;
        static const int prctl_read[] = {
                PR_GET_NAME, PR_SET_NAME, PR_CAPBSET_READ, PR_GET_DUMPABLE, PR_GET_NO_NEW_PRIVS,
                PR_GET_SECCOMP, PR_GET_KEEPCAPS, PR_GET_SECUREBITS,
        };
        scmp_filter_ctx ctx;
        unsigned n = 0;
        int r;

        if (mode != SANDBOX_FILTER_YES && mode != SANDBOX_FILTER_LOG)
                return -EINVAL;
        if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0 && errno == EINVAL)
                return -EOPNOTSUPP; /* CONFIG_SECCOMP=n */
        /* KILL_PROCESS and LOG need API level 3 (kernel 4.14); KILL would end one thread only. */
        if (seccomp_api_get() < 3)
                return -EOPNOTSUPP;

        ctx = seccomp_init(deny);
        if (!ctx)
                return -ENOMEM;
        r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, deny);
        if (r < 0)
                goto finish;
        r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
        if (r < 0)
                goto finish;

        for (size_t i = 0; i < ELEMENTSOF(allowed_syscalls); i++) {
                r = add_rule(ctx, SCMP_ACT_ALLOW, allowed_syscalls[i], 0, NULL);
                if (r < 0)
                        goto finish;
                n += (unsigned) r;
        }

        /* With arguments: see the comment at the top. */
        r = add_rule(ctx, SCMP_ACT_ALLOW, "socket", 1, &SCMP_A0(SCMP_CMP_EQ, AF_UNIX));
        if (r < 0)
                goto finish;
        n += (unsigned) r;
        r = add_rule(ctx, SCMP_ACT_ALLOW, "clone", 1, &SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
        if (r < 0)
                goto finish;
        n += (unsigned) r;
        r = add_rule(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0, NULL);
        if (r < 0)
                goto finish;
        r = add_rule(ctx, SCMP_ACT_ALLOW, "prlimit64", 1, &SCMP_A2(SCMP_CMP_EQ, 0));
        if (r < 0)
                goto finish;
        n += (unsigned) r;
        r = add_rule(ctx, SCMP_ACT_ALLOW, "tgkill", 1, &SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t) getpid()));
        if (r < 0)
                goto finish;
        n += (unsigned) r;
        for (size_t i = 0; i < ELEMENTSOF(prctl_read); i++) {
                r = add_rule(ctx, SCMP_ACT_ALLOW, "prctl", 1, &SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t) prctl_read[i]));
                if (r < 0)
                        goto finish;
        }
        /* libcap-ng in libvirt asks which ambient capabilities are set */
        r = add_rule(ctx, SCMP_ACT_ALLOW, "prctl", 2,
                     (const struct scmp_arg_cmp[]) { SCMP_A0(SCMP_CMP_EQ, PR_CAP_AMBIENT),
                                                     SCMP_A1(SCMP_CMP_EQ, PR_CAP_AMBIENT_IS_SET) });
        if (r < 0)
                goto finish;
        n++;

        /* Loading a filter without CAP_SYS_ADMIN requires no_new_privs; we want it anyway. */
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
                r = negative_errno();
                goto finish;
        }
        r = seccomp_load(ctx);
        if (r > 0)
                r = -ESRCH; /* TSYNC: this thread id could not be synchronised */
finish:
        seccomp_release(ctx);
        if (r >= 0 && ret_n_allowed)
                *ret_n_allowed = n;
        return r < 0 ? r : 0;
}

int sandbox_apply(enum sandbox_filter mode)
{
        const char *skip = mode != SANDBOX_FILTER_NO ? sandbox_filter_skip_reason() : NULL;
        int level = LOG_INFO;
        char filter[192];
        uint64_t before = 0;
        bool bounding = false;
        unsigned n = 0;
        int r;

        r = sandbox_drop_capabilities(&before, &bounding);
        if (r < 0)
                return log_error_errno(r, "Sandbox: failed to drop capabilities");
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return log_error_errno(negative_errno(), "Sandbox: failed to set no_new_privs");

        if (mode == SANDBOX_FILTER_NO)
                snprintf(filter, sizeof(filter), "system call filter off (SystemCallFilter=no)");
        else if (skip) {
                snprintf(filter, sizeof(filter), "system call filter NOT installed: %s", skip);
                level = LOG_WARNING;
        } else {
                r = sandbox_filter_load(mode, &n);
                if (r == -EOPNOTSUPP) {
                        /* Refusing to start would leave such hosts without the daemon at all. */
                        snprintf(filter, sizeof(filter), "system call filter NOT installed: the kernel lacks "
                                 "seccomp filters with the kill-process and log actions (Linux 4.14)");
                        level = LOG_WARNING;
                } else if (r < 0)
                        return log_error_errno(r, "Sandbox: failed to load the system call filter "
                                               "(SystemCallFilter=no runs without it)");
                else
                        snprintf(filter, sizeof(filter), "system call filter on: %u system calls allowed, %s", n,
                                 mode == SANDBOX_FILTER_LOG ? "others are allowed and logged by the kernel (SystemCallFilter=log)"
                                                            : "any other kills the daemon");
        }
        log_full(level, 0, "Sandbox: dropped all capabilities (permitted set was 0x%" PRIx64 ", bounding set %s), "
                 "no_new_privs set; %s",
                 before, bounding ? "emptied" : "unchanged: no CAP_SETPCAP", filter);
        return 0;
}
