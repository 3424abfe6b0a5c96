/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * conffile.c - memconvd.conf and its drop-ins; see config.h.
 *
 * Format: "[Section]" lines, "Key=Value" lines, "#" or ";" comments, blank
 * lines. Values are taken verbatim after the '=' with surrounding blanks
 * trimmed. Every (section, key) memconvd knows is one row of config_table;
 * anything else is an error naming file:line, so a typo never silently
 * leaves a default in place. "[Plugin NAME]" sections hold a policy
 * plugin's own settings, which the plugin validates when it is loaded.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conffile.h"
#include "message.h"
#include "log.h"
#include "macro.h"
#include "policy.h"
#include "sandbox.h"

typedef int (*config_parser)(const char *value, void *dest, long min, long max);

struct config_item {
        const char *section;
        const char *key;
        config_parser parse;
        size_t offset;       /* in struct daemon_config */
        long min, max;
};

static int parse_string(const char *v, void *dest, long min, long max)
{
        char **p = dest, *s = strdup(v);

        if (!s)
                return -ENOMEM;
        if (!*s) {
                free(s);
                return -EINVAL;
        }
        free(*p);
        *p = s;
        return 0;
}

static int parse_bool(const char *v, void *dest, long min, long max)
{
        bool *b = dest;

        if (!strcasecmp(v, "yes") || !strcasecmp(v, "true") || !strcmp(v, "1") || !strcasecmp(v, "on"))
                *b = true;
        else if (!strcasecmp(v, "no") || !strcasecmp(v, "false") || !strcmp(v, "0") || !strcasecmp(v, "off"))
                *b = false;
        else
                return -EINVAL;
        return 0;
}

static int parse_number(const char *v, unsigned long long *ret, long min, long max)
{
        char *end;
        unsigned long long n;

        if (!*v || *v == '-')
                return -EINVAL;
        errno = 0;
        n = strtoull(v, &end, 10);
        if (errno || *end || n < (unsigned long long) min || n > (unsigned long long) max)
                return -ERANGE;
        *ret = n;
        return 0;
}

static int parse_unsigned(const char *v, void *dest, long min, long max)
{
        unsigned long long n;
        int r = parse_number(v, &n, min, max);

        if (r >= 0)
                *(unsigned *) dest = (unsigned) n;
        return r;
}

static int parse_u64(const char *v, void *dest, long min, long max)
{
        unsigned long long n;
        int r = parse_number(v, &n, min, max);

        if (r >= 0)
                *(uint64_t *) dest = n;
        return r;
}

static int parse_size(const char *v, void *dest, long min, long max)
{
        unsigned long long n;
        int r = parse_number(v, &n, min, max);

        if (r >= 0)
                *(size_t *) dest = (size_t) n;
        return r;
}

/**
 * parse_bytes() - a size in bytes with an optional K, M or G suffix (powers
 * of 1024), a multiple of 4096, into a uint64_t
 */
static int parse_bytes(const char *v, void *dest, long min, long max)
{
        static const struct {
                char suffix;
                unsigned shift;
        } units[] = { { 'K', 10 }, { 'M', 20 }, { 'G', 30 } };
        char num[32];
        size_t len = strlen(v);
        unsigned shift = 0;
        unsigned long long n;
        int r;

        if (len == 0 || len >= sizeof(num))
                return -EINVAL;
        memcpy(num, v, len + 1);
        for (size_t i = 0; i < ELEMENTSOF(units); i++)
                if (num[len - 1] == units[i].suffix) {
                        shift = units[i].shift;
                        num[--len] = 0;
                }
        r = parse_number(num, &n, 0, LONG_MAX);
        if (r < 0)
                return r;
        if (n > (unsigned long long) max >> shift || n << shift < (unsigned long long) min || (n << shift) % 4096)
                return -ERANGE;
        *(uint64_t *) dest = n << shift;
        return 0;
}

static int parse_msec(const char *v, void *dest, long min, long max)
{
        unsigned long long n;
        int r = parse_number(v, &n, min, max);

        if (r >= 0)
                *(uint64_t *) dest = n * 1000ULL;
        return r;
}

static int parse_level(const char *v, void *dest, long min, long max)
{
        int l = log_parse_level(v);

        if (l < 0)
                return -EINVAL;
        *(int *) dest = l;
        return 0;
}

static int parse_target(const char *v, void *dest, long min, long max)
{
        int t = log_parse_target(v);

        if (t < 0)
                return -EINVAL;
        *(int *) dest = t;
        return 0;
}

static int parse_syscall_filter(const char *v, void *dest, long min, long max)
{
        int m = sandbox_filter_from_string(v);

        if (m < 0)
                return -EINVAL;
        *(int *) dest = m;
        return 0;
}

