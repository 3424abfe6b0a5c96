// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test-planner.c - CUnit suite for lib/planner.c.
 *
 * The fixture is a small VM: regions, an attribute map and a busy map.
 * plan() runs mc_plan_conversion() and checks the plan's own invariants
 * (sorted, inside one region each, touching ranges in one region merged,
 * byte counts adding up); apply() writes a plan into the attribute map the
 * way the daemon commits it. Failing calls must leave the output struct
 * byte-for-byte untouched: it is filled with a sentinel pattern first.
 */
#undef NDEBUG

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "test-util.h"

#include "planner.h"

#define K4 4096ULL
#define M2 (2ULL << 20)
#define G4 (4ULL << 30)
#define SENTINEL 0xa5

/**
 * struct vm - test fixture
 * @regions: registered regions (sorted)
 * @ctx:     planning context pointing at the maps and @regions
 */
struct vm {
        struct mc_plan_region regions[4];
        struct mc_plan_ctx ctx;
};

/**
 * vm_init() - fixture with the given regions, all shared, nothing busy
 * @vm:      fixture to fill
 * @regions: regions to copy (sorted)
 * @n:       their number (<= 4)
 */
static void vm_init(struct vm *vm, const struct mc_plan_region *regions, size_t n)
{
        mc_rangemap *attrs = NULL, *busy = NULL;

        CU_ASSERT_FATAL(n <= 4);
        memset(vm, 0, sizeof(*vm));
        if (n)
                memcpy(vm->regions, regions, n * sizeof(*regions));
        CU_ASSERT_EQUAL_FATAL(mc_plan_regions_check(vm->regions, n), 0);
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_new(&attrs), 0);
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_new(&busy), 0);
        vm->ctx = (struct mc_plan_ctx){
                .regions = vm->regions,
                .n_regions = n,
                .attrs = attrs,
                .busy = busy,
        };
}

/**
 * vm_done() - free a fixture's maps
 * @vm: fixture
 */
static void vm_done(struct vm *vm)
{
        mc_rangemap_free((mc_rangemap *)vm->ctx.attrs);
        mc_rangemap_free((mc_rangemap *)vm->ctx.busy);
}

/**
 * attrs() - the fixture's attribute map, writable
 * @vm: fixture
 *
 * Return: the map
 */
static mc_rangemap *attrs(struct vm *vm)
{
        return (mc_rangemap *)vm->ctx.attrs;
}

/**
 * plan() - plan a conversion that must succeed, and check the plan's shape
 * @vm:         fixture
 * @gpa:        first address
 * @size:       bytes
 * @to_private: requested state
 * @p:          the plan, to release with mc_plan_done()
 */
static void plan(struct vm *vm, uint64_t gpa, uint64_t size, bool to_private, struct mc_plan *p)
{
        uint64_t sum = 0;
        size_t i;

        memset(p, SENTINEL, sizeof(*p));
        CU_ASSERT_EQUAL_FATAL(mc_plan_conversion(&vm->ctx, gpa, size, to_private, p), 0);
        for (i = 0; i < p->n_ranges; i++) {
                const struct mc_plan_range *r = &p->ranges[i];
                const struct mc_plan_region *reg;

                CU_ASSERT_FATAL(r->region < vm->ctx.n_regions);
                reg = &vm->regions[r->region];
                CU_ASSERT(r->size > 0);
                CU_ASSERT(r->gpa >= gpa && r->gpa + r->size <= gpa + size);
                CU_ASSERT(r->gpa >= reg->gpa && r->gpa + r->size <= reg->gpa + reg->size);
                CU_ASSERT(r->gpa % K4 == 0 && r->size % K4 == 0);
                if (i > 0) {
                        const struct mc_plan_range *q = &p->ranges[i - 1];

                        CU_ASSERT(q->gpa + q->size <= r->gpa);
                        /* touching ranges in one region must have been merged */
                        CU_ASSERT(!(q->gpa + q->size == r->gpa && q->region == r->region));
                }
                sum += r->size;
        }
        CU_ASSERT_EQUAL(sum, p->bytes_change);
        if (p->outcome == MC_PLAN_APPLY || p->outcome == MC_PLAN_SPURIOUS ||
            p->outcome == MC_PLAN_MMIO_NOOP)
                CU_ASSERT_EQUAL(p->bytes_change + p->bytes_already + p->bytes_mmio, size);
        if (p->outcome != MC_PLAN_APPLY) {
                CU_ASSERT_EQUAL(p->n_ranges, 0);
                CU_ASSERT_PTR_NULL(p->ranges);
        } else {
                CU_ASSERT(p->n_ranges > 0);
        }
        if (to_private)
                CU_ASSERT_EQUAL(p->bytes_mmio, 0);
}

