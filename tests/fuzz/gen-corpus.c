/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * gen-corpus.c - write the seed corpora of tests/fuzz.
 *
 * Usage: gen-corpus DIR
 * Writes DIR/fuzz-message (a valid message of every type, then edge cases),
 * DIR/fuzz-admin (every AdminRequest and AdminReply type), DIR/fuzz-journal
 * (journals of every record type, torn, corrupt and zero-filled tails, bad
 * headers) and DIR/fuzz-planner (operation programs). Deterministic: the
 * same tree writes the same files. Run by `tests/fuzz/run.sh --seed`.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "journal.h"
#include "memconv.pb-c.h"

static const char *outdir;

static void write_file(const char *target, const char *name, const void *data, size_t len)
{
        char path[4096];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", outdir, target);
        (void) mkdir(path, 0755);
        snprintf(path, sizeof(path), "%s/%s/%s", outdir, target, name);
        f = fopen(path, "we");
        if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
                fprintf(stderr, "cannot write %s\n", path);
                exit(EXIT_FAILURE);
        }
}

static void write_pb(const char *target, const char *name, const ProtobufCMessage *m)
{
        size_t len = protobuf_c_message_get_packed_size(m);
        uint8_t *buf = malloc(len + 1);

        protobuf_c_message_pack(m, buf);
        write_file(target, name, buf, len);
        free(buf);
}

static uint8_t uuid[16] = { 0x6a, 0x1e, 0x3c, 0x55, 0x0b, 0x7d, 0x4e, 0x21,
                            0x9f, 0x10, 0x42, 0x33, 0xaa, 0x01, 0x02, 0x03 };

/* ---------------------------------------------------------------- VMM messages */

