/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * replay.c - build a VM's attribute map from its journal's operations in one
 * sweep; see replay.h for the model.
 *
 * Theory of operation. While operations come in address order without
 * overlapping (each starts at or above the end of the one before), they are
 * applied to the map at once: call what they leave the base. From the first
 * one that does not, operation i (counting from there) is collected with the
 * key i << 1 | to_private, so a later operation has a larger key; the value
 * at address x is then that of the largest key among the collected operations
 * covering x ("last writer wins"), and the base's where none does.
 *
 * replay_map_finish() sorts the collected operations by start (an LSD radix
 * sort: the keys are addresses, and only the digits that vary take a pass;
 * none if they came sorted) and sweeps the address space once. A max-heap by
 * key holds the operations that have started; one that has ended is dropped
 * lazily, when it comes to the top, the only place where it could matter. The
 * top decides the value up to the next start or its own end, whichever comes
 * first. Touching stretches of equal value are merged, and each is compared
 * with a copy of the base, taken before the sweep: the map is changed only
 * where the two differ, once per difference, in address order. So 10^6
 * changes over a map of a few ranges cost one update per range they leave.
 * When the base is much larger than the operations (a snapshot followed by
 * a few changes), copying it would cost more than one set() per stretch, which
 * returns early where the map is so already: that is what is done then.
 * Otherwise the sweep does not change the map at all: it merges the copy of
 * the base with its stretches into the map's whole new content, in address
 * order, and mc_rangemap_build() replaces the map's content with it in O(n)
 * (a set() per range would cost a descent each); if that fails, the sweep
 * runs again and changes the map as described above. Memory: 24 bytes per collected operation, twice while sorting, 16
 * per base range, and the heap (16 bytes per operation at worst, mapped up
 * front so the sweep cannot fail half-way; only what it uses is touched).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "macro.h"
#include "planner.h"
#include "replay.h"

#ifdef MEMCONVD_REPLAY_INCREMENTAL
static const bool replay_incremental = true;   /* test build: the reference replay */
#else
static const bool replay_incremental = false;
#endif

/* One collected operation. */
struct replay_op {
        uint64_t start;
        uint64_t end;
        uint64_t key;            /* order << 1 | to_private: later operations have larger keys */
};

/* An operation in the sweep's heap: what it needs, without going back to the array. */
struct replay_live {
        uint64_t key;
        uint64_t end;
};

/* A private range of the base. */
struct replay_range {
        uint64_t start;
        uint64_t end;
};

/* The radix sort: 11-bit digits, so 6 cover a 64-bit address; most addresses
 * differ in only 3 of them (a 1 TiB guest in 4 KiB pages: bits 12..39). */
#define RADIX_BITS 11U
#define RADIX_BUCKETS (1U << RADIX_BITS)
#define RADIX_DIGITS ((64U + RADIX_BITS - 1) / RADIX_BITS)

/**
 * array_resize() - create or grow an array as an anonymous mapping
 * @p: the array, or NULL to create one
 * @old_size: its size in bytes (0 with NULL)
 * @new_size: the size wanted, > 0
 *
 * A replay's arrays are large (24 bytes per operation: tens of MiB for a long
 * journal) and short-lived, so they are mapped directly, not malloc()ed:
 * glibc raises its mmap threshold (up to 32 MiB) whenever a block it mapped
 * is freed, and what is allocated after the replay (the snapshot a long
 * journal is compacted into, for one) would then come from the heap and stay
 * resident once freed.
 *
 * Return: the array, perhaps moved; NULL on failure, @p untouched
 */
