// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * test-replay.c - CUnit suite for daemon/replay.c: the attribute map built in
 * one sweep must be the map that applying every operation in order with
 * mc_rangemap_set() leaves (the reference here, as it was the replay's).
 *
 * Hand-written cases for the shapes that matter (later wins, nesting,
 * touching runs, holes, the top of the address space, clears), then random
 * sequences against the reference: small spaces with heavy overlap, a 1 TiB
 * guest like the benchmark's, unaligned and huge ranges. Then the ways out
 * when memory runs short (under RLIMIT_AS, in a child process). The seed is
 * printed and can be fixed with MC_TEST_SEED=<n>.
 */
#undef NDEBUG

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "test-util.h"

#include "planner.h"
#include "rangemap.h"
#include "replay.h"

#define PAGE 4096ULL
#define TIB (1ULL << 40)

static uint64_t seed = 0x2545f4914f6cdd1dULL;

/**
 * rnd() - the next number of a xorshift64 sequence
 * @s: its state, non-zero
 * Return: the number
 */
static uint64_t rnd(uint64_t *s)
{
        *s ^= *s << 13;
        *s ^= *s >> 7;
        *s ^= *s << 17;
        return *s;
}

/** struct ranges - the stored ranges of a map, in order (a growable array) */
struct ranges {
        uint64_t (*r)[3];  /* start, end, value */
        size_t n, cap;
};

/**
 * collect() - walk callback appending each non-zero run to a struct ranges
 * Return: 0
 */
static int collect(uint64_t start, uint64_t end, uint64_t value, void *userdata)
{
        struct ranges *rs = userdata;

        if (!value)
                return 0;
        if (rs->n == rs->cap) {
                rs->cap = rs->cap ? 2 * rs->cap : 256;
                rs->r = realloc(rs->r, rs->cap * sizeof(*rs->r));
                assert(rs->r);
        }
        rs->r[rs->n][0] = start;
        rs->r[rs->n][1] = end;
        rs->r[rs->n][2] = value;
        rs->n++;
        return 0;
}

/**
 * same_maps() - whether @a and @b store the same ranges (and @a is sound)
 * Return: true if so; on a difference, the first one is printed
 */
static bool same_maps(const mc_rangemap *a, const mc_rangemap *b)
{
        struct ranges ra = { 0 }, rb = { 0 };
        bool same;

        CU_ASSERT_EQUAL_FATAL(mc_rangemap_check(a), 0);
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_walk(a, 0, UINT64_MAX, collect, &ra), 0);
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_walk(b, 0, UINT64_MAX, collect, &rb), 0);
        same = ra.n == rb.n && (ra.n == 0 || !memcmp(ra.r, rb.r, ra.n * sizeof(*ra.r)));
        if (!same) {
                size_t i = 0;

                while (i < ra.n && i < rb.n && !memcmp(ra.r[i], rb.r[i], sizeof(ra.r[i])))
                        i++;
                printf("\n    %zu ranges against %zu of the reference; first difference at #%zu: ", ra.n, rb.n, i);
                if (i < ra.n)
                        printf("[%#" PRIx64 ", %#" PRIx64 ") ", ra.r[i][0], ra.r[i][1]);
                if (i < rb.n)
                        printf("reference [%#" PRIx64 ", %#" PRIx64 ") ", rb.r[i][0], rb.r[i][1]);
        }
        free(ra.r);
        free(rb.r);
        return same;
}

/** struct pair - the map under test with its collector, and the reference map */
struct pair {
        mc_rangemap *fast, *ref;
        struct replay_map rm;
};

/** pair_init() - two empty maps, a collector on the one under test */
static void pair_init(struct pair *p)
{
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_new(&p->fast), 0);
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_new(&p->ref), 0);
        replay_map_init(&p->rm, p->fast);
}

/** pair_set() - one operation: collected for one map, applied at once to the reference */
static void pair_set(struct pair *p, uint64_t start, uint64_t end, bool to_private)
{
        replay_map_set(&p->rm, start, end, to_private);
        if (start < end)
                CU_ASSERT_EQUAL_FATAL(mc_rangemap_set(p->ref, start, end, to_private ? MC_ATTR_PRIVATE : 0), 0);
}

/** pair_clear() - a snapshot: both maps emptied */
static void pair_clear(struct pair *p)
{
        replay_map_clear(&p->rm);
        mc_rangemap_clear(p->ref);
}

/**
 * pair_finish() - build the map and compare; frees both maps
 * Return: whether they were the same
 */
