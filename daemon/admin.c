/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * admin.c - the admin socket; see admin.h.
 *
 * Replies are built from protobuf-c structs whose memory comes from a
 * per-request arena (struct arena), freed in one go after the reply is
 * encoded, so no handler has to free nested messages piece by piece.
 *
 * `check` inspects backing on the loop thread: SEEK_DATA/SEEK_HOLE on the
 * shared fd and mincore() on a read-only mapping of the guest_memfd (which
 * has no SEEK_DATA). It is an operator's command, rare by nature; it works
 * in 1 GiB steps and never faults pages in.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin.h"
#include "frame.h"
#include "log.h"
#include "macro.h"
#include "message.h"
#include "outq.h"
#include "policy.h"
#include "registry.h"
#include "reqring.h"
#include "session.h"
#include "vm.h"

#define ADMIN_OUTQ_MAX 256
#define RANGES_PER_REPLY 2000
#define HISTORY_PER_REPLY 600
#define CHECK_FINDINGS_MAX 1000
#define CHECK_STEP (1ULL << 30)

struct admin_follower;

struct admin_conn {
        LIST_ENTRY(admin_conn) link;
        struct daemon *daemon;
        int fd;                        /* owned */
        sd_event_source *source;
        struct ucred cred;
        bool refused;
        bool broken;
        struct outq outq;
        struct admin_follower *follower; /* at most one stream per connection */
};

struct admin_follower {
        LIST_ENTRY(admin_follower) link;  /* in vm->followers */
        struct admin_conn *conn;
        struct vm *vm;
        uint64_t request_id;
        uint64_t last_seq;
};

/* ------------------------------------------------------------------ arena */

struct arena_chunk {
        struct arena_chunk *next;
        max_align_t data[];
};

struct arena {
        struct arena_chunk *chunks;
        bool failed;
};

/**
 * arena_alloc() - zeroed memory that lives until arena_free()
 * Return: the memory, or NULL (and the arena remembers the failure)
 */
static void *arena_alloc(struct arena *a, size_t n)
{
        struct arena_chunk *c = calloc(1, sizeof(*c) + n);

        if (!c) {
                a->failed = true;
                return NULL;
        }
        c->next = a->chunks;
        a->chunks = c;
        return c->data;
}

static char *arena_strdup(struct arena *a, const char *s)
{
        char *p = arena_alloc(a, strlen(s) + 1);

        return p ? strcpy(p, s) : NULL;
}

static void arena_free(struct arena *a)
{
        while (a->chunks) {
                struct arena_chunk *c = a->chunks;

                a->chunks = c->next;
                free(c);
        }
}

/* ------------------------------------------------------------------ sending */

static void admin_conn_update_events(struct admin_conn *c)
{
        (void) sd_event_source_set_io_events(c->source, EPOLLIN | (outq_pending(&c->outq) ? EPOLLOUT : 0));
}

/**
 * admin_send() - send or queue @reply; a peer that does not read is dropped
 * Return: 0 or negative errno (the connection is then broken)
 */
static int admin_send(struct admin_conn *c, const Memconv__AdminReply *reply)
{
        int r;

        if (c->broken)
                return -ECONNRESET;
        r = outq_send(&c->outq, c->fd, &reply->base);
        if (r < 0) {
                if (r == -ENOBUFS)
                        log_notice("Admin client pid %d does not read its replies; disconnecting", (int) c->cred.pid);
                c->broken = true;
                return r;
        }
        admin_conn_update_events(c);
        return 0;
}

/**
 * admin_reply_error() - answer request @id with a refusal
 */
static int admin_reply_error(struct admin_conn *c, uint64_t id, Memconv__Code code, int error, const char *fmt, ...)
        __attribute__((format(printf, 5, 6)));
static int admin_reply_error(struct admin_conn *c, uint64_t id, Memconv__Code code, int error, const char *fmt, ...)
{
        Memconv__AdminReply reply = MEMCONV__ADMIN_REPLY__INIT;
        Memconv__Status st = MEMCONV__STATUS__INIT;
        char text[MC_STATUS_TEXT_MAX];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(text, sizeof(text), fmt, ap);
        va_end(ap);
        st.code = code;
        st.errno_value = error;
        st.message = text;
        reply.id = id;
        reply.status = &st;
        return admin_send(c, &reply);
}

/* ------------------------------------------------------------------ building replies */

/**
 * histogram_to_pb() - a Histogram message for @h
 */
static Memconv__Histogram *histogram_to_pb(struct arena *a, const struct histogram *h)
{
        Memconv__Histogram *m = arena_alloc(a, sizeof(*m));
        uint64_t *b = arena_alloc(a, sizeof(uint64_t) * HISTOGRAM_BUCKETS);

        if (!m || !b)
                return NULL;
        memconv__histogram__init(m);
        memcpy(b, h->buckets, sizeof(uint64_t) * HISTOGRAM_BUCKETS);
        m->buckets = b;
        m->n_buckets = HISTOGRAM_BUCKETS;
        m->count = h->count;
        m->sum_usec = h->sum_usec;
        m->max_usec = h->max_usec;
        m->p50_usec = histogram_percentile(h, 50);
        m->p99_usec = histogram_percentile(h, 99);
        return m;
}

/**
 * stats_add() - add @vm's counters into @m (a zeroed or partial total)
 */
static void stats_add(Memconv__ConversionStats *m, const struct vm *vm)
{
        const struct vm_stats *s = &vm->stats;

        m->explicit_to_private += s->conversions[0][1];
        m->explicit_to_shared += s->conversions[0][0];
        m->implicit_to_private += s->conversions[1][1];
        m->implicit_to_shared += s->conversions[1][0];
        m->spurious += s->spurious;
        m->mmio_noop += s->mmio_noop;
        m->refused += s->refused;
        m->not_handled += s->not_handled;
        m->rolled_back += s->rolled_back;
        m->abandoned += s->abandoned;
        m->waited += s->waited;
        m->bytes_to_private += s->bytes_to_private;
        m->bytes_to_shared += s->bytes_to_shared;
        m->discards += s->discards;
        m->discard_errors += s->discard_errors;
        m->discard_bytes += s->discard_bytes;
        m->policy_refused += s->policy_refused;
        m->policy_delayed += s->policy_delayed;
        m->journal_errors += s->journal_errors;
        m->reapplied += s->reapplied;
        m->discard_retries += s->discard_retries;
        m->leased += s->leased;
        m->lease_grants += s->lease_grants;
        m->lease_revocations += s->lease_revocations;
        m->leased_batches += s->leased_batches;
}

