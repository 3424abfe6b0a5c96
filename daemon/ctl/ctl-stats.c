/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ctl-stats.c - "memconvctl stats [VM]": conversion counters and latency
 * histograms, as tables, JSON, or Prometheus text exposition
 * (--prometheus, format version 0.0.4); plus the renderers of
 * ConversionStats and Histogram that status and show use too.
 *
 * Prometheus naming: per-VM series are the families memconvd_* with the
 * labels vm (the name) and vm_id (the daemon's id, which keeps two VMs of
 * the same name apart). Without a VM argument, the daemon-wide totals -
 * which also count VMs that have since been forgotten - are the families
 * memconvd_daemon_*, without vm labels, so that sum() over a per-VM family
 * never counts anything twice.
 *
 * Histograms: the daemon's bucket i counts samples in [2^(i-1), 2^i) us
 * (bucket 0: below 1 us); exported as cumulative le="2^i us in seconds"
 * buckets, at least PROM_BUCKETS_MIN of them so that the series set is the
 * same from one scrape to the next, then le="+Inf" = count.
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"
#include "macro.h"

#define PROM_BUCKETS_MIN 26  /* up to 2^25 us = 33.5 s */

static const Memconv__ConversionStats zero_stats = MEMCONV__CONVERSION_STATS__INIT;
static const Memconv__Histogram zero_histogram = MEMCONV__HISTOGRAM__INIT;

void ctl_json_histogram(struct json_writer *j, const char *key, const Memconv__Histogram *h)
{
        if (!h)
                h = &zero_histogram;
        json_object_begin(j, key);
        json_u64(j, "count", h->count);
        json_u64(j, "sum_usec", h->sum_usec);
        json_u64(j, "max_usec", h->max_usec);
        json_u64(j, "p50_usec", h->p50_usec);
        json_u64(j, "p99_usec", h->p99_usec);
        json_array_begin(j, "buckets");
        for (size_t i = 0; i < h->n_buckets; i++)
                json_u64(j, NULL, h->buckets[i]);
        json_array_end(j);
        json_object_end(j);
}

void ctl_json_stats(struct json_writer *j, const char *key, const Memconv__ConversionStats *s)
{
        if (!s)
                s = &zero_stats;
        json_object_begin(j, key);
        json_u64(j, "explicit_to_private", s->explicit_to_private);
        json_u64(j, "explicit_to_shared", s->explicit_to_shared);
        json_u64(j, "implicit_to_private", s->implicit_to_private);
        json_u64(j, "implicit_to_shared", s->implicit_to_shared);
        json_u64(j, "spurious", s->spurious);
        json_u64(j, "mmio_noop", s->mmio_noop);
        json_u64(j, "refused", s->refused);
        json_u64(j, "not_handled", s->not_handled);
        json_u64(j, "rolled_back", s->rolled_back);
        json_u64(j, "abandoned", s->abandoned);
        json_u64(j, "waited", s->waited);
        json_u64(j, "bytes_to_private", s->bytes_to_private);
        json_u64(j, "bytes_to_shared", s->bytes_to_shared);
        json_u64(j, "discards", s->discards);
        json_u64(j, "discard_errors", s->discard_errors);
        json_u64(j, "discard_bytes", s->discard_bytes);
        json_u64(j, "discard_retries", s->discard_retries);
        json_u64(j, "policy_refused", s->policy_refused);
        json_u64(j, "policy_delayed", s->policy_delayed);
        json_u64(j, "journal_errors", s->journal_errors);
        json_u64(j, "reapplied", s->reapplied);
        json_u64(j, "leased", s->leased);
        json_u64(j, "lease_grants", s->lease_grants);
        json_u64(j, "lease_revocations", s->lease_revocations);
        json_u64(j, "leased_batches", s->leased_batches);
        ctl_json_histogram(j, "decision_latency", s->decision_latency);
        ctl_json_histogram(j, "discard_latency", s->discard_latency);
        json_object_end(j);
}

/**
 * latency_text() - "p50 16us, p99 128us, max 200us, 60 samples" for @h
 * @buf: where to write (at least 128 bytes)
 * Return: @buf
 */
