/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * client-lease.c - converting under a policy lease (memconv-protocol(7),
 * LEASES): the vCPU thread applies the attributes itself and reports the
 * conversion afterwards, without waiting for memconvd.
 *
 * Theory of operation. memconvd grants a lease (Lease) with terms: which
 * kinds of conversion, the largest size, token buckets. A request is
 * converted under it only if all of these hold, checked under the client
 * lock:
 *   - a lease is in force and covers the kind and size;
 *   - the range lies inside one registered region (anything else, MMIO
 *     included, is memconvd's to decide);
 *   - the buckets have tokens;
 *   - the range overlaps no tracked range (DESIGN rule 4): no conversion of
 *     ours whose discard memconvd has not finished (Settled), and no
 *     request of ours still waiting for its Decision. Otherwise a late
 *     discard of the old backing could destroy what the guest writes next.
 *     Such a request goes to memconvd, which makes it wait for the discard;
 *   - fewer than LEASE_MAX_UNSETTLED ranges are tracked: a vCPU that runs
 *     far ahead of memconvd's discards (a daemon starved of CPU) asks, and
 *     waits, instead of growing the backlog and this list without bound.
 * Then the range is tracked, the lock dropped, the attributes applied, and
 * LeasedApplied sent (no answer on success). The conversion is kept, like
 * an applied decision, until Committed says it is durable, to be re-sent
 * after a daemon restart.
 *
 * Revocation: memconvd sends Lease{revoked}; no new conversion starts under
 * it, and once the last one being applied has been reported, LeaseReturned
 * goes back (reports and the return travel on one socket, in order). While
 * a lease is wanted, every request asked of memconvd is tracked from
 * before it is sent until its Decision, and, if applied, until Settled.
 *
 * Batches: when the lease allows them (report_batch, report_delay_usec),
 * a report is not sent at once but held, and the held reports go together
 * in one LeasedBatch: when report_batch of them are held, when the oldest
 * is report_delay_usec old (sent by the vCPU thread that queues the next
 * one, or by the flusher thread), and before any other message, so that
 * memconvd always sees them in the order the VMM applied them and before
 * any request that depends on them. A vCPU then pays no send per
 * conversion, memconvd is woken once per batch instead of once per report,
 * and a run of adjacent conversions becomes one discard. Held reports are
 * already in the list of unconfirmed conversions: after a reconnect they
 * are re-sent as Reapplied like any other, and dropped from the batch.
 *
 * Reading: nobody waits for an answer under a lease, so the leased path
 * itself drains the socket (non-blocking) when a range it needs is still
 * tracked, and every LEASE_DRAIN_EVERY conversions; mc_client_dispatch()
 * does the same for a VMM's event loop.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "client-internal.h"
#include "frame.h"
#include "macro.h"
#include "message.h"

#define LEASE_DRAIN_EVERY 32
#define LEASE_MAX_UNSETTLED 256

/** lease_now_usec() - CLOCK_MONOTONIC in microseconds */
static uint64_t lease_now_usec(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000ULL + (uint64_t) ts.tv_nsec / 1000ULL;
}

void client_lease_init(mc_client *c)
{
        pthread_condattr_t a;

        pthread_cond_init(&c->lease.idle, NULL);
        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(&c->lease.flush_cond, &a);
        pthread_condattr_destroy(&a);
}

void client_lease_free(mc_client *c)
{
        struct mc_lease_state *l = &c->lease;

        if (l->flusher_started) {
                pthread_mutex_lock(&c->lock);
                l->flusher_stop = true;
                pthread_cond_signal(&l->flush_cond);
                pthread_mutex_unlock(&c->lock);
                pthread_join(l->flusher, NULL);
                l->flusher_started = false;
        }
        free(l->busy);
        l->busy = NULL;
        l->n_busy = l->cap_busy = 0;
        free(l->pending);
        free(l->pending_p);
        free(l->pending_ids);
        l->pending = NULL;
        l->pending_p = NULL;
        l->pending_ids = NULL;
        l->n_pending = l->cap_pending = 0;
        pthread_cond_destroy(&l->idle);
        pthread_cond_destroy(&l->flush_cond);
}

/**
 * lease_send() - send @msg under @c's lock (so that nothing overtakes it); a
 * failure fails the connection
 */
static void lease_send(mc_client *c, const Memconv__Message *msg)
{
        int r = client_sock_send_locked(c, msg, NULL, 0);

        if (r < 0)
                client_fail(c, r);
}

/**
 * lease_send_report() - send one report alone, as LeasedApplied with @id (@c locked)
 */
static void lease_send_report(mc_client *c, Memconv__LeasedApplied *la, uint64_t id)
{
        Memconv__Message msg = MEMCONV__MESSAGE__INIT;

        msg.id = id;
        msg.body_case = MEMCONV__MESSAGE__BODY_LEASED_APPLIED;
        msg.leased_applied = la;
        lease_send(c, &msg);
}

void client_lease_flush(mc_client *c)
{
        struct mc_lease_state *l = &c->lease;
        Memconv__Message msg = MEMCONV__MESSAGE__INIT;
        Memconv__LeasedBatch b = MEMCONV__LEASED_BATCH__INIT;
        size_t n = l->n_pending;

        l->n_pending = 0;
        if (n == 0 || c->dead || c->reconnecting)
                return;  /* held ones are in the unconfirmed list: re-sent as Reapplied after a reconnect */
        if (n == 1) {
                lease_send_report(c, &l->pending[0], l->pending_ids[0]);
                return;
        }
        b.n_reports = b.n_ids = n;
        b.reports = l->pending_p;
        b.ids = l->pending_ids;
        msg.id = ++c->next_id;  /* a malformed batch would be refused with it */
        msg.body_case = MEMCONV__MESSAGE__BODY_LEASED_BATCH;
        msg.leased_batch = &b;
        lease_send(c, &msg);
}

/**
 * lease_flusher() - thread body: send held reports once the oldest is due
 */
static void *lease_flusher(void *arg)
{
        mc_client *c = arg;
        struct mc_lease_state *l = &c->lease;

        pthread_mutex_lock(&c->lock);
        while (!l->flusher_stop) {
                uint64_t now, due;
                struct timespec ts;

                if (l->n_pending == 0) {
                        l->flusher_idle = true;
                        pthread_cond_wait(&l->flush_cond, &c->lock);
                        l->flusher_idle = false;
                        continue;
                }
                now = lease_now_usec();
                due = l->pending_since_usec + l->delay_usec;
                if (now >= due) {
                        client_lease_flush(c);
                        continue;
                }
                ts.tv_sec = (time_t) (due / 1000000ULL);
                ts.tv_nsec = (long) (due % 1000000ULL) * 1000L;
                (void) pthread_cond_timedwait(&l->flush_cond, &c->lock, &ts);
        }
        pthread_mutex_unlock(&c->lock);
        return NULL;
}

/**
 * lease_batch_setup() - take the batch terms of a new lease (@c locked):
 * room for report_batch held reports, and the flusher thread
 * Return: 0, or negative errno (reports then go one at a time)
 */
static int lease_batch_setup(mc_client *c, uint32_t batch, uint32_t delay_usec)
{
        struct mc_lease_state *l = &c->lease;
        sigset_t all, old;
        int r;

        client_lease_flush(c);  /* held under the old terms: out first */
        l->batch_max = 0;
        if (batch <= 1 || delay_usec == 0)
                return 0;
        if (batch > l->cap_pending) {
                Memconv__LeasedApplied *p = realloc(l->pending, batch * sizeof(*p));
                Memconv__LeasedApplied **pp;
                uint64_t *ids;

                if (!p)
                        return -ENOMEM;
                l->pending = p;
                pp = realloc(l->pending_p, batch * sizeof(*pp));
                if (!pp)
                        return -ENOMEM;
                l->pending_p = pp;
                ids = realloc(l->pending_ids, batch * sizeof(*ids));
                if (!ids)
                        return -ENOMEM;
                l->pending_ids = ids;
                l->cap_pending = batch;
                for (size_t i = 0; i < batch; i++)
                        l->pending_p[i] = &l->pending[i];
        }
        if (!l->flusher_started) {
                /* The VMM's signals (vCPU kicks) are not ours to take. */
                sigfillset(&all);
                pthread_sigmask(SIG_SETMASK, &all, &old);
                r = -pthread_create(&l->flusher, NULL, lease_flusher, c);
                pthread_sigmask(SIG_SETMASK, &old, NULL);
                if (r < 0)
                        return r;
                l->flusher_started = true;
        }
        l->batch_max = batch;
        l->delay_usec = delay_usec;
        return 0;
}

/**
 * lease_hold_report() - queue a report for the next batch (@c locked);
 * sends the batch when it is full or its oldest report is due
 */
static void lease_hold_report(mc_client *c, const Memconv__LeasedApplied *la, uint64_t msg_id)
{
        struct mc_lease_state *l = &c->lease;
        uint64_t now = lease_now_usec();

        if (l->n_pending == 0) {
                l->pending_since_usec = now;
                if (l->flusher_idle)
                        pthread_cond_signal(&l->flush_cond);
        }
        l->pending[l->n_pending] = *la;
        l->pending_ids[l->n_pending++] = msg_id;
        if (l->n_pending >= l->batch_max || now - l->pending_since_usec >= l->delay_usec)
                client_lease_flush(c);
}

/**
 * busy_add() - track [start, end) under @key (@c locked)
 * Return: 0 or -ENOMEM
 */
static int busy_add(mc_client *c, uint64_t start, uint64_t end, enum mc_busy_kind kind, uint64_t key)
{
        struct mc_lease_state *l = &c->lease;

        if (l->n_busy == l->cap_busy) {
                size_t nc = l->cap_busy ? l->cap_busy * 2 : 64;
                struct mc_busy *nb = realloc(l->busy, nc * sizeof(*nb));

                if (!nb)
                        return -ENOMEM;
                l->busy = nb;
                l->cap_busy = nc;
        }
        l->busy[l->n_busy++] = (struct mc_busy) { start, end, key, kind };
        return 0;
}

/**
 * busy_find() - the tracked entry of @kind and @key (@c locked)
 * Return: its index, or -1
 */
static ssize_t busy_find(const mc_client *c, enum mc_busy_kind kind, uint64_t key)
{
        /* Newest last: the ones looked up are usually recent. */
        for (size_t i = c->lease.n_busy; i-- > 0;)
                if (c->lease.busy[i].key == key && c->lease.busy[i].kind == kind)
                        return (ssize_t) i;
        return -1;
}

/** busy_drop() - forget the entry at @i (@c locked); order does not matter */
static void busy_drop(mc_client *c, size_t i)
{
        c->lease.busy[i] = c->lease.busy[--c->lease.n_busy];
}

/** busy_overlaps() - whether [start, end) overlaps a tracked range (@c locked) */
static bool busy_overlaps(const mc_client *c, uint64_t start, uint64_t end)
{
        for (size_t i = 0; i < c->lease.n_busy; i++)
                if (c->lease.busy[i].start < end && start < c->lease.busy[i].end)
                        return true;
        return false;
}

/**
 * lease_send_returned() - give lease @id back (@c locked)
 */
static void lease_send_returned(mc_client *c, uint64_t id)
{
        Memconv__Message msg = MEMCONV__MESSAGE__INIT;
        Memconv__LeaseReturned lr = MEMCONV__LEASE_RETURNED__INIT;

        client_lease_flush(c);  /* every report of the lease before its return */
        lr.lease_id = id;
        msg.id = ++c->next_id;  /* an error would be answered with it */
        msg.body_case = MEMCONV__MESSAGE__BODY_LEASE_RETURNED;
        msg.lease_returned = &lr;
        lease_send(c, &msg);
}

/**
 * lease_inflight_done() - a leased conversion has been reported (@c locked)
 */
static void lease_inflight_done(mc_client *c)
{
        struct mc_lease_state *l = &c->lease;

        if (--l->inflight > 0)
                return;
        if (l->returning && !c->dead && !c->reconnecting) {
                lease_send_returned(c, l->returning);
                l->returning = 0;
        }
        pthread_cond_broadcast(&l->idle);
}

bool client_lease_message(mc_client *c, const Memconv__Message *m)
{
        struct mc_lease_state *l = &c->lease;

        if (m->body_case == MEMCONV__MESSAGE__BODY_SETTLED) {
                const Memconv__Settled *s = m->settled;

                for (size_t i = 0; i < s->n_decision_ids; i++) {
                        ssize_t k = busy_find(c, MC_BUSY_DECISION, s->decision_ids[i]);

                        if (k >= 0)
                                busy_drop(c, (size_t) k);
                }
                for (size_t i = 0; i < s->n_lease_seqs; i++) {
                        ssize_t k = busy_find(c, MC_BUSY_LEASED, s->lease_seqs[i]);

                        if (k >= 0)
                                busy_drop(c, (size_t) k);
                }
                return true;
        }
        if (m->body_case != MEMCONV__MESSAGE__BODY_LEASE)
                return false;
        if (m->lease->revoked) {
                if (m->lease->lease_id != l->id)
                        return true;  /* not ours (any more) */
                l->id = 0;
                l->stats.active = false;
                l->stats.lease_id = 0;
                l->stats.revocations++;
                if (l->inflight == 0)
                        lease_send_returned(c, m->lease->lease_id);
                else
                        l->returning = m->lease->lease_id;
                return true;
        }
        /* Kept even when given up meanwhile (lease_covers() then refuses to use it): memconvd
         * revokes it when it sees that, and expects it back. */
        l->id = m->lease->lease_id;
        l->implicit = m->lease->implicit;
        l->explicit_ = m->lease->explicit_;
        l->max_bytes = m->lease->max_bytes;
        l->conv_rate = m->lease->conversions_per_sec;
        l->conv_burst = m->lease->conversions_burst ? m->lease->conversions_burst : 1;
        l->bytes_rate = m->lease->bytes_per_sec;
        l->bytes_burst = m->lease->bytes_burst;
        l->conv_tokens = (double) l->conv_burst;
        l->bytes_tokens = (double) l->bytes_burst;
        l->tokens_usec = lease_now_usec();
        l->stats.active = true;
        l->stats.lease_id = l->id;
        l->stats.grants++;
        if (lease_batch_setup(c, m->lease->report_batch, m->lease->report_delay_usec) < 0)
                l->batch_max = 0;  /* out of memory or threads: one report at a time still works */
        return true;
}

/**
 * lease_tokens() - take the bucket tokens for @size bytes (@c locked)
 * Return: true if the buckets allowed it
 */
static bool lease_tokens(mc_client *c, uint64_t size)
{
        struct mc_lease_state *l = &c->lease;
        double need_bytes;
        uint64_t now;

        if (!l->conv_rate && !l->bytes_rate)
                return true;
        now = lease_now_usec();
        if (now > l->tokens_usec) {
                double dt = (double) (now - l->tokens_usec) / 1e6;

                l->conv_tokens += dt * (double) l->conv_rate;
                if (l->conv_tokens > (double) l->conv_burst)
                        l->conv_tokens = (double) l->conv_burst;
                l->bytes_tokens += dt * (double) l->bytes_rate;
                if (l->bytes_tokens > (double) l->bytes_burst)
                        l->bytes_tokens = (double) l->bytes_burst;
                l->tokens_usec = now;
        }
        /* As memconvd's rate-limit plugin: a conversion takes at most a whole byte bucket. */
        need_bytes = (double) size < (double) l->bytes_burst ? (double) size : (double) l->bytes_burst;
        if ((l->conv_rate && l->conv_tokens < 1.0) || (l->bytes_rate && l->bytes_tokens < need_bytes))
                return false;
        if (l->conv_rate)
                l->conv_tokens -= 1.0;
        if (l->bytes_rate)
                l->bytes_tokens -= need_bytes;
        return true;
}

/**
 * lease_in_region() - whether [gpa, gpa+size) lies inside one registered region (@c locked)
 */
static bool lease_in_region(const mc_client *c, uint64_t gpa, uint64_t size)
{
        for (size_t i = 0; i < c->n_regions; i++) {
                const struct mc_region_info *r = &c->regions[i].info;

                if (gpa >= r->gpa && gpa + size <= r->gpa + r->size)
                        return true;
        }
        return false;
}

/**
 * lease_covers() - the checks that need no socket: in force, kind, size,
 * region, alignment (@c locked)
 */
static bool lease_covers(const mc_client *c, uint64_t gpa, uint64_t size, bool implicit)
{
        const struct mc_lease_state *l = &c->lease;

        return l->id && l->wanted && !c->dead && !c->reconnecting && (implicit ? l->implicit : l->explicit_) &&
               size > 0 && size <= l->max_bytes && !((gpa | size) & 4095) && gpa + size > gpa &&
               lease_in_region(c, gpa, size);
}

int client_lease_try(mc_client *c, uint32_t vcpu, uint64_t gpa, uint64_t size, bool to_private, bool implicit,
                     int source)
{
        struct mc_lease_state *l = &c->lease;
        Memconv__LeasedApplied la = MEMCONV__LEASED_APPLIED__INIT;
        mc_apply_fn fn;
        void *ud;
        uint64_t seq, lease_id, msg_id;
        int r;

        pthread_mutex_lock(&c->lock);
        if (!lease_covers(c, gpa, size, implicit) || !c->apply)
                goto not_covered;
        if (++l->since_drain >= LEASE_DRAIN_EVERY || l->n_busy >= LEASE_MAX_UNSETTLED ||
            busy_overlaps(c, gpa, gpa + size)) {
                /* Settled notices may be waiting in the socket. */
                l->since_drain = 0;
                (void) client_drain(c);
                /* memconvd is behind with its discards: ask it, and wait, until it catches up. */
                if (!lease_covers(c, gpa, size, implicit) || l->n_busy >= LEASE_MAX_UNSETTLED ||
                    busy_overlaps(c, gpa, gpa + size))
                        goto not_covered;
        }
        if (!lease_tokens(c, size))
                goto not_covered;
        seq = ++l->next_seq;
        if (busy_add(c, gpa, gpa + size, MC_BUSY_LEASED, seq) < 0)
                goto not_covered;
        lease_id = l->id;
        l->inflight++;
        fn = c->apply;
        ud = c->apply_userdata;
        pthread_mutex_unlock(&c->lock);

        r = fn(ud, gpa, size, to_private);

        pthread_mutex_lock(&c->lock);
        if (r < 0) {
                /* Nothing changed in KVM: nothing to report or keep off the lease. */
                ssize_t k = busy_find(c, MC_BUSY_LEASED, seq);

                if (k >= 0)
                        busy_drop(c, (size_t) k);
                lease_inflight_done(c);
                pthread_mutex_unlock(&c->lock);
                return r;
        }
        /* Kept until Committed; a reconnect waits for us (inflight) and re-sends it. Out of
         * memory it is only reported: lost if memconvd also dies before journaling it. */
        msg_id = ++c->next_id;  /* an error would be answered with it */
        (void) client_recover_leased(c, seq, msg_id, vcpu, gpa, size, to_private, implicit, source);
        l->stats.leased++;
        if (!c->dead && !c->reconnecting) {
                la.lease_id = lease_id;
                la.seq = seq;
                la.vcpu = vcpu;
                la.gpa = gpa;
                la.size = size;
                la.to = to_private ? MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE : MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
                la.implicit = implicit;
                la.source = (Memconv__ConvertSource) source;
                /* Under the lock either way: a LeaseReturned must never overtake it. */
                if (l->batch_max > 1)
                        lease_hold_report(c, &la, msg_id);
                else
                        lease_send_report(c, &la, msg_id);
        }
        lease_inflight_done(c);
        pthread_mutex_unlock(&c->lock);
        return 1;

not_covered:
        pthread_mutex_unlock(&c->lock);
        return 0;
}

uint64_t client_lease_track_request(mc_client *c, uint64_t gpa, uint64_t size)
{
        uint64_t key = 0;

        pthread_mutex_lock(&c->lock);
        if (c->lease.wanted && size > 0 && gpa + size > gpa) {
                key = ++c->lease.next_key;
                if (busy_add(c, gpa, gpa + size, MC_BUSY_REQUEST, key) < 0)
                        key = 0;
                c->lease.stats.asked++;
        }
        pthread_mutex_unlock(&c->lock);
        return key;
}

void client_lease_request_done(mc_client *c, uint64_t key, uint64_t decision_id)
{
        ssize_t k;

        if (!key)
                return;
        pthread_mutex_lock(&c->lock);
        k = busy_find(c, MC_BUSY_REQUEST, key);
        if (k >= 0) {
                if (decision_id) {
                        c->lease.busy[k].kind = MC_BUSY_DECISION;
                        c->lease.busy[k].key = decision_id;
                } else
                        busy_drop(c, (size_t) k);
        }
        pthread_mutex_unlock(&c->lock);
}

void client_lease_reset(mc_client *c)
{
        struct mc_lease_state *l = &c->lease;

        size_t kept = 0;

        while (l->inflight > 0 || c->applying > 0)
                pthread_cond_wait(&l->idle, &c->lock);
        if (l->id) {
                l->stats.active = false;
                l->stats.lease_id = 0;
        }
        l->id = 0;
        l->returning = 0;
        client_lease_flush(c);  /* on a dead connection: only forgets them (re-sent as Reapplied) */
        l->batch_max = 0;
        /* Applied ones were the old daemon's to settle: the new one discards every stale
         * side (Resumed) and grants no lease before that is done. A request still waiting
         * will be asked of the new daemon after the handshake, and decided by it: it stays. */
        for (size_t i = 0; i < l->n_busy; i++)
                if (l->busy[i].kind == MC_BUSY_REQUEST)
                        l->busy[kept++] = l->busy[i];
        l->n_busy = kept;
}

void client_applying_done(mc_client *c)
{
        pthread_mutex_lock(&c->lock);
        if (--c->applying == 0)
                pthread_cond_broadcast(&c->lease.idle);
        pthread_mutex_unlock(&c->lock);
}

/* ------------------------------------------------------------------ public */

_public_ int mc_client_set_lease(mc_client *c, bool want)
{
        Memconv__Message msg = MEMCONV__MESSAGE__INIT;
        Memconv__LeaseRequest lr = MEMCONV__LEASE_REQUEST__INIT;
        bool was;
        int r;

        if (!c)
                return -EINVAL;
        if (!c->attached)
                return -ENOTCONN;
        pthread_mutex_lock(&c->lock);
        was = c->lease.wanted;
        /* Track from before the request: memconvd counts on it from then on. */
        c->lease.wanted = want;  /* without it lease_covers() refuses at once; memconvd revokes */
        pthread_mutex_unlock(&c->lock);

        lr.want = want;
        msg.body_case = MEMCONV__MESSAGE__BODY_LEASE_REQUEST;
        msg.lease_request = &lr;
        r = client_simple_call(c, &msg, NULL, 0);
        if (r < 0) {
                pthread_mutex_lock(&c->lock);
                c->lease.wanted = was;
                pthread_mutex_unlock(&c->lock);
        }
        return r;
}

_public_ int mc_client_dispatch(mc_client *c)
{
        int r;

        if (!c)
                return -EINVAL;
        pthread_mutex_lock(&c->lock);
        client_lease_flush(c);
        r = client_drain(c);
        pthread_mutex_unlock(&c->lock);
        return r;
}

_public_ void mc_client_lease_stats(mc_client *c, struct mc_lease_stats *ret)
{
        if (!c || !ret)
                return;
        pthread_mutex_lock(&c->lock);
        *ret = c->lease.stats;
        ret->tracked = c->lease.n_busy;
        pthread_mutex_unlock(&c->lock);
}
