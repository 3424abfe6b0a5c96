// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test-rangemap.c - CUnit suite for lib/rangemap.c.
 *
 * Every mutation is followed by mc_rangemap_check(), which verifies the
 * coalescing invariants and the B+tree's own. The property test compares the map with a
 * plain per-page array after each of 20,000 random set() calls; its seed is
 * printed and can be fixed with MC_TEST_SEED=<n>.
 */
#undef NDEBUG

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "test-util.h"

#include "rangemap.h"

#define PAGE 4096ULL
#define MAX_RUNS 64

/** struct run - one call of a walk callback */
struct run {
        uint64_t start, end, value;
};

/**
 * struct runs - what a walk saw
 * @r:       the calls, in order
 * @n:       calls recorded (at most MAX_RUNS)
 * @calls:   calls made, recorded or not
 * @stop_at: return 7 from this call number (1-based); 0 never stops
 */
struct runs {
        struct run r[MAX_RUNS];
        size_t n;
        size_t calls;
        size_t stop_at;
};

/**
 * collect() - walk callback recording each run into a struct runs
 * @start:    run start
 * @end:      run end
 * @value:    run value
 * @userdata: struct runs
 *
 * Return: 0, or 7 at the call number runs->stop_at
 */
static int collect(uint64_t start, uint64_t end, uint64_t value, void *userdata)
{
        struct runs *rs = userdata;

        if (rs->n < MAX_RUNS)
                rs->r[rs->n++] = (struct run){ start, end, value };
        rs->calls++;
        return rs->stop_at && rs->calls == rs->stop_at ? 7 : 0;
}

/**
 * new_map() - create a map or fail the test
 * Return: the map
 */
static mc_rangemap *new_map(void)
{
        mc_rangemap *m = NULL;

        CU_ASSERT_EQUAL_FATAL(mc_rangemap_new(&m), 0);
        CU_ASSERT_PTR_NOT_NULL_FATAL(m);
        return m;
}

/**
 * set_ok() - mc_rangemap_set() that must succeed, then check invariants
 * @m:     map
 * @start: first address
 * @end:   one past last
 * @value: value
 */
static void set_ok(mc_rangemap *m, uint64_t start, uint64_t end, uint64_t value)
{
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(m, start, end, value), 0);
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_check(m), 0);
}

/**
 * expect() - compare the runs of a walk over [start, end) with @want
 * @m:     map
 * @start: window start
 * @end:   window end
 * @want:  expected runs, gaps included
 * @n:     their number
 */
static void expect(const mc_rangemap *m, uint64_t start, uint64_t end, const struct run *want,
                   size_t n)
{
        struct runs rs = { .n = 0 };
        size_t i;

        CU_ASSERT_EQUAL_FATAL(mc_rangemap_walk(m, start, end, collect, &rs), 0);
        CU_ASSERT_EQUAL(rs.calls, n);
        if (rs.calls != n)
                return;
        for (i = 0; i < n; i++) {
                CU_ASSERT_EQUAL(rs.r[i].start, want[i].start);
                CU_ASSERT_EQUAL(rs.r[i].end, want[i].end);
                CU_ASSERT_EQUAL(rs.r[i].value, want[i].value);
        }
}

#define EXPECT(m, s, e, ...)                                                    \
        do {                                                                    \
                const struct run want_[] = { __VA_ARGS__ };                     \
                expect(m, s, e, want_, sizeof(want_) / sizeof(want_[0]));       \
        } while (0)

/** test_empty() - a new map holds 0 everywhere and stores nothing */
static void test_empty(void)
{
        mc_rangemap *m = new_map();

        CU_ASSERT_EQUAL(mc_rangemap_check(m), 0);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 0);
        CU_ASSERT(mc_rangemap_memory(m) > 0);
        CU_ASSERT_EQUAL(mc_rangemap_get(m, 0), 0);
        CU_ASSERT_EQUAL(mc_rangemap_get(m, UINT64_MAX), 0);
        CU_ASSERT_EQUAL(mc_rangemap_any(m, 0, UINT64_MAX), 0);
        CU_ASSERT_EQUAL(mc_rangemap_bytes(m, 0, UINT64_MAX, 0), UINT64_MAX);
        CU_ASSERT_EQUAL(mc_rangemap_bytes(m, 0, UINT64_MAX, 8), 0);
        EXPECT(m, 0, UINT64_MAX, { 0, UINT64_MAX, 0 });
        /* setting 0 on an empty map is a no-op */
        set_ok(m, 0, PAGE, 0);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 0);
        mc_rangemap_clear(m);
        CU_ASSERT_EQUAL(mc_rangemap_check(m), 0);
        CU_ASSERT_PTR_NULL(mc_rangemap_free(m));
        CU_ASSERT_PTR_NULL(mc_rangemap_free(NULL));
        CU_ASSERT_EQUAL(mc_rangemap_new(NULL), -EINVAL);
}

