/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * message.c - central validation of protocol messages; see message.h.
 *
 * Table-driven: each body type has one row naming its direction and its
 * checker. A message is refused with the first problem found, described
 * precisely enough that the peer's developer knows which field to fix.
 */
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "macro.h"
#include "message.h"

#define PAGE_MASK 4095ULL

bool mc_range_valid(uint64_t start, uint64_t size)
{
        return size > 0 && !(start & PAGE_MASK) && !(size & PAGE_MASK) && start + size > start;
}

int mc_error_set(struct mc_msg_error *e, Memconv__Code code, int error, const char *fmt, ...)
{
        va_list ap;

        e->code = code;
        e->error = error;
        va_start(ap, fmt);
        vsnprintf(e->text, sizeof(e->text), fmt, ap);
        va_end(ap);
        return error;
}

static const struct {
        Memconv__Code code;
        int error;
        const char *name;
} code_table[] = {
        { MEMCONV__CODE__CODE_OK, 0, "ok" },
        { MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL, "invalid-argument" },
        { MEMCONV__CODE__CODE_OUT_OF_RANGE, -ERANGE, "out-of-range" },
        { MEMCONV__CODE__CODE_NOT_ATTACHED, -ENOTCONN, "not-attached" },
        { MEMCONV__CODE__CODE_UNKNOWN_VM, -ESRCH, "unknown-vm" },
        { MEMCONV__CODE__CODE_PERMISSION_DENIED, -EPERM, "permission-denied" },
        { MEMCONV__CODE__CODE_POLICY_REFUSED, -EACCES, "policy-refused" },
        { MEMCONV__CODE__CODE_BAD_FD, -EBADF, "bad-fd" },
        { MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO, "protocol-error" },
        { MEMCONV__CODE__CODE_EXISTS, -EEXIST, "exists" },
        { MEMCONV__CODE__CODE_NOT_FOUND, -ENOENT, "not-found" },
        { MEMCONV__CODE__CODE_VERSION_MISMATCH, -EPROTONOSUPPORT, "version-mismatch" },
        { MEMCONV__CODE__CODE_RESOURCE_LIMIT, -ENOSPC, "resource-limit" },
        { MEMCONV__CODE__CODE_INTERNAL, -EIO, "internal" },
        { MEMCONV__CODE__CODE_BUSY, -EBUSY, "busy" },
};

Memconv__Code mc_code_from_errno(int error)
{
        for (size_t i = 0; i < ELEMENTSOF(code_table); i++)
                if (code_table[i].error == error)
                        return code_table[i].code;
        switch (error) {
        case -EMSGSIZE:
        case -EBADMSG:
        case -ETOOMANYREFS:
                return MEMCONV__CODE__CODE_PROTOCOL_ERROR;
        case -ENOMEM:
        case -EMFILE:
                return MEMCONV__CODE__CODE_RESOURCE_LIMIT;
        default:
                return MEMCONV__CODE__CODE_INTERNAL;
        }
}

int mc_code_to_errno(Memconv__Code code)
{
        for (size_t i = 0; i < ELEMENTSOF(code_table); i++)
                if (code_table[i].code == code)
                        return code_table[i].error;
        return -EPROTO;
}

const char *mc_code_name(Memconv__Code code)
{
        for (size_t i = 0; i < ELEMENTSOF(code_table); i++)
                if (code_table[i].code == code)
                        return code_table[i].name;
        return "unknown";
}

/**
 * name_valid() - 1..@max printable ASCII characters, no '/' or quotes
 * Return: true if acceptable
 */
static bool name_valid(const char *s, size_t max)
{
        size_t n;

        if (!s)
                return false;
        n = strlen(s);
        if (n == 0 || n > max)
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char c = (unsigned char) s[i];

                if (c < 0x21 || c > 0x7e || c == '/' || c == '"' || c == '\\')
                        return false;
        }
        return true;
}

/**
 * enum_known() - whether @value is one of @desc's values
 * Return: true if known
 */