static bool pair_finish(struct pair *p)
{
        bool same;

        replay_map_finish(&p->rm);
        CU_ASSERT_PTR_NULL(p->rm.ops);
        same = same_maps(p->fast, p->ref);
        mc_rangemap_free(p->fast);
        mc_rangemap_free(p->ref);
        return same;
}

/** test_empty() - no operations, or only ones set() refuses: an empty map */
static void test_empty(void)
{
        struct pair p;

        pair_init(&p);
        CU_ASSERT(pair_finish(&p));

        /* only ignored operations, and shared over nothing */
        pair_init(&p);
        pair_set(&p, 5 * PAGE, 5 * PAGE, true);
        pair_set(&p, 6 * PAGE, 5 * PAGE, true);
        pair_set(&p, 0, UINT64_MAX, false);
        CU_ASSERT(pair_finish(&p));
}

/** test_last_wins() - holes, islands and overlaps: the later operation decides, and nothing is built before finish */
static void test_last_wins(void)
{
        struct pair p;
        struct ranges rs = { 0 };

        pair_init(&p);
        pair_set(&p, 0, 100 * PAGE, true);          /* a region that starts private */
        pair_set(&p, 10 * PAGE, 20 * PAGE, false);  /* a hole */
        pair_set(&p, 15 * PAGE, 16 * PAGE, true);   /* an island in it */
        pair_set(&p, 10 * PAGE, 20 * PAGE, false);  /* the same hole again: the island goes */
        pair_set(&p, 50 * PAGE, 60 * PAGE, false);
        pair_set(&p, 40 * PAGE, 55 * PAGE, false);  /* overlaps the hole on its left */
        pair_set(&p, 55 * PAGE, 58 * PAGE, true);   /* private again, touching private nothing */
        pair_set(&p, 58 * PAGE, 60 * PAGE, true);   /* touching the one before: one range */
        /* Before finish, the map holds the first one only: the rest was collected. */
        CU_ASSERT_EQUAL(mc_rangemap_walk(p.fast, 0, UINT64_MAX, collect, &rs), 0);
        CU_ASSERT_EQUAL_FATAL(rs.n, 1);
        CU_ASSERT(rs.r[0][0] == 0 && rs.r[0][1] == 100 * PAGE);
        CU_ASSERT_EQUAL(p.rm.n_ops, 7);
        rs.n = 0;
        replay_map_finish(&p.rm);
        CU_ASSERT_EQUAL(mc_rangemap_walk(p.fast, 0, UINT64_MAX, collect, &rs), 0);
        CU_ASSERT_EQUAL_FATAL(rs.n, 3);
        CU_ASSERT(rs.r[0][0] == 0 && rs.r[0][1] == 10 * PAGE && rs.r[0][2] == MC_ATTR_PRIVATE);
        CU_ASSERT(rs.r[1][0] == 20 * PAGE && rs.r[1][1] == 40 * PAGE);
        CU_ASSERT(rs.r[2][0] == 55 * PAGE && rs.r[2][1] == 100 * PAGE);
        CU_ASSERT(same_maps(p.fast, p.ref));
        free(rs.r);
        mc_rangemap_free(p.fast);
        mc_rangemap_free(p.ref);
}

/** test_nesting_and_ties() - nested operations both ways, shared starts and ends, runs that touch */
static void test_nesting_and_ties(void)
{
        struct pair p;

        /* nested, each inner one later: alternating values */
        pair_init(&p);
        for (uint64_t i = 0; i < 50; i++)
                pair_set(&p, i * PAGE, (200 - i) * PAGE, i % 2 == 0);
        CU_ASSERT(pair_finish(&p));

        /* nested, each inner one earlier: the outermost, last, wins everywhere */
        pair_init(&p);
        for (uint64_t i = 50; i-- > 0;)
                pair_set(&p, i * PAGE, (200 - i) * PAGE, i % 2 == 0);
        CU_ASSERT(pair_finish(&p));

        /* many operations with the same start, or the same end, or both */
        pair_init(&p);
        for (uint64_t i = 1; i < 40; i++) {
                pair_set(&p, 8 * PAGE, (8 + i) * PAGE, i % 3 == 0);
                pair_set(&p, (100 - i) * PAGE, 100 * PAGE, i % 2 == 0);
                pair_set(&p, 60 * PAGE, 70 * PAGE, i % 5 != 0);
        }
        CU_ASSERT(pair_finish(&p));

        /* a chain of touching private operations becomes one range */
        pair_init(&p);
        for (uint64_t i = 0; i < 1000; i++)
                pair_set(&p, i * PAGE, (i + 1) * PAGE, true);
        CU_ASSERT(pair_finish(&p));
}

