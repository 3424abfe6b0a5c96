/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * outq.h - answers waiting for a peer's socket to drain.
 *
 * The loop never blocks on a peer: a message that does not fit in the
 * socket buffer is encoded into the queue and flushed on EPOLLOUT. The
 * queue is bounded; a peer that stops reading gets -ENOBUFS and is
 * disconnected by its owner, so it cannot make the daemon buffer without
 * limit.
 */
#pragma once

#include <stddef.h>

#include <protobuf-c/protobuf-c.h>

struct outbuf;

struct outq {
        struct outbuf *head, *tail;
        unsigned len;
        unsigned max;        /* messages */
};

/**
 * outq_send() - send @m on @fd now, or queue it behind earlier messages
 * Return: 0 (sent or queued); -ENOBUFS queue full; -EMSGSIZE too large;
 * other negative errno when the peer is gone.
 */
int outq_send(struct outq *q, int fd, const ProtobufCMessage *m);

/**
 * outq_flush() - send queued messages until the socket is full
 * Return: 0 or negative errno when the peer is gone
 */
int outq_flush(struct outq *q, int fd);

/** outq_pending() - whether anything waits to be sent */
static inline int outq_pending(const struct outq *q)
{
        return q->head != NULL;
}

/** outq_clear() - drop everything queued */
void outq_clear(struct outq *q);