static bool enum_known(const ProtobufCEnumDescriptor *desc, int value)
{
        return protobuf_c_enum_descriptor_get_value(desc, value) != NULL;
}

static int check_hello(const Memconv__Message *m, struct mc_msg_error *e)
{
        const Memconv__Hello *h = m->hello;

        if (h->version == 0)
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "hello: version must be set");
        if (h->client && strlen(h->client) > MC_CLIENT_NAME_MAX)
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "hello: client string longer than %d bytes", MC_CLIENT_NAME_MAX);
        return 0;
}

static int check_attach(const Memconv__Message *m, struct mc_msg_error *e)
{
        const Memconv__Attach *a = m->attach;

        if (a->uuid.len != 16)
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "attach: uuid must be 16 bytes, got %zu", a->uuid.len);
        if (a->token.len != 0 && a->token.len != 16)
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "attach: token must be empty or 16 bytes, got %zu", a->token.len);
        if (!name_valid(a->name, MC_NAME_MAX))
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "attach: name must be 1-%d printable characters without '/', quotes or spaces",
                                    MC_NAME_MAX);
        if (!enum_known(&memconv__cc_type__descriptor, a->cc_type))
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "attach: unknown cc_type %d", a->cc_type);
        if (!enum_known(&memconv__arch__descriptor, a->arch))
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "attach: unknown arch %d", a->arch);
        return 0;
}

static int check_register_region(const Memconv__Message *m, struct mc_msg_error *e)
{
        const Memconv__RegisterRegion *r = m->register_region;

        if (!mc_range_valid(r->gpa, r->size))
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "register-region: gpa 0x%" PRIx64 " size 0x%" PRIx64
                                    " must be 4 KiB aligned, non-empty and not overflow",
                                    r->gpa, r->size);
        if (!mc_range_valid(r->guest_memfd_offset, r->size) && r->guest_memfd_offset != 0)
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "register-region: guest_memfd_offset 0x%" PRIx64
                                    " must be 4 KiB aligned and offset+size not overflow",
                                    r->guest_memfd_offset);
        if (r->has_shared && !mc_range_valid(r->shared_offset, r->size) && r->shared_offset != 0)
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "register-region: shared_offset 0x%" PRIx64
                                    " must be 4 KiB aligned and offset+size not overflow",
                                    r->shared_offset);
        if (!r->has_shared && r->shared_offset != 0)
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "register-region: shared_offset set without a shared fd");
        if (!enum_known(&memconv__attribute__descriptor, r->initial))
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "register-region: unknown initial attribute %d", r->initial);
        return 0;
}

static int check_memory_fault(const Memconv__Message *m, struct mc_msg_error *e)
{
        if (m->memory_fault->syndrome.len > MC_SYNDROME_MAX)
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "memory-fault: syndrome of %zu bytes exceeds %d",
                                    m->memory_fault->syndrome.len, MC_SYNDROME_MAX);
        return 0;
}

static int check_convert(const Memconv__Message *m, struct mc_msg_error *e)
{
        const Memconv__Convert *c = m->convert;

        if (!enum_known(&memconv__attribute__descriptor, c->to))
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "convert: unknown target attribute to=%d", c->to);
        if (!enum_known(&memconv__convert_source__descriptor, c->source))
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "convert: unknown source %d", c->source);
        if (!enum_known(&memconv__page_size__descriptor, c->page_size))
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "convert: unknown page_size hint %d", c->page_size);
        return 0;
}

static int check_applied(const Memconv__Message *m, struct mc_msg_error *e)
{
        const Memconv__Applied *a = m->applied;

        if (a->decision_id == 0)
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "applied: decision_id must be set");
        if (a->errno_value > 0 || (a->ok && a->errno_value != 0) || (!a->ok && a->errno_value == 0))
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "applied: errno_value %d must be 0 when ok and negative otherwise",
                                    a->errno_value);
        return 0;
}