/** test_in_order() - operations in address order are swept without a sort */
static void test_in_order(void)
{
        uint64_t s = seed ^ 0x85ebca6b;

        for (unsigned round = 0; round < 200; round++) {
                size_t n = 1 + rnd(&s) % 3000;
                uint64_t at = rnd(&s) % 64 * PAGE;
                bool disjoint = round % 2, late = round % 3 == 0;
                struct pair p;

                /* Starts that never go down (a snapshot's ranges: also disjoint), so the
                 * operations are not sorted again; one in three ends with one that is
                 * out of order after all. */
                pair_init(&p);
                for (size_t i = 0; i < n; i++) {
                        uint64_t len = (1 + rnd(&s) % 8) * PAGE;

                        pair_set(&p, at, at + len, rnd(&s) % 4 != 0);
                        at += disjoint ? len + rnd(&s) % 3 * PAGE : rnd(&s) % 3 * PAGE;
                }
                if (late)
                        pair_set(&p, rnd(&s) % (at + 1) & ~(PAGE - 1), at + PAGE, rnd(&s) % 2);
                CU_ASSERT_FATAL(pair_finish(&p));
        }
}

/** test_top_of_space() - ranges that end at UINT64_MAX, and one-byte ranges */
static void test_top_of_space(void)
{
        struct pair p;

        pair_init(&p);
        pair_set(&p, 0, UINT64_MAX, true);
        pair_set(&p, UINT64_MAX - PAGE, UINT64_MAX, false);
        pair_set(&p, UINT64_MAX - 3 * PAGE, UINT64_MAX - 2 * PAGE, false);
        pair_set(&p, 0, 1, false);
        pair_set(&p, UINT64_MAX - 1, UINT64_MAX, true);
        CU_ASSERT(pair_finish(&p));
}

/** test_clear() - what came before a clear does not matter, even as the last thing */
static void test_clear(void)
{
        struct pair p;

        pair_init(&p);
        pair_set(&p, 0, TIB, true);
        pair_set(&p, PAGE, 2 * PAGE, false);
        pair_clear(&p);                         /* a snapshot: all of that is gone */
        pair_set(&p, 10 * PAGE, 20 * PAGE, true);
        pair_set(&p, 12 * PAGE, 13 * PAGE, false);
        CU_ASSERT(pair_finish(&p));

        /* a clear as the last thing */
        pair_init(&p);
        pair_set(&p, 0, TIB, true);
        pair_clear(&p);
        CU_ASSERT(pair_finish(&p));
}

/** test_not_empty_at_init() - a map that holds ranges gets operations at once, until cleared */
static void test_not_empty_at_init(void)
{
        mc_rangemap *m, *ref;
        struct replay_map rm;

        /* A map that already holds ranges: operations cannot be collected, they go
         * straight to it until it is cleared. */
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_new(&m), 0);
        CU_ASSERT_EQUAL_FATAL(mc_rangemap_new(&ref), 0);
        CU_ASSERT_EQUAL(mc_rangemap_set(m, 0, 64 * PAGE, MC_ATTR_PRIVATE), 0);
        CU_ASSERT_EQUAL(mc_rangemap_set(ref, 0, 64 * PAGE, MC_ATTR_PRIVATE), 0);
        replay_map_init(&rm, m);
        CU_ASSERT(rm.direct);
        replay_map_set(&rm, 8 * PAGE, 16 * PAGE, false);
        CU_ASSERT_EQUAL(mc_rangemap_set(ref, 8 * PAGE, 16 * PAGE, 0), 0);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 2);  /* applied at once */
        replay_map_set(&rm, 100 * PAGE, 101 * PAGE, true);
        CU_ASSERT_EQUAL(mc_rangemap_set(ref, 100 * PAGE, 101 * PAGE, MC_ATTR_PRIVATE), 0);
        CU_ASSERT(same_maps(m, ref));

        /* After a clear: in the map at once while in address order, then collected. */
        replay_map_clear(&rm);
        mc_rangemap_clear(ref);
        CU_ASSERT(!rm.direct);
        replay_map_set(&rm, 4 * PAGE, 6 * PAGE, true);
        CU_ASSERT_EQUAL(mc_rangemap_set(ref, 4 * PAGE, 6 * PAGE, MC_ATTR_PRIVATE), 0);
        replay_map_set(&rm, 8 * PAGE, 9 * PAGE, true);
        CU_ASSERT_EQUAL(mc_rangemap_set(ref, 8 * PAGE, 9 * PAGE, MC_ATTR_PRIVATE), 0);
        CU_ASSERT(same_maps(m, ref));
        replay_map_set(&rm, 5 * PAGE, 8 * PAGE, true);
        CU_ASSERT_EQUAL(mc_rangemap_set(ref, 5 * PAGE, 8 * PAGE, MC_ATTR_PRIVATE), 0);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 2);  /* collected */
        CU_ASSERT_EQUAL(rm.n_ops, 1);
        replay_map_finish(&rm);
        CU_ASSERT_EQUAL(mc_rangemap_count(m), 1);
        CU_ASSERT(same_maps(m, ref));
        mc_rangemap_free(m);
        mc_rangemap_free(ref);
}

