/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * history.h - the recent attribute changes of one VM, in memory.
 *
 * A ring of the last HISTORY_DEFAULT_CAPACITY records (committed changes and
 * rolled-back attempts, one record per range). Every record gets the next
 * sequence number of its VM, so a reader asking for "seq > N" sees each
 * record exactly once and can tell when older ones fell out of the ring.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HISTORY_DEFAULT_CAPACITY 16384

struct history_record {
        uint64_t seq;
        uint64_t realtime_usec;
        uint64_t gpa;
        uint64_t size;
        uint64_t request_id;
        uint64_t decision_id;
        uint32_t vcpu;
        uint32_t decision_latency_usec;
        uint8_t to_private;
        uint8_t implicit;
        uint8_t source;           /* Memconv__ConvertSource */
        uint8_t result;           /* Memconv__ChangeResult */
};

struct history {
        struct history_record *ring;  /* owned, capacity entries */
        size_t capacity;
        size_t count;                 /* valid entries, <= capacity */
        size_t head;                  /* index of the next write */
        uint64_t last_seq;
};

/** history_init() - an empty history of @capacity records; Return: 0 or -ENOMEM */
int history_init(struct history *h, size_t capacity);

/** history_done() - free the ring; accepts a zeroed history */
void history_done(struct history *h);

/**
 * history_append() - add @rec, assigning it the next seq
 * Return: the record as stored (valid until the next append)
 */
const struct history_record *history_append(struct history *h, const struct history_record *rec);

/**
 * history_find() - the oldest stored record with seq > @since_seq
 * Return: its index for history_at(), or -1 when there is none
 */
long history_find(const struct history *h, uint64_t since_seq);

/**
 * history_record_to_pb() - the wire/journal form of @h (no pointers into
 * @h: the message owns nothing)
 */
struct Memconv__HistoryRecord;
void history_record_to_pb(struct Memconv__HistoryRecord *r, const struct history_record *h);

/** history_at() - the @i-th oldest stored record (0 = oldest) */
const struct history_record *history_at(const struct history *h, size_t i);
