/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * lv-map.h - which libvirt domain is which VM: a read-only walk over a
 * libvirt connection's domains, for the libvirt plugin (memconvctl list
 * shows a VM's domain; the policy comes from the domain XML's <metadata>).
 *
 * The connection is opened read-only (virConnectOpenReadOnly), used for
 * one walk and closed: the caller holds no libvirt state between calls.
 * Every call is synchronous and may take as long as libvirtd takes to
 * answer: a daemon calls it from a worker thread, never from its event
 * loop, and never from a libvirt hook (libvirt waits for its hooks: a
 * deadlock).
 *
 * libvirt reports errors through a process-wide handler that prints to
 * stderr by default; this module silences it on its own connection, but
 * an error while opening the connection goes to the process-wide handler,
 * so a daemon sets that once (virSetErrorFunc()) at start-up. The text of
 * libvirt's error comes back in @ret_err either way.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "memconv.pb-c.h"

#define LV_MAP_ERROR_MAX 256U

/* One domain, as the callback sees it; every pointer is borrowed for the call. */
struct lv_domain {
        const char *uuid;           /* canonical, lower case */
        const char *name;
        int id;                     /* libvirt's domain id; -1 when not running */
        bool active;
        Memconv__CcType cc_type;    /* from <launchSecurity>; NONE if xml_error */
        const char *policy;         /* <memconvd:policy> text, or NULL */
        int xml_error;              /* 0, or why the XML could not be read (negative errno) */
        const char *xml_error_text; /* NULL, or one sentence saying so */
};

/**
 * lv_map_fn - called once per domain
 * Return: 0 to go on, > 0 to stop the walk successfully (found it),
 * negative errno to stop it and make lv_map_domains() return that.
 */
typedef int (*lv_map_fn)(const struct lv_domain *d, void *userdata);

struct lv_map_error {
        char text[LV_MAP_ERROR_MAX];
};

/**
 * lv_map_domains() - call @fn for every domain of @uri, running or not
 * @uri: a libvirt URI, e.g. "qemu:///system" or "test:///default"; NULL
 *       lets libvirt choose its default
 * @fn: the callback
 * @userdata: passed to @fn
 * @ret_err: on failure, libvirt's reason; may be NULL
 *
 * A domain whose XML cannot be fetched or parsed is still reported, with
 * xml_error set (it may have gone away during the walk, or carry a broken
 * policy): one bad domain does not hide the others.
 *
 * Return: 0 (also when @fn stopped the walk with a positive value);
 * -ECONNREFUSED the connection could not be opened; -EIO listing the
 * domains failed; -ENOMEM; or @fn's negative return.
 */
int lv_map_domains(const char *uri, lv_map_fn fn, void *userdata, struct lv_map_error *ret_err);
