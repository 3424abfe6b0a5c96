/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * client-internal.h - the state of an mc_client, shared by client.c (the
 * request/answer machinery) and client-recover.c (surviving a daemon
 * restart). Internal header.
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "memconv.h"
#include "memconv.pb-c.h"
#include "ring.h"
#include "spin.h"

#define MC_RECONNECT_DEFAULT_MS 30000

/* An applied decision the daemon has not yet acknowledged as durable. */
struct mc_applied_rec {
        struct mc_applied_rec *next;
        uint64_t decision_id;     /* of the daemon instance that decided it; 0 for a leased one */
        uint64_t lease_seq;       /* a conversion under a lease: its LeasedApplied seq */
        uint64_t request_id;
        uint32_t vcpu;
        bool to_private;
        bool implicit;
        int source;
        size_t n_ranges;
        Memconv__Range ranges[];  /* gpa/size copies; the message headers unused */
};

/* A registered region, remembered to register it again after a restart. */
struct mc_region_copy {
        struct mc_region_info info;  /* guest_memfd/shared_fd are our own dups */
};

struct mc_waiter {
        uint64_t id;
        Memconv__Message__BodyCase expect;
        Memconv__Message *reply; /* owned once done */
        int error;
        bool done;
        pthread_cond_t cond;
        struct mc_waiter *next;
};

/* A range the VMM must not convert under its lease (client-lease.c). */
enum mc_busy_kind {
        MC_BUSY_REQUEST,          /* asked the daemon, no Decision yet (key: local) */
        MC_BUSY_DECISION,         /* applied, not Settled (key: decision id) */
        MC_BUSY_LEASED,           /* applied under the lease, not Settled (key: seq) */
};

struct mc_busy {
        uint64_t start, end;
        uint64_t key;
        enum mc_busy_kind kind;
};

struct mc_lease_state {
        bool wanted;              /* mc_client_set_lease(true) */
        uint64_t id;              /* the lease in force; 0: none */
        uint64_t returning;       /* revoked: return it once @inflight is 0 */
        bool implicit, explicit_;
        uint64_t max_bytes;
        uint64_t conv_rate, conv_burst, bytes_rate, bytes_burst;
        double conv_tokens, bytes_tokens;
        uint64_t tokens_usec;
        unsigned inflight;        /* leased conversions being applied or reported */
        pthread_cond_t idle;      /* signalled when @inflight or c->applying drops to 0 */
        uint64_t next_seq;
        uint64_t next_key;
        struct mc_busy *busy;     /* owned */
        size_t n_busy, cap_busy;
        unsigned since_drain;
        struct mc_lease_stats stats;
        /* Reports held back to go in one LeasedBatch (the lease's report_batch > 1). */
        uint32_t batch_max;       /* of the lease in force; 0 or 1: each report at once */
        uint64_t delay_usec;      /* the oldest held report is sent at most this late */
        Memconv__LeasedApplied *pending;    /* owned, cap_pending */
        Memconv__LeasedApplied **pending_p; /* owned, pointers into @pending, for packing */
        uint64_t *pending_ids;              /* owned: the message id each report answers to */
        size_t n_pending, cap_pending;
        uint64_t pending_since_usec;        /* when the oldest held report was queued */
        /* The flusher thread sends held reports once they are due (started with the first
         * lease that allows batches; it sleeps on @flush_cond, with @lock). */
        pthread_t flusher;
        bool flusher_started, flusher_stop, flusher_idle;
        pthread_cond_t flush_cond;          /* CLOCK_MONOTONIC */
};

/* A request waiting in the ring for its answer (client-ring.c). */
struct mc_ring_client;
struct mc_ring_call {
        struct mc_ring_client *ring;  /* referenced until client_ring_done() */
        unsigned slot;
        uint64_t id;
        bool kick;                    /* memconvd sleeps: send RingKick */
        bool polling;                 /* this thread polls its slot (else: answer on the socket) */
        unsigned generation;          /* of the connection the entry was queued on (for the kick) */
        bool hit;                     /* the answer came while polling */
        uint64_t start;
        struct mc_spin spin, spin_before; /* the window used, and as it was (to merge counters) */
};

struct mc_client {
        int sock;                 /* owned */
        _Atomic uint64_t sock_sent; /* datagrams sent on @sock (orders ring entries after them) */
        pthread_mutex_t lock;     /* protects everything below */
        bool reading;             /* a thread is inside recv */
        unsigned sock_users;      /* threads sending or reading on @sock without the lock */
        pthread_cond_t sock_idle; /* signalled when @sock_users drops to 0 */
        int dead;                 /* 0, or the -errno that killed the connection */
        struct mc_waiter *waiters;
        uint64_t next_id;
        uint64_t stray;           /* replies nobody waited for (e.g. to a bad Applied) */

