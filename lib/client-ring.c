/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * client-ring.c - libmemconv's side of the request ring (ring.h).
 *
 * After attaching, the client creates a memfd holding a ring, seals it
 * against resizing and passes it in RingSetup. From then on a conversion
 * request whose encoding fits an entry goes into the ring with a reply
 * slot, and its Applied goes into the ring without one. The calling vCPU
 * thread polls its slot for the client's adaptive window (spin.h), with
 * sched_yield() between looks; memconvd's loop polls the ring the same way.
 * While both poll, a conversion costs no system call beyond KVM's. When the
 * window passes, the thread tells the daemon to answer on the socket
 * instead and waits there as before; when memconvd has said it sleeps, the
 * thread wakes it with a RingKick datagram.
 *
 * Anything else (fds, Hello, leases, reconnecting) stays on the socket.
 * The ring belongs to one connection: a new connection sets up a new one,
 * and a thread still polling the old one sees it marked dead. Rings are
 * reference-counted, so the mapping stays until the last such thread is
 * done with it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "frame.h"
#include "macro.h"
#include "client-internal.h"

struct mc_ring_client {
        struct mc_ring_map *map;
        unsigned refs;            /* the connection's, and one per thread using it; under c->lock */
        _Atomic bool dead;        /* the connection is gone: stop polling */
        uint64_t free_slots;      /* bit i: reply slot i is free; under c->lock */
        uint64_t tail;            /* entries queued; under c->lock */
        uint64_t sock_out_seen;   /* the daemon's sock_out when we last read the socket; under c->lock */
};

/* client_ring_unref() - drop a reference (@c locked) */
static void client_ring_unref(struct mc_ring_client *r)
{
        if (r && --r->refs == 0) {
                munmap(r->map, MC_RING_SIZE);
                free(r);
        }
}

/**
 * ring_create() - a new ring in a sealed memfd
 * Return: 0 with the ring (one reference) and the memfd, or negative errno
 */