static int check_decision(const Memconv__Message *m, struct mc_msg_error *e)
{
        const Memconv__Decision *d = m->decision;

        if (!enum_known(&memconv__action__descriptor, d->action))
                return mc_error_set(e, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                                    "decision: unknown action %d", d->action);
        if (!enum_known(&memconv__attribute__descriptor, d->to))
                return mc_error_set(e, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                                    "decision: unknown attribute to=%d", d->to);
        if (d->n_ranges > MC_DECISION_RANGES_MAX)
                return mc_error_set(e, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                                    "decision: %zu ranges exceed %d", d->n_ranges,
                                    MC_DECISION_RANGES_MAX);
        for (size_t i = 0; i < d->n_ranges; i++)
                if (!d->ranges[i] || !mc_range_valid(d->ranges[i]->gpa, d->ranges[i]->size))
                        return mc_error_set(e, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                                            "decision: range %zu is not a valid page range", i);
        if (d->action == MEMCONV__ACTION__ACTION_APPLY && (d->n_ranges == 0 || d->decision_id == 0))
                return mc_error_set(e, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                                    "decision: apply without ranges or decision_id");
        return 0;
}

static int check_reapplied(const Memconv__Message *m, struct mc_msg_error *e)
{
        const Memconv__Reapplied *r = m->reapplied;

        if (!enum_known(&memconv__attribute__descriptor, r->to))
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "reapplied: unknown attribute to=%d", r->to);
        if (!enum_known(&memconv__convert_source__descriptor, r->source))
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "reapplied: unknown source %d", r->source);
        if (r->n_ranges == 0 || r->n_ranges > MC_DECISION_RANGES_MAX)
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "reapplied: %zu ranges, must be 1-%d", r->n_ranges, MC_DECISION_RANGES_MAX);
        for (size_t i = 0; i < r->n_ranges; i++)
                if (!r->ranges[i] || !mc_range_valid(r->ranges[i]->gpa, r->ranges[i]->size))
                        return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                            "reapplied: range %zu is not a valid page range", i);
        return 0;
}

static int check_committed(const Memconv__Message *m, struct mc_msg_error *e)
{
        if (m->committed->n_decision_ids + m->committed->n_lease_seqs > 65536)
                return mc_error_set(e, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                                    "committed: %zu ids exceed 65536",
                                    m->committed->n_decision_ids + m->committed->n_lease_seqs);
        return 0;
}

static int check_lease(const Memconv__Message *m, struct mc_msg_error *e)
{
        const Memconv__Lease *l = m->lease;

        if (l->lease_id == 0)
                return mc_error_set(e, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO, "lease: lease_id 0");
        if (!l->revoked && (l->max_bytes == 0 || l->max_bytes % 4096 != 0 || (!l->implicit && !l->explicit_)))
                return mc_error_set(e, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                                    "lease: grants nothing (max_bytes %" PRIu64 ", implicit %d, explicit %d)",
                                    l->max_bytes, l->implicit, l->explicit_);
        if (l->report_batch > MC_LEASE_BATCH_MAX || l->report_delay_usec > MC_LEASE_REPORT_DELAY_MAX_USEC)
                return mc_error_set(e, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                                    "lease: report_batch %u or report_delay_usec %u out of range (%d, %d)",
                                    l->report_batch, l->report_delay_usec, MC_LEASE_BATCH_MAX,
                                    MC_LEASE_REPORT_DELAY_MAX_USEC);
        return 0;
}

/**
 * check_one_report() - the checks of one leased conversion report, alone
 * (@idx < 0) or as report @idx of a batch; the text names which
 */
