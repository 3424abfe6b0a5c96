/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ctl-check.c - "memconvctl check VM": ask the daemon to compare the VM's
 * backing with its attribute map and list what disagrees: memory allocated
 * both in guest_memfd and in shared memory (backed twice), private ranges
 * whose guest_memfd is not allocated while the shared side is, discards that
 * failed, and ranges that could not be inspected.
 *
 * The exit status is the result for scripts: 0 nothing found, 1 findings
 * (or the daemon refused), like the other commands otherwise.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "macro.h"

/**
 * check_print_json() - @c as one JSON document on stdout
 * Return: 0, -EINVAL (writer misuse)
 */
static int check_print_json(const Memconv__CheckReply *c)
{
        struct json_writer j;

        json_init(&j, stdout, true);
        json_object_begin(&j, NULL);
        json_u64(&j, "checked_bytes", c->checked_bytes);
        json_bool(&j, "gmem_inspectable", c->gmem_inspectable);
        json_array_begin(&j, "findings");
        for (size_t i = 0; i < c->n_findings; i++) {
                const Memconv__CheckFinding *f = c->findings[i];

                json_object_begin(&j, NULL);
                json_string(&j, "kind", finding_kind_name(f->kind));
                json_u64(&j, "gpa", f->gpa);
                json_u64(&j, "size", f->size);
                json_u64(&j, "end", f->gpa + f->size);
                json_string(&j, "attribute", attribute_name(f->attribute));
                json_string(&j, "detail", ctl_str(f->detail, NULL));
                json_object_end(&j);
        }
        json_array_end(&j);
        json_object_end(&j);
        return json_finish(&j);
}

/**
 * check_print_table() - the findings of @c as a table, and a verdict line
 * @spec: the VM as the user named it
 * Return: 0, -ENOMEM
 */
static int check_print_table(const Memconv__CheckReply *c, const char *spec, bool legend)
{
        static const char *const headers[] = { "KIND", "START", "END", "SIZE", "ATTRIBUTE", "DETAIL" };
        _cleanup_table_ struct table *t = NULL;
        char checked[FORMAT_BYTES_MAX];
        int r;

        r = table_new(headers, ELEMENTSOF(headers), &t);
        if (r < 0)
                return r;
        table_set_right(t, 1);
        table_set_right(t, 2);
        table_set_right(t, 3);
        for (size_t i = 0; i < c->n_findings; i++) {
                const Memconv__CheckFinding *f = c->findings[i];
                char size[FORMAT_BYTES_MAX];

                if (table_add(t, "%s", finding_kind_name(f->kind)) < 0 || table_add(t, "0x%" PRIx64, f->gpa) < 0 ||
                    table_add(t, "0x%" PRIx64, f->gpa + f->size) < 0 ||
                    table_add(t, "%s", format_bytes(size, f->size)) < 0 ||
                    table_add(t, "%s", attribute_name(f->attribute)) < 0 ||
                    table_add(t, "%s", ctl_str(f->detail, "-")) < 0)
                        return -ENOMEM;
        }
        if (c->n_findings > 0)
                table_print(t, stdout, legend);
        if (legend) {
                format_bytes(checked, c->checked_bytes);
                if (c->n_findings == 0)
                        printf("%s: %s checked, no problems found.\n", spec, checked);
                else
                        printf("\n%s: %s checked, %zu problem%s found.\n", spec, checked, c->n_findings,
                               c->n_findings == 1 ? "" : "s");
        }
        if (!c->gmem_inspectable)
                fprintf(stderr, "memconvctl check: note: the guest_memfd of %s cannot be mapped, so only the "
                                "shared side was inspected.\n", spec);
        return 0;
}

int ctl_check_main(const struct ctl_command *cmd, struct ctl_options *opts, int argc, char **argv)
{
        static const struct option options[] = { CTL_COMMON_OPTIONS, {} };
        Memconv__VmSelector sel = MEMCONV__VM_SELECTOR__INIT;
        Memconv__CheckRequest body = MEMCONV__CHECK_REQUEST__INIT;
        Memconv__AdminRequest req = MEMCONV__ADMIN_REQUEST__INIT;
        _cleanup_reply_ Memconv__AdminReply *reply = NULL;
        const char *spec;
        int c, r;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                r = ctl_common_option(cmd, opts, c, argv);
                if (r != 0)
                        return r > 0 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
        }
        r = ctl_take_vm_argument(cmd, argc, argv, true, &spec);
        if (r != 0)
                return r;

        sel.spec = (char *) spec;
        body.vm = &sel;
        req.body_case = MEMCONV__ADMIN_REQUEST__BODY_CHECK;
        req.check = &body;
        r = ctl_call(opts, cmd->name, &req, MEMCONV__ADMIN_REPLY__BODY_CHECK, &reply);
        if (r != CTL_EXIT_OK)
                return r;

        if (opts->json)
                r = check_print_json(reply->check);
        else
                r = check_print_table(reply->check, spec, opts->legend);
        if (r < 0) {
                fprintf(stderr, "memconvctl %s: cannot format the output: %s\n", cmd->name, strerror(-r));
                return CTL_EXIT_FAILED;
        }
        return reply->check->n_findings > 0 ? CTL_EXIT_FAILED : CTL_EXIT_OK;
}