static char *latency_text(char *buf, size_t size, const Memconv__Histogram *h)
{
        char p50[FORMAT_USEC_MAX], p99[FORMAT_USEC_MAX], max[FORMAT_USEC_MAX];

        if (!h || h->count == 0)
                snprintf(buf, size, "no samples");
        else
                snprintf(buf, size, "p50 %s, p99 %s, max %s, %" PRIu64 " sample%s", format_usec(p50, h->p50_usec),
                         format_usec(p99, h->p99_usec), format_usec(max, h->max_usec), h->count,
                         h->count == 1 ? "" : "s");
        return buf;
}

void ctl_print_stats_fields(FILE *f, int key_width, const Memconv__ConversionStats *s)
{
        char a[FORMAT_BYTES_MAX], b[FORMAT_BYTES_MAX], lat[128];

        if (!s)
                s = &zero_stats;
        ctl_field(f, key_width, "Conversions", "explicit %" PRIu64 " to private, %" PRIu64 " to shared; implicit %"
                  PRIu64 " to private, %" PRIu64 " to shared", s->explicit_to_private, s->explicit_to_shared,
                  s->implicit_to_private, s->implicit_to_shared);
        ctl_field(f, key_width, "Bytes", "%s to private, %s to shared", format_bytes(a, s->bytes_to_private),
                  format_bytes(b, s->bytes_to_shared));
        ctl_field(f, key_width, "Not converted", "%" PRIu64 " spurious, %" PRIu64 " refused, %" PRIu64
                  " not handled, %" PRIu64 " MMIO no-ops", s->spurious, s->refused, s->not_handled, s->mmio_noop);
        ctl_field(f, key_width, "Undone", "%" PRIu64 " rolled back, %" PRIu64 " abandoned; %" PRIu64
                  " waited for a conversion in flight", s->rolled_back, s->abandoned, s->waited);
        ctl_field(f, key_width, "Discards", "%" PRIu64 " (%s), %" PRIu64 " failed, %" PRIu64 " retried",
                  s->discards, format_bytes(a, s->discard_bytes), s->discard_errors, s->discard_retries);
        ctl_field(f, key_width, "Policy", "%" PRIu64 " refused, %" PRIu64 " delayed", s->policy_refused,
                  s->policy_delayed);
        ctl_field(f, key_width, "Journal", "%" PRIu64 " write errors; %" PRIu64 " decisions re-sent by a resumed VMM",
                  s->journal_errors, s->reapplied);
        ctl_field(f, key_width, "Leases", "%" PRIu64 " conversions applied under a lease (%" PRIu64
                  " report batches); %" PRIu64 " granted, %" PRIu64 " revoked", s->leased, s->leased_batches,
                  s->lease_grants, s->lease_revocations);
        ctl_field(f, key_width, "Decision latency", "%s", latency_text(lat, sizeof(lat), s->decision_latency));
        ctl_field(f, key_width, "Discard latency", "%s", latency_text(lat, sizeof(lat), s->discard_latency));
}

/* ----------------------------------------------------------------- stats */

/* One set of counters to print: the totals or one VM. */
struct stats_scope {
        const Memconv__VmInfo *vm;  /* NULL: daemon-wide totals */
        const Memconv__ConversionStats *s;
};

/**
 * stats_scopes() - what a reply covers: totals (when no VM was asked for)
 * then each VM
 * @reply: the StatsReply (borrowed; the scopes point into it)
 * @with_totals: include the totals
 * @scopes: array of 1 + reply->n_vms
 * Return: how many scopes were filled
 */
static size_t stats_scopes(const Memconv__StatsReply *reply, bool with_totals, struct stats_scope *scopes)
{
        size_t n = 0;

        if (with_totals)
                scopes[n++] = (struct stats_scope) { .s = reply->totals ? reply->totals : &zero_stats };
        for (size_t i = 0; i < reply->n_vms; i++)
                scopes[n++] = (struct stats_scope) {
                        .vm = reply->vms[i],
                        .s = reply->vms[i]->stats ? reply->vms[i]->stats : &zero_stats,
                };
        return n;
}

/**
 * stats_print_tables() - counters and latencies, one row per scope
 * Return: 0, -ENOMEM
 */
