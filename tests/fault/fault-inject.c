/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fault-inject.c - an LD_PRELOAD object that makes the real memconvd see
 * the I/O errors a test cannot get from a healthy machine: a journal disk
 * that returns EIO, and fallocate(PUNCH_HOLE) failing on a discard.
 *
 * Only the calls memconvd makes are interposed (lib/journal.c and
 * daemon/persist.c: pwrite, write, fdatasync, fsync; daemon/discard.c:
 * fallocate), each forwarded to the next definition (dlsym(RTLD_NEXT))
 * unless a fault is active. Nothing is faked beyond the return value: the
 * call is not made at all, as when the device refuses it.
 *
 * Environment (nothing set: every call passes through):
 *   MEMCONV_FAULT_JOURNAL=eio|eio-sync
 *       eio: writes and syncs of files whose path contains ".journal"
 *       (the journals and their ".journal.tmp.*" rewrites) fail with EIO;
 *       eio-sync: only the syncs fail (the data reached the page cache and
 *       the daemon must undo it), as a real writeback error does.
 *   MEMCONV_FAULT_JOURNAL_FLAG=PATH   active only while PATH exists
 *   MEMCONV_FAULT_JOURNAL_AFTER=N     the first N matching calls succeed
 *   MEMCONV_FAULT_FALLOCATE=eio|enospc
 *       fallocate(FALLOC_FL_PUNCH_HOLE) fails with that errno
 *   MEMCONV_FAULT_FALLOCATE_FLAG=PATH active only while PATH exists; if
 *       PATH holds text, only on files whose /proc/self/fd link contains
 *       it (a memfd's name: one VM's shared memory)
 * The flag files let a test switch a fault on and off while the daemon runs.
 * Every injected failure is reported on stderr (the daemon's log in tests)
 * as "fault-inject: ...", so a test can see that the fault really happened.
 */
#ifndef _GNU_SOURCE /* config.h has it in the build */
#define _GNU_SOURCE
#endif
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

static ssize_t (*real_write)(int, const void *, size_t);
static ssize_t (*real_pwrite)(int, const void *, size_t, off_t);
static int (*real_fsync)(int);
static int (*real_fdatasync)(int);
static int (*real_fallocate)(int, int, off_t, off_t);

static unsigned long journal_calls; /* matching journal calls seen, for _AFTER */

static void *next_symbol(const char *name)
{
        void *p = dlsym(RTLD_NEXT, name);

        if (!p) {
                dprintf(STDERR_FILENO, "fault-inject: no next definition of %s\n", name);
                abort();
        }
        return p;
}

/* Resolved before main(): interposed calls then never race on the pointers. */
__attribute__((constructor)) static void fault_init(void)
{
        real_write = next_symbol("write");
        real_pwrite = next_symbol("pwrite");
        real_fsync = next_symbol("fsync");
        real_fdatasync = next_symbol("fdatasync");
        real_fallocate = next_symbol("fallocate");
}

/** fault_active() - is the fault named by @mode_var on (mode set, flag file present)? */
static const char *fault_active(const char *mode_var, const char *flag_var)
{
        const char *mode = getenv(mode_var), *flag = getenv(flag_var);

        if (!mode || !*mode)
                return NULL;
        if (flag && *flag && access(flag, F_OK) < 0)
                return NULL;
        return mode;
}

/** fd_path() - what @fd names (its /proc/self/fd link), "" when unknown */
static void fd_path(int fd, char *buf, size_t size)
{
        char link[64];
        ssize_t n;

        snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
        n = readlink(link, buf, size - 1);
        buf[n < 0 ? 0 : n] = '\0';
}

/**
 * journal_fault() - should this @call on @fd fail?
 * @is_sync: a sync (fails in both modes) or a write (only in "eio")
 * Return: the errno to fail with, or 0 to pass the call through
 */
static int journal_fault(const char *call, int fd, bool is_sync)
{
        const char *mode = fault_active("MEMCONV_FAULT_JOURNAL", "MEMCONV_FAULT_JOURNAL_FLAG");
        const char *after = getenv("MEMCONV_FAULT_JOURNAL_AFTER");
        char path[512];

        if (!mode)
                return 0;
        if (strcmp(mode, "eio-sync") == 0 ? !is_sync : strcmp(mode, "eio") != 0)
                return 0;
        fd_path(fd, path, sizeof(path));
        if (!strstr(path, ".journal"))
                return 0;
        if (after && __atomic_add_fetch(&journal_calls, 1, __ATOMIC_RELAXED) <= strtoul(after, NULL, 10))
                return 0;
        dprintf(STDERR_FILENO, "fault-inject: %s(%s): EIO injected\n", call, path);
        return EIO;
}

EXPORT ssize_t write(int fd, const void *buf, size_t len)
{
        int e = journal_fault("write", fd, false);

        if (e) {
                errno = e;
                return -1;
        }
        return real_write(fd, buf, len);
}

EXPORT ssize_t pwrite(int fd, const void *buf, size_t len, off_t offset)
{
        int e = journal_fault("pwrite", fd, false);

        if (e) {
                errno = e;
                return -1;
        }
        return real_pwrite(fd, buf, len, offset);
}

EXPORT int fsync(int fd)
{
        int e = journal_fault("fsync", fd, true);

        if (e) {
                errno = e;
                return -1;
        }
        return real_fsync(fd);
}

EXPORT int fdatasync(int fd)
{
        int e = journal_fault("fdatasync", fd, true);

        if (e) {
                errno = e;
                return -1;
        }
        return real_fdatasync(fd);
}

EXPORT int fallocate(int fd, int mode, off_t offset, off_t len)
{
        const char *fault = (mode & FALLOC_FL_PUNCH_HOLE) ?
                fault_active("MEMCONV_FAULT_FALLOCATE", "MEMCONV_FAULT_FALLOCATE_FLAG") : NULL;
        int e = 0;
        char path[512];

        if (fault && strcmp(fault, "eio") == 0)
                e = EIO;
        else if (fault && strcmp(fault, "enospc") == 0)
                e = ENOSPC;
        if (e) {
                char match[128] = "";
                const char *flag = getenv("MEMCONV_FAULT_FALLOCATE_FLAG");
                int ffd = flag && *flag ? open(flag, O_RDONLY | O_CLOEXEC) : -1;

                if (ffd >= 0) {
                        ssize_t n = read(ffd, match, sizeof(match) - 1);

                        close(ffd);
                        match[n > 0 ? n : 0] = '\0';
                        match[strcspn(match, "\n")] = '\0';
                }
                fd_path(fd, path, sizeof(path));
                if (match[0] && !strstr(path, match))
                        e = 0;
        }
        if (!e)
                return real_fallocate(fd, mode, offset, len);
        dprintf(STDERR_FILENO, "fault-inject: fallocate(%s, PUNCH_HOLE, 0x%llx, 0x%llx): %s injected\n", path,
                (unsigned long long) offset, (unsigned long long) len, e == EIO ? "EIO" : "ENOSPC");
        errno = e;
        return -1;
}
