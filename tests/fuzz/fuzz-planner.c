/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fuzz-planner.c - the attribute map (lib/rangemap.c) and the conversion
 * planner (lib/planner.c) driven by an operation sequence.
 *
 * Input: a program. Each operation is one opcode byte followed by its
 * operand bytes; a missing operand reads as 0. Addresses are indices into
 * a fixed table of interesting points (page multiples near 0, unaligned
 * addresses, 4 GiB, 2^63, the last pages below 2^64), so that every range
 * the program can name starts and ends on a point, and a shadow model can
 * keep one value per interval between neighbouring points.
 *
 * Checked after every operation: mc_rangemap_check() on both maps, the
 * stored-range count equals the number of maximal runs of equal non-zero
 * value in the model (coalescing). Checked per operation: get, walk, any
 * and bytes against the model; mc_plan_regions_check() against a
 * reference; mc_plan_conversion() against a reference implementation of
 * DESIGN.md section 4 rules 1-4 (outcome, byte counts, and that the planned
 * ranges are exactly the pieces of RAM not yet in the requested state, in
 * order, merged, never crossing a region boundary).
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "fuzz.h"
#include "planner.h"
#include "rangemap.h"

#define MAX_POINTS 256
#define MAX_REGIONS 8

static uint64_t points[MAX_POINTS];
static size_t n_points;

static int u64_cmp(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

/** points_init() - build the sorted, duplicate-free table of points */
static void points_init(void)
{
        static const uint64_t extra[] = {
                1, 4097, 2 * 4096 + 2048, 100 * 4096 + 7,
                1ULL << 32, (1ULL << 32) + 4096, (1ULL << 32) + 8192, 1ULL << 40,
                1ULL << 63, (1ULL << 63) + 4096,
                UINT64_MAX - 8191, UINT64_MAX - 4095, UINT64_MAX,
        };
        size_t n = 0;

        for (uint64_t k = 0; k < 160; k++)
                points[n++] = k * MC_PAGE_SIZE;
        for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++)
                points[n++] = extra[i];
        qsort(points, n, sizeof(points[0]), u64_cmp);
        n_points = 1;
        for (size_t i = 1; i < n; i++)
                if (points[i] != points[n_points - 1])
                        points[n_points++] = points[i];
}

/** point_index() - index of @addr in the table, or n_points if it is not a point */
static size_t point_index(uint64_t addr)
{
        size_t lo = 0, hi = n_points;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;

                if (points[mid] < addr)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < n_points && points[lo] == addr ? lo : n_points;
}

struct prog {
        const uint8_t *p;
        size_t left;
};

static uint8_t take(struct prog *g)
{
        if (!g->left)
                return 0;
        g->left--;
        return *g->p++;
}

static uint64_t take64(struct prog *g)
{
        uint64_t v = 0;

        for (int i = 0; i < 8; i++)
                v = v << 8 | take(g);
        return v;
}

/* One map and its model: value of interval k = [points[k], points[k+1]). */
struct model {
        mc_rangemap *map;
        uint64_t v[MAX_POINTS];
};

struct state {
        struct model attrs, busy;
        struct mc_plan_region regions[MAX_REGIONS];
        size_t n_regions;
        struct mc_plan plan; /* the last APPLY plan, for commit */
        bool plan_private;
};

/** model_runs() - maximal runs of equal non-zero value */
static size_t model_runs(const struct model *m)
{
        size_t runs = 0;

        for (size_t k = 0; k + 1 < n_points; k++)
                if (m->v[k] && (k == 0 || m->v[k - 1] != m->v[k]))
                        runs++;
        return runs;
}

static void model_set(struct model *m, size_t i, size_t j, uint64_t value)
{
        int r = mc_rangemap_set(m->map, points[i], points[j], value);

        if (i >= j) {
                FUZZ_CHECK(r == -EINVAL);
                return;
        }
        FUZZ_CHECK(r == 0);
        for (size_t k = i; k < j; k++)
                m->v[k] = value;
}

