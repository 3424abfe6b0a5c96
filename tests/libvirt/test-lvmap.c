/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-lvmap.c - lv_map_domains() against a real libvirt connection:
 * libvirt's own test driver, "test:///default", which runs inside the
 * process (no libvirtd needed) and starts with one running domain, "test",
 * uuid 6695eb01-f6a4-8304-79aa-97f2502e193f.
 *
 * The test:///default state is shared by every connection of the process
 * while one is open, so the suite holds a read-write connection for its
 * whole run and uses it to define domains and set metadata (as virsh
 * would) that lv_map_domains()'s own read-only connection must then see.
 */
#include <errno.h>
#include <string.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>

#include "../unit/test-util.h"
#include "domain-xml.h"
#include "lv-map.h"
#include "macro.h"

#define TEST_URI "test:///default"
#define TEST_UUID "6695eb01-f6a4-8304-79aa-97f2502e193f"
#define SEV_UUID "2f8a6c0e-3b1d-4c57-9f0a-6d4e8b2c1a93"
#define BAD_UUID "6e1f4a9c-2b7d-4f3e-8a5c-9d0b1e2f3a4c"

static virConnectPtr rw;

#define MAX_SEEN 16
struct seen {
        unsigned n;
        struct {
                char uuid[37];
                char name[64];
                int id;
                bool active;
                Memconv__CcType cc_type;
                char policy[128];
                bool has_policy;
                int xml_error;
                char xml_error_text[256];
        } d[MAX_SEEN];
        int stop_after;   /* 0: never; else return this once n reaches stop_at */
        unsigned stop_at;
};

static void quiet(void *userdata, virErrorPtr e)
{
}

static int collect(const struct lv_domain *d, void *userdata)
{
        struct seen *s = userdata;

        CU_ASSERT_FATAL(s->n < MAX_SEEN);
        snprintf(s->d[s->n].uuid, sizeof(s->d[s->n].uuid), "%s", d->uuid);
        snprintf(s->d[s->n].name, sizeof(s->d[s->n].name), "%s", d->name);
        s->d[s->n].id = d->id;
        s->d[s->n].active = d->active;
        s->d[s->n].cc_type = d->cc_type;
        s->d[s->n].has_policy = d->policy != NULL;
        snprintf(s->d[s->n].policy, sizeof(s->d[s->n].policy), "%s", d->policy ? d->policy : "");
        s->d[s->n].xml_error = d->xml_error;
        snprintf(s->d[s->n].xml_error_text, sizeof(s->d[s->n].xml_error_text), "%s",
                 d->xml_error_text ? d->xml_error_text : "");
        s->n++;
        if (s->stop_after && s->n == s->stop_at)
                return s->stop_after;
        return 0;
}

static int find(const struct seen *s, const char *uuid)
{
        for (unsigned i = 0; i < s->n; i++)
                if (strcmp(s->d[i].uuid, uuid) == 0)
                        return (int) i;
        return -1;
}

static int suite_init(void)
{
        virSetErrorFunc(NULL, quiet);
        rw = virConnectOpen(TEST_URI);
        return rw ? 0 : -1;
}

static int suite_cleanup(void)
{
        if (rw)
                virConnectClose(rw);
        return 0;
}

/* The test driver's built-in running domain "test" is found as it is. */
static void test_default_domain(void)
{
        struct seen s = { 0 };
        struct lv_map_error err = { .text = "" };
        int i;

        CU_ASSERT_EQUAL_FATAL(lv_map_domains(TEST_URI, collect, &s, &err), 0);
        i = find(&s, TEST_UUID);
        CU_ASSERT_FATAL(i >= 0);
        CU_ASSERT_STRING_EQUAL(s.d[i].name, "test");
        CU_ASSERT_TRUE(s.d[i].active);
        CU_ASSERT_TRUE(s.d[i].id > 0);
        CU_ASSERT_EQUAL(s.d[i].cc_type, MEMCONV__CC_TYPE__CC_TYPE_NONE);
        CU_ASSERT_FALSE(s.d[i].has_policy);
        CU_ASSERT_EQUAL(s.d[i].xml_error, 0);
}

/*
 * A policy set with virDomainSetMetadata() under memconvd's namespace - what
 * `virsh metadata test URI --key memconvd --set '<policy>...</policy>'`
 * does - is what the read-only walk reports.
 */
static void test_metadata_policy(void)
{
        virDomainPtr dom = virDomainLookupByName(rw, "test");
        struct seen s = { 0 };
        int i;

        CU_ASSERT_PTR_NOT_NULL_FATAL(dom);
        CU_ASSERT_EQUAL_FATAL(virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
                                                   "<policy>\n  implicit-conversions=refuse\n</policy>", "memconvd",
                                                   DOMAIN_XML_NS, VIR_DOMAIN_AFFECT_LIVE), 0);
        CU_ASSERT_EQUAL_FATAL(lv_map_domains(TEST_URI, collect, &s, NULL), 0);
        i = find(&s, TEST_UUID);
        CU_ASSERT_FATAL(i >= 0);
        CU_ASSERT_TRUE(s.d[i].has_policy);
        CU_ASSERT_STRING_EQUAL(s.d[i].policy, "implicit-conversions=refuse");

        /* Removing it removes the policy. */
        CU_ASSERT_EQUAL(virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, NULL, NULL, DOMAIN_XML_NS,
                                             VIR_DOMAIN_AFFECT_LIVE), 0);
        s.n = 0;
        CU_ASSERT_EQUAL_FATAL(lv_map_domains(TEST_URI, collect, &s, NULL), 0);
        i = find(&s, TEST_UUID);
        CU_ASSERT_FATAL(i >= 0);
        CU_ASSERT_FALSE(s.d[i].has_policy);
        virDomainFree(dom);
}

