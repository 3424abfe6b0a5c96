/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * convert.c - the conversion engine: plan, decide, commit, discard.
 *
 * Theory of operation (DESIGN.md sections 2 and 4):
 *
 *  1. A request is planned against the VM's attribute map. Invalid ones are
 *     refused with a precise error and change nothing (rule 1). Ranges that
 *     are already in the requested state are left out; with nothing left the
 *     answer is a plain retry, counted as spurious (rule 2). To-shared over
 *     MMIO holes is a no-op (rule 3).
 *  2. If the request overlaps a busy range (a conversion decided but not yet
 *     applied, or applied but whose discard has not finished) it waits in
 *     the VM's FIFO and is planned again when a busy range is released
 *     (rule 4). Its vCPU simply has not got its answer yet.
 *  3. Otherwise the changing ranges become busy and the VMM is told to apply
 *     them. It applies, re-enters the guest, and reports Applied.
 *  4. Applied(ok): the map is updated and every range is logged (commit);
 *     one discard job per range punches the old backing on a worker thread.
 *     Applied(failed): rollback, nothing is discarded or recorded (rule 6).
 *  5. When the last discard of a conversion completes its ranges stop being
 *     busy and waiting requests are planned again.
 *  6. A failed discard is recorded in vm->discard_failed and retried with
 *     its own backoff (vm->retry_timer): the retry punches whichever side is stale at that
 *     moment, with the ranges busy meanwhile, as a conversion's are. A VM's
 *     lease is revoked, and returned, before its retry runs (lease.h).
 *  7. Under a lease (lease.h) the VMM applies first and reports after:
 *     convert_leased() plans the report like a request, commits it at once
 *     and discards as in 4; policy is asked after the fact, and anything it
 *     would not have allowed revokes the lease. Every finished conversion
 *     of a VMM that wants a lease is reported back as Settled.
 *
 * A conversion can outlive its VM's attachment (discards in flight after
 * the VMM left); it then has vm == NULL and only finishes its jobs.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin.h"
#include "convert.h"
#include "log.h"
#include "persist.h"
#include "policy.h"
#include "macro.h"
#include "session.h"

/* R/W/X (reserved by KVM for future use) and KVM_MEMORY_EXIT_FLAG_PRIVATE. */
#define FAULT_FLAGS_KNOWN 0xfULL
#define FAULT_FLAG_PRIVATE (1ULL << 3)
#define REFUSAL_LOGS_PER_SEC 10

struct conversion {
        TAILQ_ENTRY(conversion) link;
        struct vm *vm;               /* NULL once the VM dropped it */
        uint64_t decision_id;
        struct conv_request req;
        struct mc_plan plan;
        struct region **regions;     /* one reference per plan range */
        bool applied;
        bool no_discard;             /* recorded after the fact (Reapplied): the backing is not ours to touch */
        uint64_t lease_seq;          /* reported under a lease (LeasedApplied seq); 0: decided here */
        unsigned discards_pending;
        uint64_t decided_usec;
};

struct waiting {
        TAILQ_ENTRY(waiting) link;
        struct session *session;
        struct conv_request req;
};

/* A request a policy plugin delayed: asked again when the timer fires. */
struct delayed {
        TAILQ_ENTRY(delayed) link;
        struct vm *vm;
        struct session *session;
        struct conv_request req;
        sd_event_source *timer;
};

static const char *source_name(const struct conv_request *req)
{
        if (req->implicit)
                return "memory-fault";
        switch (req->source) {
        case MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_KVM_HC_MAP_GPA_RANGE:
                return "map-gpa-range";
        case MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_SNP_PSC:
                return "snp-psc";
        case MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_TDX_MAPGPA:
                return "tdx-mapgpa";
        case MEMCONV__CONVERT_SOURCE__CONVERT_SOURCE_ARM_RSI:
                return "arm-rsi";
        default:
                return "unspecified";
        }
}

static const char *attr_name(bool private_)
{
        return private_ ? "private" : "shared";
}

/**
 * busy_set() - mark (@mark true) or release every range of @plan in @vm
 *
 * Each marking gets a value of its own, so the busy ranges of two
 * conversions never merge in the map: releasing one then removes whole
 * stored ranges, or trims one at its end (a conversion's own adjacent
 * ranges merge and are released in order), and so never splits a range,
 * which would allocate and could fail.
 * Return: 0 or -ENOMEM (then nothing was marked)
 */
static int busy_set(struct vm *vm, const struct mc_plan *plan, bool mark)
{
        uint64_t value = 0;

        if (mark) {
                value = ++vm->busy_tag;
                if (value == 0)
                        value = ++vm->busy_tag;
        }
        for (size_t i = 0; i < plan->n_ranges; i++) {
                const struct mc_plan_range *r = &plan->ranges[i];
                int q = mc_rangemap_set(vm->busy, r->gpa, r->gpa + r->size, value);

                if (q < 0) {
                        while (i-- > 0) /* releasing our own last ranges: trims, no allocation */
                                (void) mc_rangemap_set(vm->busy, plan->ranges[i].gpa,
                                                       plan->ranges[i].gpa + plan->ranges[i].size, 0);
                        return q;
                }
        }
        return 0;
}

/**
 * conversion_free() - drop region references, the plan, and @c
 */
static void conversion_free(struct conversion *c)
{
        if (!c)
                return;
        for (size_t i = 0; c->regions && i < c->plan.n_ranges; i++)
                region_unref(c->regions[i]);
        free(c->regions);
        mc_plan_done(&c->plan);
        free(c);
}

/**
 * conversion_unlink() - take @c out of its VM, releasing its busy ranges
 */
static void conversion_unlink(struct conversion *c)
{
        struct vm *vm = c->vm;

        if (!vm)
                return;
        (void) busy_set(vm, &c->plan, false);
        TAILQ_REMOVE(&vm->conversions, c, link);
        vm->n_in_flight--;
        c->vm = NULL;
}

/**
 * log_refusal() - log a refused request, at most REFUSAL_LOGS_PER_SEC per VM
 */
