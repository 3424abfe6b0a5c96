/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test-lease.c - policy leases (memconv-protocol(7), LEASES) in a real
 * memconvd, driven frame by frame over the VMM socket with real
 * guest_memfd and memfd backing.
 *
 * What must hold:
 *  - a lease is granted only when asked, after the answer, with the terms
 *    the configuration and the policy chain allow;
 *  - a conversion reported under it is recorded, journaled (Committed),
 *    its stale backing discarded, and it is Settled; a spurious one changes
 *    nothing and is Settled too;
 *  - every report the daemon cannot accept (no lease, another lease,
 *    outside registered memory, over the size, a kind the lease does not
 *    cover, overlapping a conversion not yet settled) gets a precise error,
 *    changes neither the map nor any backing, and revokes the lease; the
 *    revoked lease is taken back with LeaseReturned and granted anew after
 *    the hold;
 *  - a LeasedBatch is handled report by report, each answered by its own
 *    id; a batch malformed anywhere is refused whole and records nothing;
 *  - a change of the VM's policy settings, and a reload, revoke the lease;
 *    the new grant carries the new terms; with Leases=no none is granted.
 */
#undef NDEBUG
#include <assert.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"
#include "message.h"
#include "memconv.pb-c.h"

static char conf_path[256], top[256];

/* What the asynchronous messages of one connection said so far. */
struct lstate {
        uint64_t lease_id;           /* last granted, 0 after a revocation */
        uint64_t revoked_id;         /* last revoked */
        unsigned grants, revocations;
        bool implicit, explicit_;
        uint64_t max_bytes;
        uint32_t report_batch, report_delay_usec;
        uint64_t settled_seq[64], settled_dec[64];
        size_t n_settled_seq, n_settled_dec;
        uint64_t committed_seq[64];
        size_t n_committed_seq;
};

/**
 * write_config() - the daemon's configuration: the shipped explicit-only
 * and rate-limit plugins (enforce off, no rates), LeaseMaxBytes 1 MiB
 */
static void write_config(bool leases)
{
        FILE *f = fopen(conf_path, "we");

        assert(f);
        fprintf(f, "[Policy]\nPluginDirectory=%s/plugins/.libs\nPlugins=explicit-only rate-limit\n"
                   "Leases=%s\nLeaseMaxBytes=1M\n\n[Plugin explicit-only]\nenforce=no\n",
                top, leases ? "yes" : "no");
        fclose(f);
}

/**
 * note_async() - record @m in @st if it is a Lease, Settled or Committed
 * Return: true if it was one (and was freed)
 */
static bool note_async(struct lstate *st, Memconv__Message *m)
{
        switch (m->body_case) {
        case MEMCONV__MESSAGE__BODY_LEASE:
                CU_ASSERT_EQUAL(m->id, 0);
                if (m->lease->revoked) {
                        st->revoked_id = m->lease->lease_id;
                        st->revocations++;
                        if (st->lease_id == m->lease->lease_id)
                                st->lease_id = 0;
                } else {
                        st->lease_id = m->lease->lease_id;
                        st->grants++;
                        st->implicit = m->lease->implicit;
                        st->explicit_ = m->lease->explicit_;
                        st->max_bytes = m->lease->max_bytes;
                        st->report_batch = m->lease->report_batch;
                        st->report_delay_usec = m->lease->report_delay_usec;
                }
                break;
        case MEMCONV__MESSAGE__BODY_SETTLED:
                for (size_t i = 0; i < m->settled->n_lease_seqs && st->n_settled_seq < 64; i++)
                        st->settled_seq[st->n_settled_seq++] = m->settled->lease_seqs[i];
                for (size_t i = 0; i < m->settled->n_decision_ids && st->n_settled_dec < 64; i++)
                        st->settled_dec[st->n_settled_dec++] = m->settled->decision_ids[i];
                break;
        case MEMCONV__MESSAGE__BODY_COMMITTED:
                for (size_t i = 0; i < m->committed->n_lease_seqs && st->n_committed_seq < 64; i++)
                        st->committed_seq[st->n_committed_seq++] = m->committed->lease_seqs[i];
                break;
        default:
                return false;
        }
        memconv__message__free_unpacked(m, NULL);
        return true;
}