/**
 * plan_fails() - plan a conversion that must fail with @err, output untouched
 * @vm:         fixture
 * @gpa:        first address
 * @size:       bytes
 * @to_private: requested state
 * @err:        expected negative errno
 */
static void plan_fails(struct vm *vm, uint64_t gpa, uint64_t size, bool to_private, int err)
{
        struct mc_plan p, ref;

        memset(&p, SENTINEL, sizeof(p));
        memset(&ref, SENTINEL, sizeof(ref));
        CU_ASSERT_EQUAL(mc_plan_conversion(&vm->ctx, gpa, size, to_private, &p), err);
        CU_ASSERT_EQUAL(memcmp(&p, &ref, sizeof(p)), 0);
}

/**
 * apply() - commit a plan to the attribute map
 * @vm:         fixture
 * @p:          plan
 * @to_private: the state it converts to
 */
static void apply(struct vm *vm, const struct mc_plan *p, bool to_private)
{
        size_t i;

        for (i = 0; i < p->n_ranges; i++)
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(attrs(vm), p->ranges[i].gpa,
                                                      p->ranges[i].gpa + p->ranges[i].size,
                                                      to_private ? MC_ATTR_PRIVATE : 0), 0);
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_check(vm->ctx.attrs), 0);
}

/**
 * expect_one() - plan, expect APPLY of exactly one range, apply it
 * @vm:         fixture
 * @gpa:        first address
 * @size:       bytes
 * @to_private: requested state
 */
static void expect_one(struct vm *vm, uint64_t gpa, uint64_t size, bool to_private)
{
        struct mc_plan p;

        plan(vm, gpa, size, to_private, &p);
        CU_ASSERT_EQUAL(p.outcome, MC_PLAN_APPLY);
        CU_ASSERT_EQUAL_FATAL(p.n_ranges, 1);
        CU_ASSERT_EQUAL(p.ranges[0].gpa, gpa);
        CU_ASSERT_EQUAL(p.ranges[0].size, size);
        CU_ASSERT_EQUAL(p.ranges[0].region, 0);
        CU_ASSERT_EQUAL(p.bytes_change, size);
        CU_ASSERT_EQUAL(p.bytes_already, 0);
        apply(vm, &p, to_private);
        mc_plan_done(&p);
}

/**
 * expect_spurious() - plan, expect SPURIOUS (all already in state)
 * @vm:         fixture
 * @gpa:        first address
 * @size:       bytes
 * @to_private: requested state
 */
static void expect_spurious(struct vm *vm, uint64_t gpa, uint64_t size, bool to_private)
{
        struct mc_plan p;

        plan(vm, gpa, size, to_private, &p);
        CU_ASSERT_EQUAL(p.outcome, MC_PLAN_SPURIOUS);
        CU_ASSERT_EQUAL(p.bytes_already, size);
        mc_plan_done(&p);
}

/**
 * test_selftest_ranges() - the scenarios of KVM's private_mem_conversions_test
 *
 * For each (offset, size): convert to private, check a repeat is spurious,
 * convert the odd pages back to shared (holes in a private range), then
 * convert the whole range to shared: only the even pages change.
 */