static void log_refusal(struct vm *vm, const struct conv_request *req, const struct mc_msg_error *e)
{
        uint64_t now = daemon_now();
        char f_vm[300], f_uuid[64], f_id[40], f_gpa[40], f_size[40], f_vcpu[32], f_code[64], f_kind[32];
        const char *fields[] = { "MESSAGE_ID=" MEMCONV_MESSAGE_REFUSED, "MEMCONV_EVENT=refused",
                                 f_vm, f_uuid, f_id, f_gpa, f_size, f_vcpu, f_kind, f_code, NULL };

        vm->stats.refused++;
        vm->stats.summary_refused++;
        daemon_arm_summary(vm->daemon);
        if (now - vm->stats.refusal_window_start >= 1000000) {
                vm->stats.refusal_window_start = now;
                vm->stats.refusal_logged = 0;
        }
        if (vm->stats.refusal_logged++ >= REFUSAL_LOGS_PER_SEC || log_get_max_level() < LOG_INFO)
                return;
        snprintf(f_vm, sizeof(f_vm), "MEMCONV_VM=%s", vm->name);
        snprintf(f_uuid, sizeof(f_uuid), "MEMCONV_VM_UUID=%s", vm->uuid_str);
        snprintf(f_id, sizeof(f_id), "MEMCONV_VM_ID=%" PRIu64, vm->id);
        snprintf(f_gpa, sizeof(f_gpa), "MEMCONV_GPA=0x%" PRIx64, req->gpa);
        snprintf(f_size, sizeof(f_size), "MEMCONV_SIZE=0x%" PRIx64, req->size);
        snprintf(f_vcpu, sizeof(f_vcpu), "MEMCONV_VCPU=%" PRIu32, req->vcpu);
        snprintf(f_kind, sizeof(f_kind), "MEMCONV_KIND=%s", req->implicit ? "implicit" : "explicit");
        snprintf(f_code, sizeof(f_code), "MEMCONV_CODE=%s", mc_code_name(e->code));
        log_fields(LOG_INFO, 0, fields, "VM %s: refused %s conversion to %s: %s", vm->name,
                   req->implicit ? "implicit" : "explicit", attr_name(req->to_private), e->text);
}

/**
 * log_change() - the structured record of one committed attribute change
 */
static void log_change(struct vm *vm, const struct conversion *c, const struct mc_plan_range *r)
{
        char f_vm[300], f_uuid[64], f_id[40], f_gpa[40], f_size[40], f_from[32], f_to[32],
                f_kind[32], f_src[48], f_vcpu[32], f_req[48], f_dec[48], f_lat[48];
        const char *fields[] = { "MESSAGE_ID=" MEMCONV_MESSAGE_CHANGE, "MEMCONV_EVENT=change", f_vm, f_uuid,
                                 f_id, f_gpa, f_size, f_from, f_to, f_kind, f_src, f_vcpu, f_req, f_dec,
                                 f_lat, NULL };
        bool to = c->req.to_private;

        if (log_get_max_level() < LOG_DEBUG)
                return;
        snprintf(f_vm, sizeof(f_vm), "MEMCONV_VM=%s", vm->name);
        snprintf(f_uuid, sizeof(f_uuid), "MEMCONV_VM_UUID=%s", vm->uuid_str);
        snprintf(f_id, sizeof(f_id), "MEMCONV_VM_ID=%" PRIu64, vm->id);
        snprintf(f_gpa, sizeof(f_gpa), "MEMCONV_GPA=0x%" PRIx64, r->gpa);
        snprintf(f_size, sizeof(f_size), "MEMCONV_SIZE=0x%" PRIx64, r->size);
        snprintf(f_from, sizeof(f_from), "MEMCONV_FROM=%s", attr_name(!to));
        snprintf(f_to, sizeof(f_to), "MEMCONV_TO=%s", attr_name(to));
        snprintf(f_kind, sizeof(f_kind), "MEMCONV_KIND=%s", c->req.implicit ? "implicit" : "explicit");
        snprintf(f_src, sizeof(f_src), "MEMCONV_SOURCE=%s", source_name(&c->req));
        snprintf(f_vcpu, sizeof(f_vcpu), "MEMCONV_VCPU=%" PRIu32, c->req.vcpu);
        snprintf(f_req, sizeof(f_req), "MEMCONV_REQUEST=%" PRIu64, c->req.id);
        snprintf(f_dec, sizeof(f_dec), "MEMCONV_DECISION=%" PRIu64, c->decision_id);
        snprintf(f_lat, sizeof(f_lat), "MEMCONV_DECISION_USEC=%" PRIu64, c->decided_usec - c->req.received_usec);
        log_fields(LOG_DEBUG, 0, fields, "VM %s: [0x%" PRIx64 ", 0x%" PRIx64 ") %s -> %s (%s, vCPU %" PRIu32 ")",
                   vm->name, r->gpa, r->gpa + r->size, attr_name(!to), attr_name(to),
                   c->req.implicit ? "implicit" : "explicit", c->req.vcpu);
}

/**
 * history_add() - record what happened to the ranges of @c, tell followers
 */
static void history_add(struct vm *vm, const struct conversion *c, Memconv__ChangeResult result)
{
        uint64_t now = daemon_realtime();

        for (size_t i = 0; i < c->plan.n_ranges; i++) {
                struct history_record rec = {
                        .realtime_usec = now,
                        .gpa = c->plan.ranges[i].gpa,
                        .size = c->plan.ranges[i].size,
                        .request_id = c->req.id,
                        .decision_id = c->decision_id,
                        .vcpu = c->req.vcpu,
                        .decision_latency_usec = (uint32_t) (c->decided_usec - c->req.received_usec),
                        .to_private = c->req.to_private,
                        .implicit = c->req.implicit,
                        .source = (uint8_t) c->req.source,
                        .result = (uint8_t) result,
                };

                persist_change(vm, history_append(&vm->history, &rec));
        }
        admin_history_appended(vm);
}

static int delayed_fire(sd_event_source *src, uint64_t usec, void *userdata)
{
        struct delayed *dl = userdata;
        struct vm *vm = dl->vm;
        struct session *s = dl->session;
        struct conv_request req = dl->req;

        TAILQ_REMOVE(&vm->delayed, dl, link);
        vm->n_delayed--;
        sd_event_source_disable_unref(dl->timer);
        free(dl);
        (void) convert_request(vm, s, &req);  /* planned and asked again */
        return 0;
}

/**
 * conversion_start() - a conversion of @plan for @req: its ranges busy, its
 * regions referenced, linked into @vm
 * @plan: moved into the conversion (and zeroed) on success; untouched on failure
 * Return: the conversion, or NULL (out of memory; nothing changed)
 */
static struct conversion *conversion_start(struct vm *vm, const struct conv_request *req, struct mc_plan *plan)
{
        struct conversion *c = calloc(1, sizeof(*c));

