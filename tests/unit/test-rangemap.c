// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * test-rangemap.c - CUnit suite for lib/rangemap.c.
 *
 * Every mutation is followed by mc_rangemap_check(), which verifies the
 * coalescing invariants and the B+tree's own (key order, fill bounds, equal
 * leaf depth, gap keys, counts). Three tests compare the map with a plain
 * per-page array: the short property test (20,000 random set() calls), the
 * long differential one (phases that fragment, overwrite, merge and erode a
 * tree three levels deep) and the walk/any/bytes agreement test. Their
 * seeds are printed and can be fixed with MC_TEST_SEED=<n>.
 *
 * -ENOMEM: this file defines malloc() and calloc() (forwarding to glibc's
 * __libc_malloc() and __libc_calloc()) so that a test can make the N-th
 * allocation fail. With -fvisibility=hidden they replace the allocator only
 * for the code linked into this program (the test and the static
 * libmemconv-core), not for CUnit or libc. Under AddressSanitizer, whose
 * allocator this would bypass, the hook is left out and the -ENOMEM test
 * only says so.
 */
#undef NDEBUG

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "test-util.h"

#include "rangemap.h"

#if defined(__SANITIZE_ADDRESS__)
#define FAIL_ALLOC 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(memory_sanitizer)
#define FAIL_ALLOC 0
#endif
#endif
#if !defined(FAIL_ALLOC) && defined(__GLIBC__)
#define FAIL_ALLOC 1
#endif
#ifndef FAIL_ALLOC
#define FAIL_ALLOC 0
#endif
/* glibc's own heap statistics (mallinfo2(), glibc 2.33); meaningless under a sanitizer's allocator */
#if FAIL_ALLOC && (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
#define HEAP_STATS 1
#else
#define HEAP_STATS 0
#endif

#if FAIL_ALLOC
extern void *__libc_malloc(size_t size);
extern void *__libc_calloc(size_t nmemb, size_t size);

/* allocations to let through before one fails; -1: never fail */
static long alloc_countdown = -1;

/**
 * alloc_fails() - count one allocation against alloc_countdown
 * Return: true if this one must fail (the countdown then stops)
 */
static bool alloc_fails(void)
{
        if (alloc_countdown < 0)
                return false;
        return alloc_countdown-- == 0;
}

/**
 * malloc() - glibc's malloc(), or NULL when alloc_countdown says so
 * @size: bytes
 * Return: the memory (free() with glibc's free()), or NULL
 */
void *malloc(size_t size)
{
        return alloc_fails() ? NULL : __libc_malloc(size);
}

/**
 * calloc() - glibc's calloc(), or NULL when alloc_countdown says so
 * @nmemb: elements
 * @size:  bytes each
 * Return: the zeroed memory, or NULL
 */
void *calloc(size_t nmemb, size_t size)
{
        return alloc_fails() ? NULL : __libc_calloc(nmemb, size);
}
#endif

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

/**
 * test_seed() - the PRNG seed for a randomized test
 * @def: the default seed
 *
 * Return: MC_TEST_SEED if set and non-zero, else @def (printed either way)
 */
static uint64_t test_seed(uint64_t def)
{
        const char *env = getenv("MC_TEST_SEED");
        uint64_t seed = def;

        if (env && strtoull(env, NULL, 0))
                seed = strtoull(env, NULL, 0); /* xorshift needs a non-zero state */
        printf("\n    seed %#" PRIx64 " ", seed);
        return seed;
}

