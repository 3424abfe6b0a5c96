// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * planner.c - decide what a conversion request really has to change.
 *
 * Theory of operation
 *
 * mc_plan_conversion() is a pure function of the VM's regions, its
 * attribute map and its busy map; it applies the rules listed in planner.h
 * (DESIGN.md section 4, rules 1-4) in this order:
 *
 *   1. argument errors (alignment, size 0, overflow): -EINVAL;
 *   2. busy: if any byte of the whole request window [gpa, gpa + size)
 *      overlaps @ctx->busy, the outcome is MC_PLAN_WAIT. We deliberately
 *      check the whole window, MMIO holes included: it is simpler, it can
 *      only make a request wait, never lose data, and a busy range never
 *      lies in a hole anyway because nothing is ever planned there. A
 *      to-private request that is both busy and not covered by regions
 *      therefore waits first and fails with -ERANGE when re-planned;
 *   3. coverage: the request is cut at region boundaries into covered
 *      pieces. A to-private request with any uncovered byte is -ERANGE; a
 *      to-shared one counts the uncovered bytes as bytes_mmio, and is
 *      MC_PLAN_MMIO_NOOP when nothing is covered;
 *   4. state: each covered piece is walked over the attribute map; runs
 *      already in the requested state count as bytes_already, the others
 *      become plan ranges. A run is "private" when its value has
 *      MC_ATTR_PRIVATE set, so a to-private request plans exactly the runs
 *      without that bit and a to-shared request the runs with it.
 *
 * Plan ranges come out in increasing address order, never cross a region
 * boundary (each carries its region index), and touching changing runs in
 * the same region are merged, so the plan is the minimal set of ranges.
 *
 * @ret is written only on success: every failure leaves it untouched.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "planner.h"

/**
 * struct plan_builder - plan under construction, the walk callback's state
 * @to_private:    the requested state
 * @region:        index of the region the current piece lies in
 * @ranges:        changing ranges so far, owned (freed on failure)
 * @n_ranges:      entries used in @ranges
 * @cap:           entries allocated in @ranges
 * @bytes_change:  sum of @ranges[].size
 * @bytes_already: bytes walked that are already in the requested state
 */
struct plan_builder {
        bool to_private;
        size_t region;
        struct mc_plan_range *ranges;
        size_t n_ranges;
        size_t cap;
        uint64_t bytes_change;
        uint64_t bytes_already;
};

/**
 * plan_aligned() - whether a value is a multiple of MC_PAGE_SIZE
 * @v: the value
 *
 * Return: true if aligned
 */
static bool plan_aligned(uint64_t v)
{
        return (v & (MC_PAGE_SIZE - 1)) == 0;
}

/**
 * plan_add_range() - append a changing run, merging with a touching one
 * @b:     builder
 * @start: first address of the run
 * @end:   one past its last address
 *
 * Return: 0, or -ENOMEM (@b keeps what it had)
 */
static int plan_add_range(struct plan_builder *b, uint64_t start, uint64_t end)
{
        struct mc_plan_range *last = b->n_ranges ? &b->ranges[b->n_ranges - 1] : NULL;

        if (last && last->region == b->region && last->gpa + last->size == start) {
                last->size += end - start;
                b->bytes_change += end - start;
                return 0;
        }

        if (b->n_ranges == b->cap) {
                size_t cap = b->cap ? b->cap * 2 : 4;
                struct mc_plan_range *p;

                if (cap > SIZE_MAX / sizeof(*p))
                        return -ENOMEM;
                p = realloc(b->ranges, cap * sizeof(*p));
                if (!p)
                        return -ENOMEM;
                b->ranges = p;
                b->cap = cap;
        }
        b->ranges[b->n_ranges++] = (struct mc_plan_range){
                .gpa = start,
                .size = end - start,
                .region = b->region,
        };
        b->bytes_change += end - start;
        return 0;
}

/**
 * plan_walk_run() - mc_rangemap_walk_fn over the attribute map
 * @start:    first address of a run of equal attributes
 * @end:      one past its last address
 * @value:    the attributes over the run
 * @userdata: the struct plan_builder
 *
 * Return: 0, or -ENOMEM to stop the walk
 */
static int plan_walk_run(uint64_t start, uint64_t end, uint64_t value, void *userdata)
{
        struct plan_builder *b = userdata;
        bool is_private = (value & MC_ATTR_PRIVATE) != 0;

        if (is_private == b->to_private) {
                b->bytes_already += end - start;
                return 0;
        }
        return plan_add_range(b, start, end);
}

/**
 * plan_first_region() - first region that ends above @gpa
 * @regions: regions sorted by gpa, non-overlapping
 * @n:       their number
 * @gpa:     address
 *
 * Return: the index of the first region whose end is above @gpa, or @n
 */
