/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * policy.h - the policy chain: plugins loaded with dlopen() through the
 * versioned ABI of plugins/memconv-policy.h, asked in configured order
 * about every conversion that would change memory.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "memconv-policy.h"

struct vm;

/* One plugin as configured: its name and its section's settings. */
struct policy_plugin_config {
        char *name;                        /* owned */
        struct mc_policy_setting *settings; /* owned, keys/values owned */
        size_t n_settings;
        bool listed;                       /* named by Plugins= (else: settings only) */
};

struct policy_chain;

/**
 * policy_chain_load() - load @n plugins from @dir, in order
 * @err: what failed (plugin, file, symbol, ABI version, its settings)
 * Return: 0 or negative errno; nothing stays loaded on failure
 */
int policy_chain_load(const char *dir, const struct policy_plugin_config *plugins, size_t n,
                      struct policy_chain **ret, char *err, size_t err_len);

/** policy_chain_free() - call every plugin's done(), dlclose; accepts NULL */
struct policy_chain *policy_chain_free(struct policy_chain *c);

/** policy_chain_size() - how many plugins are loaded */
size_t policy_chain_size(const struct policy_chain *c);

/**
 * policy_chain_check() - ask every plugin in order; the first verdict that
 * is not ALLOW decides
 * @ret_plugin: the deciding plugin's name (NULL when allowed)
 */
void policy_chain_check(struct policy_chain *c, const struct mc_policy_request *req,
                        struct mc_policy_result *res, const char **ret_plugin);

/**
 * policy_chain_vm_set() - per-VM settings for one plugin
 * Return: 0, -ENOENT (no such plugin loaded), or the plugin's error (@err)
 */
int policy_chain_vm_set(struct policy_chain *c, uint64_t vm_id, const char *plugin,
                        const struct mc_policy_setting *settings, size_t n, char *err, size_t err_len);

/**
 * policy_chain_attach() - ask every plugin with an attach() entry point
 * whether a new instance of @vm may attach; the first refusal decides
 * @err: the refusing plugin's reason
 * @ret_plugin: the refusing plugin's name (NULL when allowed)
 * Return: 0 (allowed) or the plugin's negative errno
 */
int policy_chain_attach(struct policy_chain *c, const struct mc_policy_vm *vm, char *err, size_t err_len,
                        const char **ret_plugin);

/**
 * policy_chain_label() - the first non-empty label() of the chain for @vm
 * (e.g. its libvirt domain), or "" in @buf
 */
void policy_chain_label(struct policy_chain *c, const struct mc_policy_vm *vm, char *buf, size_t len);

/**
 * policy_chain_lease() - narrow @lease through every plugin's lease()
 * @err: why no lease (a plugin without lease(), or its refusal)
 * Return: 0 (@lease holds the terms) or negative errno
 */
int policy_chain_lease(struct policy_chain *c, const struct mc_policy_vm *vm, struct mc_policy_lease *lease,
                       char *err, size_t err_len);

/** policy_chain_vm_gone() - tell every plugin @vm_id is forgotten */
void policy_chain_vm_gone(struct policy_chain *c, uint64_t vm_id);

/**
 * policy_chain_describe() - "plugin: key=value ...; plugin: ..." for @vm_id
 */
void policy_chain_describe(struct policy_chain *c, uint64_t vm_id, char *buf, size_t len);

/** policy_plugin_config_done() - free one plugin configuration's contents */
void policy_plugin_config_done(struct policy_plugin_config *p);

/**
 * policy_settings_parse() - "key=value key=value" into settings (owned
 * strings, free with policy_settings_free())
 * Return: 0 or -EINVAL (a word without '=') / -ENOMEM
 */
int policy_settings_parse(const char *text, struct mc_policy_setting **ret, size_t *ret_n);
void policy_settings_free(struct mc_policy_setting *s, size_t n);