/** test_random_model() - 20k random set()s against a per-page array */
static void test_random_model(void)
{
        static const uint64_t values[] = { 0, 1, 2, 8 };
        uint64_t *model = calloc(SPACE_PAGES, sizeof(*model));
        mc_rangemap *m = new_map();
        uint64_t s;
        size_t step, p;

        CU_ASSERT_PTR_NOT_NULL_FATAL(model);
        s = test_seed(0x9e3779b97f4a7c15ULL);

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

#define DIFF_PAGES 8192
#define DIFF_STEPS 100000
#define DIFF_VALUES 7 /* values 0..6 */

/**
 * struct diff - the per-page reference of the differential test
 * @page: value of each page
 * @runs: number of maximal non-zero runs of @page (what count() must say)
 */
struct diff {
        uint64_t page[DIFF_PAGES];
        size_t runs;
};

/**
 * diff_starts_run() - whether page @p starts a maximal non-zero run
 * @d: reference
 * @p: page
 * Return: 1 or 0
 */
static int diff_starts_run(const struct diff *d, uint64_t p)
{
        return d->page[p] != 0 && (p == 0 || d->page[p - 1] != d->page[p]);
}

/**
 * diff_set() - the reference's set(): pages [@a, @b) get @v
 * @d: reference
 * @a: first page
 * @b: one past the last page
 * @v: value
 *
 * Keeps @d->runs current in O(@b - @a): only pages @a..@b can start or
 * stop starting a run.
 */
static void diff_set(struct diff *d, uint64_t a, uint64_t b, uint64_t v)
{
        uint64_t hi = b < DIFF_PAGES ? b + 1 : DIFF_PAGES, p;

        for (p = a; p < hi; p++)
                d->runs -= (size_t) diff_starts_run(d, p);
        for (p = a; p < b; p++)
                d->page[p] = v;
        for (p = a; p < hi; p++)
                d->runs += (size_t) diff_starts_run(d, p);
}

/**
 * struct diff_cmp - state for comparing a walk with the reference
 * @d:    reference
 * @pos:  next address expected
 * @prev: value of the previous run (UINT64_MAX before the first)
 * @bad:  set on the first mismatch
 */
struct diff_cmp {
        const struct diff *d;
        uint64_t pos;
        uint64_t prev;
        int bad;
};

/**
 * diff_walk() - walk callback checking each run against the reference
 * @start:    run start
 * @end:      run end
 * @value:    run value
 * @userdata: struct diff_cmp
 *
 * Runs must be contiguous, page-aligned (every set() is), maximal and
 * hold the reference's value on every page.
 *
 * Return: 0, or 1 on the first mismatch (stops the walk)
 */
static int diff_walk(uint64_t start, uint64_t end, uint64_t value, void *userdata)
{
        struct diff_cmp *c = userdata;

        if (start != c->pos || start >= end || start % PAGE || end % PAGE || value == c->prev)
                return c->bad = 1;
        for (uint64_t p = start / PAGE; p < end / PAGE; p++)
                if (c->d->page[p] != value)
                        return c->bad = 1;
        c->pos = end;
        c->prev = value;
        return 0;
}

/**
 * diff_compare() - compare pages [@a, @b) of the map with the reference
 * @m: map
 * @d: reference
 * @a: first page
 * @b: one past the last page (<= DIFF_PAGES)
 */
static void diff_compare(const mc_rangemap *m, const struct diff *d, uint64_t a, uint64_t b)
{
        struct diff_cmp c = { .d = d, .pos = a * PAGE, .prev = UINT64_MAX };

        CU_ASSERT_EQUAL_FATAL(mc_rangemap_walk(m, a * PAGE, b * PAGE, diff_walk, &c), 0);
        CU_ASSERT_FATAL(!c.bad && c.pos == b * PAGE);
}

/**
 * test_differential() - a long random run against a per-page reference
 *
 * 100,000 set() calls over 8192 pages, in phases of 10,000: fragmenting
 * (short ranges of non-zero values: several thousand ranges, a tree three
 * levels deep), churning (mixed lengths, value 0 included, a quarter of
 * them taking a neighbour's value so that they merge), eroding (mostly
 * removals, which underfill and merge nodes) and bulk (one in eight calls
 * over up to a quarter of the space, removing or replacing thousands of
 * ranges at once). After every call: mc_rangemap_check(), the count and
 * the window around the call against the reference; every 500 calls the
 * whole space.
 */
static void test_differential(void)
{
        struct diff *d = calloc(1, sizeof(*d));
        mc_rangemap *m = new_map();
        size_t max_count = 0;
        uint64_t s;

        CU_ASSERT_PTR_NOT_NULL_FATAL(d);
        s = test_seed(0x2545f4914f6cdd1dULL);

        for (size_t step = 0; step < DIFF_STEPS; step++) {
                unsigned phase = (unsigned) (step / 10000) % 4;
                uint64_t a = xorshift64(&s) % DIFF_PAGES, len, v, lo, hi, p;

                switch (phase) {
                case 0: /* fragment */
                        len = 1 + xorshift64(&s) % 3;
                        v = 1 + xorshift64(&s) % (DIFF_VALUES - 1);
                        break;
                case 1: /* churn */
                        len = 1 + xorshift64(&s) % (xorshift64(&s) % 8 ? 16 : 256);
                        v = xorshift64(&s) % 4 ? xorshift64(&s) % DIFF_VALUES : 0;
                        break;
                case 2: /* erode */
                        len = 1 + xorshift64(&s) % 8;
                        v = xorshift64(&s) % 4 ? 0 : 1 + xorshift64(&s) % (DIFF_VALUES - 1);
                        break;
                default: /* bulk, between fragmenting calls */
                        if (xorshift64(&s) % 8 == 0) {
                                len = 1 + xorshift64(&s) % (DIFF_PAGES / 4);
                                v = xorshift64(&s) % DIFF_VALUES;
                        } else {
                                len = 1 + xorshift64(&s) % 3;
                                v = 1 + xorshift64(&s) % (DIFF_VALUES - 1);
                        }
                        break;
                }
                if (a + len > DIFF_PAGES)
                        len = DIFF_PAGES - a;
                if (phase == 1 && xorshift64(&s) % 4 == 0) /* take a neighbour's value: merges */
                        v = a > 0 && xorshift64(&s) % 2 ? d->page[a - 1] : a + len < DIFF_PAGES ? d->page[a + len] : v;

                CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(m, a * PAGE, (a + len) * PAGE, v), 0);
                diff_set(d, a, a + len, v);
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_check(m), 0);
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_count(m), d->runs);
                if (d->runs > max_count)
                        max_count = d->runs;

                lo = a > 3 ? a - 3 : 0;
                hi = a + len + 3 < DIFF_PAGES ? a + len + 3 : DIFF_PAGES;
                diff_compare(m, d, lo, hi);
                p = xorshift64(&s) % DIFF_PAGES;
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_get(m, p * PAGE + xorshift64(&s) % PAGE), d->page[p]);

                if (step % 500 == 499) {
                        diff_compare(m, d, 0, DIFF_PAGES);
                        CU_ASSERT_FATAL(!mc_rangemap_any(m, DIFF_PAGES * PAGE, UINT64_MAX));
                }
        }
        printf("(up to %zu ranges) ", max_count);
        /* more leaves than one inner node can hold: the tree had at least three levels */
        CU_ASSERT(max_count > 2700);
        mc_rangemap_free(m);
        free(d);
}