static int check_one_report(const Memconv__LeasedApplied *a, ssize_t idx, struct mc_msg_error *e)
{
        const char *why = NULL;
        char what[48];

        if (a->lease_id == 0 || a->seq == 0)
                why = "lease_id and seq must be non-zero";
        else if (!enum_known(&memconv__attribute__descriptor, a->to))
                why = "unknown attribute";
        else if (!enum_known(&memconv__convert_source__descriptor, a->source))
                why = "unknown source";
        else if (!mc_range_valid(a->gpa, a->size))
                why = "the range must be 4 KiB aligned, non-empty and not overflow";
        if (!why)
                return 0;
        if (idx < 0)
                snprintf(what, sizeof(what), "leased-applied");
        else
                snprintf(what, sizeof(what), "leased-batch: report %zd", idx);
        return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                            "%s: %s (to=%d, source %d, [0x%" PRIx64 ", +0x%" PRIx64 "))", what, why, a->to,
                            a->source, a->gpa, a->size);
}

static int check_leased_applied(const Memconv__Message *m, struct mc_msg_error *e)
{
        return check_one_report(m->leased_applied, -1, e);
}

static int check_leased_batch(const Memconv__Message *m, struct mc_msg_error *e)
{
        const Memconv__LeasedBatch *b = m->leased_batch;
        int r;

        if (b->n_reports == 0 || b->n_reports > MC_LEASE_BATCH_MAX || b->n_ids != b->n_reports)
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "leased-batch: %zu reports and %zu ids (1..%d reports, an id each)",
                                    b->n_reports, b->n_ids, MC_LEASE_BATCH_MAX);
        for (size_t i = 0; i < b->n_reports; i++) {
                if (b->ids[i] == 0)
                        return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                            "leased-batch: report %zu: id 0", i);
                r = check_one_report(b->reports[i], (ssize_t) i, e);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int check_lease_returned(const Memconv__Message *m, struct mc_msg_error *e)
{
        if (m->lease_returned->lease_id == 0)
                return mc_error_set(e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL, "lease-returned: lease_id 0");
        return 0;
}

static int check_settled(const Memconv__Message *m, struct mc_msg_error *e)
{
        if (m->settled->n_decision_ids + m->settled->n_lease_seqs > 65536)
                return mc_error_set(e, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                                    "settled: %zu ids exceed 65536",
                                    m->settled->n_decision_ids + m->settled->n_lease_seqs);
        return 0;
}

static int check_none(const Memconv__Message *m, struct mc_msg_error *e)
{
        return 0;
}

static int check_ring_setup(const Memconv__Message *m, struct mc_msg_error *e)
{
        if (m->ring_setup->version != 1)
                return mc_error_set(e, MEMCONV__CODE__CODE_VERSION_MISMATCH, -EPROTONOSUPPORT,
                                    "ring-setup: ring layout version %" PRIu32 " unknown (this daemon knows 1)",
                                    m->ring_setup->version);
        return 0;
}

struct type_rule {
        Memconv__Message__BodyCase body;
        const char *name;
        enum mc_msg_direction dir;
        bool needs_id;
        int (*check)(const Memconv__Message *m, struct mc_msg_error *e);
};