static int stats_print_tables(const struct stats_scope *scopes, size_t n, bool legend)
{
        static const char *const counters[] = {
                "ID", "VM", "EXPL->PRIV", "EXPL->SHARED", "IMPL->PRIV", "IMPL->SHARED", "SPURIOUS", "REFUSED",
                "BYTES->PRIV", "BYTES->SHARED",
        };
        static const char *const latencies[] = { "ID", "VM", "LATENCY", "COUNT", "P50", "P99", "MAX" };
        _cleanup_table_ struct table *t = NULL, *l = NULL;
        int r;

        r = table_new(counters, ELEMENTSOF(counters), &t);
        if (r < 0)
                return r;
        r = table_new(latencies, ELEMENTSOF(latencies), &l);
        if (r < 0)
                return r;
        table_set_right(t, 0);
        for (size_t c = 2; c < ELEMENTSOF(counters); c++)
                table_set_right(t, c);
        table_set_right(l, 0);
        for (size_t c = 3; c < ELEMENTSOF(latencies); c++)
                table_set_right(l, c);

        for (size_t i = 0; i < n; i++) {
                const Memconv__ConversionStats *s = scopes[i].s;
                const Memconv__Histogram *h[2] = { s->decision_latency, s->discard_latency };
                static const char *const kind[2] = { "decision", "discard" };
                char id[24], a[FORMAT_BYTES_MAX], b[FORMAT_BYTES_MAX];
                const char *name = scopes[i].vm ? ctl_str(scopes[i].vm->name, "-") : "total";

                if (scopes[i].vm)
                        snprintf(id, sizeof(id), "%" PRIu64, scopes[i].vm->id);
                else
                        snprintf(id, sizeof(id), "-");
                if (table_add(t, "%s", id) < 0 || table_add(t, "%s", name) < 0 ||
                    table_add(t, "%" PRIu64, s->explicit_to_private) < 0 ||
                    table_add(t, "%" PRIu64, s->explicit_to_shared) < 0 ||
                    table_add(t, "%" PRIu64, s->implicit_to_private) < 0 ||
                    table_add(t, "%" PRIu64, s->implicit_to_shared) < 0 ||
                    table_add(t, "%" PRIu64, s->spurious) < 0 || table_add(t, "%" PRIu64, s->refused) < 0 ||
                    table_add(t, "%s", format_bytes(a, s->bytes_to_private)) < 0 ||
                    table_add(t, "%s", format_bytes(b, s->bytes_to_shared)) < 0)
                        return -ENOMEM;
                for (size_t k = 0; k < 2; k++) {
                        const Memconv__Histogram *x = h[k] ? h[k] : &zero_histogram;
                        char p50[FORMAT_USEC_MAX], p99[FORMAT_USEC_MAX], max[FORMAT_USEC_MAX];

                        if (table_add(l, "%s", id) < 0 || table_add(l, "%s", name) < 0 ||
                            table_add(l, "%s", kind[k]) < 0 || table_add(l, "%" PRIu64, x->count) < 0 ||
                            table_add(l, "%s", x->count ? format_usec(p50, x->p50_usec) : "-") < 0 ||
                            table_add(l, "%s", x->count ? format_usec(p99, x->p99_usec) : "-") < 0 ||
                            table_add(l, "%s", x->count ? format_usec(max, x->max_usec) : "-") < 0)
                                return -ENOMEM;
                }
        }
        table_print(t, stdout, legend);
        fputc('\n', stdout);
        table_print(l, stdout, legend);
        return 0;
}

/**
 * stats_print_json() - {"totals": {...}, "vms": [...]} on stdout
 * @with_totals: include "totals" (no VM was asked for)
 * Return: 0, -EINVAL (writer misuse)
 */
static int stats_print_json(const Memconv__StatsReply *reply, bool with_totals)
{
        struct json_writer j;

        json_init(&j, stdout, true);
        json_object_begin(&j, NULL);
        if (with_totals)
                ctl_json_stats(&j, "totals", reply->totals);
        json_array_begin(&j, "vms");
        for (size_t i = 0; i < reply->n_vms; i++)
                ctl_json_vm(&j, NULL, reply->vms[i], true);
        json_array_end(&j);
        json_object_end(&j);
        return json_finish(&j);
}

/* ---------------------------------------------------------- Prometheus */

/**
 * prom_label_value() - write @s escaped as a Prometheus label value
 * (backslash, double quote and newline escaped; the quotes around it too)
 */
static void prom_label_value(FILE *f, const char *s)
{
        fputc('"', f);
        for (; *s; s++)
                switch (*s) {
                case '\\': fputs("\\\\", f); break;
                case '"':  fputs("\\\"", f); break;
                case '\n': fputs("\\n", f); break;
                default:   fputc(*s, f);
                }
        fputc('"', f);
}

