/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * hook.c - memconvd-libvirt-hook, installed in /etc/libvirt/hooks/qemu.d/:
 * tells memconvd which domains libvirt starts and stops.
 *
 * Theory of operation. libvirt (>= 6.5) runs every executable in
 * /etc/libvirt/hooks/qemu.d/ as `HOOK DOMAIN OPERATION SUB-OPERATION EXTRA`
 * with the domain XML on stdin, synchronously, holding the domain's lock.
 *
 *  - `DOMAIN prepare begin -`: before libvirt allocates anything for the
 *    domain. The hook sends memconvd a RegisterDomainRequest with the
 *    domain's uuid, name, launchSecurity type and the policy from its
 *    <metadata> (domain-xml.h). A non-zero exit makes libvirt refuse to
 *    start the domain, and libvirt shows our stderr in its error.
 *  - `DOMAIN release end -`: the domain is gone. The hook sends a
 *    ForgetRequest for its uuid; "no such VM" counts as done, and "still
 *    attached" (the VMM's disconnect not yet seen by memconvd) is retried
 *    until the deadline. libvirt ignores the exit status here.
 *  - anything else (start, started, stopped, migrate, restore, reconnect,
 *    attach, ...): exit 0 at once, without reading stdin (libvirt ignores
 *    EPIPE on it) and without reading the configuration, so the hook can
 *    never stop a running domain (a failing `reconnect` hook makes libvirt
 *    kill the domain).
 *
 * What it must never do: call back into libvirt (libvirt waits for us with
 * the domain locked: a deadlock), write to stdout (libvirt takes a hook's
 * stdout as replacement XML for some operations), or take longer than
 * timeout-ms (2 s by default) in total, counted from process start:
 * reading stdin, connecting, and waiting for the reply share that budget.
 *
 * When memconvd cannot be reached, does not answer in time, or answers
 * garbage, on-unavailable decides: fail-closed (the default) refuses to
 * start the domain, fail-open starts it anyway. A refusal by a daemon that
 * did answer always blocks the start, whatever on-unavailable says.
 *
 * Exit status: 0 done or ignored; 1 refused or failed; 2 usage.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "domain-xml.h"
#include "hook-admin.h"
#include "hook-conf.h"
#include "macro.h"
#include "message.h"

#define PROG "memconvd-libvirt-hook"
#define FORGET_RETRY_USEC 50000ULL

enum hook_exit {
        HOOK_EXIT_OK = 0,
        HOOK_EXIT_FAILED = 1,
        HOOK_EXIT_USAGE = 2,
};

enum hook_action {
        HOOK_IGNORE,
        HOOK_REGISTER,
        HOOK_FORGET,
};

static const struct {
        const char *operation;
        const char *sub_operation;
        enum hook_action action;
} hook_actions[] = {
        { "prepare", "begin", HOOK_REGISTER },
        { "release", "end", HOOK_FORGET },
};

/* What one run works with: filled once in main(), read everywhere else. */
struct hook_run {
        const char *domain;           /* argv[1] */
        enum hook_action action;
        struct hook_conf conf;
        const char *conf_path;        /* borrowed */
        uint64_t deadline_usec;       /* CLOCK_MONOTONIC */
        struct domain_xml *xml;       /* owned */
};

/**
 * help() - the usage text, on stdout (only ever asked for by a person)
 */
static void help(void)
{
        printf("Usage: %s DOMAIN OPERATION SUB-OPERATION [EXTRA...] < DOMAIN-XML\n\n"
               "libvirt QEMU hook (install in /etc/libvirt/hooks/qemu.d/): registers a domain\n"
               "with memconvd at \"prepare begin\" and forgets it at \"release end\"; every other\n"
               "operation is accepted and ignored.\n\n"
               "Configuration: %s (or $%s).\n"
               "Exit status: 0 done or ignored, 1 refused or failed, 2 usage error.\n"
               "See memconvd-libvirt-hook(8).\n",
               PROG, HOOK_CONF_PATH, HOOK_CONF_ENV);
}

static enum hook_action find_action(const char *operation, const char *sub_operation)
{
        for (size_t i = 0; i < ELEMENTSOF(hook_actions); i++)
                if (strcmp(hook_actions[i].operation, operation) == 0 &&
                    strcmp(hook_actions[i].sub_operation, sub_operation) == 0)
                        return hook_actions[i].action;
        return HOOK_IGNORE;
}

/**
 * read_stdin() - the whole of stdin, at most DOMAIN_XML_MAX + 1 bytes,
 * before @deadline_usec
 * @ret: the bytes, NUL-terminated, owned by the caller
 * @ret_len: how many (without the NUL)
 * Return: 0; -ETIMEDOUT stdin did not end in time; -EFBIG more than
 * DOMAIN_XML_MAX bytes; other negative errno
 */