/**
 * stats_to_pb() - ConversionStats over @vm, or over every VM when NULL
 */
static Memconv__ConversionStats *stats_to_pb(struct arena *a, struct daemon *d, const struct vm *only)
{
        Memconv__ConversionStats *m = arena_alloc(a, sizeof(*m));
        struct histogram dec = { 0 }, dis = { 0 };
        const struct vm *vm;

        if (!m)
                return NULL;
        memconv__conversion_stats__init(m);
        LIST_FOREACH(vm, &d->vms, link) {
                if (only && vm != only)
                        continue;
                stats_add(m, vm);
                histogram_merge(&dec, &vm->decision_latency);
                histogram_merge(&dis, &vm->discard_latency);
        }
        m->decision_latency = histogram_to_pb(a, &dec);
        m->discard_latency = histogram_to_pb(a, &dis);
        return m;
}

/**
 * vm_domain_label() - which domain @vm is: the policy chain's label (the
 * libvirt plugin names the domain and its state from libvirt itself), else
 * the name libvirt's hook registered for its uuid, else ""
 */
static char *vm_domain_label(struct arena *a, struct daemon *d, const struct vm *vm)
{
        struct mc_policy_vm pv = vm_policy_vm(vm);
        char label[128];

        policy_chain_label(d->policy, &pv, label, sizeof(label));
        if (!label[0] && pv.registered_name)
                snprintf(label, sizeof(label), "%s", pv.registered_name);
        return label[0] ? arena_strdup(a, label) : (char *) "";
}

/**
 * vm_to_pb() - VmInfo for @vm (with regions and stats)
 */
static Memconv__VmInfo *vm_to_pb(struct arena *a, struct daemon *d, struct vm *vm)
{
        Memconv__VmInfo *m = arena_alloc(a, sizeof(*m));
        uint64_t ram = 0;

        if (!m)
                return NULL;
        memconv__vm_info__init(m);
        m->id = vm->id;
        m->uuid = arena_strdup(a, vm->uuid_str);
        m->name = arena_strdup(a, vm->name);
        m->state = (char *) (vm->state == VM_ATTACHED ? "attached" : "detached");
        m->pid = (int32_t) vm->pid;
        m->uid = (uint32_t) vm->uid;
        m->cc_type = (Memconv__CcType) vm->cc_type;
        m->arch = (Memconv__Arch) vm->arch;
        m->private_bytes = vm_private_bytes(vm);
        m->ranges = mc_rangemap_count(vm->attrs);
        m->attached_realtime_usec = vm->attached_realtime_usec;
        m->in_flight = vm->n_in_flight;
        m->waiting = vm->n_waiting;
        /* Known regions: a detached VM keeps its map over the regions it had. */
        if (vm->n_known > 0) {
                m->regions = arena_alloc(a, sizeof(*m->regions) * vm->n_known);
                for (size_t i = 0; m->regions && i < vm->n_known; i++) {
                        Memconv__RegionInfo *ri = arena_alloc(a, sizeof(*ri));

                        if (!ri)
                                break;
                        memconv__region_info__init(ri);
                        ri->slot = vm->known[i].slot;
                        ri->gpa = vm->known[i].gpa;
                        ri->size = vm->known[i].size;
                        ri->has_shared = vm->known[i].has_shared;
                        m->regions[m->n_regions++] = ri;
                        ram += vm->known[i].size;
                }
        }
        m->shared_bytes = ram - m->private_bytes;
        m->stats = stats_to_pb(a, d, vm);
        m->domain = vm_domain_label(a, d, vm);
        {
                char lease[256];

                lease_describe(vm, lease, sizeof(lease));
                m->lease = lease[0] ? arena_strdup(a, lease) : (char *) "";
        }
        {
                struct reqring_stats rs;

                if (vm->state == VM_ATTACHED && session_ring_stats(vm->session, &rs) &&
                    (m->ring = arena_alloc(a, sizeof(*m->ring)))) {
                        memconv__ring_info__init(m->ring);
                        m->ring->entries = rs.entries;
                        m->ring->replies = rs.replies;
                        m->ring->socket_replies = rs.socket_replies;
                        m->ring->kicks = rs.kicks;
                        m->ring->stalls = rs.stalls;
                }
        }
        return m;
}

/**
 * vm_resolve() - the VM a selector names
 * Return: it, or NULL
 */
static struct vm *vm_resolve(struct daemon *d, const Memconv__VmSelector *sel)
{
        struct vm *vm, *best = NULL;
        const char *spec = sel ? sel->spec : NULL;
        uint64_t id = 0;
        char *end;

        if (!spec || !*spec)
                return NULL;
        if (spec[0] == '#' || (spec[0] >= '0' && spec[0] <= '9')) {
                errno = 0;
                id = strtoull(spec + (spec[0] == '#'), &end, 10);
                if (errno || *end)
                        id = 0;
        }
        /* The list is newest first; an attached instance wins over detached ones. */
        LIST_FOREACH(vm, &d->vms, link) {
                bool match = (id && vm->id == id) || strcasecmp(vm->uuid_str, spec) == 0 ||
                             strcmp(vm->name, spec) == 0;

                if (!match)
                        continue;
                if (vm->state == VM_ATTACHED)
                        return vm;
                if (!best)
                        best = vm;
        }
        return best;
}

/* ------------------------------------------------------------------ handlers */

typedef int (*admin_handler)(struct admin_conn *c, const Memconv__AdminRequest *req, struct arena *a,
                             Memconv__AdminReply *reply);