        if (c)
                c->regions = calloc(plan->n_ranges ? plan->n_ranges : 1, sizeof(*c->regions));
        if (!c || !c->regions || busy_set(vm, plan, true) < 0) {
                if (c)
                        free(c->regions);
                free(c);
                return NULL;
        }
        c->vm = vm;
        c->req = *req;
        c->plan = *plan;
        *plan = (struct mc_plan) { 0 };
        for (size_t i = 0; i < c->plan.n_ranges; i++)
                c->regions[i] = region_ref(vm->regions[c->plan.ranges[i].region]);
        c->decided_usec = daemon_now();
        TAILQ_INSERT_TAIL(&vm->conversions, c, link);
        vm->n_in_flight++;
        return c;
}

/**
 * policy_request_of() - what the policy chain is asked about @req, which
 * would change @bytes
 */
static struct mc_policy_request policy_request_of(const struct vm *vm, const struct conv_request *req,
                                                  uint64_t bytes)
{
        return (struct mc_policy_request) {
                .vm_id = vm->id,
                .vm_name = vm->name,
                .vm_uuid = vm->uuid_str,
                .cc_type = vm->cc_type,
                .implicit = req->implicit,
                .to_private = req->to_private,
                .gpa = req->gpa,
                .size = bytes,
                .vcpu = req->vcpu,
                .source = req->source,
                .fault_flags = req->fault_flags,
                .now_usec = daemon_now(),
        };
}

/**
 * convert_policy() - ask the policy chain about a conversion that would
 * change @plan's ranges
 * Return: 0 allowed; 1 answered (refused) or delayed; negative errno
 */
static int convert_policy(struct vm *vm, struct session *s, const struct conv_request *req,
                          const struct mc_plan *plan)
{
        struct daemon *d = vm->daemon;
        struct mc_policy_request pr = policy_request_of(vm, req, plan->bytes_change);
        struct mc_policy_result res;
        struct mc_msg_error e;
        const char *who;
        int action;

        if (policy_chain_size(d->policy) == 0)
                return 0;
        policy_chain_check(d->policy, &pr, &res, &who);
        switch (res.verdict) {
        case MC_POLICY_ALLOW:
                return 0;
        case MC_POLICY_DELAY: {
                struct delayed *dl = calloc(1, sizeof(*dl));
                int r;

                if (!dl)
                        return -ENOMEM;
                dl->vm = vm;
                dl->session = s;
                dl->req = *req;
                r = sd_event_add_time_relative(d->event, &dl->timer, CLOCK_MONOTONIC, res.delay_usec, 0,
                                               delayed_fire, dl);
                if (r < 0) {
                        free(dl);
                        return r;
                }
                TAILQ_INSERT_TAIL(&vm->delayed, dl, link);
                vm->n_delayed++;
                vm->stats.policy_delayed++;
                return 1;
        }
        case MC_POLICY_INJECT_FAULT:
                action = MEMCONV__ACTION__ACTION_INJECT_FAULT;
                break;
        case MC_POLICY_STOP_VM:
                action = MEMCONV__ACTION__ACTION_STOP_VM;
                break;
        default:
                action = MEMCONV__ACTION__ACTION_FAIL;
                break;
        }
        vm->stats.policy_refused++;
        mc_error_set(&e, MEMCONV__CODE__CODE_POLICY_REFUSED, -EACCES, "%s", res.reason[0] ? res.reason : who);
        log_refusal(vm, req, &e);
        (void) session_send_decision(s, req->id, &e, action, req->to_private, NULL, 0);
        return 1;
}

/**
 * convert_decide() - answer @req from its computed @plan
 * @plan: consumed (moved into a conversion or released)
 * Return: 0, or negative errno after answering with an error
 */
static int convert_decide(struct vm *vm, struct session *s, const struct conv_request *req,
                          struct mc_plan *plan)
{
        struct mc_msg_error e = { 0 };
        struct conversion *c;
        int r;

        if (plan->outcome != MC_PLAN_WAIT)
                histogram_add(&vm->decision_latency, daemon_now() - req->received_usec);

        switch (plan->outcome) {
        case MC_PLAN_SPURIOUS:
                vm->stats.spurious++;
                mc_plan_done(plan);
                return session_send_decision(s, req->id, NULL, MEMCONV__ACTION__ACTION_RETRY,
                                             req->to_private, NULL, 0);
        case MC_PLAN_MMIO_NOOP:
                vm->stats.mmio_noop++;
                mc_plan_done(plan);
                return session_send_decision(s, req->id, NULL, MEMCONV__ACTION__ACTION_RETRY,
                                             req->to_private, NULL, 0);
        case MC_PLAN_WAIT: {
                struct waiting *w = calloc(1, sizeof(*w));

                mc_plan_done(plan);
                if (!w) {
                        mc_error_set(&e, MEMCONV__CODE__CODE_RESOURCE_LIMIT, -ENOMEM, "out of memory");
                        return session_send_decision(s, req->id, &e, MEMCONV__ACTION__ACTION_FAIL,
                                                     req->to_private, NULL, 0);
                }
                w->session = s;
                w->req = *req;
                TAILQ_INSERT_TAIL(&vm->waiting, w, link);
                vm->n_waiting++;
                vm->stats.waited++;
                return 0;
        }
        case MC_PLAN_APPLY:
                break;
        }

        r = convert_policy(vm, s, req, plan);
        if (r != 0) {
                mc_plan_done(plan);
                return r < 0 ? r : 0;
        }

        c = conversion_start(vm, req, plan);
        if (!c) {
                mc_plan_done(plan);
                mc_error_set(&e, MEMCONV__CODE__CODE_RESOURCE_LIMIT, -ENOMEM, "out of memory");
                return session_send_decision(s, req->id, &e, MEMCONV__ACTION__ACTION_FAIL,
                                             req->to_private, NULL, 0);
        }
        c->decision_id = ++vm->daemon->next_decision_id;

        r = session_send_decision(s, req->id, NULL, MEMCONV__ACTION__ACTION_APPLY, req->to_private,
                                  &c->plan, c->decision_id);
        if (r < 0) {
                /* The VMM will never apply what it never heard of. */
                conversion_unlink(c);
                conversion_free(c);
        }
        return r;
}

/**
 * request_plan() - plan @req against @vm's current state
 * Return: as mc_plan_conversion()
 */
static int request_plan(struct vm *vm, const struct conv_request *req, struct mc_plan *ret)
{
        struct mc_plan_ctx ctx = vm_plan_ctx(vm);

        return mc_plan_conversion(&ctx, req->gpa, req->size, req->to_private, ret);
}

/**
 * convert_kick_waiting() - plan waiting requests again, in arrival order
 */
