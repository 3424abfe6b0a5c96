/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ring.h - the request ring: a shared-memory side channel beside the VMM
 * socket for the messages of the conversion path (memconv-protocol(7),
 * "REQUEST RING").
 *
 * Why. An asked conversion costs the vCPU a request, a Decision and an
 * Applied. Over the socket each is a sendmsg() and a recvmsg() (with
 * epoll on the daemon's side), and on these machines the system calls
 * cost more than the daemon's work on the request. Through shared memory,
 * with both sides polling, the same exchange is a few cache-line
 * transfers; the socket is used only to wake a side that sleeps.
 *
 * Layout (all little-endian, the host's; one sealed memfd of
 * MC_RING_SIZE bytes, created by the client and passed in RingSetup):
 *
 *   struct mc_ring_header      the indices and flags, a cache line each
 *   struct mc_ring_entry[64]   client -> daemon queue (requests, Applied)
 *   struct mc_ring_slot[64]    daemon -> client: one answer per slot
 *
 * The queue: the client writes entry @tail % 64, then advances @tail
 * (release); the daemon copies entry @head % 64 out, then advances @head.
 * An entry holds one encoded memconv.Message of at most
 * MC_RING_ENTRY_DATA bytes, the reply slot its answer should go to
 * (MC_RING_NO_SLOT: none is awaited, or answer on the socket), and
 * @sock_seq: how many datagrams the client had sent on the socket before
 * it. The daemon handles an entry only once it has received that many,
 * so messages keep the order the client sent them in, whichever way they
 * went.
 *
 * A reply slot holds a tag: (request id << 2) | state. The client sets
 * (id, WAIT) before it queues the request. The daemon writes the answer
 * into the slot, then compare-and-swaps (id, WAIT) to (id, READY). A
 * client that stops waiting swaps (id, WAIT) to (id, SOCKET) first, and
 * the daemon, failing its swap, sends the answer on the socket. Either
 * way exactly one side wins, no side ever waits for the other, and a slot
 * reused for a newer request can never take an older answer: its tag
 * differs.
 *
 * @daemon_sleeping: set by the daemon before it blocks (then it looks at
 * the queue once more); a client that queued something and then sees it
 * set sends a RingKick datagram to wake it.
 *
 * @sock_out: a number the daemon changes whenever it has sent (or
 * flushed) datagrams on the socket. A client that sees it change reads the
 * socket, so answers too large for a slot, Committed and Lease messages
 * are not left unread while everything else goes through the ring.
 *
 * The daemon trusts nothing in the ring: it reads each entry's fields
 * once, copies the data out before decoding, and checks every index.
 */
#pragma once

#include <stdalign.h>
#include <stdatomic.h>
#include <stdint.h>

#define MC_RING_MAGIC 0x474e4952434d454dULL /* "MEMCRING" */
#define MC_RING_VERSION 1U
#define MC_RING_ENTRIES 64U
#define MC_RING_ENTRY_SIZE 256U
#define MC_RING_SLOTS 64U
#define MC_RING_SLOT_SIZE 512U
#define MC_RING_NO_SLOT UINT32_MAX
#define MC_RING_CACHELINE 64

enum mc_ring_state {
        MC_RING_FREE = 0,       /* no request (or the client took its answer) */
        MC_RING_WAIT = 1,       /* the client waits for the answer in the slot */
        MC_RING_SOCKET = 2,     /* the client stopped waiting: answer on the socket */
        MC_RING_READY = 3,      /* the answer is in the slot */
};

#define MC_RING_TAG(id, state) (((uint64_t) (id) << 2) | (uint64_t) (state))
#define MC_RING_TAG_STATE(tag) ((enum mc_ring_state) ((tag) & 3))
#define MC_RING_ID_MAX (UINT64_MAX >> 2)

struct mc_ring_header {
        uint64_t magic;                 /* MC_RING_MAGIC, written by the client */
        uint32_t version;               /* MC_RING_VERSION */
        uint32_t reserved;
        alignas(MC_RING_CACHELINE) _Atomic uint64_t tail;   /* client: entries queued */
        alignas(MC_RING_CACHELINE) _Atomic uint64_t head;   /* daemon: entries taken */
        alignas(MC_RING_CACHELINE) _Atomic uint32_t daemon_sleeping;
        alignas(MC_RING_CACHELINE) _Atomic uint64_t sock_out; /* daemon: changes when it sent datagrams */
        alignas(4096) uint8_t end[];
};

struct mc_ring_entry {
        uint32_t len;                   /* of @data */
        uint32_t slot;                  /* reply slot, or MC_RING_NO_SLOT */
        uint64_t sock_seq;              /* socket datagrams the client sent before this */
        uint8_t data[MC_RING_ENTRY_SIZE - 16];
};

struct mc_ring_slot {
        _Atomic uint64_t tag;
        uint32_t len;
        uint32_t reserved;
        uint8_t data[MC_RING_SLOT_SIZE - 16];
};

struct mc_ring_map {
        struct mc_ring_header header;
        struct mc_ring_entry entries[MC_RING_ENTRIES];
        struct mc_ring_slot slots[MC_RING_SLOTS];
};

#define MC_RING_ENTRY_DATA (MC_RING_ENTRY_SIZE - 16)
#define MC_RING_SLOT_DATA (MC_RING_SLOT_SIZE - 16)
#define MC_RING_SIZE sizeof(struct mc_ring_map)

_Static_assert(sizeof(struct mc_ring_header) == 4096, "ring header is one page");
_Static_assert(sizeof(struct mc_ring_entry) == MC_RING_ENTRY_SIZE, "ring entry size");
_Static_assert(sizeof(struct mc_ring_slot) == MC_RING_SLOT_SIZE, "ring slot size");
_Static_assert(MC_RING_SIZE == 4096 + 64 * 256 + 64 * 512, "ring size");
_Static_assert((MC_RING_SLOTS & (MC_RING_SLOTS - 1)) == 0 && MC_RING_SLOTS <= 64, "slot mask fits a uint64_t");