static int handle_status(struct admin_conn *c, const Memconv__AdminRequest *req, struct arena *a,
                         Memconv__AdminReply *reply)
{
        struct daemon *d = c->daemon;
        Memconv__StatusReply *m = arena_alloc(a, sizeof(*m));
        struct vm *vm;

        if (!m)
                return -ENOMEM;
        memconv__status_reply__init(m);
        m->version = (char *) PACKAGE_VERSION;
        m->pid = (uint64_t) getpid();
        m->uptime_usec = daemon_now() - d->started_usec;
        m->vmm_socket = d->config.vmm_socket_path;
        m->admin_socket = d->config.admin_socket_path;
        m->state_directory = d->config.journal ? d->config.state_dir : (char *) "";
        LIST_FOREACH(vm, &d->vms, link) {
                if (vm->state == VM_ATTACHED)
                        m->vms_attached++;
                else
                        m->vms_detached++;
        }
        m->sessions_total = d->sessions_total;
        m->protocol_errors = d->protocol_errors;
        m->peers_refused = d->peers_refused;
        m->totals = stats_to_pb(a, d, NULL);
        m->polling = arena_alloc(a, sizeof(*m->polling));
        if (!m->polling)
                return -ENOMEM;
        memconv__loop_polling__init(m->polling);
        m->polling->max_usec = d->spin.max_ns / 1000;
        m->polling->window_usec = d->spin.cur_ns / 1000;
        m->polling->hits = d->spin.hits;
        m->polling->misses = d->spin.misses;
        m->polling->poll_usec = d->spin.spin_ns / 1000;
        m->ring = d->config.ring;
        reply->body_case = MEMCONV__ADMIN_REPLY__BODY_STATUS_REPLY;
        reply->status_reply = m;
        return 0;
}

static int handle_list(struct admin_conn *c, const Memconv__AdminRequest *req, struct arena *a,
                       Memconv__AdminReply *reply)
{
        Memconv__ListReply *m = arena_alloc(a, sizeof(*m));
        struct daemon *d = c->daemon;
        struct vm *vm;

        if (!m)
                return -ENOMEM;
        memconv__list_reply__init(m);
        if (d->n_vms > 0)
                m->vms = arena_alloc(a, sizeof(*m->vms) * d->n_vms);
        LIST_FOREACH(vm, &d->vms, link)
                if (m->vms)
                        m->vms[m->n_vms++] = vm_to_pb(a, d, vm);
        reply->body_case = MEMCONV__ADMIN_REPLY__BODY_LIST;
        reply->list = m;
        return 0;
}

/**
 * resolve_or_refuse() - the VM of @sel, or answer UNKNOWN_VM
 * Return: the VM, or NULL when the refusal was sent
 */
static struct vm *resolve_or_refuse(struct admin_conn *c, uint64_t id, const Memconv__VmSelector *sel)
{
        struct vm *vm = vm_resolve(c->daemon, sel);

        if (!vm)
                (void) admin_reply_error(c, id, MEMCONV__CODE__CODE_UNKNOWN_VM, -ESRCH,
                                         "no VM matches \"%s\" (give a uuid, a name or an id; see memconvctl list)",
                                         sel && sel->spec ? sel->spec : "");
        return vm;
}

static int handle_show(struct admin_conn *c, const Memconv__AdminRequest *req, struct arena *a,
                       Memconv__AdminReply *reply)
{
        Memconv__ShowReply *m;
        struct vm *vm = resolve_or_refuse(c, req->id, req->show->vm);

        if (!vm)
                return 1;
        m = arena_alloc(a, sizeof(*m));
        if (!m)
                return -ENOMEM;
        memconv__show_reply__init(m);
        m->vm = vm_to_pb(a, c->daemon, vm);
        reply->body_case = MEMCONV__ADMIN_REPLY__BODY_SHOW;
        reply->show = m;
        return 0;
}

struct ranges_walk {
        struct arena *arena;
        Memconv__RangesReply *reply;
        size_t limit;
        bool filter;
        bool want_private;
        uint64_t next;
};

static int ranges_walk_fn(uint64_t start, uint64_t end, uint64_t value, void *userdata)
{
        struct ranges_walk *w = userdata;
        bool private_ = value & MC_ATTR_PRIVATE;
        Memconv__AttrRange *r;

        if (w->filter && private_ != w->want_private)
                return 0;
        if (w->reply->n_ranges >= w->limit) {
                w->next = start;
                return 1;
        }
        r = arena_alloc(w->arena, sizeof(*r));
        if (!r)
                return -ENOMEM;
        memconv__attr_range__init(r);
        r->gpa = start;
        r->size = end - start;
        r->attribute = private_ ? MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE : MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
        w->reply->ranges[w->reply->n_ranges++] = r;
        return 0;
}

