/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ctl.h - what the parts of memconvctl share: the global options, the
 * command table entry, exit statuses, the admin-socket connection, argument
 * parsers, and the renderers of protocol objects used by several commands.
 *
 * Each subcommand lives in its own ctl-NAME.c and exports one
 * ctl_NAME_main(); memconvctl.c dispatches to it from a table. A command
 * returns an exit status (enum ctl_exit), never a negative errno: it is the
 * place that decides what a failure means, and it reports the failure
 * once, on stderr, with what to do about it.
 */
#pragma once

#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>

#include "memconv.pb-c.h"
#include "output.h"

#ifndef RUNDIR
#define RUNDIR "/run"
#endif
#define CTL_DEFAULT_ADMIN_SOCKET RUNDIR "/memconvd/admin.sock"
#define CTL_REPLY_TIMEOUT_MSEC 5000

/* Exit statuses, documented in memconvctl(8). */
enum ctl_exit {
        CTL_EXIT_OK = 0,
        CTL_EXIT_FAILED = 1,       /* the daemon refused or failed; check found problems */
        CTL_EXIT_USAGE = 2,        /* bad command line */
        CTL_EXIT_UNREACHABLE = 3,  /* no daemon at the socket, or no permission to use it */
        CTL_EXIT_NOT_FOUND = 4,    /* no such VM */
};

/* The global options: the only state that is not local to a function. */
struct ctl_options {
        const char *admin_socket;  /* borrowed from argv or a literal */
        bool json;
        bool legend;
};

struct ctl_command {
        const char *name;
        const char *synopsis;       /* arguments, for usage texts */
        const char *summary;
        int (*run)(const struct ctl_command *cmd, struct ctl_options *opts, int argc, char **argv);
};

/*
 * The options every command accepts after its name as well as before it.
 * A command's getopt_long() table ends with CTL_COMMON_OPTIONS, {} and its
 * default case hands the option to ctl_common_option().
 */
enum {
        CTL_OPT_JSON = 0x1000,
        CTL_OPT_NO_LEGEND,
        CTL_OPT_ADMIN_SOCKET,
        CTL_OPT_FIRST_PRIVATE,  /* commands number their own options from here */
};
#define CTL_COMMON_OPTIONS                                                  \
        { "help", no_argument, NULL, 'h' },                                 \
        { "json", no_argument, NULL, CTL_OPT_JSON },                        \
        { "no-legend", no_argument, NULL, CTL_OPT_NO_LEGEND },              \
        { "admin-socket", required_argument, NULL, CTL_OPT_ADMIN_SOCKET }

/**
 * ctl_common_option() - handle an option of CTL_COMMON_OPTIONS, or report
 * an unknown option / missing argument (getopt's '?' and ':')
 * @cmd: the command being parsed (for its usage text)
 * @opts: the options to update
 * @c: getopt_long()'s return value
 * @argv: the command's argv (to name the offending option)
 *
 * Return: 0 to go on parsing; 1 when --help was printed (the command exits
 * with success); -EINVAL when a usage error was printed.
 */
int ctl_common_option(const struct ctl_command *cmd, struct ctl_options *opts, int c, char **argv);

/**
 * ctl_usage_error() - print "memconvctl CMD: <message>" and a pointer to
 * --help on stderr
 * Return: CTL_EXIT_USAGE
 */
