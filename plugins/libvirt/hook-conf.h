/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hook-conf.h - the libvirt hook's configuration file,
 * /etc/memconvd/libvirt-hook.conf (memconvd-libvirt-hook(8)).
 *
 * Lines of KEY=VALUE (blanks around either side allowed); '#' starts a
 * comment line; empty lines are ignored. Keys:
 *
 *   admin-socket=PATH                    memconvd's admin socket
 *   timeout-ms=N                         the whole conversation, 1..30000
 *   on-unavailable=fail-closed|fail-open what to do when memconvd cannot
 *                                        be reached or does not answer
 *
 * A missing file means the defaults. An unknown key, a repeated key or a
 * bad value is an error reported as "FILE:LINE: ...", so a typo never
 * silently turns fail-closed into fail-open. The environment variable
 * HOOK_CONF_ENV names another file (for tests and for trying a setting out).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#ifndef SYSCONFDIR
#define SYSCONFDIR "/etc"
#endif
#ifndef RUNDIR
#define RUNDIR "/run"
#endif

#define HOOK_CONF_PATH SYSCONFDIR "/memconvd/libvirt-hook.conf"
#define HOOK_CONF_ENV "MEMCONVD_LIBVIRT_HOOK_CONF"
#define HOOK_DEFAULT_ADMIN_SOCKET RUNDIR "/memconvd/admin.sock"
#define HOOK_DEFAULT_TIMEOUT_MS 2000U
#define HOOK_TIMEOUT_MS_MAX 30000U
#define HOOK_CONF_MAX (64U * 1024U)
#define HOOK_CONF_ERROR_MAX 512U

struct hook_conf {
        char admin_socket[108];        /* sizeof(sun_path) */
        unsigned timeout_ms;
        bool fail_open;                /* false: fail-closed (the default) */
};

struct hook_conf_error {
        char text[HOOK_CONF_ERROR_MAX];  /* "FILE:LINE: what is wrong", no newline */
};

/** hook_conf_init() - the defaults */
void hook_conf_init(struct hook_conf *c);

/**
 * hook_conf_parse() - parse the text of a configuration file into @c
 * @path: the file's name, for error messages
 * @text: its contents (borrowed, NUL-terminated)
 * @c: filled in on top of what it holds (call hook_conf_init() first);
 *     left unchanged on failure
 * Return: 0 or -EINVAL with @ret_err filled in
 */
int hook_conf_parse(const char *path, const char *text, struct hook_conf *c, struct hook_conf_error *ret_err);

/**
 * hook_conf_load() - read @path (or, when NULL, $HOOK_CONF_ENV or
 * HOOK_CONF_PATH) into @c, on top of the defaults
 * @ret_path: the file that was chosen (borrowed: a literal or from environ)
 * Return: 0 (also when the file does not exist); -EINVAL a bad line;
 * -EFBIG larger than HOOK_CONF_MAX; other negative errno from reading it.
 * @ret_err is filled in on failure.
 */
int hook_conf_load(const char *path, struct hook_conf *c, const char **ret_path, struct hook_conf_error *ret_err);