/**
 * random_range() - a range of one of several shapes
 * @s: the random state
 * @space: the address space the short ranges fall in (pages)
 * @start: out
 * @end: out
 */
static void random_range(uint64_t *s, uint64_t space, uint64_t *start, uint64_t *end)
{
        uint64_t a = rnd(s) % space, len;

        switch (rnd(s) % 16) {
        case 0:         /* long */
                len = 1 + rnd(s) % space;
                break;
        case 1:         /* anywhere, unaligned, any length (also empty or inverted: ignored) */
                *start = rnd(s);
                *end = rnd(s) % 4 ? *start + rnd(s) % (1ULL << (rnd(s) % 64)) : rnd(s);
                if (*end < *start && rnd(s) % 2)
                        *end = UINT64_MAX;
                return;
        case 2:         /* up to the top of the space */
                *start = UINT64_MAX - (rnd(s) % 64) * PAGE - rnd(s) % 2;
                *end = UINT64_MAX;
                return;
        default:        /* short */
                len = 1 + rnd(s) % 32;
                break;
        }
        *start = a * PAGE;
        *end = (a + len) * PAGE;
}

/** test_on_a_base() - a snapshot's ranges (in the map at once), then operations over them */
static void test_on_a_base(void)
{
        uint64_t s = seed ^ 0x27d4eb2f;

        for (unsigned round = 0; round < 300; round++) {
                size_t n_base = rnd(&s) % 3000, n = 1 + rnd(&s) % 3000;
                uint64_t at = 0, space;
                struct pair p;

                pair_init(&p);
                for (size_t i = 0; i < n_base; i++) {
                        uint64_t gap = rnd(&s) % 3 * PAGE, len = (1 + rnd(&s) % 8) * PAGE;

                        pair_set(&p, at + gap, at + gap + len, rnd(&s) % 8 != 0);
                        at += gap + len;
                }
                space = at / PAGE + 64;
                for (size_t i = 0; i < n; i++) {
                        uint64_t start, end;

                        random_range(&s, space, &start, &end);
                        pair_set(&p, start, end, rnd(&s) % 2);
                }
                CU_ASSERT_FATAL(pair_finish(&p));
        }
}

/** test_random() - 400 random sequences with clears, in spaces from 16 pages to 1 TiB */
static void test_random(void)
{
        static const uint64_t spaces[] = { 16, 256, 4096, TIB / PAGE };
        uint64_t s = seed;
        unsigned bad = 0;

        for (unsigned round = 0; round < 400; round++) {
                uint64_t space = spaces[round % 4];
                size_t n = rnd(&s) % (round % 10 == 0 ? 50000 : 2000);
                struct pair p;

                pair_init(&p);
                for (size_t i = 0; i < n; i++) {
                        uint64_t start, end;

                        if (rnd(&s) % 1000 == 0) {
                                pair_clear(&p);
                                continue;
                        }
                        random_range(&s, space, &start, &end);
                        pair_set(&p, start, end, rnd(&s) % 2);
                }
                if (!pair_finish(&p) && bad++ < 5)
                        printf("(round %u, %zu operations) ", round, n);
        }
        CU_ASSERT_EQUAL(bad, 0);
}

/** test_like_the_benchmark() - 300,000 changes of 4 KiB..2 MiB blocks over 1 TiB */
static void test_like_the_benchmark(void)
{
        uint64_t s = seed ^ 0x5bd1e995;
        struct pair p;

        /* Two regions of 512 GiB that start private, then 300,000 changes of 4 KiB..2 MiB
         * blocks over the whole 1 TiB, mostly alternating: ~65,000 private ranges. */
        pair_init(&p);
        pair_set(&p, 0, TIB / 2, true);
        pair_set(&p, TIB / 2, TIB, true);
        for (size_t i = 0; i < 300000; i++) {
                uint64_t len = PAGE << (rnd(&s) % 10), start = (rnd(&s) % (TIB / len)) * len;

                pair_set(&p, start, start + len, i % 2 == 1 || rnd(&s) % 16 == 0);
        }
        CU_ASSERT(pair_finish(&p));
}