static void convert_kick_waiting(struct vm *vm)
{
        struct waiting *w, *next;

        for (w = TAILQ_FIRST(&vm->waiting); w; w = next) {
                struct mc_plan plan = { 0 };
                int r;

                next = TAILQ_NEXT(w, link);
                r = request_plan(vm, &w->req, &plan);
                if (r >= 0 && plan.outcome == MC_PLAN_WAIT) {
                        mc_plan_done(&plan);
                        continue;
                }
                TAILQ_REMOVE(&vm->waiting, w, link);
                vm->n_waiting--;
                if (r < 0) {
                        /* Cannot happen: it planned before. Answer anyway. */
                        struct mc_msg_error e;

                        mc_error_set(&e, mc_code_from_errno(r), r, "conversion no longer valid");
                        (void) session_send_decision(w->session, w->req.id, &e, MEMCONV__ACTION__ACTION_FAIL,
                                                     w->req.to_private, NULL, 0);
                } else
                        (void) convert_decide(vm, w->session, &w->req, &plan);
                free(w);
                /* convert_decide() may have made ranges busy: later entries re-plan. */
        }
}

/**
 * conversion_finish() - every discard is done: release and forget @c
 */
static void conversion_finish(struct conversion *c)
{
        struct vm *vm = c->vm;

        if (vm && (c->lease_seq || c->decision_id))
                lease_settled(vm, c->decision_id, c->lease_seq);
        conversion_unlink(c);
        conversion_free(c);
        if (vm) {
                convert_kick_waiting(vm);
                if (vm->lease.wanted && !vm->lease.id)
                        lease_try_grant(vm);  /* it may have been what blocked a grant */
        }
}

int convert_request(struct vm *vm, struct session *s, const struct conv_request *req)
{
        struct mc_msg_error e = { 0 };
        struct mc_plan plan = { 0 };
        int r;

        /* What one VM can make us hold is bounded; beyond it, a clear refusal. */
        if (vm->n_in_flight + vm->n_waiting + vm->n_delayed >= vm->daemon->config.max_requests_per_vm) {
                mc_error_set(&e, MEMCONV__CODE__CODE_RESOURCE_LIMIT, -ENOSPC,
                             "VM %s already has %u conversions in flight or waiting (RequestsPerVM)", vm->name,
                             vm->n_in_flight + vm->n_waiting + vm->n_delayed);
                log_refusal(vm, req, &e);
                return session_send_decision(s, req->id, &e, MEMCONV__ACTION__ACTION_FAIL, req->to_private, NULL, 0);
        }

        if (req->implicit) {
                /* Only conversions are ours; anything else goes back to the VMM. */
                if (req->fault_flags & ~FAULT_FLAGS_KNOWN) {
                        vm->stats.not_handled++;
                        mc_error_set(&e, MEMCONV__CODE__CODE_OK, 0,
                                     "memory fault flags 0x%" PRIx64 " are not a conversion memconvd handles",
                                     req->fault_flags);
                        return session_send_decision(s, req->id, &e, MEMCONV__ACTION__ACTION_NOT_HANDLED,
                                                     req->to_private, NULL, 0);
                }
                if (!vm_region_find(vm, req->gpa)) {
                        vm->stats.not_handled++;
                        mc_error_set(&e, MEMCONV__CODE__CODE_OK, 0,
                                     "gpa 0x%" PRIx64 " is in no region registered with memconvd", req->gpa);
                        return session_send_decision(s, req->id, &e, MEMCONV__ACTION__ACTION_NOT_HANDLED,
                                                     req->to_private, NULL, 0);
                }
        }

        r = request_plan(vm, req, &plan);
        if (r < 0) {
                if (r == -EINVAL)
                        mc_error_set(&e, MEMCONV__CODE__CODE_INVALID_ARGUMENT, r,
                                     "[0x%" PRIx64 ", +0x%" PRIx64 ") must be 4 KiB aligned, non-empty and not overflow",
                                     req->gpa, req->size);
                else if (r == -ERANGE)
                        mc_error_set(&e, MEMCONV__CODE__CODE_OUT_OF_RANGE, r,
                                     "[0x%" PRIx64 ", 0x%" PRIx64 ") is not wholly inside registered regions",
                                     req->gpa, req->gpa + req->size);
                else
                        mc_error_set(&e, mc_code_from_errno(r), r, "cannot plan conversion");
                log_refusal(vm, req, &e);
                histogram_add(&vm->decision_latency, daemon_now() - req->received_usec);
                return session_send_decision(s, req->id, &e, MEMCONV__ACTION__ACTION_FAIL,
                                             req->to_private, NULL, 0);
        }
        return convert_decide(vm, s, req, &plan);
}

static void conversion_commit(struct vm *vm, struct conversion *c);

/**
 * conversion_find() - the decision @id of @vm still awaiting Applied
 * Return: it, or NULL
 */
static struct conversion *conversion_find(struct vm *vm, uint64_t id)
{
        struct conversion *c;

        /* Newest first: a VMM reports a decision soon after it came, while the list
         * also holds every older conversion still waiting for its discards or the
         * journal (thousands under load). */
        TAILQ_FOREACH_REVERSE(c, &vm->conversions, conversion_list, link)
                if (c->decision_id == id && !c->applied)
                        return c;
        return NULL;
}

/**
 * queue_stale_discard() - discard, for conversion @c, the side of
 * [@start, @end) of region @reg that is stale while the range is
 * @private_ (the shared memory of a private range, the guest_memfd of a
 * shared one)
 * @retry: a retry of a failed discard (counted as such)
 * Return: 1 queued, 0 nothing to discard (no shared memory), -ENOMEM
 */
static int queue_stale_discard(struct vm *vm, struct conversion *c, struct region *reg, uint64_t start,
                               uint64_t end, bool private_, bool retry)
{
        int fd = private_ ? reg->shared_fd : reg->gmem_fd;
        struct discard_job *job;

        if (fd < 0)
                return 0;
        job = calloc(1, sizeof(*job));
        if (!job)
                return -ENOMEM;
        job->conv = c;
        job->region = region_ref(reg);
        job->fd = fd;
        job->gpa = start;
        job->queued_usec = daemon_now();
        job->offset = (private_ ? reg->shared_offset : reg->gmem_offset) + (start - reg->gpa);
        job->length = end - start;
        job->retry = retry;
        c->discards_pending++;
        if (retry)
                vm->stats.discard_retries++;
        discarder_submit(vm->daemon->discarder, job);
        return 1;
}

/**
 * conversion_commit() - record @c in the map and logs, start its discards
 */
