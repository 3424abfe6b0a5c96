/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * lv-map.c - walk a libvirt connection's domains read-only; see lv-map.h.
 *
 * For each domain: virDomainGetUUIDString(), virDomainGetName(),
 * virDomainGetID() and virDomainIsActive(), then virDomainGetXMLDesc(0)
 * parsed by domain-xml.c for the launchSecurity type and the memconvd
 * policy, so the hook and the plugin read a domain's XML the same way.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "domain-xml.h"
#include "lv-map.h"
#include "macro.h"

/**
 * quiet_error() - a libvirt error handler that prints nothing: errors are
 * read back with virGetLastError() instead
 */
static void quiet_error(void *userdata, virErrorPtr error)
{
}

/**
 * last_error() - "@what: libvirt's last error" into @buf
 */
static void last_error(char *buf, size_t n, const char *what)
{
        virErrorPtr e = virGetLastError();

        snprintf(buf, n, "%s: %s", what, e && e->message ? e->message : "unknown libvirt error");
}

/**
 * set_error() - fill @err (may be NULL) from libvirt's last error
 * Return: @error
 */
static int set_error(struct lv_map_error *err, int error, const char *what)
{
        if (err)
                last_error(err->text, sizeof(err->text), what);
        return error;
}

static void conn_closep(virConnectPtr *c)
{
        if (*c)
                (void) virConnectClose(*c);
}

struct domain_list {
        virDomainPtr *doms;
        int n;
};

static void domain_list_free(struct domain_list *l)
{
        for (int i = 0; i < l->n; i++)
                virDomainFree(l->doms[i]);
        free(l->doms);
}

static void xml_freep(struct domain_xml **x)
{
        domain_xml_free(*x);
}

/**
 * map_one() - build the lv_domain of @dom and hand it to @fn
 * Return: @fn's return, or a negative errno when the uuid or name cannot
 * be read (the domain vanished) - then the domain is skipped with 0
 */
static int map_one(virDomainPtr dom, lv_map_fn fn, void *userdata)
{
        char uuid[VIR_UUID_STRING_BUFLEN];
        _cleanup_(xml_freep) struct domain_xml *x = NULL;
        _cleanup_free_ char *xml = NULL;
        struct domain_xml_error xerr = { .text = "" };
        struct lv_domain d = { .cc_type = MEMCONV__CC_TYPE__CC_TYPE_NONE };
        unsigned id;
        int active, r;

        if (virDomainGetUUIDString(dom, uuid) < 0)
                return 0;
        d.uuid = uuid;
        d.name = virDomainGetName(dom);
        if (!d.name)
                return 0;
        active = virDomainIsActive(dom);
        d.active = active > 0;
        id = virDomainGetID(dom);
        d.id = d.active && id != (unsigned) -1 ? (int) id : -1;

        xml = virDomainGetXMLDesc(dom, 0);
        if (!xml) {
                d.xml_error = -EIO;
                last_error(xerr.text, sizeof(xerr.text), "cannot read the domain XML");
        } else {
                r = domain_xml_parse(xml, strlen(xml), &x, &xerr);
                if (r < 0)
                        d.xml_error = r;
                else {
                        d.cc_type = x->cc_type;
                        d.policy = x->policy;
                }
        }
        d.xml_error_text = d.xml_error ? xerr.text : NULL;
        return fn(&d, userdata);
}

int lv_map_domains(const char *uri, lv_map_fn fn, void *userdata, struct lv_map_error *ret_err)
{
        _cleanup_(conn_closep) virConnectPtr conn = NULL;
        struct domain_list list = { 0 };
        int r = 0;

        conn = virConnectOpenReadOnly(uri);
        if (!conn)
                return set_error(ret_err, -ECONNREFUSED, "cannot open a read-only libvirt connection");
        virConnSetErrorFunc(conn, NULL, quiet_error);
        list.n = virConnectListAllDomains(conn, &list.doms, 0);
        if (list.n < 0) {
                list.n = 0;
                return set_error(ret_err, -EIO, "cannot list the libvirt domains");
        }
        for (int i = 0; i < list.n && r == 0; i++)
                r = map_one(list.doms[i], fn, userdata);
        domain_list_free(&list);
        return r < 0 ? r : 0;
}