/**
 * prom_sample_start() - "NAME{labels" of one sample, without the closing
 * brace: the VM labels of @sc, then @extra ("kind=\"explicit\"" etc., or NULL)
 * Return: true if a '{' was opened (the caller closes it)
 */
static bool prom_sample_start(FILE *f, const char *name, const struct stats_scope *sc, const char *extra)
{
        fputs(name, f);
        if (!sc->vm && !extra)
                return false;
        fputc('{', f);
        if (sc->vm) {
                fputs("vm=", f);
                prom_label_value(f, ctl_str(sc->vm->name, ""));
                fprintf(f, ",vm_id=\"%" PRIu64 "\"", sc->vm->id);
        }
        if (extra)
                fprintf(f, "%s%s", sc->vm ? "," : "", extra);
        return true;
}

/**
 * prom_sample() - one sample line "NAME{labels} VALUE"
 */
static void prom_sample(FILE *f, const char *name, const struct stats_scope *sc, const char *extra, uint64_t v)
{
        if (prom_sample_start(f, name, sc, extra))
                fputc('}', f);
        fprintf(f, " %" PRIu64 "\n", v);
}

/* The plain counters of ConversionStats, as (name, help, field offset). */
static const struct {
        const char *name;
        const char *help;
        size_t offset;
} prom_counters[] = {
        { "spurious_total", "Conversion requests for ranges already in the requested state (plain retries).",
          offsetof(Memconv__ConversionStats, spurious) },
        { "refused_total", "Conversion requests refused (invalid or out-of-range addresses, policy).",
          offsetof(Memconv__ConversionStats, refused) },
        { "not_handled_total", "Memory faults left to the VMM because they are not conversions.",
          offsetof(Memconv__ConversionStats, not_handled) },
        { "mmio_noop_total", "To-shared requests on guest-physical space that is not RAM (no-ops).",
          offsetof(Memconv__ConversionStats, mmio_noop) },
        { "rolled_back_total", "Conversions the VMM failed to apply (nothing changed).",
          offsetof(Memconv__ConversionStats, rolled_back) },
        { "abandoned_total", "Decisions never reported applied because the VMM went away.",
          offsetof(Memconv__ConversionStats, abandoned) },
        { "waited_total", "Requests that waited for an overlapping conversion in flight.",
          offsetof(Memconv__ConversionStats, waited) },
        { "discards_total", "Discards of stale backing performed.",
          offsetof(Memconv__ConversionStats, discards) },
        { "discard_errors_total", "Discards of stale backing that failed.",
          offsetof(Memconv__ConversionStats, discard_errors) },
        { "discard_bytes_total", "Bytes of stale backing discarded.",
          offsetof(Memconv__ConversionStats, discard_bytes) },
        { "discard_retries_total", "Discards retried after a failure (also counted in discards_total).",
          offsetof(Memconv__ConversionStats, discard_retries) },
        { "policy_refused_total", "Conversion requests a policy plugin refused (also counted in refused_total).",
          offsetof(Memconv__ConversionStats, policy_refused) },
        { "policy_delayed_total", "Conversion requests a policy plugin delayed (their vCPU waited).",
          offsetof(Memconv__ConversionStats, policy_delayed) },
        { "journal_errors_total", "Journal writes that failed: the changes they carried are not durable.",
          offsetof(Memconv__ConversionStats, journal_errors) },
        { "reapplied_total", "Decisions a VMM re-sent after reconnecting (applied before a hang-up).",
          offsetof(Memconv__ConversionStats, reapplied) },
        { "leased_total", "Committed conversions the VMM applied under a lease and reported after.",
          offsetof(Memconv__ConversionStats, leased) },
        { "lease_grants_total", "Leases granted.", offsetof(Memconv__ConversionStats, lease_grants) },
        { "lease_revocations_total", "Leases revoked.", offsetof(Memconv__ConversionStats, lease_revocations) },
        { "leased_batches_total", "Messages that carried several leased conversion reports at once.",
          offsetof(Memconv__ConversionStats, leased_batches) },
};

/**
 * stats_field() - the uint64 at @offset of @s
 */
static uint64_t stats_field(const Memconv__ConversionStats *s, size_t offset)
{
        uint64_t v;

        memcpy(&v, (const char *) s + offset, sizeof(v));
        return v;
}

