/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rate-limit.c - a policy plugin with token buckets per VM.
 *
 * Two buckets per VM: conversions per second and bytes per second. A
 * conversion takes one conversion token and as many byte tokens as it
 * changes (at most a whole bucket, so a conversion larger than the burst is
 * possible once the bucket is full). When a bucket is short, the request is
 * delayed until it would have refilled (its vCPU waits), or refused when
 * mode=refuse or the wait would exceed max-delay-ms.
 * Settings (configuration section and per VM, per-VM ones replace):
 *   conversions-per-sec=N   0 = unlimited (default 0)
 *   conversions-burst=N     bucket size (default: conversions-per-sec, at least 1)
 *   bytes-per-sec=N         0 = unlimited (default 0)
 *   bytes-burst=N           (default: bytes-per-sec)
 *   mode=delay|refuse       (default delay)
 *   max-delay-ms=N          longest wait before refusing (default 1000)
 */
#include "plugin-util.h"

struct rl_settings {
        uint64_t conv_rate, conv_burst, bytes_rate, bytes_burst, max_delay_ms;
        bool refuse;
        unsigned set;              /* bit per key given */
};

enum {
        RL_CONV_RATE = 1 << 0,
        RL_CONV_BURST = 1 << 1,
        RL_BYTES_RATE = 1 << 2,
        RL_BYTES_BURST = 1 << 3,
        RL_MODE = 1 << 4,
        RL_MAX_DELAY = 1 << 5,
};

struct rl_vm {
        uint64_t vm_id;            /* first: plugin_vm_table key */
        struct rl_settings s;
        double conv_tokens, bytes_tokens;
        uint64_t last_usec;
        bool primed;
        uint64_t allowed, delayed, refused;
};

struct rl_state {
        struct rl_settings defaults;
        struct plugin_vm_table vms;
};

static int rl_parse(struct rl_settings *s, const struct mc_policy_setting *settings, size_t n, char *err,
                    size_t err_len)
{
        static const struct {
                const char *key;
                size_t off;
                unsigned bit;
        } keys[] = {
                { "conversions-per-sec", offsetof(struct rl_settings, conv_rate), RL_CONV_RATE },
                { "conversions-burst", offsetof(struct rl_settings, conv_burst), RL_CONV_BURST },
                { "bytes-per-sec", offsetof(struct rl_settings, bytes_rate), RL_BYTES_RATE },
                { "bytes-burst", offsetof(struct rl_settings, bytes_burst), RL_BYTES_BURST },
                { "max-delay-ms", offsetof(struct rl_settings, max_delay_ms), RL_MAX_DELAY },
        };

        for (size_t i = 0; i < n; i++) {
                const char *k = settings[i].key, *v = settings[i].value;
                bool found = false;

                if (!strcmp(k, "mode")) {
                        if (strcmp(v, "delay") && strcmp(v, "refuse"))
                                return plugin_error(err, err_len, -EINVAL, "%s=%s: expected delay or refuse", k, v);
                        s->refuse = !strcmp(v, "refuse");
                        s->set |= RL_MODE;
                        continue;
                }
                for (size_t j = 0; j < sizeof(keys) / sizeof(keys[0]); j++)
                        if (!strcmp(k, keys[j].key)) {
                                if (plugin_parse_u64(v, (uint64_t *) (void *) ((char *) s + keys[j].off)) < 0)
                                        return plugin_error(err, err_len, -EINVAL, "%s=%s: expected a number", k, v);
                                s->set |= keys[j].bit;
                                found = true;
                        }
                if (!found)
                        return plugin_error(err, err_len, -EINVAL,
                                            "unknown setting '%s' (conversions-per-sec, conversions-burst, "
                                            "bytes-per-sec, bytes-burst, mode, max-delay-ms)", k);
        }
        return 0;
}

/**
 * rl_effective() - per-VM settings over the defaults, with derived bursts
 */
static struct rl_settings rl_effective(const struct rl_state *st, const struct rl_vm *vm)
{
        struct rl_settings s = st->defaults;