static void gen_messages(void)
{
        const char *t = "fuzz-message";
        Memconv__Message m;
        Memconv__Hello hello = MEMCONV__HELLO__INIT;
        Memconv__HelloReply hr = MEMCONV__HELLO_REPLY__INIT;
        Memconv__Attach at = MEMCONV__ATTACH__INIT;
        Memconv__AttachReply ar = MEMCONV__ATTACH_REPLY__INIT;
        Memconv__Detach de = MEMCONV__DETACH__INIT;
        Memconv__RegisterRegion rr = MEMCONV__REGISTER_REGION__INIT;
        Memconv__UnregisterRegion ur = MEMCONV__UNREGISTER_REGION__INIT;
        Memconv__MemoryFault mf = MEMCONV__MEMORY_FAULT__INIT;
        Memconv__Convert cv = MEMCONV__CONVERT__INIT;
        Memconv__Decision dc = MEMCONV__DECISION__INIT;
        Memconv__Applied ap = MEMCONV__APPLIED__INIT;
        Memconv__Reply rp = MEMCONV__REPLY__INIT;
        Memconv__Committed cm = MEMCONV__COMMITTED__INIT;
        Memconv__Reapplied ra = MEMCONV__REAPPLIED__INIT;
        Memconv__Resumed rs = MEMCONV__RESUMED__INIT;
        Memconv__LeaseRequest lq = MEMCONV__LEASE_REQUEST__INIT;
        Memconv__Lease ls = MEMCONV__LEASE__INIT;
        Memconv__LeasedApplied la = MEMCONV__LEASED_APPLIED__INIT;
        Memconv__LeaseReturned lr = MEMCONV__LEASE_RETURNED__INIT;
        Memconv__LeasedBatch lb = MEMCONV__LEASED_BATCH__INIT;
        Memconv__LeasedApplied lb_r[2];
        Memconv__LeasedApplied *lb_p[2] = { &lb_r[0], &lb_r[1] };
        Memconv__Settled se = MEMCONV__SETTLED__INIT;
        Memconv__RingSetup rsu = MEMCONV__RING_SETUP__INIT;
        Memconv__RingKick rk = MEMCONV__RING_KICK__INIT;
        Memconv__Status st = MEMCONV__STATUS__INIT;
        Memconv__Range r1 = MEMCONV__RANGE__INIT, r2 = MEMCONV__RANGE__INIT;
        Memconv__Range *ranges[2] = { &r1, &r2 };
        uint64_t ids[3] = { 1, 2, 0xffffffffffULL };
        uint8_t token[16], syndrome[64];
        char longname[300];

        memset(token, 0xab, sizeof(token));
        memset(syndrome, 0x5c, sizeof(syndrome));
        r1.gpa = 0x100000000ULL;
        r1.size = 0x2000;
        r2.gpa = 0x100004000ULL;
        r2.size = 0x1000;
        st.code = MEMCONV__CODE__CODE_INVALID_ARGUMENT;
        st.errno_value = -22;
        st.message = (char *) "convert: gpa 0x1001 must be 4 KiB aligned";

#define EMIT(name, field, ptr, bodycase)                                        \
        do {                                                                    \
                memconv__message__init(&m);                                     \
                m.id = 7;                                                       \
                m.body_case = bodycase;                                         \
                m.field = ptr;                                                  \
                write_pb(t, name, &m.base);                                     \
        } while (0)

        hello.version = 1;
        hello.client = (char *) "gen-corpus / libmemconv 0.1";
        EMIT("hello", hello, &hello, MEMCONV__MESSAGE__BODY_HELLO);
        hr.status = &st;
        hr.version = 1;
        hr.server = (char *) "memconvd 0.1";
        hr.max_frame = 65536;
        EMIT("hello-reply", hello_reply, &hr, MEMCONV__MESSAGE__BODY_HELLO_REPLY);
        at.uuid.data = uuid;
        at.uuid.len = 16;
        at.name = (char *) "guest-1";
        at.cc_type = MEMCONV__CC_TYPE__CC_TYPE_SEV_SNP;
        at.arch = MEMCONV__ARCH__ARCH_X86_64;
        EMIT("attach", attach, &at, MEMCONV__MESSAGE__BODY_ATTACH);
        at.token.data = token;
        at.token.len = 16;
        EMIT("attach-token", attach, &at, MEMCONV__MESSAGE__BODY_ATTACH);
        ar.status = &st;
        ar.vm_id = 3;
        ar.token.data = token;
        ar.token.len = 16;
        EMIT("attach-reply", attach_reply, &ar, MEMCONV__MESSAGE__BODY_ATTACH_REPLY);
        EMIT("detach", detach, &de, MEMCONV__MESSAGE__BODY_DETACH);
        rr.slot = 1;
        rr.gpa = 0x100000000ULL;
        rr.size = 0x40000000ULL;
        rr.guest_memfd_offset = 0x1000;
        rr.has_shared = true;
        rr.shared_offset = 0x2000;
        rr.initial = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
        EMIT("register-region", register_region, &rr, MEMCONV__MESSAGE__BODY_REGISTER_REGION);
        ur.slot = 1;
        EMIT("unregister-region", unregister_region, &ur, MEMCONV__MESSAGE__BODY_UNREGISTER_REGION);
        mf.vcpu = 2;
        mf.gpa = 0x100001000ULL;
        mf.size = 0x1000;
        mf.flags = 1ULL << 3;
        mf.syndrome.data = syndrome;
        mf.syndrome.len = 8;
        EMIT("memory-fault", memory_fault, &mf, MEMCONV__MESSAGE__BODY_MEMORY_FAULT);
        cv.vcpu = 1;
        cv.gpa = 0x100000000ULL;
        cv.size = 0x200000;
        cv.to = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
        cv.source = MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_SNP_PSC;
        cv.page_size = MEMCONV__PAGE_SIZE__PAGE_SIZE_2M;
        EMIT("convert", convert, &cv, MEMCONV__MESSAGE__BODY_CONVERT);
        dc.status = &st;
        dc.action = MEMCONV__ACTION__ACTION_APPLY;
        dc.to = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
        dc.n_ranges = 2;
        dc.ranges = ranges;
        dc.decision_id = 99;
        EMIT("decision", decision, &dc, MEMCONV__MESSAGE__BODY_DECISION);
        ap.decision_id = 99;
        ap.ok = true;
        EMIT("applied", applied, &ap, MEMCONV__MESSAGE__BODY_APPLIED);
        ap.ok = false;
        ap.errno_value = -5;
        EMIT("applied-failed", applied, &ap, MEMCONV__MESSAGE__BODY_APPLIED);
        rp.status = &st;
        EMIT("reply", reply, &rp, MEMCONV__MESSAGE__BODY_REPLY);
        cm.n_decision_ids = 3;
        cm.decision_ids = ids;
        EMIT("committed", committed, &cm, MEMCONV__MESSAGE__BODY_COMMITTED);
        ra.n_ranges = 2;
        ra.ranges = ranges;
        ra.to = MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
        ra.implicit = true;
        ra.vcpu = 3;
        ra.source = MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_TDX_MAPGPA;
        ra.request_id = 12345;
        EMIT("reapplied", reapplied, &ra, MEMCONV__MESSAGE__BODY_REAPPLIED);
        EMIT("resumed", resumed, &rs, MEMCONV__MESSAGE__BODY_RESUMED);
        lq.want = true;
        EMIT("lease-request", lease_request, &lq, MEMCONV__MESSAGE__BODY_LEASE_REQUEST);
        ls.lease_id = 4;
        ls.implicit = ls.explicit_ = true;
        ls.max_bytes = 1ULL << 30;
        ls.conversions_per_sec = 1000;
        ls.conversions_burst = 50;
        EMIT("lease", lease, &ls, MEMCONV__MESSAGE__BODY_LEASE);
        ls.revoked = true;
        EMIT("lease-revoked", lease, &ls, MEMCONV__MESSAGE__BODY_LEASE);
        la.lease_id = 4;
        la.seq = 17;
        la.vcpu = 1;
        la.gpa = 0x100002000ULL;
        la.size = 0x1000;
        la.to = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
        la.implicit = true;
        EMIT("leased-applied", leased_applied, &la, MEMCONV__MESSAGE__BODY_LEASED_APPLIED);
        lb_r[0] = lb_r[1] = la;
        lb_r[1].seq = 18;
        lb_r[1].gpa = 0x100003000ULL;
        lb.n_reports = lb.n_ids = 2;
        lb.reports = lb_p;
        lb.ids = ids;
        EMIT("leased-batch", leased_batch, &lb, MEMCONV__MESSAGE__BODY_LEASED_BATCH);
        ls.revoked = false;
        ls.report_batch = 128;
        ls.report_delay_usec = 1000;
        EMIT("lease-batched", lease, &ls, MEMCONV__MESSAGE__BODY_LEASE);
        ls.revoked = true;
        ls.report_batch = 0;
        ls.report_delay_usec = 0;
        lr.lease_id = 4;
        EMIT("lease-returned", lease_returned, &lr, MEMCONV__MESSAGE__BODY_LEASE_RETURNED);
        se.n_decision_ids = 3;
        se.decision_ids = ids;
        se.n_lease_seqs = 3;
        se.lease_seqs = ids;
        EMIT("settled", settled, &se, MEMCONV__MESSAGE__BODY_SETTLED);
        cm.n_lease_seqs = 3;
        cm.lease_seqs = ids;
        EMIT("committed-leased", committed, &cm, MEMCONV__MESSAGE__BODY_COMMITTED);
        rsu.version = 1;
        EMIT("ring-setup", ring_setup, &rsu, MEMCONV__MESSAGE__BODY_RING_SETUP);
        EMIT("ring-kick", ring_kick, &rk, MEMCONV__MESSAGE__BODY_RING_KICK);

        /* Edge cases: each one is refused by exactly one rule. */
        hello.version = 0;
        EMIT("edge-hello-version-0", hello, &hello, MEMCONV__MESSAGE__BODY_HELLO);
        rsu.version = 2;
        EMIT("edge-ring-setup-version-2", ring_setup, &rsu, MEMCONV__MESSAGE__BODY_RING_SETUP);
        memset(longname, 'x', sizeof(longname) - 1);
        longname[sizeof(longname) - 1] = 0;
        hello.version = 1;
        hello.client = longname;
        EMIT("edge-hello-long-client", hello, &hello, MEMCONV__MESSAGE__BODY_HELLO);
        at.token.len = 0;
        at.name = longname;
        EMIT("edge-attach-long-name", attach, &at, MEMCONV__MESSAGE__BODY_ATTACH);
        at.name = (char *) "a/b";
        EMIT("edge-attach-slash", attach, &at, MEMCONV__MESSAGE__BODY_ATTACH);
        at.name = (char *) "ok";
        at.uuid.len = 15;
        EMIT("edge-attach-uuid-15", attach, &at, MEMCONV__MESSAGE__BODY_ATTACH);
        at.uuid.len = 16;
        at.cc_type = 99;
        EMIT("edge-attach-cc-99", attach, &at, MEMCONV__MESSAGE__BODY_ATTACH);
        rr.gpa = UINT64_MAX - 0xfff;
        rr.size = 0x2000;
        EMIT("edge-region-overflow", register_region, &rr, MEMCONV__MESSAGE__BODY_REGISTER_REGION);
        rr.gpa = 0x1001;
        EMIT("edge-region-unaligned", register_region, &rr, MEMCONV__MESSAGE__BODY_REGISTER_REGION);
        rr.gpa = 0;
        rr.has_shared = false;
        EMIT("edge-region-shared-offset", register_region, &rr, MEMCONV__MESSAGE__BODY_REGISTER_REGION);
        mf.syndrome.len = 64;
        mf.flags = UINT64_MAX;
        EMIT("edge-fault-syndrome-64", memory_fault, &mf, MEMCONV__MESSAGE__BODY_MEMORY_FAULT);
        cv.to = 7;
        EMIT("edge-convert-to-7", convert, &cv, MEMCONV__MESSAGE__BODY_CONVERT);
        cv.to = MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
        cv.page_size = -1;
        EMIT("edge-convert-page-size-neg", convert, &cv, MEMCONV__MESSAGE__BODY_CONVERT);
        ap.ok = true;
        ap.errno_value = -1;
        EMIT("edge-applied-ok-errno", applied, &ap, MEMCONV__MESSAGE__BODY_APPLIED);
        ap.decision_id = 0;
        EMIT("edge-applied-id-0", applied, &ap, MEMCONV__MESSAGE__BODY_APPLIED);
        r2.size = 0;
        EMIT("edge-reapplied-empty-range", reapplied, &ra, MEMCONV__MESSAGE__BODY_REAPPLIED);
        dc.action = MEMCONV__ACTION__ACTION_APPLY;
        dc.decision_id = 0;
        EMIT("edge-decision-no-id", decision, &dc, MEMCONV__MESSAGE__BODY_DECISION);
        la.seq = 0;
        EMIT("edge-leased-seq-0", leased_applied, &la, MEMCONV__MESSAGE__BODY_LEASED_APPLIED);
        la.seq = 18;
        la.gpa = UINT64_MAX - 0xfff;
        la.size = 0x2000;
        EMIT("edge-leased-overflow", leased_applied, &la, MEMCONV__MESSAGE__BODY_LEASED_APPLIED);
        lb.n_ids = 1;
        EMIT("edge-leased-batch-ids", leased_batch, &lb, MEMCONV__MESSAGE__BODY_LEASED_BATCH);
        ls.revoked = false;
        ls.max_bytes = 0x1001;
        EMIT("edge-lease-max-unaligned", lease, &ls, MEMCONV__MESSAGE__BODY_LEASE);
        ls.max_bytes = 0x1000;
        ls.implicit = ls.explicit_ = false;
        EMIT("edge-lease-grants-nothing", lease, &ls, MEMCONV__MESSAGE__BODY_LEASE);
        lr.lease_id = 0;
        EMIT("edge-lease-returned-0", lease_returned, &lr, MEMCONV__MESSAGE__BODY_LEASE_RETURNED);
        memconv__message__init(&m);
        write_pb(t, "edge-no-body", &m.base);
        m.id = 0;
        m.body_case = MEMCONV__MESSAGE__BODY_CONVERT;
        m.convert = &cv;
        write_pb(t, "edge-convert-id-0", &m.base);
#undef EMIT

        write_file(t, "edge-empty", "", 0);
        write_file(t, "edge-garbage", "\xff\xff\xff\xff\x0f garbage", 14);
        /* field 12 (attach) length-delimited, claiming more bytes than follow */
        write_file(t, "edge-truncated-submessage", "\x08\x01\x62\x40\x0a\x10", 6);
        /* an unknown field number with a fixed64 wire type, then hello */
        write_file(t, "edge-unknown-field", "\xf9\x3f\x01\x02\x03\x04\x05\x06\x07\x08\x08\x05\x52\x02\x08\x01", 16);
}