static int read_stdin(uint64_t deadline_usec, char **ret, size_t *ret_len)
{
        _cleanup_free_ char *buf = NULL;
        size_t len = 0, size = 0;

        for (;;) {
                struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
                uint64_t now = hook_now_usec();
                ssize_t n;
                int r;

                if (now >= deadline_usec)
                        return -ETIMEDOUT;
                r = poll(&p, 1, (int) ((deadline_usec - now + 999) / 1000));
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0)
                        return negative_errno();
                if (r == 0)
                        continue;
                if (size - len < 4096) {
                        size_t want = size ? size * 2 : 64 * 1024;
                        char *p2;

                        if (want > DOMAIN_XML_MAX + 2)
                                want = DOMAIN_XML_MAX + 2;
                        if (want - len < 2)
                                return -EFBIG;
                        p2 = realloc(buf, want);
                        if (!p2)
                                return -ENOMEM;
                        buf = p2;
                        size = want;
                }
                n = read(STDIN_FILENO, buf + len, size - len - 1);
                if (n < 0 && (errno == EINTR || errno == EAGAIN))
                        continue;
                if (n < 0)
                        return negative_errno();
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > DOMAIN_XML_MAX)
                        return -EFBIG;
        }
        if (!buf)
                buf = calloc(1, 1);
        if (!buf)
                return -ENOMEM;
        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

/**
 * unavailable() - memconvd could not be asked: apply on-unavailable
 * @what: "register" or "forget"
 * @error: hook_admin_call()'s negative errno
 * Return: the exit status
 */
static int unavailable(const struct hook_run *run, const char *what, int error)
{
        const char *sock = run->conf.admin_socket;

        fprintf(stderr, "%s: cannot %s domain '%s' with memconvd: ", PROG, what, run->domain);
        switch (error) {
        case -ENOENT:
        case -ECONNREFUSED:
                fprintf(stderr, "memconvd is not running (nothing listens on %s)", sock);
                break;
        case -ETIMEDOUT:
                fprintf(stderr, "memconvd did not answer on %s in time", sock);
                break;
        case -ECONNRESET:
                fprintf(stderr, "memconvd closed the connection on %s without answering", sock);
                break;
        default:
                fprintf(stderr, "talking to %s failed: %s", sock, strerror(-error));
        }
        fprintf(stderr, " (timeout-ms=%u).\n", run->conf.timeout_ms);

        if (run->conf.fail_open) {
                fprintf(stderr, "%s: on-unavailable=fail-open: %s anyway.\n", PROG,
                        run->action == HOOK_REGISTER ? "starting the domain" : "carrying on");
                return HOOK_EXIT_OK;
        }
        if (run->action == HOOK_REGISTER)
                fprintf(stderr, "%s: on-unavailable=fail-closed (%s): the domain is not started. "
                                "Start memconvd ('systemctl start memconvd') and try again.\n",
                        PROG, run->conf_path);
        else
                fprintf(stderr, "%s: memconvd may still hold the domain's state: run 'memconvctl forget %s' "
                                "once it is back.\n", PROG, run->xml->uuid);
        return HOOK_EXIT_FAILED;
}

/**
 * refused() - report a reply whose status is not OK
 * Return: the exit status
 */
