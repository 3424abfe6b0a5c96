/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libvirt-policy.c - the "libvirt" policy plugin: VMs are libvirt's domains.
 *
 * - attach(): with require-registration=yes (the default), a new VM may
 *   attach only if libvirt's hook (memconvd-libvirt-hook, at "prepare
 *   begin") registered its uuid: libvirt started it, nobody else.
 * - label(): memconvctl list names each VM's domain and its state, as
 *   libvirt itself reports them over a read-only connection.
 * - The domain's own policy (<metadata> in its XML) reaches memconvd with
 *   the hook's registration; this plugin adds nothing to check().
 *
 * libvirt is never called on memconvd's event loop: a thread of this
 * plugin walks the domains (lv_map_domains()) every refresh-sec seconds,
 * and sooner when label() meets a uuid it does not know, and swaps in a
 * new table under a mutex. attach() and label() only read the table.
 *
 * Settings (configuration section only; none per VM):
 *   uri=URI                    libvirt connection, default qemu:///system
 *   refresh-sec=N              1..3600, default 10
 *   require-registration=yes|no  default yes
 */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "lv-map.h"
#include "plugin-util.h"

struct lvp_domain {
        char uuid[37];
        char *name;
        bool active;
};

struct lvp_table {
        struct lvp_domain *v;
        size_t n, cap;
};

struct lvp_state {
        char *uri;
        unsigned refresh_sec;
        bool require_registration;

        pthread_t thread;
        bool thread_started;
        pthread_mutex_t lock;
        pthread_cond_t cond;
        /* under lock */
        bool stopping, refresh_wanted;
        struct lvp_table domains;
        uint64_t refreshes, failures;
        time_t last_refresh;
        char last_error[LV_MAP_ERROR_MAX];
};

static void lvp_table_free(struct lvp_table *t)
{
        for (size_t i = 0; i < t->n; i++)
                free(t->v[i].name);
        free(t->v);
        *t = (struct lvp_table) { 0 };
}

static int lvp_collect(const struct lv_domain *d, void *userdata)
{
        struct lvp_table *t = userdata;

        if (t->n == t->cap) {
                size_t cap = t->cap ? t->cap * 2 : 16;
                struct lvp_domain *v = realloc(t->v, cap * sizeof(*v));

                if (!v)
                        return -ENOMEM;
                t->v = v;
                t->cap = cap;
        }
        snprintf(t->v[t->n].uuid, sizeof(t->v[t->n].uuid), "%s", d->uuid);
        t->v[t->n].name = strdup(d->name ? d->name : "");
        if (!t->v[t->n].name)
                return -ENOMEM;
        t->v[t->n].active = d->active;
        t->n++;
        return 0;
}

/* One walk over libvirt's domains, outside the lock; the result swapped in. */
static void lvp_refresh(struct lvp_state *st)
{
        struct lvp_table fresh = { 0 };
        struct lv_map_error e = { "" };
        int r = lv_map_domains(st->uri, lvp_collect, &fresh, &e);

        pthread_mutex_lock(&st->lock);
        if (r < 0) {
                /* Keep the last good table: a restarting libvirtd must not blank the list. */
                st->failures++;
                snprintf(st->last_error, sizeof(st->last_error), "%s", e.text[0] ? e.text : strerror(-r));
                lvp_table_free(&fresh);
        } else {
                lvp_table_free(&st->domains);
                st->domains = fresh;
                st->last_error[0] = 0;
        }
        st->refreshes++;
        st->last_refresh = time(NULL);
        pthread_mutex_unlock(&st->lock);
}

static void *lvp_thread(void *userdata)
{
        struct lvp_state *st = userdata;

        for (;;) {
                struct timespec until;

                lvp_refresh(st);
                clock_gettime(CLOCK_MONOTONIC, &until);
                until.tv_sec += st->refresh_sec;
                pthread_mutex_lock(&st->lock);
                while (!st->stopping && !st->refresh_wanted)
                        if (pthread_cond_timedwait(&st->cond, &st->lock, &until) == ETIMEDOUT)
                                break;
                st->refresh_wanted = false;
                if (st->stopping) {
                        pthread_mutex_unlock(&st->lock);
                        return NULL;
                }
                pthread_mutex_unlock(&st->lock);
        }
}

/* libvirt prints its errors to stderr unless told otherwise; lv_map returns their text. */
static void lvp_quiet(void *userdata, virErrorPtr error)
{
        (void) userdata;
        (void) error;
}

static void lvp_done(void *state)
{
        struct lvp_state *st = state;

        if (!st)
                return;
        if (st->thread_started) {
                pthread_mutex_lock(&st->lock);
                st->stopping = true;
                pthread_cond_signal(&st->cond);
                pthread_mutex_unlock(&st->lock);
                pthread_join(st->thread, NULL);
        }
        lvp_table_free(&st->domains);
        pthread_cond_destroy(&st->cond);
        pthread_mutex_destroy(&st->lock);
        free(st->uri);
        free(st);
}