static void model_check(const struct model *m)
{
        FUZZ_CHECK(mc_rangemap_check(m->map) == 0);
        FUZZ_CHECK(mc_rangemap_count(m->map) == model_runs(m));
        FUZZ_CHECK(mc_rangemap_memory(m->map) > 0);
}

static void model_get(const struct model *m, size_t k)
{
        uint64_t want = k + 1 < n_points ? m->v[k] : 0;

        FUZZ_CHECK(mc_rangemap_get(m->map, points[k]) == want);
        if (k + 1 < n_points && points[k] + 1 < points[k + 1])
                FUZZ_CHECK(mc_rangemap_get(m->map, points[k + 1] - 1) == want);
        if (k > 0)
                FUZZ_CHECK(mc_rangemap_get(m->map, points[k] - 1) == m->v[k - 1]);
}

struct walk_ctx {
        const struct model *m;
        uint64_t pos, end, last;
        unsigned calls;
        unsigned stop_after;
};

static int walk_fn(uint64_t start, uint64_t end, uint64_t value, void *userdata)
{
        struct walk_ctx *w = userdata;
        size_t k = point_index(start);

        FUZZ_CHECK(start == w->pos && start < end && end <= w->end);
        FUZZ_CHECK(w->calls == 0 || value != w->last);
        FUZZ_CHECK(k < n_points && point_index(end) < n_points);
        for (; points[k] < end; k++)
                FUZZ_CHECK(w->m->v[k] == value);
        w->pos = end;
        w->last = value;
        if (++w->calls == w->stop_after)
                return 42;
        return 0;
}

static void model_walk(const struct model *m, size_t i, size_t j, unsigned stop_after)
{
        struct walk_ctx w = { .m = m, .pos = points[i], .end = points[j], .stop_after = stop_after };
        int r = mc_rangemap_walk(m->map, points[i], points[j], walk_fn, &w);

        if (i >= j) {
                FUZZ_CHECK(r == -EINVAL && w.calls == 0);
                return;
        }
        if (r == 42) {
                FUZZ_CHECK(w.calls == stop_after);
                return;
        }
        FUZZ_CHECK(r == 0 && w.pos == points[j]);
}

static void model_count(const struct model *m, size_t i, size_t j, uint64_t value)
{
        uint64_t bytes = 0;
        bool any = false;

        for (size_t k = i; k < j; k++) {
                if (m->v[k] == value)
                        bytes += points[k + 1] - points[k];
                any |= m->v[k] != 0;
        }
        FUZZ_CHECK(mc_rangemap_any(m->map, points[i], points[j]) == (i < j && any));
        FUZZ_CHECK(mc_rangemap_bytes(m->map, points[i], points[j], value) == bytes);
}

static bool aligned(uint64_t v)
{
        return (v & (MC_PAGE_SIZE - 1)) == 0;
}

static int region_cmp(const void *a, const void *b)
{
        const struct mc_plan_region *x = a, *y = b;

        return x->gpa < y->gpa ? -1 : x->gpa > y->gpa;
}

/** regions_check_ref() - what mc_plan_regions_check() must answer */
static int regions_check_ref(const struct mc_plan_region *regs, size_t n)
{
        struct mc_plan_region sorted[MAX_REGIONS + 1];

        for (size_t i = 0; i < n; i++)
                if (regs[i].size == 0 || !aligned(regs[i].gpa) || !aligned(regs[i].size) ||
                    regs[i].size > UINT64_MAX - regs[i].gpa)
                        return -EINVAL;
        memcpy(sorted, regs, n * sizeof(*regs));
        qsort(sorted, n, sizeof(*sorted), region_cmp);
        for (size_t i = 1; i < n; i++)
                if (sorted[i - 1].gpa + sorted[i - 1].size > sorted[i].gpa)
                        return -EEXIST;
        return 0;
}

