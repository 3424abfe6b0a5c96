/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuzz-domain-xml.c - fuzz target for domain_xml_parse(), the decoder of
 * the libvirt hook's input (the domain XML on its stdin) and of the XML
 * the libvirt plugin reads through lv-map.c.
 *
 * Invariants: success yields a canonical lower-case uuid, a name of
 * 1-DOMAIN_XML_NAME_MAX bytes without control characters, a known CcType
 * and a policy that is NULL or non-empty and within DOMAIN_XML_POLICY_MAX;
 * failure yields one of the documented errnos and a non-empty sentence.
 * Corpus: tests/fuzz/corpus/fuzz-domain-xml (the tests/libvirt/xml
 * fixtures).
 */
#include <errno.h>
#include <string.h>

#include "../fuzz/fuzz.h"
#include "domain-xml.h"

static void check_uuid(const char *u)
{
        FUZZ_CHECK(strlen(u) == 36);
        for (size_t i = 0; i < 36; i++) {
                if (i == 8 || i == 13 || i == 18 || i == 23)
                        FUZZ_CHECK(u[i] == '-');
                else
                        FUZZ_CHECK((u[i] >= '0' && u[i] <= '9') || (u[i] >= 'a' && u[i] <= 'f'));
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct domain_xml_error err = { .text = "" };
        struct domain_xml *d = NULL;
        int r;

        r = domain_xml_parse((const char *) data, size, &d, &err);
        if (r < 0) {
                FUZZ_CHECK(r == -EFBIG || r == -EBADMSG || r == -EINVAL || r == -EOPNOTSUPP || r == -ENOMEM);
                FUZZ_CHECK(!d);
                FUZZ_CHECK(err.text[0] != '\0');
                return 0;
        }
        FUZZ_CHECK(r == 0 && d);
        check_uuid(d->uuid);
        FUZZ_CHECK(d->name && d->name[0] && strlen(d->name) <= DOMAIN_XML_NAME_MAX);
        for (const char *p = d->name; *p; p++)
                FUZZ_CHECK((unsigned char) *p >= 0x20 && *p != 0x7f);
        FUZZ_CHECK(d->cc_type >= MEMCONV__CC_TYPE__CC_TYPE_NONE && d->cc_type <= MEMCONV__CC_TYPE__CC_TYPE_S390_PV);
        FUZZ_CHECK(!d->policy || (d->policy[0] && strlen(d->policy) <= DOMAIN_XML_POLICY_MAX));
        domain_xml_free(d);
        return 0;
}