static int known_cmp(const void *a, const void *b)
{
        const struct known_region *x = *(const struct known_region *const *) a;
        const struct known_region *y = *(const struct known_region *const *) b;

        return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

static int handle_ranges(struct admin_conn *c, const Memconv__AdminRequest *req, struct arena *a,
                         Memconv__AdminReply *reply)
{
        const Memconv__RangesRequest *rq = req->ranges;
        struct vm *vm = resolve_or_refuse(c, req->id, rq->vm);
        uint64_t end = rq->end ? rq->end : UINT64_MAX;
        struct ranges_walk w = { .arena = a };
        const struct known_region **known_sorted;

        if (!vm)
                return 1;
        if (end <= rq->start)
                return admin_reply_error(c, req->id, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                         "ranges: end 0x%" PRIx64 " is not above start 0x%" PRIx64, end, rq->start), 1;
        w.reply = arena_alloc(a, sizeof(*w.reply));
        w.limit = rq->limit && rq->limit < RANGES_PER_REPLY ? rq->limit : RANGES_PER_REPLY;
        known_sorted = arena_alloc(a, sizeof(*known_sorted) * (vm->n_known + 1));
        if (!w.reply || !known_sorted)
                return -ENOMEM;
        for (size_t i = 0; i < vm->n_known; i++)
                known_sorted[i] = &vm->known[i];
        qsort(known_sorted, vm->n_known, sizeof(*known_sorted), known_cmp);
        memconv__ranges_reply__init(w.reply);
        w.reply->ranges = arena_alloc(a, sizeof(*w.reply->ranges) * w.limit);
        if (!w.reply->ranges)
                return -ENOMEM;
        w.filter = rq->filter;
        w.want_private = rq->attribute == MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
        /* Walk each region's part of the window: registered RAM only (in gpa order). */
        for (size_t i = 0; i < vm->n_known && !w.next; i++) {
                const struct known_region *r = known_sorted[i];
                uint64_t s = r->gpa > rq->start ? r->gpa : rq->start;
                uint64_t e = r->gpa + r->size < end ? r->gpa + r->size : end;
                int q;

                if (s >= e)
                        continue;
                q = mc_rangemap_walk(vm->attrs, s, e, ranges_walk_fn, &w);
                if (q < 0)
                        return q;
        }
        w.reply->next = w.next;
        reply->body_case = MEMCONV__ADMIN_REPLY__BODY_RANGES;
        reply->ranges = w.reply;
        return 0;
}

/**
 * history_fill() - put up to @limit records with seq > @since (and time >=
 * @since_rt) into a HistoryReply
 * Return: the reply (NULL on ENOMEM); @ret_last is the last seq included
 */
static Memconv__HistoryReply *history_fill(struct arena *a, struct vm *vm, uint64_t since, uint64_t since_rt,
                                           size_t limit, uint64_t *ret_last)
{
        Memconv__HistoryReply *m = arena_alloc(a, sizeof(*m));
        long i = history_find(&vm->history, since);

        if (!m)
                return NULL;
        memconv__history_reply__init(m);
        *ret_last = since;
        if (i < 0)
                return m;
        m->records = arena_alloc(a, sizeof(*m->records) * limit);
        if (!m->records)
                return NULL;
        for (; (size_t) i < vm->history.count; i++) {
                const struct history_record *h = history_at(&vm->history, (size_t) i);
                Memconv__HistoryRecord *r;

                *ret_last = h->seq;
                if (h->realtime_usec < since_rt)
                        continue;
                if (m->n_records >= limit) {
                        *ret_last = h->seq - 1;
                        m->more = true;
                        break;
                }
                r = arena_alloc(a, sizeof(*r));
                if (!r)
                        return NULL;
                history_record_to_pb(r, h);
                m->records[m->n_records++] = r;
        }
        return m;
}

/**
 * admin_follow_push() - send a follower what it has not seen yet
 * Return: 0 or negative errno (the connection is then broken)
 */
static int admin_follow_push(struct admin_follower *f)
{
        Memconv__AdminReply reply = MEMCONV__ADMIN_REPLY__INIT;
        uint64_t last;
        int r = 0;

        while (!f->conn->broken && f->last_seq < f->vm->history.last_seq) {
                struct arena a = { 0 };

                reply.id = f->request_id;
                reply.body_case = MEMCONV__ADMIN_REPLY__BODY_HISTORY;
                reply.history = history_fill(&a, f->vm, f->last_seq, 0, HISTORY_PER_REPLY, &last);
                if (!reply.history) {
                        arena_free(&a);
                        return -ENOMEM;
                }
                reply.history->more = true; /* a stream never ends by itself */
                r = admin_send(f->conn, &reply);
                arena_free(&a);
                if (r < 0)
                        return r;
                f->last_seq = last;
        }
        return r;
}

static void admin_follower_free(struct admin_follower *f)
{
        if (!f)
                return;
        LIST_REMOVE(f, link);
        f->conn->follower = NULL;
        free(f);
}

static int handle_history(struct admin_conn *c, const Memconv__AdminRequest *req, struct arena *a,
                          Memconv__AdminReply *reply)
{
        const Memconv__HistoryRequest *rq = req->history;
        struct vm *vm = resolve_or_refuse(c, req->id, rq->vm);
        size_t limit = rq->limit && rq->limit < HISTORY_PER_REPLY ? rq->limit : HISTORY_PER_REPLY;
        uint64_t since = rq->since_seq, last;
        bool more;

        if (!vm)
                return 1;
        if (rq->follow && c->follower)
                return admin_reply_error(c, req->id, MEMCONV__CODE__CODE_EXISTS, -EEXIST,
                                         "history: this connection already follows a VM"), 1;
        if (rq->follow) {
                struct admin_follower *f = calloc(1, sizeof(*f));

                if (!f)
                        return -ENOMEM;
                f->conn = c;
                f->vm = vm;
                f->request_id = req->id;
                f->last_seq = since;
                LIST_INSERT_HEAD(&vm->followers, f, link);
                c->follower = f;
                /* Send an empty first reply so the client knows the stream is on. */
                reply->body_case = MEMCONV__ADMIN_REPLY__BODY_HISTORY;
                reply->history = history_fill(a, vm, since, rq->since_realtime_usec, 0, &last);
                if (!reply->history)
                        return -ENOMEM;
                reply->history->more = true;
                return 0;
        }
        /* A bounded query: as many replies as needed, the last with more = false. */
        for (;;) {
                Memconv__AdminReply part = MEMCONV__ADMIN_REPLY__INIT;
                struct arena pa = { 0 };
                int r;

                part.id = req->id;
                part.body_case = MEMCONV__ADMIN_REPLY__BODY_HISTORY;
                part.history = history_fill(&pa, vm, since, rq->since_realtime_usec,
                                            rq->limit ? limit : HISTORY_PER_REPLY, &last);
                if (!part.history) {
                        arena_free(&pa);
                        return -ENOMEM;
                }
                if (rq->limit)
                        part.history->more = false;
                more = part.history->more;
                r = admin_send(c, &part);
                arena_free(&pa);  /* part.history is gone from here on */
                if (r < 0 || rq->limit || !more)
                        return 1;
                since = last;
        }
}

static int handle_stats(struct admin_conn *c, const Memconv__AdminRequest *req, struct arena *a,
                        Memconv__AdminReply *reply)
{
        const Memconv__StatsRequest *rq = req->stats;
        Memconv__StatsReply *m = arena_alloc(a, sizeof(*m));
        struct daemon *d = c->daemon;
        struct vm *only = NULL, *vm;

        if (!m)
                return -ENOMEM;
        if (rq->vm && rq->vm->spec && *rq->vm->spec) {
                only = resolve_or_refuse(c, req->id, rq->vm);
                if (!only)
                        return 1;
        }
        memconv__stats_reply__init(m);
        m->totals = stats_to_pb(a, d, only);
        if (d->n_vms > 0)
                m->vms = arena_alloc(a, sizeof(*m->vms) * d->n_vms);
        LIST_FOREACH(vm, &d->vms, link)
                if (m->vms && (!only || vm == only))
                        m->vms[m->n_vms++] = vm_to_pb(a, d, vm);
        reply->body_case = MEMCONV__ADMIN_REPLY__BODY_STATS;
        reply->stats = m;
        return 0;
}

struct check_ctx {
        struct arena *arena;
        Memconv__CheckReply *reply;
        const struct region *region;
        const uint8_t *gmem_map;       /* read-only mapping of the region's guest_memfd, or NULL */
        uint64_t shared_bytes_with_data;
};

/**
 * check_add() - record a finding (at most CHECK_FINDINGS_MAX)
 */
static void check_add(struct check_ctx *x, Memconv__CheckFinding__Kind kind, uint64_t gpa, uint64_t size,
                      bool private_, const char *detail)
{
        Memconv__CheckFinding *f;

        if (x->reply->n_findings >= CHECK_FINDINGS_MAX)
                return;
        f = arena_alloc(x->arena, sizeof(*f));
        if (!f)
                return;
        memconv__check_finding__init(f);
        f->kind = kind;
        f->gpa = gpa;
        f->size = size;
        f->attribute = private_ ? MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE : MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
        f->detail = arena_strdup(x->arena, detail);
        x->reply->findings[x->reply->n_findings++] = f;
}

/**
 * shared_has_data() - whether the shared fd has data in [off, off+len)
 * Return: 1, 0, or negative errno
 */
static int shared_has_data(int fd, uint64_t off, uint64_t len, uint64_t *ret_first)
{
        off_t d = lseek(fd, (off_t) off, SEEK_DATA);

        if (d < 0)
                return errno == ENXIO ? 0 : negative_errno();
        if ((uint64_t) d >= off + len)
                return 0;
        *ret_first = (uint64_t) d;
        return 1;
}

/**
 * gmem_resident() - whether any page of the guest_memfd mapping in
 * [off, off+len) is allocated (mincore; nothing is faulted in)
 * Return: 1, 0, or negative errno
 */
static int gmem_resident(const uint8_t *map, uint64_t off, uint64_t len)
{
        static unsigned char vec[CHECK_STEP / 4096];

        for (uint64_t pos = 0; pos < len; pos += CHECK_STEP) {
                uint64_t n = len - pos < CHECK_STEP ? len - pos : CHECK_STEP;

                if (mincore((void *) (map + off + pos), n, vec) < 0)
                        return negative_errno();
                for (uint64_t i = 0; i < (n + 4095) / 4096; i++)
                        if (vec[i] & 1)
                                return 1;
        }
        return 0;
}

static int check_walk_fn(uint64_t start, uint64_t end, uint64_t value, void *userdata)
{
        struct check_ctx *x = userdata;
        const struct region *r = x->region;
        bool private_ = value & MC_ATTR_PRIVATE;
        uint64_t off = start - r->gpa, len = end - start, first = 0;
        int shared = 0, gmem = -1;

        if (r->shared_fd >= 0) {
                shared = shared_has_data(r->shared_fd, r->shared_offset + off, len, &first);
                if (shared < 0)
                        return shared;
        }
        if (x->gmem_map) {
                gmem = gmem_resident(x->gmem_map, off, len);
                if (gmem < 0)
                        return gmem;
        }
        if (private_ && shared > 0 && gmem != 0)
                check_add(x, MEMCONV__CHECK_FINDING__KIND__KIND_BACKED_TWICE, start, len, true,
                          "private, but the shared memory still holds pages (stale shared backing)");
        else if (private_ && shared > 0 && gmem == 0)
                check_add(x, MEMCONV__CHECK_FINDING__KIND__KIND_PRIVATE_WITHOUT_GMEM, start, len, true,
                          "private, but only the shared memory holds pages");
        else if (!private_ && gmem > 0 && shared > 0)
                check_add(x, MEMCONV__CHECK_FINDING__KIND__KIND_BACKED_TWICE, start, len, false,
                          "shared, but the guest_memfd still holds pages (stale private backing)");
        return 0;
}

static int check_discard_failed_fn(uint64_t start, uint64_t end, uint64_t value, void *userdata)
{
        struct check_ctx *x = userdata;

        if (value)
                check_add(x, MEMCONV__CHECK_FINDING__KIND__KIND_DISCARD_FAILED, start, end - start, false,
                          "discarding the stale backing failed (see the daemon log); it may still be allocated");
        return 0;
}

static int handle_check(struct admin_conn *c, const Memconv__AdminRequest *req, struct arena *a,
                        Memconv__AdminReply *reply)
{
        struct vm *vm = resolve_or_refuse(c, req->id, req->check->vm);
        struct check_ctx x = { .arena = a };

        if (!vm)
                return 1;
        if (vm->state != VM_ATTACHED)
                return admin_reply_error(c, req->id, MEMCONV__CODE__CODE_NOT_ATTACHED, -ENOTCONN,
                                         "check: VM %s is detached; its memory is gone with its fds", vm->name), 1;
        x.reply = arena_alloc(a, sizeof(*x.reply));
        if (!x.reply)
                return -ENOMEM;
        memconv__check_reply__init(x.reply);
        x.reply->findings = arena_alloc(a, sizeof(*x.reply->findings) * CHECK_FINDINGS_MAX);
        if (!x.reply->findings)
                return -ENOMEM;
        x.reply->gmem_inspectable = true;
        for (size_t i = 0; i < vm->n_regions; i++) {
                const struct region *r = vm->regions[i];
                void *map;
                int q;

                x.region = r;
                map = mmap(NULL, r->size, PROT_READ, MAP_SHARED, r->gmem_fd, (off_t) r->gmem_offset);
                x.gmem_map = map == MAP_FAILED ? NULL : map;
                if (!x.gmem_map)
                        x.reply->gmem_inspectable = false;
                q = mc_rangemap_walk(vm->attrs, r->gpa, r->gpa + r->size, check_walk_fn, &x);
                if (x.gmem_map)
                        munmap(map, r->size);
                if (q < 0)
                        return admin_reply_error(c, req->id, mc_code_from_errno(q), q,
                                                 "check: cannot inspect region slot %" PRIu32 ": %s", r->slot,
                                                 strerror(-q)), 1;
                x.reply->checked_bytes += r->size;
        }
        if (!x.reply->gmem_inspectable)
                check_add(&x, MEMCONV__CHECK_FINDING__KIND__KIND_UNCHECKABLE, 0, 0, false,
                          "the guest_memfd cannot be mapped (private-only); only the shared side was checked");
        (void) mc_rangemap_walk(vm->discard_failed, 0, UINT64_MAX, check_discard_failed_fn, &x);
        reply->body_case = MEMCONV__ADMIN_REPLY__BODY_CHECK;
        reply->check = x.reply;
        return 0;
}

static int handle_forget(struct admin_conn *c, const Memconv__AdminRequest *req, struct arena *a,
                         Memconv__AdminReply *reply)
{
        const Memconv__VmSelector *sel = req->forget->vm;
        struct vm *vm = vm_resolve(c->daemon, sel);
        Memconv__ForgetReply *m;
        int dropped;

        /* Refused before anything changes: the registration stays with its running VM. */
        if (vm && vm->state == VM_ATTACHED)
                return admin_reply_error(c, req->id, MEMCONV__CODE__CODE_BUSY, -EBUSY,
                                         "forget: VM %s is attached (VMM pid %d); stop the VM first",
                                         vm->name, (int) vm->pid), 1;
        dropped = sel && sel->spec ? registry_drop(c->daemon, sel->spec) : 0;
        if (dropped < 0)
                return admin_reply_error(c, req->id, mc_code_from_errno(dropped), dropped,
                                         "forget: cannot write the registrations to %s: %s; nothing was forgotten",
                                         c->daemon->config.state_dir, strerror(-dropped)), 1;
        if (dropped > 0)
                log_info("Domain %s unregistered by admin pid %d", sel->spec, (int) c->cred.pid);
        if (!vm && dropped == 0)
                return resolve_or_refuse(c, req->id, sel), 1;
        /* Every detached instance of it: a domain restarted many times leaves several. */
        while (vm && vm->state == VM_DETACHED) {
                char uuid[37];

                snprintf(uuid, sizeof(uuid), "%s", vm->uuid_str);
                log_info("VM %s (%s, id %" PRIu64 ") forgotten by admin pid %d", vm->name, vm->uuid_str, vm->id,
                         (int) c->cred.pid);
                vm_forget(vm);
                if (strcmp(uuid, sel->spec) != 0)
                        break;  /* named by name or id: that one only */
                vm = vm_resolve(c->daemon, sel);
        }
        m = arena_alloc(a, sizeof(*m));
        if (!m)
                return -ENOMEM;
        memconv__forget_reply__init(m);
        reply->body_case = MEMCONV__ADMIN_REPLY__BODY_FORGET;
        reply->forget = m;
        return 0;
}

static int handle_policy_show(struct admin_conn *c, const Memconv__AdminRequest *req, struct arena *a,
                              Memconv__AdminReply *reply)
{
        struct daemon *d = c->daemon;
        struct vm *vm = resolve_or_refuse(c, req->id, req->policy_show->vm);
        Memconv__PolicyShowReply *m;
        char *eff;

        if (!vm)
                return 1;
        m = arena_alloc(a, sizeof(*m));
        eff = arena_alloc(a, 4096);
        if (!m || !eff)
                return -ENOMEM;
        memconv__policy_show_reply__init(m);
        for (size_t i = 0; i < d->config.n_plugins; i++)
                if (d->config.plugins[i].listed) {
                        if (!m->plugins)
                                m->plugins = arena_alloc(a, sizeof(char *) * d->config.n_plugins);
                        if (m->plugins)
                                m->plugins[m->n_plugins++] = d->config.plugins[i].name;
                }
        policy_chain_describe(d->policy, vm->id, eff, 4096);
        m->effective = eff;
        if (vm->n_policy > 0)
                m->overrides = arena_alloc(a, sizeof(*m->overrides) * vm->n_policy);
        for (size_t i = 0; m->overrides && i < vm->n_policy; i++) {
                Memconv__PolicyOverride *o = arena_alloc(a, sizeof(*o));

                if (!o)
                        return -ENOMEM;
                memconv__policy_override__init(o);
                o->plugin = vm->policy[i].plugin;
                o->settings = vm->policy[i].settings;
                m->overrides[m->n_overrides++] = o;
        }
        reply->body_case = MEMCONV__ADMIN_REPLY__BODY_POLICY_SHOW;
        reply->policy_show = m;
        return 0;
}

static int handle_policy_set(struct admin_conn *c, const Memconv__AdminRequest *req, struct arena *a,
                             Memconv__AdminReply *reply)
{
        const Memconv__PolicySetRequest *rq = req->policy_set;
        struct vm *vm = resolve_or_refuse(c, req->id, rq->vm);
        Memconv__PolicySetReply *m;
        char err[256] = "";
        int r;

        if (!vm)
                return 1;
        if (!rq->plugin || !*rq->plugin)
                return admin_reply_error(c, req->id, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                         "policy set: name a plugin"), 1;
        r = vm_policy_set(vm, rq->plugin, rq->settings ? rq->settings : "", err, sizeof(err));
        if (r < 0)
                return admin_reply_error(c, req->id, MEMCONV__CODE__CODE_INVALID_ARGUMENT, r == -ENOENT ? -EINVAL : r,
                                         "policy set: %s", err), 1;
        m = arena_alloc(a, sizeof(*m));
        if (!m)
                return -ENOMEM;
        memconv__policy_set_reply__init(m);
        reply->body_case = MEMCONV__ADMIN_REPLY__BODY_POLICY_SET;
        reply->policy_set = m;
        return 0;
}

/**
 * domain_name_valid() - a libvirt domain name: 1-255 bytes, no control
 * characters (UTF-8 and spaces are fine)
 */
static bool domain_name_valid(const char *s)
{
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > 255)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] < 0x20 || s[i] == 0x7f)
                        return false;
        return true;
}

