/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vm.h - the VM registry, memory regions, and conversions in flight.
 *
 * A VM is created by Attach and owned by the daemon's registry. It holds:
 *  - its regions, sorted by gpa, each with the guest_memfd and optional
 *    shared-memory fd the VMM passed (owned by the region; a region is
 *    reference counted because discard jobs in flight hold it);
 *  - attrs: the attribute map, MC_ATTR_PRIVATE where private. KVM has no
 *    "get": this is the only record of what is private;
 *  - busy: ranges with a conversion in flight, from decision until its
 *    discard has finished (DESIGN rule 4);
 *  - the conversions in flight and the requests waiting for busy ranges.
 *
 * Conversion lifecycle (convert.c):
 *   request -> plan -> [WAIT on busy] -> Decision(APPLY) -> Applied(ok)
 *   -> commit (attrs updated, logged) -> discard jobs -> done, busy released
 *   Applied(!ok) -> rollback (nothing changes). VMM gone -> abandoned.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>
#include <sys/types.h>

#include "daemon.h"
#include "history.h"
#include "lease.h"
#include "stats.h"
#include "message.h"
#include "planner.h"
#include "rangemap.h"

struct region {
        unsigned refs;
        bool dead;                /* owner gone: queued discards are skipped */
        struct vm *vm;            /* not a reference; cleared when the VM lets go */
        uint32_t slot;
        uint64_t gpa;
        uint64_t size;
        int gmem_fd;              /* owned */
        uint64_t gmem_offset;
        dev_t gmem_dev;
        ino_t gmem_ino;
        int shared_fd;            /* owned, or -EBADF */
        uint64_t shared_offset;
};

struct conversion;
struct conv_request;
TAILQ_HEAD(conversion_list, conversion);
TAILQ_HEAD(waiting_list, waiting);

enum vm_state {
        VM_ATTACHED,
        VM_DETACHED,
};

struct vm_stats {
        uint64_t conversions[2][2];   /* [implicit][to_private] committed */
        uint64_t bytes_to_private;
        uint64_t bytes_to_shared;
        uint64_t spurious;
        uint64_t mmio_noop;
        uint64_t refused;
        uint64_t not_handled;
        uint64_t rolled_back;
        uint64_t abandoned;
        uint64_t waited;
        uint64_t discards;
        uint64_t discard_errors;
        uint64_t discard_bytes;
        uint64_t discard_retries;     /* discards retried after a failure (convert.c) */
        uint64_t journal_errors;
        uint64_t reapplied;
        uint64_t policy_refused;
        uint64_t policy_delayed;
        uint64_t leased;              /* committed conversions reported under a lease */
        uint64_t lease_grants;
        uint64_t lease_revocations;
        uint64_t leased_batches;      /* LeasedBatch messages received */
        /* since the last summary record */
        uint64_t summary_changes;
        uint64_t summary_to_private;
        uint64_t summary_to_shared;
        uint64_t summary_bytes;
        uint64_t summary_refused;
        /* refusal log rate limit */
        uint64_t refusal_window_start;
        unsigned refusal_logged;
};

/* A region the VM registered at some point (journaled), to recognise it when
 * a resumed VMM registers it again: its attributes are then kept. */
struct known_region {
        uint32_t slot;
        uint64_t gpa;
        uint64_t size;
        bool has_shared;
};

struct vm_journal;

/* Per-VM policy settings given at run time (memconvctl policy set). */
struct vm_policy_override {
        char *plugin;    /* owned */
        char *settings;  /* owned, "key=value ..." */
};

struct vm {
        LIST_ENTRY(vm) link;
        struct daemon *daemon;
        uint64_t id;
        uint8_t uuid[16];
        char uuid_str[37];
        char *name;
        int cc_type;
        int arch;
        uint8_t token[16];
        uid_t uid;
        pid_t pid;
        enum vm_state state;
        struct session *session;  /* the attached VMM, NULL when detached */