static int refused(const struct hook_run *run, const char *what, const Memconv__Status *s)
{
        const char *msg = s->message && *s->message ? s->message : "no reason given";
        size_t n = strlen(what);

        /* The daemon starts its texts with the request's name ("register: ..."): said already. */
        if (strncmp(msg, what, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
                msg += n + 2;
        fprintf(stderr, "%s: memconvd refused to %s domain '%s' (%s): %s (%s).\n", PROG, what, run->domain,
                run->xml->uuid, msg, mc_code_name(s->code));
        return HOOK_EXIT_FAILED;
}

static void reply_freep(Memconv__AdminReply **r)
{
        if (*r)
                protobuf_c_message_free_unpacked(&(*r)->base, NULL);
}

static bool reply_ok(const Memconv__AdminReply *reply)
{
        return !reply->status || reply->status->code == MEMCONV__CODE__CODE_OK;
}

/**
 * do_register() - `prepare begin`: RegisterDomainRequest
 * Return: the exit status
 */
static int do_register(const struct hook_run *run)
{
        Memconv__RegisterDomainRequest body = MEMCONV__REGISTER_DOMAIN_REQUEST__INIT;
        Memconv__AdminRequest req = MEMCONV__ADMIN_REQUEST__INIT;
        _cleanup_(reply_freep) Memconv__AdminReply *reply = NULL;
        int r;

        body.uuid = (char *) run->xml->uuid;
        body.name = run->xml->name;
        body.cc_type = run->xml->cc_type;
        body.policy = run->xml->policy ? run->xml->policy : (char *) "";
        req.id = 1;
        req.body_case = MEMCONV__ADMIN_REQUEST__BODY_REGISTER_DOMAIN;
        req.register_domain = &body;

        r = hook_admin_call(run->conf.admin_socket, run->deadline_usec, &req, &reply);
        if (r < 0)
                return unavailable(run, "register", r);
        if (!reply_ok(reply))
                return refused(run, "register", reply->status);
        if (reply->body_case != MEMCONV__ADMIN_REPLY__BODY_REGISTER_DOMAIN) {
                fprintf(stderr, "%s: memconvd's answer to registering domain '%s' is not a registration reply "
                                "(body %d); is memconvd older than this hook?\n", PROG, run->domain,
                        (int) reply->body_case);
                return HOOK_EXIT_FAILED;
        }
        return HOOK_EXIT_OK;
}

/**
 * do_forget() - `release end`: ForgetRequest for the uuid, retried while
 * memconvd still sees the VMM attached
 * Return: the exit status
 */
static int do_forget(const struct hook_run *run)
{
        Memconv__VmSelector sel = MEMCONV__VM_SELECTOR__INIT;
        Memconv__ForgetRequest body = MEMCONV__FORGET_REQUEST__INIT;
        Memconv__AdminRequest req = MEMCONV__ADMIN_REQUEST__INIT;

        sel.spec = (char *) run->xml->uuid;
        body.vm = &sel;
        req.body_case = MEMCONV__ADMIN_REQUEST__BODY_FORGET;
        req.forget = &body;

        for (uint64_t id = 1;; id++) {
                _cleanup_(reply_freep) Memconv__AdminReply *reply = NULL;
                uint64_t now;
                int r;

                req.id = id;
                r = hook_admin_call(run->conf.admin_socket, run->deadline_usec, &req, &reply);
                if (r < 0)
                        return unavailable(run, "forget", r);
                if (reply_ok(reply) || reply->status->code == MEMCONV__CODE__CODE_UNKNOWN_VM)
                        return HOOK_EXIT_OK;
                now = hook_now_usec();
                if (reply->status->code != MEMCONV__CODE__CODE_BUSY || now + FORGET_RETRY_USEC >= run->deadline_usec)
                        return refused(run, "forget", reply->status);
                (void) nanosleep(&(struct timespec) { .tv_nsec = (long) FORGET_RETRY_USEC * 1000L }, NULL);
        }
}

int main(int argc, char **argv)
{
        struct hook_run run = { .deadline_usec = hook_now_usec() };
        struct hook_conf_error conf_err;
        struct domain_xml_error xml_err;
        _cleanup_free_ char *buf = NULL;
        size_t len;
        int r, status;

        if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
                help();
                return HOOK_EXIT_OK;
        }
        if (argc == 2 && strcmp(argv[1], "--version") == 0) {
                printf("%s %s\n", PROG, PACKAGE_VERSION);
                return HOOK_EXIT_OK;
        }
        if (argc < 4) {
                fprintf(stderr, "%s: expected DOMAIN OPERATION SUB-OPERATION as libvirt passes them, got %d "
                                "argument(s).\nTry '%s --help'.\n", PROG, argc - 1, PROG);
                return HOOK_EXIT_USAGE;
        }
        run.domain = argv[1];
        run.action = find_action(argv[2], argv[3]);
        if (run.action == HOOK_IGNORE)
                return HOOK_EXIT_OK;

        r = hook_conf_load(NULL, &run.conf, &run.conf_path, &conf_err);
        if (r < 0) {
                fprintf(stderr, "%s: %s\n%s: fix the configuration (see memconvd-libvirt-hook(8)); "
                                "domain '%s' is not %s.\n", PROG, conf_err.text, PROG, run.domain,
                        run.action == HOOK_REGISTER ? "started" : "forgotten by memconvd");
                return HOOK_EXIT_FAILED;
        }
        run.deadline_usec += (uint64_t) run.conf.timeout_ms * 1000ULL;

        r = read_stdin(run.deadline_usec, &buf, &len);
        if (r < 0) {
                if (r == -ETIMEDOUT)
                        fprintf(stderr, "%s: domain '%s': the domain XML did not arrive on stdin within %u ms.\n",
                                PROG, run.domain, run.conf.timeout_ms);
                else if (r == -EFBIG)
                        fprintf(stderr, "%s: domain '%s': the domain XML on stdin is larger than %u bytes (10 MiB).\n",
                                PROG, run.domain, DOMAIN_XML_MAX);
                else
                        fprintf(stderr, "%s: domain '%s': cannot read the domain XML from stdin: %s.\n", PROG,
                                run.domain, strerror(-r));
                return HOOK_EXIT_FAILED;
        }
        r = domain_xml_parse(buf, len, &run.xml, &xml_err);
        if (r < 0) {
                fprintf(stderr, "%s: domain '%s': %s.\n", PROG, run.domain, xml_err.text);
                return HOOK_EXIT_FAILED;
        }
        if (strcmp(run.xml->name, run.domain) != 0) {
                fprintf(stderr, "%s: the hook was called for domain '%s', but the XML on stdin describes '%s'.\n",
                        PROG, run.domain, run.xml->name);
                domain_xml_free(run.xml);
                return HOOK_EXIT_FAILED;
        }

        status = run.action == HOOK_REGISTER ? do_register(&run) : do_forget(&run);
        domain_xml_free(run.xml);
        return status;
}
