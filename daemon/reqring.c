/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * reqring.c - memconvd's side of a VMM's request ring; see reqring.h and
 * lib/ring.h for the layout and the rules.
 *
 * The VMM can write the shared memory at any time, so every field is read
 * once (a relaxed atomic load, never re-read after it was checked), entry
 * data is copied out before it is decoded, and indices are checked before
 * use. The memfd is sealed against shrinking, so touching the mapping can
 * never fault. What the VMM can do to the ring harms only its own
 * connection: a bad entry ends it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "macro.h"
#include "reqring.h"
#include "ring.h"

#define LOAD_ONCE(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

struct reqring {
        struct mc_ring_map *map;            /* MAP_SHARED, MC_RING_SIZE */
        uint64_t head;                      /* ours; the shared copy is only written */
        uint64_t slot_id[MC_RING_SLOTS];    /* the request awaiting its answer in each slot; 0: none */
        unsigned n_waiting;                 /* non-zero entries of @slot_id */
        bool stalled;                       /* the next entry waits for socket datagrams... */
        uint64_t stalled_at;                /* ...more than this many */
        struct reqring_stats stats;
};

int reqring_new(int fd, struct reqring **ret, struct mc_msg_error *err)
{
        struct mc_ring_map *map;
        struct reqring *r;
        struct stat st;
        int seals, fl;

        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
                return mc_error_set(err, MEMCONV__CODE__CODE_BAD_FD, -EBADF,
                                    "ring-setup: the fd is not a memfd");
        if ((uint64_t) st.st_size != MC_RING_SIZE)
                return mc_error_set(err, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "ring-setup: the memfd has %" PRIu64 " bytes, a ring has %zu",
                                    (uint64_t) st.st_size, (size_t) MC_RING_SIZE);
        seals = fcntl(fd, F_GET_SEALS);
        if (seals < 0 || (seals & (F_SEAL_SHRINK | F_SEAL_GROW)) != (F_SEAL_SHRINK | F_SEAL_GROW))
                return mc_error_set(err, MEMCONV__CODE__CODE_BAD_FD, -EBADF,
                                    "ring-setup: the memfd must be sealed with F_SEAL_SHRINK and F_SEAL_GROW");
        fl = fcntl(fd, F_GETFL);
        if (fl < 0 || (fl & O_ACCMODE) != O_RDWR || (seals & (F_SEAL_WRITE | F_SEAL_FUTURE_WRITE)))
                return mc_error_set(err, MEMCONV__CODE__CODE_BAD_FD, -EBADF,
                                    "ring-setup: the memfd must be open for reading and writing, and not write-sealed");
        map = mmap(NULL, MC_RING_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED)
                return mc_error_set(err, MEMCONV__CODE__CODE_BAD_FD, negative_errno(),
                                    "ring-setup: cannot map the memfd: %m");
        if (LOAD_ONCE(map->header.magic) != MC_RING_MAGIC || LOAD_ONCE(map->header.version) != MC_RING_VERSION ||
            atomic_load(&map->header.tail) != 0 || atomic_load(&map->header.head) != 0) {
                munmap(map, MC_RING_SIZE);
                return mc_error_set(err, MEMCONV__CODE__CODE_INVALID_ARGUMENT, -EINVAL,
                                    "ring-setup: the memfd does not hold a new, empty ring of layout version %u",
                                    MC_RING_VERSION);
        }
        r = calloc(1, sizeof(*r));
        if (!r) {
                munmap(map, MC_RING_SIZE);
                return mc_error_set(err, MEMCONV__CODE__CODE_RESOURCE_LIMIT, -ENOMEM, "ring-setup: out of memory");
        }
        r->map = map;
        *ret = r;
        return 0;
}

struct reqring *reqring_free(struct reqring *r)
{
        if (r) {
                munmap(r->map, MC_RING_SIZE);
                free(r);
        }
        return NULL;
}

bool reqring_pending(const struct reqring *r, uint64_t received)
{
        if (r->stalled && r->stalled_at == received)
                return false;
        return atomic_load_explicit(&r->map->header.tail, memory_order_acquire) != r->head;
}

