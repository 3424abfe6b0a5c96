/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ctl-history.c - "memconvctl history VM": the VM's attribute changes, one
 * row per record, oldest first.
 *
 * A HistoryReply may say `more`: further replies with the same id follow on
 * the connection, and all of them together are the answer. With --follow
 * the daemon keeps the connection open and sends new records as they are
 * committed (its first reply, possibly empty, says the stream is on; every
 * reply of the stream says `more`, and one without it ends the stream, as
 * when the VM is forgotten). We print each batch as it arrives (tables with
 * fixed minimum column widths, or one JSON object per line) and flush, until
 * SIGINT or SIGTERM (read from a signalfd, so no handler and no global),
 * until the daemon ends or closes the stream, or until our reader goes away
 * (EPIPE).
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "ctl.h"
#include "macro.h"
#include "message.h"

static const char *const history_headers[] = {
        "SEQ", "TIME", "KIND", "SOURCE", "VCPU", "CHANGE", "START", "SIZE", "REQUEST", "RESULT", "LATENCY",
};
#define FOLLOW_DRAIN_MAX 64  /* replies taken off the socket before printing */

/* Minimum widths under --follow, so that batches line up. */
static const size_t history_follow_widths[] = { 6, 23, 8, 13, 4, 15, 12, 5, 7, 9, 7 };

/**
 * history_json_record() - one record as a JSON object (member of an array,
 * or a document of its own)
 */
static void history_json_record(struct json_writer *j, const Memconv__HistoryRecord *h)
{
        json_object_begin(j, NULL);
        json_u64(j, "seq", h->seq);
        json_u64(j, "realtime_usec", h->realtime_usec);
        json_string(j, "kind", h->implicit ? "implicit" : "explicit");
        json_string(j, "source", convert_source_name(h->source, h->implicit));
        json_u64(j, "vcpu", h->vcpu);
        json_string(j, "from", attribute_name(h->from));
        json_string(j, "to", attribute_name(h->to));
        json_u64(j, "gpa", h->gpa);
        json_u64(j, "size", h->size);
        json_u64(j, "request_id", h->request_id);
        json_u64(j, "decision_id", h->decision_id);
        json_string(j, "result", change_result_name(h->result));
        json_string(j, "code", mc_code_name(h->code));
        json_u64(j, "decision_latency_usec", h->decision_latency_usec);
        json_object_end(j);
}

/**
 * history_table_add() - one record as a table row
 * Return: 0, -ENOMEM
 */
static int history_table_add(struct table *t, const Memconv__HistoryRecord *h)
{
        char ts[FORMAT_TIMESTAMP_MAX], size[FORMAT_BYTES_MAX], lat[FORMAT_USEC_MAX];

        if (table_add(t, "%" PRIu64, h->seq) < 0 || table_add(t, "%s", format_timestamp(ts, h->realtime_usec)) < 0 ||
            table_add(t, "%s", h->implicit ? "implicit" : "explicit") < 0 ||
            table_add(t, "%s", convert_source_name(h->source, h->implicit)) < 0 ||
            table_add(t, "%" PRIu32, h->vcpu) < 0 ||
            table_add(t, "%s->%s", attribute_name(h->from), attribute_name(h->to)) < 0 ||
            table_add(t, "0x%" PRIx64, h->gpa) < 0 || table_add(t, "%s", format_bytes(size, h->size)) < 0 ||
            table_add(t, "%" PRIu64, h->request_id) < 0)
                return -ENOMEM;
        if (h->result == MEMCONV__CHANGE_RESULT__CHANGE_RESULT_REFUSED && h->code != MEMCONV__CODE__CODE_OK) {
                if (table_add(t, "refused:%s", mc_code_name(h->code)) < 0)
                        return -ENOMEM;
        } else if (table_add(t, "%s", change_result_name(h->result)) < 0)
                return -ENOMEM;
        return table_add(t, "%s", format_usec(lat, h->decision_latency_usec));
}

/**
 * history_new_table() - an empty history table
 * @follow: with the fixed minimum widths of a stream
 * Return: 0, -ENOMEM
 */
static int history_new_table(bool follow, struct table **ret)
{
        struct table *t;
        int r;

        r = table_new(history_headers, ELEMENTSOF(history_headers), &t);
        if (r < 0)
                return r;
        table_set_right(t, 0);
        table_set_right(t, 4);
        table_set_right(t, 6);
        table_set_right(t, 7);
        table_set_right(t, 8);
        table_set_right(t, 10);
        if (follow)
                for (size_t c = 0; c < ELEMENTSOF(history_follow_widths); c++)
                        table_set_min_width(t, c, history_follow_widths[c]);
        *ret = t;
        return 0;
}

/**
 * history_print_batch() - print the records of one reply as they arrive
 * (--follow): a table (header only before the first batch) or JSON lines
 * @first: true for the first batch
 * Return: 0, -ENOMEM
 */