/** test_single() - one range reads back exactly, boundaries included */
static void test_single(void)
{
        mc_rangemap *m = new_map();

        set_ok(m, 0x1000, 0x3000, 8);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 1);
        CU_ASSERT_EQUAL(mc_rangemap_get(m, 0xfff), 0);
        CU_ASSERT_EQUAL(mc_rangemap_get(m, 0x1000), 8);
        CU_ASSERT_EQUAL(mc_rangemap_get(m, 0x2fff), 8);
        CU_ASSERT_EQUAL(mc_rangemap_get(m, 0x3000), 0);
        EXPECT(m, 0, 0x4000, { 0, 0x1000, 0 }, { 0x1000, 0x3000, 8 }, { 0x3000, 0x4000, 0 });
        /* setting the same value again, or a sub-range of it, changes nothing */
        set_ok(m, 0x1000, 0x3000, 8);
        set_ok(m, 0x2000, 0x3000, 8);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 1);
        EXPECT(m, 0, 0x4000, { 0, 0x1000, 0 }, { 0x1000, 0x3000, 8 }, { 0x3000, 0x4000, 0 });
        mc_rangemap_free(m);
}

/** test_split() - a set strictly inside a range splits it at both ends */
static void test_split(void)
{
        mc_rangemap *m = new_map();

        set_ok(m, 0, 0x10000, 1);
        set_ok(m, 0x4000, 0x8000, 2);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 3);
        EXPECT(m, 0, 0x10000, { 0, 0x4000, 1 }, { 0x4000, 0x8000, 2 }, { 0x8000, 0x10000, 1 });

        /* split at the left end only, then the right end only */
        set_ok(m, 0x2000, 0x4000, 3);
        EXPECT(m, 0, 0x10000, { 0, 0x2000, 1 }, { 0x2000, 0x4000, 3 }, { 0x4000, 0x8000, 2 },
               { 0x8000, 0x10000, 1 });
        set_ok(m, 0x8000, 0x9000, 3);
        EXPECT(m, 0, 0x10000, { 0, 0x2000, 1 }, { 0x2000, 0x4000, 3 }, { 0x4000, 0x8000, 2 },
               { 0x8000, 0x9000, 3 }, { 0x9000, 0x10000, 1 });
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 5);

        /* straddle two ranges: trims both */
        set_ok(m, 0x3000, 0x5000, 4);
        EXPECT(m, 0, 0x10000, { 0, 0x2000, 1 }, { 0x2000, 0x3000, 3 }, { 0x3000, 0x5000, 4 },
               { 0x5000, 0x8000, 2 }, { 0x8000, 0x9000, 3 }, { 0x9000, 0x10000, 1 });

        /* a hole punched into a range splits it too */
        set_ok(m, 0xa000, 0xb000, 0);
        EXPECT(m, 0x9000, 0x10000, { 0x9000, 0xa000, 1 }, { 0xa000, 0xb000, 0 },
               { 0xb000, 0x10000, 1 });
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 7);
        mc_rangemap_free(m);
}