/**
 * lrecv() - the next message that is not asynchronous, waiting at most
 * @timeout_ms; asynchronous ones are noted in @st
 * Return: the message (owned by the caller) or NULL
 */
static Memconv__Message *lrecv(struct vmm *v, struct lstate *st, int timeout_ms)
{
        uint64_t end = now_ms() + (uint64_t) timeout_ms;

        for (;;) {
                uint64_t now = now_ms();
                struct pollfd p = { .fd = v->sock, .events = POLLIN };
                Memconv__Message *m = NULL;
                int fds[MC_FRAME_MAX_FDS];
                size_t n = 0;

                if (now >= end || poll(&p, 1, (int) (end - now)) != 1)
                        return NULL;
                if (mc_frame_recv(v->sock, 0, &m, fds, &n) < 0)
                        return NULL;
                mc_frame_close_fds(fds, n);
                if (!note_async(st, m))
                        return m;
        }
}

/** has() - whether @v is among the @n values of @a */
static bool has(const uint64_t *a, size_t n, uint64_t v)
{
        for (size_t i = 0; i < n; i++)
                if (a[i] == v)
                        return true;
        return false;
}

/* lwait() - read until @cond holds (up to SETTLE_MS); any other message fails the test. */
#define lwait(v, st, cond)                                                                 \
        ({                                                                                 \
                uint64_t _end = now_ms() + SETTLE_MS;                                      \
                bool _ok;                                                                  \
                while (!(_ok = (cond)) && now_ms() < _end) {                               \
                        Memconv__Message *_m = lrecv((v), (st), 50);                       \
                        if (_m) {                                                          \
                                printf("\n  unexpected %s (id %llu)\n",                    \
                                       mc_message_type_name(_m->body_case),                \
                                       (unsigned long long) _m->id);                       \
                                CU_FAIL("unexpected message");                             \
                                memconv__message__free_unpacked(_m, NULL);                 \
                        }                                                                  \
                }                                                                          \
                _ok;                                                                       \
        })

/** lsend() - send @m with a fresh id, expecting no answer now */
static void lsend(struct vmm *v, Memconv__Message *m)
{
        m->id = ++v->next_id;
        CU_ASSERT_FATAL(mc_frame_send(v->sock, m, NULL, 0) == 0);
}

/** lcall() - send @m, return its answer (asynchronous messages noted) */
static Memconv__Message *lcall(struct vmm *v, struct lstate *st, Memconv__Message *m)
{
        Memconv__Message *r;

        lsend(v, m);
        r = lrecv(v, st, SETTLE_MS);
        CU_ASSERT_PTR_NOT_NULL(r);
        if (r)
                CU_ASSERT_EQUAL(r->id, m->id);
        return r;
}

/** request_lease() - LeaseRequest{want}: answered with @code */
static void request_lease(struct vmm *v, struct lstate *st, bool want, Memconv__Code code)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__LeaseRequest lr = MEMCONV__LEASE_REQUEST__INIT;

        lr.want = want;
        m.body_case = MEMCONV__MESSAGE__BODY_LEASE_REQUEST;
        m.lease_request = &lr;
        expect_reply(lcall(v, st, &m), code, NULL);
}

/** leased() - send LeasedApplied for [gpa, +size) under @lease_id with @seq */
static void leased(struct vmm *v, uint64_t lease_id, uint64_t seq, uint64_t gpa, uint64_t size, bool to_private,
                   bool implicit)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__LeasedApplied la = MEMCONV__LEASED_APPLIED__INIT;

        la.lease_id = lease_id;
        la.seq = seq;
        la.gpa = gpa;
        la.size = size;
        la.to = to_private ? MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE : MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
        la.implicit = implicit;
        la.source = implicit ? MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_UNSPECIFIED
                             : MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_KVM_HC_MAP_GPA_RANGE;
        m.body_case = MEMCONV__MESSAGE__BODY_LEASED_APPLIED;
        m.leased_applied = &la;
        lsend(v, &m);
}

/** report_fill() - @la: a report of [gpa, +size) to private, implicit, under @lease_id with @seq */
static void report_fill(Memconv__LeasedApplied *la, uint64_t lease_id, uint64_t seq, uint64_t gpa, uint64_t size)
{
        *la = (Memconv__LeasedApplied) MEMCONV__LEASED_APPLIED__INIT;
        la->lease_id = lease_id;
        la->seq = seq;
        la->gpa = gpa;
        la->size = size;
        la->to = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
        la->implicit = true;
}