/**
 * limit_memory() - let this process map only @more bytes beyond what it has
 * (the soft limit only: a later call may raise it again)
 * Return: 0, or -1 if the limit could not be set
 */
static int limit_memory(size_t more)
{
        unsigned long pages;
        struct rlimit rl;
        FILE *f = fopen("/proc/self/statm", "re");

        if (!f)
                return -1;
        if (fscanf(f, "%lu", &pages) != 1 || getrlimit(RLIMIT_AS, &rl) < 0) {
                fclose(f);
                return -1;
        }
        fclose(f);
        rl.rlim_cur = pages * (size_t) sysconf(_SC_PAGESIZE) + more;
        if (rl.rlim_max != RLIM_INFINITY && rl.rlim_cur > rl.rlim_max)
                return -1;
        return setrlimit(RLIMIT_AS, &rl);
}

#define MIB (1024U * 1024U)

/**
 * oom_phases() - the fallbacks, in a child process: exits 0 if each map
 * equals its reference, 1 if one differs, 2 if no limit could be set
 */
static void oom_phases(void)
{
        uint64_t s = seed ^ 0xc2b2ae35;
        struct pair p;
        bool ok;

        /* 1. The array of operations cannot grow to 24 MiB: what it holds is applied,
         * the rest goes straight to the map (a small space: the maps stay small). */
        pair_init(&p);
        if (limit_memory(16 * MIB) < 0)
                _exit(2);
        for (size_t i = 0; i < 1000000; i++) {
                uint64_t a = rnd(&s) % 4096;

                pair_set(&p, a * PAGE, (a + 1 + rnd(&s) % 8) * PAGE, rnd(&s) % 2);
        }
        ok = p.rm.direct && p.rm.ops == NULL;
        /* 2. After a clear it collects again; then there is no memory to sort. */
        pair_clear(&p);
        ok = ok && !p.rm.direct;
        if (limit_memory(64 * MIB) < 0)
                _exit(2);
        for (size_t i = 0; i < 500000; i++) {
                uint64_t a = rnd(&s) % 4096;

                pair_set(&p, a * PAGE, (a + 1 + rnd(&s) % 8) * PAGE, rnd(&s) % 2);
        }
        ok = ok && !p.rm.direct && p.rm.n_ops > 400000;
        if (limit_memory(MIB) < 0)
                _exit(2);
        ok = pair_finish(&p) && ok;

        /* 3. 300,000 nested operations, already sorted, on top of the first one (in the
         * map at once), and no room for the sweep's heap: applied in order on top of it. */
        if (limit_memory(1024 * MIB) < 0)
                _exit(2);
        pair_init(&p);
        for (uint64_t i = 0; i < 300000; i++)
                pair_set(&p, i * PAGE, (1000000 - i) * PAGE, i % 50000 != 1);
        ok = ok && p.rm.n_ops == 299999 && !p.rm.unsorted && mc_rangemap_count(p.fast) == 1;
        if (limit_memory(MIB) < 0)
                _exit(2);
        ok = pair_finish(&p) && ok;
        _exit(ok ? 0 : 1);
}

/** test_out_of_memory() - oom_phases() in a child process, which must exit 0 */
static void test_out_of_memory(void)
{
        int status = -1;
        pid_t pid;

        fflush(stdout);
        pid = fork();
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0)
                oom_phases();
        CU_ASSERT_EQUAL_FATAL(waitpid(pid, &status, 0), pid);
        CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/** main() - run the suite; MC_TEST_SEED=<n> fixes the random sequences */
int main(void)
{
        static const struct mc_test tests[] = {
                { "no operations, or only ignored ones", test_empty },
                { "the last operation wins", test_last_wins },
                { "nesting, shared starts and ends, touching runs", test_nesting_and_ties },
                { "operations already in address order", test_in_order },
                { "the top of the address space", test_top_of_space },
                { "a clear drops what came before", test_clear },
                { "a map not empty at init: straight to it", test_not_empty_at_init },
                { "random operations vs set() in order", test_random },
                { "operations over a base already in the map", test_on_a_base },
                { "a fragmented 1 TiB guest vs set() in order", test_like_the_benchmark },
                { "out of memory: one by one, in order", test_out_of_memory },
        };
        const char *env = getenv("MC_TEST_SEED");

        if (env && strtoull(env, NULL, 0))
                seed = strtoull(env, NULL, 0);  /* xorshift needs a non-zero state */
        printf("seed %#" PRIx64 "\n", seed);
        return mc_test_run("replay", NULL, NULL, tests, sizeof(tests) / sizeof(tests[0]));
}