static void conversion_commit(struct vm *vm, struct conversion *c)
{
        bool to = c->req.to_private;

        c->applied = true;
        for (size_t i = 0; i < c->plan.n_ranges; i++) {
                const struct mc_plan_range *r = &c->plan.ranges[i];
                struct region *reg = c->regions[i];

                if (mc_rangemap_set(vm->attrs, r->gpa, r->gpa + r->size, to ? MC_ATTR_PRIVATE : 0) < 0)
                        log_error("VM %s: out of memory recording [0x%" PRIx64 ", 0x%" PRIx64
                                  ") as %s; the attribute map is now wrong", vm->name, r->gpa,
                                  r->gpa + r->size, attr_name(to));
                log_change(vm, c, r);
                if (to)
                        vm->stats.bytes_to_private += r->size;
                else
                        vm->stats.bytes_to_shared += r->size;
                vm->stats.summary_bytes += r->size;

                /* to private: the shared copy is stale; to shared: the private one. */
                if (!c->no_discard && queue_stale_discard(vm, c, reg, r->gpa, r->gpa + r->size, to, false) < 0)
                        log_error("VM %s: out of memory: stale backing of [0x%" PRIx64 ", 0x%" PRIx64
                                  ") not discarded", vm->name, r->gpa, r->gpa + r->size);
        }
        history_add(vm, c, MEMCONV__CHANGE_RESULT__CHANGE_RESULT_COMMITTED);
        if (c->decision_id)
                persist_ack(vm, c->decision_id, 0);  /* Committed once durable */
        else if (c->lease_seq)
                persist_ack(vm, c->lease_seq | LEASE_ACK_FLAG, 0);
        vm->stats.conversions[c->req.implicit][to]++;
        vm->stats.summary_changes++;
        if (to)
                vm->stats.summary_to_private++;
        else
                vm->stats.summary_to_shared++;
        daemon_arm_summary(vm->daemon);

        if (c->discards_pending == 0)
                conversion_finish(c);
}

int convert_reapplied(struct vm *vm, const struct conv_request *req, const uint64_t (*ranges)[2], size_t n,
                      struct mc_msg_error *err)
{
        for (size_t i = 0; i < n; i++) {
                struct conv_request one = *req;
                struct mc_plan plan = { 0 };
                struct conversion *c;
                int r;

                one.gpa = ranges[i][0];
                one.size = ranges[i][1];
                r = request_plan(vm, &one, &plan);
                if (r < 0)
                        return mc_error_set(err, mc_code_from_errno(r), r,
                                            "reapplied: [0x%" PRIx64 ", +0x%" PRIx64 ") is not this VM's memory",
                                            one.gpa, one.size);
                if (plan.outcome == MC_PLAN_WAIT) {
                        mc_plan_done(&plan);
                        return mc_error_set(err, MEMCONV__CODE__CODE_BUSY, -EBUSY,
                                            "reapplied: [0x%" PRIx64 ", +0x%" PRIx64 ") has a conversion in flight; retry",
                                            one.gpa, one.size);
                }
                if (plan.outcome != MC_PLAN_APPLY) {
                        mc_plan_done(&plan);  /* the journal already has it */
                        continue;
                }
                /* What the VMM applied and we never recorded: record it now. */
                c = conversion_start(vm, &one, &plan);
                if (!c) {
                        mc_plan_done(&plan);
                        return mc_error_set(err, MEMCONV__CODE__CODE_RESOURCE_LIMIT, -ENOMEM, "out of memory");
                }
                /* Never discard for it: a later conversion of the same range may already be
                 * in use by the guest, and a late punch would destroy what it wrote. */
                c->no_discard = true;
                vm->stats.reapplied++;
                log_debug("VM %s: recorded [0x%" PRIx64 ", +0x%" PRIx64 ") as %s, applied before the daemon restarted",
                          vm->name, one.gpa, one.size, attr_name(one.to_private));
                conversion_commit(vm, c);
        }
        return 0;
}

int convert_leased(struct vm *vm, const struct conv_request *req, uint64_t seq, struct mc_msg_error *err)
{
        struct mc_plan plan = { 0 };
        struct conversion *c;
        int r;

        r = request_plan(vm, req, &plan);
        if (r < 0)
                return mc_error_set(err, mc_code_from_errno(r), r,
                                    "leased-applied: [0x%" PRIx64 ", +0x%" PRIx64 ") is not inside this VM's "
                                    "registered memory", req->gpa, req->size);
        if (plan.outcome == MC_PLAN_WAIT) {
                /* libmemconv never does this (lease.h): a late discard could destroy what the guest wrote. */
                mc_plan_done(&plan);
                return mc_error_set(err, MEMCONV__CODE__CODE_BUSY, -EBUSY,
                                    "leased-applied: [0x%" PRIx64 ", +0x%" PRIx64 ") overlaps a conversion "
                                    "that is not settled", req->gpa, req->size);
        }
        if (plan.outcome != MC_PLAN_APPLY) {
                /* Already in that state (another vCPU was first): nothing to record or discard. */
                mc_plan_done(&plan);
                vm->stats.spurious++;
                lease_settled(vm, 0, seq);
                persist_ack(vm, seq | LEASE_ACK_FLAG, 0);
                return 0;
        }
        c = conversion_start(vm, req, &plan);
        if (!c) {
                mc_plan_done(&plan);
                return mc_error_set(err, MEMCONV__CODE__CODE_RESOURCE_LIMIT, -ENOMEM, "out of memory");
        }

        /* The policy chain still sees it, after the fact: its counters stay right, and a
         * conversion it would not have allowed ends the lease (the VMM asks first again). */
        if (policy_chain_size(vm->daemon->policy) > 0) {
                struct mc_policy_request pr = policy_request_of(vm, req, c->plan.bytes_change);
                struct mc_policy_result res = { 0 };
                const char *who;

                policy_chain_check(vm->daemon->policy, &pr, &res, &who);
                if (res.verdict != MC_POLICY_ALLOW)
                        lease_revoke(vm, res.reason[0] ? res.reason : who, LEASE_HOLD_USEC);
        }

        c->lease_seq = seq;
        c->decided_usec = req->received_usec;
        vm->stats.leased++;
        conversion_commit(vm, c);
        return 0;
}

