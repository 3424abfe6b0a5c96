/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ctl-list.c - "memconvctl list": every VM the daemon knows, attached or
 * detached (kept for inspection until forgotten), one row each, from one
 * ListRequest. The counts are conversions committed, both directions.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"

/**
 * list_print_json() - the VMs of @l as one JSON document {"vms": [...]}
 * Return: 0, or -EINVAL if the writer was misused (a bug)
 */
static int list_print_json(const Memconv__ListReply *l)
{
        struct json_writer j;

        json_init(&j, stdout, true);
        json_object_begin(&j, NULL);
        json_array_begin(&j, "vms");
        for (size_t i = 0; i < l->n_vms; i++)
                ctl_json_vm(&j, NULL, l->vms[i], true);
        json_array_end(&j);
        json_object_end(&j);
        return json_finish(&j);
}

/**
 * list_print_table() - the VMs of @l as a table on stdout
 * @legend: header line and "N VMs listed" footer
 * Return: 0, -ENOMEM
 */
static int list_print_table(const Memconv__ListReply *l, bool legend)
{
        static const char *const headers[] = {
                "ID", "NAME", "UUID", "STATE", "PID", "PRIVATE", "SHARED", "EXPLICIT", "IMPLICIT", "DOMAIN",
        };
        _cleanup_table_ struct table *t = NULL;
        size_t attached = 0;
        int r;

        r = table_new(headers, ELEMENTSOF(headers), &t);
        if (r < 0)
                return r;
        table_set_right(t, 0);
        for (size_t c = 4; c < ELEMENTSOF(headers) - 1; c++)
                table_set_right(t, c);

        for (size_t i = 0; i < l->n_vms; i++) {
                const Memconv__VmInfo *vm = l->vms[i];
                const Memconv__ConversionStats *s = vm->stats;
                char priv[FORMAT_BYTES_MAX], shared[FORMAT_BYTES_MAX];
                uint64_t explicit = s ? s->explicit_to_private + s->explicit_to_shared : 0;
                uint64_t implicit = s ? s->implicit_to_private + s->implicit_to_shared : 0;

                if (ctl_str(vm->state, "")[0] == 'a')
                        attached++;
                if (table_add(t, "%" PRIu64, vm->id) < 0 ||
                    table_add(t, "%s", ctl_str(vm->name, "-")) < 0 ||
                    table_add(t, "%s", ctl_str(vm->uuid, "-")) < 0 ||
                    table_add(t, "%s", ctl_str(vm->state, "-")) < 0 ||
                    (vm->pid > 0 ? table_add(t, "%" PRIi32, vm->pid) : table_add(t, "-")) < 0 ||
                    table_add(t, "%s", format_bytes(priv, vm->private_bytes)) < 0 ||
                    table_add(t, "%s", format_bytes(shared, vm->shared_bytes)) < 0 ||
                    table_add(t, "%" PRIu64, explicit) < 0 ||
                    table_add(t, "%" PRIu64, implicit) < 0 ||
                    table_add(t, "%s", ctl_str(vm->domain, "-")) < 0)
                        return -ENOMEM;
        }

        if (l->n_vms > 0 || legend)
                table_print(t, stdout, legend);
        if (legend)
                printf("\n%zu VM%s listed, %zu attached.\n", l->n_vms, l->n_vms == 1 ? "" : "s", attached);
        return 0;
}

int ctl_list_main(const struct ctl_command *cmd, struct ctl_options *opts, int argc, char **argv)
{
        static const struct option options[] = { CTL_COMMON_OPTIONS, {} };
        Memconv__ListRequest body = MEMCONV__LIST_REQUEST__INIT;
        Memconv__AdminRequest req = MEMCONV__ADMIN_REQUEST__INIT;
        _cleanup_reply_ Memconv__AdminReply *reply = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                r = ctl_common_option(cmd, opts, c, argv);
                if (r != 0)
                        return r > 0 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
        }
        if (optind < argc)
                return ctl_usage_error(cmd, "unexpected argument '%s' ('memconvctl show VM' shows one VM)",
                                       argv[optind]);

        req.body_case = MEMCONV__ADMIN_REQUEST__BODY_LIST;
        req.list = &body;
        r = ctl_call(opts, cmd->name, &req, MEMCONV__ADMIN_REPLY__BODY_LIST, &reply);
        if (r != CTL_EXIT_OK)
                return r;

        if (opts->json)
                r = list_print_json(reply->list);
        else
                r = list_print_table(reply->list, opts->legend);
        if (r < 0) {
                fprintf(stderr, "memconvctl %s: cannot format the output: %s\n", cmd->name, strerror(-r));
                return CTL_EXIT_FAILED;
        }
        return CTL_EXIT_OK;
}
