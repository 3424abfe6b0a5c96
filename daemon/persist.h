/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * persist.h - the conversion journal: what memconvd keeps across restarts,
 * and when it tells a VMM that a change is safe.
 *
 * Every VM has one journal file, STATE_DIR/vm-ID.journal (format: lib/journal.h,
 * memconvd(8)): a VM record (or, once compacted, a snapshot record) followed
 * by region and change records. The loop encodes records as they happen into
 * the VM's pending buffer; at the end of each loop iteration (a defer source)
 * every pending buffer is handed to the journal thread, which appends it with
 * one write and one fdatasync per file (group commit). Only when that has
 * succeeded does the VMM get a Committed message for the decisions in it
 * (DESIGN rule 5: answer only what can be kept); until then libmemconv keeps
 * them and re-sends them after a restart. Without a journal (--journal=no)
 * Committed is sent at the same point without I/O.
 *
 * Compaction: after --journal-compact records since the last snapshot, the
 * loop encodes a snapshot of the VM (regions, private ranges, counters, last
 * sequence number) and the journal thread replaces the file with it
 * atomically (temporary file, fdatasync, rename, directory fsync). A crash at
 * any point leaves the old or the new file, never a mix.
 *
 * Start-up: persist_load() replays every journal into a detached VM (map,
 * history ring, counters, attach token), cutting a torn or corrupt tail off
 * with a warning, and removes temporary files a crash left behind. Updates
 * of a VM's map that overwrite earlier ones are applied in one sweep once its
 * whole file has been read (replay.h).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "daemon.h"
#include "history.h"

struct vm;
struct persist;

struct persist_config {
        const char *state_dir;     /* NULL: no journal */
        uint64_t compact_records;  /* snapshot after this many records */
        uint64_t commit_interval_usec; /* at least this long between two appends of one journal */
};

/**
 * persist_new() - open the state directory and start the journal thread
 * Return: 0 or negative errno (logged)
 */
int persist_new(struct daemon *d, const struct persist_config *cfg, struct persist **ret);

/**
 * persist_load() - rebuild every journaled VM as a detached VM
 * Return: number of VMs loaded, or negative errno (logged)
 */
int persist_load(struct persist *p);

/** persist_free() - write what is pending, stop the thread; accepts NULL */
struct persist *persist_free(struct persist *p);

/**
 * persist_vm_created() - start @vm's journal with its identity
 * @attach_reply: the Attach to answer once that is durable (a resume
 * token the next daemon would not know is worth nothing)
 * Return: true if the journal answers it; false: answer it now
 */
bool persist_vm_created(struct vm *vm, uint64_t attach_reply);

/** persist_region() - journal a region registration (@removed: unregistration) */
void persist_region(struct vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, bool has_shared,
                    bool initial_private, bool removed);

/** persist_change() - journal one history record (a committed or rolled-back change) */
void persist_change(struct vm *vm, const struct history_record *rec);

/**
 * persist_ack() - tell @vm's VMM once everything journaled so far is durable
 * @decision_id: for a Committed message (0: none)
 * @reply_id: a request to answer with Reply OK then (0: none)
 */
void persist_ack(struct vm *vm, uint64_t decision_id, uint64_t reply_id);

/**
 * persist_detach() - the VMM asked to detach: once everything journaled so
 * far is durable, detach the VM and answer request @reply_id
 */
void persist_detach(struct vm *vm, uint64_t reply_id);

/** persist_vm_forgotten() - delete @vm's journal (after what is queued) */
void persist_vm_forgotten(struct vm *vm);

/** persist_vm_free() - @vm is going away without being forgotten (shutdown) */
void persist_vm_free(struct vm *vm);

/** persist_set_compact() - a new compaction threshold (reload) */
void persist_set_compact(struct persist *p, uint64_t records);

/** persist_set_commit_interval() - change the minimum time between two appends of a journal (reload) */
void persist_set_commit_interval(struct persist *p, uint64_t usec);

/** persist_enabled() - whether a journal is kept */
bool persist_enabled(const struct persist *p);