/** test_merge() - equal touching neighbours merge: left, right and both */
static void test_merge(void)
{
        mc_rangemap *m = new_map();

        set_ok(m, 0x1000, 0x2000, 8);
        set_ok(m, 0x2000, 0x3000, 8); /* merges with left */
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 1);
        EXPECT(m, 0x1000, 0x3000, { 0x1000, 0x3000, 8 });

        set_ok(m, 0x0000, 0x1000, 8); /* merges with right */
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 1);
        EXPECT(m, 0, 0x3000, { 0, 0x3000, 8 });

        set_ok(m, 0x4000, 0x5000, 8);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 2);
        set_ok(m, 0x3000, 0x4000, 8); /* fills the gap: merges with both */
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 1);
        EXPECT(m, 0, 0x6000, { 0, 0x5000, 8 }, { 0x5000, 0x6000, 0 });

        /* a different value in the middle, then the same value back */
        set_ok(m, 0x2000, 0x3000, 1);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 3);
        set_ok(m, 0x2000, 0x3000, 8);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 1);

        /* a different value that overlaps the end of one range and merges with the next */
        set_ok(m, 0x6000, 0x8000, 2);
        set_ok(m, 0x4000, 0x6000, 2);
        EXPECT(m, 0, 0x9000, { 0, 0x4000, 8 }, { 0x4000, 0x8000, 2 }, { 0x8000, 0x9000, 0 });
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 2);

        /* overlapping both neighbours with their value merges all three */
        set_ok(m, 0x9000, 0xa000, 8);
        set_ok(m, 0x3000, 0x9000, 8);
        EXPECT(m, 0, 0xb000, { 0, 0xa000, 8 }, { 0xa000, 0xb000, 0 });
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 1);
        mc_rangemap_free(m);
}

/** test_remove() - setting 0 removes: head, tail, middle, whole, across */
static void test_remove(void)
{
        mc_rangemap *m = new_map();

        set_ok(m, 0x1000, 0x9000, 8);
        set_ok(m, 0x1000, 0x2000, 0);
        EXPECT(m, 0, 0xa000, { 0, 0x2000, 0 }, { 0x2000, 0x9000, 8 }, { 0x9000, 0xa000, 0 });
        set_ok(m, 0x8000, 0x9000, 0);
        EXPECT(m, 0, 0xa000, { 0, 0x2000, 0 }, { 0x2000, 0x8000, 8 }, { 0x8000, 0xa000, 0 });
        set_ok(m, 0x4000, 0x5000, 0);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 2);
        set_ok(m, 0, 0x100000, 0);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 0);
        EXPECT(m, 0, 0xa000, { 0, 0xa000, 0 });

        /* removing over gaps only is a no-op */
        set_ok(m, 0x1000, 0x2000, 1);
        set_ok(m, 0x3000, 0x4000, 0);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 1);
        mc_rangemap_free(m);
}

/** test_overwrite_many() - one set replaces many stored ranges */
static void test_overwrite_many(void)
{
        mc_rangemap *m = new_map();
        uint64_t i;

        for (i = 0; i < 200; i++)
                set_ok(m, i * PAGE, (i + 1) * PAGE, 1 + i % 3);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 200);

        /* straddles ranges 10 and 189 mid-page */
        set_ok(m, 10 * PAGE + 100, 189 * PAGE + 100, 8);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 10 + 1 + 1 + 1 + 10);
        EXPECT(m, 9 * PAGE, 191 * PAGE, { 9 * PAGE, 10 * PAGE, 1 + 9 % 3 },
               { 10 * PAGE, 10 * PAGE + 100, 1 + 10 % 3 },
               { 10 * PAGE + 100, 189 * PAGE + 100, 8 },
               { 189 * PAGE + 100, 190 * PAGE, 1 + 189 % 3 },
               { 190 * PAGE, 191 * PAGE, 1 + 190 % 3 });

        /* the same value as the straddled neighbours: everything merges */
        set_ok(m, 0, 200 * PAGE, 2);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 1);
        set_ok(m, 0, UINT64_MAX, 0);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 0);
        mc_rangemap_free(m);
}

