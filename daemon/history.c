/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * history.c - per-VM ring of recent attribute changes; see history.h.
 */
#include <errno.h>
#include <stdlib.h>

#include "history.h"
#include "memconv.pb-c.h"

int history_init(struct history *h, size_t capacity)
{
        *h = (struct history) { .capacity = capacity };
        if (capacity == 0)
                return 0;
        h->ring = calloc(capacity, sizeof(*h->ring));
        return h->ring ? 0 : -ENOMEM;
}

void history_done(struct history *h)
{
        free(h->ring);
        *h = (struct history) { 0 };
}

const struct history_record *history_append(struct history *h, const struct history_record *rec)
{
        struct history_record *slot;

        h->last_seq++;
        if (h->capacity == 0)
                return NULL;
        slot = &h->ring[h->head];
        *slot = *rec;
        slot->seq = h->last_seq;
        h->head = (h->head + 1) % h->capacity;
        if (h->count < h->capacity)
                h->count++;
        return slot;
}

const struct history_record *history_at(const struct history *h, size_t i)
{
        size_t oldest = (h->head + h->capacity - h->count) % h->capacity;

        return &h->ring[(oldest + i) % h->capacity];
}

long history_find(const struct history *h, uint64_t since_seq)
{
        uint64_t first;

        if (h->count == 0 || since_seq >= h->last_seq)
                return -1;
        first = h->last_seq - h->count + 1;  /* seqs in the ring are contiguous */
        if (since_seq < first)
                return 0;
        return (long) (since_seq - first + 1);
}

void history_record_to_pb(Memconv__HistoryRecord *r, const struct history_record *h)
{
        memconv__history_record__init(r);
        r->seq = h->seq;
        r->realtime_usec = h->realtime_usec;
        r->gpa = h->gpa;
        r->size = h->size;
        r->from = h->to_private ? MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED : MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE;
        r->to = h->to_private ? MEMCONV__ATTRIBUTE__ATTRIBUTE_PRIVATE : MEMCONV__ATTRIBUTE__ATTRIBUTE_SHARED;
        r->implicit = h->implicit;
        r->source = (Memconv__ConvertSource) h->source;
        r->vcpu = h->vcpu;
        r->request_id = h->request_id;
        r->decision_id = h->decision_id;
        r->result = (Memconv__ChangeResult) h->result;
        r->decision_latency_usec = h->decision_latency_usec;
}
