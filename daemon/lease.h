/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * lease.h - policy leases: terms under which a VMM converts memory on its
 * vCPU thread without waiting for a Decision, reporting each conversion
 * afterwards (LeasedApplied). memconv-protocol(7), LEASES.
 *
 * States of one VM's lease (all on the event loop):
 *
 *   none --grant--> granted --revoke--> revoking --LeaseReturned--> none
 *
 * A grant needs: the attached VMM asked (LeaseRequest want), Leases=yes,
 * every policy plugin agrees (policy_chain_lease()), no failed discard
 * awaits a retry, no conversion the VMM does not track is in flight (see
 * convert_lease_blocked()), and no hold after a revocation by policy.
 *
 * The daemon never touches backing for reasons of its own (a discard
 * retry) while a lease is granted or being revoked: the VMM could be
 * converting that range under the lease this very moment. So a retry
 * first revokes, and runs once the lease is returned.
 *
 * Settled: while the VMM wants a lease, every conversion of it that
 * finishes (discards done, or rolled back) is reported back in a Settled
 * message, batched once per event-loop iteration, so that libmemconv knows
 * when a range may be converted under the lease again (DESIGN rule 4).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "memconv-policy.h"
#include "message.h"

#include "memconv.pb-c.h"

struct vm;
struct session;

/* A lease seq in the acknowledgement arrays of persist.c: the top bit marks it. */
#define LEASE_ACK_FLAG (1ULL << 63)

/* After a conversion under a lease that policy would not have allowed: no new grant for this long. */
#define LEASE_HOLD_USEC 1000000ULL

/* Most reports a lease lets a VMM send in one LeasedBatch (when LeaseReportDelayUSec > 0). */
#define LEASE_REPORT_BATCH 128

struct vm_lease {
        bool wanted;                  /* the attached VMM asked for one */
        uint64_t first_rx;            /* requests received from here on are tracked by the VMM */
        uint64_t id;                  /* granted or being revoked; 0: none */
        bool revoking;
        struct mc_policy_lease terms; /* of @id */
        uint64_t hold_until_usec;     /* no grant before (CLOCK_MONOTONIC) */
        sd_event_source *hold_timer;
        char why_not[160];            /* why the last grant attempt failed, for show */
        uint64_t *settle_decisions;   /* owned: to send in the next Settled */
        size_t n_settle_decisions, cap_settle_decisions;
        uint64_t *settle_seqs;        /* owned */
        size_t n_settle_seqs, cap_settle_seqs;
        sd_event_source *flush;       /* defer source that sends Settled */
};

/**
 * lease_request() - the VMM asks for a lease (@want) or gives it up; the
 * caller answers, then calls lease_try_grant() (the grant follows the answer)
 * Return: 0, or negative errno with @e filled (nothing changed)
 */
int lease_request(struct vm *vm, bool want, struct mc_msg_error *e);

/** lease_try_grant() - grant a lease if the VMM wants one and nothing stands in the way */
void lease_try_grant(struct vm *vm);

/**
 * lease_revoke() - revoke @vm's granted lease (no-op without one)
 * @why: for the log
 * @hold_usec: no new grant before this much time has passed (0: none)
 */
void lease_revoke(struct vm *vm, const char *why, uint64_t hold_usec);

/** lease_revoke_all() - revoke every lease (the policy chain or its settings changed) */
void lease_revoke_all(struct daemon *d, const char *why);

/**
 * lease_returned() - the VMM returned lease @id after a revocation: every
 * conversion under it has been reported
 * Return: 0, or negative errno with @e filled (not the lease being revoked)
 */
int lease_returned(struct vm *vm, uint64_t id, struct mc_msg_error *e);

/**
 * lease_check_report() - may @a be recorded as a conversion under @vm's lease?
 * Return: 0, or negative errno with @e filled: no such lease on this
 * connection, or outside its terms
 */
int lease_check_report(struct vm *vm, const Memconv__LeasedApplied *a, struct mc_msg_error *e);

/**
 * lease_settled() - a conversion of @vm finished: tell the VMM in the next
 * Settled (@decision_id, or @seq for a leased one; the other 0). No-op
 * unless the VMM wants a lease.
 */
void lease_settled(struct vm *vm, uint64_t decision_id, uint64_t seq);

/** lease_session_end() - the VMM detached or left: the lease and its wish end */
void lease_session_end(struct vm *vm);

/** lease_describe() - "", "wanted (...)", "granted #N ...", "revoking #N" */
void lease_describe(const struct vm *vm, char *buf, size_t len);