/** test_walk() - gaps reported, window clipped, early stop returned */
static void test_walk(void)
{
        mc_rangemap *m = new_map();
        struct runs rs = { .n = 0 };

        set_ok(m, 0x2000, 0x4000, 1);
        set_ok(m, 0x4000, 0x5000, 2);
        set_ok(m, 0x8000, 0x9000, 1);

        EXPECT(m, 0, 0x10000, { 0, 0x2000, 0 }, { 0x2000, 0x4000, 1 }, { 0x4000, 0x5000, 2 },
               { 0x5000, 0x8000, 0 }, { 0x8000, 0x9000, 1 }, { 0x9000, 0x10000, 0 });
        /* clipped on both sides, inside ranges */
        EXPECT(m, 0x3000, 0x8800, { 0x3000, 0x4000, 1 }, { 0x4000, 0x5000, 2 },
               { 0x5000, 0x8000, 0 }, { 0x8000, 0x8800, 1 });
        /* inside one range, inside one gap, exactly one range */
        EXPECT(m, 0x2100, 0x2200, { 0x2100, 0x2200, 1 });
        EXPECT(m, 0x6000, 0x7000, { 0x6000, 0x7000, 0 });
        EXPECT(m, 0x8000, 0x9000, { 0x8000, 0x9000, 1 });
        /* window ending exactly where a range starts: the range is not visited */
        EXPECT(m, 0x5000, 0x8000, { 0x5000, 0x8000, 0 });

        /* early stop: the callback's value comes back, no further calls */
        rs.stop_at = 2;
        CU_ASSERT_EQUAL(mc_rangemap_walk(m, 0, 0x10000, collect, &rs), 7);
        CU_ASSERT_EQUAL(rs.calls, 2);
        rs = (struct runs){ .stop_at = 6 }; /* stop on the trailing gap */
        CU_ASSERT_EQUAL(mc_rangemap_walk(m, 0, 0x10000, collect, &rs), 7);
        CU_ASSERT_EQUAL(rs.calls, 6);
        rs = (struct runs){ .stop_at = 1 };
        CU_ASSERT_EQUAL(mc_rangemap_walk(m, 0x2000, 0x3000, collect, &rs), 7);
        CU_ASSERT_EQUAL(rs.calls, 1);
        mc_rangemap_free(m);
}

/** test_any_bytes() - mc_rangemap_any() and mc_rangemap_bytes() */
static void test_any_bytes(void)
{
        mc_rangemap *m = new_map();

        set_ok(m, 0x2000, 0x4000, 1);
        set_ok(m, 0x4000, 0x5000, 8);
        set_ok(m, 0x8000, 0x9000, 1);

        CU_ASSERT_EQUAL(mc_rangemap_any(m, 0, 0x2000), 0);
        CU_ASSERT_EQUAL(mc_rangemap_any(m, 0, 0x2001), 1);
        CU_ASSERT_EQUAL(mc_rangemap_any(m, 0x5000, 0x8000), 0);
        CU_ASSERT_EQUAL(mc_rangemap_any(m, 0x4fff, 0x8000), 1);
        CU_ASSERT_EQUAL(mc_rangemap_any(m, 0x7fff, 0x8001), 1);
        CU_ASSERT_EQUAL(mc_rangemap_any(m, 0x9000, UINT64_MAX), 0);
        CU_ASSERT_EQUAL(mc_rangemap_any(m, 0x3000, 0x3000), 0); /* empty window */
        CU_ASSERT_EQUAL(mc_rangemap_any(m, 0x3001, 0x3000), 0);

        CU_ASSERT_EQUAL(mc_rangemap_bytes(m, 0, 0x10000, 1), 0x3000);
        CU_ASSERT_EQUAL(mc_rangemap_bytes(m, 0, 0x10000, 8), 0x1000);
        CU_ASSERT_EQUAL(mc_rangemap_bytes(m, 0, 0x10000, 2), 0);
        CU_ASSERT_EQUAL(mc_rangemap_bytes(m, 0, 0x10000, 0), 0x10000 - 0x4000);
        CU_ASSERT_EQUAL(mc_rangemap_bytes(m, 0x3000, 0x8800, 1), 0x1800);
        CU_ASSERT_EQUAL(mc_rangemap_bytes(m, 0x3000, 0x8800, 0), 0x3000);
        CU_ASSERT_EQUAL(mc_rangemap_bytes(m, 0x3000, 0x3000, 0), 0);
        CU_ASSERT_EQUAL(mc_rangemap_bytes(m, 0x4000, 0x3000, 1), 0);
        mc_rangemap_free(m);
}

/**
 * test_count_memory() - count follows the ranges; memory follows the nodes
 *
 * Ranges share nodes, so memory is per node, not per range: it grows when
 * the first range needs a leaf, then not while that leaf has room, however
 * large the ranges are, and goes back to the bare struct after a clear.
 */
