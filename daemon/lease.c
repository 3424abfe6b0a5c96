// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * lease.c - policy leases (see lease.h for the states and the rules).
 *
 * Who checks what: the terms come from the policy chain (each plugin's
 * lease() narrows them); libmemconv keeps to them and to DESIGN rule 4 on
 * the vCPU thread; convert_leased() plans and records each report against
 * the attribute map as it arrives and asks the chain's check() about it
 * after the fact. Anything the chain would not have allowed revokes the
 * lease, with a hold before the next grant.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "convert.h"
#include "lease.h"
#include "log.h"
#include "macro.h"
#include "policy.h"
#include "registry.h"
#include "session.h"
#include "vm.h"

/**
 * lease_hold_fire() - the hold after a revocation is over: try again
 */
static int lease_hold_fire(sd_event_source *src, uint64_t usec, void *userdata)
{
        struct vm *vm = userdata;

        vm->lease.hold_timer = sd_event_source_disable_unref(vm->lease.hold_timer);
        lease_try_grant(vm);
        return 0;
}

/**
 * lease_terms() - the terms the policy chain allows @vm now
 * @why: filled when none
 * Return: 0 or negative errno
 */
static int lease_terms(struct vm *vm, struct mc_policy_lease *ret, char *why, size_t why_len)
{
        struct daemon *d = vm->daemon;
        struct mc_policy_vm pv = vm_policy_vm(vm);
        struct mc_policy_lease t = {
                .implicit = true,
                .explicit_ = true,
                .max_bytes = d->config.lease_max_bytes,
        };
        int r;

        if (!d->config.leases) {
                snprintf(why, why_len, "Leases=no");
                return -EPERM;
        }
        r = policy_chain_lease(d->policy, &pv, &t, why, why_len);
        if (r < 0)
                return r;
        *ret = t;
        return 0;
}

void lease_try_grant(struct vm *vm)
{
        struct vm_lease *l = &vm->lease;
        Memconv__Lease m = MEMCONV__LEASE__INIT;
        struct mc_policy_lease t;
        uint64_t now;

        if (!vm->session || !l->wanted || l->id)
                return;
        now = daemon_now();
        if (now < l->hold_until_usec) {
                if (!l->hold_timer)
                        (void) sd_event_add_time(vm->daemon->event, &l->hold_timer, CLOCK_MONOTONIC,
                                                 l->hold_until_usec, 0, lease_hold_fire, vm);
                snprintf(l->why_not, sizeof(l->why_not), "held after a revocation");
                return;
        }
        if (mc_rangemap_count(vm->discard_failed) > 0) {
                snprintf(l->why_not, sizeof(l->why_not), "a failed discard awaits its retry");
                return;
        }
        if (convert_lease_blocked(vm)) {
                snprintf(l->why_not, sizeof(l->why_not), "conversions the VMM does not track are in flight");
                return;
        }
        if (lease_terms(vm, &t, l->why_not, sizeof(l->why_not)) < 0)
                return;

        l->id = ++vm->daemon->next_lease_id;
        l->terms = t;
        l->revoking = false;
        l->why_not[0] = 0;
        m.lease_id = l->id;
        m.implicit = t.implicit;
        m.explicit_ = t.explicit_;
        m.max_bytes = t.max_bytes;
        m.conversions_per_sec = t.conversions_per_sec;
        m.conversions_burst = t.conversions_burst;
        m.bytes_per_sec = t.bytes_per_sec;
        m.bytes_burst = t.bytes_burst;
        /* Reports in batches: a vCPU pays no send per conversion, memconvd no wake-up per report,
         * and a run of adjacent conversions becomes one discard. The delay bounds how stale the
         * map may be. */
        if (vm->daemon->config.lease_report_delay_usec) {
                m.report_batch = LEASE_REPORT_BATCH;
                m.report_delay_usec = (uint32_t) vm->daemon->config.lease_report_delay_usec;
        }
        vm->stats.lease_grants++;
        log_debug("VM %s: lease %" PRIu64 " granted (%s%s, up to %" PRIu64 " bytes)", vm->name, l->id,
                  t.implicit ? "implicit" : "", t.explicit_ ? (t.implicit ? "+explicit" : "explicit") : "",
                  t.max_bytes);
        if (session_send_lease(vm->session, &m) < 0)
                l->id = 0; /* the session is going away */
}

void lease_revoke(struct vm *vm, const char *why, uint64_t hold_usec)
{
        struct vm_lease *l = &vm->lease;
        Memconv__Lease m = MEMCONV__LEASE__INIT;

        if (hold_usec)
                l->hold_until_usec = daemon_now() + hold_usec;
        if (!l->id || l->revoking || !vm->session)
                return;
        l->revoking = true;
        vm->stats.lease_revocations++;
        if (hold_usec)
                log_info("VM %s: lease %" PRIu64 " revoked: %s", vm->name, l->id, why);
        else
                log_debug("VM %s: lease %" PRIu64 " revoked: %s", vm->name, l->id, why);
        m.lease_id = l->id;
        m.revoked = true;
        (void) session_send_lease(vm->session, &m);
}

void lease_revoke_all(struct daemon *d, const char *why)
{
        struct vm *vm;

        LIST_FOREACH(vm, &d->vms, link)
                lease_revoke(vm, why, 0);
}

