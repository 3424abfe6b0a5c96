/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * outq.c - bounded queue of encoded messages for a non-blocking socket;
 * see outq.h.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "frame.h"
#include "macro.h"
#include "outq.h"

struct outbuf {
        struct outbuf *next;
        size_t len;
        uint8_t data[];
};

int outq_flush(struct outq *q, int fd)
{
        while (q->head) {
                struct outbuf *b = q->head;
                ssize_t n = send(fd, b->data, b->len, MSG_DONTWAIT | MSG_NOSIGNAL);

                if (n < 0) {
                        if (errno == EAGAIN || errno == EINTR)
                                return 0;
                        return negative_errno();
                }
                q->head = b->next;
                if (!q->head)
                        q->tail = NULL;
                q->len--;
                free(b);
        }
        return 0;
}

int outq_send(struct outq *q, int fd, const ProtobufCMessage *m)
{
        struct outbuf *b;
        size_t len = protobuf_c_message_get_packed_size(m);

        if (len > MC_FRAME_MAX)
                return -EMSGSIZE;
        if (!q->head) {
                int r = mc_frame_send_pb(fd, m, NULL, 0);

                if (r != -EAGAIN)
                        return r;
        }
        if (q->len >= q->max)
                return -ENOBUFS;
        b = malloc(sizeof(*b) + len);
        if (!b)
                return -ENOMEM;
        b->next = NULL;
        b->len = protobuf_c_message_pack(m, b->data);
        if (q->tail)
                q->tail->next = b;
        else
                q->head = b;
        q->tail = b;
        q->len++;
        return 0;
}

void outq_clear(struct outq *q)
{
        while (q->head) {
                struct outbuf *b = q->head;

                q->head = b->next;
                free(b);
        }
        q->tail = NULL;
        q->len = 0;
}