bool convert_lease_blocked(const struct vm *vm)
{
        const struct conversion *c;
        const struct waiting *w;
        const struct delayed *dl;

        TAILQ_FOREACH(c, &vm->conversions, link)
                if (c->req.rx < vm->lease.first_rx)
                        return true;
        TAILQ_FOREACH(w, &vm->waiting, link)
                if (w->req.rx < vm->lease.first_rx)
                        return true;
        TAILQ_FOREACH(dl, &vm->delayed, link)
                if (dl->req.rx < vm->lease.first_rx)
                        return true;
        return false;
}

struct reconcile_walk {
        struct vm *vm;
        struct conversion *c;
        struct region *reg;
        unsigned jobs;
};

static int reconcile_walk_fn(uint64_t start, uint64_t end, uint64_t value, void *userdata)
{
        struct reconcile_walk *w = userdata;
        int r = queue_stale_discard(w->vm, w->c, w->reg, start, end, value & MC_ATTR_PRIVATE, false);

        if (r > 0)
                w->jobs++;
        return r < 0 ? r : 0;
}

void convert_reconcile(struct vm *vm)
{
        unsigned jobs = 0;

        for (size_t i = 0; i < vm->n_regions; i++) {
                struct region *reg = vm->regions[i];
                struct reconcile_walk w = { .vm = vm, .reg = reg };
                struct conversion *c;

                if (mc_rangemap_any(vm->busy, reg->gpa, reg->gpa + reg->size)) {
                        log_warning("VM %s: region slot %" PRIu32 " is busy; its backing is not reconciled",
                                    vm->name, reg->slot);
                        continue;
                }
                c = calloc(1, sizeof(*c));
                if (c) {
                        c->plan.ranges = calloc(1, sizeof(*c->plan.ranges));
                        c->regions = calloc(1, sizeof(*c->regions));
                }
                if (!c || !c->plan.ranges || !c->regions) {
                        if (c) {
                                free(c->plan.ranges);
                                free(c->regions);
                        }
                        free(c);
                        log_error("VM %s: out of memory: backing not reconciled", vm->name);
                        return;
                }
                /* One busy range over the whole region: conversions wait for the punches. */
                c->plan.outcome = MC_PLAN_APPLY;
                c->plan.ranges[0] = (struct mc_plan_range) { reg->gpa, reg->size, i };
                c->plan.n_ranges = 1;
                c->plan.bytes_change = reg->size;
                c->regions[0] = region_ref(reg);
                c->vm = vm;
                c->applied = true;
                if (busy_set(vm, &c->plan, true) < 0) {
                        conversion_free(c);
                        log_error("VM %s: out of memory: backing of slot %" PRIu32 " not reconciled", vm->name,
                                  reg->slot);
                        continue;
                }
                TAILQ_INSERT_TAIL(&vm->conversions, c, link);
                vm->n_in_flight++;
                c->discards_pending = 1; /* held while jobs are queued */
                w.c = c;
                if (mc_rangemap_walk(vm->attrs, reg->gpa, reg->gpa + reg->size, reconcile_walk_fn, &w) < 0)
                        log_error("VM %s: out of memory: backing of slot %" PRIu32 " partly reconciled",
                                  vm->name, reg->slot);
                jobs += w.jobs;
                if (--c->discards_pending == 0)
                        conversion_finish(c);
        }
        log_info("VM %s: resumed; discarding the stale side of every range (%u discard(s))", vm->name, jobs);
}

int convert_applied(struct vm *vm, uint64_t decision_id, bool ok, int error, struct mc_msg_error *err)
{
        struct conversion *c = conversion_find(vm, decision_id);

        if (!c)
                return mc_error_set(err, MEMCONV__CODE__CODE_NOT_FOUND, -ENOENT,
                                    "applied: this VM has no decision %" PRIu64 " awaiting a report",
                                    decision_id);
        if (!ok) {
                vm->stats.rolled_back++;
                log_warning_errno(error ? error : -EIO,
                                  "VM %s: VMM failed to apply decision %" PRIu64 " (%zu range(s) to %s); "
                                  "rolled back, nothing discarded", vm->name, decision_id,
                                  c->plan.n_ranges, attr_name(c->req.to_private));
                history_add(vm, c, MEMCONV__CHANGE_RESULT__CHANGE_RESULT_ROLLED_BACK);
                conversion_finish(c);
                return 0;
        }
        conversion_commit(vm, c);
        return 0;
}

/* ------------------------------------------------------------------ failed discards: retry */

/** job_side() - which backing @job punches, for the log */
static const char *job_side(const struct discard_job *job)
{
        return job->fd == job->region->shared_fd ? "shared" : "guest_memfd";
}

static int retry_fire(sd_event_source *s, uint64_t usec, void *userdata);

/**
 * retry_timer_arm() - retry @vm's failed discards after its current backoff,
 * unless a retry is already scheduled (it keeps its time). Each VM backs off
 * on its own: one whose discards keep failing never delays another's.
 * Return: the delay in microseconds until the retry, or negative errno
 */
static int64_t retry_timer_arm(struct vm *vm)
{
        int enabled = SD_EVENT_OFF, r;
        uint64_t when, now;

        if (!vm->retry_delay_usec)
                vm->retry_delay_usec = DISCARD_RETRY_MIN_USEC;
        if (vm->retry_timer && sd_event_source_get_enabled(vm->retry_timer, &enabled) >= 0 &&
            enabled != SD_EVENT_OFF && sd_event_source_get_time(vm->retry_timer, &when) >= 0 &&
            sd_event_now(vm->daemon->event, CLOCK_MONOTONIC, &now) >= 0)
                return when > now ? (int64_t) (when - now) : 0;
        if (!vm->retry_timer) {
                r = sd_event_add_time_relative(vm->daemon->event, &vm->retry_timer, CLOCK_MONOTONIC,
                                               vm->retry_delay_usec, 0, retry_fire, vm);
                if (r < 0)
                        return r;
                (void) sd_event_source_set_description(vm->retry_timer, "discard-retry");
                return (int64_t) vm->retry_delay_usec;
        }
        r = sd_event_source_set_time_relative(vm->retry_timer, vm->retry_delay_usec);
        if (r >= 0)
                r = sd_event_source_set_enabled(vm->retry_timer, SD_EVENT_ONESHOT);
        return r < 0 ? r : (int64_t) vm->retry_delay_usec;
}

/**
 * retry_arm() - schedule a retry of @vm's failed discards and say when
 */