int lease_request(struct vm *vm, bool want, struct mc_msg_error *e)
{
        struct vm_lease *l = &vm->lease;

        if (want && !vm->daemon->config.leases)
                return mc_error_set(e, MEMCONV__CODE__CODE_PERMISSION_DENIED, -EPERM,
                                    "leases are disabled on this host (Leases=no)");
        if (want && !l->wanted) {
                l->wanted = true;
                /* Conversions asked for before now were not tracked by the VMM (lease.h). */
                l->first_rx = vm->n_rx + 1;
        } else if (!want) {
                l->wanted = false;
                lease_revoke(vm, "the VMM gave it up", 0);
        }
        return 0;
}

int lease_returned(struct vm *vm, uint64_t id, struct mc_msg_error *e)
{
        struct vm_lease *l = &vm->lease;

        if (!l->id || id != l->id || !l->revoking)
                return mc_error_set(e, MEMCONV__CODE__CODE_NOT_FOUND, -ENOENT,
                                    "lease-returned: lease %" PRIu64 " is not being revoked on this connection", id);
        log_debug("VM %s: lease %" PRIu64 " returned", vm->name, id);
        l->id = 0;
        l->revoking = false;
        /* What waited for the lease to come back (discard retries) may run now. */
        convert_lease_returned(vm);
        lease_try_grant(vm);
        return 0;
}

int lease_check_report(struct vm *vm, const Memconv__LeasedApplied *a, struct mc_msg_error *e)
{
        const struct vm_lease *l = &vm->lease;

        if (!l->id || a->lease_id != l->id)
                return mc_error_set(e, MEMCONV__CODE__CODE_PERMISSION_DENIED, -EPERM,
                                    "leased-applied: this connection holds no lease %" PRIu64, a->lease_id);
        if (a->implicit ? !l->terms.implicit : !l->terms.explicit_)
                return mc_error_set(e, MEMCONV__CODE__CODE_POLICY_REFUSED, -EACCES,
                                    "leased-applied: lease %" PRIu64 " does not cover %s conversions", l->id,
                                    a->implicit ? "implicit" : "explicit");
        if (a->size > l->terms.max_bytes)
                return mc_error_set(e, MEMCONV__CODE__CODE_POLICY_REFUSED, -EACCES,
                                    "leased-applied: %" PRIu64 " bytes exceed lease %" PRIu64 "'s %" PRIu64,
                                    a->size, l->id, l->terms.max_bytes);
        return 0;
}

/**
 * append_id() - append @v to a growing array
 * Return: 0 or -ENOMEM
 */
static int append_id(uint64_t **a, size_t *n, size_t *cap, uint64_t v)
{
        if (*n == *cap) {
                size_t nc = *cap ? *cap * 2 : 64;
                uint64_t *na = realloc(*a, nc * sizeof(*na));

                if (!na)
                        return -ENOMEM;
                *a = na;
                *cap = nc;
        }
        (*a)[(*n)++] = v;
        return 0;
}

/**
 * lease_flush() - send the Settled batch (defer source, once per loop iteration)
 */
static int lease_flush(sd_event_source *src, void *userdata)
{
        struct vm *vm = userdata;
        struct vm_lease *l = &vm->lease;

        if (vm->session && (l->n_settle_decisions || l->n_settle_seqs))
                (void) session_send_settled(vm->session, l->settle_decisions, l->n_settle_decisions,
                                            l->settle_seqs, l->n_settle_seqs);
        l->n_settle_decisions = l->n_settle_seqs = 0;
        return 0;
}

void lease_settled(struct vm *vm, uint64_t decision_id, uint64_t seq)
{
        struct vm_lease *l = &vm->lease;
        int r;

        if (!l->wanted || !vm->session)
                return;
        r = seq ? append_id(&l->settle_seqs, &l->n_settle_seqs, &l->cap_settle_seqs, seq)
                : append_id(&l->settle_decisions, &l->n_settle_decisions, &l->cap_settle_decisions, decision_id);
        if (r < 0) {
                /* The VMM would wait for it forever: take the lease back instead. */
                log_error("VM %s: out of memory settling a conversion; revoking its lease", vm->name);
                lease_revoke(vm, "out of memory", LEASE_HOLD_USEC);
                return;
        }
        if (!l->flush && sd_event_add_defer(vm->daemon->event, &l->flush, lease_flush, vm) < 0) {
                lease_flush(NULL, vm);
                return;
        }
        (void) sd_event_source_set_enabled(l->flush, SD_EVENT_ONESHOT);
}

void lease_session_end(struct vm *vm)
{
        struct vm_lease *l = &vm->lease;

        l->hold_timer = sd_event_source_disable_unref(l->hold_timer);
        l->flush = sd_event_source_disable_unref(l->flush);
        free(l->settle_decisions);
        free(l->settle_seqs);
        *l = (struct vm_lease) { 0 };
}

void lease_describe(const struct vm *vm, char *buf, size_t len)
{
        const struct vm_lease *l = &vm->lease;
        char rate[64] = "";

        buf[0] = 0;
        if (!l->wanted && !l->id)
                return;
        if (!l->id) {
                snprintf(buf, len, "wanted, not granted: %s", l->why_not[0] ? l->why_not : "pending");
                return;
        }
        if (l->terms.conversions_per_sec)
                snprintf(rate, sizeof(rate), ", %" PRIu64 " conversions/s", l->terms.conversions_per_sec);
        snprintf(buf, len, "%s #%" PRIu64 ": %s%s%s, up to %" PRIu64 " bytes%s",
                 l->revoking ? "revoking" : "granted", l->id, l->terms.implicit ? "implicit" : "",
                 l->terms.implicit && l->terms.explicit_ ? "+" : "", l->terms.explicit_ ? "explicit" : "",
                 l->terms.max_bytes, rate);
}