static void test_selftest_ranges(void)
{
        static const struct {
                uint64_t offset, size;
        } ranges[] = {
                { 0, K4 }, { 0, M2 }, { K4, K4 }, { K4, M2 }, { M2, K4 },
        };
        const struct mc_plan_region region = { G4, 4 * M2 };
        size_t i;

        for (i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
                uint64_t gpa = G4 + ranges[i].offset, size = ranges[i].size, j, pages = size / K4;
                struct mc_plan p;
                struct vm vm;

                vm_init(&vm, &region, 1);
                expect_one(&vm, gpa, size, true);
                CU_ASSERT_EQUAL(mc_rangemap_bytes(vm.ctx.attrs, G4, G4 + 4 * M2, MC_ATTR_PRIVATE), size);
                expect_spurious(&vm, gpa, size, true);

                for (j = 1; j < pages; j += 2)
                        expect_one(&vm, gpa + j * K4, K4, false);
                for (j = 1; j < pages; j += 2)
                        expect_spurious(&vm, gpa + j * K4, K4, false);

                plan(&vm, gpa, size, false, &p);
                CU_ASSERT_EQUAL(p.outcome, MC_PLAN_APPLY);
                CU_ASSERT_EQUAL(p.n_ranges, (pages + 1) / 2);
                CU_ASSERT_EQUAL(p.bytes_change, (pages + 1) / 2 * K4);
                CU_ASSERT_EQUAL(p.bytes_already, pages / 2 * K4);
                CU_ASSERT_EQUAL(p.bytes_mmio, 0);
                for (j = 0; j < p.n_ranges; j++) {
                        CU_ASSERT_EQUAL(p.ranges[j].gpa, gpa + 2 * j * K4);
                        CU_ASSERT_EQUAL(p.ranges[j].size, K4);
                }
                apply(&vm, &p, false);
                mc_plan_done(&p);
                CU_ASSERT_EQUAL(mc_rangemap_count(vm.ctx.attrs), 0);
                expect_spurious(&vm, gpa, size, false);

                /* and the whole range back to private in one go */
                expect_one(&vm, gpa, size, true);
                vm_done(&vm);
        }
}

/** test_spurious() - a request wholly in the requested state */
static void test_spurious(void)
{
        const struct mc_plan_region region = { 0, M2 };
        struct mc_plan p;
        struct vm vm;

        vm_init(&vm, &region, 1);
        expect_spurious(&vm, 0, M2, false); /* shared is the default */
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(attrs(&vm), 0, M2, MC_ATTR_PRIVATE), 0);
        plan(&vm, K4, 8 * K4, true, &p);
        CU_ASSERT_EQUAL(p.outcome, MC_PLAN_SPURIOUS);
        CU_ASSERT_EQUAL(p.n_ranges, 0);
        CU_ASSERT_EQUAL(p.bytes_change, 0);
        CU_ASSERT_EQUAL(p.bytes_already, 8 * K4);
        mc_plan_done(&p);
        /* a spurious plan released twice, and a zeroed plan, are fine */
        mc_plan_done(&p);
        memset(&p, 0, sizeof(p));
        mc_plan_done(&p);
        mc_plan_done(NULL);
        vm_done(&vm);
}

/** test_partial() - only the pieces not yet in state are planned */
static void test_partial(void)
{
        const struct mc_plan_region region = { G4, M2 };
        struct mc_plan p;
        struct vm vm;

        vm_init(&vm, &region, 1);
        /* private: [G4+4K, G4+12K) and [G4+20K, G4+24K) */
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(attrs(&vm), G4 + K4, G4 + 3 * K4, MC_ATTR_PRIVATE), 0);
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(attrs(&vm), G4 + 5 * K4, G4 + 6 * K4, MC_ATTR_PRIVATE), 0);

        plan(&vm, G4, 8 * K4, true, &p);
        CU_ASSERT_EQUAL(p.outcome, MC_PLAN_APPLY);
        CU_ASSERT_EQUAL_FATAL(p.n_ranges, 3);
        CU_ASSERT_EQUAL(p.ranges[0].gpa, G4);
        CU_ASSERT_EQUAL(p.ranges[0].size, K4);
        CU_ASSERT_EQUAL(p.ranges[1].gpa, G4 + 3 * K4);
        CU_ASSERT_EQUAL(p.ranges[1].size, 2 * K4);
        CU_ASSERT_EQUAL(p.ranges[2].gpa, G4 + 6 * K4);
        CU_ASSERT_EQUAL(p.ranges[2].size, 2 * K4);
        CU_ASSERT_EQUAL(p.bytes_change, 5 * K4);
        CU_ASSERT_EQUAL(p.bytes_already, 3 * K4);
        apply(&vm, &p, true);
        mc_plan_done(&p);
        CU_ASSERT_EQUAL(mc_rangemap_count(vm.ctx.attrs), 1);

        /* to shared over a window starting inside the private range */
        plan(&vm, G4 + 7 * K4, 4 * K4, false, &p);
        CU_ASSERT_EQUAL(p.outcome, MC_PLAN_APPLY);
        CU_ASSERT_EQUAL_FATAL(p.n_ranges, 1);
        CU_ASSERT_EQUAL(p.ranges[0].gpa, G4 + 7 * K4);
        CU_ASSERT_EQUAL(p.ranges[0].size, K4);
        CU_ASSERT_EQUAL(p.bytes_already, 3 * K4);
        mc_plan_done(&p);
        vm_done(&vm);
}

