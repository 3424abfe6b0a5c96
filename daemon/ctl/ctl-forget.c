/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ctl-forget.c - "memconvctl forget VM": drop a detached VM's attribute
 * map, counters and history from the daemon. The daemon refuses for a VM
 * that is still attached (its VMM must detach first), and then nothing
 * changes; the refusal is reported with exit status 1.
 */
#include <errno.h>
#include <stdio.h>

#include "ctl.h"

int ctl_forget_main(const struct ctl_command *cmd, struct ctl_options *opts, int argc, char **argv)
{
        static const struct option options[] = { CTL_COMMON_OPTIONS, {} };
        Memconv__VmSelector sel = MEMCONV__VM_SELECTOR__INIT;
        Memconv__ForgetRequest body = MEMCONV__FORGET_REQUEST__INIT;
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
        req.body_case = MEMCONV__ADMIN_REQUEST__BODY_FORGET;
        req.forget = &body;
        r = ctl_call(opts, cmd->name, &req, MEMCONV__ADMIN_REPLY__BODY_FORGET, &reply);
        if (r != CTL_EXIT_OK)
                return r;

        if (opts->json) {
                struct json_writer j;

                json_init(&j, stdout, true);
                json_object_begin(&j, NULL);
                json_string(&j, "forgotten", spec);
                json_object_end(&j);
                return json_finish(&j) < 0 ? CTL_EXIT_FAILED : CTL_EXIT_OK;
        }
        if (opts->legend)
                printf("Forgot VM %s.\n", spec);
        return CTL_EXIT_OK;
}