/**
 * struct agree - what a walk over a window saw, for test_walk_any_bytes()
 * @m:     the map
 * @d:     the reference
 * @pos:   next address expected
 * @prev:  value of the previous run (UINT64_MAX before the first)
 * @sum:   bytes seen per value (index: value, 0..DIFF_VALUES - 1)
 * @runs:  runs seen
 * @bad:   set on the first inconsistency
 */
struct agree {
        const mc_rangemap *m;
        const struct diff *d;
        uint64_t pos;
        uint64_t prev;
        uint64_t sum[DIFF_VALUES];
        size_t runs;
        int bad;
};

/**
 * agree_value() - the reference's value at a byte address
 * @d:    reference
 * @addr: address
 * Return: the page's value, 0 beyond the reference's pages
 */
static uint64_t agree_value(const struct diff *d, uint64_t addr)
{
        return addr / PAGE < DIFF_PAGES ? d->page[addr / PAGE] : 0;
}

/**
 * agree_walk() - walk callback: runs contiguous, maximal, and equal to
 * get() and the reference at both ends; sums bytes per value
 * @start:    run start
 * @end:      run end
 * @value:    run value
 * @userdata: struct agree
 * Return: 0, or 1 on the first inconsistency
 */
static int agree_walk(uint64_t start, uint64_t end, uint64_t value, void *userdata)
{
        struct agree *g = userdata;

        if (start != g->pos || start >= end || value == g->prev || value >= DIFF_VALUES)
                return g->bad = 1;
        if (mc_rangemap_get(g->m, start) != value || mc_rangemap_get(g->m, end - 1) != value ||
            agree_value(g->d, start) != value || agree_value(g->d, end - 1) != value)
                return g->bad = 1;
        g->sum[value] += end - start;
        g->runs++;
        g->pos = end;
        g->prev = value;
        return 0;
}