        if (vm) {
                const struct rl_settings *o = &vm->s;

                if (o->set & RL_CONV_RATE)
                        s.conv_rate = o->conv_rate;
                if (o->set & RL_CONV_BURST)
                        s.conv_burst = o->conv_burst;
                if (o->set & RL_BYTES_RATE)
                        s.bytes_rate = o->bytes_rate;
                if (o->set & RL_BYTES_BURST)
                        s.bytes_burst = o->bytes_burst;
                if (o->set & RL_MODE)
                        s.refuse = o->refuse;
                if (o->set & RL_MAX_DELAY)
                        s.max_delay_ms = o->max_delay_ms;
                s.set |= o->set;
        }
        if (!(s.set & RL_CONV_BURST) || s.conv_burst == 0)
                s.conv_burst = s.conv_rate > 0 ? s.conv_rate : 1;
        if (!(s.set & RL_BYTES_BURST) || s.bytes_burst == 0)
                s.bytes_burst = s.bytes_rate;
        return s;
}

static int rl_init(const struct mc_policy_setting *settings, size_t n, void **ret_state, char *err, size_t err_len)
{
        struct rl_state *st = calloc(1, sizeof(*st));
        int r;

        if (!st)
                return -ENOMEM;
        st->defaults.max_delay_ms = 1000;
        st->vms.size = sizeof(struct rl_vm);
        r = rl_parse(&st->defaults, settings, n, err, err_len);
        if (r < 0) {
                free(st);
                return r;
        }
        *ret_state = st;
        return 0;
}

static void rl_done(void *state)
{
        struct rl_state *st = state;

        free(st->vms.entries);
        free(st);
}

static int rl_vm_set(void *state, uint64_t vm_id, const struct mc_policy_setting *settings, size_t n, char *err,
                     size_t err_len)
{
        struct rl_state *st = state;
        struct rl_settings s = { 0 };
        struct rl_vm *vm;
        int r = rl_parse(&s, settings, n, err, err_len);

        if (r < 0)
                return r;
        vm = plugin_vm_get(&st->vms, vm_id);
        if (!vm)
                return -ENOMEM;
        vm->s = s;
        vm->primed = false;  /* buckets start full under the new settings */
        return 0;
}

static void rl_check(void *state, const struct mc_policy_request *req, struct mc_policy_result *res)
{
        struct rl_state *st = state;
        struct rl_vm *vm = plugin_vm_get(&st->vms, req->vm_id);
        struct rl_settings s;
        double need_bytes, wait_conv = 0, wait_bytes = 0, wait;

        res->verdict = MC_POLICY_ALLOW;
        if (!vm)
                return;  /* out of memory: never block a guest for our own failure */
        s = rl_effective(st, vm);
        if (s.conv_rate == 0 && s.bytes_rate == 0)
                return;
        if (!vm->primed) {
                vm->conv_tokens = (double) s.conv_burst;
                vm->bytes_tokens = (double) s.bytes_burst;
                vm->last_usec = req->now_usec;
                vm->primed = true;
        }
        if (req->now_usec > vm->last_usec) {
                double dt = (double) (req->now_usec - vm->last_usec) / 1e6;

                vm->conv_tokens += dt * (double) s.conv_rate;
                if (vm->conv_tokens > (double) s.conv_burst)
                        vm->conv_tokens = (double) s.conv_burst;
                vm->bytes_tokens += dt * (double) s.bytes_rate;
                if (vm->bytes_tokens > (double) s.bytes_burst)
                        vm->bytes_tokens = (double) s.bytes_burst;
                vm->last_usec = req->now_usec;
        }
        need_bytes = (double) req->size < (double) s.bytes_burst ? (double) req->size : (double) s.bytes_burst;
        if (s.conv_rate > 0 && vm->conv_tokens < 1.0)
                wait_conv = (1.0 - vm->conv_tokens) / (double) s.conv_rate;
        if (s.bytes_rate > 0 && vm->bytes_tokens < need_bytes)
                wait_bytes = (need_bytes - vm->bytes_tokens) / (double) s.bytes_rate;
        wait = wait_conv > wait_bytes ? wait_conv : wait_bytes;
        if (wait <= 0) {
                if (s.conv_rate > 0)
                        vm->conv_tokens -= 1.0;
                if (s.bytes_rate > 0)
                        vm->bytes_tokens -= need_bytes;
                vm->allowed++;
                return;
        }
        if (s.refuse || wait * 1000.0 > (double) s.max_delay_ms) {
                res->verdict = MC_POLICY_REFUSE;
                vm->refused++;
                snprintf(res->reason, sizeof(res->reason),
                         "rate-limit: over %llu conversions/s or %llu bytes/s",
                         (unsigned long long) s.conv_rate, (unsigned long long) s.bytes_rate);
                return;
        }
        res->verdict = MC_POLICY_DELAY;
        res->delay_usec = (uint64_t) (wait * 1e6) + 1;
        vm->delayed++;
        snprintf(res->reason, sizeof(res->reason), "rate-limit: delayed %llu us",
                 (unsigned long long) res->delay_usec);
}