static void op_region_add(struct state *s, size_t i, size_t j)
{
        struct mc_plan_region cand[MAX_REGIONS + 1];
        size_t n = s->n_regions;
        int r;

        memcpy(cand, s->regions, n * sizeof(*cand));
        cand[n] = (struct mc_plan_region){ .gpa = points[i], .size = points[j] - points[i] };
        r = mc_plan_regions_check(cand, n + 1);
        FUZZ_CHECK(r == regions_check_ref(cand, n + 1));
        if (r == 0 && n < MAX_REGIONS) {
                qsort(cand, n + 1, sizeof(*cand), region_cmp);
                memcpy(s->regions, cand, (n + 1) * sizeof(*cand));
                s->n_regions = n + 1;
        }
}

/** region_of() - the region holding interval @k, or -1 */
static long region_of(const struct state *s, size_t k)
{
        for (size_t r = 0; r < s->n_regions; r++)
                if (s->regions[r].gpa <= points[k] && points[k + 1] <= s->regions[r].gpa + s->regions[r].size)
                        return (long) r;
        return -1;
}

static void op_plan(struct state *s, size_t i, size_t j, bool to_private, bool with_busy)
{
        struct mc_plan_ctx ctx = {
                .regions = s->regions,
                .n_regions = s->n_regions,
                .attrs = s->attrs.map,
                .busy = with_busy ? s->busy.map : NULL,
        };
        uint64_t gpa = points[i], size = points[j] - points[i];
        uint64_t change = 0, already = 0, covered = 0, sum = 0;
        struct mc_plan plan;
        bool busy = false, outside = false;
        int r;

        memset(&plan, 0x77, sizeof(plan));
        r = mc_plan_conversion(&ctx, gpa, size, to_private, &plan);
        if (i >= j || !aligned(gpa) || !aligned(size)) {
                FUZZ_CHECK(r == -EINVAL);
                return;
        }
        for (size_t k = i; k < j; k++) {
                long reg = region_of(s, k);
                uint64_t len = points[k + 1] - points[k];

                busy |= with_busy && s->busy.v[k] != 0;
                if (reg < 0) {
                        outside = true;
                        continue;
                }
                covered += len;
                if (((s->attrs.v[k] & MC_ATTR_PRIVATE) != 0) == to_private)
                        already += len;
                else
                        change += len;
        }
        if (busy) {
                FUZZ_CHECK(r == 0 && plan.outcome == MC_PLAN_WAIT && plan.n_ranges == 0);
                mc_plan_done(&plan);
                return;
        }
        if (to_private && outside) {
                FUZZ_CHECK(r == -ERANGE);
                return;
        }
        FUZZ_CHECK(r == 0);
        if (covered == 0) {
                FUZZ_CHECK(plan.outcome == MC_PLAN_MMIO_NOOP && plan.n_ranges == 0 && plan.bytes_mmio == size);
                mc_plan_done(&plan);
                return;
        }
        FUZZ_CHECK(plan.outcome == (change ? MC_PLAN_APPLY : MC_PLAN_SPURIOUS));
        FUZZ_CHECK(plan.bytes_change == change && plan.bytes_already == already);
        FUZZ_CHECK(plan.bytes_mmio == size - covered);
        FUZZ_CHECK((plan.n_ranges == 0) == (change == 0));
        for (size_t n = 0; n < plan.n_ranges; n++) {
                const struct mc_plan_range *pr = &plan.ranges[n];
                const struct mc_plan_region *reg;
                size_t a = point_index(pr->gpa), b = point_index(pr->gpa + pr->size);

                FUZZ_CHECK(pr->size > 0 && pr->region < s->n_regions);
                reg = &s->regions[pr->region];
                FUZZ_CHECK(pr->gpa >= reg->gpa && pr->gpa + pr->size <= reg->gpa + reg->size);
                FUZZ_CHECK(pr->gpa >= gpa && pr->gpa + pr->size <= gpa + size);
                FUZZ_CHECK(a < n_points && b < n_points);
                for (size_t k = a; k < b; k++)
                        FUZZ_CHECK(((s->attrs.v[k] & MC_ATTR_PRIVATE) != 0) != to_private);
                if (n > 0) {
                        const struct mc_plan_range *prev = &plan.ranges[n - 1];

                        FUZZ_CHECK(prev->gpa + prev->size <= pr->gpa);
                        FUZZ_CHECK(prev->region != pr->region || prev->gpa + prev->size < pr->gpa);
                }
                sum += pr->size;
        }
        FUZZ_CHECK(sum == change);
        if (plan.outcome == MC_PLAN_APPLY) {
                mc_plan_done(&s->plan);
                s->plan = plan;
                s->plan_private = to_private;
        } else
                mc_plan_done(&plan);
}