        mc_apply_fn apply;
        void *apply_userdata;

        bool attached;
        uint64_t vm_id;
        uint8_t token[16];

        /* Recovery (client-recover.c); all under @lock. */
        char *socket_path;               /* owned */
        struct mc_vm_info vm_info;       /* name owned */
        struct mc_region_copy *regions;  /* owned, with dup'ed fds */
        size_t n_regions;
        struct mc_applied_rec *unacked;  /* oldest first */
        struct mc_applied_rec *unacked_tail;
        size_t n_unacked;
        unsigned generation;             /* bumped by every successful reconnect */
        uint64_t recover_sent;           /* datagrams the handshake sent on the new socket */
        bool reconnecting;
        int recover_error;               /* 0, or why reconnecting failed for good */
        pthread_cond_t reconnected;
        unsigned reconnect_ms;           /* 0: do not reconnect */
        uint64_t reconnects;
        /* Decisions to apply, delivered but not yet in @unacked and reported: a reconnect
         * waits for them (lease.idle), or the new daemon would not hear of them. */
        unsigned applying;

        struct mc_lease_state lease;     /* under @lock */

        /* The reader's polling for an answer before it sleeps (spin.h); used by the
         * thread that is reading, set and read under @lock. */
        struct mc_spin spin;

        /* The request ring of this connection (client-ring.c); under @lock. */
        struct mc_ring_client *ring;
        bool ring_wanted;
        bool ring_polling;               /* a thread polls its reply slot */
        int ring_error;
        struct mc_ring_stats ring_stats;
};


/* client.c */
int client_status_errno(const Memconv__Status *s);

/* client.c: the machinery client-lease.c shares */
void client_fail(mc_client *c, int error);
void client_dispatch(mc_client *c, Memconv__Message *m);
int client_simple_call(mc_client *c, Memconv__Message *msg, const int *fds, size_t n_fds);

/**
 * client_sock_send() - send @msg on the connection of generation @gen,
 * counted for the ring's ordering (@c unlocked; the send itself runs
 * without the lock, and a reconnect waits for it before closing the fd)
 * A failure fails that connection (client_fail()) before a reconnect can
 * replace it: the caller must never fail the connection for it (the one in
 * place by then may be a new one).
 * Return: as mc_frame_send(); -ESTALE, nothing sent, if that connection was
 * replaced meanwhile
 */
int client_sock_send(mc_client *c, unsigned gen, const Memconv__Message *msg, const int *fds, size_t n_fds);

/** client_sock_send_locked() - client_sock_send() with @c locked (no reconnect can run) */
int client_sock_send_locked(mc_client *c, const Memconv__Message *msg, const int *fds, size_t n_fds);

/**
 * client_sock_get() - @c's socket, for use without the lock until
 * client_sock_put() (@c locked): a reconnect shuts it down and waits for
 * its users before it closes it, so the fd number is never reused under them
 */
int client_sock_get(mc_client *c);

/** client_sock_put() - done with the fd of client_sock_get() (@c locked) */
void client_sock_put(mc_client *c);

/**
 * client_drain() - handle whatever memconvd sent, without blocking, unless
 * another thread is reading (@c locked; the lock is dropped while reading)
 * Return: messages handled, or negative errno
 */
int client_drain(mc_client *c);

/** client_spin_merge() - fold a waiter's copy of the polling state back into @c (@c locked) */
void client_spin_merge(mc_client *c, const struct mc_spin *before, const struct mc_spin *after);

/* client-ring.c */

/**
 * client_ring_setup() - create a ring and pass it to memconvd (@c unlocked)
 * Return: 0, or the negative errno of the failure or refusal (the client
 * then carries on without a ring)
 */
int client_ring_setup(mc_client *c);

/**
 * client_ring_start() - client_ring_setup() if a ring is wanted and the
 * connection has none (@c unlocked)
 * Return: as client_ring_setup(), 0 when nothing was to be done
 */
int client_ring_start(mc_client *c);

/** client_ring_drop() - stop using the ring (@c locked): the connection ended, or the VMM asked */
void client_ring_drop(mc_client *c);

/**
 * client_ring_request() - queue request @msg (its id set) with a reply slot (@c locked)
 * Return: 1 queued (@call filled: call client_ring_wait() unlocked, then
 * client_ring_done() locked), 0 not (no ring, no free slot, no room, too
 * large: send it on the socket)
 */
int client_ring_request(mc_client *c, const Memconv__Message *msg, struct mc_ring_call *call);

/**
 * client_ring_wait() - poll the reply slot (@c unlocked)
 * Return: 1 with the answer in @ret; 0: it comes on the socket (the
 * window passed, the answer was too large, or the ring died); -EPROTO: the
 * slot held garbage
 */
int client_ring_wait(mc_client *c, struct mc_ring_call *call, Memconv__Message **ret);