/**
 * test_other_bits() - only MC_ATTR_PRIVATE decides the state
 *
 * Runs that differ only in other attribute bits are separate runs in the
 * map; both are "shared", and the plan merges them into one range.
 */
static void test_other_bits(void)
{
        const struct mc_plan_region region = { G4, M2 };
        struct mc_plan p;
        struct vm vm;

        vm_init(&vm, &region, 1);
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(attrs(&vm), G4 + K4, G4 + 2 * K4, 1), 0);
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(attrs(&vm), G4 + 2 * K4, G4 + 3 * K4, MC_ATTR_PRIVATE | 1), 0);
        plan(&vm, G4, 4 * K4, true, &p);
        CU_ASSERT_EQUAL(p.outcome, MC_PLAN_APPLY);
        CU_ASSERT_EQUAL_FATAL(p.n_ranges, 2);
        CU_ASSERT_EQUAL(p.ranges[0].gpa, G4);
        CU_ASSERT_EQUAL(p.ranges[0].size, 2 * K4);
        CU_ASSERT_EQUAL(p.ranges[1].gpa, G4 + 3 * K4);
        CU_ASSERT_EQUAL(p.ranges[1].size, K4);
        CU_ASSERT_EQUAL(p.bytes_already, K4);
        mc_plan_done(&p);
        plan(&vm, G4, 4 * K4, false, &p);
        CU_ASSERT_EQUAL(p.outcome, MC_PLAN_APPLY);
        CU_ASSERT_EQUAL_FATAL(p.n_ranges, 1);
        CU_ASSERT_EQUAL(p.ranges[0].gpa, G4 + 2 * K4);
        CU_ASSERT_EQUAL(p.bytes_already, 3 * K4);
        mc_plan_done(&p);
        vm_done(&vm);
}

/** test_two_regions() - a request over two adjacent regions is split per region */
static void test_two_regions(void)
{
        const struct mc_plan_region regions[] = { { G4, M2 }, { G4 + M2, M2 } };
        struct mc_plan p;
        struct vm vm;

        vm_init(&vm, regions, 2);
        plan(&vm, G4 + M2 - 2 * K4, 4 * K4, true, &p);
        CU_ASSERT_EQUAL(p.outcome, MC_PLAN_APPLY);
        CU_ASSERT_EQUAL_FATAL(p.n_ranges, 2);
        CU_ASSERT_EQUAL(p.ranges[0].gpa, G4 + M2 - 2 * K4);
        CU_ASSERT_EQUAL(p.ranges[0].size, 2 * K4);
        CU_ASSERT_EQUAL(p.ranges[0].region, 0);
        CU_ASSERT_EQUAL(p.ranges[1].gpa, G4 + M2);
        CU_ASSERT_EQUAL(p.ranges[1].size, 2 * K4);
        CU_ASSERT_EQUAL(p.ranges[1].region, 1);
        CU_ASSERT_EQUAL(p.bytes_change, 4 * K4);
        apply(&vm, &p, true);
        mc_plan_done(&p);
        /* the attribute map itself coalesces across the boundary... */
        CU_ASSERT_EQUAL(mc_rangemap_count(vm.ctx.attrs), 1);
        /* ...but the plan back to shared is still split per region */
        plan(&vm, G4, 2 * M2, false, &p);
        CU_ASSERT_EQUAL(p.outcome, MC_PLAN_APPLY);
        CU_ASSERT_EQUAL_FATAL(p.n_ranges, 2);
        CU_ASSERT_EQUAL(p.ranges[0].region, 0);
        CU_ASSERT_EQUAL(p.ranges[0].gpa + p.ranges[0].size, G4 + M2);
        CU_ASSERT_EQUAL(p.ranges[1].region, 1);
        CU_ASSERT_EQUAL(p.ranges[1].gpa, G4 + M2);
        CU_ASSERT_EQUAL(p.bytes_already, 2 * M2 - 4 * K4);
        mc_plan_done(&p);
        /* the whole of both regions to private: one range per region */
        plan(&vm, G4, 2 * M2, true, &p);
        CU_ASSERT_EQUAL_FATAL(p.n_ranges, 2);
        CU_ASSERT_EQUAL(p.ranges[0].gpa, G4);
        CU_ASSERT_EQUAL(p.ranges[0].size, M2 - 2 * K4);
        CU_ASSERT_EQUAL(p.ranges[1].gpa, G4 + M2 + 2 * K4);
        CU_ASSERT_EQUAL(p.ranges[1].size, M2 - 2 * K4);
        mc_plan_done(&p);
        vm_done(&vm);
}