/* A defined (not running) SEV domain with a policy, and one whose memconvd
 * metadata is broken: both are reported, the broken one with its error. */
static void test_defined_domains(void)
{
        static const char sev_xml[] =
                "<domain type='test'><name>sev-guest</name><uuid>" SEV_UUID "</uuid>"
                "<metadata><memconvd:policy xmlns:memconvd='" DOMAIN_XML_NS "'>rate=10/s</memconvd:policy></metadata>"
                "<memory>1048576</memory><os><type>hvm</type></os>"
                "<launchSecurity type='sev'><cbitpos>47</cbitpos><reducedPhysBits>1</reducedPhysBits>"
                "<policy>0x0007</policy></launchSecurity></domain>";
        static const char bad_xml[] =
                "<domain type='test'><name>typo-guest</name><uuid>" BAD_UUID "</uuid>"
                "<metadata><memconvd:polcy xmlns:memconvd='" DOMAIN_XML_NS "'>x</memconvd:polcy></metadata>"
                "<memory>1048576</memory><os><type>hvm</type></os></domain>";
        virDomainPtr sev = virDomainDefineXML(rw, sev_xml);
        virDomainPtr bad = virDomainDefineXML(rw, bad_xml);
        struct seen s = { 0 };
        int i;

        CU_ASSERT_PTR_NOT_NULL_FATAL(sev);
        CU_ASSERT_PTR_NOT_NULL_FATAL(bad);
        CU_ASSERT_EQUAL_FATAL(lv_map_domains(TEST_URI, collect, &s, NULL), 0);
        CU_ASSERT(s.n >= 3);

        i = find(&s, SEV_UUID);
        CU_ASSERT_FATAL(i >= 0);
        CU_ASSERT_STRING_EQUAL(s.d[i].name, "sev-guest");
        CU_ASSERT_FALSE(s.d[i].active);
        CU_ASSERT_EQUAL(s.d[i].id, -1);
        CU_ASSERT_EQUAL(s.d[i].cc_type, MEMCONV__CC_TYPE__CC_TYPE_SEV_ES);  /* policy bit 2 */
        CU_ASSERT_STRING_EQUAL(s.d[i].policy, "rate=10/s");
        CU_ASSERT_EQUAL(s.d[i].xml_error, 0);

        i = find(&s, BAD_UUID);
        CU_ASSERT_FATAL(i >= 0);
        CU_ASSERT_STRING_EQUAL(s.d[i].name, "typo-guest");
        CU_ASSERT_EQUAL(s.d[i].xml_error, -EOPNOTSUPP);
        CU_ASSERT_PTR_NOT_NULL(strstr(s.d[i].xml_error_text, "polcy"));
        CU_ASSERT_FALSE(s.d[i].has_policy);

        /* Still found by the built-in one after the others were added. */
        CU_ASSERT(find(&s, TEST_UUID) >= 0);

        CU_ASSERT_EQUAL(virDomainUndefine(sev), 0);
        CU_ASSERT_EQUAL(virDomainUndefine(bad), 0);
        virDomainFree(sev);
        virDomainFree(bad);
        s.n = 0;
        CU_ASSERT_EQUAL_FATAL(lv_map_domains(TEST_URI, collect, &s, NULL), 0);
        CU_ASSERT_EQUAL(find(&s, SEV_UUID), -1);
        CU_ASSERT_EQUAL(find(&s, BAD_UUID), -1);
}

/* The callback ends the walk: > 0 is success, < 0 is returned as is. */
static void test_callback_stops(void)
{
        struct seen s = { .stop_after = 1, .stop_at = 1 };

        CU_ASSERT_EQUAL(lv_map_domains(TEST_URI, collect, &s, NULL), 0);
        CU_ASSERT_EQUAL(s.n, 1);
        s = (struct seen) { .stop_after = -ECANCELED, .stop_at = 1 };
        CU_ASSERT_EQUAL(lv_map_domains(TEST_URI, collect, &s, NULL), -ECANCELED);
        CU_ASSERT_EQUAL(s.n, 1);
}

/* A URI libvirt cannot open: -ECONNREFUSED and libvirt's reason. */
static void test_bad_uri(void)
{
        struct seen s = { 0 };
        struct lv_map_error err = { .text = "" };

        CU_ASSERT_EQUAL(lv_map_domains("memconvd-bogus:///nowhere", collect, &s, &err),
                        -ECONNREFUSED);
        CU_ASSERT_EQUAL(s.n, 0);
        CU_ASSERT_PTR_NOT_NULL(strstr(err.text, "cannot open a read-only libvirt connection: "));
        CU_ASSERT(strlen(err.text) > strlen("cannot open a read-only libvirt connection: "));
}

int main(void)
{
        static const struct mc_test tests[] = {
                { "default domain", test_default_domain },
                { "metadata policy", test_metadata_policy },
                { "defined domains", test_defined_domains },
                { "callback stops", test_callback_stops },
                { "bad uri", test_bad_uri },
        };

        return mc_test_run("lv-map", suite_init, suite_cleanup, tests, ELEMENTSOF(tests));
}