        struct region **regions;  /* sorted by gpa, each holds a reference */
        struct mc_plan_region *plan_regions; /* the same, as the planner sees them */
        size_t n_regions;
        mc_rangemap *attrs;
        mc_rangemap *busy;            /* a value per marking (convert.c busy_set()) */
        uint64_t busy_tag;
        struct conversion_list conversions;
        struct waiting_list waiting;
        unsigned n_in_flight;
        unsigned n_waiting;
        struct vm_stats stats;
        struct histogram decision_latency;
        struct histogram discard_latency;
        struct history history;
        mc_rangemap *discard_failed;  /* non-zero where a discard failed and none succeeded since */
        sd_event_source *retry_timer; /* retries @discard_failed (convert.c), this VM's own backoff: */
        uint64_t retry_delay_usec;    /* the next arm waits this long (0: DISCARD_RETRY_MIN_USEC) */
        struct vm_policy_override *policy;  /* owned */
        size_t n_policy;
        TAILQ_HEAD(, delayed) delayed;      /* requests a policy plugin delayed */
        unsigned n_delayed;
        struct known_region *known;   /* owned */
        size_t n_known;
        struct vm_journal *journal;   /* persist.c's, NULL until used */
        uint64_t attached_usec;
        uint64_t attached_realtime_usec;
        LIST_HEAD(, admin_follower) followers; /* admin connections streaming this VM's history */
        struct vm_lease lease;        /* lease.h */
        uint64_t n_rx;                /* conversion requests and reports received (conv_request.rx) */
};

/**
 * vm_new() - create a VM in the registry, attached to @s
 * @ret: the VM, owned by the registry
 * Return: 0 or -ENOMEM
 */
int vm_new(struct daemon *d, struct session *s, const uint8_t uuid[16], const char *name,
           int cc_type, int arch, uid_t uid, pid_t pid, struct vm **ret);

/** vm_free() - remove from the registry and free; accepts NULL */
void vm_free(struct vm *vm);

/** vm_forget() - vm_free() and delete its journal: the operator is done with it */
void vm_forget(struct vm *vm);

/** vm_set_identity() - restore the id and token a journal recorded */
void vm_set_identity(struct vm *vm, uint64_t id, const uint8_t *token);

/**
 * vm_policy_set() - per-VM settings for one policy plugin, applied now and
 * again after every reload
 * Return: 0, or negative errno with @err filled (nothing changed)
 */
int vm_policy_set(struct vm *vm, const char *plugin, const char *settings, char *err, size_t err_len);

/**
 * vm_policy_vm() - @vm as policy plugins' attach()/label()/lease() see it;
 * the strings are borrowed from @vm and its registration
 */
struct mc_policy_vm vm_policy_vm(const struct vm *vm);

/** vm_policy_reapply() - give the (reloaded) plugins @vm's settings again */
void vm_policy_reapply(struct vm *vm);

/** vm_known_region_remember() / _forget() - see struct known_region */
int vm_known_region_remember(struct vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, bool has_shared);
void vm_known_region_forget(struct vm *vm, uint32_t slot);

/**
 * vm_find_uuid() - the newest VM instance with @uuid in the given state
 * @attached: true: the attached instance (there is at most one); false: the
 *            newest detached one (a VM restarted by its VMM leaves one
 *            detached instance per earlier run, kept for inspection)
 * Return: the VM, or NULL
 */
struct vm *vm_find_uuid(struct daemon *d, const uint8_t uuid[16], bool attached);

/**
 * vm_detach() - the VMM let go (Detach or disconnect): close every fd,
 * abandon conversions whose Applied never came, drop waiting requests;
 * keep map and counters.
 */
void vm_detach(struct vm *vm, const char *why);

/**
 * vm_region_add() - register a region; takes ownership of the fds on success
 * @err: why not, on failure
 * Return: 0, -EEXIST (slot/overlap/fd already used), -EBADF (not a
 * guest_memfd / not shared memory / too small), -EINVAL, -ENOMEM
 */
int vm_region_add(struct vm *vm, uint32_t slot, uint64_t gpa, uint64_t size, int gmem_fd,
                  uint64_t gmem_offset, int shared_fd, uint64_t shared_offset,
                  bool initial_private, struct mc_msg_error *err);

/**
 * vm_region_remove() - unregister the region of @slot
 * Return: 0, -ENOENT, or -EBUSY while a conversion in flight touches it
 */
int vm_region_remove(struct vm *vm, uint32_t slot, struct mc_msg_error *err);

/** vm_region_find() - the region containing @gpa, or NULL */
struct region *vm_region_find(struct vm *vm, uint64_t gpa);

/** vm_plan_ctx() - the planner's view of @vm (borrowed pointers into @vm) */
struct mc_plan_ctx vm_plan_ctx(const struct vm *vm);

struct region *region_ref(struct region *r);
struct region *region_unref(struct region *r);

/** vm_private_bytes() - bytes of registered RAM currently private */
uint64_t vm_private_bytes(struct vm *vm);