static int parse_group(const char *v, void *dest, long min, long max)
{
        struct group *g = getgrnam(v);

        if (!g)
                return -ENOENT;
        *(gid_t *) dest = g->gr_gid;
        return 0;
}

/* A plugin is the file NAME.so in the plugin directory: a plain file name only. */
static bool plugin_name_valid(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > 64 || s[0] == '.')
                return false;
        return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == n;
}

/**
 * parse_plugins() - "a b c": the chain, replacing what Plugins= said before;
 * settings from [Plugin X] sections stay with their plugin either way
 */
static int parse_plugins(const char *v, void *dest, long min, long max)
{
        struct daemon_config *cfg = dest;
        struct policy_plugin_config *list = NULL, *nl;
        size_t n = 0;
        char *copy = strdup(v), *save = NULL;

        if (!copy)
                return -ENOMEM;
        for (char *w = strtok_r(copy, " \t,", &save); w; w = strtok_r(NULL, " \t,", &save)) {
                if (!plugin_name_valid(w)) {
                        free(copy);
                        for (size_t i = 0; i < n; i++)
                                policy_plugin_config_done(&list[i]);
                        free(list);
                        return -EINVAL;
                }
                nl = realloc(list, sizeof(*list) * (n + 1));
                if (!nl)
                        goto oom;
                list = nl;
                list[n] = (struct policy_plugin_config) { .name = strdup(w), .listed = true };
                if (!list[n++].name)
                        goto oom;
        }
        free(copy);
        copy = NULL;
        /* Carry settings over; keep unlisted entries that hold settings. */
        for (size_t j = 0; j < cfg->n_plugins; j++) {
                struct policy_plugin_config *old = &cfg->plugins[j];
                bool matched = false;

                for (size_t i = 0; i < n && !matched; i++)
                        if (!strcmp(list[i].name, old->name) && !list[i].settings) {
                                list[i].settings = TAKE_PTR(old->settings);
                                list[i].n_settings = old->n_settings;
                                old->n_settings = 0;
                                matched = true;
                        }
                if (matched || old->n_settings == 0)
                        continue;
                nl = realloc(list, sizeof(*list) * (n + 1));
                if (!nl)
                        goto oom;
                list = nl;
                list[n] = *old;
                list[n++].listed = false;
                *old = (struct policy_plugin_config) { 0 };
        }
        config_plugins_done(cfg);
        cfg->plugins = list;
        cfg->n_plugins = n;
        return 0;
oom:
        free(copy);
        for (size_t i = 0; i < n; i++)
                policy_plugin_config_done(&list[i]);
        free(list);
        return -ENOMEM;
}

#define CFG(field) offsetof(struct daemon_config, field)

static const struct config_item config_table[] = {
        { "Daemon", "LogLevel", parse_level, CFG(log_level), 0, 0 },
        { "Daemon", "LogTarget", parse_target, CFG(log_target), 0, 0 },
        { "Daemon", "DiscardThreads", parse_unsigned, CFG(discard_threads), 1, 64 },
        { "Daemon", "SummaryIntervalMSec", parse_msec, CFG(summary_interval_usec), 10, 3600000 },
        { "Daemon", "PollUSec", parse_u64, CFG(poll_usec), 0, MC_SPIN_MAX_USEC_LIMIT },
        { "Daemon", "RequestRing", parse_bool, CFG(ring), 0, 0 },
        { "Daemon", "SystemCallFilter", parse_syscall_filter, CFG(syscall_filter), 0, 0 },
        { "Sockets", "VMMSocket", parse_string, CFG(vmm_socket_path), 0, 0 },
        { "Sockets", "AdminSocket", parse_string, CFG(admin_socket_path), 0, 0 },
        { "Sockets", "VMMGroup", parse_group, CFG(vmm_group), 0, 0 },
        { "Sockets", "AdminGroup", parse_group, CFG(admin_group), 0, 0 },
        { "Journal", "StateDirectory", parse_string, CFG(state_dir), 0, 0 },
        { "Journal", "Journal", parse_bool, CFG(journal), 0, 0 },
        { "Journal", "CompactRecords", parse_u64, CFG(journal_compact), 16, 100000000 },
        { "Journal", "CommitIntervalMSec", parse_msec, CFG(journal_commit_interval_usec), 0, 1000 },
        { "Journal", "HistoryRecords", parse_size, CFG(history_records), 16, 10000000 },
        { "Policy", "PluginDirectory", parse_string, CFG(plugin_dir), 0, 0 },
        { "Policy", "Plugins", parse_plugins, 0, 0, 0 },
        { "Policy", "RequireRegistration", parse_bool, CFG(require_registration), 0, 0 },
        { "Policy", "Leases", parse_bool, CFG(leases), 0, 0 },
        { "Policy", "LeaseMaxBytes", parse_bytes, CFG(lease_max_bytes), 4096, 1L << 40 },
        { "Policy", "LeaseReportDelayUSec", parse_u64, CFG(lease_report_delay_usec), 0,
          MC_LEASE_REPORT_DELAY_MAX_USEC },
        { "Limits", "VMsPerUID", parse_unsigned, CFG(max_vms_per_uid), 1, 1000000 },
        { "Limits", "RegionsPerVM", parse_unsigned, CFG(max_regions_per_vm), 1, 65536 },
        { "Limits", "RequestsPerVM", parse_unsigned, CFG(max_requests_per_vm), 1, 1000000 },
};