/* ---------------------------------------------------------------- admin */

static void gen_admin(void)
{
        const char *t = "fuzz-admin";
        Memconv__AdminRequest q;
        Memconv__AdminReply a;
        Memconv__VmSelector sel = MEMCONV__VM_SELECTOR__INIT;
        Memconv__StatusRequest sq = MEMCONV__STATUS_REQUEST__INIT;
        Memconv__ListRequest lq = MEMCONV__LIST_REQUEST__INIT;
        Memconv__ShowRequest shq = MEMCONV__SHOW_REQUEST__INIT;
        Memconv__RangesRequest rq = MEMCONV__RANGES_REQUEST__INIT;
        Memconv__HistoryRequest hq = MEMCONV__HISTORY_REQUEST__INIT;
        Memconv__StatsRequest stq = MEMCONV__STATS_REQUEST__INIT;
        Memconv__CheckRequest cq = MEMCONV__CHECK_REQUEST__INIT;
        Memconv__ForgetRequest fq = MEMCONV__FORGET_REQUEST__INIT;
        Memconv__Status st = MEMCONV__STATUS__INIT;
        Memconv__StatusReply sr = MEMCONV__STATUS_REPLY__INIT;
        Memconv__LoopPolling lp = MEMCONV__LOOP_POLLING__INIT;
        Memconv__RingInfo ri = MEMCONV__RING_INFO__INIT;
        Memconv__ConversionStats cs = MEMCONV__CONVERSION_STATS__INIT;
        Memconv__Histogram hi = MEMCONV__HISTOGRAM__INIT;
        Memconv__RegionInfo reg = MEMCONV__REGION_INFO__INIT;
        Memconv__RegionInfo *regs[1] = { &reg };
        Memconv__VmInfo vm = MEMCONV__VM_INFO__INIT;
        Memconv__VmInfo *vms[1] = { &vm };
        Memconv__ListReply lr = MEMCONV__LIST_REPLY__INIT;
        Memconv__ShowReply shr = MEMCONV__SHOW_REPLY__INIT;
        Memconv__AttrRange atr = MEMCONV__ATTR_RANGE__INIT;
        Memconv__AttrRange *atrs[1] = { &atr };
        Memconv__RangesReply rr = MEMCONV__RANGES_REPLY__INIT;
        Memconv__HistoryRecord rec = MEMCONV__HISTORY_RECORD__INIT;
        Memconv__HistoryRecord *recs[1] = { &rec };
        Memconv__HistoryReply hr = MEMCONV__HISTORY_REPLY__INIT;
        Memconv__StatsReply str = MEMCONV__STATS_REPLY__INIT;
        Memconv__CheckFinding fi = MEMCONV__CHECK_FINDING__INIT;
        Memconv__CheckFinding *fis[1] = { &fi };
        Memconv__CheckReply cr = MEMCONV__CHECK_REPLY__INIT;
        Memconv__ForgetReply fr = MEMCONV__FORGET_REPLY__INIT;
        Memconv__PolicyShowRequest psq = MEMCONV__POLICY_SHOW_REQUEST__INIT;
        Memconv__PolicySetRequest pstq = MEMCONV__POLICY_SET_REQUEST__INIT;
        Memconv__RegisterDomainRequest rdq = MEMCONV__REGISTER_DOMAIN_REQUEST__INIT;
        Memconv__PolicyOverride po = MEMCONV__POLICY_OVERRIDE__INIT;
        Memconv__PolicyOverride *pos[1] = { &po };
        char *plugins[2] = { (char *) "explicit-only", (char *) "rate-limit" };
        Memconv__PolicyShowReply psr = MEMCONV__POLICY_SHOW_REPLY__INIT;
        Memconv__PolicySetReply pstr = MEMCONV__POLICY_SET_REPLY__INIT;
        Memconv__RegisterDomainReply rdr = MEMCONV__REGISTER_DOMAIN_REPLY__INIT;
        uint64_t buckets[4] = { 1, 5, 9, 2 };

#define REQ(name, field, ptr, bodycase)                                         \
        do {                                                                    \
                memconv__admin_request__init(&q);                               \
                q.id = 11;                                                      \
                q.body_case = bodycase;                                         \
                q.field = ptr;                                                  \
                write_pb(t, name, &q.base);                                     \
        } while (0)
#define REP(name, field, ptr, bodycase)                                         \
        do {                                                                    \
                memconv__admin_reply__init(&a);                                 \
                a.id = 11;                                                      \
                a.status = &st;                                                 \
                a.body_case = bodycase;                                         \
                a.field = ptr;                                                  \
                write_pb(t, name, &a.base);                                     \
        } while (0)

        sel.spec = (char *) "6a1e3c55-0b7d-4e21-9f10-4233aa010203";
        REQ("req-status", status, &sq, MEMCONV__ADMIN_REQUEST__BODY_STATUS);
        REQ("req-list", list, &lq, MEMCONV__ADMIN_REQUEST__BODY_LIST);
        shq.vm = &sel;
        REQ("req-show", show, &shq, MEMCONV__ADMIN_REQUEST__BODY_SHOW);
        rq.vm = &sel;
        rq.start = 0x100000000ULL;
        rq.end = 0x140000000ULL;
        rq.filter = true;
        rq.attribute = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
        rq.limit = 10;
        REQ("req-ranges", ranges, &rq, MEMCONV__ADMIN_REQUEST__BODY_RANGES);
        hq.vm = &sel;
        hq.since_seq = 5;
        hq.follow = true;
        hq.limit = 100;
        REQ("req-history", history, &hq, MEMCONV__ADMIN_REQUEST__BODY_HISTORY);
        REQ("req-stats", stats, &stq, MEMCONV__ADMIN_REQUEST__BODY_STATS);
        sel.spec = (char *) "#3";
        cq.vm = &sel;
        REQ("req-check", check, &cq, MEMCONV__ADMIN_REQUEST__BODY_CHECK);
        sel.spec = (char *) "guest-1";
        fq.vm = &sel;
        REQ("req-forget", forget, &fq, MEMCONV__ADMIN_REQUEST__BODY_FORGET);

        hi.n_buckets = 4;
        hi.buckets = buckets;
        hi.count = 17;
        hi.p99_usec = 8;
        cs.explicit_to_private = 4;
        cs.discard_bytes = 1 << 20;
        cs.decision_latency = &hi;
        cs.discard_latency = &hi;
        sr.version = (char *) "0.1";
        sr.vmm_socket = (char *) "/run/memconvd/vmm.sock";
        sr.totals = &cs;
        lp.max_usec = 50;
        lp.window_usec = 20;
        lp.hits = 1234;
        lp.misses = 56;
        lp.poll_usec = 26804;
        sr.polling = &lp;
        sr.ring = true;
        REP("rep-status", status_reply, &sr, MEMCONV__ADMIN_REPLY__BODY_STATUS_REPLY);
        reg.slot = 1;
        reg.gpa = 0x100000000ULL;
        reg.size = 1 << 30;
        reg.has_shared = true;
        vm.id = 3;
        vm.uuid = (char *) "6a1e3c55-0b7d-4e21-9f10-4233aa010203";
        vm.name = (char *) "guest-1";
        vm.state = (char *) "attached";
        vm.n_regions = 1;
        vm.regions = regs;
        vm.stats = &cs;
        ri.entries = 4000;
        ri.replies = 1990;
        ri.socket_replies = 10;
        ri.kicks = 3;
        ri.stalls = 1;
        vm.ring = &ri;
        lr.n_vms = 1;
        lr.vms = vms;
        REP("rep-list", list, &lr, MEMCONV__ADMIN_REPLY__BODY_LIST);
        shr.vm = &vm;
        REP("rep-show", show, &shr, MEMCONV__ADMIN_REPLY__BODY_SHOW);
        atr.gpa = 0x100000000ULL;
        atr.size = 0x1000;
        atr.attribute = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
        rr.n_ranges = 1;
        rr.ranges = atrs;
        rr.next = 0x100001000ULL;
        REP("rep-ranges", ranges, &rr, MEMCONV__ADMIN_REPLY__BODY_RANGES);
        rec.seq = 1;
        rec.gpa = 0x100000000ULL;
        rec.size = 0x1000;
        rec.to = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
        rec.result = MEMCONV__CHANGE_RESULT__CHANGE_RESULT_REFUSED;
        rec.code = MEMCONV__CODE__CODE_OUT_OF_RANGE;
        hr.n_records = 1;
        hr.records = recs;
        hr.more = true;
        REP("rep-history", history, &hr, MEMCONV__ADMIN_REPLY__BODY_HISTORY);
        str.totals = &cs;
        str.n_vms = 1;
        str.vms = vms;
        REP("rep-stats", stats, &str, MEMCONV__ADMIN_REPLY__BODY_STATS);
        fi.kind = MEMCONV__CHECK_FINDING__KIND__KIND_BACKED_TWICE;
        fi.gpa = 0x100000000ULL;
        fi.size = 0x1000;
        fi.detail = (char *) "allocated in guest_memfd and shared memory";
        cr.n_findings = 1;
        cr.findings = fis;
        cr.checked_bytes = 1 << 30;
        REP("rep-check", check, &cr, MEMCONV__ADMIN_REPLY__BODY_CHECK);
        st.code = MEMCONV__CODE__CODE_NOT_FOUND;
        st.errno_value = -2;
        st.message = (char *) "no VM matches \"x\"";
        REP("rep-forget-error", forget, &fr, MEMCONV__ADMIN_REPLY__BODY_FORGET);
        psq.vm = &sel;
        REQ("req-policy-show", policy_show, &psq, MEMCONV__ADMIN_REQUEST__BODY_POLICY_SHOW);
        pstq.vm = &sel;
        pstq.plugin = (char *) "rate-limit";
        pstq.settings = (char *) "conversions-per-sec=20 mode=delay";
        REQ("req-policy-set", policy_set, &pstq, MEMCONV__ADMIN_REQUEST__BODY_POLICY_SET);
        rdq.uuid = (char *) "6a1e3c55-0b7d-4e21-9f10-4233aa010203";
        rdq.name = (char *) "guest one";
        rdq.cc_type = MEMCONV__CC_TYPE__CC_TYPE_SEV_SNP;
        rdq.policy = (char *) "explicit-only action=stop-vm\nrate-limit bytes-per-sec=1048576";
        REQ("req-register-domain", register_domain, &rdq, MEMCONV__ADMIN_REQUEST__BODY_REGISTER_DOMAIN);
        st.code = MEMCONV__CODE__CODE_OK;
        st.errno_value = 0;
        st.message = NULL;
        po.plugin = (char *) "explicit-only";
        po.settings = (char *) "enforce=no";
        psr.n_plugins = 2;
        psr.plugins = plugins;
        psr.effective = (char *) "explicit-only: enforce=no action=inject-fault refused=0";
        psr.n_overrides = 1;
        psr.overrides = pos;
        REP("rep-policy-show", policy_show, &psr, MEMCONV__ADMIN_REPLY__BODY_POLICY_SHOW);
        REP("rep-policy-set", policy_set, &pstr, MEMCONV__ADMIN_REPLY__BODY_POLICY_SET);
        REP("rep-register-domain", register_domain, &rdr, MEMCONV__ADMIN_REPLY__BODY_REGISTER_DOMAIN);
#undef REQ
#undef REP
        write_file(t, "edge-empty", "", 0);
        write_file(t, "edge-unknown-body", "\x08\x01\xfa\x01\x00", 5);
        write_file(t, "edge-truncated", "\x08\x01\x62\x7f\x0a", 5);
}