/** client_ring_done() - release the slot and the ring reference; read the socket if memconvd wrote to it (@c locked) */
void client_ring_done(mc_client *c, struct mc_ring_call *call, bool answered_in_slot);

/**
 * client_ring_waited() - the answer to a ring request came on the socket:
 * adapt the polling window to the whole wait, as for a socket wait (@c locked)
 */
void client_ring_waited(mc_client *c, const struct mc_ring_call *call);

/**
 * client_ring_send_async() - queue @msg (no answer awaited) (@c locked;
 * unlocked briefly to send a RingKick)
 * Return: true if queued, false if it must go on the socket
 */
bool client_ring_send_async(mc_client *c, const Memconv__Message *msg);

/* client-lease.c */

/** client_lease_init() / _free() - set up and tear down @c->lease (_free() stops the flusher) */
void client_lease_init(mc_client *c);
void client_lease_free(mc_client *c);

/**
 * client_lease_flush() - send the leased conversion reports held back for a
 * batch, before anything else goes out on the socket (@c locked)
 */
void client_lease_flush(mc_client *c);

/**
 * client_lease_try() - convert under the lease, if it covers this request
 * @c: the client, unlocked
 * Return: 1 done (applied and reported), 0 not covered (ask the daemon),
 * or the apply callback's negative errno (nothing changed)
 */
int client_lease_try(mc_client *c, uint32_t vcpu, uint64_t gpa, uint64_t size, bool to_private, bool implicit,
                     int source);

/**
 * client_lease_track_request() - a request for [gpa, gpa+size) is about to
 * go to the daemon: keep the range off the lease until it is settled
 * Return: a key for client_lease_request_done(), 0 when not tracking
 */
uint64_t client_lease_track_request(mc_client *c, uint64_t gpa, uint64_t size);

/**
 * client_lease_request_done() - the request of @key was answered: with
 * @decision_id != 0 it was applied (or failed to apply) and stays busy
 * until Settled; with 0 nothing changed
 */
void client_lease_request_done(mc_client *c, uint64_t key, uint64_t decision_id);

/** client_lease_message() - handle Lease / Settled (@c locked); Return: true if it was one */
bool client_lease_message(mc_client *c, const Memconv__Message *m);

/**
 * client_lease_reset() - a new connection (@c locked): no lease; of the
 * tracked ranges only requests still waiting for their Decision stay (they
 * are asked again of the new daemon, which counts on them being tracked).
 * Waits until no leased conversion and no delivered decision is being
 * applied, so that the handshake re-sends every one of them.
 */
void client_lease_reset(mc_client *c);

/* client-recover.c */

/**
 * client_recover_remember_vm() / _region() / _forget_region() - keep what
 * attach and register-region said, to say it again after a restart
 * Return: 0 or -ENOMEM / -errno of dup()
 */
int client_recover_remember_vm(mc_client *c, const struct mc_vm_info *info);
int client_recover_remember_region(mc_client *c, const struct mc_region_info *ri);
void client_recover_forget_region(mc_client *c, uint32_t slot);

/**
 * client_recover_applied() - remember an applied decision until Committed
 * Return: 0 or -ENOMEM
 */
int client_recover_applied(mc_client *c, const Memconv__Decision *d, const Memconv__Message *req);

/**
 * client_recover_leased() - remember a conversion applied under the lease
 * until Committed (@c locked)
 * Return: 0 or -ENOMEM
 */
int client_recover_leased(mc_client *c, uint64_t seq, uint64_t msg_id, uint32_t vcpu, uint64_t gpa, uint64_t size,
                          bool to_private, bool implicit, int source);

/**
 * client_recover_refused() - the daemon refused the LeasedApplied with
 * message id @msg_id: it did not record it, and re-sending it after a
 * restart (out of order, after later conversions) would falsify the map;
 * forget it (@c locked)
 * Return: true if it was one
 */
bool client_recover_refused(mc_client *c, uint64_t msg_id);

/**
 * client_applying_done() - a delivered decision has been applied (or not),
 * remembered and reported: a reconnect need not wait for it any longer
 */
void client_applying_done(mc_client *c);

/** client_recover_committed() - forget acknowledged decisions and leased conversions (@c locked) */
void client_recover_committed(mc_client *c, const Memconv__Committed *m);

/**
 * client_recover_reconnect() - the connection of generation @gen died:
 * connect again (with backoff, up to c->reconnect_ms), resume the VM with
 * its token, register the regions again, re-send unacknowledged decisions.
 * Concurrent callers wait for the one doing it.
 * Return: 0 when a working connection is in place; negative errno otherwise
 */
int client_recover_reconnect(mc_client *c, unsigned gen);

/** client_recover_free() - drop remembered state (fds closed) */
void client_recover_free(mc_client *c);