/**
 * leased_batch() - send a LeasedBatch of @n reports answering to @ids
 * Return: the batch message's own id
 */
static uint64_t leased_batch(struct vmm *v, Memconv__LeasedApplied *reports, uint64_t *ids, size_t n)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__LeasedBatch b = MEMCONV__LEASED_BATCH__INIT;
        Memconv__LeasedApplied *p[8];

        CU_ASSERT_FATAL(n <= 8);
        for (size_t i = 0; i < n; i++)
                p[i] = &reports[i];
        b.n_reports = b.n_ids = n;
        b.reports = p;
        b.ids = ids;
        m.body_case = MEMCONV__MESSAGE__BODY_LEASED_BATCH;
        m.leased_batch = &b;
        lsend(v, &m);
        return m.id;
}

/** lease_return() - LeaseReturned{id}; no answer when accepted */
static void lease_return(struct vmm *v, uint64_t id)
{
        Memconv__Message m = MEMCONV__MESSAGE__INIT;
        Memconv__LeaseReturned lr = MEMCONV__LEASE_RETURNED__INIT;

        lr.lease_id = id;
        m.body_case = MEMCONV__MESSAGE__BODY_LEASE_RETURNED;
        m.lease_returned = &lr;
        lsend(v, &m);
}

/** expect_refusal() - the next answer is a Reply with @code naming @text */
static void expect_refusal(struct vmm *v, struct lstate *st, Memconv__Code code, const char *text)
{
        Memconv__Message *r = lrecv(v, st, SETTLE_MS);

        expect_reply(r, code, text);
}

/* show() - the VM @name as `show` reports it (owned by the caller); fails the test if it does not answer */
static Memconv__AdminReply *show(const char *name)
{
        Memconv__AdminReply *r = admin_show(name);

        CU_ASSERT_FATAL(r != NULL);
        return r;
}

/** private_bytes() - what the daemon's map holds as private for @name */
static uint64_t private_bytes(const char *name)
{
        Memconv__AdminReply *r = show(name);
        uint64_t b = r->show->vm->private_bytes;

        memconv__admin_reply__free_unpacked(r, NULL);
        return b;
}