/**
 * test_walk_any_bytes() - walk, any, bytes and get agree on any window
 *
 * A random map of a few thousand ranges over 4096 pages; 5000 windows with
 * byte (not page) boundaries, some empty of ranges, some reaching
 * UINT64_MAX. For each: the walk is contiguous and maximal and matches
 * get() and the reference; bytes(v) equals the walk's total for v (v = 0
 * the gaps, an absent value 0 bytes); the totals add up to the window;
 * any() is true exactly when the walk saw a non-zero run; and bytes(v)
 * matches the reference page by page.
 */
static void test_walk_any_bytes(void)
{
        struct diff *d = calloc(1, sizeof(*d));
        mc_rangemap *m = new_map();
        const uint64_t space = 4096;
        uint64_t s;

        CU_ASSERT_PTR_NOT_NULL_FATAL(d);
        s = test_seed(0x853c49e6748fea9bULL);
        for (size_t i = 0; i < 20000; i++) {
                uint64_t a = xorshift64(&s) % space, len = 1 + xorshift64(&s) % (xorshift64(&s) % 16 ? 4 : 64);
                uint64_t v = xorshift64(&s) % 5 ? 1 + xorshift64(&s) % (DIFF_VALUES - 1) : 0;

                if (a + len > space)
                        len = space - a;
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(m, a * PAGE, (a + len) * PAGE, v), 0);
                diff_set(d, a, a + len, v);
        }
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_check(m), 0);
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_count(m), d->runs);

        for (size_t w = 0; w < 5000; w++) {
                uint64_t x = xorshift64(&s) % ((space + 8) * PAGE), y, total = 0, want[DIFF_VALUES] = { 0 };
                struct agree g = { .m = m, .d = d, .pos = 0, .prev = UINT64_MAX };

                switch (w % 4) {
                case 0:
                        y = x + 1 + xorshift64(&s) % (4 * PAGE); /* a few pages */
                        break;
                case 1:
                        y = x + 1 + xorshift64(&s) % (256 * PAGE);
                        break;
                case 2:
                        y = x + 1 + xorshift64(&s) % 64; /* inside one or two pages */
                        break;
                default:
                        y = xorshift64(&s) % 2 ? UINT64_MAX : x + 1 + xorshift64(&s) % (space * PAGE);
                        break;
                }
                if (w % 97 == 0)
                        x = 0;
                g.pos = x;
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_walk(m, x, y, agree_walk, &g), 0);
                CU_ASSERT_FATAL(!g.bad && g.pos == y && g.runs > 0);

                for (uint64_t v = 0; v < DIFF_VALUES; v++) {
                        CU_ASSERT_EQUAL_FATAL(mc_rangemap_bytes(m, x, y, v), g.sum[v]);
                        total += g.sum[v];
                }
                CU_ASSERT_EQUAL_FATAL(total, y - x);
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_bytes(m, x, y, 99), 0);
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_any(m, x, y), g.sum[0] != y - x);

                /* and the reference, page by page (beyond it everything is 0) */
                for (uint64_t p = x / PAGE; p < space && p * PAGE < y; p++) {
                        uint64_t ps = p * PAGE > x ? p * PAGE : x, pe = (p + 1) * PAGE < y ? (p + 1) * PAGE : y;

                        want[d->page[p]] += pe - ps;
                }
                for (uint64_t v = 1; v < DIFF_VALUES; v++)
                        CU_ASSERT_EQUAL_FATAL(g.sum[v], want[v]);
        }
        mc_rangemap_free(m);
        free(d);
}

