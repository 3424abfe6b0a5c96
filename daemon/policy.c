/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * policy.c - loading and asking policy plugins; see policy.h and
 * plugins/memconv-policy.h.
 *
 * Loading checks, in order: the file exists in the plugin directory and is
 * not writable by others (a plugin runs inside the daemon); dlopen()
 * succeeds (RTLD_NOW: every undefined symbol is an error now, not at the
 * first conversion); the single entry symbol exists; the struct it returns
 * has our ABI version, a large enough size, the name it was configured
 * under, and every entry point set; init() accepts the settings.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "macro.h"
#include "policy.h"

struct policy_instance {
        char *name;
        void *dl;
        const struct mc_policy_plugin *p;
        void *state;
};

struct policy_chain {
        struct policy_instance *v;
        size_t n;
};

void policy_settings_free(struct mc_policy_setting *s, size_t n)
{
        for (size_t i = 0; s && i < n; i++) {
                free((char *) s[i].key);
                free((char *) s[i].value);
        }
        free(s);
}

int policy_settings_parse(const char *text, struct mc_policy_setting **ret, size_t *ret_n)
{
        struct mc_policy_setting *v = NULL;
        size_t n = 0;
        const char *p = text;

        while (p && *p) {
                const char *w, *eq;
                size_t len;
                struct mc_policy_setting *nv;

                while (*p == ' ' || *p == '\t' || *p == ',')
                        p++;
                if (!*p)
                        break;
                w = p;
                while (*p && *p != ' ' && *p != '\t' && *p != ',')
                        p++;
                len = (size_t) (p - w);
                eq = memchr(w, '=', len);
                if (!eq || eq == w) {
                        policy_settings_free(v, n);
                        return -EINVAL;
                }
                nv = realloc(v, sizeof(*v) * (n + 1));
                if (!nv) {
                        policy_settings_free(v, n);
                        return -ENOMEM;
                }
                v = nv;
                v[n].key = strndup(w, (size_t) (eq - w));
                v[n].value = strndup(eq + 1, (size_t) (w + len - eq - 1));
                n++;
                if (!v[n - 1].key || !v[n - 1].value) {
                        policy_settings_free(v, n);
                        return -ENOMEM;
                }
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

void policy_plugin_config_done(struct policy_plugin_config *p)
{
        free(p->name);
        policy_settings_free(p->settings, p->n_settings);
        *p = (struct policy_plugin_config) { 0 };
}

/**
 * instance_load() - load and initialise one plugin
 * Return: 0 or negative errno with @err filled
 */
static int instance_load(const char *dir, const struct policy_plugin_config *cfg, struct policy_instance *ret,
                         char *err, size_t err_len)
{
        char path[4096], perr[160] = "";
        const struct mc_policy_plugin *p;
        mc_policy_entry_fn entry;
        struct stat st;
        void *dl, *sym;
        int r;

        if (!cfg->name || strchr(cfg->name, '/') || cfg->name[0] == '.') {
                snprintf(err, err_len, "plugin name '%s' is not a plain name", cfg->name ? cfg->name : "");
                return -EINVAL;
        }
        snprintf(path, sizeof(path), "%s/%s.so", dir, cfg->name);
        if (stat(path, &st) < 0) {
                snprintf(err, err_len, "plugin %s: %s: %s", cfg->name, path, strerror(errno));
                return -ENOENT;
        }
        if (st.st_mode & S_IWOTH) {
                snprintf(err, err_len, "plugin %s: %s is writable by anyone; refusing to load it", cfg->name, path);
                return -EPERM;
        }
        dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
        if (!dl) {
                snprintf(err, err_len, "plugin %s: %s", cfg->name, dlerror());
                return -ELIBBAD;
        }
        sym = dlsym(dl, MC_POLICY_ENTRY);
        if (!sym) {
                snprintf(err, err_len, "plugin %s: %s has no symbol %s: not a memconvd policy plugin",
                         cfg->name, path, MC_POLICY_ENTRY);
                dlclose(dl);
                return -ELIBBAD;
        }
        memcpy(&entry, &sym, sizeof(entry));
        p = entry();
        if (!p || p->abi_version != MC_POLICY_ABI_VERSION || p->size < MC_POLICY_PLUGIN_SIZE_V1_0) {
                snprintf(err, err_len, "plugin %s: ABI version %u (size %u), memconvd needs version %u (size >= %zu)",
                         cfg->name, p ? p->abi_version : 0, p ? p->size : 0, MC_POLICY_ABI_VERSION,
                         (size_t) MC_POLICY_PLUGIN_SIZE_V1_0);
                dlclose(dl);
                return -ELIBBAD;
        }
        if (!p->name || strcmp(p->name, cfg->name) != 0 || !p->init || !p->done || !p->vm_set || !p->check ||
            !p->vm_gone || !p->describe) {
                snprintf(err, err_len, "plugin %s: calls itself '%s' or lacks an entry point", cfg->name,
                         p->name ? p->name : "");
                dlclose(dl);
                return -ELIBBAD;
        }
        r = p->init(cfg->settings, cfg->n_settings, &ret->state, perr, sizeof(perr));
        if (r < 0) {
                snprintf(err, err_len, "plugin %s: %s", cfg->name, perr[0] ? perr : strerror(-r));
                dlclose(dl);
                return r;
        }
        ret->name = strdup(cfg->name);
        ret->dl = dl;
        ret->p = p;
        if (!ret->name) {
                p->done(ret->state);
                dlclose(dl);
                return -ENOMEM;
        }
        return 0;
}

struct policy_chain *policy_chain_free(struct policy_chain *c)
{
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n; i++) {
                c->v[i].p->done(c->v[i].state);
                dlclose(c->v[i].dl);
                free(c->v[i].name);
        }
        free(c->v);
        free(c);
        return NULL;
}

int policy_chain_load(const char *dir, const struct policy_plugin_config *plugins, size_t n,
                      struct policy_chain **ret, char *err, size_t err_len)
{
        struct policy_chain *c = calloc(1, sizeof(*c));
        int r;

        if (!c || (n > 0 && !(c->v = calloc(n, sizeof(*c->v))))) {
                free(c);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                for (size_t j = 0; j < i; j++)
                        if (!strcmp(plugins[i].name, plugins[j].name)) {
                                snprintf(err, err_len, "plugin %s is listed twice", plugins[i].name);
                                policy_chain_free(c);
                                return -EEXIST;
                        }
                r = instance_load(dir, &plugins[i], &c->v[c->n], err, err_len);
                if (r < 0) {
                        policy_chain_free(c);
                        return r;
                }
                c->n++;
        }
        *ret = c;
        return 0;
}

size_t policy_chain_size(const struct policy_chain *c)
{
        return c ? c->n : 0;
}

void policy_chain_check(struct policy_chain *c, const struct mc_policy_request *req,
                        struct mc_policy_result *res, const char **ret_plugin)
{
        *res = (struct mc_policy_result) { .verdict = MC_POLICY_ALLOW };
        *ret_plugin = NULL;
        for (size_t i = 0; c && i < c->n; i++) {
                struct mc_policy_result r = { .verdict = MC_POLICY_ALLOW };

                c->v[i].p->check(c->v[i].state, req, &r);
                if (r.verdict == MC_POLICY_ALLOW)
                        continue;
                if (r.verdict > MC_POLICY_DELAY || (r.verdict == MC_POLICY_DELAY && r.delay_usec == 0)) {
                        /* A plugin that answers nonsense does not get to stall the guest. */
                        r.verdict = MC_POLICY_REFUSE;
                        snprintf(r.reason, sizeof(r.reason), "policy plugin %s gave an invalid verdict",
                                 c->v[i].name);
                }
                r.reason[sizeof(r.reason) - 1] = 0;
                *res = r;
                *ret_plugin = c->v[i].name;
                return;
        }
}

int policy_chain_vm_set(struct policy_chain *c, uint64_t vm_id, const char *plugin,
                        const struct mc_policy_setting *settings, size_t n, char *err, size_t err_len)
{
        for (size_t i = 0; c && i < c->n; i++)
                if (!strcmp(c->v[i].name, plugin))
                        return c->v[i].p->vm_set(c->v[i].state, vm_id, settings, n, err, err_len);
        snprintf(err, err_len, "no policy plugin '%s' is loaded", plugin);
        return -ENOENT;
}

void policy_chain_vm_gone(struct policy_chain *c, uint64_t vm_id)
{
        for (size_t i = 0; c && i < c->n; i++)
                c->v[i].p->vm_gone(c->v[i].state, vm_id);
}

/* The optional entry point @member of @p, or NULL when @p's struct is too old to have it. */
#define PLUGIN_OPTIONAL(p, member)                                                                 \
        ((p)->size >= offsetof(struct mc_policy_plugin, member) + sizeof((p)->member) ? (p)->member : NULL)

int policy_chain_attach(struct policy_chain *c, const struct mc_policy_vm *vm, char *err, size_t err_len,
                        const char **ret_plugin)
{
        *ret_plugin = NULL;
        for (size_t i = 0; c && i < c->n; i++) {
                int (*attach)(void *, const struct mc_policy_vm *, char *, size_t) = PLUGIN_OPTIONAL(c->v[i].p, attach);
                char why[256] = "";
                int r;

                if (!attach)
                        continue;
                r = attach(c->v[i].state, vm, why, sizeof(why));
                if (r >= 0)
                        continue;
                why[sizeof(why) - 1] = 0;
                snprintf(err, err_len, "%s", why[0] ? why : strerror(-r));
                *ret_plugin = c->v[i].name;
                return r;
        }
        return 0;
}

void policy_chain_label(struct policy_chain *c, const struct mc_policy_vm *vm, char *buf, size_t len)
{
        buf[0] = 0;
        for (size_t i = 0; c && i < c->n; i++) {
                void (*label)(void *, const struct mc_policy_vm *, char *, size_t) = PLUGIN_OPTIONAL(c->v[i].p, label);

                if (!label)
                        continue;
                label(c->v[i].state, vm, buf, len);
                buf[len - 1] = 0;
                if (buf[0])
                        return;
        }
}

int policy_chain_lease(struct policy_chain *c, const struct mc_policy_vm *vm, struct mc_policy_lease *lease,
                       char *err, size_t err_len)
{
        for (size_t i = 0; c && i < c->n; i++) {
                int (*fn)(void *, const struct mc_policy_vm *, struct mc_policy_lease *, char *, size_t) =
                        PLUGIN_OPTIONAL(c->v[i].p, lease);
                struct mc_policy_lease narrowed = *lease;
                char why[256] = "";
                int r;

                if (!fn) {
                        snprintf(err, err_len, "policy plugin %s does not support leases", c->v[i].name);
                        return -EOPNOTSUPP;
                }
                r = fn(c->v[i].state, vm, &narrowed, why, sizeof(why));
                if (r < 0) {
                        why[sizeof(why) - 1] = 0;
                        snprintf(err, err_len, "%s: %s", c->v[i].name, why[0] ? why : strerror(-r));
                        return r;
                }
                /* Plugins may only narrow what the ones before them left. */
                lease->implicit &= narrowed.implicit;
                lease->explicit_ &= narrowed.explicit_;
                if (narrowed.max_bytes < lease->max_bytes)
                        lease->max_bytes = narrowed.max_bytes & ~4095ULL;
#define NARROW_RATE(rate, burst)                                                                           \
                if (narrowed.rate && (!lease->rate || narrowed.rate < lease->rate))                        \
                        lease->rate = narrowed.rate;                                                       \
                if (narrowed.burst && (!lease->burst || narrowed.burst < lease->burst))                    \
                        lease->burst = narrowed.burst;
                NARROW_RATE(conversions_per_sec, conversions_burst)
                NARROW_RATE(bytes_per_sec, bytes_burst)
#undef NARROW_RATE
                if (!lease->implicit && !lease->explicit_) {
                        snprintf(err, err_len, "%s allows no conversion under a lease", c->v[i].name);
                        return -EPERM;
                }
                if (lease->max_bytes < 4096) {
                        snprintf(err, err_len, "%s allows no conversion size under a lease", c->v[i].name);
                        return -EPERM;
                }
        }
        return 0;
}

void policy_chain_describe(struct policy_chain *c, uint64_t vm_id, char *buf, size_t len)
{
        size_t off = 0;

        buf[0] = 0;
        for (size_t i = 0; c && i < c->n && off < len; i++) {
                char one[512] = "";

                c->v[i].p->describe(c->v[i].state, vm_id, one, sizeof(one));
                off += (size_t) snprintf(buf + off, len - off, "%s%s: %s", i ? "; " : "", c->v[i].name, one);
        }
}
