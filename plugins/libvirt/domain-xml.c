/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * domain-xml.c - libvirt domain XML to struct domain_xml; see domain-xml.h.
 *
 * Only direct children of the root <domain> are looked at: <uuid>, <name>,
 * <launchSecurity> and <metadata>, all in no namespace (as libvirt writes
 * them); elements in other namespaces (qemu:commandline and the like) are
 * skipped. libxml2 is told never to print (XML_PARSE_NOERROR|NOWARNING) and
 * never to fetch anything (XML_PARSE_NONET, no DTD loading, no entity
 * substitution); its parser error is copied into the caller's
 * domain_xml_error instead.
 *
 * SEV-ES has no launchSecurity type of its own in libvirt: it is
 * type='sev' with bit 2 (ES) of the guest <policy> set, so that bit decides
 * between CC_TYPE_SEV and CC_TYPE_SEV_ES.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "domain-xml.h"
#include "macro.h"

#define SEV_POLICY_ES 0x4UL

static const struct {
        const char *name;
        Memconv__CcType type;
} cc_types[] = {
        { "sev", MEMCONV__CC_TYPE__CC_TYPE_SEV },
        { "sev-snp", MEMCONV__CC_TYPE__CC_TYPE_SEV_SNP },
        { "tdx", MEMCONV__CC_TYPE__CC_TYPE_TDX },
        { "s390-pv", MEMCONV__CC_TYPE__CC_TYPE_S390_PV },
};

const char *domain_xml_cc_name(Memconv__CcType t)
{
        if (t == MEMCONV__CC_TYPE__CC_TYPE_SEV_ES)
                return "sev-es";
        for (size_t i = 0; i < ELEMENTSOF(cc_types); i++)
                if (cc_types[i].type == t)
                        return cc_types[i].name;
        return t == MEMCONV__CC_TYPE__CC_TYPE_NONE ? "none" : "other";
}

/**
 * set_error() - fill @err (may be NULL) and return @error
 */