/**
 * uuid_text_valid() - 36 characters, lower-case hex in 8-4-4-4-12 form
 */
static bool uuid_text_valid(const char *s)
{
        if (!s || strlen(s) != 36)
                return false;
        for (size_t i = 0; i < 36; i++) {
                bool dash = i == 8 || i == 13 || i == 18 || i == 23;

                if (dash ? s[i] != '-' : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
                        return false;
        }
        return true;
}

static int handle_register_domain(struct admin_conn *c, const Memconv__AdminRequest *req, struct arena *a,
                                  Memconv__AdminReply *reply)
{
        const Memconv__RegisterDomainRequest *rq = req->register_domain;
        Memconv__RegisterDomainReply *m;
        int r;

        if (!uuid_text_valid(rq->uuid))
                return admin_reply_error(c, req->id, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                         "register: uuid must be 36 lower-case hex characters in 8-4-4-4-12 form"), 1;
        if (!domain_name_valid(rq->name))
                return admin_reply_error(c, req->id, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                         "register: name must be 1-255 bytes without control characters"), 1;
        if (!protobuf_c_enum_descriptor_get_value(&memconv__cc_type__descriptor, rq->cc_type))
                return admin_reply_error(c, req->id, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                         "register: unknown cc_type %d", rq->cc_type), 1;
        if (rq->policy && strlen(rq->policy) > 16384)
                return admin_reply_error(c, req->id, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                         "register: policy text exceeds 16 KiB"), 1;
        r = registry_set(c->daemon, rq->uuid, rq->name, rq->cc_type, rq->policy);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return admin_reply_error(c, req->id, mc_code_from_errno(r), r,
                                         "register: cannot write the registration to %s: %s; not registered",
                                         c->daemon->config.state_dir, strerror(-r)), 1;
        log_info("Domain %s (%s) registered by libvirt hook pid %d%s", rq->name, rq->uuid, (int) c->cred.pid,
                 rq->policy && *rq->policy ? ", with a policy" : "");
        m = arena_alloc(a, sizeof(*m));
        if (!m)
                return -ENOMEM;
        memconv__register_domain_reply__init(m);
        reply->body_case = MEMCONV__ADMIN_REPLY__BODY_REGISTER_DOMAIN;
        reply->register_domain = m;
        return 0;
}

static const struct {
        Memconv__AdminRequest__BodyCase body;
        const char *name;
        admin_handler fn;
} admin_handlers[] = {
        { MEMCONV__ADMIN_REQUEST__BODY_REGISTER_DOMAIN, "register", handle_register_domain },
        { MEMCONV__ADMIN_REQUEST__BODY_POLICY_SHOW, "policy show", handle_policy_show },
        { MEMCONV__ADMIN_REQUEST__BODY_POLICY_SET, "policy set", handle_policy_set },
        { MEMCONV__ADMIN_REQUEST__BODY_STATUS, "status", handle_status },
        { MEMCONV__ADMIN_REQUEST__BODY_LIST, "list", handle_list },
        { MEMCONV__ADMIN_REQUEST__BODY_SHOW, "show", handle_show },
        { MEMCONV__ADMIN_REQUEST__BODY_RANGES, "ranges", handle_ranges },
        { MEMCONV__ADMIN_REQUEST__BODY_HISTORY, "history", handle_history },
        { MEMCONV__ADMIN_REQUEST__BODY_STATS, "stats", handle_stats },
        { MEMCONV__ADMIN_REQUEST__BODY_CHECK, "check", handle_check },
        { MEMCONV__ADMIN_REQUEST__BODY_FORGET, "forget", handle_forget },
};

/**
 * admin_dispatch() - validate and answer one request
 */
static void admin_dispatch(struct admin_conn *c, const Memconv__AdminRequest *req, size_t n_fds)
{
        Memconv__AdminReply reply = MEMCONV__ADMIN_REPLY__INIT;
        Memconv__Status ok = MEMCONV__STATUS__INIT;
        struct arena a = { 0 };
        int r = -EPROTO;

        if (c->refused) {
                (void) admin_reply_error(c, req->id, MEMCONV__CODE__CODE_PERMISSION_DENIED, -EPERM,
                                         "uid %u may not administer memconvd: be root or in its admin group",
                                         (unsigned) c->cred.uid);
                c->broken = true;
                return;
        }
        if (n_fds > 0) {
                (void) admin_reply_error(c, req->id, MEMCONV__CODE__CODE_BAD_FD, -EBADF,
                                         "admin requests take no fds, %zu came", n_fds);
                return;
        }
        for (size_t i = 0; i < ELEMENTSOF(admin_handlers); i++) {
                if (admin_handlers[i].body != req->body_case)
                        continue;
                reply.id = req->id;
                reply.status = &ok;
                r = admin_handlers[i].fn(c, req, &a, &reply);
                if (r == 0 && !a.failed)
                        (void) admin_send(c, &reply);
                else if (r < 0 || a.failed)
                        (void) admin_reply_error(c, req->id, MEMCONV__CODE__CODE_RESOURCE_LIMIT, -ENOMEM,
                                                 "%s: out of memory", admin_handlers[i].name);
                arena_free(&a);
                if (r == 0 && c->follower)
                        (void) admin_follow_push(c->follower);
                return;
        }
        (void) admin_reply_error(c, req->id, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                                 "unknown admin request (body %d)", (int) req->body_case);
}

static void admin_conn_free(struct admin_conn *c)
{
        if (!c)
                return;
        admin_follower_free(c->follower);
        outq_clear(&c->outq);
        LIST_REMOVE(c, link);
        sd_event_source_disable_unref(c->source);
        safe_close(c->fd);
        free(c);
}

static int admin_on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
        struct admin_conn *c = userdata;

        if ((revents & EPOLLOUT) && outq_flush(&c->outq, c->fd) < 0)
                c->broken = true;
        for (unsigned i = 0; i < 16 && !c->broken && (revents & (EPOLLIN | EPOLLHUP | EPOLLERR)); i++) {
                ProtobufCMessage *m = NULL;
                int fds[MC_FRAME_MAX_FDS];
                size_t n = 0;
                int r = mc_frame_recv_pb(c->fd, MSG_DONTWAIT, &memconv__admin_request__descriptor, &m, fds, &n);

                if (r == -EAGAIN)
                        break;
                if (r == -EMSGSIZE || r == -EBADMSG || r == -ETOOMANYREFS) {
                        (void) admin_reply_error(c, 0, MEMCONV__CODE__CODE_PROTOCOL_ERROR, r,
                                                 "admin frame refused: %s", r == -EMSGSIZE ? "larger than 64 KiB" :
                                                 r == -EBADMSG ? "not a memconv.AdminRequest" : "carries fds");
                        continue;
                }
                if (r < 0) {
                        c->broken = true;
                        break;
                }
                admin_dispatch(c, (Memconv__AdminRequest *) m, n);
                mc_frame_close_fds(fds, n);
                protobuf_c_message_free_unpacked(m, NULL);
        }
        if (c->broken) {
                (void) outq_flush(&c->outq, c->fd);
                admin_conn_free(c);
                return 0;
        }
        admin_conn_update_events(c);
        return 0;
}

