/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-rangemap.c - the attribute range map (lib/rangemap.h) against a
 * per-page bitmap, at 10^3 .. 10^6 fragmented ranges.
 *
 * Model: a 1 TiB guest (2^28 pages of 4 KiB) whose private memory is n
 * ranges spread over the whole address space: range i starts at a random
 * page inside slot i of n equal slots and is 1..(slot/2) pages long, so
 * ranges never touch and the map stores exactly n ranges. For each n:
 *
 *  - build: the n ranges inserted in random order (ns per insert);
 *  - lookup: mc_rangemap_get() at random page addresses (ns per lookup);
 *    at 10^6 ranges every tree level is a cache and TLB miss, so also
 *  - lookup_hot: the same 64 random addresses over and over, whose tree
 *    paths stay cached: the algorithmic O(log n) curve without the memory
 *    hierarchy;
 *  - update: a random stored range is removed and set again, which keeps
 *    the count at n (ns per update, two per step);
 *  - bytes per range: mc_rangemap_memory() / n, and the heap growth as
 *    malloc reports it (mallinfo2: allocator overhead included).
 *
 * The bitmap baseline is what a VMM keeps per page: 2^28 bits = 32 MiB for
 * this guest whatever n is; lookup is one bit test, update sets or clears
 * the range's bits word by word. Its bytes per range are 32 MiB / n.
 *
 * Output: metric lines (bench-util.h), one set per n.
 * Usage: bench-rangemap [MAX_N] (default 1000000)
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "rangemap.h"

#include "bench-util.h"

#define GUEST_PAGES (1ull << 28) /* 1 TiB of 4 KiB pages */
#define PAGE_SHIFT 12
#define LOOKUPS 1000000u
#define UPDATE_STEPS 200000u
#define REPEATS 3
#define HOT_SET 64u

struct frag {
        uint64_t start, end; /* bytes */
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
        return bench_rng(&rng_state);
}

/** bitmap_set() - set pages [first, end) of @bm to @v */
static void bitmap_set(uint64_t *bm, uint64_t first, uint64_t end, int v)
{
        for (uint64_t p = first; p < end;) {
                if (!(p & 63) && p + 64 <= end) {
                        bm[p >> 6] = v ? ~0ull : 0;
                        p += 64;
                        continue;
                }
                if (v)
                        bm[p >> 6] |= 1ull << (p & 63);
                else
                        bm[p >> 6] &= ~(1ull << (p & 63));
                p++;
        }
}

static void print_metric(const char *name, const char *unit, uint64_t *per_repeat, size_t n_rep)
{
        uint64_t v[REPEATS];
        size_t i;

        for (i = 0; i < n_rep; i++)
                v[i] = per_repeat[i];
        printf("{\"name\": \"%s\", \"unit\": \"%s\", \"median\": %.3f, \"p99\": %.3f, \"samples\": %zu}\n", name,
               unit, (double) bench_quantile(v, n_rep, 0.5) / 1000.0, (double) bench_quantile(v, n_rep, 0.99) / 1000.0,
               n_rep);
}

/**
 * bench_one() - every measurement at @n ranges
 * Return: 0 or 1
 */