static int history_print_batch(const Memconv__HistoryReply *h, const struct ctl_options *opts, bool first)
{
        _cleanup_table_ struct table *t = NULL;
        int r;

        if (opts->json) {
                for (size_t i = 0; i < h->n_records; i++) {
                        struct json_writer j;

                        json_init(&j, stdout, false);
                        history_json_record(&j, h->records[i]);
                        if (json_finish(&j) < 0)
                                return -EINVAL;
                }
                return 0;
        }
        if (h->n_records == 0 && !(first && opts->legend))
                return 0;
        r = history_new_table(true, &t);
        if (r < 0)
                return r;
        for (size_t i = 0; i < h->n_records; i++) {
                r = history_table_add(t, h->records[i]);
                if (r < 0)
                        return r;
        }
        return table_print(t, stdout, first && opts->legend);
}

/**
 * history_follow() - print the stream on @c until interrupted or closed
 * @cmd: the command
 * @c: a connection on which the request was sent
 * @opts: output options
 * Return: an exit status
 */
static int history_follow(const struct ctl_command *cmd, struct ctl_conn *c, const struct ctl_options *opts)
{
        _cleanup_close_ int sfd = -EBADF;
        sigset_t mask;
        bool first = true;
        int r;

        sigemptyset(&mask);
        sigaddset(&mask, SIGINT);
        sigaddset(&mask, SIGTERM);
        if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 || (sfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0) {
                fprintf(stderr, "memconvctl %s: cannot watch for SIGINT: %m\n", cmd->name);
                return CTL_EXIT_FAILED;
        }

        for (;;) {
                Memconv__AdminReply *batch[FOLLOW_DRAIN_MAX];
                size_t n = 0;
                bool ended = false;

                /*
                 * Wait for one reply (only the first has a deadline: a stream may be
                 * quiet for long), then take whatever else has arrived before
                 * printing, so that the daemon's queue for us stays short.
                 */
                r = ctl_conn_receive(c, cmd->name, first ? CTL_REPLY_TIMEOUT_MSEC : -1, sfd,
                                     MEMCONV__ADMIN_REPLY__BODY_HISTORY, true, &batch[0]);
                if (r != CTL_EXIT_OK)
                        return r;
                if (batch[0])
                        n = 1;
                while (n > 0 && n < ELEMENTSOF(batch) && batch[n - 1]->history->more) {
                        r = ctl_conn_receive(c, cmd->name, 0, -1, MEMCONV__ADMIN_REPLY__BODY_HISTORY, true,
                                             &batch[n]);
                        if (r != CTL_EXIT_OK || !batch[n])
                                break;
                        n++;
                }
                for (size_t i = 0; i < n; i++) {
                        int q = history_print_batch(batch[i]->history, opts, first);

                        if (q < 0 && r == CTL_EXIT_OK) {
                                fprintf(stderr, "memconvctl %s: cannot format the output: %s\n", cmd->name,
                                        strerror(-q));
                                r = CTL_EXIT_FAILED;
                        }
                        first = false;
                        ended = ended || !batch[i]->history->more;
                        memconv__admin_reply__free_unpacked(batch[i], NULL);
                }
                if (r != CTL_EXIT_OK)
                        return r;
                if (fflush(stdout) != 0 || ferror(stdout))
                        return CTL_EXIT_OK;  /* ctl_finish_output() reports it, EPIPE excepted */
                if (ended) {
                        /* The daemon ends a stream only when the VM goes away. */
                        fprintf(stderr, "memconvctl %s: memconvd ended the stream: the VM was forgotten.\n",
                                cmd->name);
                        return CTL_EXIT_OK;
                }
                if (c->eof) {
                        fprintf(stderr, "memconvctl %s: memconvd closed the stream: it stopped, or it dropped "
                                        "this reader for falling behind (its log says which).\n"
                                        "Resume with --since SEQ, the last SEQ printed.\n", cmd->name);
                        return CTL_EXIT_UNREACHABLE;
                }
                if (n == 0)
                        return CTL_EXIT_OK;  /* SIGINT or SIGTERM */
        }
}

/**
 * history_print_all() - the complete answer (every reply until one without
 * `more`) as one table or one JSON document
 * Return: 0, -ENOMEM, -EINVAL (JSON writer misuse)
 */
static int history_print_all(Memconv__AdminReply *const *replies, size_t n, const struct ctl_options *opts)
{
        _cleanup_table_ struct table *t = NULL;
        size_t count = 0;
        int r;

        if (opts->json) {
                struct json_writer j;

                json_init(&j, stdout, true);
                json_object_begin(&j, NULL);
                json_array_begin(&j, "records");
                for (size_t i = 0; i < n; i++)
                        for (size_t k = 0; k < replies[i]->history->n_records; k++)
                                history_json_record(&j, replies[i]->history->records[k]);
                json_array_end(&j);
                json_object_end(&j);
                return json_finish(&j);
        }

        r = history_new_table(false, &t);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                for (size_t k = 0; k < replies[i]->history->n_records; k++, count++) {
                        r = history_table_add(t, replies[i]->history->records[k]);
                        if (r < 0)
                                return r;
                }
        if (count > 0 || opts->legend)
                table_print(t, stdout, opts->legend);
        if (opts->legend)
                printf("\n%zu record%s.\n", count, count == 1 ? "" : "s");
        return 0;
}

