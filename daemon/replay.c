/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * replay.c - build a VM's attribute map from its journal's operations in one
 * sweep; see replay.h for the model.
 *
 * Theory of operation. Operation i (in journal order, since the map was
 * empty) sets [start_i, end_i); its key is i << 1 | to_private, so a later
 * operation has a larger key. The value at address x is that of the largest
 * key among the operations covering x ("last writer wins"), shared if none.
 * replay_map_finish() sorts the operations by start (an LSD radix sort: the
 * keys are addresses, and only the digits that vary take a pass) and sweeps
 * the address space once. A max-heap by key holds the operations that have
 * started; one that has ended is dropped lazily, when it comes to the top,
 * the only place where it could matter. The top decides the value up to the
 * next start or its own end, whichever comes first. Private stretches that
 * touch are merged into runs, and each run is inserted once, in address
 * order, into the map, which is empty: that is the invariant that lets
 * operations be collected at all (replay_map_init(), replay_map_clear()).
 * Memory: 24 bytes per operation, twice during the sort, plus the heap.
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
                .direct = replay_incremental || mc_rangemap_count(map) > 0,
        };
}

void replay_map_set(struct replay_map *rm, uint64_t start, uint64_t end, bool to_private)
{
        struct replay_op op = { start, end, (uint64_t) rm->n_ops << 1 | to_private };

        if (start >= end)
                return;
        if (!rm->direct && rm->n_ops == rm->cap_ops) {
                size_t nc = rm->cap_ops ? rm->cap_ops * 2 : 4096;
                struct replay_op *n = nc < SIZE_MAX / sizeof(*n) ?
                        array_resize(rm->ops, rm->cap_ops * sizeof(*n), nc * sizeof(*n)) : NULL;

                if (n) {
                        rm->ops = n;
                        rm->cap_ops = nc;
                } else
                        replay_map_go_direct(rm);
        }
        if (rm->direct) {
                op_apply(rm->map, &op);
                return;
        }
        if (rm->n_ops > 0 && start < rm->ops[rm->n_ops - 1].start)
                rm->unsorted = true;
        rm->ops[rm->n_ops++] = op;
}

void replay_map_clear(struct replay_map *rm)
{
        mc_rangemap_clear(rm->map);
        rm->n_ops = 0;  /* the array is kept for the operations after the snapshot */
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

/* A max-heap by key of the operations that have started. */
struct live_heap {
        struct replay_live *v;   /* owned */
        size_t n, cap;
};

/**
 * heap_push() - add @e to @h
 * Return: 0, or -ENOMEM (@h unchanged)
 */
static int heap_push(struct live_heap *h, struct replay_live e)
{
        size_t i;

        if (h->n == h->cap) {
                size_t nc = h->cap ? h->cap * 2 : 256;
                struct replay_live *v = nc < SIZE_MAX / sizeof(*v) ?
                        array_resize(h->v, h->cap * sizeof(*v), nc * sizeof(*v)) : NULL;

                if (!v)
                        return -ENOMEM;
                h->v = v;
                h->cap = nc;
        }
        for (i = h->n++; i > 0 && h->v[(i - 1) / 2].key < e.key; i = (i - 1) / 2)
                h->v[i] = h->v[(i - 1) / 2];
        h->v[i] = e;
        return 0;
}

/**
 * heap_pop() - remove the top (largest key) of the non-empty @h
 */
static void heap_pop(struct live_heap *h)
{
        struct replay_live last = h->v[--h->n];
        size_t i = 0;

        for (;;) {
                size_t c = 2 * i + 1;

                if (c >= h->n)
                        break;
                if (c + 1 < h->n && h->v[c + 1].key > h->v[c].key)
                        c++;
                if (h->v[c].key <= last.key)
                        break;
                h->v[i] = h->v[c];
                i = c;
        }
        if (h->n > 0)
                h->v[i] = last;
}

/**
 * sweep() - insert into the empty @map what @n operations leave
 * @map: the map, borrowed
 * @ops: the operations, sorted by start
 * @n: how many
 *
 * Walks the addresses from the first start. At @x, the operations that start
 * there join the heap and those that have ended leave it when they reach its
 * top. The top, the last operation covering @x, holds until the next start or
 * its own end, whichever comes first (another operation ending before that
 * changes nothing: it was not the last). Private stretches that touch are
 * merged, and each is inserted once.
 *
 * Return: 0, or -ENOMEM with @map emptied again
 */
static int sweep(mc_rangemap *map, const struct replay_op *ops, size_t n)
{
        struct live_heap h = { 0 };
        uint64_t run_start = 0, run_end = 0, x = n > 0 ? ops[0].start : 0;
        bool run = false;
        size_t i = 0;
        int r = 0;

        for (;;) {
                uint64_t next;

                for (; i < n && ops[i].start == x; i++) {
                        r = heap_push(&h, (struct replay_live) { ops[i].key, ops[i].end });
                        if (r < 0)
                                goto out;
                }
                while (h.n > 0 && h.v[0].end <= x)
                        heap_pop(&h);
                if (h.n == 0) {
                        /* Nothing covers x: shared up to the next start. */
                        if (i == n)
                                break;
                        x = ops[i].start;
                        continue;
                }
                next = h.v[0].end;
                if (i < n && ops[i].start < next)
                        next = ops[i].start;
                if (h.v[0].key & 1) {
                        if (run && run_end == x)
                                run_end = next;
                        else {
                                if (run)
                                        (void) mc_rangemap_set(map, run_start, run_end, MC_ATTR_PRIVATE);
                                run_start = x;
                                run_end = next;
                                run = true;
                        }
                }
                x = next;
        }
        if (run)
                (void) mc_rangemap_set(map, run_start, run_end, MC_ATTR_PRIVATE);
out:
        /* A push that failed after runs were inserted: empty the map again. */
        if (r < 0)
                mc_rangemap_clear(map);
        array_free(h.v, h.cap * sizeof(*h.v));
        return r;
}

void replay_map_finish(struct replay_map *rm)
{
        _cleanup_free_ size_t (*hist)[RADIX_BUCKETS] = NULL;
        struct replay_op *tmp = NULL, *sorted = rm->ops;
        size_t n = rm->n_ops;

        if (rm->direct || n == 0)
                goto done;
        /* A snapshot's ranges, for one, come in order already. */
        if (rm->unsorted) {
                tmp = array_resize(NULL, 0, n * sizeof(*tmp));
                hist = calloc(RADIX_DIGITS, sizeof(*hist));
                if (!tmp || !hist) {
                        array_free(TAKE_PTR(tmp), n * sizeof(*tmp));
                        replay_map_go_direct(rm);
                        goto done;
                }
                sorted = sort_ops(rm->ops, tmp, n, hist);
        }
        if (sweep(rm->map, sorted, n) < 0) {
                /* No memory for the sweep (the map is empty again): one by one, in
                 * journal order, which the keys keep. */
                struct replay_op *in_order = rm->ops;

                if (rm->unsorted) {
                        in_order = sorted == tmp ? rm->ops : tmp;
                        for (size_t i = 0; i < n; i++)
                                in_order[sorted[i].key >> 1] = sorted[i];
                }
                for (size_t i = 0; i < n; i++)
                        op_apply(rm->map, &in_order[i]);
        }
        array_free(tmp, n * sizeof(*tmp));
done:
        array_free(rm->ops, rm->cap_ops * sizeof(*rm->ops));
        rm->ops = NULL;
        rm->n_ops = rm->cap_ops = 0;
        rm->unsorted = false;
        rm->direct = true;
}
