/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * memconvctl.c - the admin CLI of memconvd: global options, the command
 * table, the connection to the admin socket, and what a failure means.
 *
 * Every command is one request and one reply (ranges pages through several,
 * history --follow reads a stream), each on its own SOCK_SEQPACKET
 * connection: connect, send an AdminRequest with id 1, wait up to
 * CTL_REPLY_TIMEOUT_MSEC for the AdminReply, check its id and status.
 *
 * Exit statuses (enum ctl_exit) are the contract with scripts and are
 * documented in memconvctl(8): 0 success, 1 the daemon refused or failed
 * (or check found problems), 2 usage, 3 the daemon cannot be reached or
 * refuses this user, 4 no such VM. Every failure is reported once, here or
 * in the command, as "memconvctl CMD: what happened" plus a line saying what
 * to do.
 *
 * SIGPIPE is ignored: a write to a closed pipe fails with EPIPE, which ends
 * output quietly (ctl_finish_output()); the socket is written with
 * MSG_NOSIGNAL anyway.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"
#include "frame.h"
#include "macro.h"
#include "message.h"

static const struct ctl_command commands[] = {
        { "status", "", "Show the daemon's version, sockets, VM counts and totals", ctl_status_main },
        { "list", "", "List the VMs the daemon knows, attached and detached", ctl_list_main },
        { "show", "VM", "Show one VM: identity, regions, memory, counters", ctl_show_main },
        { "ranges", "VM [--private|--shared] [--start GPA] [--end GPA]",
          "Show the VM's attribute map: which ranges are private or shared", ctl_ranges_main },
        { "history", "VM [--since SEQ|--since-time TIME] [--follow] [--limit N]",
          "Show the VM's attribute changes", ctl_history_main },
        { "stats", "[VM] [--prometheus]", "Show conversion counters and latencies", ctl_stats_main },
        { "check", "VM", "Look for memory backed twice or backing that disagrees with the map",
          ctl_check_main },
        { "forget", "VM", "Drop the state and history of a detached VM", ctl_forget_main },
        { "policy", "show VM | set VM PLUGIN [KEY=VALUE...]", "Show or change a VM's policy settings", ctl_policy_main },
};

/**
 * help() - print the global usage text to stdout
 */
static void help(void)
{
        printf("Usage: memconvctl [OPTION...] COMMAND [ARG...]\n\n"
               "Inspect memconvd, the memory conversion daemon of confidential VMs.\n\n"
               "Commands:\n");
        for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
                char buf[80];

                snprintf(buf, sizeof(buf), "%s %s", commands[i].name, commands[i].synopsis);
                printf("  %s\n      %s\n", buf, commands[i].summary);
        }
        printf("\nVM is a uuid, a name, or the daemon's id (\"#3\" or \"3\").\n\n"
               "Options (also accepted after COMMAND):\n"
               "  -h --help               Show this help (COMMAND --help: that command's)\n"
               "     --version            Show the version\n"
               "     --admin-socket=PATH  memconvd's admin socket (default %s)\n"
               "     --json               Print one JSON document instead of a table\n"
               "     --no-legend          Print no header line and no summary line\n\n"
               "Exit status: 0 success, 1 refused or failed (check: problems found),\n"
               "2 usage error, 3 memconvd cannot be reached, 4 no such VM.\n"
               "See memconvctl(8).\n",
               CTL_DEFAULT_ADMIN_SOCKET);
}

/**
 * command_help() - print one command's usage text to stdout
 */
static void command_help(const struct ctl_command *cmd)
{
        printf("Usage: memconvctl [OPTION...] %s %s\n\n%s.\n\n"
               "Options: --json, --no-legend, --admin-socket=PATH, --help;\n"
               "see 'memconvctl --help' and memconvctl(8).\n",
               cmd->name, cmd->synopsis, cmd->summary);
}