/**
 * fingerprint_walk() - walk callback mixing each run into a hash
 * @start:    run start
 * @end:      run end
 * @value:    run value
 * @userdata: uint64_t hash, updated
 * Return: 0
 */
static int fingerprint_walk(uint64_t start, uint64_t end, uint64_t value, void *userdata)
{
        uint64_t *h = userdata;
        uint64_t x[3] = { start, end, value };

        for (int i = 0; i < 3; i++)
                *h = (*h ^ x[i]) * 0x100000001b3ULL;
        return 0;
}

/**
 * map_fingerprint() - a hash of every stored range, in order
 * @m: map
 * Return: the hash (equal maps hash equally)
 */
static uint64_t map_fingerprint(const mc_rangemap *m)
{
        uint64_t h = 0xcbf29ce484222325ULL;

        CU_ASSERT_EQUAL(mc_rangemap_walk(m, 0, UINT64_MAX, fingerprint_walk, &h), 0);
        return h;
}

#if FAIL_ALLOC
/**
 * set_enomem() - one set(), failing its 1st, 2nd, ... allocation first
 * @m:     map
 * @start: first address
 * @end:   one past the last
 * @value: value
 *
 * Each failing attempt must return -ENOMEM and leave the map exactly as it
 * was: same ranges, count, memory, and a consistent tree.
 *
 * Return: the number of attempts that failed (= allocations the call made)
 */
static unsigned set_enomem(mc_rangemap *m, uint64_t start, uint64_t end, uint64_t value)
{
        uint64_t fp = map_fingerprint(m);
        size_t count = mc_rangemap_count(m), mem = mc_rangemap_memory(m);
        unsigned k;
        int r;

        for (k = 0;; k++) {
                alloc_countdown = k;
                r = mc_rangemap_set(m, start, end, value);
                alloc_countdown = -1;
                if (r == 0)
                        break;
                CU_ASSERT_EQUAL_FATAL(r, -ENOMEM);
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_check(m), 0);
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_count(m), count);
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_memory(m), mem);
                CU_ASSERT_EQUAL_FATAL(map_fingerprint(m), fp);
                CU_ASSERT_FATAL(k < 64);
        }
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_check(m), 0);
        return k;
}
#endif

/**
 * test_enomem() - a failed allocation leaves the map unchanged
 *
 * mc_rangemap_new() with a failing calloc() leaves its output alone. Then
 * 6000 single pages at random in 64 MiB (a tree three levels deep, dense
 * enough that later calls trim, split and merge their neighbours),
 * followed by 3000 random overwrites, holes and removals: every set() is
 * first made to fail at each of its allocations in turn (set_enomem()).
 * The splits reached the root at least once (three allocations in one
 * call), and removals that punch no hole never allocate at all.
 */