/* ---------------------------------------------------------------- journal */

struct jbuf {
        uint8_t *buf;
        size_t len, cap;
};

static void jbuf_header(struct jbuf *b)
{
        static const uint8_t header[MC_JOURNAL_HEADER_SIZE] = { 'M', 'C', 'J', 'O', 'U', 'R', 'N', '1', 1, 0, 0, 0, 0, 0, 0, 0 };

        b->cap = 4096;
        b->buf = malloc(b->cap);
        memcpy(b->buf, header, sizeof(header));
        b->len = sizeof(header);
}

static void jbuf_add(struct jbuf *b, const Memconv__JournalRecord *rec)
{
        if (mc_journal_encode(rec, &b->buf, &b->len, &b->cap) < 0) {
                fprintf(stderr, "cannot encode a journal record\n");
                exit(EXIT_FAILURE);
        }
}

static void gen_journal(void)
{
        const char *t = "fuzz-journal";
        Memconv__JournalRecord rec = MEMCONV__JOURNAL_RECORD__INIT;
        Memconv__JournalVm vm = MEMCONV__JOURNAL_VM__INIT;
        Memconv__JournalRegion reg = MEMCONV__JOURNAL_REGION__INIT;
        Memconv__HistoryRecord ch = MEMCONV__HISTORY_RECORD__INIT;
        Memconv__JournalSnapshot snap = MEMCONV__JOURNAL_SNAPSHOT__INIT;
        Memconv__RegionInfo ri = MEMCONV__REGION_INFO__INIT;
        Memconv__RegionInfo *ris[1] = { &ri };
        Memconv__Range pr[64], *prs[64];
        Memconv__ConversionStats cs = MEMCONV__CONVERSION_STATS__INIT;
        uint8_t token[16];
        struct jbuf b;
        size_t full;

        memset(token, 0x3c, sizeof(token));
        vm.vm_id = 3;
        vm.uuid.data = uuid;
        vm.uuid.len = 16;
        vm.name = (char *) "guest-1";
        vm.cc_type = MEMCONV__CC_TYPE__CC_TYPE_TDX;
        vm.arch = MEMCONV__ARCH__ARCH_X86_64;
        vm.token.data = token;
        vm.token.len = 16;
        vm.uid = 107;
        reg.slot = 1;
        reg.gpa = 0x100000000ULL;
        reg.size = 1 << 30;
        reg.has_shared = true;
        ch.seq = 1;
        ch.realtime_usec = 1700000000000000ULL;
        ch.gpa = 0x100000000ULL;
        ch.size = 0x200000;
        ch.to = MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
        ch.source = MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_KVM_HC_MAP_GPA_RANGE;
        ch.decision_id = 42;
        ch.request_id = 9;

        /* One journal per record type, after the VM record. */
        jbuf_header(&b);
        write_file(t, "header-only", b.buf, b.len);
        rec.realtime_usec = 1700000000000000ULL;
        rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_VM;
        rec.vm = &vm;
        jbuf_add(&b, &rec);
        write_file(t, "vm", b.buf, b.len);
        rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_REGION;
        rec.region = &reg;
        jbuf_add(&b, &rec);
        write_file(t, "vm-region", b.buf, b.len);
        rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_CHANGE;
        rec.change = &ch;
        for (int i = 0; i < 6; i++) {
                ch.seq = (uint64_t) i + 1;
                ch.gpa = 0x100000000ULL + (uint64_t) i * 0x400000;
                ch.to = i % 2 ? MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED : MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
                ch.implicit = i % 3 == 0;
                jbuf_add(&b, &rec);
        }
        write_file(t, "vm-region-changes", b.buf, b.len);
        rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_DETACHED;
        rec.detached = true;
        jbuf_add(&b, &rec);
        write_file(t, "vm-region-changes-detached", b.buf, b.len);
        full = b.len;

        /* Torn and corrupt tails of the same journal. */
        write_file(t, "tail-torn-payload", b.buf, full - 3);
        write_file(t, "tail-torn-header", b.buf, MC_JOURNAL_HEADER_SIZE + 5);
        b.buf[full - 1] ^= 0x40;
        write_file(t, "tail-crc-mismatch", b.buf, full);
        b.buf[full - 1] ^= 0x40;
        memset(b.buf + full, 0, 64);
        write_file(t, "tail-zero-filled", b.buf, full + 64);
        memcpy(b.buf + full, "\x00\x00\x00\x00\x11\x22\x33\x44", 8);
        write_file(t, "tail-zero-length", b.buf, full + 8);
        memcpy(b.buf + full, "\x01\x00\x10\x00\x00\x00\x00\x00", 8);
        write_file(t, "tail-too-long", b.buf, full + 8);
        /* a record whose CRC is right but whose payload does not decode */
        b.buf[full] = 3;
        memset(b.buf + full + 1, 0, 3);
        memcpy(b.buf + full + 8, "\x62\x7f\x0a", 3);
        {
                uint32_t crc = mc_crc32c(0, b.buf + full + 8, 3);

                for (int i = 0; i < 4; i++)
                        b.buf[full + 4 + i] = (uint8_t) (crc >> (8 * i));
        }
        write_file(t, "tail-undecodable", b.buf, full + 11);
        free(b.buf);

        /* A compacted journal: a snapshot with many private ranges, then changes. */
        for (int i = 0; i < 64; i++) {
                memconv__range__init(&pr[i]);
                pr[i].gpa = 0x100000000ULL + (uint64_t) i * 0x20000;
                pr[i].size = 0x1000 * (uint64_t) (i % 7 + 1);
                prs[i] = &pr[i];
        }
        ri.slot = 1;
        ri.gpa = 0x100000000ULL;
        ri.size = 1 << 30;
        snap.vm = &vm;
        snap.n_regions = 1;
        snap.regions = ris;
        snap.n_private_ranges = 64;
        snap.private_ranges = prs;
        snap.stats = &cs;
        snap.last_seq = 6;
        cs.implicit_to_private = 12;
        jbuf_header(&b);
        rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_SNAPSHOT;
        rec.snapshot = &snap;
        jbuf_add(&b, &rec);
        rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_CHANGE;
        rec.change = &ch;
        ch.seq = 7;
        jbuf_add(&b, &rec);
        reg.removed = true;
        rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_REGION;
        rec.region = &reg;
        jbuf_add(&b, &rec);
        write_file(t, "snapshot-change-unregister", b.buf, b.len);
        /* a record with no body (what a newer daemon's unknown record reads as) */
        {
                static const uint8_t payload[] = { 0x08, 0x01, 0xa2, 0x06, 0x01, 0x00 };
                uint32_t crc = mc_crc32c(0, payload, sizeof(payload));
                uint8_t frame[8] = { sizeof(payload), 0, 0, 0, (uint8_t) crc, (uint8_t) (crc >> 8),
                                     (uint8_t) (crc >> 16), (uint8_t) (crc >> 24) };

                memcpy(b.buf + b.len, frame, 8);
                memcpy(b.buf + b.len + 8, payload, sizeof(payload));
                write_file(t, "unknown-body", b.buf, b.len + 8 + sizeof(payload));
        }
        free(b.buf);
        /* A snapshot spanning two records: 48 ranges in it, 16 in a JournalSnapshotMore. */
        {
                Memconv__JournalSnapshotMore more = MEMCONV__JOURNAL_SNAPSHOT_MORE__INIT;

                snap.n_private_ranges = 48;
                snap.total_private_ranges = 64;
                more.n_private_ranges = 16;
                more.private_ranges = prs + 48;
                jbuf_header(&b);
                rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_SNAPSHOT;
                rec.snapshot = &snap;
                jbuf_add(&b, &rec);
                rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_SNAPSHOT_MORE;
                rec.snapshot_more = &more;
                jbuf_add(&b, &rec);
                rec.body_case = MEMCONV__JOURNAL_RECORD__BODY_CHANGE;
                rec.change = &ch;
                jbuf_add(&b, &rec);
                write_file(t, "snapshot-more-change", b.buf, b.len);
                free(b.buf);
                snap.n_private_ranges = 64;
                snap.total_private_ranges = 0;
        }

        /* Headers. */
        write_file(t, "header-empty", "", 0);
        write_file(t, "header-short", "MCJOURN1\x01\x00", 10);
        write_file(t, "header-bad-magic", "MCJOURN2\x01\x00\x00\x00\x00\x00\x00\x00", 16);
        write_file(t, "header-version-2", "MCJOURN1\x02\x00\x00\x00\x00\x00\x00\x00", 16);
        write_file(t, "header-flags", "MCJOURN1\x01\x00\x00\x00\x01\x00\x00\x00", 16);
}

