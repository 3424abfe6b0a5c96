/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * session.h - one VMM connection.
 *
 * A session owns its connected socket and at most one attached VM (the VM
 * itself is owned by the registry). Every datagram is received, decoded
 * under the frame size cap and validated by mc_message_validate() before a
 * handler from the dispatch table sees it. Answers that do not fit in the
 * socket buffer are queued (bounded) and flushed on EPOLLOUT.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "daemon.h"
#include "message.h"
#include "planner.h"

#include "memconv.pb-c.h"

struct session;

/** session_accept() - the listening socket is readable: accept VMMs */
int session_on_listen(sd_event_source *s, int fd, uint32_t revents, void *userdata);

/** session_free() - close the connection, detach its VM; accepts NULL */
void session_free(struct session *s);

/**
 * session_send_decision() - answer a conversion request
 * @id: the request's id
 * @err: refusal / explanation, or NULL for success
 * @plan: ranges to apply (action APPLY), or NULL
 * Return: 0, or negative errno when the session cannot take it (it is then
 * being torn down)
 */
/** session_send_committed() - tell the VMM these decisions are durable */
int session_send_committed(struct session *s, const uint64_t *ids, size_t n);

/** session_send_lease() - send a Lease (a grant or a revocation, id 0) */
int session_send_lease(struct session *s, const Memconv__Lease *l);

/** session_send_settled() - tell the VMM these conversions are finished (id 0) */
int session_send_settled(struct session *s, const uint64_t *decisions, size_t n_decisions, const uint64_t *seqs,
                         size_t n_seqs);

/** session_vm_detached() - detach the session's VM now (its Detach is durable) */
void session_vm_detached(struct session *s);

/** session_send_error() - answer request @id with a Reply carrying @e */
int session_send_error(struct session *s, uint64_t id, const struct mc_msg_error *e);

/** session_send_attach_reply() - answer Attach @id: attached, with the VM's id and token */
int session_send_attach_reply(struct session *s, uint64_t id);

/** session_send_ok() - answer request @id with Reply OK */
int session_send_ok(struct session *s, uint64_t id);

int session_send_decision(struct session *s, uint64_t id, const struct mc_msg_error *err, int action,
                          bool to_private, const struct mc_plan *plan, uint64_t decision_id);

struct daemon;
struct reqring_stats;

/** sessions_ring_pending() - whether any VMM's request ring holds an entry that can be handled now */
bool sessions_ring_pending(struct daemon *d);

/** sessions_ring_pending_cb() - sessions_ring_pending() for mc_spin_poll_ready() (@userdata: the daemon) */
bool sessions_ring_pending_cb(void *userdata);

/**
 * sessions_ring_sleeping() - tell every ring's VMM that the loop is about
 * to block (true: a VMM that queues an entry then sends RingKick) or is
 * awake again (false)
 */
void sessions_ring_sleeping(struct daemon *d, bool sleeping);

/**
 * sessions_ring_run() - handle the entries of every request ring, each
 * session up to its receive budget; a session whose ring is broken ends
 */
void sessions_ring_run(struct daemon *d);

/** session_ring_stats() - the counters of @s's ring; Return: false if it has none */
bool session_ring_stats(const struct session *s, struct reqring_stats *ret);