static void retry_arm(struct vm *vm, const struct discard_job *job)
{
        int64_t delay = retry_timer_arm(vm);

        if (delay < 0)
                log_warning_errno((int) delay, "VM %s: discarding %s backing of [0x%" PRIx64 ", 0x%" PRIx64
                                  ") failed, and its retry cannot be scheduled", vm->name, job_side(job),
                                  job->gpa, job->gpa + job->length);
        else
                log_warning_errno(job->error, "VM %s: discarding %s backing of [0x%" PRIx64 ", 0x%" PRIx64
                                  ") at offset 0x%" PRIx64 " (+0x%" PRIx64 ") failed%s; retrying in %" PRIu64 " ms",
                                  vm->name, job_side(job), job->gpa, job->gpa + job->length, job->offset,
                                  job->length, job->retry ? " again" : "", (uint64_t) delay / 1000);
}

void convert_discard_done(struct discard_job *job, void *userdata)
{
        struct conversion *c = job->conv;
        struct vm *vm = c->vm;

        if (vm) {
                vm->stats.discards++;
                histogram_add(&vm->discard_latency, job->end_usec - job->queued_usec);
                if (job->error == 0) {
                        vm->stats.discard_bytes += job->length;
                        (void) mc_rangemap_set(vm->discard_failed, job->gpa, job->gpa + job->length, 0);
                        if (job->retry) {
                                log_info("VM %s: discarding %s backing of [0x%" PRIx64 ", 0x%" PRIx64
                                         ") succeeded on retry", vm->name, job_side(job), job->gpa,
                                         job->gpa + job->length);
                                vm->retry_delay_usec = DISCARD_RETRY_MIN_USEC;
                        }
                } else if (job->error != -ECANCELED) {
                        vm->stats.discard_errors++;
                        if (mc_rangemap_set(vm->discard_failed, job->gpa, job->gpa + job->length, 1) < 0)
                                log_error("VM %s: out of memory recording a failed discard", vm->name);
                        retry_arm(vm, job);
                        lease_revoke(vm, "a discard failed", 0);
                }
        }
        region_unref(job->region);
        free(job);
        if (--c->discards_pending == 0)
                conversion_finish(c);
}

struct retry_ranges {
        uint64_t (*r)[2];
        size_t n, cap;
};

static int retry_collect_fn(uint64_t start, uint64_t end, uint64_t value, void *userdata)
{
        struct retry_ranges *rr = userdata;

        if (!value)
                return 0;
        if (rr->n == rr->cap) {
                size_t nc = rr->cap ? rr->cap * 2 : 8;
                uint64_t (*nr)[2] = realloc(rr->r, nc * sizeof(*nr));

                if (!nr)
                        return -ENOMEM;
                rr->r = nr;
                rr->cap = nc;
        }
        rr->r[rr->n][0] = start;
        rr->r[rr->n][1] = end;
        rr->n++;
        return 0;
}

struct retry_walk {
        struct vm *vm;
        struct conversion *c;
        struct region *reg;
};

/**
 * retry_walk_fn() - discard the side of [@start, @end) that is stale now
 *
 * Decided from the attribute map at this moment, not from the job that
 * failed: a range converted back in the meantime has its other side in
 * use, and punching what the failed job named would destroy guest data.
 */
static int retry_walk_fn(uint64_t start, uint64_t end, uint64_t value, void *userdata)
{
        struct retry_walk *w = userdata;
        int r = queue_stale_discard(w->vm, w->c, w->reg, start, end, value & MC_ATTR_PRIVATE, true);

        /* No shared memory: nothing can be stale there. */
        if (r == 0)
                (void) mc_rangemap_set(w->vm->discard_failed, start, end, 0);
        return r < 0 ? r : 0;
}

/**
 * retry_vm() - resubmit @vm's failed discards that can run now
 *
 * The ranges become busy, as a conversion's do, until their discards are
 * done: a conversion of them waits (DESIGN rule 4). Ranges that are busy
 * now are left for the next retry; ranges in no registered region are
 * left alone (their fds are gone; a resumed VMM's reconcile handles them).
 * Return: true if some failed range was left for later
 */
static bool retry_vm(struct vm *vm)
{
        struct retry_ranges rr = { 0 };
        struct conversion *c = NULL;
        bool later = false;

        if (vm->lease.id) {
                /* The VMM may be converting these ranges under its lease right now. */
                lease_revoke(vm, "a failed discard is to be retried", 0);
                return true;  /* convert_lease_returned() runs it */
        }
        if (mc_rangemap_walk(vm->discard_failed, 0, UINT64_MAX, retry_collect_fn, &rr) < 0)
                goto oom;
        c = calloc(1, sizeof(*c));
        if (!c)
                goto oom;
        /* Each failed range splits at most once per region. */
        c->plan.ranges = calloc(rr.n * (vm->n_regions ? vm->n_regions : 1), sizeof(*c->plan.ranges));
        c->regions = calloc(rr.n * (vm->n_regions ? vm->n_regions : 1), sizeof(*c->regions));
        if (!c->plan.ranges || !c->regions)
                goto oom;
        for (size_t i = 0; i < rr.n; i++)
                for (size_t k = 0; k < vm->n_regions; k++) {
                        const struct region *reg = vm->regions[k];
                        uint64_t s = rr.r[i][0] > reg->gpa ? rr.r[i][0] : reg->gpa;
                        uint64_t e = rr.r[i][1] < reg->gpa + reg->size ? rr.r[i][1] : reg->gpa + reg->size;

                        if (s >= e)
                                continue;
                        if (mc_rangemap_any(vm->busy, s, e)) {
                                later = true;
                                continue;
                        }
                        c->plan.ranges[c->plan.n_ranges] = (struct mc_plan_range) { s, e - s, k };
                        c->regions[c->plan.n_ranges] = region_ref(vm->regions[k]);
                        c->plan.n_ranges++;
                        c->plan.bytes_change += e - s;
                }
        free(rr.r);
        rr.r = NULL;
        if (c->plan.n_ranges == 0) {
                conversion_free(c);
                return later;
        }
        if (busy_set(vm, &c->plan, true) < 0)
                goto oom;
        c->plan.outcome = MC_PLAN_APPLY;
        c->vm = vm;
        c->applied = true;
        c->decided_usec = daemon_now();
        TAILQ_INSERT_TAIL(&vm->conversions, c, link);
        vm->n_in_flight++;
        log_info("VM %s: retrying the discard of %zu range(s) of stale backing (%" PRIu64 " bytes)",
                 vm->name, c->plan.n_ranges, c->plan.bytes_change);
        c->discards_pending = 1; /* held while jobs are queued */
        for (size_t i = 0; i < c->plan.n_ranges; i++) {
                const struct mc_plan_range *r = &c->plan.ranges[i];
                struct retry_walk w = { .vm = vm, .c = c, .reg = c->regions[i] };

                if (mc_rangemap_walk(vm->attrs, r->gpa, r->gpa + r->size, retry_walk_fn, &w) < 0) {
                        log_error("VM %s: out of memory retrying discards", vm->name);
                        later = true;
                }
        }
        if (--c->discards_pending == 0)
                conversion_finish(c);
        return later;
oom:
        free(rr.r);
        conversion_free(c);
        log_error("VM %s: out of memory retrying discards", vm->name);
        return true;
}