/** ctl() - run memconvctl with @args against our daemon; Return: its exit status */
static int ctl(const char *args)
{
        char cmd[1024];
        int st;

        snprintf(cmd, sizeof(cmd), "%s/memconvctl --admin-socket %s %s >/dev/null 2>&1", top, admin_path, args);
        st = system(cmd);
        return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/** open_vm() - a VM @name with one region, both sides filled with @tag's patterns */
static void open_vm(struct vmm *v, const char *name, uint8_t tag)
{
        vmm_open(v, tag);
        vmm_attach_region(v, name);
}

static void test_no_lease(void)
{
        struct lstate st = { 0 };
        struct vmm v;

        open_vm(&v, "nolease", 0x11);
        /* Never asked, never granted: refused, nothing recorded or discarded. */
        leased(&v, 1, 1, REGION_GPA, 16 * PAGE, true, true);
        expect_refusal(&v, &st, MEMCONV__CODE__CODE_PERMISSION_DENIED, "holds no lease 1");
        CU_ASSERT_EQUAL(private_bytes("nolease"), 0);
        assert_backing_intact(&v, 0x11);
        /* Returning a lease one does not hold: refused. */
        lease_return(&v, 7);
        expect_refusal(&v, &st, MEMCONV__CODE__CODE_NOT_FOUND, "not being revoked");
        CU_ASSERT_EQUAL(st.grants, 0);
        vmm_close(&v);
}

static void test_grant_and_report(void)
{
        struct lstate st = { 0 };
        Memconv__AdminReply *r;
        struct vmm v;

        open_vm(&v, "leased", 0x22);
        request_lease(&v, &st, true, MEMCONV__CODE__CODE_OK);
        CU_ASSERT_FATAL(lwait(&v, &st, st.lease_id != 0));
        CU_ASSERT(st.implicit && st.explicit_);
        CU_ASSERT_EQUAL(st.max_bytes, 1ULL << 20);  /* LeaseMaxBytes=1M */
        r = show("leased");
        CU_ASSERT_PTR_NOT_NULL(strstr(r->show->vm->lease, "granted"));
        memconv__admin_reply__free_unpacked(r, NULL);

        /* To private under the lease: recorded, the shared copy discarded, settled, durable. */
        leased(&v, st.lease_id, 1, REGION_GPA, 16 * PAGE, true, true);
        CU_ASSERT(lwait(&v, &st, has(st.settled_seq, st.n_settled_seq, 1)));
        CU_ASSERT(lwait(&v, &st, has(st.committed_seq, st.n_committed_seq, 1)));
        CU_ASSERT_EQUAL(private_bytes("leased"), 16 * PAGE);
        CU_ASSERT(is_hole(v.shared, 0) && is_hole(v.shared, 15 * PAGE));
        CU_ASSERT(!is_hole(v.shared, 16 * PAGE));
        CU_ASSERT(v.shared_map[0] == 0 && v.shared_map[15 * PAGE] == 0);  /* discarded reads as zeros */
        CU_ASSERT(same(v.shared_map + 16 * PAGE, REGION_SIZE - 16 * PAGE, (uint8_t) (0x22 + 16)));

        /* The same again (another vCPU was first): nothing changes, settled all the same. */
        leased(&v, st.lease_id, 2, REGION_GPA, 16 * PAGE, true, true);
        CU_ASSERT(lwait(&v, &st, has(st.settled_seq, st.n_settled_seq, 2)));
        CU_ASSERT_EQUAL(private_bytes("leased"), 16 * PAGE);

        /* Back to shared, explicitly: the guest_memfd copy goes. */
        leased(&v, st.lease_id, 3, REGION_GPA, 4 * PAGE, false, false);
        CU_ASSERT(lwait(&v, &st, has(st.settled_seq, st.n_settled_seq, 3)));
        CU_ASSERT_EQUAL(private_bytes("leased"), 12 * PAGE);
        if (gmem_mmap) {
                uint8_t zero[PAGE] = { 0 };

                CU_ASSERT(memcmp(v.gmem_map, zero, PAGE) == 0);
                CU_ASSERT(v.gmem_map[4 * PAGE] != 0);
        }

        r = show("leased");
        CU_ASSERT_EQUAL(r->show->vm->stats->leased, 2);
        CU_ASSERT_EQUAL(r->show->vm->stats->lease_grants, 1);
        CU_ASSERT_EQUAL(r->show->vm->stats->explicit_to_shared, 1);
        CU_ASSERT_EQUAL(r->show->vm->stats->implicit_to_private, 1);
        memconv__admin_reply__free_unpacked(r, NULL);
        CU_ASSERT(log_wait("VM leased: [0x100000000, 0x100004000) private -> shared", NULL));

        /* Given up: revoked, and returned. */
        request_lease(&v, &st, false, MEMCONV__CODE__CODE_OK);
        CU_ASSERT(lwait(&v, &st, st.revocations == 1));
        lease_return(&v, st.revoked_id);
        r = NULL;
        CU_ASSERT(lwait(&v, &st, (r = show("leased")) && strcmp(r->show->vm->lease, "") == 0 ? true :
                                 (memconv__admin_reply__free_unpacked(r, NULL), r = NULL, false)));
        if (r)
                memconv__admin_reply__free_unpacked(r, NULL);
        vmm_close(&v);
}

/**
 * expect_revoked_then_regranted() - after a refused report (@revocations:
 * how many there were before it): the lease is revoked; once returned, no
 * new one is granted during the hold, then one is
 */
static void expect_revoked_then_regranted(struct vmm *v, struct lstate *st, unsigned revocations, const char *name)
{
        Memconv__AdminReply *r;
        uint64_t t0 = now_ms();

        CU_ASSERT(lwait(v, st, st->revocations > revocations && st->lease_id == 0));
        lease_return(v, st->revoked_id);
        r = show(name);
        /* The hold lasts LEASE_HOLD_USEC (1 s) from the revocation: only a machine that took
         * longer than that to get here could see a new grant already. */
        if (now_ms() - t0 < 500)
                CU_ASSERT_PTR_NOT_NULL(strstr(r->show->vm->lease, "held after a revocation"));
        memconv__admin_reply__free_unpacked(r, NULL);
        CU_ASSERT(lwait(v, st, st->lease_id != 0));
}

static void test_refusals(void)
{
        struct lstate st = { 0 };
        Memconv__Message *r;
        unsigned n;
        uint64_t dec;
        struct vmm v;

        open_vm(&v, "refuse", 0x33);
        request_lease(&v, &st, true, MEMCONV__CODE__CODE_OK);
        CU_ASSERT_FATAL(lwait(&v, &st, st.lease_id != 0));

        /* Outside registered memory. */
        n = st.revocations;
        leased(&v, st.lease_id, 1, REGION_GPA + REGION_SIZE, PAGE, true, true);
        expect_refusal(&v, &st, MEMCONV__CODE__CODE_OUT_OF_RANGE, "not inside this VM's registered memory");
        CU_ASSERT_EQUAL(private_bytes("refuse"), 0);
        assert_backing_intact(&v, 0x33);
        expect_revoked_then_regranted(&v, &st, n, "refuse");

        /* Under a lease that is not the one in force. */
        leased(&v, st.lease_id + 100, 2, REGION_GPA, PAGE, true, true);
        expect_refusal(&v, &st, MEMCONV__CODE__CODE_PERMISSION_DENIED, "holds no lease");
        CU_ASSERT_EQUAL(private_bytes("refuse"), 0);
        assert_backing_intact(&v, 0x33);

        /* Larger than the lease allows (LeaseMaxBytes=1M). */
        n = st.revocations;
        leased(&v, st.lease_id, 3, REGION_GPA, 2ULL << 20, true, false);
        expect_refusal(&v, &st, MEMCONV__CODE__CODE_POLICY_REFUSED, "exceed lease");
        CU_ASSERT_EQUAL(private_bytes("refuse"), 0);
        assert_backing_intact(&v, 0x33);
        expect_revoked_then_regranted(&v, &st, n, "refuse");

        /* Malformed: unaligned. Refused by the validator, nothing changed. */
        leased(&v, st.lease_id, 4, REGION_GPA + 1, PAGE, true, true);
        expect_refusal(&v, &st, MEMCONV__CODE__CODE_INVALID_ARGUMENT, "4 KiB aligned");
        CU_ASSERT_EQUAL(private_bytes("refuse"), 0);

        /* Overlapping a decision not yet applied (DESIGN rule 4): refused, and the decision
         * still completes normally afterwards. */
        {
                Memconv__Message m = MEMCONV__MESSAGE__INIT;
                Memconv__Convert c = MEMCONV__CONVERT__INIT;

                c.gpa = REGION_GPA;
                c.size = 8 * PAGE;
                c.to = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
                c.source = MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_KVM_HC_MAP_GPA_RANGE;
                m.body_case = MEMCONV__MESSAGE__BODY_CONVERT;
                m.convert = &c;
                r = lcall(&v, &st, &m);
        }
        CU_ASSERT_FATAL(r && r->body_case == MEMCONV__MESSAGE__BODY_DECISION);
        CU_ASSERT_EQUAL_FATAL(r->decision->action, MEMCONV__ACTION__ACTION_APPLY);
        dec = r->decision->decision_id;
        memconv__message__free_unpacked(r, NULL);
        n = st.revocations;
        leased(&v, st.lease_id, 5, REGION_GPA + 4 * PAGE, 8 * PAGE, false, true);
        expect_refusal(&v, &st, MEMCONV__CODE__CODE_BUSY, "not settled");
        CU_ASSERT_EQUAL(private_bytes("refuse"), 0);
        assert_backing_intact(&v, 0x33);
        applied(&v, dec, true);
        CU_ASSERT(lwait(&v, &st, has(st.settled_dec, st.n_settled_dec, dec)));
        CU_ASSERT_EQUAL(private_bytes("refuse"), 8 * PAGE);
        expect_revoked_then_regranted(&v, &st, n, "refuse");
        vmm_close(&v);
}

/*
 * A batch of reports is handled report by report, each as if it had come
 * alone with its own id: a refused one is answered by its id and changes
 * nothing, the others are recorded. A batch malformed anywhere is refused
 * whole, answered by the batch's id, and none of it is recorded.
 */
static void test_batches(void)
{
        struct lstate st = { 0 };
        Memconv__LeasedApplied rep[3];
        uint64_t ids[3] = { 501, 502, 503 }, bad_ids[2] = { 601, 602 }, batch_id;
        Memconv__AdminReply *a;
        Memconv__Message *r;
        unsigned n;
        struct vmm v;

        open_vm(&v, "batched", 0x55);
        request_lease(&v, &st, true, MEMCONV__CODE__CODE_OK);
        CU_ASSERT_FATAL(lwait(&v, &st, st.lease_id != 0));
        CU_ASSERT_EQUAL(st.report_batch, 128);
        CU_ASSERT_EQUAL(st.report_delay_usec, 1000);  /* the default LeaseReportDelayUSec= */

        n = st.revocations;
        report_fill(&rep[0], st.lease_id, 1, REGION_GPA, 4 * PAGE);
        report_fill(&rep[1], st.lease_id, 2, REGION_GPA + REGION_SIZE, PAGE);  /* not its memory */
        report_fill(&rep[2], st.lease_id, 3, REGION_GPA + 8 * PAGE, 4 * PAGE);
        (void) leased_batch(&v, rep, ids, 3);
        r = lrecv(&v, &st, SETTLE_MS);
        CU_ASSERT_FATAL(r != NULL);
        CU_ASSERT_EQUAL(r->id, 502);
        expect_reply(r, MEMCONV__CODE__CODE_OUT_OF_RANGE, "not inside this VM's registered memory");
        CU_ASSERT(lwait(&v, &st, has(st.settled_seq, st.n_settled_seq, 1) && has(st.settled_seq, st.n_settled_seq, 3)));
        CU_ASSERT_EQUAL(private_bytes("batched"), 8 * PAGE);
        CU_ASSERT(is_hole(v.shared, 0) && is_hole(v.shared, 8 * PAGE) && !is_hole(v.shared, 4 * PAGE));
        a = show("batched");
        CU_ASSERT_EQUAL(a->show->vm->stats->leased, 2);
        CU_ASSERT_EQUAL(a->show->vm->stats->leased_batches, 1);
        memconv__admin_reply__free_unpacked(a, NULL);
        expect_revoked_then_regranted(&v, &st, n, "batched");

        /* Malformed in its second report: nothing of it recorded, no backing touched. */
        report_fill(&rep[0], st.lease_id, 4, REGION_GPA + 16 * PAGE, 4 * PAGE);
        report_fill(&rep[1], st.lease_id, 5, REGION_GPA + 20 * PAGE + 1, PAGE);
        batch_id = leased_batch(&v, rep, bad_ids, 2);
        r = lrecv(&v, &st, SETTLE_MS);
        CU_ASSERT_FATAL(r != NULL);
        CU_ASSERT_EQUAL(r->id, batch_id);
        expect_reply(r, MEMCONV__CODE__CODE_INVALID_ARGUMENT, "leased-batch: report 1");
        /* Ids and reports that do not pair up: refused the same way. */
        report_fill(&rep[1], st.lease_id, 5, REGION_GPA + 20 * PAGE, PAGE);
        {
                Memconv__Message m = MEMCONV__MESSAGE__INIT;
                Memconv__LeasedBatch b = MEMCONV__LEASED_BATCH__INIT;
                Memconv__LeasedApplied *p[2] = { &rep[0], &rep[1] };

                b.n_reports = 2;
                b.reports = p;
                b.n_ids = 1;
                b.ids = bad_ids;
                m.body_case = MEMCONV__MESSAGE__BODY_LEASED_BATCH;
                m.leased_batch = &b;
                expect_reply(lcall(&v, &st, &m), MEMCONV__CODE__CODE_INVALID_ARGUMENT, "2 reports and 1 ids");
        }
        CU_ASSERT_EQUAL(private_bytes("batched"), 8 * PAGE);
        CU_ASSERT(!is_hole(v.shared, 16 * PAGE) && !is_hole(v.shared, 20 * PAGE));
        CU_ASSERT(same(v.shared_map + 16 * PAGE, 8 * PAGE, (uint8_t) (0x55 + 16)));
        a = show("batched");
        CU_ASSERT_EQUAL(a->show->vm->stats->leased, 2);
        CU_ASSERT_EQUAL(a->show->vm->stats->leased_batches, 1);
        memconv__admin_reply__free_unpacked(a, NULL);
        vmm_close(&v);
}

static void test_policy_and_reload(void)
{
        struct lstate st = { 0 };
        char args[256];
        unsigned n;
        struct vmm v;

        open_vm(&v, "terms", 0x44);
        request_lease(&v, &st, true, MEMCONV__CODE__CODE_OK);
        CU_ASSERT_FATAL(lwait(&v, &st, st.lease_id != 0));
        CU_ASSERT(st.implicit);

        /* explicit-only enforced for this VM: the lease is revoked; the new one has no implicit. */
        snprintf(args, sizeof(args), "policy set terms explicit-only enforce=yes");
        CU_ASSERT_EQUAL(ctl(args), 0);
        CU_ASSERT(lwait(&v, &st, st.lease_id == 0));
        lease_return(&v, st.revoked_id);
        CU_ASSERT(lwait(&v, &st, st.lease_id != 0));
        CU_ASSERT(!st.implicit && st.explicit_);
        n = st.revocations;
        leased(&v, st.lease_id, 1, REGION_GPA, PAGE, true, true);
        expect_refusal(&v, &st, MEMCONV__CODE__CODE_POLICY_REFUSED, "does not cover implicit");
        CU_ASSERT_EQUAL(private_bytes("terms"), 0);
        assert_backing_intact(&v, 0x44);
        expect_revoked_then_regranted(&v, &st, n, "terms");
        CU_ASSERT(!st.implicit);
        leased(&v, st.lease_id, 2, REGION_GPA, PAGE, true, false);
        CU_ASSERT(lwait(&v, &st, has(st.settled_seq, st.n_settled_seq, 2)));
        CU_ASSERT_EQUAL(private_bytes("terms"), PAGE);

        /* Leases=no by reload: revoked, not granted again; a new request is refused. */
        write_config(false);
        CU_ASSERT_EQUAL(kill(daemon_pid, SIGHUP), 0);
        CU_ASSERT(lwait(&v, &st, st.lease_id == 0));
        lease_return(&v, st.revoked_id);
        CU_ASSERT(log_wait("Configuration reloaded", NULL));
        CU_ASSERT(lrecv(&v, &st, 300) == NULL);  /* nothing else comes */
        CU_ASSERT_EQUAL(st.lease_id, 0);
        request_lease(&v, &st, true, MEMCONV__CODE__CODE_PERMISSION_DENIED);
        write_config(true);
        CU_ASSERT_EQUAL(kill(daemon_pid, SIGHUP), 0);
        CU_ASSERT(log_wait_count("Configuration reloaded", NULL, 2));
        vmm_close(&v);
}

int main(void)
{
        const char *tb = getenv("top_builddir");
        unsigned failures;
        CU_pSuite s;
        int r, fd;

        if (!realpath(tb ? tb : ".", top))
                return 1;
        snprintf(conf_path, sizeof(conf_path), "/tmp/memconv-lease-conf.XXXXXX");
        fd = mkstemp(conf_path);
        if (fd < 0)
                return 1;
        close(fd);
        write_config(true);
        setenv("MEMCONV_TEST_CONFIG", conf_path, 1);
        r = harness_setup(true);
        if (r != 0) {
                unlink(conf_path);
                return r;
        }
        if (CU_initialize_registry() != CUE_SUCCESS)
                return 1;
        s = CU_add_suite("lease", NULL, NULL);
        CU_add_test(s, "no lease: reports refused, nothing changed", test_no_lease);
        CU_add_test(s, "grant, report, settle, commit, discard, give up", test_grant_and_report);
        CU_add_test(s, "refused reports change nothing and revoke the lease", test_refusals);
        CU_add_test(s, "batched reports: one by one; malformed batches refused whole", test_batches);
        CU_add_test(s, "policy settings and reloads revoke; terms follow policy", test_policy_and_reload);
        CU_basic_set_mode(CU_BRM_VERBOSE);
        CU_basic_run_tests();
        failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
        CU_cleanup_registry();
        unlink(conf_path);
        return harness_finish(failures);
}
