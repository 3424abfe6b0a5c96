/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * conffile.h - memconvd.conf: parsed from one table of (section, key,
 * parser, destination), systemd style. See memconvd.conf(5).
 */
#pragma once

#include "daemon.h"

/**
 * config_load() - read @path, then @path.d/ *.conf in name order, into @cfg
 * @must_exist: an explicitly given file must exist (the default need not)
 *
 * Later files override earlier ones key by key; "Plugins=" replaces the list.
 * Every error names the file, the line and the key, and is logged.
 * Return: 0 or -EINVAL / -ENOMEM / -errno of open()
 */
int config_load(struct daemon_config *cfg, const char *path, bool must_exist);

/** config_done() - free what a daemon_config owns */
void config_done(struct daemon_config *cfg);

/** config_plugins_done() - free the plugin list of @cfg */
void config_plugins_done(struct daemon_config *cfg);