int reqring_take(struct reqring *r, uint64_t received, Memconv__Message **ret, struct mc_msg_error *err)
{
        uint8_t buf[MC_RING_ENTRY_DATA];
        struct mc_ring_entry *e;
        Memconv__Message *m;
        uint64_t tail, seq;
        uint32_t len, slot;

        tail = atomic_load_explicit(&r->map->header.tail, memory_order_acquire);
        if (tail == r->head)
                return 0;
        if (tail - r->head > MC_RING_ENTRIES)
                return mc_error_set(err, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                                    "request ring: tail %" PRIu64 " is not within %u entries after head %" PRIu64,
                                    tail, MC_RING_ENTRIES, r->head);
        e = &r->map->entries[r->head % MC_RING_ENTRIES];
        seq = LOAD_ONCE(e->sock_seq);
        if (seq > received) {
                /* Sent after socket datagrams not read yet: they go first. */
                if (!r->stalled || r->stalled_at != received)
                        r->stats.stalls++;
                r->stalled = true;
                r->stalled_at = received;
                return 0;
        }
        r->stalled = false;
        len = LOAD_ONCE(e->len);
        slot = LOAD_ONCE(e->slot);
        if (len > MC_RING_ENTRY_DATA)
                return mc_error_set(err, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                                    "request ring: entry %" PRIu64 " claims %" PRIu32 " bytes (at most %u)",
                                    r->head, len, MC_RING_ENTRY_DATA);
        if (slot != MC_RING_NO_SLOT && slot >= MC_RING_SLOTS)
                return mc_error_set(err, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                                    "request ring: entry %" PRIu64 " names reply slot %" PRIu32 " (there are %u)",
                                    r->head, slot, MC_RING_SLOTS);
        memcpy(buf, e->data, len);
        r->head++;
        atomic_store_explicit(&r->map->header.head, r->head, memory_order_release);

        m = memconv__message__unpack(NULL, len, buf);
        if (!m)
                return mc_error_set(err, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                                    "request ring: entry %" PRIu64 " is not a memconv.Message", r->head - 1);
        if (!(m->body_case == MEMCONV__MESSAGE__BODY_MEMORY_FAULT || m->body_case == MEMCONV__MESSAGE__BODY_CONVERT ||
              (m->body_case == MEMCONV__MESSAGE__BODY_APPLIED && slot == MC_RING_NO_SLOT))) {
                mc_error_set(err, MEMCONV__CODE__CODE_PROTOCOL_ERROR, -EPROTO,
                             "request ring: %s may not be sent on the ring%s", mc_message_type_name(m->body_case),
                             m->body_case == MEMCONV__MESSAGE__BODY_APPLIED ? " with a reply slot" : "");
                memconv__message__free_unpacked(m, NULL);
                return -EPROTO;
        }
        if (slot != MC_RING_NO_SLOT && m->id != 0 && m->id <= MC_RING_ID_MAX) {
                /* A slot still named by an older request: its client stopped waiting there. */
                if (!r->slot_id[slot])
                        r->n_waiting++;
                r->slot_id[slot] = m->id;
        }
        r->stats.entries++;
        *ret = m;
        return 1;
}

bool reqring_reply(struct reqring *r, uint64_t id, const ProtobufCMessage *m)
{
        struct mc_ring_slot *s;
        uint64_t expect;
        size_t len;
        unsigned k;

        if (r->n_waiting == 0 || id == 0)
                return false;
        for (k = 0; k < MC_RING_SLOTS; k++)
                if (r->slot_id[k] == id)
                        break;
        if (k == MC_RING_SLOTS)
                return false;
        r->slot_id[k] = 0;
        r->n_waiting--;
        s = &r->map->slots[k];
        expect = MC_RING_TAG(id, MC_RING_WAIT);
        if (atomic_load_explicit(&s->tag, memory_order_relaxed) != expect) {
                /* The client stopped waiting (or reused the slot): do not pack in vain. */
                r->stats.socket_replies++;
                return false;
        }
        len = protobuf_c_message_get_packed_size(m);
        if (len > MC_RING_SLOT_DATA) {
                /* Tell the client at once rather than let it wait out its window. */
                (void) atomic_compare_exchange_strong(&s->tag, &expect, MC_RING_TAG(id, MC_RING_SOCKET));
                r->stats.socket_replies++;
                return false;
        }
        /* The client reads the data only after it sees READY with its own id. */
        s->len = (uint32_t) protobuf_c_message_pack(m, s->data);
        if (!atomic_compare_exchange_strong_explicit(&s->tag, &expect, MC_RING_TAG(id, MC_RING_READY),
                                                     memory_order_acq_rel, memory_order_relaxed)) {
                r->stats.socket_replies++;
                return false;
        }
        r->stats.replies++;
        return true;
}

void reqring_sleeping(struct reqring *r, bool sleeping)
{
        atomic_store(&r->map->header.daemon_sleeping, sleeping ? 1 : 0);
}

void reqring_sock_out(struct reqring *r, uint64_t n)
{
        atomic_store_explicit(&r->map->header.sock_out, n, memory_order_release);
}

void reqring_kicked(struct reqring *r)
{
        r->stats.kicks++;
}

void reqring_get_stats(const struct reqring *r, struct reqring_stats *ret)
{
        *ret = r->stats;
}