/**
 * prom_histogram() - one histogram family over @scopes
 * @prefix: "memconvd_" or "memconvd_daemon_"
 * @name: e.g. "decision_latency_seconds"
 * @discard: the discard histogram rather than the decision one
 */
static void prom_histogram(FILE *f, const char *prefix, const char *name, const char *help,
                           const struct stats_scope *scopes, size_t n, bool discard)
{
        char family[128], bucket[160];

        snprintf(family, sizeof(family), "%s%s", prefix, name);
        snprintf(bucket, sizeof(bucket), "%s_bucket", family);
        fprintf(f, "# HELP %s %s\n# TYPE %s histogram\n", family, help, family);
        for (size_t i = 0; i < n; i++) {
                const Memconv__Histogram *h = discard ? scopes[i].s->discard_latency : scopes[i].s->decision_latency;
                size_t nb;
                uint64_t cum = 0;

                if (!h)
                        h = &zero_histogram;
                nb = h->n_buckets > PROM_BUCKETS_MIN ? h->n_buckets : PROM_BUCKETS_MIN;
                if (nb > 64)
                        nb = 64;
                for (size_t b = 0; b < nb; b++) {
                        char le[48];

                        if (b < h->n_buckets)
                                cum += h->buckets[b];
                        snprintf(le, sizeof(le), "le=\"%.9g\"", (double) (UINT64_C(1) << b) / 1e6);
                        prom_sample(f, bucket, &scopes[i], le, cum);
                }
                prom_sample(f, bucket, &scopes[i], "le=\"+Inf\"", h->count);
                snprintf(bucket, sizeof(bucket), "%s_sum", family);
                if (prom_sample_start(f, bucket, &scopes[i], NULL))
                        fputc('}', f);
                fprintf(f, " %.6f\n", (double) h->sum_usec / 1e6);
                snprintf(bucket, sizeof(bucket), "%s_count", family);
                prom_sample(f, bucket, &scopes[i], NULL, h->count);
                snprintf(bucket, sizeof(bucket), "%s_bucket", family);
        }
}

/**
 * prom_print() - every family over @scopes, names prefixed with @prefix
 * @vm_gauges: also the per-VM gauges (memory, attached)
 */
static void prom_print(FILE *f, const char *prefix, const struct stats_scope *scopes, size_t n, bool vm_gauges)
{
        static const char *const conv_labels[4] = {
                "kind=\"explicit\",direction=\"to_private\"", "kind=\"explicit\",direction=\"to_shared\"",
                "kind=\"implicit\",direction=\"to_private\"", "kind=\"implicit\",direction=\"to_shared\"",
        };
        char name[128];

        if (n == 0)
                return;
        snprintf(name, sizeof(name), "%sconversions_total", prefix);
        fprintf(f, "# HELP %s Attribute conversions committed, by kind (explicit request or implicit memory "
                   "fault) and direction.\n# TYPE %s counter\n", name, name);
        for (size_t i = 0; i < n; i++) {
                const Memconv__ConversionStats *s = scopes[i].s;
                const uint64_t v[4] = { s->explicit_to_private, s->explicit_to_shared, s->implicit_to_private,
                                        s->implicit_to_shared };

                for (size_t k = 0; k < 4; k++)
                        prom_sample(f, name, &scopes[i], conv_labels[k], v[k]);
        }

        snprintf(name, sizeof(name), "%sbytes_total", prefix);
        fprintf(f, "# HELP %s Bytes converted, by direction.\n# TYPE %s counter\n", name, name);
        for (size_t i = 0; i < n; i++) {
                prom_sample(f, name, &scopes[i], "direction=\"to_private\"", scopes[i].s->bytes_to_private);
                prom_sample(f, name, &scopes[i], "direction=\"to_shared\"", scopes[i].s->bytes_to_shared);
        }

        for (size_t c = 0; c < ELEMENTSOF(prom_counters); c++) {
                snprintf(name, sizeof(name), "%s%s", prefix, prom_counters[c].name);
                fprintf(f, "# HELP %s %s\n# TYPE %s counter\n", name, prom_counters[c].help, name);
                for (size_t i = 0; i < n; i++)
                        prom_sample(f, name, &scopes[i], NULL, stats_field(scopes[i].s, prom_counters[c].offset));
        }

        prom_histogram(f, prefix, "decision_latency_seconds",
                       "Time from receiving a conversion request to sending its decision.", scopes, n, false);
        prom_histogram(f, prefix, "discard_latency_seconds",
                       "Time from queueing a discard of stale backing to its completion.", scopes, n, true);

        if (!vm_gauges)
                return;
        fprintf(f, "# HELP memconvd_vm_attached Whether the VM's VMM is attached (1) or it is detached (0).\n"
                   "# TYPE memconvd_vm_attached gauge\n");
        for (size_t i = 0; i < n; i++)
                prom_sample(f, "memconvd_vm_attached", &scopes[i], NULL,
                            strcmp(ctl_str(scopes[i].vm->state, ""), "attached") == 0);
        fprintf(f, "# HELP memconvd_private_bytes Registered guest memory that is private now.\n"
                   "# TYPE memconvd_private_bytes gauge\n");
        for (size_t i = 0; i < n; i++)
                prom_sample(f, "memconvd_private_bytes", &scopes[i], NULL, scopes[i].vm->private_bytes);
        fprintf(f, "# HELP memconvd_shared_bytes Registered guest memory that is shared now.\n"
                   "# TYPE memconvd_shared_bytes gauge\n");
        for (size_t i = 0; i < n; i++)
                prom_sample(f, "memconvd_shared_bytes", &scopes[i], NULL, scopes[i].vm->shared_bytes);
}