/** test_gap() - regions with an MMIO hole between them */
static void test_gap(void)
{
        /* RAM [G4, G4+2M), hole [G4+2M, G4+4M), RAM [G4+4M, G4+6M) */
        const struct mc_plan_region regions[] = { { G4, M2 }, { G4 + 2 * M2, M2 } };
        struct mc_plan p;
        struct vm vm;

        vm_init(&vm, regions, 2);
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(attrs(&vm), G4, G4 + 3 * M2, MC_ATTR_PRIVATE), 0);

        /* to-private over the hole, or touching it, is refused */
        plan_fails(&vm, G4 + M2 - K4, 2 * K4, true, -ERANGE);
        plan_fails(&vm, G4, 3 * M2, true, -ERANGE);
        plan_fails(&vm, G4 + M2, K4, true, -ERANGE);
        plan_fails(&vm, G4 + 2 * M2 - K4, 2 * K4, true, -ERANGE);

        /* to-shared over RAM, hole, RAM: the RAM parts only */
        plan(&vm, G4 + M2 - K4, M2 + 3 * K4, false, &p);
        CU_ASSERT_EQUAL(p.outcome, MC_PLAN_APPLY);
        CU_ASSERT_EQUAL_FATAL(p.n_ranges, 2);
        CU_ASSERT_EQUAL(p.ranges[0].gpa, G4 + M2 - K4);
        CU_ASSERT_EQUAL(p.ranges[0].size, K4);
        CU_ASSERT_EQUAL(p.ranges[0].region, 0);
        CU_ASSERT_EQUAL(p.ranges[1].gpa, G4 + 2 * M2);
        CU_ASSERT_EQUAL(p.ranges[1].size, 2 * K4);
        CU_ASSERT_EQUAL(p.ranges[1].region, 1);
        CU_ASSERT_EQUAL(p.bytes_change, 3 * K4);
        CU_ASSERT_EQUAL(p.bytes_mmio, M2);
        CU_ASSERT_EQUAL(p.bytes_already, 0);
        mc_plan_done(&p);

        /* to-shared partly in the hole, partly already-shared RAM: spurious */
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(attrs(&vm), G4 + M2 - K4, G4 + M2, 0), 0);
        plan(&vm, G4 + M2 - K4, 2 * K4, false, &p);
        CU_ASSERT_EQUAL(p.outcome, MC_PLAN_SPURIOUS);
        CU_ASSERT_EQUAL(p.bytes_already, K4);
        CU_ASSERT_EQUAL(p.bytes_mmio, K4);
        mc_plan_done(&p);
        vm_done(&vm);
}

/** test_outside() - requests wholly outside every region */
static void test_outside(void)
{
        const struct mc_plan_region regions[] = { { G4, M2 }, { G4 + 2 * M2, M2 } };
        struct mc_plan p;
        struct vm vm;

        vm_init(&vm, regions, 2);
        /* in the hole, below all, above all */
        plan(&vm, G4 + M2, M2, false, &p);
        CU_ASSERT_EQUAL(p.outcome, MC_PLAN_MMIO_NOOP);
        CU_ASSERT_EQUAL(p.bytes_mmio, M2);
        mc_plan_done(&p);
        plan(&vm, 0, G4, false, &p);
        CU_ASSERT_EQUAL(p.outcome, MC_PLAN_MMIO_NOOP);
        CU_ASSERT_EQUAL(p.bytes_mmio, G4);
        mc_plan_done(&p);
        plan(&vm, UINT64_MAX - K4 + 1 - K4, K4, false, &p);
        CU_ASSERT_EQUAL(p.outcome, MC_PLAN_MMIO_NOOP);
        mc_plan_done(&p);

        plan_fails(&vm, G4 + M2, M2, true, -ERANGE);
        plan_fails(&vm, 0, K4, true, -ERANGE);
        plan_fails(&vm, G4 + 3 * M2, K4, true, -ERANGE);
        vm_done(&vm);

        /* a VM with no regions at all */
        vm_init(&vm, NULL, 0);
        plan(&vm, G4, K4, false, &p);
        CU_ASSERT_EQUAL(p.outcome, MC_PLAN_MMIO_NOOP);
        mc_plan_done(&p);
        plan_fails(&vm, G4, K4, true, -ERANGE);
        vm_done(&vm);
}

