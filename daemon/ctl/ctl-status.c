/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ctl-status.c - "memconvctl status": the daemon as a whole, from one
 * StatusRequest: version, pid, uptime, sockets, state directory, how many
 * VMs are attached and detached, connection counters, the event loop's
 * polling and the conversion totals over every VM.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>

#include "ctl.h"

#define KEY_WIDTH 16

/**
 * status_print_json() - @s as one JSON document on stdout
 * Return: 0, or -EINVAL if the writer was misused (a bug)
 */
static int status_print_json(const Memconv__StatusReply *s)
{
        struct json_writer j;

        json_init(&j, stdout, true);
        json_object_begin(&j, NULL);
        json_string(&j, "version", ctl_str(s->version, NULL));
        json_u64(&j, "pid", s->pid);
        json_u64(&j, "uptime_usec", s->uptime_usec);
        json_string(&j, "vmm_socket", ctl_str(s->vmm_socket, NULL));
        json_string(&j, "admin_socket", ctl_str(s->admin_socket, NULL));
        json_string(&j, "state_directory", ctl_str(s->state_directory, NULL));
        json_u64(&j, "vms_attached", s->vms_attached);
        json_u64(&j, "vms_detached", s->vms_detached);
        json_u64(&j, "sessions_total", s->sessions_total);
        json_u64(&j, "protocol_errors", s->protocol_errors);
        json_u64(&j, "peers_refused", s->peers_refused);
        json_bool(&j, "request_rings", s->ring);
        ctl_json_stats(&j, "totals", s->totals);
        if (s->polling) {
                json_object_begin(&j, "polling");
                json_u64(&j, "max_usec", s->polling->max_usec);
                json_u64(&j, "window_usec", s->polling->window_usec);
                json_u64(&j, "hits", s->polling->hits);
                json_u64(&j, "misses", s->polling->misses);
                json_u64(&j, "poll_usec", s->polling->poll_usec);
                json_object_end(&j);
        }
        json_object_end(&j);
        return json_finish(&j);
}

/**
 * status_print_text() - @s as "Key: value" lines on stdout
 */
static void status_print_text(const Memconv__StatusReply *s)
{
        char up[FORMAT_USEC_MAX];

        ctl_field(stdout, KEY_WIDTH, "Version", "memconvd %s", ctl_str(s->version, "(unknown)"));
        ctl_field(stdout, KEY_WIDTH, "PID", "%" PRIu64, s->pid);
        ctl_field(stdout, KEY_WIDTH, "Uptime", "%s", format_usec(up, s->uptime_usec));
        ctl_field(stdout, KEY_WIDTH, "VMM socket", "%s", ctl_str(s->vmm_socket, "-"));
        ctl_field(stdout, KEY_WIDTH, "Admin socket", "%s", ctl_str(s->admin_socket, "-"));
        ctl_field(stdout, KEY_WIDTH, "State directory", "%s",
                  ctl_str(s->state_directory, "none (state is kept in memory only)"));
        ctl_field(stdout, KEY_WIDTH, "VMs", "%" PRIu32 " attached, %" PRIu32 " detached", s->vms_attached,
                  s->vms_detached);
        ctl_field(stdout, KEY_WIDTH, "Connections", "%" PRIu64 " VMM sessions since start, %" PRIu64
                  " protocol errors, %" PRIu64 " peers refused", s->sessions_total, s->protocol_errors,
                  s->peers_refused);
        if (s->polling && s->polling->max_usec == 0)
                ctl_field(stdout, KEY_WIDTH, "Polling", "off");
        else if (s->polling) {
                char polled[FORMAT_USEC_MAX];

                ctl_field(stdout, KEY_WIDTH, "Polling", "up to %" PRIu64 " us (now %" PRIu64 " us); %" PRIu64
                          " waits ended while polling, %" PRIu64 " slept; %s polled", s->polling->max_usec,
                          s->polling->window_usec, s->polling->hits, s->polling->misses,
                          format_usec(polled, s->polling->poll_usec));
        }
        ctl_field(stdout, KEY_WIDTH, "Request rings", "%s", s->ring ? "allowed" : "off (RequestRing=no)");
        ctl_print_stats_fields(stdout, KEY_WIDTH, s->totals);
}

int ctl_status_main(const struct ctl_command *cmd, struct ctl_options *opts, int argc, char **argv)
{
        static const struct option options[] = { CTL_COMMON_OPTIONS, {} };
        Memconv__StatusRequest body = MEMCONV__STATUS_REQUEST__INIT;
        Memconv__AdminRequest req = MEMCONV__ADMIN_REQUEST__INIT;
        _cleanup_reply_ Memconv__AdminReply *reply = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                r = ctl_common_option(cmd, opts, c, argv);
                if (r != 0)
                        return r > 0 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
        }
        if (optind < argc)
                return ctl_usage_error(cmd, "unexpected argument '%s'", argv[optind]);

        req.body_case = MEMCONV__ADMIN_REQUEST__BODY_STATUS;
        req.status = &body;
        r = ctl_call(opts, cmd->name, &req, MEMCONV__ADMIN_REPLY__BODY_STATUS_REPLY, &reply);
        if (r != CTL_EXIT_OK)
                return r;

        if (opts->json)
                return status_print_json(reply->status_reply) < 0 ? CTL_EXIT_FAILED : CTL_EXIT_OK;
        status_print_text(reply->status_reply);
        return CTL_EXIT_OK;
}