static int set_error(struct domain_xml_error *err, int error, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static int set_error(struct domain_xml_error *err, int error, const char *fmt, ...)
{
        va_list ap;

        if (err) {
                va_start(ap, fmt);
                vsnprintf(err->text, sizeof(err->text), fmt, ap);
                va_end(ap);
        }
        return error;
}

void domain_xml_free(struct domain_xml *d)
{
        if (!d)
                return;
        free(d->name);
        free(d->policy);
        free(d);
}

static void domain_xml_freep(struct domain_xml **d)
{
        domain_xml_free(*d);
}

static void xml_doc_freep(xmlDoc **doc)
{
        if (*doc)
                xmlFreeDoc(*doc);
}

static void xml_ctxt_freep(xmlParserCtxt **ctxt)
{
        if (*ctxt)
                xmlFreeParserCtxt(*ctxt);
}

static void xml_char_freep(xmlChar **s)
{
        if (*s)
                xmlFree(*s);
}

/**
 * is_element() - @n is an element named @name in no namespace
 */
static bool is_element(const xmlNode *n, const char *name)
{
        return n->type == XML_ELEMENT_NODE && !n->ns && xmlStrEqual(n->name, (const xmlChar *) name);
}

/**
 * find_unique_child() - the one child element of @parent named @name
 * @ret: the child (borrowed from the document), or NULL when there is none
 * Return: 0, or -EINVAL when there are several
 */
static int find_unique_child(const xmlNode *parent, const char *name, xmlNode **ret,
                             struct domain_xml_error *err)
{
        xmlNode *found = NULL;

        for (xmlNode *n = parent->children; n; n = n->next) {
                if (!is_element(n, name))
                        continue;
                if (found)
                        return set_error(err, -EINVAL, "the domain XML has more than one <%s> (line %ld)", name,
                                         (long) xmlGetLineNo(n));
                found = n;
        }
        *ret = found;
        return 0;
}

static bool is_space(char c)
{
        return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/**
 * trim() - @s without leading and trailing XML white space, in place
 * Return: the first kept character of @s
 */
static char *trim(char *s)
{
        size_t n;

        while (is_space(*s))
                s++;
        n = strlen(s);
        while (n > 0 && is_space(s[n - 1]))
                s[--n] = '\0';
        return s;
}

static int hex_value(char c)
{
        if (c >= '0' && c <= '9')
                return c - '0';
        if (c >= 'a' && c <= 'f')
                return c - 'a' + 10;
        if (c >= 'A' && c <= 'F')
                return c - 'A' + 10;
        return -1;
}

/**
 * parse_uuid() - a uuid as libvirt accepts it (32 hex digits, dashes
 * anywhere between them, surrounding white space) into canonical form
 * @s: the text (modified: trimmed)
 * @ret: 37 bytes for "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
 * Return: 0 or -EINVAL
 */
static int parse_uuid(char *s, char ret[37])
{
        char out[37];
        size_t digits = 0, o = 0;

        s = trim(s);
        for (; *s; s++) {
                if (*s == '-' && digits > 0 && digits < 32 && s[1] != '-')
                        continue;
                if (hex_value(*s) < 0 || digits == 32)
                        return -EINVAL;
                if (digits == 8 || digits == 12 || digits == 16 || digits == 20)
                        out[o++] = '-';
                out[o++] = "0123456789abcdef"[hex_value(*s)];
                digits++;
        }
        if (digits != 32)
                return -EINVAL;
        out[o] = '\0';
        memcpy(ret, out, sizeof(out));
        return 0;
}

/**
 * name_valid() - 1..DOMAIN_XML_NAME_MAX bytes, no control characters
 */
static bool name_valid(const char *s)
{
        size_t n = strlen(s);

        if (n == 0 || n > DOMAIN_XML_NAME_MAX)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
                        return false;
        return true;
}

/**
 * parse_launch_security() - <launchSecurity type=...> to a CcType
 * @ls: the element, or NULL when the domain has none
 * Return: 0 with *@ret set, -EINVAL, -EOPNOTSUPP
 */
static int parse_launch_security(const xmlNode *ls, Memconv__CcType *ret, struct domain_xml_error *err)
{
        _cleanup_(xml_char_freep) xmlChar *type = NULL;
        xmlNode *policy;
        int r;

        if (!ls) {
                *ret = MEMCONV__CC_TYPE__CC_TYPE_NONE;
                return 0;
        }
        type = xmlGetNoNsProp(ls, (const xmlChar *) "type");
        if (!type || !*type)
                return set_error(err, -EINVAL, "<launchSecurity> has no type attribute (line %ld)",
                                 (long) xmlGetLineNo(ls));
        for (size_t i = 0; i < ELEMENTSOF(cc_types); i++) {
                if (!xmlStrEqual(type, (const xmlChar *) cc_types[i].name))
                        continue;
                *ret = cc_types[i].type;
                if (cc_types[i].type != MEMCONV__CC_TYPE__CC_TYPE_SEV)
                        return 0;
                r = find_unique_child(ls, "policy", &policy, err);
                if (r < 0)
                        return r;
                if (policy) {
                        _cleanup_(xml_char_freep) xmlChar *text = xmlNodeGetContent(policy);
                        unsigned long v;
                        char *s, *end;

                        if (!text)
                                return set_error(err, -ENOMEM, "out of memory");
                        s = trim((char *) text);
                        errno = 0;
                        v = strtoul(s, &end, 16);
                        if (!*s || *s == '-' || *s == '+' || *end || errno)
                                return set_error(err, -EINVAL,
                                                 "the SEV <policy> \"%.40s\" is not a hexadecimal number (line %ld)", s,
                                                 (long) xmlGetLineNo(policy));
                        if (v & SEV_POLICY_ES)
                                *ret = MEMCONV__CC_TYPE__CC_TYPE_SEV_ES;
                }
                return 0;
        }
        return set_error(err, -EOPNOTSUPP,
                         "unknown <launchSecurity type='%.40s'> (line %ld); memconvd knows sev, sev-snp, tdx and s390-pv",
                         (const char *) type, (long) xmlGetLineNo(ls));
}

/**
 * parse_policy() - the text of <memconvd:policy> under <metadata>
 * @metadata: the element, or NULL
 * @ret: the trimmed text, owned by the caller, or NULL when there is none
 * Return: 0, -EINVAL, -EOPNOTSUPP, -ENOMEM
 */
static int parse_policy(const xmlNode *metadata, char **ret, struct domain_xml_error *err)
{
        const xmlNode *found = NULL;
        _cleanup_(xml_char_freep) xmlChar *text = NULL;
        char *s, *copy;

        *ret = NULL;
        if (!metadata)
                return 0;
        for (const xmlNode *n = metadata->children; n; n = n->next) {
                if (n->type != XML_ELEMENT_NODE || !n->ns || !n->ns->href ||
                    !xmlStrEqual(n->ns->href, (const xmlChar *) DOMAIN_XML_NS))
                        continue;
                if (!xmlStrEqual(n->name, (const xmlChar *) DOMAIN_XML_POLICY_ELEMENT))
                        return set_error(err, -EOPNOTSUPP,
                                         "unknown element <%.40s> in memconvd's namespace %s (line %ld); "
                                         "only <" DOMAIN_XML_POLICY_ELEMENT "> is defined",
                                         (const char *) n->name, DOMAIN_XML_NS, (long) xmlGetLineNo(n));
                if (found)
                        return set_error(err, -EINVAL, "the domain's <metadata> has more than one memconvd "
                                         "<" DOMAIN_XML_POLICY_ELEMENT "> (line %ld)", (long) xmlGetLineNo(n));
                found = n;
        }
        if (!found)
                return 0;
        for (const xmlNode *c = found->children; c; c = c->next)
                if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE && c->type != XML_COMMENT_NODE)
                        return set_error(err, -EINVAL,
                                         "the memconvd policy (line %ld) must be text; it contains <%.40s>",
                                         (long) xmlGetLineNo(found), c->name ? (const char *) c->name : "?");
        text = xmlNodeGetContent(found);
        if (!text)
                return set_error(err, -ENOMEM, "out of memory");
        s = trim((char *) text);
        if (strlen(s) > DOMAIN_XML_POLICY_MAX)
                return set_error(err, -EINVAL, "the memconvd policy (line %ld) is %zu bytes long; at most %u are allowed",
                                 (long) xmlGetLineNo(found), strlen(s), DOMAIN_XML_POLICY_MAX);
        if (!*s)
                return 0;
        copy = strdup(s);
        if (!copy)
                return set_error(err, -ENOMEM, "out of memory");
        *ret = copy;
        return 0;
}

/**
 * parse_text_child() - the text of the one <@name> child of @root
 * @ret: the text (owned by the caller, xmlFree())
 * Return: 0, -EINVAL when missing or repeated, -ENOMEM
 */
static int parse_text_child(const xmlNode *root, const char *name, xmlChar **ret, struct domain_xml_error *err)
{
        xmlNode *n;
        xmlChar *text;
        int r;

        r = find_unique_child(root, name, &n, err);
        if (r < 0)
                return r;
        if (!n)
                return set_error(err, -EINVAL, "the domain XML has no <%s>", name);
        text = xmlNodeGetContent(n);
        if (!text)
                return set_error(err, -ENOMEM, "out of memory");
        *ret = text;
        return 0;
}

int domain_xml_parse(const char *buf, size_t len, struct domain_xml **ret, struct domain_xml_error *ret_err)
{
        _cleanup_(xml_ctxt_freep) xmlParserCtxt *ctxt = NULL;
        _cleanup_(xml_doc_freep) xmlDoc *doc = NULL;
        _cleanup_(domain_xml_freep) struct domain_xml *d = NULL;
        _cleanup_(xml_char_freep) xmlChar *uuid = NULL, *name = NULL;
        xmlNode *root, *ls, *metadata;
        int r;

        if (len > DOMAIN_XML_MAX)
                return set_error(ret_err, -EFBIG, "the domain XML is %zu bytes; at most %u (10 MiB) are accepted",
                                 len, DOMAIN_XML_MAX);
        if (len == 0)
                return set_error(ret_err, -EBADMSG, "the domain XML is empty");
        ctxt = xmlNewParserCtxt();
        if (!ctxt)
                return set_error(ret_err, -ENOMEM, "out of memory");
        doc = xmlCtxtReadMemory(ctxt, buf, (int) len, "domain.xml", NULL,
                                XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING | XML_PARSE_NOCDATA);
        if (!doc) {
                const xmlError *e = xmlCtxtGetLastError(ctxt);
                char msg[160] = "";

                if (e && e->message) {
                        snprintf(msg, sizeof(msg), "%s", e->message);
                        trim(msg);
                }
                return set_error(ret_err, -EBADMSG, "the domain XML is not well-formed: line %d: %s",
                                 e ? e->line : 0, *msg ? msg : "parse error");
        }
        if (doc->intSubset || doc->extSubset)
                return set_error(ret_err, -EBADMSG, "the domain XML has a DOCTYPE; libvirt never writes one");
        root = xmlDocGetRootElement(doc);
        if (!root || !is_element(root, "domain"))
                return set_error(ret_err, -EBADMSG, "the XML document is not a libvirt <domain> (root element <%.40s>)",
                                 root ? (const char *) root->name : "none");

        d = calloc(1, sizeof(*d));
        if (!d)
                return set_error(ret_err, -ENOMEM, "out of memory");

        r = parse_text_child(root, "uuid", &uuid, ret_err);
        if (r < 0)
                return r;
        if (parse_uuid((char *) uuid, d->uuid) < 0)
                return set_error(ret_err, -EINVAL, "the domain's <uuid> \"%.40s\" is not a uuid", (const char *) uuid);

        r = parse_text_child(root, "name", &name, ret_err);
        if (r < 0)
                return r;
        if (!name_valid((const char *) name))
                return set_error(ret_err, -EINVAL,
                                 "the domain's <name> must be 1-%u bytes without control characters",
                                 DOMAIN_XML_NAME_MAX);
        d->name = strdup((const char *) name);
        if (!d->name)
                return set_error(ret_err, -ENOMEM, "out of memory");

        r = find_unique_child(root, "launchSecurity", &ls, ret_err);
        if (r < 0)
                return r;
        r = parse_launch_security(ls, &d->cc_type, ret_err);
        if (r < 0)
                return r;

        r = find_unique_child(root, "metadata", &metadata, ret_err);
        if (r < 0)
                return r;
        r = parse_policy(metadata, &d->policy, ret_err);
        if (r < 0)
                return r;

        *ret = TAKE_PTR(d);
        return 0;
}
