/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * registry.c - libvirt-registered domains; see registry.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "registry.h"
#include "vm.h"

int registry_set(struct daemon *d, const char *uuid, const char *name, int cc_type, const char *policy)
{
        struct domain_reg *r = registry_find(d, uuid);
        char *n = strdup(name), *p = strdup(policy ? policy : "");

        if (!n || !p) {
                free(n);
                free(p);
                return -ENOMEM;
        }
        if (!r) {
                r = calloc(1, sizeof(*r));
                if (!r) {
                        free(n);
                        free(p);
                        return -ENOMEM;
                }
                snprintf(r->uuid, sizeof(r->uuid), "%s", uuid);
                LIST_INSERT_HEAD(&d->domains, r, link);
        } else {
                free(r->name);
                free(r->policy);
        }
        r->name = n;
        r->policy = p;
        r->cc_type = cc_type;
        return 0;
}

struct domain_reg *registry_find(struct daemon *d, const char *uuid)
{
        struct domain_reg *r;

        LIST_FOREACH(r, &d->domains, link)
                if (!strcmp(r->uuid, uuid))
                        return r;
        return NULL;
}

static void registry_free_one(struct domain_reg *r)
{
        LIST_REMOVE(r, link);
        free(r->name);
        free(r->policy);
        free(r);
}

bool registry_drop(struct daemon *d, const char *uuid)
{
        struct domain_reg *r = registry_find(d, uuid);

        if (!r)
                return false;
        registry_free_one(r);
        return true;
}

void registry_done(struct daemon *d)
{
        while (!LIST_EMPTY(&d->domains))
                registry_free_one(LIST_FIRST(&d->domains));
}

void registry_apply_policy(struct vm *vm, const struct domain_reg *reg)
{
        char *copy = strdup(reg->policy), *save = NULL;

        if (!copy) {
                log_error("VM %s: out of memory applying its libvirt policy", vm->name);
                return;
        }
        for (char *line = strtok_r(copy, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                char *plugin = line, *settings, err[256] = "";

                while (*plugin == ' ' || *plugin == '\t')
                        plugin++;
                if (!*plugin || *plugin == '#')
                        continue;
                settings = plugin + strcspn(plugin, " \t");
                if (*settings)
                        *settings++ = 0;
                if (vm_policy_set(vm, plugin, settings, err, sizeof(err)) < 0)
                        log_warning("VM %s: policy line from its domain XML ignored: %s %s: %s", vm->name, plugin,
                                    settings, err);
        }
        free(copy);
}