int ctl_stats_main(const struct ctl_command *cmd, struct ctl_options *opts, int argc, char **argv)
{
        enum { ARG_PROMETHEUS = CTL_OPT_FIRST_PRIVATE };
        static const struct option options[] = {
                { "prometheus", no_argument, NULL, ARG_PROMETHEUS },
                CTL_COMMON_OPTIONS,
                {}
        };
        Memconv__VmSelector sel = MEMCONV__VM_SELECTOR__INIT;
        Memconv__StatsRequest body = MEMCONV__STATS_REQUEST__INIT;
        Memconv__AdminRequest req = MEMCONV__ADMIN_REQUEST__INIT;
        _cleanup_reply_ Memconv__AdminReply *reply = NULL;
        _cleanup_free_ struct stats_scope *scopes = NULL;
        const Memconv__StatsReply *s;
        bool prometheus = false;
        const char *spec;
        size_t n;
        int c, r;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0)
                switch (c) {
                case ARG_PROMETHEUS:
                        prometheus = true;
                        break;
                default:
                        r = ctl_common_option(cmd, opts, c, argv);
                        if (r != 0)
                                return r > 0 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
                }
        r = ctl_take_vm_argument(cmd, argc, argv, false, &spec);
        if (r != 0)
                return r;
        if (prometheus && opts->json)
                return ctl_usage_error(cmd, "--prometheus and --json exclude each other");

        if (spec) {
                sel.spec = (char *) spec;
                body.vm = &sel;
        }
        req.body_case = MEMCONV__ADMIN_REQUEST__BODY_STATS;
        req.stats = &body;
        r = ctl_call(opts, cmd->name, &req, MEMCONV__ADMIN_REPLY__BODY_STATS, &reply);
        if (r != CTL_EXIT_OK)
                return r;
        s = reply->stats;
        if (spec && s->n_vms == 0) {
                fprintf(stderr, "memconvctl %s: memconvd's reply has no VM '%s'.\n", cmd->name, spec);
                return CTL_EXIT_FAILED;
        }

        if (opts->json)
                return stats_print_json(s, !spec) < 0 ? CTL_EXIT_FAILED : CTL_EXIT_OK;

        scopes = calloc(s->n_vms + 1, sizeof(*scopes));
        if (!scopes) {
                fprintf(stderr, "memconvctl %s: out of memory\n", cmd->name);
                return CTL_EXIT_FAILED;
        }
        if (prometheus) {
                n = stats_scopes(s, false, scopes);
                prom_print(stdout, "memconvd_", scopes, n, true);
                if (!spec) {
                        n = stats_scopes(s, true, scopes);
                        prom_print(stdout, "memconvd_daemon_", scopes, 1, false);
                }
                return CTL_EXIT_OK;
        }
        n = stats_scopes(s, !spec, scopes);
        if (stats_print_tables(scopes, n, opts->legend) < 0) {
                fprintf(stderr, "memconvctl %s: out of memory\n", cmd->name);
                return CTL_EXIT_FAILED;
        }
        return CTL_EXIT_OK;
}