void admin_history_appended(struct vm *vm)
{
        struct admin_follower *f, *next;

        for (f = LIST_FIRST(&vm->followers); f; f = next) {
                next = LIST_NEXT(f, link);
                if (admin_follow_push(f) < 0) {
                        /* Freed on its next wake-up; stop feeding it now. */
                        f->conn->broken = true;
                        admin_conn_update_events(f->conn);
                        (void) sd_event_source_set_io_events(f->conn->source, EPOLLIN | EPOLLOUT);
                        admin_follower_free(f);
                }
        }
}

void admin_vm_gone(struct vm *vm)
{
        struct admin_follower *f;

        while ((f = LIST_FIRST(&vm->followers))) {
                struct admin_conn *c = f->conn;
                uint64_t id = f->request_id;

                admin_follower_free(f);
                /* End of stream: a final reply with more = false. */
                {
                        Memconv__AdminReply reply = MEMCONV__ADMIN_REPLY__INIT;
                        Memconv__HistoryReply h = MEMCONV__HISTORY_REPLY__INIT;

                        reply.id = id;
                        reply.body_case = MEMCONV__ADMIN_REPLY__BODY_HISTORY;
                        reply.history = &h;
                        (void) admin_send(c, &reply);
                }
        }
}

/**
 * admin_peer_allowed() - root, our uid, or the admin group
 */