/** op_commit() - apply the last plan to the map, as a committed conversion does */
static void op_commit(struct state *s)
{
        for (size_t n = 0; n < s->plan.n_ranges; n++) {
                const struct mc_plan_range *pr = &s->plan.ranges[n];

                model_set(&s->attrs, point_index(pr->gpa), point_index(pr->gpa + pr->size),
                          s->plan_private ? MC_ATTR_PRIVATE : MC_ATTR_SHARED);
        }
        mc_plan_done(&s->plan);
}

/** op_plan_raw() - any 64-bit request: rule 1 holds, nothing crashes */
static void op_plan_raw(struct state *s, uint64_t gpa, uint64_t size, bool to_private)
{
        struct mc_plan_ctx ctx = {
                .regions = s->regions, .n_regions = s->n_regions, .attrs = s->attrs.map, .busy = s->busy.map,
        };
        struct mc_plan plan = { 0 };
        int r = mc_plan_conversion(&ctx, gpa, size, to_private, &plan);

        if (size == 0 || !aligned(gpa) || !aligned(size) || size > UINT64_MAX - gpa) {
                FUZZ_CHECK(r == -EINVAL);
                return;
        }
        FUZZ_CHECK(r == 0 || r == -ERANGE);
        if (r == 0)
                FUZZ_CHECK(plan.bytes_change + plan.bytes_already + plan.bytes_mmio == size ||
                           plan.outcome == MC_PLAN_WAIT);
        mc_plan_done(&plan);
}

static uint64_t value_of(uint8_t b)
{
        static const uint64_t values[] = { 0, MC_ATTR_PRIVATE, MC_ATTR_PRIVATE, 1, MC_ATTR_PRIVATE | 0x10 };

        return b < 250 ? values[b % 5] : b;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct state s = { 0 };
        struct prog g = { .p = data, .left = size };

        if (size > 8192)
                return 0;
        if (!n_points)
                points_init();
        FUZZ_CHECK(mc_rangemap_new(&s.attrs.map) == 0);
        FUZZ_CHECK(mc_rangemap_new(&s.busy.map) == 0);

        while (g.left) {
                uint8_t op = take(&g);
                size_t i = take(&g) % n_points, j = take(&g) % n_points;
                uint8_t arg = take(&g);
                struct model *m = arg & 0x80 ? &s.busy : &s.attrs;

                switch (op % 11) {
                case 0:
                        model_set(&s.attrs, i, j, value_of(arg));
                        break;
                case 1:
                        model_set(&s.busy, i, j, value_of(arg) ? 1 : 0);
                        break;
                case 2:
                        model_get(m, i);
                        break;
                case 3:
                        model_walk(m, i, j, arg & 0x7f);
                        break;
                case 4:
                        model_count(m, i, j, value_of(arg & 0x7f));
                        break;
                case 5:
                        op_region_add(&s, i, j);
                        break;
                case 6:
                        s.n_regions = arg % (s.n_regions + 1);
                        break;
                case 7:
                        op_plan(&s, i, j, arg & 1, arg & 2);
                        break;
                case 8:
                        op_commit(&s);
                        break;
                case 9: {
                        uint64_t gpa = take64(&g), len = take64(&g);

                        op_plan_raw(&s, gpa, len, arg & 1);
                        break;
                }
                default:
                        mc_rangemap_clear(m->map);
                        memset(m->v, 0, sizeof(m->v));
                        break;
                }
                model_check(&s.attrs);
                model_check(&s.busy);
        }

        mc_plan_done(&s.plan);
        mc_rangemap_free(s.attrs.map);
        mc_rangemap_free(s.busy.map);
        return 0;
}