int ctl_usage_error(const struct ctl_command *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/**
 * ctl_take_vm_argument() - the command's single VM argument after options
 * @cmd: the command
 * @argc: its argc
 * @argv: its argv; argv[optind] is the VM
 * @required: false for commands where the VM is optional (stats)
 * @ret_spec: the selector text (borrowed from argv), or NULL when absent
 *
 * Return: 0, or CTL_EXIT_USAGE after printing why.
 */
int ctl_take_vm_argument(const struct ctl_command *cmd, int argc, char **argv, bool required,
                         const char **ret_spec);

/**
 * ctl_parse_gpa() - parse a guest-physical address or size: "0x1000",
 * "4096", "2M", "0x10K"; suffixes K, M, G, T (powers of 1024)
 * @s: the text
 * @ret: the value; untouched on failure
 * Return: 0, -EINVAL for bad syntax, -ERANGE for overflow.
 */
int ctl_parse_gpa(const char *s, uint64_t *ret);

/**
 * ctl_parse_uint() - parse a plain decimal number within [@min, @max]
 * Return: 0, -EINVAL, -ERANGE.
 */
int ctl_parse_uint(const char *s, uint64_t min, uint64_t max, uint64_t *ret);

/**
 * ctl_parse_time() - parse a point in time to CLOCK_REALTIME microseconds:
 * "@EPOCH[.FRACTION]", "YYYY-MM-DD", "YYYY-MM-DD HH:MM[:SS]" (also with "T"),
 * "HH:MM[:SS]" (today), "now", or "-N" with a unit s, min, h or d (that long
 * ago, e.g. "-5min"); local time unless an epoch is given.
 * Return: 0, -EINVAL.
 */
int ctl_parse_time(const char *s, uint64_t *ret);

/* ------------------------------------------------------------- connection */

/*
 * A connection to the admin socket: one SOCK_SEQPACKET socket, owned by
 * the struct (close with ctl_conn_close()).
 */
struct ctl_conn {
        int fd;
        const char *path;  /* borrowed */
        bool eof;          /* the daemon closed the connection (seen with eof_ok) */
};

/**
 * ctl_conn_open() - connect to the admin socket of @opts
 * @what: the command name, for messages
 * @ret: the connection; ret->fd owned by the caller
 *
 * Prints the reason and a hint on failure.
 * Return: CTL_EXIT_OK, or CTL_EXIT_UNREACHABLE.
 */
int ctl_conn_open(const struct ctl_options *opts, const char *what, struct ctl_conn *ret);

/** ctl_conn_close() - close @c's socket; safe to call twice */
void ctl_conn_close(struct ctl_conn *c);

/**
 * ctl_conn_send() - send @req (request id 1 unless set) on @c
 * Prints the reason on failure.
 * Return: CTL_EXIT_OK, or CTL_EXIT_UNREACHABLE.
 */
int ctl_conn_send(struct ctl_conn *c, const char *what, Memconv__AdminRequest *req);

/**
 * ctl_conn_receive() - wait for the next reply on @c and check it
 * @c: the connection
 * @what: the command name, for messages
 * @timeout_msec: -1 to wait forever; 0 to take only what is already there
 *                (nothing there: CTL_EXIT_OK with *@ret NULL, no message)
 * @cancel_fd: a signalfd to watch as well, or -1; when it becomes readable
 *             this returns CTL_EXIT_OK with *@ret NULL
 * @expect: the reply body that a successful reply must carry
 * @eof_ok: a closed connection is not reported here: CTL_EXIT_OK with *@ret
 *          NULL and @c->eof set, for the caller to judge (history --follow)
 * @ret: the reply, owned by the caller (memconv__admin_reply__free_unpacked);
 *       NULL as said above
 *
 * Checks the id and the status: a refusal is printed (the daemon's message
 * and a hint) and mapped to an exit status (ctl_exit_for_code()).
 * Return: CTL_EXIT_OK with *@ret set, or an exit status after printing why.
 */
int ctl_conn_receive(struct ctl_conn *c, const char *what, int timeout_msec, int cancel_fd,
                     Memconv__AdminReply__BodyCase expect, bool eof_ok, Memconv__AdminReply **ret);

/**
 * ctl_call() - one request and its reply on a connection of its own
 * @opts: where to connect
 * @what: the command name, for messages
 * @req: the request (borrowed)
 * @expect: the reply body expected
 * @ret: the reply, owned by the caller
 * Return: an exit status; CTL_EXIT_OK with *@ret set.
 */
int ctl_call(const struct ctl_options *opts, const char *what, Memconv__AdminRequest *req,
             Memconv__AdminReply__BodyCase expect, Memconv__AdminReply **ret);

static inline void ctl_reply_freep(Memconv__AdminReply **r)
{
        if (*r)
                memconv__admin_reply__free_unpacked(*r, NULL);
}
#define _cleanup_reply_ _cleanup_(ctl_reply_freep)

/**
 * ctl_exit_for_code() - the exit status for a refusal with wire code @code
 * Return: CTL_EXIT_NOT_FOUND, CTL_EXIT_UNREACHABLE (permission) or
 * CTL_EXIT_FAILED.
 */
int ctl_exit_for_code(Memconv__Code code);

/**
 * ctl_finish_output() - flush stdout and turn a write error into a status
 * @status: the status so far
 *
 * A reader that went away (EPIPE, as in "memconvctl history VM | head")
 * is not an error.
 * Return: @status, or CTL_EXIT_FAILED after printing the write error.
 */
int ctl_finish_output(int status);

/* -------------------------------------- renderers shared between commands */

/** ctl_str() - @s, or @fallback when @s is NULL or empty (absent on the wire) */
static inline const char *ctl_str(const char *s, const char *fallback)
{
        return s && *s ? s : fallback;
}

/** ctl_json_stats() - @s as a JSON object member @key (NULL s: null) */
void ctl_json_stats(struct json_writer *j, const char *key, const Memconv__ConversionStats *s);

/** ctl_json_histogram() - @h as a JSON object member @key (NULL h: zeros) */
void ctl_json_histogram(struct json_writer *j, const char *key, const Memconv__Histogram *h);

/**
 * ctl_json_vm() - @vm as a JSON object (in an array when @key is NULL)
 * @with_stats: include the "stats" member
 */
void ctl_json_vm(struct json_writer *j, const char *key, const Memconv__VmInfo *vm, bool with_stats);

/**
 * ctl_print_stats_fields() - @s as "Key: value" lines, keys right-aligned
 * to @key_width, for status and show
 */
void ctl_print_stats_fields(FILE *f, int key_width, const Memconv__ConversionStats *s);

/**
 * ctl_field() - print one "Key: value" line with the key right-aligned to
 * @key_width; an empty @key makes a continuation line without a colon
 */
void ctl_field(FILE *f, int key_width, const char *key, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ------------------------------------------------------------- commands */

int ctl_status_main(const struct ctl_command *cmd, struct ctl_options *opts, int argc, char **argv);
int ctl_list_main(const struct ctl_command *cmd, struct ctl_options *opts, int argc, char **argv);
int ctl_show_main(const struct ctl_command *cmd, struct ctl_options *opts, int argc, char **argv);
int ctl_ranges_main(const struct ctl_command *cmd, struct ctl_options *opts, int argc, char **argv);
int ctl_history_main(const struct ctl_command *cmd, struct ctl_options *opts, int argc, char **argv);
int ctl_stats_main(const struct ctl_command *cmd, struct ctl_options *opts, int argc, char **argv);
int ctl_check_main(const struct ctl_command *cmd, struct ctl_options *opts, int argc, char **argv);
int ctl_forget_main(const struct ctl_command *cmd, struct ctl_options *opts, int argc, char **argv);
int ctl_policy_main(const struct ctl_command *cmd, struct ctl_options *opts, int argc, char **argv);