/**
 * retry_fire() - @vm's retry timer fired: back off further (should this
 * retry fail too), retry, and schedule the next if something was left
 */
static int retry_fire(sd_event_source *s, uint64_t usec, void *userdata)
{
        struct vm *vm = userdata;

        vm->retry_delay_usec = vm->retry_delay_usec * 2 > DISCARD_RETRY_MAX_USEC ? DISCARD_RETRY_MAX_USEC
                                                                                 : vm->retry_delay_usec * 2;
        if (vm->state == VM_ATTACHED && mc_rangemap_count(vm->discard_failed) > 0 && retry_vm(vm))
                (void) retry_timer_arm(vm);
        return 0;
}

void convert_lease_returned(struct vm *vm)
{
        if (vm->state == VM_ATTACHED && mc_rangemap_count(vm->discard_failed) > 0 && retry_vm(vm))
                (void) retry_timer_arm(vm);
}

void convert_vm_detached(struct vm *vm)
{
        struct conversion *c, *cn;
        struct waiting *w;

        for (c = TAILQ_FIRST(&vm->conversions); c; c = cn) {
                cn = TAILQ_NEXT(c, link);
                if (c->applied)
                        continue; /* committed; its discards are cancelled with the regions */
                vm->stats.abandoned++;
                log_warning("VM %s: decision %" PRIu64 " abandoned: the VMM left before reporting it "
                            "applied; nothing recorded or discarded for it", vm->name, c->decision_id);
                conversion_unlink(c);
                conversion_free(c);
        }
        /* Their vCPUs are still waiting (the VMM detached, it did not leave): answer them. */
        while (!TAILQ_EMPTY(&vm->delayed)) {
                struct delayed *dl = TAILQ_FIRST(&vm->delayed);
                struct mc_msg_error e;

                TAILQ_REMOVE(&vm->delayed, dl, link);
                mc_error_set(&e, MEMCONV__CODE__CODE_NOT_ATTACHED, -ENOTCONN,
                             "VM %s was detached while this request was delayed by policy", vm->name);
                (void) session_send_decision(dl->session, dl->req.id, &e, MEMCONV__ACTION__ACTION_FAIL,
                                             dl->req.to_private, NULL, 0);
                sd_event_source_disable_unref(dl->timer);
                free(dl);
        }
        vm->n_delayed = 0;
        while ((w = TAILQ_FIRST(&vm->waiting))) {
                struct mc_msg_error e;

                TAILQ_REMOVE(&vm->waiting, w, link);
                mc_error_set(&e, MEMCONV__CODE__CODE_NOT_ATTACHED, -ENOTCONN,
                             "VM %s was detached while this request waited", vm->name);
                (void) session_send_decision(w->session, w->req.id, &e, MEMCONV__ACTION__ACTION_FAIL,
                                             w->req.to_private, NULL, 0);
                free(w);
        }
        vm->n_waiting = 0;
}

void convert_session_gone(struct vm *vm, struct session *s)
{
        struct waiting *w, *next;
        struct delayed *dl, *dnext;

        for (dl = TAILQ_FIRST(&vm->delayed); dl; dl = dnext) {
                dnext = TAILQ_NEXT(dl, link);
                if (dl->session != s)
                        continue;
                TAILQ_REMOVE(&vm->delayed, dl, link);
                vm->n_delayed--;
                sd_event_source_disable_unref(dl->timer);
                free(dl);
        }

        for (w = TAILQ_FIRST(&vm->waiting); w; w = next) {
                next = TAILQ_NEXT(w, link);
                if (w->session != s)
                        continue;
                TAILQ_REMOVE(&vm->waiting, w, link);
                vm->n_waiting--;
                free(w);
        }
}

void convert_vm_free(struct vm *vm)
{
        struct conversion *c;

        vm->retry_timer = sd_event_source_disable_unref(vm->retry_timer);
        /* Conversions with discards in flight finish on their own, VM-less. */
        while ((c = TAILQ_FIRST(&vm->conversions))) {
                TAILQ_REMOVE(&vm->conversions, c, link);
                c->vm = NULL;
                if (c->discards_pending == 0)
                        conversion_free(c);
        }
        vm->n_in_flight = 0;
}

void convert_log_summary(struct vm *vm, uint64_t interval_usec)
{
        struct vm_stats *st = &vm->stats;
        char f_vm[300], f_n[48], f_p[48], f_s[48], f_b[48], f_r[48];
        const char *fields[] = { "MESSAGE_ID=" MEMCONV_MESSAGE_SUMMARY, "MEMCONV_EVENT=summary",
                                 f_vm, f_n, f_p, f_s, f_b, f_r, NULL };

        if (st->summary_changes == 0 && st->summary_refused == 0)
                return;
        snprintf(f_vm, sizeof(f_vm), "MEMCONV_VM=%s", vm->name);
        snprintf(f_n, sizeof(f_n), "MEMCONV_CHANGES=%" PRIu64, st->summary_changes);
        snprintf(f_p, sizeof(f_p), "MEMCONV_TO_PRIVATE=%" PRIu64, st->summary_to_private);
        snprintf(f_s, sizeof(f_s), "MEMCONV_TO_SHARED=%" PRIu64, st->summary_to_shared);
        snprintf(f_b, sizeof(f_b), "MEMCONV_BYTES=%" PRIu64, st->summary_bytes);
        snprintf(f_r, sizeof(f_r), "MEMCONV_REFUSED=%" PRIu64, st->summary_refused);
        if (log_get_max_level() >= LOG_INFO)
                log_fields(LOG_INFO, 0, fields,
                           "VM %s: %" PRIu64 " conversions in the last %" PRIu64 " ms (%" PRIu64
                           " to private, %" PRIu64 " to shared, %" PRIu64 " bytes), %" PRIu64 " refused",
                           vm->name, st->summary_changes, interval_usec / 1000, st->summary_to_private,
                           st->summary_to_shared, st->summary_bytes, st->summary_refused);
        st->summary_changes = st->summary_to_private = st->summary_to_shared = 0;
        st->summary_bytes = st->summary_refused = 0;
}