void config_plugins_done(struct daemon_config *cfg)
{
        for (size_t i = 0; i < cfg->n_plugins; i++)
                policy_plugin_config_done(&cfg->plugins[i]);
        free(cfg->plugins);
        cfg->plugins = NULL;
        cfg->n_plugins = 0;
}

void config_done(struct daemon_config *cfg)
{
        free(cfg->vmm_socket_path);
        free(cfg->admin_socket_path);
        free(cfg->state_dir);
        free(cfg->plugin_dir);
        free(cfg->config_file);
        config_plugins_done(cfg);
}

/**
 * plugin_setting_set() - KEY=VALUE in [Plugin NAME]: kept for the plugin,
 * which validates it when loaded; a plugin not listed in Plugins= yet is
 * remembered in case a later line lists it
 */
static int plugin_setting_set(struct daemon_config *cfg, const char *plugin, const char *key, const char *value)
{
        struct policy_plugin_config *p = NULL;
        struct mc_policy_setting *ns;

        for (size_t i = 0; i < cfg->n_plugins; i++)
                if (!strcmp(cfg->plugins[i].name, plugin))
                        p = &cfg->plugins[i];
        if (!p) {
                /* Settings before Plugins=: keep an entry; Plugins= picks it up or drops it. */
                struct policy_plugin_config *nl = realloc(cfg->plugins, sizeof(*nl) * (cfg->n_plugins + 1));

                if (!nl)
                        return -ENOMEM;
                cfg->plugins = nl;
                p = &nl[cfg->n_plugins++];
                *p = (struct policy_plugin_config) { .name = strdup(plugin) };
                if (!p->name)
                        return -ENOMEM;
                p->n_settings = 0;
        }
        for (size_t i = 0; i < p->n_settings; i++)
                if (!strcmp(p->settings[i].key, key)) {
                        char *v = strdup(value);

                        if (!v)
                                return -ENOMEM;
                        free((char *) p->settings[i].value);
                        p->settings[i].value = v;
                        return 0;
                }
        ns = realloc(p->settings, sizeof(*ns) * (p->n_settings + 1));
        if (!ns)
                return -ENOMEM;
        p->settings = ns;
        ns[p->n_settings].key = strdup(key);
        ns[p->n_settings].value = strdup(value);
        p->n_settings++;
        return ns[p->n_settings - 1].key && ns[p->n_settings - 1].value ? 0 : -ENOMEM;
}

static char *trim(char *s)
{
        char *e;

        while (*s == ' ' || *s == '\t')
                s++;
        e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r'))
                *--e = 0;
        return s;
}

/**
 * config_parse_file() - apply one file
 * Return: 0, -ENOENT when missing (the caller decides), or -EINVAL (logged)
 */