static void test_count_memory(void)
{
        mc_rangemap *m = new_map();
        size_t empty = mc_rangemap_memory(m), one;
        uint64_t i;

        set_ok(m, 0, PAGE, 1);
        one = mc_rangemap_memory(m);
        CU_ASSERT(one > empty);
        /* a huge range costs the same as a small one */
        set_ok(m, 1ULL << 40, 1ULL << 50, 8);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 2);
        CU_ASSERT_EQUAL(mc_rangemap_memory(m), one);
        set_ok(m, 1ULL << 44, (1ULL << 44) + PAGE, 0);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 3);
        CU_ASSERT_EQUAL(mc_rangemap_memory(m), one);
        mc_rangemap_clear(m);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 0);
        CU_ASSERT_EQUAL(mc_rangemap_memory(m), empty);
        CU_ASSERT_EQUAL(mc_rangemap_check(m), 0);

        /* usable again after clear; 1000 ranges stay within 64 bytes each */
        for (i = 0; i < 1000; i++)
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(m, 2 * i * PAGE, (2 * i + 1) * PAGE, 1 + i % 2), 0);
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_check(m), 0);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 1000);
        CU_ASSERT(mc_rangemap_memory(m) <= 64 * 1000);
        /* removing them all gives every node back */
        set_ok(m, 0, UINT64_MAX, 0);
        CU_ASSERT_EQUAL(mc_rangemap_memory(m), empty);
        mc_rangemap_free(m);
}

/** test_einval() - bad windows are refused and change nothing */
static void test_einval(void)
{
        mc_rangemap *m = new_map();
        struct runs rs = { .n = 0 };

        set_ok(m, 0x1000, 0x2000, 1);
        set_ok(m, 0x3000, 0x4000, 2);

        CU_ASSERT_EQUAL(mc_rangemap_set(m, 0x2000, 0x2000, 1), -EINVAL);
        CU_ASSERT_EQUAL(mc_rangemap_set(m, 0x3000, 0x1000, 0), -EINVAL);
        CU_ASSERT_EQUAL(mc_rangemap_set(m, UINT64_MAX, UINT64_MAX, 8), -EINVAL);
        CU_ASSERT_EQUAL(mc_rangemap_set(NULL, 0, 1, 1), -EINVAL);
        CU_ASSERT_EQUAL(mc_rangemap_walk(m, 0x2000, 0x2000, collect, &rs), -EINVAL);
        CU_ASSERT_EQUAL(mc_rangemap_walk(m, 0x4000, 0x1000, collect, &rs), -EINVAL);
        CU_ASSERT_EQUAL(rs.calls, 0);

        CU_ASSERT_EQUAL(mc_rangemap_check(m), 0);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 2);
        EXPECT(m, 0, 0x5000, { 0, 0x1000, 0 }, { 0x1000, 0x2000, 1 }, { 0x2000, 0x3000, 0 },
               { 0x3000, 0x4000, 2 }, { 0x4000, 0x5000, 0 });
        mc_rangemap_free(m);
}

/**
 * test_top_of_space() - ranges near UINT64_MAX
 *
 * Ranges are half-open and end is a uint64_t, so the largest range is
 * [x, UINT64_MAX): the single address UINT64_MAX can never hold a value.
 */
