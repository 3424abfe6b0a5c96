/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-util.h - small helpers shared by the benchmark programs: a clock,
 * CPU pinning, and order statistics over sample arrays.
 *
 * Every benchmark program prints its results as JSON objects, one per line,
 * on stdout ("metric lines"); tests/bench/bench.py collects them, compares
 * them against the baselines of the same run and prints the table. A metric
 * line always has "name", "unit", "median" and "p99"; "median" is the
 * median of the per-round medians (so one noisy round cannot move it) and
 * "p99" is taken over every sample of every round.
 */
#pragma once

#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/**
 * bench_now_ns() - CLOCK_MONOTONIC in nanoseconds
 * Return: the time
 */
static inline uint64_t bench_now_ns(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ull + (uint64_t) ts.tv_nsec;
}

/**
 * bench_pin() - pin the calling thread to one CPU
 * @cpu: the CPU, or -1 to leave the affinity alone
 *
 * Return: 0 or a negative errno
 */
static inline int bench_pin(int cpu)
{
        cpu_set_t set;

        if (cpu < 0)
                return 0;
        CPU_ZERO(&set);
        CPU_SET(cpu, &set);
        return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

static inline int bench_cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;

        return x < y ? -1 : x > y;
}

/**
 * bench_quantile() - the @q quantile of @n samples (nearest rank)
 * @v: the samples; sorted in place
 * @n: their number (0 gives 0)
 * @q: 0..1
 *
 * Return: the sample at rank ceil(q * n)
 */
static inline uint64_t bench_quantile(uint64_t *v, size_t n, double q)
{
        size_t k;

        if (!n)
                return 0;
        qsort(v, n, sizeof(*v), bench_cmp_u64);
        k = (size_t) (q * (double) n + 0.999999);
        if (k < 1)
                k = 1;
        if (k > n)
                k = n;
        return v[k - 1];
}

/**
 * bench_summary() - median of per-round medians and pooled p99
 * @v: @rounds * @per_round samples, round after round (reordered in place)
 * @rounds: number of rounds
 * @per_round: samples per round
 * @ret_median: median of the round medians
 * @ret_p99: 99th percentile of all samples
 */
static inline void bench_summary(uint64_t *v, size_t rounds, size_t per_round, double *ret_median,
                                 double *ret_p99)
{
        uint64_t med[256];
        size_t r, n = rounds < 256 ? rounds : 256;

        for (r = 0; r < n; r++)
                med[r] = bench_quantile(v + r * per_round, per_round, 0.5);
        *ret_median = (double) bench_quantile(med, n, 0.5);
        *ret_p99 = (double) bench_quantile(v, rounds * per_round, 0.99);
}

/**
 * bench_rng() - xorshift64*: the next 64 random bits from *@state (never 0),
 * deterministic for a seed
 */
static inline uint64_t bench_rng(uint64_t *state)
{
        *state ^= *state >> 12;
        *state ^= *state << 25;
        *state ^= *state >> 27;
        return *state * 0x2545f4914f6cdd1dull;
}