static const struct type_rule type_rules[] = {
        { MEMCONV__MESSAGE__BODY_HELLO, "hello", MC_MSG_TO_DAEMON, true, check_hello },
        { MEMCONV__MESSAGE__BODY_HELLO_REPLY, "hello-reply", MC_MSG_TO_CLIENT, false, check_none },
        { MEMCONV__MESSAGE__BODY_ATTACH, "attach", MC_MSG_TO_DAEMON, true, check_attach },
        { MEMCONV__MESSAGE__BODY_ATTACH_REPLY, "attach-reply", MC_MSG_TO_CLIENT, false, check_none },
        { MEMCONV__MESSAGE__BODY_DETACH, "detach", MC_MSG_TO_DAEMON, true, check_none },
        { MEMCONV__MESSAGE__BODY_REGISTER_REGION, "register-region", MC_MSG_TO_DAEMON, true, check_register_region },
        { MEMCONV__MESSAGE__BODY_UNREGISTER_REGION, "unregister-region", MC_MSG_TO_DAEMON, true, check_none },
        { MEMCONV__MESSAGE__BODY_MEMORY_FAULT, "memory-fault", MC_MSG_TO_DAEMON, true, check_memory_fault },
        { MEMCONV__MESSAGE__BODY_CONVERT, "convert", MC_MSG_TO_DAEMON, true, check_convert },
        { MEMCONV__MESSAGE__BODY_DECISION, "decision", MC_MSG_TO_CLIENT, false, check_decision },
        { MEMCONV__MESSAGE__BODY_APPLIED, "applied", MC_MSG_TO_DAEMON, false, check_applied },
        { MEMCONV__MESSAGE__BODY_REPLY, "reply", MC_MSG_TO_CLIENT, false, check_none },
        { MEMCONV__MESSAGE__BODY_COMMITTED, "committed", MC_MSG_TO_CLIENT, false, check_committed },
        { MEMCONV__MESSAGE__BODY_REAPPLIED, "reapplied", MC_MSG_TO_DAEMON, true, check_reapplied },
        { MEMCONV__MESSAGE__BODY_RESUMED, "resumed", MC_MSG_TO_DAEMON, true, check_none },
        { MEMCONV__MESSAGE__BODY_LEASE_REQUEST, "lease-request", MC_MSG_TO_DAEMON, true, check_none },
        { MEMCONV__MESSAGE__BODY_LEASE, "lease", MC_MSG_TO_CLIENT, false, check_lease },
        { MEMCONV__MESSAGE__BODY_LEASED_APPLIED, "leased-applied", MC_MSG_TO_DAEMON, true, check_leased_applied },
        { MEMCONV__MESSAGE__BODY_LEASED_BATCH, "leased-batch", MC_MSG_TO_DAEMON, true, check_leased_batch },
        { MEMCONV__MESSAGE__BODY_LEASE_RETURNED, "lease-returned", MC_MSG_TO_DAEMON, true, check_lease_returned },
        { MEMCONV__MESSAGE__BODY_SETTLED, "settled", MC_MSG_TO_CLIENT, false, check_settled },
        { MEMCONV__MESSAGE__BODY_RING_SETUP, "ring-setup", MC_MSG_TO_DAEMON, true, check_ring_setup },
        { MEMCONV__MESSAGE__BODY_RING_KICK, "ring-kick", MC_MSG_TO_DAEMON, false, check_none },
};

static const struct type_rule *type_rule_find(Memconv__Message__BodyCase c)
{
        for (size_t i = 0; i < ELEMENTSOF(type_rules); i++)
                if (type_rules[i].body == c)
                        return &type_rules[i];
        return NULL;
}

const char *mc_message_type_name(Memconv__Message__BodyCase c)
{
        const struct type_rule *t = type_rule_find(c);

        return t ? t->name : "unknown";
}

int mc_message_fds_expected(const Memconv__Message *m)
{
        if (m->body_case == MEMCONV__MESSAGE__BODY_REGISTER_REGION)
                return m->register_region->has_shared ? 2 : 1;
        if (m->body_case == MEMCONV__MESSAGE__BODY_RING_SETUP)
                return 1;
        return type_rule_find(m->body_case) ? 0 : -1;
}

int mc_message_validate(const Memconv__Message *m, size_t n_fds, enum mc_msg_direction dir,
                        struct mc_msg_error *ret_err)
{
        const struct type_rule *t = type_rule_find(m->body_case);
        int expected;

        if (!t)
                return mc_error_set(ret_err, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                                    "message without a known body (case %d)", (int) m->body_case);
        if (t->dir != dir)
                return mc_error_set(ret_err, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                                    "%s may not be sent %s", t->name,
                                    dir == MC_MSG_TO_DAEMON ? "to the daemon" : "to a client");
        if (t->needs_id && m->id == 0)
                return mc_error_set(ret_err, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                                    "%s: request id must be non-zero", t->name);
        expected = mc_message_fds_expected(m);
        if ((size_t) expected != n_fds)
                return mc_error_set(ret_err, MEMCONV__CODE__CODE_BAD_FD, -EBADF,
                                    "%s takes %d fd(s), %zu came with it", t->name, expected, n_fds);
        return t->check(m, ret_err);
}