static void test_enomem(void)
{
#if FAIL_ALLOC
        mc_rangemap *m = NULL, *sentinel = (mc_rangemap *) &m;
        unsigned most = 0, refused = 0, k;
        const uint64_t pages = 1ULL << 14;
        uint64_t s;

        m = sentinel;
        alloc_countdown = 0;
        CU_ASSERT_EQUAL(mc_rangemap_new(&m), -ENOMEM);
        alloc_countdown = -1;
        CU_ASSERT_PTR_EQUAL(m, sentinel);

        m = new_map();
        s = test_seed(0x9e3779b97f4a7c15ULL);
        for (size_t i = 0; i < 6000; i++) {
                uint64_t a = xorshift64(&s) % pages;

                k = set_enomem(m, a * PAGE, (a + 1) * PAGE, 1 + xorshift64(&s) % 3);
                refused += k;
                most = k > most ? k : most;
        }
        for (size_t i = 0; i < 3000; i++) {
                uint64_t a = xorshift64(&s) % pages, len = 1 + xorshift64(&s) % (i % 10 ? 4 : 4096);
                uint64_t off = xorshift64(&s) % PAGE, v = xorshift64(&s) % 4;
                uint64_t start = a * PAGE + off, end = (a + len) * PAGE + off / 2;
                struct runs around = { .n = 0 };

                /* a removal allocates only when it cuts one range in two */
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_walk(m, start ? start - 1 : 0, end + 1, collect, &around), 0);
                k = set_enomem(m, start, end, v);
                if (v == 0 && k > 0)
                        CU_ASSERT(around.calls == 1 && around.r[0].value != 0);
                refused += k;
                most = k > most ? k : most;
        }
        printf("\n    %u allocations refused, up to %u in one call ", refused, most);
        CU_ASSERT(refused > 0);
        CU_ASSERT(most >= 3); /* leaf, inner node and new root */
        mc_rangemap_free(m);
#else
        printf("\n    skipped: no malloc() hook under a sanitizer ");
#endif
}

/**
 * build_ranges() - @n random ranges in the form mc_rangemap_build() takes
 * @seed: PRNG state
 * @n:    how many
 * Return: malloc()ed array (owned by the caller); touching neighbours never
 * share a value, gaps and values vary
 */
static struct mc_rangemap_range *build_ranges(uint64_t *seed, size_t n)
{
        struct mc_rangemap_range *e = malloc((n + 1) * sizeof(*e));
        uint64_t pos = PAGE;

        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        for (size_t i = 0; i < n; i++) {
                uint64_t gap = xorshift64(seed) % 3, len = 1 + xorshift64(seed) % 4;
                uint64_t v = 1 + xorshift64(seed) % 3;

                if (gap == 0 && i > 0 && v == e[i - 1].value)
                        v = v % 3 + 1;
                e[i].start = pos + gap * PAGE;
                e[i].end = e[i].start + len * PAGE;
                e[i].value = v;
                pos = e[i].end;
        }
        return e;
}

/**
 * test_build() - mc_rangemap_build() gives the map set() gives, at every size
 * around a node's width and across levels, replaces what was there, keeps
 * every invariant under later set()s, and refuses ranges not in stored form
 */
