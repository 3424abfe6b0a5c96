/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * memconv.h - libmemconv, the client library a VMM links to let memconvd
 * decide and record every private/shared memory conversion of its guests.
 *
 * Model: the VMM connects once per VM (mc_client_connect()), attaches the VM
 * (mc_client_attach()), registers each guest_memfd-backed memory region with
 * its fds (mc_client_register_region()), and gives the library one callback
 * that applies memory attributes (KVM_SET_MEMORY_ATTRIBUTES on the VM fd, or
 * the VMM's own backend). After every KVM_RUN, a vCPU thread hands its
 * struct kvm_run to mc_handle_exit(): for KVM_EXIT_MEMORY_FAULT and for
 * KVM_EXIT_HYPERCALL(KVM_HC_MAP_GPA_RANGE) the library asks memconvd, applies
 * what it decides, reports back asynchronously, writes hypercall.ret, and
 * tells the caller whether to re-enter the guest.
 *
 * Threads: one mc_client may be used by any number of vCPU threads at once;
 * each waits only for the answer to its own request. Setup calls
 * (attach/register/unregister/detach) may also run concurrently with them.
 * mc_client_free() must not race with any other call.
 *
 * Errors: functions return negative errno values. -EPROTO: the daemon broke
 * the protocol; -ECONNRESET: the daemon went away. The library never prints.
 *
 * This header is installed and does not depend on <linux/kvm.h> being new.
 */
#ifndef MEMCONV_H
#define MEMCONV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kvm_run;

/* Default VMM socket of a system memconvd. */
#define MC_DEFAULT_SOCKET "/run/memconvd/vmm.sock"

typedef struct mc_client mc_client;

/* Mirrors memconv.proto's CcType / Arch. */
enum mc_cc_type {
        MC_CC_NONE = 0,
        MC_CC_SEV = 1,
        MC_CC_SEV_ES = 2,
        MC_CC_SEV_SNP = 3,
        MC_CC_TDX = 4,
        MC_CC_ARM_CCA = 5,
        MC_CC_PKVM = 6,
        MC_CC_SW_PROTECTED = 7,
        MC_CC_S390_PV = 8,
};

enum mc_arch {
        MC_ARCH_UNSPECIFIED = 0,
        MC_ARCH_X86_64 = 1,
        MC_ARCH_ARM64 = 2,
        MC_ARCH_RISCV64 = 3,
        MC_ARCH_S390X = 4,
};

/* Mirrors memconv.proto's ConvertSource / PageSize. */
enum mc_convert_source {
        MC_SOURCE_UNSPECIFIED = 0,
        MC_SOURCE_KVM_HC_MAP_GPA_RANGE = 1,
        MC_SOURCE_SNP_PSC = 2,
        MC_SOURCE_TDX_MAPGPA = 3,
        MC_SOURCE_ARM_RSI = 4,
};

enum mc_page_size {
        MC_PAGE_4K = 0,
        MC_PAGE_2M = 1,
        MC_PAGE_1G = 2,
};

struct mc_vm_info {
        uint8_t uuid[16];
        const char *name;            /* 1..255 printable characters */
        enum mc_cc_type cc_type;
        enum mc_arch arch;
};

struct mc_region_info {
        uint32_t slot;               /* the VMM's id for the region (KVM memslot) */
        uint64_t gpa;                /* 4 KiB aligned */
        uint64_t size;               /* 4 KiB aligned, > 0 */
        int guest_memfd;             /* borrowed: the library passes a copy */
        uint64_t guest_memfd_offset;
        int shared_fd;               /* borrowed, or -1 when there is none */
        uint64_t shared_offset;
        bool initial_private;        /* attribute of the whole region now */
};

/**
 * mc_apply_fn - set memory attributes of [gpa, gpa+size) in KVM
 * @userdata: as given to mc_client_set_apply()
 * @gpa: first address, 4 KiB aligned
 * @size: bytes, 4 KiB aligned
 * @to_private: true: KVM_MEMORY_ATTRIBUTE_PRIVATE; false: shared (0)
 *
 * Called on the vCPU thread that handles the exit.
 * Return: 0, or a negative errno (the conversion is then rolled back).
 */
typedef int (*mc_apply_fn)(void *userdata, uint64_t gpa, uint64_t size, bool to_private);

/* What the caller of mc_handle_exit() / mc_client_convert() must do next. */
enum mc_exit_action {
        MC_EXIT_NOT_HANDLED = 0,  /* not a conversion: handle the exit yourself */
        MC_EXIT_RETRY = 1,        /* re-enter the vCPU (KVM_RUN) */
        MC_EXIT_INJECT_FAULT = 2, /* refused: inject a fault into the guest, then re-enter */
        MC_EXIT_STOP_VM = 3,      /* refused: policy says stop the VM */
};

/* Detail of one answered request, for callers that want it. */
struct mc_exit_result {
        enum mc_exit_action action;
        int error;                   /* 0, or the daemon's negative errno for a refusal */
        char message[160];           /* the daemon's explanation, "" when none */
};

/**
 * mc_client_connect() - connect to memconvd and agree on a protocol version
 * @socket_path: the daemon's VMM socket, NULL for MC_DEFAULT_SOCKET
 * @ret: the new client, owned by the caller
 *
 * Return: 0; -ENOENT / -ECONNREFUSED when no daemon listens; -EPROTO on a
 * version mismatch; other negative errno.
 */
int mc_client_connect(const char *socket_path, mc_client **ret);

/**
 * mc_client_free() - detach (if attached), disconnect, free; accepts NULL
 * Return: NULL
 */
mc_client *mc_client_free(mc_client *c);

/** mc_client_set_apply() - set the attribute callback (before the first exit) */
void mc_client_set_apply(mc_client *c, mc_apply_fn fn, void *userdata);

/**
 * mc_client_attach() - attach one VM to this connection
 * @ret_vm_id: the daemon's id for the VM (may be NULL)
 * Return: 0; -EEXIST if already attached; -EINVAL for bad info; -EPERM.
 */
int mc_client_attach(mc_client *c, const struct mc_vm_info *info, uint64_t *ret_vm_id);

/** mc_client_detach() - detach the VM; the daemon closes its fds. */
int mc_client_detach(mc_client *c);

/**
 * mc_client_register_region() - hand memconvd a region and its fds
 * Return: 0; -EINVAL bad geometry; -EEXIST overlaps a region or reuses a
 * slot; -EBADF an fd that is not usable (not a guest_memfd, ...).
 */
int mc_client_register_region(mc_client *c, const struct mc_region_info *r);

/** mc_client_unregister_region() - forget a region; the daemon closes its fds. */
int mc_client_unregister_region(mc_client *c, uint32_t slot);

/**
 * mc_handle_exit() - handle a vCPU exit if it is a conversion
 * @c: the client
 * @vcpu: the vCPU's index
 * @run: its struct kvm_run, after KVM_RUN returned (0, or -1 with errno
 *       EFAULT and exit_reason KVM_EXIT_MEMORY_FAULT)
 * @ret_result: optional detail (may be NULL)
 *
 * Handles KVM_EXIT_MEMORY_FAULT and KVM_EXIT_HYPERCALL with nr
 * KVM_HC_MAP_GPA_RANGE; for the latter it always writes run->hypercall.ret
 * (0 on success, -KVM_EINVAL / -KVM_EFAULT... as the guest must see a
 * refusal), even when it returns an error.
 *
 * Return: an enum mc_exit_action (>= 0), or a negative errno when memconvd
 * could not be asked or the attribute callback failed.
 */
int mc_handle_exit(mc_client *c, unsigned vcpu, struct kvm_run *run,
                   struct mc_exit_result *ret_result);

/**
 * mc_client_convert() - an explicit conversion request from the guest
 * (for exits the VMM decodes itself, e.g. an SNP page-state change)
 * Return: as mc_handle_exit().
 */
int mc_client_convert(mc_client *c, unsigned vcpu, uint64_t gpa, uint64_t size,
                      bool to_private, enum mc_convert_source source,
                      enum mc_page_size page_size, struct mc_exit_result *ret_result);

/**
 * mc_client_fault() - an implicit conversion: a memory fault as KVM reported
 * it (@flags verbatim, KVM_MEMORY_EXIT_FLAG_PRIVATE = 1 << 3)
 * @syndrome: optional raw architecture fault state, @syndrome_len <= 64
 * Return: as mc_handle_exit().
 */
int mc_client_fault(mc_client *c, unsigned vcpu, uint64_t gpa, uint64_t size, uint64_t flags,
                    const void *syndrome, size_t syndrome_len, struct mc_exit_result *ret_result);

/**
 * mc_client_set_reconnect() - how long to keep trying when memconvd goes away
 * @timeout_ms: 0 disables reconnection; default 30000
 *
 * When the daemon restarts, the vCPU threads waiting for an answer (and
 * those that ask while it is away) block while one of them connects again
 * with backoff, resumes the VM with its attach token, registers the regions
 * again (the library keeps duplicates of their fds) and re-sends every
 * applied conversion the old daemon had not confirmed as durable
 * (Committed). Then every request is asked again and answered. After
 * @timeout_ms without success they fail with the connection error.
 */
void mc_client_set_reconnect(mc_client *c, unsigned timeout_ms);

/** mc_client_fd() - the connection's socket (for poll), owned by the client */
int mc_client_fd(const mc_client *c);

/*
 * Leases (since 0.2; memconv-protocol(7), LEASES). With a lease, a
 * conversion the lease covers is applied on the vCPU thread at once (the
 * attribute callback, then re-entry) and reported to memconvd afterwards,
 * without waiting for an answer; memconvd still checks it against policy,
 * records it, journals it and discards the stale backing off the vCPU's
 * path. A conversion the lease does not cover (its kind or size, the rate
 * it allows, or a range whose previous conversion memconvd has not yet
 * finished discarding) is asked of memconvd as before. memconvd may revoke
 * the lease at any time and grant it again later; the library keeps to
 * whatever is in force.
 *
 * The library reads memconvd's messages (grants, revocations, "settled"
 * notices, durability acknowledgements) whenever a vCPU thread waits for
 * an answer or converts under the lease. A VMM whose vCPUs may sit idle
 * should also poll mc_client_fd() for input and call mc_client_dispatch(),
 * so that a revocation is answered promptly.
 */

/**
 * mc_client_set_lease() - ask memconvd for a lease (@want true) or give it up
 *
 * Call after mc_client_attach(). The lease itself arrives asynchronously,
 * when memconvd's policy allows it; until then every conversion is asked
 * of memconvd. The wish survives a daemon restart (it is sent again).
 * Return: 0; -EPERM when leases are disabled on this host; -ENOTCONN when
 * no VM is attached; other negative errno.
 */
int mc_client_set_lease(mc_client *c, bool want);

/**
 * mc_client_dispatch() - handle every message memconvd has sent that no
 * thread is reading, without blocking
 * Return: how many were handled, or a negative errno (connection lost)
 */
int mc_client_dispatch(mc_client *c);

struct mc_lease_stats {
        bool active;                 /* a lease is in force now */
        uint64_t lease_id;           /* its id, 0 when none */
        uint64_t leased;             /* conversions applied under a lease */
        uint64_t asked;              /* conversions asked of memconvd while a lease was wanted */
        uint64_t grants;             /* leases received */
        uint64_t revocations;        /* leases revoked (and returned) */
        uint64_t tracked;            /* ranges now kept off the lease until settled */
};

/** mc_client_lease_stats() - counters of this client's lease (since connect) */
void mc_client_lease_stats(mc_client *c, struct mc_lease_stats *ret);

/*
 * Polling for answers (since 0.3). A vCPU thread waiting for memconvd's
 * answer first polls the socket for a short window, giving up the CPU
 * (sched_yield()) between polls, and sleeps only if no answer came: the
 * answer usually comes within microseconds, and waking a thread that slept
 * on an idle CPU costs more than that. The window adapts as KVM's
 * halt-polling does: it grows (from 10 us, doubling) while answers come
 * soon after it, up to the maximum, and drops to 0 after a wait longer
 * than the maximum, so a slow or idle daemon costs no polling.
 */

/** The default maximum polling window, in microseconds */
#define MC_POLL_DEFAULT_USEC 50

/**
 * mc_client_set_poll() - the largest polling window, in microseconds
 * @max_usec: 0 never polls (every wait sleeps); at most 1000000
 * Return: 0, or -EINVAL
 */
int mc_client_set_poll(mc_client *c, unsigned max_usec);

struct mc_poll_stats {
        uint64_t max_usec;           /* the largest window */
        uint64_t window_usec;        /* the window of the next wait */
        uint64_t hits;               /* answers that came while polling */
        uint64_t misses;             /* waits that polled in vain, then slept */
        uint64_t poll_usec;          /* time spent polling, hits and misses */
};

/** mc_client_poll_stats() - this client's polling counters (since connect) */
void mc_client_poll_stats(mc_client *c, struct mc_poll_stats *ret);

/*
 * Request ring. After attaching, libmemconv passes memconvd a small shared
 * memory ring (a sealed memfd) and sends conversion requests and Applied
 * reports through it: while both sides poll, a conversion then needs no
 * system call beyond KVM's. The answer is awaited in the ring for the
 * polling window above, then on the socket. If memconvd refuses the ring
 * (RequestRing=no, or an older daemon), everything goes on the socket, as
 * it does when the ring is turned off here. On by default.
 */

/**
 * mc_client_set_ring() - use a request ring (the default) or not
 * @want: false stops using it at once (it stays set up, unused); true uses
 * it again, or sets one up now if attached and there is none (else at the
 * next attach)
 * Return: 0, or the negative errno of a refused RingSetup (the client
 * carries on without a ring)
 */
int mc_client_set_ring(mc_client *c, bool want);

struct mc_ring_stats {
        bool active;                 /* the current connection has a ring */
        int error;                   /* 0, or why the last RingSetup failed (-EPERM: turned off there) */
        uint64_t requests;           /* conversion requests queued in the ring */
        uint64_t replies;            /* of them, answered in the ring */
        uint64_t socket_answers;     /* of them, answered on the socket (window passed, or too large) */
        uint64_t async;              /* Applied reports queued in the ring */
        uint64_t kicks;              /* RingKick datagrams sent to wake memconvd */
        uint64_t full;               /* messages sent on the socket because the ring had no room */
        uint64_t drains;             /* times the socket was read because memconvd had sent something */
};

/** mc_client_ring_stats() - this client's request ring counters (since connect) */
void mc_client_ring_stats(mc_client *c, struct mc_ring_stats *ret);

#ifdef __cplusplus
}
#endif

#endif
