/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ctl-policy.c - "memconvctl policy show VM" and
 * "memconvctl policy set VM PLUGIN [KEY=VALUE...]": the policy chain and
 * one VM's settings in it. A refused "set" (no such plugin, a setting the
 * plugin rejects) changes nothing and exits 1 with the plugin's reason.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"

/**
 * policy_show() - print the chain and @spec's effective policy
 * Return: a CTL_EXIT_* status
 */
static int policy_show(const struct ctl_command *cmd, struct ctl_options *opts, const char *spec)
{
        Memconv__VmSelector sel = MEMCONV__VM_SELECTOR__INIT;
        Memconv__PolicyShowRequest body = MEMCONV__POLICY_SHOW_REQUEST__INIT;
        Memconv__AdminRequest req = MEMCONV__ADMIN_REQUEST__INIT;
        _cleanup_reply_ Memconv__AdminReply *reply = NULL;
        const Memconv__PolicyShowReply *m;
        int r;

        sel.spec = (char *) spec;
        body.vm = &sel;
        req.body_case = MEMCONV__ADMIN_REQUEST__BODY_POLICY_SHOW;
        req.policy_show = &body;
        r = ctl_call(opts, "policy show", &req, MEMCONV__ADMIN_REPLY__BODY_POLICY_SHOW, &reply);
        if (r != CTL_EXIT_OK)
                return r;
        m = reply->policy_show;
        if (opts->json) {
                struct json_writer j;

                json_init(&j, stdout, true);
                json_object_begin(&j, NULL);
                json_array_begin(&j, "plugins");
                for (size_t i = 0; i < m->n_plugins; i++)
                        json_string(&j, NULL, m->plugins[i]);
                json_array_end(&j);
                json_string(&j, "effective", m->effective);
                json_array_begin(&j, "overrides");
                for (size_t i = 0; i < m->n_overrides; i++) {
                        json_object_begin(&j, NULL);
                        json_string(&j, "plugin", m->overrides[i]->plugin);
                        json_string(&j, "settings", m->overrides[i]->settings);
                        json_object_end(&j);
                }
                json_array_end(&j);
                json_object_end(&j);
                return json_finish(&j) < 0 ? CTL_EXIT_FAILED : CTL_EXIT_OK;
        }
        printf("Policy chain: ");
        if (m->n_plugins == 0)
                printf("(none: every valid conversion is allowed)\n");
        for (size_t i = 0; i < m->n_plugins; i++)
                printf("%s%s", m->plugins[i], i + 1 < m->n_plugins ? " -> " : "\n");
        if (m->effective && *m->effective) {
                char *copy = strdup(m->effective), *save = NULL;

                printf("Effective for %s:\n", spec);
                for (char *part = copy ? strtok_r(copy, ";", &save) : NULL; part; part = strtok_r(NULL, ";", &save))
                        printf("  %s\n", part + (*part == ' '));
                free(copy);
        }
        for (size_t i = 0; i < m->n_overrides; i++)
                printf("Set for this VM: %s %s\n", m->overrides[i]->plugin, m->overrides[i]->settings);
        return CTL_EXIT_OK;
}

int ctl_policy_main(const struct ctl_command *cmd, struct ctl_options *opts, int argc, char **argv)
{
        static const struct option options[] = { CTL_COMMON_OPTIONS, {} };
        Memconv__VmSelector sel = MEMCONV__VM_SELECTOR__INIT;
        Memconv__PolicySetRequest body = MEMCONV__POLICY_SET_REQUEST__INIT;
        Memconv__AdminRequest req = MEMCONV__ADMIN_REQUEST__INIT;
        _cleanup_reply_ Memconv__AdminReply *reply = NULL;
        char settings[2048] = "";
        size_t off = 0;
        int c, r;

        while ((c = getopt_long(argc, argv, "+:h", options, NULL)) >= 0) {
                r = ctl_common_option(cmd, opts, c, argv);
                if (r != 0)
                        return r > 0 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
        }
        if (optind >= argc)
                return ctl_usage_error(cmd, "say 'show VM' or 'set VM PLUGIN [KEY=VALUE...]'");
        if (!strcmp(argv[optind], "show")) {
                if (argc - optind != 2)
                        return ctl_usage_error(cmd, "policy show takes exactly one VM");
                return policy_show(cmd, opts, argv[optind + 1]);
        }
        if (strcmp(argv[optind], "set") != 0)
                return ctl_usage_error(cmd, "unknown policy action (show, set)");
        if (argc - optind < 3)
                return ctl_usage_error(cmd, "policy set needs a VM and a plugin name");
        for (int i = optind + 3; i < argc; i++) {
                if (!strchr(argv[i], '=') || argv[i][0] == '=')
                        return ctl_usage_error(cmd, "settings are KEY=VALUE words");
                off += (size_t) snprintf(settings + off, off < sizeof(settings) ? sizeof(settings) - off : 0, "%s%s",
                                         off ? " " : "", argv[i]);
                if (off >= sizeof(settings))
                        return ctl_usage_error(cmd, "settings too long");
        }
        sel.spec = argv[optind + 1];
        body.vm = &sel;
        body.plugin = argv[optind + 2];
        body.settings = settings;
        req.body_case = MEMCONV__ADMIN_REQUEST__BODY_POLICY_SET;
        req.policy_set = &body;
        r = ctl_call(opts, "policy set", &req, MEMCONV__ADMIN_REPLY__BODY_POLICY_SET, &reply);
        if (r != CTL_EXIT_OK)
                return r;
        if (opts->json) {
                struct json_writer j;

                json_init(&j, stdout, true);
                json_object_begin(&j, NULL);
                json_string(&j, "vm", sel.spec);
                json_string(&j, "plugin", body.plugin);
                json_string(&j, "settings", settings);
                json_object_end(&j);
                return json_finish(&j) < 0 ? CTL_EXIT_FAILED : CTL_EXIT_OK;
        }
        if (opts->legend)
                printf("%s of VM %s set to: %s\n", body.plugin, sel.spec, settings[0] ? settings : "(configured defaults)");
        return CTL_EXIT_OK;
}