static void test_build(void)
{
        static const size_t sizes[] = { 0, 1, 2, 20, 21, 41, 42, 43, 84, 85, 127, 1000, 2645, 2646,
                                        2647, 5000, 200000 };
        uint64_t seed = test_seed(0x6a09e667f3bcc908ULL);

        for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
                size_t n = sizes[si];
                struct mc_rangemap_range *e = build_ranges(&seed, n);
                mc_rangemap *a = new_map(), *b = new_map();

                /* a holds something before: build replaces it */
                set_ok(a, 0, PAGE / 2, 9);
                set_ok(a, 1ULL << 50, (1ULL << 50) + PAGE, 9);
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_build(a, e, n), 0);
                for (size_t i = 0; i < n; i++)
                        CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(b, e[i].start, e[i].end, e[i].value), 0);
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_check(a), 0);
                CU_ASSERT_EQUAL(mc_rangemap_count(a), n);
                CU_ASSERT_EQUAL(map_fingerprint(a), map_fingerprint(b));
                CU_ASSERT(mc_rangemap_memory(a) <= mc_rangemap_memory(b) || n < 3);
                if (n > 0) {
                        CU_ASSERT_EQUAL(mc_rangemap_get(a, e[n / 2].start), e[n / 2].value);
                        CU_ASSERT_EQUAL(mc_rangemap_get(a, e[n - 1].end - 1), e[n - 1].value);
                        CU_ASSERT_EQUAL(mc_rangemap_get(a, e[n - 1].end), 0);
                }
                /* later updates: inserts, merges, holes and removals over the built tree */
                for (int k = 0; k < (n > 10000 ? 200 : 1500); k++) {
                        uint64_t span = (n + 2) * 8 * PAGE;
                        uint64_t s = (xorshift64(&seed) % span) & ~(PAGE / 2 - 1);
                        uint64_t l = PAGE / 2 * (1 + xorshift64(&seed) % (k % 7 == 0 ? 64 : 4));
                        uint64_t v = xorshift64(&seed) % 4;

                        CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(a, s, s + l, v), 0);
                        CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(b, s, s + l, v), 0);
                        if (n <= 10000 || k % 50 == 0)
                                CU_ASSERT_EQUAL_FATAL(mc_rangemap_check(a), 0);
                }
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_check(a), 0);
                CU_ASSERT_EQUAL(map_fingerprint(a), map_fingerprint(b));
                CU_ASSERT_EQUAL(mc_rangemap_count(a), mc_rangemap_count(b));
                mc_rangemap_free(a);
                mc_rangemap_free(b);
                free(e);
        }

        /* refusals leave the map as it was */
        {
                static const struct {
                        struct mc_rangemap_range e[3];
                        size_t n;
                } bad[] = {
                        { { { 0, 0, 1 } }, 1 },                                 /* empty */
                        { { { 5, 3, 1 } }, 1 },                                 /* reversed */
                        { { { 0, 4, 0 } }, 1 },                                 /* value 0 */
                        { { { 0, 4, 1 }, { 3, 8, 2 } }, 2 },                    /* overlap */
                        { { { 4, 8, 1 }, { 0, 2, 2 } }, 2 },                    /* unsorted */
                        { { { 0, 4, 1 }, { 4, 8, 1 } }, 2 },                    /* not coalesced */
                        { { { 0, 4, 1 }, { 4, 8, 2 }, { 8, 9, 2 } }, 3 },
                };
                mc_rangemap *m = new_map();
                uint64_t fp;

                set_ok(m, 100, 200, 3);
                fp = map_fingerprint(m);
                for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                        CU_ASSERT_EQUAL(mc_rangemap_build(m, bad[i].e, bad[i].n), -EINVAL);
                        CU_ASSERT_EQUAL(map_fingerprint(m), fp);
                        CU_ASSERT_EQUAL(mc_rangemap_check(m), 0);
                }
                CU_ASSERT_EQUAL(mc_rangemap_build(NULL, bad[0].e, 0), -EINVAL);
                CU_ASSERT_EQUAL(mc_rangemap_build(m, NULL, 1), -EINVAL);
                CU_ASSERT_EQUAL(map_fingerprint(m), fp);
                /* touching with different values is the stored form */
                CU_ASSERT_EQUAL(mc_rangemap_build(m, bad[3].e + 0, 1), 0);
                CU_ASSERT_EQUAL(mc_rangemap_get(m, 150), 0);
                CU_ASSERT_EQUAL(mc_rangemap_build(m, (const struct mc_rangemap_range[]) { { 0, 4, 1 }, { 4, 8, 2 } }, 2), 0);
                CU_ASSERT_EQUAL(mc_rangemap_check(m), 0);
                CU_ASSERT_EQUAL(mc_rangemap_count(m), 2);
                CU_ASSERT_EQUAL(mc_rangemap_build(m, NULL, 0), 0);
                CU_ASSERT_EQUAL(mc_rangemap_count(m), 0);
                CU_ASSERT_EQUAL(mc_rangemap_check(m), 0);
                mc_rangemap_free(m);
        }
}

/**
 * test_build_enomem() - mc_rangemap_build() failing at each of its
 * allocations in turn returns -ENOMEM and leaves the map unchanged (that it
 * frees what it had built is for valgrind to see: mallinfo2() counts the
 * chunks glibc's tcache keeps as in use, so it cannot tell here)
 */
