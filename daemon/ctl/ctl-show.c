/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * ctl-show.c - "memconvctl show VM" (one VM in detail, from a
 * ShowRequest) and "memconvctl ranges VM" (its attribute map, paged through
 * RangesRequest/RangesReply.next), plus the JSON form of a VmInfo and the
 * "Key: value" line printer that list, show and status share.
 *
 * Ranges are half-open, [gpa, gpa + size), in tables too: END is the first
 * address after the range, as in /proc/PID/maps.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "macro.h"

#define KEY_WIDTH 16
#define RANGES_PAGES_MAX 65536U  /* a daemon whose paging does not progress */

void ctl_field(FILE *f, int key_width, const char *key, const char *fmt, ...)
{
        va_list ap;

        if (*key)
                fprintf(f, "%*s: ", key_width, key);
        else
                fprintf(f, "%*s  ", key_width, "");  /* a continuation line */
        va_start(ap, fmt);
        vfprintf(f, fmt, ap);
        va_end(ap);
        fputc('\n', f);
}

void ctl_json_vm(struct json_writer *j, const char *key, const Memconv__VmInfo *vm, bool with_stats)
{
        json_object_begin(j, key);
        json_u64(j, "id", vm->id);
        json_string(j, "uuid", ctl_str(vm->uuid, NULL));
        json_string(j, "name", ctl_str(vm->name, NULL));
        json_string(j, "state", ctl_str(vm->state, NULL));
        json_string(j, "domain", ctl_str(vm->domain, NULL));
        json_string(j, "lease", ctl_str(vm->lease, NULL));
        if (vm->ring) {
                json_object_begin(j, "ring");
                json_u64(j, "entries", vm->ring->entries);
                json_u64(j, "replies", vm->ring->replies);
                json_u64(j, "socket_replies", vm->ring->socket_replies);
                json_u64(j, "kicks", vm->ring->kicks);
                json_u64(j, "stalls", vm->ring->stalls);
                json_object_end(j);
        }
        json_i64(j, "pid", vm->pid);
        json_u64(j, "uid", vm->uid);
        json_string(j, "cc_type", cc_type_name(vm->cc_type));
        json_string(j, "arch", arch_name(vm->arch));
        json_u64(j, "private_bytes", vm->private_bytes);
        json_u64(j, "shared_bytes", vm->shared_bytes);
        json_u64(j, "private_ranges", vm->ranges);
        json_u64(j, "attached_realtime_usec", vm->attached_realtime_usec);
        json_u64(j, "in_flight", vm->in_flight);
        json_u64(j, "waiting", vm->waiting);
        json_array_begin(j, "regions");
        for (size_t i = 0; i < vm->n_regions; i++) {
                const Memconv__RegionInfo *r = vm->regions[i];

                json_object_begin(j, NULL);
                json_u64(j, "slot", r->slot);
                json_u64(j, "gpa", r->gpa);
                json_u64(j, "size", r->size);
                json_bool(j, "has_shared", r->has_shared);
                json_object_end(j);
        }
        json_array_end(j);
        if (with_stats)
                ctl_json_stats(j, "stats", vm->stats);
        json_object_end(j);
}

/**
 * show_print_text() - @vm as "Key: value" lines on stdout
 */
static void show_print_text(const Memconv__VmInfo *vm)
{
        char a[FORMAT_BYTES_MAX], b[FORMAT_BYTES_MAX], ts[FORMAT_TIMESTAMP_MAX];
        bool attached = strcmp(ctl_str(vm->state, ""), "attached") == 0;

        ctl_field(stdout, KEY_WIDTH, "VM", "%s", ctl_str(vm->name, "-"));
        ctl_field(stdout, KEY_WIDTH, "ID", "#%" PRIu64, vm->id);
        ctl_field(stdout, KEY_WIDTH, "UUID", "%s", ctl_str(vm->uuid, "-"));
        if (ctl_str(vm->domain, "")[0])
                ctl_field(stdout, KEY_WIDTH, "Domain", "%s", vm->domain);
        ctl_field(stdout, KEY_WIDTH, "State", "%s, %sVMM pid %" PRIi32 ", uid %" PRIu32, ctl_str(vm->state, "-"),
                  attached ? "" : "last ", vm->pid, vm->uid);
        ctl_field(stdout, KEY_WIDTH, "Attached", "%s", format_timestamp(ts, vm->attached_realtime_usec));
        ctl_field(stdout, KEY_WIDTH, "Platform", "%s, %s", cc_type_name(vm->cc_type), arch_name(vm->arch));
        ctl_field(stdout, KEY_WIDTH, "Memory", "%s private in %" PRIu64 " range%s, %s shared",
                  format_bytes(a, vm->private_bytes), vm->ranges, vm->ranges == 1 ? "" : "s",
                  format_bytes(b, vm->shared_bytes));
        if (vm->n_regions == 0)
                ctl_field(stdout, KEY_WIDTH, "Regions", "none registered");
        for (size_t i = 0; i < vm->n_regions; i++) {
                const Memconv__RegionInfo *r = vm->regions[i];

                ctl_field(stdout, KEY_WIDTH, i == 0 ? "Regions" : "", "slot %" PRIu32 ": 0x%" PRIx64 "-0x%" PRIx64
                          " (%s), %s", r->slot, r->gpa, r->gpa + r->size, format_bytes(a, r->size),
                          r->has_shared ? "guest_memfd + shared memory" : "guest_memfd only");
        }
        if (ctl_str(vm->lease, "")[0])
                ctl_field(stdout, KEY_WIDTH, "Lease", "%s", vm->lease);
        if (vm->ring)
                ctl_field(stdout, KEY_WIDTH, "Request ring", "%" PRIu64 " messages taken, %" PRIu64
                          " answered in the ring, %" PRIu64 " on the socket; %" PRIu64 " kicks, %" PRIu64 " stalls",
                          vm->ring->entries, vm->ring->replies, vm->ring->socket_replies, vm->ring->kicks,
                          vm->ring->stalls);
        else if (attached)
                ctl_field(stdout, KEY_WIDTH, "Request ring", "none (all messages on the socket)");
        ctl_field(stdout, KEY_WIDTH, "In flight", "%" PRIu64 " decision%s not yet applied, %" PRIu64
                  " request%s waiting", vm->in_flight, vm->in_flight == 1 ? "" : "s", vm->waiting,
                  vm->waiting == 1 ? "" : "s");
        ctl_print_stats_fields(stdout, KEY_WIDTH, vm->stats);
}

