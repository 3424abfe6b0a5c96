/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * reqring.h - memconvd's side of a VMM's request ring (lib/ring.h,
 * memconv-protocol(7) "REQUEST RING"). One per VMM connection that set one
 * up; the session owns it and feeds what it takes from it to the same
 * dispatch as socket datagrams.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "memconv.pb-c.h"
#include "message.h"

struct reqring;

struct reqring_stats {
        uint64_t entries;         /* messages taken */
        uint64_t replies;         /* answers written to a slot */
        uint64_t socket_replies;  /* answers to ring requests that went on the socket */
        uint64_t kicks;           /* RingKick datagrams */
        uint64_t stalls;          /* waits for a socket datagram sent before an entry */
};

/**
 * reqring_new() - map the ring a VMM passed in RingSetup
 * @fd: the memfd (borrowed; the mapping outlives it)
 * Return: 0, or a negative errno with @err describing the refusal (the fd
 * is not a sealed memfd of the ring's size, not writable, or not a fresh
 * ring of this layout)
 */
int reqring_new(int fd, struct reqring **ret, struct mc_msg_error *err);

/** reqring_free() - unmap; Return: NULL */
struct reqring *reqring_free(struct reqring *r);

/**
 * reqring_pending() - whether an entry waits that can be handled now
 * @received: datagrams the session has received on its socket
 */
bool reqring_pending(const struct reqring *r, uint64_t received);

/**
 * reqring_take() - take the next entry that can be handled now
 * @received: as for reqring_pending(); an entry the client queued after
 * more socket datagrams than that waits for them (a stall)
 * @ret: the decoded message, owned by the caller
 * @err: why the ring is unusable, when it is
 * Return: 1 a message, 0 nothing to take now, or -EPROTO: the VMM broke
 * the ring (a bad index, length, slot or message type; @err says which);
 * the session must end, for nothing in the ring can be trusted after that
 */
int reqring_take(struct reqring *r, uint64_t received, Memconv__Message **ret, struct mc_msg_error *err);

/**
 * reqring_reply() - answer request @id in its reply slot, if it has one
 * @m: the answer
 * Return: true if the client will find it in the slot; false if the caller
 * must send it on the socket (no slot for @id, the answer is too large,
 * or the client stopped waiting in the slot)
 */
bool reqring_reply(struct reqring *r, uint64_t id, const ProtobufCMessage *m);

/** reqring_sleeping() - tell the client whether the daemon is about to block (a full barrier) */
void reqring_sleeping(struct reqring *r, bool sleeping);

/** reqring_sock_out() - publish @n, which changes whenever the daemon sent the client a datagram */
void reqring_sock_out(struct reqring *r, uint64_t n);

/** reqring_kicked() - count a RingKick */
void reqring_kicked(struct reqring *r);

/** reqring_get_stats() - the counters */
void reqring_get_stats(const struct reqring *r, struct reqring_stats *ret);
