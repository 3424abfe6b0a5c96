/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hook-conf.c - the hook's KEY=VALUE configuration file; see hook-conf.h.
 *
 * Keys are dispatched from a table of (key, parser, seen flag); each parser
 * writes into a scratch copy of the configuration, which replaces the
 * caller's only when the whole file parsed.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hook-conf.h"
#include "macro.h"

void hook_conf_init(struct hook_conf *c)
{
        *c = (struct hook_conf) { .timeout_ms = HOOK_DEFAULT_TIMEOUT_MS, .fail_open = false };
        snprintf(c->admin_socket, sizeof(c->admin_socket), "%s", HOOK_DEFAULT_ADMIN_SOCKET);
}

static int conf_error(struct hook_conf_error *err, const char *path, unsigned line, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int conf_error(struct hook_conf_error *err, const char *path, unsigned line, const char *fmt, ...)
{
        va_list ap;
        int n;

        n = snprintf(err->text, sizeof(err->text), "%s:%u: ", path, line);
        if (n < 0 || (size_t) n >= sizeof(err->text))
                return -EINVAL;
        va_start(ap, fmt);
        vsnprintf(err->text + n, sizeof(err->text) - (size_t) n, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

/* A parser returns 0, or -EINVAL after writing a reason (no file:line) to @why. */
typedef int (*conf_parser)(const char *value, struct hook_conf *c, char *why, size_t n);

static int parse_admin_socket(const char *value, struct hook_conf *c, char *why, size_t n)
{
        if (value[0] != '/') {
                snprintf(why, n, "admin-socket must be an absolute path, not \"%.60s\"", value);
                return -EINVAL;
        }
        if (strlen(value) >= sizeof(c->admin_socket)) {
                snprintf(why, n, "admin-socket is longer than a Unix socket path may be (%zu bytes)",
                         sizeof(c->admin_socket) - 1);
                return -EINVAL;
        }
        snprintf(c->admin_socket, sizeof(c->admin_socket), "%s", value);
        return 0;
}

static int parse_timeout_ms(const char *value, struct hook_conf *c, char *why, size_t n)
{
        unsigned long v;
        char *end;

        errno = 0;
        v = strtoul(value, &end, 10);
        if (value[0] < '0' || value[0] > '9' || *end || errno || v < 1 || v > HOOK_TIMEOUT_MS_MAX) {
                snprintf(why, n, "timeout-ms must be a number of milliseconds from 1 to %u, not \"%.40s\"",
                         HOOK_TIMEOUT_MS_MAX, value);
                return -EINVAL;
        }
        c->timeout_ms = (unsigned) v;
        return 0;
}

static int parse_on_unavailable(const char *value, struct hook_conf *c, char *why, size_t n)
{
        if (strcmp(value, "fail-closed") == 0)
                c->fail_open = false;
        else if (strcmp(value, "fail-open") == 0)
                c->fail_open = true;
        else {
                snprintf(why, n, "on-unavailable must be fail-closed or fail-open, not \"%.40s\"", value);
                return -EINVAL;
        }
        return 0;
}

static const struct {
        const char *key;
        conf_parser parse;
} conf_keys[] = {
        { "admin-socket", parse_admin_socket },
        { "timeout-ms", parse_timeout_ms },
        { "on-unavailable", parse_on_unavailable },
};

/**
 * strip() - @s without blanks at either end, in place
 */
static char *strip(char *s)
{
        size_t n;

        while (*s == ' ' || *s == '\t')
                s++;
        n = strlen(s);
        while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
                s[--n] = '\0';
        return s;
}

int hook_conf_parse(const char *path, const char *text, struct hook_conf *c, struct hook_conf_error *ret_err)
{
        _cleanup_free_ char *copy = strdup(text);
        bool seen[ELEMENTSOF(conf_keys)] = { false };
        struct hook_conf next = *c;
        unsigned line = 0;
        char *p, *eol;

        if (!copy)
                return conf_error(ret_err, path, 0, "out of memory"), -ENOMEM;
        for (p = copy; p && *p; p = eol) {
                char why[200];
                char *key, *value, *eq;
                size_t i;

                line++;
                eol = strchr(p, '\n');
                if (eol)
                        *eol++ = '\0';
                key = strip(p);
                if (!*key || *key == '#')
                        continue;
                eq = strchr(key, '=');
                if (!eq)
                        return conf_error(ret_err, path, line, "expected KEY=VALUE, got \"%.60s\"", key);
                *eq = '\0';
                value = strip(eq + 1);
                key = strip(key);
                for (i = 0; i < ELEMENTSOF(conf_keys); i++)
                        if (strcmp(key, conf_keys[i].key) == 0)
                                break;
                if (i == ELEMENTSOF(conf_keys))
                        return conf_error(ret_err, path, line,
                                          "unknown key \"%.60s\" (known: admin-socket, timeout-ms, on-unavailable)",
                                          key);
                if (seen[i])
                        return conf_error(ret_err, path, line, "%s is set twice", key);
                seen[i] = true;
                if (conf_keys[i].parse(value, &next, why, sizeof(why)) < 0)
                        return conf_error(ret_err, path, line, "%s", why);
        }
        *c = next;
        return 0;
}

int hook_conf_load(const char *path, struct hook_conf *c, const char **ret_path, struct hook_conf_error *ret_err)
{
        _cleanup_close_ int fd = -EBADF;
        char *buf;
        size_t len = 0;
        int r;

        if (!path)
                path = getenv(HOOK_CONF_ENV);
        if (!path || !*path)
                path = HOOK_CONF_PATH;
        *ret_path = path;
        hook_conf_init(c);

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0 && errno == ENOENT)
                return 0;
        if (fd < 0) {
                r = negative_errno();
                snprintf(ret_err->text, sizeof(ret_err->text), "%s: cannot open: %s", path, strerror(-r));
                return r;
        }
        buf = malloc(HOOK_CONF_MAX + 1);
        if (!buf)
                return conf_error(ret_err, path, 0, "out of memory"), -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, buf + len, HOOK_CONF_MAX + 1 - len);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0) {
                        r = negative_errno();
                        snprintf(ret_err->text, sizeof(ret_err->text), "%s: cannot read: %s", path, strerror(-r));
                        free(buf);
                        return r;
                }
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > HOOK_CONF_MAX) {
                        snprintf(ret_err->text, sizeof(ret_err->text), "%s: larger than %u bytes", path, HOOK_CONF_MAX);
                        free(buf);
                        return -EFBIG;
                }
        }
        buf[len] = '\0';
        if (memchr(buf, '\0', len)) {
                free(buf);
                return conf_error(ret_err, path, 0, "contains a NUL byte; not a text file");
        }
        r = hook_conf_parse(path, buf, c, ret_err);
        free(buf);
        return r;
}