static void test_build_enomem(void)
{
#if FAIL_ALLOC
        uint64_t seed = 12345;
        size_t n = 3000;  /* three levels: leaves, inner nodes, root */
        struct mc_rangemap_range *e = build_ranges(&seed, n);
        mc_rangemap *m = new_map();
        uint64_t fp;
        size_t mem;
        unsigned k;
        int r;

        set_ok(m, 0, 10, 1);
        set_ok(m, 20, 30, 2);
        fp = map_fingerprint(m);
        mem = mc_rangemap_memory(m);
        for (k = 0;; k++) {
                alloc_countdown = k;
                r = mc_rangemap_build(m, e, n);
                alloc_countdown = -1;
                if (r == 0)
                        break;
                CU_ASSERT_EQUAL_FATAL(r, -ENOMEM);
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_check(m), 0);
                CU_ASSERT_EQUAL_FATAL(map_fingerprint(m), fp);
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_memory(m), mem);
                CU_ASSERT_FATAL(k < 200);
        }
        CU_ASSERT(k > 72);  /* the arrays, 72 leaves, their inner nodes and the root */
        CU_ASSERT_EQUAL(mc_rangemap_check(m), 0);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), n);
        mc_rangemap_free(m);
        free(e);
#else
        CU_PASS("allocation failures not injectable in this build");
#endif
}

/**
 * test_memory_bound() - bytes per range stay bounded, removals included
 *
 * 10^5 ranges inserted in random order, then 90 % of them removed one by
 * one in another random order: memory per range (mc_rangemap_memory(),
 * and, outside sanitizer builds, the heap's own count with glibc's
 * mallinfo2(), allocator overhead included) stays at most 64 bytes,
 * because every node but the root stays at least half full.
 */
static void test_memory_bound(void)
{
        const size_t n = 100000;
        uint64_t *start = calloc(n, sizeof(*start)), s;
        size_t *order = calloc(n, sizeof(*order)), left;
        mc_rangemap *m;

        CU_ASSERT_PTR_NOT_NULL_FATAL(start);
        CU_ASSERT_PTR_NOT_NULL_FATAL(order);
        s = test_seed(0x1234567887654321ULL);
#if HEAP_STATS
        size_t heap0 = mallinfo2().uordblks;
#endif
        m = new_map();
        for (size_t i = 0; i < n; i++) {
                start[i] = (4 * i + xorshift64(&s) % 2) * PAGE;
                order[i] = i;
        }
        for (int round = 0; round < 2; round++) {
                for (size_t i = n - 1; i > 0; i--) {
                        size_t j = xorshift64(&s) % (i + 1), t = order[i];

                        order[i] = order[j];
                        order[j] = t;
                }
                for (size_t i = 0; i < n; i++) {
                        uint64_t a = start[order[i]];

                        if (round == 1 && i == n - n / 10)
                                break;
                        CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(m, a, a + PAGE, round == 0 ? 1 + order[i] % 3 : 0), 0);
                        if (i % 10000 == 9999)
                                CU_ASSERT_EQUAL_FATAL(mc_rangemap_check(m), 0);
                }
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_check(m), 0);
                left = mc_rangemap_count(m);
                CU_ASSERT_EQUAL(left, round == 0 ? n : n / 10);
                printf("\n    %zu ranges: %.1f bytes/range", left, (double) mc_rangemap_memory(m) / (double) left);
                CU_ASSERT(mc_rangemap_memory(m) <= 64 * left);
#if HEAP_STATS
                {
                        size_t heap = mallinfo2().uordblks - heap0;

                        printf(", heap %.1f", (double) heap / (double) left);
                        CU_ASSERT(heap <= 64 * left);
                }
#endif
        }
        printf(" ");
        mc_rangemap_free(m);
        free(start);
        free(order);
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
                { "long differential run vs per-page reference", test_differential },
                { "walk, any, bytes and get agree", test_walk_any_bytes },
                { "-ENOMEM leaves the map unchanged", test_enomem },
                { "bytes per range bounded after removals", test_memory_bound },
                { "build() equals set()s, keeps invariants", test_build },
                { "build() -ENOMEM leaves the map unchanged", test_build_enomem },
        };

        return mc_test_run("rangemap", NULL, NULL, tests, sizeof(tests) / sizeof(tests[0]));
}
