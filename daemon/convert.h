/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * convert.h - deciding, committing and discarding conversions.
 *
 * The engine behind the VMM protocol's MemoryFault, Convert and Applied
 * messages; see vm.h for the lifecycle. Every function runs on the loop.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "discard.h"
#include "message.h"
#include "vm.h"

/* A request as the session decoded and validated it. */
struct conv_request {
        uint64_t id;              /* the VMM's request id */
        uint32_t vcpu;
        bool implicit;            /* memory fault (true) or explicit request */
        uint64_t fault_flags;     /* implicit: KVM's flags verbatim */
        int source;               /* Memconv__ConvertSource (explicit) */
        int page_size;            /* Memconv__PageSize hint (explicit) */
        bool to_private;
        uint64_t gpa;
        uint64_t size;
        uint64_t received_usec;
        uint64_t rx;              /* vm->n_rx when received; 0: the daemon's own (lease.h) */
};

/**
 * convert_request() - decide a request and answer it (now, or once the
 * ranges it overlaps are no longer busy)
 * @vm: the session's attached VM
 * @s: the session to answer on
 * Return: 0, or negative errno if it could not even be queued (answered
 * with an error already)
 */
int convert_request(struct vm *vm, struct session *s, const struct conv_request *req);

/**
 * convert_applied() - the VMM reports it applied (or failed) a decision
 * @err: filled when the report is refused
 * Return: 0; -ENOENT for a decision this VM does not have
 */
int convert_applied(struct vm *vm, uint64_t decision_id, bool ok, int error, struct mc_msg_error *err);

/**
 * convert_reapplied() - record conversions a VMM applied before a daemon
 * restart that the journal does not have (ranges: {gpa, size} pairs)
 * Return: 0, or negative errno with @err filled (nothing after the failing
 * range was recorded)
 */
int convert_reapplied(struct vm *vm, const struct conv_request *req, const uint64_t (*ranges)[2], size_t n,
                      struct mc_msg_error *err);

/**
 * convert_leased() - record a conversion the VMM applied under its lease
 * (checked against the lease's terms by the caller) and discard its stale
 * backing; @seq is the report's, for Settled and Committed
 * Return: 0 (recorded, or already so), or negative errno with @err filled:
 * not this VM's memory, or it overlaps a conversion not yet settled
 * (nothing recorded)
 */
int convert_leased(struct vm *vm, const struct conv_request *req, uint64_t seq, struct mc_msg_error *err);

/**
 * convert_lease_blocked() - whether a conversion, waiting or delayed
 * request the VMM does not track is in flight (received before it asked
 * for a lease, or the daemon's own): no lease may be granted then
 */
bool convert_lease_blocked(const struct vm *vm);

/** convert_lease_returned() - @vm's lease came back: run what waited for it */
void convert_lease_returned(struct vm *vm);

/**
 * convert_reconcile() - after a resume, discard the stale side of every
 * range (pending discards died with the old daemon); each region is busy
 * until its discards are done
 */
void convert_reconcile(struct vm *vm);

/** convert_discard_done() - discarder completion callback (userdata: daemon) */
void convert_discard_done(struct discard_job *job, void *userdata);

/** convert_vm_detached() - abandon decisions never applied, drop waiters */
void convert_vm_detached(struct vm *vm);

/** convert_session_gone() - drop requests of @s still waiting in @vm */
void convert_session_gone(struct vm *vm, struct session *s);

/** convert_vm_free() - release whatever conversion state @vm still has */
void convert_vm_free(struct vm *vm);

/** convert_log_summary() - emit @vm's rate-limited summary record if due */
void convert_log_summary(struct vm *vm, uint64_t interval_usec);