int ctl_history_main(const struct ctl_command *cmd, struct ctl_options *opts, int argc, char **argv)
{
        enum { ARG_SINCE = CTL_OPT_FIRST_PRIVATE, ARG_SINCE_TIME, ARG_LIMIT };
        static const struct option options[] = {
                { "since", required_argument, NULL, ARG_SINCE },
                { "since-time", required_argument, NULL, ARG_SINCE_TIME },
                { "follow", no_argument, NULL, 'f' },
                { "limit", required_argument, NULL, ARG_LIMIT },
                CTL_COMMON_OPTIONS,
                {}
        };
        Memconv__VmSelector sel = MEMCONV__VM_SELECTOR__INIT;
        Memconv__HistoryRequest body = MEMCONV__HISTORY_REQUEST__INIT;
        Memconv__AdminRequest req = MEMCONV__ADMIN_REQUEST__INIT;
        Memconv__AdminReply **replies = NULL;
        struct ctl_conn conn = { .fd = -EBADF };
        bool since = false, since_time = false;
        size_t n_replies = 0;
        const char *spec;
        uint64_t v;
        int c, r;

        while ((c = getopt_long(argc, argv, ":hf", options, NULL)) >= 0)
                switch (c) {
                case ARG_SINCE:
                        if (ctl_parse_uint(optarg, 0, UINT64_MAX, &body.since_seq) < 0)
                                return ctl_usage_error(cmd, "--since '%s' is not a sequence number (a SEQ of "
                                                       "'memconvctl history VM')", optarg);
                        since = true;
                        break;
                case ARG_SINCE_TIME:
                        if (ctl_parse_time(optarg, &body.since_realtime_usec) < 0)
                                return ctl_usage_error(cmd, "--since-time '%s' is not a time: use "
                                                       "'YYYY-MM-DD HH:MM:SS', 'HH:MM', '@EPOCH' or '-5min'",
                                                       optarg);
                        since_time = true;
                        break;
                case 'f':
                        body.follow = true;
                        break;
                case ARG_LIMIT:
                        if (ctl_parse_uint(optarg, 1, UINT32_MAX, &v) < 0)
                                return ctl_usage_error(cmd, "--limit '%s' is not a number from 1 to %" PRIu32,
                                                       optarg, UINT32_MAX);
                        body.limit = (uint32_t) v;
                        break;
                default:
                        r = ctl_common_option(cmd, opts, c, argv);
                        if (r != 0)
                                return r > 0 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
                }
        r = ctl_take_vm_argument(cmd, argc, argv, true, &spec);
        if (r != 0)
                return r;
        if (since && since_time)
                return ctl_usage_error(cmd, "--since and --since-time exclude each other");

        sel.spec = (char *) spec;
        body.vm = &sel;
        req.body_case = MEMCONV__ADMIN_REQUEST__BODY_HISTORY;
        req.history = &body;

        r = ctl_conn_open(opts, cmd->name, &conn);
        if (r != CTL_EXIT_OK)
                return r;
        r = ctl_conn_send(&conn, cmd->name, &req);
        if (r != CTL_EXIT_OK)
                goto out;
        if (body.follow) {
                r = history_follow(cmd, &conn, opts);
                goto out;
        }

        for (;;) {
                Memconv__AdminReply *reply = NULL, **a;
                bool more;

                r = ctl_conn_receive(&conn, cmd->name, CTL_REPLY_TIMEOUT_MSEC, -1,
                                     MEMCONV__ADMIN_REPLY__BODY_HISTORY, false, &reply);
                if (r != CTL_EXIT_OK)
                        goto out;
                a = realloc(replies, (n_replies + 1) * sizeof(*a));
                if (!a) {
                        memconv__admin_reply__free_unpacked(reply, NULL);
                        fprintf(stderr, "memconvctl %s: out of memory\n", cmd->name);
                        r = CTL_EXIT_FAILED;
                        goto out;
                }
                replies = a;
                replies[n_replies++] = reply;
                more = reply->history->more;
                if (!more)
                        break;
        }
        r = history_print_all(replies, n_replies, opts);
        if (r < 0) {
                fprintf(stderr, "memconvctl %s: cannot format the output: %s\n", cmd->name, strerror(-r));
                r = CTL_EXIT_FAILED;
        } else
                r = CTL_EXIT_OK;
out:
        for (size_t i = 0; i < n_replies; i++)
                memconv__admin_reply__free_unpacked(replies[i], NULL);
        free(replies);
        ctl_conn_close(&conn);
        return r;
}