int ctl_show_main(const struct ctl_command *cmd, struct ctl_options *opts, int argc, char **argv)
{
        static const struct option options[] = { CTL_COMMON_OPTIONS, {} };
        Memconv__VmSelector sel = MEMCONV__VM_SELECTOR__INIT;
        Memconv__ShowRequest body = MEMCONV__SHOW_REQUEST__INIT;
        Memconv__AdminRequest req = MEMCONV__ADMIN_REQUEST__INIT;
        _cleanup_reply_ Memconv__AdminReply *reply = NULL;
        const char *spec;
        int c, r;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0) {
                r = ctl_common_option(cmd, opts, c, argv);
                if (r != 0)
                        return r > 0 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
        }
        r = ctl_take_vm_argument(cmd, argc, argv, true, &spec);
        if (r != 0)
                return r;

        sel.spec = (char *) spec;
        body.vm = &sel;
        req.body_case = MEMCONV__ADMIN_REQUEST__BODY_SHOW;
        req.show = &body;
        r = ctl_call(opts, cmd->name, &req, MEMCONV__ADMIN_REPLY__BODY_SHOW, &reply);
        if (r != CTL_EXIT_OK)
                return r;
        if (!reply->show->vm) {
                fprintf(stderr, "memconvctl %s: memconvd's reply names no VM.\n", cmd->name);
                return CTL_EXIT_FAILED;
        }

        if (opts->json) {
                struct json_writer j;

                json_init(&j, stdout, true);
                ctl_json_vm(&j, NULL, reply->show->vm, true);
                return json_finish(&j) < 0 ? CTL_EXIT_FAILED : CTL_EXIT_OK;
        }
        show_print_text(reply->show->vm);
        return CTL_EXIT_OK;
}

/* ------------------------------------------------------------------ ranges */

/* All pages of a ranges answer, kept until printed. */
struct ranges_pages {
        Memconv__AdminReply **replies;  /* owned */
        size_t n;
};

/**
 * ranges_pages_free() - free every page of @p (cleanup handler)
 */
static void ranges_pages_free(struct ranges_pages *p)
{
        for (size_t i = 0; i < p->n; i++)
                memconv__admin_reply__free_unpacked(p->replies[i], NULL);
        free(p->replies);
        *p = (struct ranges_pages) {};
}

/**
 * ranges_print() - every range of @p as a table or one JSON document
 * Return: 0, -ENOMEM, -EINVAL (JSON writer misuse)
 */
static int ranges_print(const struct ranges_pages *p, const struct ctl_options *opts)
{
        static const char *const headers[] = { "START", "END", "SIZE", "ATTRIBUTE" };
        _cleanup_table_ struct table *t = NULL;
        uint64_t bytes[2] = {};
        size_t count = 0;
        struct json_writer j;
        int r;

        if (opts->json) {
                json_init(&j, stdout, true);
                json_object_begin(&j, NULL);
                json_array_begin(&j, "ranges");
                for (size_t i = 0; i < p->n; i++)
                        for (size_t k = 0; k < p->replies[i]->ranges->n_ranges; k++) {
                                const Memconv__AttrRange *a = p->replies[i]->ranges->ranges[k];

                                json_object_begin(&j, NULL);
                                json_u64(&j, "gpa", a->gpa);
                                json_u64(&j, "size", a->size);
                                json_u64(&j, "end", a->gpa + a->size);
                                json_string(&j, "attribute", attribute_name(a->attribute));
                                json_object_end(&j);
                        }
                json_array_end(&j);
                json_object_end(&j);
                return json_finish(&j);
        }

        r = table_new(headers, ELEMENTSOF(headers), &t);
        if (r < 0)
                return r;
        table_set_right(t, 0);
        table_set_right(t, 1);
        table_set_right(t, 2);
        for (size_t i = 0; i < p->n; i++)
                for (size_t k = 0; k < p->replies[i]->ranges->n_ranges; k++) {
                        const Memconv__AttrRange *a = p->replies[i]->ranges->ranges[k];
                        char size[FORMAT_BYTES_MAX];

                        bytes[a->attribute == MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE] += a->size;
                        count++;
                        if (table_add(t, "0x%" PRIx64, a->gpa) < 0 ||
                            table_add(t, "0x%" PRIx64, a->gpa + a->size) < 0 ||
                            table_add(t, "%s", format_bytes(size, a->size)) < 0 ||
                            table_add(t, "%s", attribute_name(a->attribute)) < 0)
                                return -ENOMEM;
                }
        if (count > 0 || opts->legend)
                table_print(t, stdout, opts->legend);
        if (opts->legend) {
                char a[FORMAT_BYTES_MAX], b[FORMAT_BYTES_MAX];

                printf("\n%zu range%s: %s private, %s shared.\n", count, count == 1 ? "" : "s",
                       format_bytes(a, bytes[1]), format_bytes(b, bytes[0]));
        }
        return 0;
}