/** test_einval() - bad requests are refused, output untouched */
static void test_einval(void)
{
        const struct mc_plan_region region = { 0, UINT64_MAX - K4 + 1 }; /* all but the top page */
        const uint64_t top = UINT64_MAX - K4 + 1; /* last page's gpa */
        struct mc_plan p;
        struct vm vm;
        int to;

        vm_init(&vm, &region, 1);
        for (to = 0; to < 2; to++) {
                plan_fails(&vm, G4 + 1, K4, to, -EINVAL);
                plan_fails(&vm, G4 + 2048, K4, to, -EINVAL);
                plan_fails(&vm, G4, K4 + 1, to, -EINVAL);
                plan_fails(&vm, G4, 100, to, -EINVAL);
                plan_fails(&vm, G4, 0, to, -EINVAL);
                plan_fails(&vm, 0, 0, to, -EINVAL);
                /* gpa + size overflows (2^64 is not representable) */
                plan_fails(&vm, top, K4, to, -EINVAL);
                plan_fails(&vm, top - K4, 2 * K4, to, -EINVAL);
                plan_fails(&vm, K4, top, to, -EINVAL);
                plan_fails(&vm, top, top, to, -EINVAL);
                /* errors come before busy */
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_set((mc_rangemap *)vm.ctx.busy, G4, G4 + K4, 1), 0);
                plan_fails(&vm, G4, 0, to, -EINVAL);
                plan_fails(&vm, G4 + 1, K4, to, -EINVAL);
                mc_rangemap_clear((mc_rangemap *)vm.ctx.busy);
        }
        plan_fails(&vm, top, K4, true, -EINVAL);
        /* the highest valid request: ends at 2^64 - 4096 */
        plan(&vm, top - K4, K4, true, &p);
        CU_ASSERT_EQUAL(p.outcome, MC_PLAN_APPLY);
        mc_plan_done(&p);

        CU_ASSERT_EQUAL(mc_plan_conversion(NULL, 0, K4, true, &p), -EINVAL);
        CU_ASSERT_EQUAL(mc_plan_conversion(&vm.ctx, 0, K4, true, NULL), -EINVAL);
        vm_done(&vm);
}

/** test_busy() - an overlap with a conversion in flight waits; adjacency does not */
static void test_busy(void)
{
        const struct mc_plan_region regions[] = { { G4, M2 }, { G4 + 2 * M2, M2 } };
        mc_rangemap *busy;
        struct mc_plan p;
        struct vm vm;
        int to;

        vm_init(&vm, regions, 2);
        busy = (mc_rangemap *)vm.ctx.busy;
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(busy, G4 + 4 * K4, G4 + 8 * K4, 1), 0);

        for (to = 0; to < 2; to++) {
                /* overlapping by one page at either end, or containing it */
                plan(&vm, G4, 5 * K4, to, &p);
                CU_ASSERT_EQUAL(p.outcome, MC_PLAN_WAIT);
                CU_ASSERT_EQUAL(p.n_ranges, 0);
                CU_ASSERT_EQUAL(p.bytes_change, 0);
                mc_plan_done(&p);
                plan(&vm, G4 + 7 * K4, 4 * K4, to, &p);
                CU_ASSERT_EQUAL(p.outcome, MC_PLAN_WAIT);
                mc_plan_done(&p);
                plan(&vm, G4, M2, to, &p);
                CU_ASSERT_EQUAL(p.outcome, MC_PLAN_WAIT);
                mc_plan_done(&p);
                plan(&vm, G4 + 5 * K4, K4, to, &p);
                CU_ASSERT_EQUAL(p.outcome, MC_PLAN_WAIT);
                mc_plan_done(&p);

                /* touching on either side: planned normally */
                plan(&vm, G4, 4 * K4, to, &p);
                CU_ASSERT_NOT_EQUAL(p.outcome, MC_PLAN_WAIT);
                mc_plan_done(&p);
                plan(&vm, G4 + 8 * K4, 4 * K4, to, &p);
                CU_ASSERT_NOT_EQUAL(p.outcome, MC_PLAN_WAIT);
                mc_plan_done(&p);
        }

        /* busy is checked over the whole window, MMIO part included, before coverage */
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(busy, G4 + M2, G4 + M2 + K4, 1), 0);
        plan(&vm, G4 + M2, M2, false, &p);
        CU_ASSERT_EQUAL(p.outcome, MC_PLAN_WAIT);
        mc_plan_done(&p);
        plan(&vm, G4 + M2, M2, true, &p);
        CU_ASSERT_EQUAL(p.outcome, MC_PLAN_WAIT);
        mc_plan_done(&p);
        mc_rangemap_clear(busy);
        plan_fails(&vm, G4 + M2, M2, true, -ERANGE);

        /* busy == NULL: nothing is in flight */
        vm.ctx.busy = NULL;
        plan(&vm, G4, 5 * K4, true, &p);
        CU_ASSERT_EQUAL(p.outcome, MC_PLAN_APPLY);
        mc_plan_done(&p);
        vm.ctx.busy = busy;
        vm_done(&vm);
}

