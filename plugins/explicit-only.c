/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * explicit-only.c - a policy plugin that refuses implicit conversions.
 *
 * For operators who want every conversion to be the guest's deliberate
 * request (KVM_HC_MAP_GPA_RANGE, SNP page-state change, TDX MapGPA): a
 * memory fault that would convert memory is refused with the configured
 * action. Settings (configuration section and per VM):
 *   enforce=yes|no                       default yes
 *   action=refuse|inject-fault|stop-vm   default inject-fault
 * Per-VM settings replace the configured ones key by key.
 */
#include "plugin-util.h"

struct eo_settings {
        bool enforce;
        enum mc_policy_verdict action;
        bool has_enforce, has_action;
};

struct eo_vm {
        uint64_t vm_id;            /* first: plugin_vm_table key */
        struct eo_settings s;
        uint64_t refused;
};

struct eo_state {
        struct eo_settings defaults;
        struct plugin_vm_table vms;
};

static const char *eo_action_name(enum mc_policy_verdict v)
{
        return v == MC_POLICY_REFUSE ? "refuse" : v == MC_POLICY_STOP_VM ? "stop-vm" : "inject-fault";
}

/**
 * eo_parse() - read @settings into @s
 * Return: 0 or -EINVAL with @err filled
 */
static int eo_parse(struct eo_settings *s, const struct mc_policy_setting *settings, size_t n, char *err,
                    size_t err_len)
{
        for (size_t i = 0; i < n; i++) {
                const char *k = settings[i].key, *v = settings[i].value;

                if (!strcmp(k, "enforce")) {
                        if (plugin_parse_bool(v, &s->enforce) < 0)
                                return plugin_error(err, err_len, -EINVAL, "%s=%s: expected yes or no", k, v);
                        s->has_enforce = true;
                } else if (!strcmp(k, "action")) {
                        if (!strcmp(v, "refuse"))
                                s->action = MC_POLICY_REFUSE;
                        else if (!strcmp(v, "inject-fault"))
                                s->action = MC_POLICY_INJECT_FAULT;
                        else if (!strcmp(v, "stop-vm"))
                                s->action = MC_POLICY_STOP_VM;
                        else
                                return plugin_error(err, err_len, -EINVAL,
                                                    "%s=%s: expected refuse, inject-fault or stop-vm", k, v);
                        s->has_action = true;
                } else
                        return plugin_error(err, err_len, -EINVAL, "unknown setting '%s' (enforce, action)", k);
        }
        return 0;
}

static int eo_init(const struct mc_policy_setting *settings, size_t n, void **ret_state, char *err, size_t err_len)
{
        struct eo_state *st = calloc(1, sizeof(*st));
        int r;

        if (!st)
                return -ENOMEM;
        st->defaults.enforce = true;
        st->defaults.action = MC_POLICY_INJECT_FAULT;
        st->vms.size = sizeof(struct eo_vm);
        r = eo_parse(&st->defaults, settings, n, err, err_len);
        if (r < 0) {
                free(st);
                return r;
        }
        *ret_state = st;
        return 0;
}

static void eo_done(void *state)
{
        struct eo_state *st = state;

        free(st->vms.entries);
        free(st);
}

static int eo_vm_set(void *state, uint64_t vm_id, const struct mc_policy_setting *settings, size_t n, char *err,
                     size_t err_len)
{
        struct eo_state *st = state;
        struct eo_settings s = { 0 };
        struct eo_vm *vm;
        int r = eo_parse(&s, settings, n, err, err_len);

        if (r < 0)
                return r;
        vm = plugin_vm_get(&st->vms, vm_id);
        if (!vm)
                return -ENOMEM;
        vm->s = s;
        return 0;
}

/**
 * eo_effective() - the settings that apply to @vm (per VM over defaults)
 */
static struct eo_settings eo_effective(const struct eo_state *st, const struct eo_vm *vm)
{
        struct eo_settings s = st->defaults;

        if (vm && vm->s.has_enforce)
                s.enforce = vm->s.enforce;
        if (vm && vm->s.has_action)
                s.action = vm->s.action;
        return s;
}

static void eo_check(void *state, const struct mc_policy_request *req, struct mc_policy_result *res)
{
        struct eo_state *st = state;
        struct eo_vm *vm = plugin_vm_find(&st->vms, req->vm_id);
        struct eo_settings s = eo_effective(st, vm);

        res->verdict = MC_POLICY_ALLOW;
        if (!req->implicit || !s.enforce)
                return;
        res->verdict = s.action;
        snprintf(res->reason, sizeof(res->reason),
                 "explicit-only: implicit conversion to %s refused (%s)",
                 req->to_private ? "private" : "shared", eo_action_name(s.action));
        vm = plugin_vm_get(&st->vms, req->vm_id);
        if (vm)
                vm->refused++;
}

/**
 * eo_lease() - a lease never covers what this plugin refuses: with
 * enforce=yes, memory faults go through the daemon
 */
static int eo_lease(void *state, const struct mc_policy_vm *pvm, struct mc_policy_lease *lease, char *err,
                    size_t err_len)
{
        struct eo_state *st = state;
        struct eo_settings s = eo_effective(st, plugin_vm_find(&st->vms, pvm->vm_id));

        if (s.enforce)
                lease->implicit = false;
        return 0;
}

static void eo_vm_gone(void *state, uint64_t vm_id)
{
        struct eo_state *st = state;

        plugin_vm_drop(&st->vms, vm_id);
}

static void eo_describe(void *state, uint64_t vm_id, char *buf, size_t len)
{
        struct eo_state *st = state;
        struct eo_vm *vm = plugin_vm_find(&st->vms, vm_id);
        struct eo_settings s = eo_effective(st, vm);

        snprintf(buf, len, "enforce=%s action=%s refused=%llu", s.enforce ? "yes" : "no", eo_action_name(s.action),
                 (unsigned long long) (vm ? vm->refused : 0));
}

static const struct mc_policy_plugin eo_plugin = {
        .abi_version = MC_POLICY_ABI_VERSION,
        .size = sizeof(struct mc_policy_plugin),
        .name = "explicit-only",
        .init = eo_init,
        .done = eo_done,
        .vm_set = eo_vm_set,
        .check = eo_check,
        .vm_gone = eo_vm_gone,
        .describe = eo_describe,
        .lease = eo_lease,
};

__attribute__((visibility("default"))) const struct mc_policy_plugin *memconv_policy_plugin_v1(void);
const struct mc_policy_plugin *memconv_policy_plugin_v1(void)
{
        return &eo_plugin;
}
