/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * sandbox.h - what memconvd gives up once it is set up: every capability,
 * the right to gain privileges (no_new_privs), and every system call it
 * does not use (a seccomp allow-list built with libseccomp).
 *
 * Capabilities, no_new_privs and seccomp filters are per thread and are
 * inherited by threads created afterwards, so main.c calls sandbox_apply()
 * after the privileged set-up (policy plugins loaded, sockets bound and
 * given their group) and before the discard workers and the journal
 * thread exist. The filter is also loaded with TSYNC, so that a thread some
 * library started on its own would be covered too. See memconvd(8),
 * SECURITY.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

enum sandbox_filter {
        SANDBOX_FILTER_NO,   /* no system call filter */
        SANDBOX_FILTER_YES,  /* a call outside the list kills the process (the default) */
        SANDBOX_FILTER_LOG,  /* a call outside the list is allowed and logged by the kernel */
};

/**
 * sandbox_filter_from_string() - "yes", "no" or "log" (and the boolean
 * spellings of memconvd.conf: true/on/1, false/off/0), case-insensitive
 * Return: an enum sandbox_filter, or -EINVAL
 */
int sandbox_filter_from_string(const char *s);

/** sandbox_filter_to_string() - "yes", "no" or "log" */
const char *sandbox_filter_to_string(enum sandbox_filter mode);

/**
 * sandbox_filter_skip_reason() - why this process cannot run under the
 * filter, or NULL when it can
 *
 * Built with AddressSanitizer (LeakSanitizer stops the world with clone()
 * and ptrace() at exit), or running under valgrind (whose own system calls
 * the filter would see).
 */
const char *sandbox_filter_skip_reason(void);

/**
 * sandbox_drop_capabilities() - empty this thread's capability sets
 * @ret_before: the permitted set before, or NULL
 * @ret_bounding_cleared: set to whether the bounding set could be emptied
 *                        (needs CAP_SETPCAP, which only a privileged start has)
 *
 * Clears the bounding set (where allowed), the ambient set, then the
 * effective, permitted and inheritable sets. Keeps nothing: memconvd needs
 * no capability once its sockets are bound (see memconvd(8), SECURITY).
 * Return: 0 or negative errno (not logged)
 */
int sandbox_drop_capabilities(uint64_t *ret_before, bool *ret_bounding_cleared);

/**
 * sandbox_filter_load() - load the allow-list filter into this thread (and,
 * with TSYNC, every other thread of the process)
 * @mode: SANDBOX_FILTER_YES or SANDBOX_FILTER_LOG
 * @ret_n_allowed: the number of system calls allowed, or NULL
 *
 * Sets no_new_privs, which loading a filter without CAP_SYS_ADMIN requires.
 * Return: 0, -EOPNOTSUPP when the kernel has no seccomp filters, or another
 * negative errno (not logged)
 */
int sandbox_filter_load(enum sandbox_filter mode, unsigned *ret_n_allowed);

/**
 * sandbox_apply() - drop capabilities, set no_new_privs, load the filter as
 * @mode says; logs one line saying what was done
 * Return: 0 or negative errno (logged)
 */
int sandbox_apply(enum sandbox_filter mode);