/**
 * rl_lease() - a lease carries this VM's buckets: libmemconv keeps them
 * itself, and every leased conversion still passes rl_check() when it is
 * reported (a conversion it would not have allowed revokes the lease)
 */
static int rl_lease(void *state, const struct mc_policy_vm *pvm, struct mc_policy_lease *lease, char *err,
                    size_t err_len)
{
        struct rl_state *st = state;
        struct rl_settings s = rl_effective(st, plugin_vm_find(&st->vms, pvm->vm_id));

        if (s.refuse && (s.conv_rate || s.bytes_rate)) {
                /* Over the limit a conversion fails: only the daemon can tell the guest so. */
                snprintf(err, err_len, "mode=refuse needs every conversion checked first");
                return -EPERM;
        }
        lease->conversions_per_sec = s.conv_rate;
        lease->conversions_burst = s.conv_rate ? s.conv_burst : 0;
        lease->bytes_per_sec = s.bytes_rate;
        lease->bytes_burst = s.bytes_rate ? s.bytes_burst : 0;
        return 0;
}

static void rl_vm_gone(void *state, uint64_t vm_id)
{
        struct rl_state *st = state;

        plugin_vm_drop(&st->vms, vm_id);
}

static void rl_describe(void *state, uint64_t vm_id, char *buf, size_t len)
{
        struct rl_state *st = state;
        struct rl_vm *vm = plugin_vm_find(&st->vms, vm_id);
        struct rl_settings s = rl_effective(st, vm);

        snprintf(buf, len,
                 "conversions-per-sec=%llu conversions-burst=%llu bytes-per-sec=%llu bytes-burst=%llu mode=%s "
                 "max-delay-ms=%llu allowed=%llu delayed=%llu refused=%llu",
                 (unsigned long long) s.conv_rate, (unsigned long long) s.conv_burst,
                 (unsigned long long) s.bytes_rate, (unsigned long long) s.bytes_burst,
                 s.refuse ? "refuse" : "delay", (unsigned long long) s.max_delay_ms,
                 (unsigned long long) (vm ? vm->allowed : 0), (unsigned long long) (vm ? vm->delayed : 0),
                 (unsigned long long) (vm ? vm->refused : 0));
}

static const struct mc_policy_plugin rl_plugin = {
        .abi_version = MC_POLICY_ABI_VERSION,
        .size = sizeof(struct mc_policy_plugin),
        .name = "rate-limit",
        .init = rl_init,
        .done = rl_done,
        .vm_set = rl_vm_set,
        .check = rl_check,
        .vm_gone = rl_vm_gone,
        .describe = rl_describe,
        .lease = rl_lease,
};

__attribute__((visibility("default"))) const struct mc_policy_plugin *memconv_policy_plugin_v1(void);
const struct mc_policy_plugin *memconv_policy_plugin_v1(void)
{
        return &rl_plugin;
}