int ctl_usage_error(const struct ctl_command *cmd, const char *fmt, ...)
{
        va_list ap;

        fprintf(stderr, "memconvctl%s%s: ", cmd ? " " : "", cmd ? cmd->name : "");
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry 'memconvctl %s%s--help'.\n", cmd ? cmd->name : "", cmd ? " " : "");
        return CTL_EXIT_USAGE;
}

/**
 * getopt_problem() - report getopt_long()'s '?' or ':' for @argv
 * @cmd: the command, or NULL for the global options
 * @c: '?' or ':'
 * Return: CTL_EXIT_USAGE
 */
static int getopt_problem(const struct ctl_command *cmd, int c, char **argv)
{
        const char *arg = argv[optind - 1];

        if (c == ':')
                return ctl_usage_error(cmd, "option '%s' needs an argument", arg);
        if (optopt && optopt < 0x100 && strncmp(arg, "--", 2) != 0)
                return ctl_usage_error(cmd, "unknown option '-%c'", optopt);
        return ctl_usage_error(cmd, "unknown option '%s'", arg);
}

int ctl_common_option(const struct ctl_command *cmd, struct ctl_options *opts, int c, char **argv)
{
        switch (c) {
        case 'h':
                command_help(cmd);
                return 1;
        case CTL_OPT_JSON:
                opts->json = true;
                return 0;
        case CTL_OPT_NO_LEGEND:
                opts->legend = false;
                return 0;
        case CTL_OPT_ADMIN_SOCKET:
                if (!*optarg)
                        return ctl_usage_error(cmd, "--admin-socket needs a path"), -EINVAL;
                opts->admin_socket = optarg;
                return 0;
        default:
                getopt_problem(cmd, c, argv);
                return -EINVAL;
        }
}

int ctl_take_vm_argument(const struct ctl_command *cmd, int argc, char **argv, bool required,
                         const char **ret_spec)
{
        if (optind >= argc) {
                if (!required) {
                        *ret_spec = NULL;
                        return 0;
                }
                return ctl_usage_error(cmd, "which VM? Give its uuid, name or #id ('memconvctl list' shows them)");
        }
        if (optind + 1 < argc)
                return ctl_usage_error(cmd, "unexpected argument '%s' (one VM at a time)", argv[optind + 1]);
        if (!*argv[optind])
                return ctl_usage_error(cmd, "the VM must not be empty");
        if (strlen(argv[optind]) > MC_NAME_MAX)
                return ctl_usage_error(cmd, "'%.20s...' is too long for a VM uuid, name or id", argv[optind]);
        *ret_spec = argv[optind];
        return 0;
}

/* ------------------------------------------------------------------ parsers */

int ctl_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
        unsigned long long v;
        char *end;

        if (!s || *s < '0' || *s > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s, &end, 10);
        if (*end)
                return -EINVAL;
        if (errno == ERANGE || v < min || v > max)
                return -ERANGE;
        *ret = v;
        return 0;
}

int ctl_parse_gpa(const char *s, uint64_t *ret)
{
        unsigned long long v;
        unsigned shift = 0;
        char *end;
        int base = 10;

        if (!s || !*s)
                return -EINVAL;
        if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
                base = 16;
                if (!((s[2] >= '0' && s[2] <= '9') || (s[2] >= 'a' && s[2] <= 'f') ||
                      (s[2] >= 'A' && s[2] <= 'F')))
                        return -EINVAL;
        } else if (*s < '0' || *s > '9')
                return -EINVAL;  /* also refuses signs and blanks, which strtoull() would take */
        errno = 0;
        v = strtoull(s, &end, base);
        if (errno == ERANGE)
                return -ERANGE;
        switch (*end) {
        case '\0':
                break;
        case 'K': case 'k':
                shift = 10;
                break;
        case 'M': case 'm':
                shift = 20;
                break;
        case 'G': case 'g':
                shift = 30;
                break;
        case 'T': case 't':
                shift = 40;
                break;
        default:
                return -EINVAL;
        }
        if (shift) {
                if (end[1])
                        return -EINVAL;
                if (v > (UINT64_MAX >> shift))
                        return -ERANGE;
                v <<= shift;
        }
        *ret = v;
        return 0;
}