static int lvp_init(const struct mc_policy_setting *settings, size_t n, void **ret_state, char *err,
                    size_t err_len)
{
        struct lvp_state *st = calloc(1, sizeof(*st));
        const char *uri = "qemu:///system";
        pthread_condattr_t ca;
        int r;

        if (!st)
                return -ENOMEM;
        st->refresh_sec = 10;
        st->require_registration = true;
        pthread_mutex_init(&st->lock, NULL);
        pthread_condattr_init(&ca);
        pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
        pthread_cond_init(&st->cond, &ca);
        pthread_condattr_destroy(&ca);
        for (size_t i = 0; i < n; i++) {
                const char *k = settings[i].key, *v = settings[i].value;
                uint64_t u;

                if (!strcmp(k, "uri")) {
                        if (!*v) {
                                r = plugin_error(err, err_len, -EINVAL, "uri=: expected a libvirt URI");
                                goto fail;
                        }
                        uri = v;
                } else if (!strcmp(k, "refresh-sec")) {
                        if (plugin_parse_u64(v, &u) < 0 || u < 1 || u > 3600) {
                                r = plugin_error(err, err_len, -EINVAL, "%s=%s: expected 1 to 3600 seconds", k, v);
                                goto fail;
                        }
                        st->refresh_sec = (unsigned) u;
                } else if (!strcmp(k, "require-registration")) {
                        if (plugin_parse_bool(v, &st->require_registration) < 0) {
                                r = plugin_error(err, err_len, -EINVAL, "%s=%s: expected yes or no", k, v);
                                goto fail;
                        }
                } else {
                        r = plugin_error(err, err_len, -EINVAL,
                                         "unknown setting '%s' (uri, refresh-sec, require-registration)", k);
                        goto fail;
                }
        }
        st->uri = strdup(uri);
        if (!st->uri) {
                r = -ENOMEM;
                goto fail;
        }
        if (virInitialize() < 0) {
                r = plugin_error(err, err_len, -EIO, "libvirt cannot be initialised");
                goto fail;
        }
        virSetErrorFunc(NULL, lvp_quiet);
        r = -pthread_create(&st->thread, NULL, lvp_thread, st);
        if (r < 0) {
                plugin_error(err, err_len, r, "cannot start the domain-map thread");
                goto fail;
        }
        st->thread_started = true;
        *ret_state = st;
        return 0;
fail:
        lvp_done(st);
        return r;
}

static int lvp_vm_set(void *state, uint64_t vm_id, const struct mc_policy_setting *settings, size_t n, char *err,
                      size_t err_len)
{
        (void) state;
        (void) vm_id;
        (void) settings;
        if (n > 0)
                return plugin_error(err, err_len, -EINVAL,
                                    "the libvirt plugin has no per-VM settings (a domain's policy goes in its XML)");
        return 0;
}

static void lvp_check(void *state, const struct mc_policy_request *req, struct mc_policy_result *res)
{
        (void) state;
        (void) req;
        res->verdict = MC_POLICY_ALLOW;
}

static void lvp_vm_gone(void *state, uint64_t vm_id)
{
        (void) state;
        (void) vm_id;
}

static void lvp_describe(void *state, uint64_t vm_id, char *buf, size_t len)
{
        struct lvp_state *st = state;

        (void) vm_id;
        pthread_mutex_lock(&st->lock);
        snprintf(buf, len, "uri=%s require-registration=%s refresh-sec=%u domains=%zu refreshes=%llu failures=%llu%s%s",
                 st->uri, st->require_registration ? "yes" : "no", st->refresh_sec, st->domains.n,
                 (unsigned long long) st->refreshes, (unsigned long long) st->failures,
                 st->last_error[0] ? " last-error=" : "", st->last_error);
        pthread_mutex_unlock(&st->lock);
}

static int lvp_attach(void *state, const struct mc_policy_vm *vm, char *err, size_t err_len)
{
        struct lvp_state *st = state;

        if (!st->require_registration || vm->registered)
                return 0;
        return plugin_error(err, err_len, -EPERM,
                            "not registered by libvirt (memconvd-libvirt-hook at prepare begin); only libvirt's "
                            "domains may attach");
}

static void lvp_label(void *state, const struct mc_policy_vm *vm, char *buf, size_t len)
{
        struct lvp_state *st = state;
        bool found = false;

        pthread_mutex_lock(&st->lock);
        for (size_t i = 0; i < st->domains.n && !found; i++)
                if (!strcmp(st->domains.v[i].uuid, vm->uuid)) {
                        snprintf(buf, len, "%s (%s)", st->domains.v[i].name,
                                 st->domains.v[i].active ? "running" : "shut off");
                        found = true;
                }
        if (!found && !st->refresh_wanted && time(NULL) - st->last_refresh >= 1) {
                /* A domain defined since the last walk: look again now rather than in
                 * refresh-sec (at most once a second: VMs libvirt does not know stay unknown). */
                st->refresh_wanted = true;
                pthread_cond_signal(&st->cond);
        }
        pthread_mutex_unlock(&st->lock);
}

/**
 * lvp_lease() - the plugin decides at attach time only: leases are fine
 */
static int lvp_lease(void *state, const struct mc_policy_vm *vm, struct mc_policy_lease *lease, char *err,
                     size_t err_len)
{
        return 0;
}

static const struct mc_policy_plugin lvp_plugin = {
        .abi_version = MC_POLICY_ABI_VERSION,
        .size = sizeof(struct mc_policy_plugin),
        .name = "libvirt",
        .init = lvp_init,
        .done = lvp_done,
        .vm_set = lvp_vm_set,
        .check = lvp_check,
        .vm_gone = lvp_vm_gone,
        .describe = lvp_describe,
        .attach = lvp_attach,
        .label = lvp_label,
        .lease = lvp_lease,
};

__attribute__((visibility("default"))) const struct mc_policy_plugin *memconv_policy_plugin_v1(void);
const struct mc_policy_plugin *memconv_policy_plugin_v1(void)
{
        return &lvp_plugin;
}