static void test_top_of_space(void)
{
        mc_rangemap *m = new_map();
        const uint64_t top = UINT64_MAX;

        set_ok(m, top - 0x2000, top, 8);
        CU_ASSERT_EQUAL(mc_rangemap_get(m, top - 0x2001), 0);
        CU_ASSERT_EQUAL(mc_rangemap_get(m, top - 0x2000), 8);
        CU_ASSERT_EQUAL(mc_rangemap_get(m, top - 1), 8);
        CU_ASSERT_EQUAL(mc_rangemap_get(m, top), 0); /* never storable */
        CU_ASSERT_EQUAL(mc_rangemap_any(m, top - 1, top), 1);
        CU_ASSERT_EQUAL(mc_rangemap_bytes(m, 0, top, 8), 0x2000);
        EXPECT(m, top - 0x3000, top, { top - 0x3000, top - 0x2000, 0 }, { top - 0x2000, top, 8 });

        /* split at the very top */
        set_ok(m, top - 1, top, 1);
        EXPECT(m, top - 0x2000, top, { top - 0x2000, top - 1, 8 }, { top - 1, top, 1 });
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 2);

        /* the whole representable space, one range */
        set_ok(m, 0, top, 2);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 1);
        CU_ASSERT_EQUAL(mc_rangemap_bytes(m, 0, top, 2), top);
        CU_ASSERT_EQUAL(mc_rangemap_bytes(m, 0, top, 0), 0);
        CU_ASSERT_EQUAL(mc_rangemap_get(m, 0), 2);
        CU_ASSERT_EQUAL(mc_rangemap_get(m, top - 1), 2);
        CU_ASSERT_EQUAL(mc_rangemap_get(m, top), 0);
        set_ok(m, 0, 1, 0);
        set_ok(m, top - 1, top, 0);
        EXPECT(m, 0, top, { 0, 1, 0 }, { 1, top - 1, 2 }, { top - 1, top, 0 });
        mc_rangemap_free(m);
}

/** xorshift64() - small deterministic PRNG, returns the next value of *s */
static uint64_t xorshift64(uint64_t *s)
{
        uint64_t x = *s;

        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        return *s = x;
}

#define SPACE_PAGES 4096

/**
 * struct model_cmp - state for comparing a walk with the page model
 * @model: value of each page
 * @pos:   next page expected
 * @prev:  value of the previous run (to check maximality); UINT64_MAX at first
 * @bad:   set on the first mismatch
 */
struct model_cmp {
        const uint64_t *model;
        uint64_t pos;
        uint64_t prev;
        int bad;
};

/**
 * model_walk() - walk callback checking each run against the page model
 * @start:    run start (bytes)
 * @end:      run end (bytes)
 * @value:    run value
 * @userdata: struct model_cmp
 *
 * Return: 0, or 1 on the first mismatch (stops the walk)
 */
static int model_walk(uint64_t start, uint64_t end, uint64_t value, void *userdata)
{
        struct model_cmp *c = userdata;
        uint64_t p;

        if (start != c->pos * PAGE || start % PAGE || end % PAGE || value == c->prev)
                return c->bad = 1;
        for (p = start / PAGE; p < end / PAGE; p++)
                if (c->model[p] != value)
                        return c->bad = 1;
        c->pos = end / PAGE;
        c->prev = value;
        return 0;
}

/** test_random_model() - 20k random set()s against a per-page array */
static void test_random_model(void)
{
        static const uint64_t values[] = { 0, 1, 2, 8 };
        uint64_t *model = calloc(SPACE_PAGES, sizeof(*model));
        mc_rangemap *m = new_map();
        uint64_t seed = 0x9e3779b97f4a7c15ULL, s;
        const char *env = getenv("MC_TEST_SEED");
        size_t step, p;

        CU_ASSERT_PTR_NOT_NULL_FATAL(model);
        if (env && strtoull(env, NULL, 0))
                seed = strtoull(env, NULL, 0); /* xorshift needs a non-zero state */
        s = seed;
        printf("\n    seed %#" PRIx64 " ", seed);

        for (step = 0; step < 20000; step++) {
                uint64_t a = xorshift64(&s) % SPACE_PAGES, len, v, qa, qb, want, runs;
                struct model_cmp c = { .model = model, .prev = UINT64_MAX };

                /* mostly short ranges, sometimes long ones */
                len = 1 + xorshift64(&s) % (xorshift64(&s) % 8 ? 16 : SPACE_PAGES);
                if (a + len > SPACE_PAGES)
                        len = SPACE_PAGES - a;
                v = values[xorshift64(&s) % 4];

                CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(m, a * PAGE, (a + len) * PAGE, v), 0);
                for (p = a; p < a + len; p++)
                        model[p] = v;
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_check(m), 0);

                /* the whole space as maximal runs equals the model */
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_walk(m, 0, SPACE_PAGES * PAGE, model_walk, &c), 0);
                CU_ASSERT_FATAL(!c.bad && c.pos == SPACE_PAGES);
                /* and nothing beyond it */
                CU_ASSERT_FATAL(!mc_rangemap_any(m, SPACE_PAGES * PAGE, UINT64_MAX));

                /* count = number of maximal non-zero runs of the model */
                for (runs = 0, p = 0; p < SPACE_PAGES; p++)
                        if (model[p] && (p == 0 || model[p - 1] != model[p]))
                                runs++;
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_count(m), runs);

                /* get, any and bytes on a random point and window */
                p = xorshift64(&s) % SPACE_PAGES;
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_get(m, p * PAGE + xorshift64(&s) % PAGE), model[p]);
                qa = xorshift64(&s) % SPACE_PAGES;
                qb = qa + 1 + xorshift64(&s) % 64;
                if (qb > SPACE_PAGES)
                        qb = SPACE_PAGES;
                v = values[xorshift64(&s) % 4];
                for (want = 0, runs = 0, p = qa; p < qb; p++) {
                        want += model[p] == v;
                        runs |= model[p] != 0;
                }
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_bytes(m, qa * PAGE, qb * PAGE, v), want * PAGE);
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_any(m, qa * PAGE, qb * PAGE), (int)runs);
        }
        mc_rangemap_free(m);
        free(model);
}