/* ---------------------------------------------------------------- planner */

static void gen_planner(void)
{
        const char *t = "fuzz-planner";
        /* opcodes: 0 set attr, 1 set busy, 2 get, 3 walk, 4 count, 5 region add,
         * 6 region trim, 7 plan, 8 commit, 9 raw plan, 10 clear;
         * each: op, i, j, arg (indices into the point table: 0..159 are pages) */
        static const uint8_t basic[] = {
                5, 10, 100, 0,     /* region [10p, 100p) */
                5, 100, 120, 0,    /* adjacent region */
                7, 20, 40, 1,      /* plan private */
                8, 0, 0, 0,        /* commit */
                7, 10, 120, 0,     /* plan shared across both */
                8, 0, 0, 0,
                7, 15, 110, 1, 8, 0, 0, 0,
                3, 0, 150, 0, 4, 0, 150, 1, 2, 30, 0, 0,
        };
        static const uint8_t busy[] = {
                5, 0, 64, 0, 1, 8, 16, 1, 7, 0, 32, 3, 7, 20, 40, 3, 7, 200, 210, 2, 10, 0, 0, 0x80, 7, 0, 32, 3, 8, 0, 0, 0,
        };
        static const uint8_t mmio[] = {
                5, 50, 60, 0, 7, 0, 40, 0, 7, 0, 40, 1, 7, 40, 70, 0, 7, 40, 70, 1, 7, 155, 165, 0,
        };
        static const uint8_t huge[] = {
                5, 165, 170, 0, 5, 168, 171, 0, 0, 160, 172, 1, 3, 0, 172, 0, 7, 165, 171, 1, 8, 0, 0, 0,
                9, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xf0, 0x00, 0, 0, 0, 0, 0, 0, 0x20, 0x00,
                9, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x01, 0, 0, 0, 0, 0, 0, 0x10, 0x00,
        };
        static const uint8_t overlap[] = {
                5, 10, 20, 0, 5, 15, 25, 0, 5, 20, 10, 0, 5, 2, 3, 0, 5, 1, 4, 0, 6, 0, 0, 0, 5, 15, 25, 0,
        };
        uint8_t frag[1024];
        uint32_t x = 0x12345678;

        write_file(t, "basic", basic, sizeof(basic));
        write_file(t, "busy", busy, sizeof(busy));
        write_file(t, "mmio", mmio, sizeof(mmio));
        write_file(t, "huge-addresses", huge, sizeof(huge));
        write_file(t, "region-overlap", overlap, sizeof(overlap));
        /* Fragmentation: alternate values over many single pages, then coalesce. */
        for (size_t i = 0; i + 4 <= sizeof(frag); i += 4) {
                size_t k = i / 4;

                x = x * 1103515245 + 12345;
                frag[i] = k < 200 ? 0 : (uint8_t) (x >> 24) % 11;
                frag[i + 1] = (uint8_t) (k < 200 ? k % 150 : (x >> 8) % 160);
                frag[i + 2] = (uint8_t) (k < 200 ? k % 150 + 1 : (x >> 16) % 160);
                frag[i + 3] = (uint8_t) (k % 3);
        }
        write_file(t, "fragment-random", frag, sizeof(frag));
}

int main(int argc, char **argv)
{
        if (argc != 2) {
                fprintf(stderr, "usage: %s DIR\n", argv[0]);
                return EXIT_FAILURE;
        }
        outdir = argv[1];
        gen_messages();
        gen_admin();
        gen_journal();
        gen_planner();
        return EXIT_SUCCESS;
}