int ctl_ranges_main(const struct ctl_command *cmd, struct ctl_options *opts, int argc, char **argv)
{
        enum { ARG_PRIVATE = CTL_OPT_FIRST_PRIVATE, ARG_SHARED, ARG_START, ARG_END };
        static const struct option options[] = {
                { "private", no_argument, NULL, ARG_PRIVATE },
                { "shared", no_argument, NULL, ARG_SHARED },
                { "start", required_argument, NULL, ARG_START },
                { "end", required_argument, NULL, ARG_END },
                CTL_COMMON_OPTIONS,
                {}
        };
        Memconv__VmSelector sel = MEMCONV__VM_SELECTOR__INIT;
        Memconv__RangesRequest body = MEMCONV__RANGES_REQUEST__INIT;
        Memconv__AdminRequest req = MEMCONV__ADMIN_REQUEST__INIT;
        _cleanup_(ranges_pages_free) struct ranges_pages pages = {};
        uint64_t start = 0, end = 0;
        const char *spec;
        int c, r;

        while ((c = getopt_long(argc, argv, ":h", options, NULL)) >= 0)
                switch (c) {
                case ARG_PRIVATE:
                case ARG_SHARED:
                        if (body.filter)
                                return ctl_usage_error(cmd, "--private and --shared exclude each other "
                                                       "(give neither to see both)");
                        body.filter = true;
                        body.attribute = c == ARG_PRIVATE ? MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE
                                                          : MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
                        break;
                case ARG_START:
                case ARG_END:
                        r = ctl_parse_gpa(optarg, c == ARG_START ? &start : &end);
                        if (r < 0)
                                return ctl_usage_error(cmd, "%s '%s' is not an address: use hex (0x100000) or "
                                                       "decimal, optionally with K, M, G or T",
                                                       c == ARG_START ? "--start" : "--end", optarg);
                        break;
                default:
                        r = ctl_common_option(cmd, opts, c, argv);
                        if (r != 0)
                                return r > 0 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
                }
        r = ctl_take_vm_argument(cmd, argc, argv, true, &spec);
        if (r != 0)
                return r;
        if (end != 0 && end <= start)
                return ctl_usage_error(cmd, "--end 0x%" PRIx64 " must lie above --start 0x%" PRIx64, end, start);

        sel.spec = (char *) spec;
        body.vm = &sel;
        body.end = end;
        req.body_case = MEMCONV__ADMIN_REQUEST__BODY_RANGES;
        req.ranges = &body;

        for (uint64_t next = start;;) {
                _cleanup_reply_ Memconv__AdminReply *reply = NULL;
                Memconv__AdminReply **a;

                body.start = next;
                req.id = 0;
                r = ctl_call(opts, cmd->name, &req, MEMCONV__ADMIN_REPLY__BODY_RANGES, &reply);
                if (r != CTL_EXIT_OK)
                        return r;
                a = realloc(pages.replies, (pages.n + 1) * sizeof(*a));
                if (!a) {
                        fprintf(stderr, "memconvctl %s: out of memory\n", cmd->name);
                        return CTL_EXIT_FAILED;
                }
                pages.replies = a;
                next = reply->ranges->next;
                pages.replies[pages.n++] = TAKE_PTR(reply);
                if (next == 0)
                        break;
                if (next <= body.start || (end != 0 && next >= end) || pages.n >= RANGES_PAGES_MAX) {
                        fprintf(stderr, "memconvctl %s: memconvd's paging does not progress "
                                        "(next 0x%" PRIx64 " after start 0x%" PRIx64 ").\n",
                                cmd->name, next, body.start);
                        return CTL_EXIT_FAILED;
                }
        }

        r = ranges_print(&pages, opts);
        if (r < 0) {
                fprintf(stderr, "memconvctl %s: cannot format the output: %s\n", cmd->name, strerror(-r));
                return CTL_EXIT_FAILED;
        }
        return CTL_EXIT_OK;
}