static int config_parse_file(struct daemon_config *cfg, const char *path)
{
        char section[128] = "", line[4096];
        unsigned lineno = 0;
        FILE *f = fopen(path, "re");
        int r = 0;

        if (!f)
                return negative_errno();
        while (fgets(line, sizeof(line), f)) {
                char *l = trim(line), *eq, *key, *value;
                const struct config_item *item = NULL;

                lineno++;
                if (!*l || *l == '#' || *l == ';')
                        continue;
                if (*l == '[') {
                        char *end = strchr(l, ']');

                        if (!end || end[1] || end - l - 1 >= (long) sizeof(section)) {
                                log_error("%s:%u: malformed section header '%s'", path, lineno, l);
                                r = -EINVAL;
                                break;
                        }
                        *end = 0;
                        snprintf(section, sizeof(section), "%s", l + 1);
                        if (strncmp(section, "Plugin ", 7) != 0 && strcmp(section, "Daemon") && strcmp(section, "Sockets") &&
                            strcmp(section, "Journal") && strcmp(section, "Policy") && strcmp(section, "Limits")) {
                                log_error("%s:%u: unknown section [%s] (Daemon, Sockets, Journal, Policy, Limits, Plugin NAME)",
                                          path, lineno, section);
                                r = -EINVAL;
                                break;
                        }
                        if (!strncmp(section, "Plugin ", 7) && !plugin_name_valid(section + 7)) {
                                log_error("%s:%u: [%s]: a plugin name is 1-64 letters, digits, '_', '.' or '-', "
                                          "not starting with '.'", path, lineno, section);
                                r = -EINVAL;
                                break;
                        }
                        continue;
                }
                eq = strchr(l, '=');
                if (!eq) {
                        log_error("%s:%u: expected KEY=VALUE, got '%s'", path, lineno, l);
                        r = -EINVAL;
                        break;
                }
                *eq = 0;
                key = trim(l);
                value = trim(eq + 1);
                if (!*key) {
                        log_error("%s:%u: '=%s' has no key", path, lineno, value);
                        r = -EINVAL;
                        break;
                }
                if (!section[0]) {
                        log_error("%s:%u: %s= outside any section", path, lineno, key);
                        r = -EINVAL;
                        break;
                }
                if (!strncmp(section, "Plugin ", 7)) {
                        r = plugin_setting_set(cfg, trim(section + 7), key, value);
                        if (r < 0)
                                break;
                        continue;
                }
                for (size_t i = 0; i < ELEMENTSOF(config_table); i++)
                        if (!strcmp(config_table[i].section, section) && !strcmp(config_table[i].key, key))
                                item = &config_table[i];
                if (!item) {
                        log_error("%s:%u: unknown key %s= in section [%s]", path, lineno, key, section);
                        r = -EINVAL;
                        break;
                }
                r = item->parse(value, item->parse == parse_plugins ? (void *) cfg : (char *) cfg + item->offset,
                                item->min, item->max);
                if (r < 0) {
                        if (r == -ERANGE)
                                log_error("%s:%u: %s=%s is out of range (%ld..%ld)", path, lineno, key, value,
                                          item->min, item->max);
                        else if (r == -ENOENT)
                                log_error("%s:%u: %s=%s: no such group", path, lineno, key, value);
                        else
                                log_error("%s:%u: invalid value for %s=: '%s'", path, lineno, key, value);
                        r = r == -ENOMEM ? r : -EINVAL;
                        break;
                }
        }
        fclose(f);
        return r;
}

static int dropin_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *) a, *(char *const *) b);
}

int config_load(struct daemon_config *cfg, const char *path, bool must_exist)
{
        char dir[4096];
        char **names = NULL;
        size_t n = 0;
        struct dirent *de;
        DIR *d;
        int r;

        r = config_parse_file(cfg, path);
        if (r == -ENOENT && !must_exist)
                r = 0;
        else if (r == -ENOENT)
                return log_error_errno(r, "Configuration file %s", path);
        else if (r < 0 && r != -EINVAL)
                return log_error_errno(r, "Cannot read %s", path);
        if (r < 0)
                return r;

        snprintf(dir, sizeof(dir), "%s.d", path);
        d = opendir(dir);
        if (!d)
                goto done;
        while ((de = readdir(d))) {
                size_t l = strlen(de->d_name);
                char **nn;

                if (l < 6 || strcmp(de->d_name + l - 5, ".conf") || de->d_name[0] == '.')
                        continue;
                nn = realloc(names, sizeof(*names) * (n + 1));
                if (!nn || !(nn[n] = strdup(de->d_name))) {
                        free(nn ? nn : names);
                        closedir(d);
                        return -ENOMEM;
                }
                names = nn;
                n++;
        }
        closedir(d);
        qsort(names, n, sizeof(*names), dropin_cmp);
        for (size_t i = 0; i < n && r >= 0; i++) {
                char p[8192];

                snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
                r = config_parse_file(cfg, p);
                if (r < 0 && r != -EINVAL)
                        log_error_errno(r, "Cannot read %s", p);
        }
        for (size_t i = 0; i < n; i++)
                free(names[i]);
        free(names);
        if (r < 0)
                return r;
done:
        /* Settings for a plugin Plugins= does not list are most likely a typo: stop. */
        for (size_t i = 0; i < cfg->n_plugins; i++)
                if (!cfg->plugins[i].listed) {
                        log_error("%s: [Plugin %s] has settings, but Plugins= does not list %s",
                                  path, cfg->plugins[i].name, cfg->plugins[i].name);
                        return -EINVAL;
                }
        return 0;
}