#define LARGE_N 100000ULL

/** test_large() - 1e5 fragmented ranges: count, memory per range, bulk removal */
static void test_large(void)
{
        mc_rangemap *m = new_map();
        size_t mem;
        uint64_t i;

        /* every other page private: 1e5 separate ranges */
        for (i = 0; i < LARGE_N; i++)
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(m, 2 * i * PAGE, (2 * i + 1) * PAGE, 8), 0);
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_check(m), 0);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), LARGE_N);
        mem = mc_rangemap_memory(m);
        printf("\n    %zu ranges, %zu bytes, %.2f bytes/range ", mc_rangemap_count(m), mem,
               (double)mem / (double)mc_rangemap_count(m));
        CU_ASSERT(mem / mc_rangemap_count(m) <= 64);
        CU_ASSERT_EQUAL(mc_rangemap_bytes(m, 0, 2 * LARGE_N * PAGE, 8), LARGE_N * PAGE);

        /* fill the gaps with another value: 2e5 touching ranges, none merged */
        for (i = 0; i < LARGE_N; i++)
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(m, (2 * i + 1) * PAGE, (2 * i + 2) * PAGE, 1), 0);
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_check(m), 0);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 2 * LARGE_N);
        CU_ASSERT(mc_rangemap_memory(m) / mc_rangemap_count(m) <= 64);

        /* one set over almost all of them */
        set_ok(m, PAGE / 2, (2 * LARGE_N - 1) * PAGE + PAGE / 2, 2);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 3);
        EXPECT(m, 0, 2 * LARGE_N * PAGE + PAGE, { 0, PAGE / 2, 8 },
               { PAGE / 2, (2 * LARGE_N - 1) * PAGE + PAGE / 2, 2 },
               { (2 * LARGE_N - 1) * PAGE + PAGE / 2, 2 * LARGE_N * PAGE, 1 },
               { 2 * LARGE_N * PAGE, 2 * LARGE_N * PAGE + PAGE, 0 });

        /* rebuild fragmented, then remove all with one call */
        for (i = 0; i < LARGE_N; i++)
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(m, 2 * i * PAGE, (2 * i + 1) * PAGE, 1 + i % 2), 0);
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_check(m), 0);
        set_ok(m, 0, UINT64_MAX, 0);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 0);
        mc_rangemap_free(m);
}

int main(void)
{
        static const struct mc_test tests[] = {
                { "empty map", test_empty },
                { "single range", test_single },
                { "split at both ends", test_split },
                { "merge left/right/both", test_merge },
                { "set 0 removes", test_remove },
                { "overwrite spanning many ranges", test_overwrite_many },
                { "walk: gaps, clipping, early stop", test_walk },
                { "any and bytes", test_any_bytes },
                { "count and memory", test_count_memory },
                { "-EINVAL leaves the map unchanged", test_einval },
                { "near UINT64_MAX", test_top_of_space },
                { "random set() vs per-page model", test_random_model },
                { "1e5 fragmented ranges", test_large },
        };

        return mc_test_run("rangemap", NULL, NULL, tests, sizeof(tests) / sizeof(tests[0]));
}
