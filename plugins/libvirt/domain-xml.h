/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * domain-xml.h - what memconvd needs from a libvirt domain XML document:
 * the domain's uuid and name, its confidential-computing type (from
 * <launchSecurity>), and its memconvd policy (from <metadata>).
 *
 * The policy lives in the domain's <metadata> under memconvd's own XML
 * namespace, DOMAIN_XML_NS, as the text of one element named "policy":
 *
 *   <metadata>
 *     <memconvd:policy xmlns:memconvd="http://memconvd.org/schemas/domain/1.0">
 *       implicit=refuse
 *     </memconvd:policy>
 *   </metadata>
 *
 * (`virsh metadata DOMAIN http://memconvd.org/schemas/domain/1.0 --key
 * memconvd --set '<policy>...</policy>'` writes exactly that.) The prefix
 * is free; the namespace URI is what counts. This module passes the text on
 * unchanged apart from trimming surrounding white space: the daemon parses
 * the policy. Any other element in the namespace is refused, so that a typo
 * cannot silently leave a domain without its policy.
 *
 * The parser is strict and bounded: at most DOMAIN_XML_MAX bytes, no DTD
 * (libvirt never writes one, and refusing it rules out entity expansion and
 * external entities), no network access, exactly one <uuid> and <name>.
 * It never logs: a failure comes back as a negative errno plus a sentence
 * for the caller to print.
 */
#pragma once

#include <stddef.h>

#include "memconv.pb-c.h"

/* memconvd's XML namespace in libvirt domain <metadata>. */
#define DOMAIN_XML_NS "http://memconvd.org/schemas/domain/1.0"
/* The element that holds the policy text, in DOMAIN_XML_NS. */
#define DOMAIN_XML_POLICY_ELEMENT "policy"

/* libvirt refuses XML files over 10 MiB; so does this parser. */
#define DOMAIN_XML_MAX (10U * 1024U * 1024U)
/* Policy text, after trimming. */
#define DOMAIN_XML_POLICY_MAX (16U * 1024U)
/* Domain names, as memconvd's protocol allows (MC_NAME_MAX). */
#define DOMAIN_XML_NAME_MAX 255U
#define DOMAIN_XML_ERROR_MAX 256U

struct domain_xml {
        char uuid[37];                /* canonical 8-4-4-4-12, lower case */
        char *name;                   /* owned */
        Memconv__CcType cc_type;
        char *policy;                 /* owned; NULL when the domain has none */
};

struct domain_xml_error {
        char text[DOMAIN_XML_ERROR_MAX];  /* one sentence, no trailing newline */
};

/**
 * domain_xml_parse() - extract memconvd's view of a libvirt domain
 * @buf: the XML document (borrowed; need not be NUL-terminated)
 * @len: its length in bytes
 * @ret: on success, the result, owned by the caller (domain_xml_free())
 * @ret_err: on failure, why; may be NULL
 *
 * Return: 0; -EFBIG over DOMAIN_XML_MAX; -EBADMSG not well-formed XML or
 * not a <domain>; -EINVAL a field is missing, repeated or malformed;
 * -EOPNOTSUPP an unknown launchSecurity type or an unknown element in
 * memconvd's namespace; -ENOMEM. *@ret is untouched on failure.
 */
int domain_xml_parse(const char *buf, size_t len, struct domain_xml **ret, struct domain_xml_error *ret_err);

/** domain_xml_free() - free @d (NULL is fine) */
void domain_xml_free(struct domain_xml *d);

/** domain_xml_cc_name() - libvirt's name for @t ("sev-snp"), "none" for NONE */
const char *domain_xml_cc_name(Memconv__CcType t);