/**
 * parse_relative() - "-N<unit>" (s, sec, min, m, h, d) before @now
 * Return: 0 with *@ret set, -EINVAL
 */
static int parse_relative(const char *s, uint64_t now, uint64_t *ret)
{
        static const struct { const char *name; uint64_t usec; } units[] = {
                { "s", 1000000ULL }, { "sec", 1000000ULL }, { "min", 60000000ULL }, { "m", 60000000ULL },
                { "h", 3600000000ULL }, { "d", 86400000000ULL },
        };
        unsigned long long v;
        char *end;

        if (s[0] != '-' || s[1] < '0' || s[1] > '9')
                return -EINVAL;
        errno = 0;
        v = strtoull(s + 1, &end, 10);
        if (errno == ERANGE)
                return -EINVAL;
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (strcmp(end, units[i].name) == 0) {
                        if (v > now / units[i].usec)
                                return -EINVAL;
                        *ret = now - v * units[i].usec;
                        return 0;
                }
        return -EINVAL;
}

int ctl_parse_time(const char *s, uint64_t *ret)
{
        static const char *const formats[] = {
                "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M",
                "%Y-%m-%d", "%H:%M:%S", "%H:%M",
        };
        struct timespec ts;
        uint64_t now;
        time_t today;

        clock_gettime(CLOCK_REALTIME, &ts);
        now = (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
        if (strcmp(s, "now") == 0) {
                *ret = now;
                return 0;
        }
        if (s[0] == '-')
                return parse_relative(s, now, ret);
        if (s[0] == '@') {
                unsigned long long sec, frac = 0, scale = 1000000;
                char *end;

                if (s[1] < '0' || s[1] > '9')
                        return -EINVAL;
                errno = 0;
                sec = strtoull(s + 1, &end, 10);
                if (errno == ERANGE || sec > UINT64_MAX / 1000000 - 1)
                        return -EINVAL;
                if (*end == '.') {
                        for (end++; *end >= '0' && *end <= '9'; end++)
                                if (scale > 1) {
                                        scale /= 10;
                                        frac += (unsigned long long) (*end - '0') * scale;
                                }
                }
                if (*end)
                        return -EINVAL;
                *ret = sec * 1000000ULL + frac;
                return 0;
        }

        today = ts.tv_sec;
        for (size_t i = 0; i < ELEMENTSOF(formats); i++) {
                struct tm tm;
                const char *end;
                time_t t;

                if (!localtime_r(&today, &tm))
                        return -EINVAL;
                tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
                end = strptime(s, formats[i], &tm);
                if (!end || *end)
                        continue;
                tm.tm_isdst = -1;
                t = mktime(&tm);
                if (t == (time_t) -1 || t < 0)
                        return -EINVAL;
                *ret = (uint64_t) t * 1000000ULL;
                return 0;
        }
        return -EINVAL;
}

/* --------------------------------------------------------------- connection */

int ctl_exit_for_code(Memconv__Code code)
{
        switch (code) {
        case MEMCONV__CODE__CODE_UNKNOWN_VM:
        case MEMCONV__CODE__CODE_NOT_FOUND:
                return CTL_EXIT_NOT_FOUND;
        case MEMCONV__CODE__CODE_PERMISSION_DENIED:
                return CTL_EXIT_UNREACHABLE;
        default:
                return CTL_EXIT_FAILED;
        }
}

/**
 * code_hint() - what the user can do about a refusal with @code
 * Return: a sentence, or NULL when the daemon's message says it all
 */
static const char *code_hint(Memconv__Code code)
{
        switch (code) {
        case MEMCONV__CODE__CODE_UNKNOWN_VM:
        case MEMCONV__CODE__CODE_NOT_FOUND:
                return "'memconvctl list' shows the VMs memconvd knows; name one by uuid, name or #id.";
        case MEMCONV__CODE__CODE_PERMISSION_DENIED:
                return "The admin socket is for root and members of memconvd's admin group.";
        case MEMCONV__CODE__CODE_VERSION_MISMATCH:
        case MEMCONV__CODE__CODE_PROTOCOL_ERROR:
                return "Use the memconvctl that came with the running memconvd ('memconvctl status' shows its version).";
        case MEMCONV__CODE__CODE_BUSY:
                return "'memconvctl show VM' shows whether the VM is attached or has conversions in flight.";
        case MEMCONV__CODE__CODE_RESOURCE_LIMIT:
                return "Ask for less at a time (ranges --start/--end, history --limit).";
        case MEMCONV__CODE__CODE_INTERNAL:
                return "This is a bug in memconvd; its log (journalctl -u memconvd) has details.";
        default:
                return NULL;
        }
}

/**
 * print_unreachable() - report that @path cannot be used, with a hint
 * @what: the command name
 * @path: the admin socket
 * @error: negative errno
 * @doing: "connect to", "send to", ...
 * Return: CTL_EXIT_UNREACHABLE
 */
static int print_unreachable(const char *what, const char *path, int error, const char *doing)
{
        fprintf(stderr, "memconvctl %s: cannot %s %s: %s\n", what, doing, path, strerror(-error));
        switch (error) {
        case -EACCES:
        case -EPERM:
                fprintf(stderr, "The admin socket is for root and members of memconvd's admin group; "
                                "run memconvctl as one of them.\n");
                break;
        case -ENAMETOOLONG:
                fprintf(stderr, "A Unix socket path has at most %zu bytes; use a shorter --admin-socket.\n",
                        sizeof(((struct sockaddr_un *) NULL)->sun_path) - 1);
                break;
        default:
                fprintf(stderr, "Is memconvd running? It listens on %s unless started with "
                                "--admin-socket=PATH; pass memconvctl the same --admin-socket.\n",
                        CTL_DEFAULT_ADMIN_SOCKET);
        }
        return CTL_EXIT_UNREACHABLE;
}

int ctl_conn_open(const struct ctl_options *opts, const char *what, struct ctl_conn *ret)
{
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        _cleanup_close_ int fd = -EBADF;
        size_t len = strlen(opts->admin_socket);

        if (len >= sizeof(sa.sun_path))
                return print_unreachable(what, opts->admin_socket, -ENAMETOOLONG, "connect to");
        memcpy(sa.sun_path, opts->admin_socket, len);
        fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
        if (fd < 0) {
                fprintf(stderr, "memconvctl %s: cannot create a socket: %m\n", what);
                return CTL_EXIT_UNREACHABLE;
        }
        while (connect(fd, (struct sockaddr *) &sa, (socklen_t) (offsetof(struct sockaddr_un, sun_path) + len + 1)) < 0)
                if (errno != EINTR)
                        return print_unreachable(what, opts->admin_socket, negative_errno(), "connect to");
        *ret = (struct ctl_conn) { .fd = TAKE_FD(fd), .path = opts->admin_socket };
        return CTL_EXIT_OK;
}

void ctl_conn_close(struct ctl_conn *c)
{
        c->fd = safe_close(c->fd);
}

int ctl_conn_send(struct ctl_conn *c, const char *what, Memconv__AdminRequest *req)
{
        int r;

        if (req->id == 0)
                req->id = 1;
        r = mc_frame_send_pb(c->fd, &req->base, NULL, 0);
        if (r == -EMSGSIZE) {
                fprintf(stderr, "memconvctl %s: the request is larger than %u bytes.\n", what, MC_FRAME_MAX);
                return CTL_EXIT_USAGE;
        }
        if (r < 0)
                return print_unreachable(what, c->path, r, "send to");
        return CTL_EXIT_OK;
}

/**
 * print_refusal() - report a reply whose status is not OK
 * @what: the command name
 * @s: the status (borrowed)
 * Return: the exit status for it
 */
static int print_refusal(const char *what, const Memconv__Status *s)
{
        const char *hint = code_hint(s->code);

        size_t n = strlen(what);

        /* The daemon's messages start with the request's name ("forget: VM x is attached"). */
        if (s->message && strncmp(s->message, what, n) == 0 && s->message[n] == ':')
                fprintf(stderr, "memconvctl %s (%s)\n", s->message, mc_code_name(s->code));
        else if (s->message && *s->message)
                fprintf(stderr, "memconvctl %s: %s (%s)\n", what, s->message, mc_code_name(s->code));
        else
                fprintf(stderr, "memconvctl %s: memconvd refused the request: %s (%s)\n", what,
                        mc_code_name(s->code),
                        strerror(s->errno_value < 0 ? -s->errno_value : -mc_code_to_errno(s->code)));
        if (hint)
                fprintf(stderr, "%s\n", hint);
        return ctl_exit_for_code(s->code);
}

int ctl_conn_receive(struct ctl_conn *c, const char *what, int timeout_msec, int cancel_fd,
                     Memconv__AdminReply__BodyCase expect, bool eof_ok, Memconv__AdminReply **ret)
{
        struct pollfd p[2] = {
                { .fd = c->fd, .events = POLLIN },
                { .fd = cancel_fd, .events = POLLIN },
        };
        _cleanup_reply_ Memconv__AdminReply *reply = NULL;
        int fds[MC_FRAME_MAX_FDS];
        size_t n_fds = 0;
        int r;

        for (;;) {
                r = poll(p, cancel_fd >= 0 ? 2 : 1, timeout_msec);
                if (r < 0 && errno == EINTR)
                        continue;
                if (r < 0) {
                        fprintf(stderr, "memconvctl %s: poll() failed: %m\n", what);
                        return CTL_EXIT_FAILED;
                }
                break;
        }
        if (r == 0 && timeout_msec == 0) {
                *ret = NULL;
                return CTL_EXIT_OK;
        }
        if (r == 0) {
                fprintf(stderr, "memconvctl %s: memconvd did not answer within %d s.\n"
                                "It may be overloaded or stopped (SIGSTOP); 'systemctl status memconvd' tells.\n",
                        what, timeout_msec / 1000);
                return CTL_EXIT_UNREACHABLE;
        }
        if (cancel_fd >= 0 && (p[1].revents & POLLIN)) {
                *ret = NULL;
                return CTL_EXIT_OK;
        }

        r = mc_frame_recv_pb(c->fd, MSG_DONTWAIT, &memconv__admin_reply__descriptor,
                             (ProtobufCMessage **) &reply, fds, &n_fds);
        if ((r == -ECONNRESET || r == -EPIPE) && eof_ok) {
                c->eof = true;
                *ret = NULL;
                return CTL_EXIT_OK;
        }
        if (r == -ECONNRESET || r == -EPIPE) {
                fprintf(stderr, "memconvctl %s: memconvd closed the connection without answering.\n"
                                "Its log (journalctl -u memconvd) says why; a daemon without admin "
                                "support closes it too.\n", what);
                return CTL_EXIT_UNREACHABLE;
        }
        if (r == -EMSGSIZE || r == -EBADMSG || r == -ETOOMANYREFS) {
                fprintf(stderr, "memconvctl %s: memconvd sent a reply that cannot be read: %s.\n%s\n", what,
                        strerror(-r), code_hint(MEMCONV__CODE__CODE_PROTOCOL_ERROR));
                return CTL_EXIT_FAILED;
        }
        if (r < 0)
                return print_unreachable(what, c->path, r, "receive from");
        mc_frame_close_fds(fds, n_fds);

        if (reply->id != 1) {
                fprintf(stderr, "memconvctl %s: memconvd answered request %" PRIu64 ", not request 1.\n%s\n",
                        what, reply->id, code_hint(MEMCONV__CODE__CODE_PROTOCOL_ERROR));
                return CTL_EXIT_FAILED;
        }
        if (reply->status && reply->status->code != MEMCONV__CODE__CODE_OK)
                return print_refusal(what, reply->status);
        if (reply->body_case != expect) {
                fprintf(stderr, "memconvctl %s: memconvd's reply has no answer to this request (body %d, expected %d).\n%s\n",
                        what, (int) reply->body_case, (int) expect, code_hint(MEMCONV__CODE__CODE_PROTOCOL_ERROR));
                return CTL_EXIT_FAILED;
        }
        *ret = TAKE_PTR(reply);
        return CTL_EXIT_OK;
}

int ctl_call(const struct ctl_options *opts, const char *what, Memconv__AdminRequest *req,
             Memconv__AdminReply__BodyCase expect, Memconv__AdminReply **ret)
{
        struct ctl_conn c;
        int r;

        r = ctl_conn_open(opts, what, &c);
        if (r != CTL_EXIT_OK)
                return r;
        r = ctl_conn_send(&c, what, req);
        if (r == CTL_EXIT_OK)
                r = ctl_conn_receive(&c, what, CTL_REPLY_TIMEOUT_MSEC, -1, expect, false, ret);
        ctl_conn_close(&c);
        return r;
}

int ctl_finish_output(int status)
{
        if (fflush(stdout) == 0 && !ferror(stdout))
                return status;
        if (errno == EPIPE)
                return status;
        fprintf(stderr, "memconvctl: cannot write the output: %m\n");
        return status == CTL_EXIT_OK ? CTL_EXIT_FAILED : status;
}

/**
 * find_command() - the table entry named @name
 * Return: the entry, or NULL
 */
static const struct ctl_command *find_command(const char *name)
{
        for (size_t i = 0; i < ELEMENTSOF(commands); i++)
                if (strcmp(commands[i].name, name) == 0)
                        return &commands[i];
        return NULL;
}

/**
 * parse_global_options() - the options before COMMAND
 * @argc: main()'s
 * @argv: main()'s
 * @opts: filled in
 *
 * Return: 0 to go on with argv[optind] as the command, a positive value
 * when --help or --version was printed, or -EINVAL after a usage error.
 */
static int parse_global_options(int argc, char **argv, struct ctl_options *opts)
{
        enum { ARG_VERSION = CTL_OPT_FIRST_PRIVATE };
        static const struct option options[] = {
                { "version", no_argument, NULL, ARG_VERSION },
                CTL_COMMON_OPTIONS,
                {}
        };
        int c;

        opterr = 0;
        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0)
                switch (c) {
                case 'h':
                        help();
                        return 1;
                case ARG_VERSION:
                        printf("memconvctl %s\n", PACKAGE_VERSION);
                        return 1;
                case CTL_OPT_JSON:
                case CTL_OPT_NO_LEGEND:
                case CTL_OPT_ADMIN_SOCKET:
                        if (ctl_common_option(NULL, opts, c, argv) < 0)
                                return -EINVAL;
                        break;
                default:
                        getopt_problem(NULL, c, argv);
                        return -EINVAL;
                }
        return 0;
}

int main(int argc, char **argv)
{
        struct ctl_options opts = {
                .admin_socket = CTL_DEFAULT_ADMIN_SOCKET,
                .legend = true,
        };
        const struct ctl_command *cmd;
        int r;

        /* Writes to a reader that went away fail with EPIPE instead of killing us. */
        signal(SIGPIPE, SIG_IGN);

        r = parse_global_options(argc, argv, &opts);
        if (r != 0)
                return ctl_finish_output(r > 0 ? CTL_EXIT_OK : CTL_EXIT_USAGE);
        if (optind >= argc)
                return ctl_usage_error(NULL, "no command given (status, list, show, ranges, history, stats, check, forget, policy)");
        cmd = find_command(argv[optind]);
        if (!cmd)
                return ctl_usage_error(NULL, "unknown command '%s'", argv[optind]);

        argc -= optind;
        argv += optind;
        optind = 0;  /* glibc: start over, with the command's own argv */
        r = cmd->run(cmd, &opts, argc, argv);
        return ctl_finish_output(r);
}