static size_t plan_first_region(const struct mc_plan_region *regions, size_t n, uint64_t gpa)
{
        size_t lo = 0, hi = n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (regions[mid].gpa + regions[mid].size > gpa)
                        hi = mid;
                else
                        lo = mid + 1;
        }
        return lo;
}

int mc_plan_conversion(const struct mc_plan_ctx *ctx, uint64_t gpa, uint64_t size,
                       bool to_private, struct mc_plan *ret)
{
        struct plan_builder b = { .to_private = to_private };
        uint64_t end, covered = 0, pos;
        size_t i;
        int r;

        /* Rule 1: the request itself. */
        if (!ctx || !ctx->attrs || !ret || (ctx->n_regions && !ctx->regions))
                return -EINVAL;
        if (size == 0 || !plan_aligned(gpa) || !plan_aligned(size) || size > UINT64_MAX - gpa)
                return -EINVAL;
        end = gpa + size;

        /* Rule 4: anything in flight over the window? (see the top comment) */
        if (ctx->busy && mc_rangemap_any(ctx->busy, gpa, end)) {
                *ret = (struct mc_plan){ .outcome = MC_PLAN_WAIT };
                return 0;
        }

        /* Rule 1 (to-private) and 3 (to-shared): coverage by regions. */
        i = plan_first_region(ctx->regions, ctx->n_regions, gpa);
        if (to_private) {
                for (pos = gpa; i < ctx->n_regions && pos < end; i++) {
                        const struct mc_plan_region *reg = &ctx->regions[i];

                        if (reg->gpa > pos)
                                break;
                        pos = reg->gpa + reg->size;
                }
                if (pos < end)
                        return -ERANGE;
                i = plan_first_region(ctx->regions, ctx->n_regions, gpa);
        }

        /* Rule 2: walk each covered piece, keeping what must change. */
        for (; i < ctx->n_regions && ctx->regions[i].gpa < end; i++) {
                const struct mc_plan_region *reg = &ctx->regions[i];
                uint64_t s = reg->gpa > gpa ? reg->gpa : gpa;
                uint64_t e = reg->gpa + reg->size < end ? reg->gpa + reg->size : end;

                b.region = i;
                covered += e - s;
                r = mc_rangemap_walk(ctx->attrs, s, e, plan_walk_run, &b);
                if (r < 0) {
                        free(b.ranges);
                        return r;
                }
        }

        if (covered == 0) {
                *ret = (struct mc_plan){
                        .outcome = MC_PLAN_MMIO_NOOP,
                        .bytes_mmio = size,
                };
                return 0;
        }

        *ret = (struct mc_plan){
                .outcome = b.n_ranges ? MC_PLAN_APPLY : MC_PLAN_SPURIOUS,
                .ranges = b.ranges,
                .n_ranges = b.n_ranges,
                .bytes_change = b.bytes_change,
                .bytes_already = b.bytes_already,
                .bytes_mmio = size - covered,
        };
        return 0;
}

void mc_plan_done(struct mc_plan *plan)
{
        if (!plan)
                return;
        free(plan->ranges);
        plan->ranges = NULL;
        plan->n_ranges = 0;
}

/**
 * plan_region_cmp() - qsort() order of regions: by gpa
 * @a: a struct mc_plan_region
 * @b: another
 *
 * Return: <0, 0, >0 as @a's gpa is below, equal to or above @b's
 */
static int plan_region_cmp(const void *a, const void *b)
{
        const struct mc_plan_region *x = a, *y = b;

        return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

int mc_plan_regions_check(const struct mc_plan_region *regions, size_t n)
{
        struct mc_plan_region *sorted;
        size_t i;
        int r = 0;

        if (n == 0)
                return 0;
        if (!regions)
                return -EINVAL;

        for (i = 0; i < n; i++) {
                const struct mc_plan_region *reg = &regions[i];

                /* the end must be representable: gpa + size <= UINT64_MAX */
                if (reg->size == 0 || !plan_aligned(reg->gpa) || !plan_aligned(reg->size) ||
                    reg->size > UINT64_MAX - reg->gpa)
                        return -EINVAL;
        }

        if (n > SIZE_MAX / sizeof(*sorted))
                return -ENOMEM;
        sorted = malloc(n * sizeof(*sorted));
        if (!sorted)
                return -ENOMEM;
        memcpy(sorted, regions, n * sizeof(*sorted));
        qsort(sorted, n, sizeof(*sorted), plan_region_cmp);

        for (i = 1; i < n; i++)
                if (sorted[i - 1].gpa + sorted[i - 1].size > sorted[i].gpa) {
                        r = -EEXIST;
                        break;
                }
        free(sorted);
        return r;
}