/** test_regions_check() - region set validation */
static void test_regions_check(void)
{
        const struct mc_plan_region ok[] = { { 3 * G4, M2 }, { 0, K4 }, { G4, 2 * G4 } };
        const struct mc_plan_region adjacent[] = { { G4 + M2, M2 }, { G4, M2 } };
        const struct mc_plan_region overlap[] = { { G4, M2 }, { 0, K4 }, { G4 + M2 - K4, K4 } };
        const struct mc_plan_region same[] = { { G4, M2 }, { G4, M2 } };
        const struct mc_plan_region inside[] = { { G4, 4 * M2 }, { G4 + M2, K4 } };
        const struct mc_plan_region top[] = { { UINT64_MAX - K4 + 1 - K4, K4 } };
        struct mc_plan_region bad[2] = { { 0, K4 } };

        CU_ASSERT_EQUAL(mc_plan_regions_check(NULL, 0), 0);
        CU_ASSERT_EQUAL(mc_plan_regions_check(ok, 3), 0);
        CU_ASSERT_EQUAL(mc_plan_regions_check(adjacent, 2), 0);
        CU_ASSERT_EQUAL(mc_plan_regions_check(top, 1), 0);
        CU_ASSERT_EQUAL(mc_plan_regions_check(overlap, 3), -EEXIST);
        CU_ASSERT_EQUAL(mc_plan_regions_check(same, 2), -EEXIST);
        CU_ASSERT_EQUAL(mc_plan_regions_check(inside, 2), -EEXIST);
        CU_ASSERT_EQUAL(mc_plan_regions_check(NULL, 1), -EINVAL);

        bad[1] = (struct mc_plan_region){ G4 + 1, K4 };
        CU_ASSERT_EQUAL(mc_plan_regions_check(bad, 2), -EINVAL);
        bad[1] = (struct mc_plan_region){ G4, K4 + 512 };
        CU_ASSERT_EQUAL(mc_plan_regions_check(bad, 2), -EINVAL);
        bad[1] = (struct mc_plan_region){ G4, 0 };
        CU_ASSERT_EQUAL(mc_plan_regions_check(bad, 2), -EINVAL);
        bad[1] = (struct mc_plan_region){ UINT64_MAX - K4 + 1, K4 }; /* ends at 2^64 */
        CU_ASSERT_EQUAL(mc_plan_regions_check(bad, 2), -EINVAL);
        bad[1] = (struct mc_plan_region){ G4, UINT64_MAX - K4 + 1 };
        CU_ASSERT_EQUAL(mc_plan_regions_check(bad, 2), -EINVAL);
        /* a bad region is reported even when another pair overlaps */
        bad[0] = (struct mc_plan_region){ G4, M2 };
        bad[1] = (struct mc_plan_region){ G4, 1 };
        CU_ASSERT_EQUAL(mc_plan_regions_check(bad, 2), -EINVAL);
}

int main(void)
{
        static const struct mc_test tests[] = {
                { "private_mem_conversions_test ranges", test_selftest_ranges },
                { "spurious", test_spurious },
                { "partly already in state", test_partial },
                { "only the PRIVATE bit counts", test_other_bits },
                { "two adjacent regions", test_two_regions },
                { "MMIO hole between regions", test_gap },
                { "wholly outside regions", test_outside },
                { "-EINVAL, output untouched", test_einval },
                { "busy overlap waits", test_busy },
                { "regions_check", test_regions_check },
        };

        return mc_test_run("planner", NULL, NULL, tests, sizeof(tests) / sizeof(tests[0]));
}
