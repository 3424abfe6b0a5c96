/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * stats.h - latency histograms: power-of-two buckets of microseconds.
 *
 * Bucket 0 counts samples below 1 us, bucket i (i >= 1) samples in
 * [2^(i-1), 2^i) us; the last bucket takes everything larger. Recording is
 * a few instructions, so it runs on every request; percentiles are read as
 * the upper bound of the bucket that holds them (at most 2x pessimistic).
 */
#pragma once

#include <stdint.h>

#define HISTOGRAM_BUCKETS 32

struct histogram {
        uint64_t buckets[HISTOGRAM_BUCKETS];
        uint64_t count;
        uint64_t sum_usec;
        uint64_t max_usec;
};

/** histogram_add() - record one sample of @usec microseconds */
static inline void histogram_add(struct histogram *h, uint64_t usec)
{
        unsigned b = usec == 0 ? 0 : 64 - (unsigned) __builtin_clzll(usec);

        if (b >= HISTOGRAM_BUCKETS)
                b = HISTOGRAM_BUCKETS - 1;
        h->buckets[b]++;
        h->count++;
        h->sum_usec += usec;
        if (usec > h->max_usec)
                h->max_usec = usec;
}

/** histogram_merge() - add @src's samples to @dst */
static inline void histogram_merge(struct histogram *dst, const struct histogram *src)
{
        for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++)
                dst->buckets[i] += src->buckets[i];
        dst->count += src->count;
        dst->sum_usec += src->sum_usec;
        if (src->max_usec > dst->max_usec)
                dst->max_usec = src->max_usec;
}

/**
 * histogram_percentile() - upper bound (us) of the bucket holding the
 * @pct-th percentile, capped at the maximum seen; 0 when empty
 */
static inline uint64_t histogram_percentile(const struct histogram *h, unsigned pct)
{
        uint64_t rank, seen = 0;

        if (h->count == 0)
                return 0;
        rank = (h->count * pct + 99) / 100;
        for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++) {
                seen += h->buckets[i];
                if (seen >= rank) {
                        uint64_t upper = i == 0 ? 1 : 1ULL << i;

                        return upper < h->max_usec ? upper : h->max_usec;
                }
        }
        return h->max_usec;
}