static int ring_create(struct mc_ring_client **ret, int *ret_fd)
{
        _cleanup_close_ int fd = -EBADF;
        struct mc_ring_client *r;
        struct mc_ring_map *map;

        fd = memfd_create("memconv-ring", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return negative_errno();
        if (ftruncate(fd, MC_RING_SIZE) < 0)
                return negative_errno();
        if (fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
                return negative_errno();
        map = mmap(NULL, MC_RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED)
                return negative_errno();
        r = calloc(1, sizeof(*r));
        if (!r) {
                munmap(map, MC_RING_SIZE);
                return -ENOMEM;
        }
        map->header.magic = MC_RING_MAGIC;
        map->header.version = MC_RING_VERSION;
        r->map = map;
        r->refs = 1;
        r->free_slots = MC_RING_SLOTS == 64 ? UINT64_MAX : (1ULL << MC_RING_SLOTS) - 1;
        *ret = r;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

int client_ring_setup(mc_client *c)
{
        Memconv__Message msg = MEMCONV__MESSAGE__INIT;
        Memconv__RingSetup rs = MEMCONV__RING_SETUP__INIT;
        struct mc_ring_client *r = NULL;
        _cleanup_close_ int fd = -EBADF;
        unsigned gen;
        int e;

        pthread_mutex_lock(&c->lock);
        gen = c->generation;
        pthread_mutex_unlock(&c->lock);
        e = ring_create(&r, &fd);
        if (e >= 0) {
                rs.version = MC_RING_VERSION;
                msg.body_case = MEMCONV__MESSAGE__BODY_RING_SETUP;
                msg.ring_setup = &rs;
                e = client_simple_call(c, &msg, &fd, 1);
        }
        pthread_mutex_lock(&c->lock);
        /* Only for the connection it was set up on: after a reconnect meanwhile, the new
         * connection's ring (or none) stands. */
        if (e >= 0 && (c->generation != gen || c->dead))
                e = -ECONNRESET;
        c->ring_error = e < 0 ? e : 0;
        if (e >= 0) {
                client_ring_drop(c);
                c->ring = TAKE_PTR(r);
        }
        client_ring_unref(r);
        pthread_mutex_unlock(&c->lock);
        return e;
}

int client_ring_start(mc_client *c)
{
        bool start;

        pthread_mutex_lock(&c->lock);
        start = c->ring_wanted && !c->ring && !c->dead;
        pthread_mutex_unlock(&c->lock);
        return start ? client_ring_setup(c) : 0;
}

void client_ring_drop(mc_client *c)
{
        if (c->ring) {
                atomic_store(&c->ring->dead, true);
                client_ring_unref(TAKE_PTR(c->ring));
        }
}

/**
 * ring_queue() - put @msg into the ring (@c locked)
 * @slot: the reply slot to use, or MC_RING_NO_SLOT
 * Return: true if queued; false if it must go on the socket (no room)
 */
static bool ring_queue(mc_client *c, struct mc_ring_client *r, const Memconv__Message *msg, uint32_t slot)
{
        struct mc_ring_entry *e;
        size_t len = protobuf_c_message_get_packed_size(&msg->base);

        if (len > MC_RING_ENTRY_DATA ||
            r->tail - atomic_load_explicit(&r->map->header.head, memory_order_acquire) >= MC_RING_ENTRIES) {
                c->ring_stats.full++;
                return false;
        }
        e = &r->map->entries[r->tail % MC_RING_ENTRIES];
        e->len = (uint32_t) protobuf_c_message_pack(&msg->base, e->data);
        e->slot = slot;
        e->sock_seq = atomic_load(&c->sock_sent);
        r->tail++;
        atomic_store_explicit(&r->map->header.tail, r->tail, memory_order_release);
        return true;
}

/**
 * ring_kick_needed() - after queueing: whether memconvd said it sleeps
 * (a full barrier first, matching the daemon's: it sets the flag, then
 * looks at the ring; we queue, then look at the flag)
 */
static bool ring_kick_needed(struct mc_ring_client *r)
{
        atomic_thread_fence(memory_order_seq_cst);
        return atomic_load_explicit(&r->map->header.daemon_sleeping, memory_order_relaxed) != 0;
}

/**
 * ring_kick() - wake memconvd with a RingKick datagram on the connection of
 * generation @gen, the one the entry was queued on (@c unlocked)
 */
static void ring_kick(mc_client *c, unsigned gen)
{
        Memconv__Message msg = MEMCONV__MESSAGE__INIT;
        Memconv__RingKick k = MEMCONV__RING_KICK__INIT;

        msg.body_case = MEMCONV__MESSAGE__BODY_RING_KICK;
        msg.ring_kick = &k;
        /* Counted before it was sent: unsent, later entries would wait for it forever, so a
         * failure fails the connection (client_sock_send() does; -ESTALE: that connection
         * and its ring are gone already). */
        (void) client_sock_send(c, gen, &msg, NULL, 0);
}

bool client_ring_send_async(mc_client *c, const Memconv__Message *msg)
{
        struct mc_ring_client *r = c->ring;
        bool kick;

        if (!r || !c->ring_wanted || !ring_queue(c, r, msg, MC_RING_NO_SLOT))
                return false;
        c->ring_stats.async++;
        kick = ring_kick_needed(r);
        if (kick) {
                unsigned gen = c->generation;

                c->ring_stats.kicks++;
                pthread_mutex_unlock(&c->lock);
                ring_kick(c, gen);
                pthread_mutex_lock(&c->lock);
        }
        return true;
}

int client_ring_request(mc_client *c, const Memconv__Message *msg, struct mc_ring_call *call)
{
        struct mc_ring_client *r = c->ring;
        bool polling;
        unsigned slot;

        if (!r || !c->ring_wanted || !r->free_slots || msg->id > MC_RING_ID_MAX)
                return 0;
        /*
         * One thread per client polls a slot, as one reads the socket: a yield
         * hands the CPU to any runnable thread, and hundreds of vCPU threads
         * polling would take it from memconvd itself (a load of 64 VMs x 4 vCPUs
         * starved it for seconds). The others have the answer sent on the
         * socket, and wait there as without a ring.
         */
        polling = !c->ring_polling;
        slot = (unsigned) __builtin_ctzll(r->free_slots);
        atomic_store_explicit(&r->map->slots[slot].tag, MC_RING_TAG(msg->id, polling ? MC_RING_WAIT : MC_RING_SOCKET),
                              memory_order_relaxed);
        if (!ring_queue(c, r, msg, slot))
                return 0;
        r->free_slots &= ~(1ULL << slot);
        r->refs++;
        c->ring_stats.requests++;
        c->ring_polling = c->ring_polling || polling;
        *call = (struct mc_ring_call) {
                .ring = r,
                .slot = slot,
                .id = msg->id,
                .polling = polling,
                .generation = c->generation,
                .spin = c->spin,
                .kick = ring_kick_needed(r),
        };
        call->spin_before = call->spin;
        if (call->kick)
                c->ring_stats.kicks++;
        return 1;
}

struct slot_watch {
        struct mc_ring_client *ring;
        _Atomic uint64_t *tag;
        uint64_t waiting;
};

static bool slot_changed(void *userdata)
{
        struct slot_watch *w = userdata;

        return atomic_load_explicit(w->tag, memory_order_acquire) != w->waiting ||
               atomic_load_explicit(&w->ring->dead, memory_order_relaxed);
}

int client_ring_wait(mc_client *c, struct mc_ring_call *call, Memconv__Message **ret)
{
        struct mc_ring_slot *s = &call->ring->map->slots[call->slot];
        struct slot_watch w = { call->ring, &s->tag, MC_RING_TAG(call->id, MC_RING_WAIT) };
        uint8_t buf[MC_RING_SLOT_DATA];
        uint64_t tag;
        uint32_t len;

        if (call->kick)
                ring_kick(c, call->generation);
        call->start = mc_spin_now();
        if (!call->polling)
                return 0;       /* tagged SOCKET from the start */
        call->hit = mc_spin_poll_ready(&call->spin, -1, slot_changed, &w, call->start);
        tag = w.waiting;
        /* Give up the slot, unless the answer came meanwhile: then the swap fails and @tag says so. */
        if (atomic_compare_exchange_strong_explicit(&s->tag, &tag, MC_RING_TAG(call->id, MC_RING_SOCKET),
                                                    memory_order_acq_rel, memory_order_acquire))
                return 0;
        if (tag != MC_RING_TAG(call->id, MC_RING_READY))
                return 0;       /* the daemon said: on the socket (too large for the slot) */
        len = __atomic_load_n(&s->len, __ATOMIC_RELAXED);
        if (len > MC_RING_SLOT_DATA)
                return -EPROTO;
        memcpy(buf, s->data, len);
        *ret = memconv__message__unpack(NULL, len, buf);
        if (!*ret || (*ret)->id != call->id)
                return -EPROTO;
        return 1;
}

void client_ring_done(mc_client *c, struct mc_ring_call *call, bool answered_in_slot)
{
        struct mc_ring_client *r = call->ring;
        uint64_t out;

        if (call->polling)
                c->ring_polling = false;
        if (answered_in_slot)
                c->ring_stats.replies++;
        else {
                /* A miss; the window adapts once the answer came (client_ring_waited()). */
                c->ring_stats.socket_answers++;
                if (call->spin.polled)
                        call->spin.misses++;
                call->spin.polled = false;
        }
        client_spin_merge(c, &call->spin_before, &call->spin);
        r->free_slots |= 1ULL << call->slot;
        /* The daemon sent us datagrams (Committed, Lease, an answer too large for a
         * slot): read them now, or nobody would while everything goes through the ring. */
        if (c->ring == r) {
                out = atomic_load_explicit(&r->map->header.sock_out, memory_order_acquire);
                /* While another thread reads, it may stop before these: look again next time. */
                if (out != r->sock_out_seen && !c->reading) {
                        r->sock_out_seen = out;
                        c->ring_stats.drains++;
                        (void) client_drain(c);
                }
        }
        client_ring_unref(r);
        call->ring = NULL;
}

void client_ring_waited(mc_client *c, const struct mc_ring_call *call)
{
        c->spin.cur_ns = mc_spin_next(c->spin.cur_ns, c->spin.max_ns, mc_spin_now() - call->start);
}

_public_ int mc_client_set_ring(mc_client *c, bool want)
{
        bool start;

        if (!c)
                return -EINVAL;
        pthread_mutex_lock(&c->lock);
        /* Off: the ring stays set up (memconvd keeps one per connection), unused. */
        c->ring_wanted = want;
        start = want && c->attached && !c->ring && !c->dead;
        pthread_mutex_unlock(&c->lock);
        return start ? client_ring_setup(c) : 0;
}

_public_ void mc_client_ring_stats(mc_client *c, struct mc_ring_stats *ret)
{
        if (!ret)
                return;
        *ret = (struct mc_ring_stats) {};
        if (!c)
                return;
        pthread_mutex_lock(&c->lock);
        *ret = c->ring_stats;
        ret->active = c->ring != NULL && c->ring_wanted;
        ret->error = c->ring_error;
        pthread_mutex_unlock(&c->lock);
}