static int bench_one(size_t n)
{
        uint64_t slot = GUEST_PAGES / n;
        struct frag *f = malloc(n * sizeof(*f));
        size_t *order = malloc(n * sizeof(*order));
        uint64_t *addrs = malloc(LOOKUPS * sizeof(*addrs));
        uint64_t *bm = calloc(GUEST_PAGES / 64, sizeof(uint64_t));
        uint64_t build[REPEATS], look[REPEATS], hot[REPEATS], upd[REPEATS], blook[REPEATS], bupd[REPEATS];
        size_t mem_api = 0, mem_heap = 0;
        volatile uint64_t sink = 0;
        char name[96];

        if (!f || !order || !addrs || !bm)
                return 1;
        for (size_t i = 0; i < n; i++) {
                uint64_t len = 1 + rng() % (slot / 2 > 1 ? slot / 2 : 1);
                uint64_t off = rng() % (slot - len); /* leaves a gap before the next slot */

                f[i].start = (i * slot + off) << PAGE_SHIFT;
                f[i].end = f[i].start + (len << PAGE_SHIFT);
                order[i] = i;
        }
        for (size_t i = 0; i < LOOKUPS; i++)
                addrs[i] = (rng() % GUEST_PAGES) << PAGE_SHIFT;

        for (unsigned rep = 0; rep < REPEATS; rep++) {
                struct mallinfo2 m0, m1;
                mc_rangemap *m = NULL;
                uint64_t t0;

                for (size_t i = n - 1; i > 0; i--) { /* shuffle the insertion order */
                        size_t j = rng() % (i + 1), t = order[i];

                        order[i] = order[j];
                        order[j] = t;
                }
                m0 = mallinfo2();
                if (mc_rangemap_new(&m) < 0)
                        return 1;
                t0 = bench_now_ns();
                for (size_t i = 0; i < n; i++)
                        if (mc_rangemap_set(m, f[order[i]].start, f[order[i]].end, 1) < 0)
                                return 1;
                build[rep] = (bench_now_ns() - t0) * 1000 / n;
                m1 = mallinfo2();
                if (mc_rangemap_count(m) != n) {
                        fprintf(stderr, "bench-rangemap: %zu ranges stored, %zu expected\n", mc_rangemap_count(m), n);
                        return 1;
                }
                mem_api = mc_rangemap_memory(m);
                mem_heap = m1.uordblks - m0.uordblks;

                t0 = bench_now_ns();
                for (size_t i = 0; i < LOOKUPS; i++)
                        sink += mc_rangemap_get(m, addrs[i]);
                look[rep] = (bench_now_ns() - t0) * 1000 / LOOKUPS;

                /* the same HOT_SET addresses over and over: the tree paths stay in cache */
                t0 = bench_now_ns();
                for (size_t i = 0; i < LOOKUPS; i++)
                        sink += mc_rangemap_get(m, addrs[i % HOT_SET]);
                hot[rep] = (bench_now_ns() - t0) * 1000 / LOOKUPS;

                t0 = bench_now_ns();
                for (size_t i = 0; i < UPDATE_STEPS; i++) {
                        const struct frag *g = &f[rng() % n];

                        if (mc_rangemap_set(m, g->start, g->end, 0) < 0 || mc_rangemap_set(m, g->start, g->end, 1) < 0)
                                return 1;
                }
                upd[rep] = (bench_now_ns() - t0) * 1000 / (2 * UPDATE_STEPS);
                if (rep == 0 && mc_rangemap_check(m) < 0) {
                        fprintf(stderr, "bench-rangemap: map inconsistent after updates\n");
                        return 1;
                }
                mc_rangemap_free(m);

                /* the per-page bitmap baseline */
                for (size_t i = 0; i < n; i++)
                        bitmap_set(bm, f[i].start >> PAGE_SHIFT, f[i].end >> PAGE_SHIFT, 1);
                t0 = bench_now_ns();
                for (size_t i = 0; i < LOOKUPS; i++) {
                        uint64_t p = addrs[i] >> PAGE_SHIFT;

                        sink += (bm[p >> 6] >> (p & 63)) & 1;
                }
                blook[rep] = (bench_now_ns() - t0) * 1000 / LOOKUPS;
                t0 = bench_now_ns();
                for (size_t i = 0; i < UPDATE_STEPS; i++) {
                        const struct frag *g = &f[rng() % n];

                        bitmap_set(bm, g->start >> PAGE_SHIFT, g->end >> PAGE_SHIFT, 0);
                        bitmap_set(bm, g->start >> PAGE_SHIFT, g->end >> PAGE_SHIFT, 1);
                }
                bupd[rep] = (bench_now_ns() - t0) * 1000 / (2 * UPDATE_STEPS);
        }
        (void) sink;

        /* values are kept in ps so that print_metric()'s /1000 gives ns */
        snprintf(name, sizeof(name), "rangemap.n%zu.insert", n);
        print_metric(name, "ns", build, REPEATS);
        snprintf(name, sizeof(name), "rangemap.n%zu.lookup", n);
        print_metric(name, "ns", look, REPEATS);
        snprintf(name, sizeof(name), "rangemap.n%zu.lookup_hot", n);
        print_metric(name, "ns", hot, REPEATS);
        snprintf(name, sizeof(name), "rangemap.n%zu.update", n);
        print_metric(name, "ns", upd, REPEATS);
        snprintf(name, sizeof(name), "bitmap.n%zu.lookup", n);
        print_metric(name, "ns", blook, REPEATS);
        snprintf(name, sizeof(name), "bitmap.n%zu.update", n);
        print_metric(name, "ns", bupd, REPEATS);
        printf("{\"name\": \"rangemap.n%zu.bytes_per_range\", \"unit\": \"B\", \"median\": %.2f, \"p99\": null, "
               "\"heap_bytes_per_range\": %.2f, \"samples\": 1}\n",
               n, (double) mem_api / (double) n, (double) mem_heap / (double) n);
        printf("{\"name\": \"bitmap.n%zu.bytes_per_range\", \"unit\": \"B\", \"median\": %.2f, \"p99\": null, "
               "\"samples\": 1}\n",
               n, (double) (GUEST_PAGES / 8) / (double) n);
        fflush(stdout);
        free(f);
        free(order);
        free(addrs);
        free(bm);
        return 0;
}

int main(int argc, char **argv)
{
        size_t max = argc > 1 ? strtoull(argv[1], NULL, 0) : 1000000;

        for (size_t n = 1000; n <= max; n *= 10)
                if (bench_one(n))
                        return 1;
        return 0;
}