static bool admin_peer_allowed(struct daemon *d, int fd, const struct ucred *cred)
{
        gid_t groups[256];
        socklen_t len = sizeof(groups);

        if (cred->uid == 0 || cred->uid == geteuid())
                return true;
        if (d->config.admin_group == (gid_t) -1)
                return false;
        if (cred->gid == d->config.admin_group)
                return true;
        if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) < 0)
                return false;
        for (size_t i = 0; i < len / sizeof(gid_t); i++)
                if (groups[i] == d->config.admin_group)
                        return true;
        return false;
}

static int admin_on_listen(sd_event_source *s, int listen_fd, uint32_t revents, void *userdata)
{
        struct daemon *d = userdata;

        for (;;) {
                socklen_t len = sizeof(struct ucred);
                struct admin_conn *c;
                int fd = daemon_accept(s, listen_fd, "admin");

                if (fd < 0)
                        return 0;
                c = calloc(1, sizeof(*c));
                if (!c || getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) < 0 ||
                    sd_event_add_io(d->event, &c->source, fd, EPOLLIN, admin_on_io, c) < 0) {
                        free(c);
                        safe_close(fd);
                        continue;
                }
                (void) sd_event_source_set_description(c->source, "admin-conn");
                c->daemon = d;
                c->fd = fd;
                c->outq.max = ADMIN_OUTQ_MAX;
                c->refused = !admin_peer_allowed(d, fd, &c->cred);
                if (c->refused)
                        log_notice("Refusing admin connection from pid %d uid %u: not root or in the admin group",
                                   (int) c->cred.pid, (unsigned) c->cred.uid);
                LIST_INSERT_HEAD(&d->admin_conns, c, link);
        }
}

int admin_listen(struct daemon *d, int activated_fd)
{
        int r;

        if (activated_fd >= 0)
                d->admin_fd = activated_fd;
        else {
                r = daemon_bind_socket(d->config.admin_socket_path,
                                       d->config.admin_group == (gid_t) -1 ? 0600 : 0660, d->config.admin_group,
                                       "admin");
                if (r < 0)
                        return r;
                d->admin_fd = r;
                d->unlink_admin_socket = true;
        }
        r = sd_event_add_io(d->event, &d->admin_source, d->admin_fd, EPOLLIN, admin_on_listen, d);
        if (r < 0)
                return log_error_errno(r, "Failed to watch the admin socket");
        (void) sd_event_source_set_description(d->admin_source, "admin-listen");
        return 0;
}

void admin_done(struct daemon *d)
{
        struct admin_conn *c;

        while ((c = LIST_FIRST(&d->admin_conns)))
                admin_conn_free(c);
        sd_event_source_disable_unref(d->admin_source);
        d->admin_source = NULL;
        if (d->admin_fd >= 0) {
                safe_close(d->admin_fd);
                d->admin_fd = -EBADF;
                if (d->unlink_admin_socket)
                        (void) unlink(d->config.admin_socket_path);
        }
}