static void *array_resize(void *p, size_t old_size, size_t new_size)
{
        void *n = p ? mremap(p, old_size, new_size, MREMAP_MAYMOVE) :
                      mmap(NULL, new_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

        return n == MAP_FAILED ? NULL : n;
}

/**
 * array_new() - a new array of @n elements of @size bytes as a mapping
 * Return: it, or NULL (also when @n * @size overflows)
 */
static void *array_new(size_t n, size_t size)
{
        return n > 0 && n < SIZE_MAX / size ? array_resize(NULL, 0, n * size) : NULL;
}

/**
 * array_free() - unmap an array from array_resize(); accepts NULL
 * @p: the array
 * @size: its size in bytes
 */
static void array_free(void *p, size_t size)
{
        if (p)
                (void) munmap(p, size);
}

/**
 * op_apply() - apply one operation to @map at once
 * @map: the map, borrowed
 * @op: the operation
 */
static void op_apply(mc_rangemap *map, const struct replay_op *op)
{
        (void) mc_rangemap_set(map, op->start, op->end, (op->key & 1) ? MC_ATTR_PRIVATE : 0);
}

/**
 * replay_map_go_direct() - give up collecting: apply what was collected, in
 * order, and send later operations straight to the map (until it is emptied)
 * @rm: the collector
 */
static void replay_map_go_direct(struct replay_map *rm)
{
        for (size_t i = 0; i < rm->n_ops; i++)
                op_apply(rm->map, &rm->ops[i]);
        array_free(rm->ops, rm->cap_ops * sizeof(*rm->ops));
        rm->ops = NULL;
        rm->n_ops = rm->cap_ops = 0;
        rm->direct = true;
}

void replay_map_init(struct replay_map *rm, mc_rangemap *map)
{
        *rm = (struct replay_map) {
                .map = map,
                .in_order = true,
                .direct = replay_incremental || mc_rangemap_count(map) > 0,
        };
}

void replay_map_set(struct replay_map *rm, uint64_t start, uint64_t end, bool to_private)
{
        struct replay_op op = { start, end, (uint64_t) rm->n_ops << 1 | to_private };

        if (start >= end)
                return;
        if (rm->direct || (rm->in_order && start >= rm->frontier)) {
                /* Nothing applied so far reaches into it: in the map at once. */
                rm->frontier = end;
                op_apply(rm->map, &op);
                return;
        }
        rm->in_order = false;
        if (rm->n_ops == rm->cap_ops) {
                size_t nc = rm->cap_ops ? rm->cap_ops * 2 : 4096;
                struct replay_op *n = nc < SIZE_MAX / sizeof(*n) ?
                        array_resize(rm->ops, rm->cap_ops * sizeof(*n), nc * sizeof(*n)) : NULL;

                if (!n) {
                        replay_map_go_direct(rm);
                        op_apply(rm->map, &op);
                        return;
                }
                rm->ops = n;
                rm->cap_ops = nc;
        }
        if (rm->n_ops > 0 && start < rm->ops[rm->n_ops - 1].start)
                rm->unsorted = true;
        rm->ops[rm->n_ops++] = op;
}

void replay_map_clear(struct replay_map *rm)
{
        mc_rangemap_clear(rm->map);
        rm->n_ops = 0;  /* the array is kept for the operations after the snapshot */
        rm->frontier = 0;
        rm->in_order = true;
        rm->unsorted = false;
        rm->direct = replay_incremental;
}

/**
 * sort_ops() - sort operations by start (LSD radix sort)
 * @a: the operations
 * @tmp: scratch space for @n more
 * @n: how many
 * @hist: scratch space for the digit counts, zeroed
 * Return: @a or @tmp, whichever holds the sorted operations
 */
static struct replay_op *sort_ops(struct replay_op *a, struct replay_op *tmp, size_t n,
                                  size_t hist[RADIX_DIGITS][RADIX_BUCKETS])
{
        for (size_t i = 0; i < n; i++)
                for (unsigned d = 0; d < RADIX_DIGITS; d++)
                        hist[d][(a[i].start >> (RADIX_BITS * d)) & (RADIX_BUCKETS - 1)]++;
        for (unsigned d = 0; d < RADIX_DIGITS; d++) {
                size_t sum = 0, *off = hist[d];
                struct replay_op *t;
                bool all_same = false;

                /* Offsets of the buckets; no pass where every start has the same digit. */
                for (unsigned b = 0; b < RADIX_BUCKETS && !all_same; b++) {
                        size_t c = off[b];

                        all_same = c == n;
                        off[b] = sum;
                        sum += c;
                }
                if (all_same)
                        continue;
                for (size_t i = 0; i < n; i++)
                        tmp[off[(a[i].start >> (RADIX_BITS * d)) & (RADIX_BUCKETS - 1)]++] = a[i];
                t = a;
                a = tmp;
                tmp = t;
        }
        return a;
}

/**
 * heap_push() - add @e to the max-heap by key @h of @n entries (room for one more)
 */
static void heap_push(struct replay_live *h, size_t *n, struct replay_live e)
{
        size_t i;

        for (i = (*n)++; i > 0 && h[(i - 1) / 2].key < e.key; i = (i - 1) / 2)
                h[i] = h[(i - 1) / 2];
        h[i] = e;
}

/**
 * heap_pop() - remove the top (largest key) of the non-empty max-heap @h of @n entries
 */
static void heap_pop(struct replay_live *h, size_t *n)
{
        struct replay_live last = h[--*n];
        size_t i = 0;

        for (;;) {
                size_t c = 2 * i + 1;

                if (c >= *n)
                        break;
                if (c + 1 < *n && h[c + 1].key > h[c].key)
                        c++;
                if (h[c].key <= last.key)
                        break;
                h[i] = h[c];
                i = c;
        }
        if (*n > 0)
                h[i] = last;
}

/* What the sweep compares its stretches with, and the stretch it is building. */
struct replay_diff {
        mc_rangemap *map;
        bool compare;                     /* with the copy below; else set() each stretch */
        const struct replay_range *base;  /* the base's private ranges, in order */
        size_t n_base;
        size_t next;                      /* the first of them that may reach the next stretch */
        uint64_t start, end;              /* the pending stretch, if @pending */
        bool to_private, pending;
        /* Build mode (@out not NULL): the map is not touched; its whole new content,
         * base and stretches merged, goes to @out for mc_rangemap_build(). */
        struct mc_rangemap_range *out;
        size_t n_out, cap_out;
        uint64_t out_pos;                 /* below it, @out holds the final content */
        bool out_overflow;                /* @out was too small (its bound says never): not built */
};

/**
 * out_add() - append a private range to the map's new content
 * @d: the comparison, in build mode
 * @start: first address; ranges come in increasing order
 * @end: one past the last; nothing is added if <= @start
 */
static void out_add(struct replay_diff *d, uint64_t start, uint64_t end)
{
        if (start >= end)
                return;
        if (d->n_out > 0 && d->out[d->n_out - 1].end == start) {
                d->out[d->n_out - 1].end = end;  /* touching: one range, as the map stores it */
                return;
        }
        if (d->n_out == d->cap_out) {
                d->out_overflow = true;
                return;
        }
        d->out[d->n_out++] = (struct mc_rangemap_range) { start, end, MC_ATTR_PRIVATE };
}

/**
 * out_base() - append the base's private ranges below @limit, from @d->out_pos
 * @d: the comparison, in build mode
 * @limit: where the next stretch starts (UINT64_MAX: the rest of the base)
 *
 * A base range that reaches past @limit stays the next one to look at: the
 * part of it after the stretch is added with what follows.
 */
static void out_base(struct replay_diff *d, uint64_t limit)
{
        while (d->next < d->n_base && d->base[d->next].start < limit) {
                const struct replay_range *b = &d->base[d->next];

                out_add(d, b->start > d->out_pos ? b->start : d->out_pos, b->end < limit ? b->end : limit);
                if (b->end > limit)
                        break;
                d->next++;
        }
}

/**
 * diff_emit() - make the pending stretch so in the map, where the base differs
 * @d: the comparison; the stretches come in increasing order
 */
static void diff_emit(struct replay_diff *d)
{
        uint64_t pos = d->start;

        if (!d->pending)
                return;
        d->pending = false;
        if (d->out) {
                /* The base up to the stretch, then the stretch in place of the base. */
                out_base(d, d->start);
                if (d->to_private)
                        out_add(d, d->start, d->end);
                d->out_pos = d->end;
                return;
        }
        if (!d->compare) {
                /* set() returns early where the map is so already. */
                (void) mc_rangemap_set(d->map, d->start, d->end, d->to_private ? MC_ATTR_PRIVATE : 0);
                return;
        }
        while (d->next < d->n_base && d->base[d->next].end <= d->start)
                d->next++;
        for (size_t j = d->next; j < d->n_base && d->base[j].start < d->end; j++) {
                const struct replay_range *b = &d->base[j];

                if (d->to_private) {
                        /* Private: the gaps between the base's ranges. */
                        if (b->start > pos)
                                (void) mc_rangemap_set(d->map, pos, b->start, MC_ATTR_PRIVATE);
                        if (b->end > pos)
                                pos = b->end;
                } else
                        /* Shared: the base's ranges. */
                        (void) mc_rangemap_set(d->map, b->start > d->start ? b->start : d->start,
                                               b->end < d->end ? b->end : d->end, 0);
        }
        if (d->to_private && pos < d->end)
                (void) mc_rangemap_set(d->map, pos, d->end, MC_ATTR_PRIVATE);
}

/**
 * diff_add() - the collected operations leave [@start, @end) private or not
 * @d: the comparison; stretches come in increasing order
 */
static void diff_add(struct replay_diff *d, uint64_t start, uint64_t end, bool to_private)
{
        if (d->pending && d->end == start && d->to_private == to_private) {
                d->end = end;
                return;
        }
        diff_emit(d);
        d->start = start;
        d->end = end;
        d->to_private = to_private;
        d->pending = true;
}

/**
 * sweep() - apply to the map what @n collected operations leave over the base
 * @d: the map and its base
 * @ops: the operations, sorted by start
 * @n: how many
 * @h: room for a heap of @n entries
 *
 * Walks the addresses from the first start. At @x, the operations that start
 * there join the heap and those that have ended leave it when they reach its
 * top. The top, the last operation covering @x, holds until the next start or
 * its own end, whichever comes first (another operation ending before that
 * changes nothing: it was not the last). Where nothing is live, the base
 * stays as it is.
 */
static void sweep(struct replay_diff *d, const struct replay_op *ops, size_t n, struct replay_live *h)
{
        uint64_t x = n > 0 ? ops[0].start : 0;
        size_t i = 0, nh = 0;

        for (;;) {
                uint64_t next;

                for (; i < n && ops[i].start == x; i++)
                        heap_push(h, &nh, (struct replay_live) { ops[i].key, ops[i].end });
                while (nh > 0 && h[0].end <= x)
                        heap_pop(h, &nh);
                if (nh == 0) {
                        /* Nothing covers x: the base holds up to the next start. */
                        if (i == n)
                                break;
                        x = ops[i].start;
                        continue;
                }
                next = h[0].end;
                if (i < n && ops[i].start < next)
                        next = ops[i].start;
                diff_add(d, x, next, h[0].key & 1);
                x = next;
        }
        diff_emit(d);
        if (d->out)
                out_base(d, UINT64_MAX);
}

/* The copy of the base being taken. */
struct base_walk {
        struct replay_range *r;
        size_t n, cap;
};

/**
 * base_collect() - mc_rangemap_walk() callback: append a private range to a
 * struct base_walk
 * Return: 0, or -ENOBUFS if there is no room (the map changed: cannot happen)
 */
static int base_collect(uint64_t start, uint64_t end, uint64_t value, void *userdata)
{
        struct base_walk *w = userdata;

        if (!value)
                return 0;
        if (w->n == w->cap)
                return -ENOBUFS;
        w->r[w->n++] = (struct replay_range) { start, end };
        return 0;
}

void replay_map_finish(struct replay_map *rm)
{
        _cleanup_free_ size_t (*hist)[RADIX_BUCKETS] = NULL;
        struct replay_op *tmp = NULL, *sorted = rm->ops;
        struct replay_range *base = NULL;
        struct replay_live *heap = NULL;
        size_t n = rm->n_ops, n_base = mc_rangemap_count(rm->map);
        struct replay_diff d = { .map = rm->map };
        bool built = false;

        if (rm->direct || n == 0)
                goto done;
        /* A few updates after a large snapshot: a copy of the base would cost more
         * than a set() for each of their stretches (at most 2n + 1) does. */
        d.compare = n_base <= 8 * n;
        if (!d.compare)
                n_base = 0;
        heap = array_new(n, sizeof(*heap));
        base = n_base > 0 ? array_new(n_base, sizeof(*base)) : NULL;
        if (rm->unsorted) {
                tmp = array_new(n, sizeof(*tmp));
                hist = calloc(RADIX_DIGITS, sizeof(*hist));
        }
        if (!heap || (n_base > 0 && !base) || (rm->unsorted && (!tmp || !hist))) {
                replay_map_go_direct(rm);
                goto done;
        }
        if (n_base > 0) {
                /* The base is read before the sweep changes the map: a copy. */
                struct base_walk w = { base, 0, n_base };

                if (mc_rangemap_walk(rm->map, 0, UINT64_MAX, base_collect, &w) < 0 || w.n != n_base) {
                        replay_map_go_direct(rm);
                        goto done;
                }
                d.base = base;
                d.n_base = n_base;
        }
        if (rm->unsorted)
                sorted = sort_ops(rm->ops, tmp, n, hist);
        /* The new content is the base with the stretches in its place: at most
         * n_base + 2 pieces of base and 1 stretch per stretch, of which the sweep
         * makes at most 2n + 1. Built in one go (mc_rangemap_build()), it costs
         * O(ranges), not a set() per difference; should that fail, the sweep is
         * done again the usual way, on the map it left untouched. */
        if (d.compare) {
                size_t cap = n_base + 3 * (2 * n + 1);
                struct mc_rangemap_range *out = array_new(cap, sizeof(*out));

                if (out) {
                        d.out = out;
                        d.cap_out = cap;
                        sweep(&d, sorted, n, heap);
                        built = !d.out_overflow && mc_rangemap_build(rm->map, out, d.n_out) == 0;
                        array_free(out, cap * sizeof(*out));
                        d = (struct replay_diff) { .map = rm->map, .compare = true, .base = base,
                                                   .n_base = n_base };
                }
        }
        if (!built)
                sweep(&d, sorted, n, heap);
done:
        array_free(heap, n * sizeof(*heap));
        array_free(base, n_base * sizeof(*base));
        array_free(tmp, n * sizeof(*tmp));
        array_free(rm->ops, rm->cap_ops * sizeof(*rm->ops));
        rm->ops = NULL;
        rm->n_ops = rm->cap_ops = 0;
        rm->unsorted = false;
        rm->direct = true;
}
