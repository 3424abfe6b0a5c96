/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * macro.h - small helpers shared by every part of the tree: cleanup
 * attributes in the style of systemd (_cleanup_, TAKE_PTR, TAKE_FD), array
 * sizes and visibility. Internal header.
 */
#pragma once

#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#define _public_ __attribute__((visibility("default")))
#define _unused_ __attribute__((unused))
#define _cleanup_(f) __attribute__((cleanup(f)))
#define _likely_(x) __builtin_expect(!!(x), 1)
#define _unlikely_(x) __builtin_expect(!!(x), 0)

#define ELEMENTSOF(a) (sizeof(a) / sizeof((a)[0]))

/* Hand a pointer/fd out of a _cleanup_ variable. */
#define TAKE_PTR(p)                          \
        ({                                   \
                __typeof__(p) _p_ = (p);     \
                (p) = NULL;                  \
                _p_;                         \
        })
#define TAKE_FD(fd)                          \
        ({                                   \
                int _fd_ = (fd);             \
                (fd) = -EBADF;               \
                _fd_;                        \
        })

/**
 * safe_close() - close @fd if it is valid, keeping errno
 * Return: -EBADF, to reset the variable in one statement.
 */
static inline int safe_close(int fd)
{
        if (fd >= 0) {
                int saved = errno;
                close(fd);
                errno = saved;
        }
        return -EBADF;
}

static inline void closep(int *fd)
{
        safe_close(*fd);
}

static inline void freep(void *p)
{
        free(*(void **) p);
}

#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_free_ _cleanup_(freep)

/* -errno of the last libc failure, never 0. */
static inline int negative_errno(void)
{
        return errno > 0 ? -errno : -EIO;
}
