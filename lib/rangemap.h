/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * rangemap.h - a map from 64-bit addresses to 64-bit values, stored as
 * coalesced ranges.
 *
 * Concept: the map is a set of disjoint half-open ranges [start, end), each
 * holding a non-zero value. Every address not inside a stored range has value
 * 0. Invariants, kept after every call:
 *   - stored ranges never overlap and are never empty (start < end);
 *   - two stored ranges that touch (a.end == b.start) never hold the same
 *     value: they are merged;
 *   - memory is proportional to the number of stored ranges, never to the
 *     size of the address space they cover;
 *   - lookup and update are O(log n) in the number of stored ranges (plus
 *     the number of ranges an update removes); a walk is O(log n) plus the
 *     runs it visits. The map is a B+tree of ~1 KiB nodes, about 4 levels
 *     at 10^6 ranges, so a look-up costs a few cache misses, not one per
 *     level of a binary tree.
 * memconvd keeps one per VM for KVM memory attributes (value =
 * KVM_MEMORY_ATTRIBUTE_PRIVATE where private, 0 = shared, the default) and
 * one for ranges with a conversion in flight.
 *
 * Error contract: negative errno; on failure the map is unchanged. Not
 * thread-safe: callers serialise access.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

typedef struct mc_rangemap mc_rangemap;

/**
 * mc_rangemap_walk_fn - called for each run of equal value in a window
 * @start: first address of the run
 * @end: one past its last address
 * @value: the value over the run (0 for gaps)
 * @userdata: the caller's pointer
 *
 * Return: 0 to continue, anything else stops the walk and is returned by it.
 */
typedef int (*mc_rangemap_walk_fn)(uint64_t start, uint64_t end, uint64_t value, void *userdata);

/**
 * mc_rangemap_new() - create an empty map (every address has value 0)
 * @ret: the new map, owned by the caller (free with mc_rangemap_free())
 *
 * Return: 0, or -ENOMEM (@ret untouched).
 */
int mc_rangemap_new(mc_rangemap **ret);

/**
 * mc_rangemap_free() - free a map; accepts NULL
 * Return: NULL
 */
mc_rangemap *mc_rangemap_free(mc_rangemap *m);

/**
 * mc_rangemap_set() - give every address in [start, end) the value @value
 * @m: the map
 * @start: first address
 * @end: one past the last address; must be > @start
 * @value: new value, 0 removes
 *
 * Splits ranges that straddle @start or @end and merges with neighbours.
 * Allocates only when the map gains a range; setting 0 therefore never
 * fails with -ENOMEM unless it cuts one stored range in two.
 *
 * Return: 0; -EINVAL if @start >= @end; -ENOMEM (map unchanged).
 */
int mc_rangemap_set(mc_rangemap *m, uint64_t start, uint64_t end, uint64_t value);

/**
 * mc_rangemap_get() - value at one address
 * Return: the value at @addr (0 where nothing is stored)
 */
uint64_t mc_rangemap_get(const mc_rangemap *m, uint64_t addr);

/**
 * mc_rangemap_walk() - visit [start, end) as maximal runs of equal value
 * @m: the map
 * @start: window start
 * @end: window end (> @start)
 * @fn: called in increasing address order for each run, gaps (value 0)
 *      included, clipped to the window; neighbouring calls never have the
 *      same value. @fn must not modify @m.
 * @userdata: passed to @fn
 *
 * Return: 0 when every run was visited; -EINVAL if @start >= @end; or the
 * first non-zero value @fn returned.
 */
int mc_rangemap_walk(const mc_rangemap *m, uint64_t start, uint64_t end,
                     mc_rangemap_walk_fn fn, void *userdata);

/**
 * mc_rangemap_any() - whether any address in [start, end) has a non-zero value
 * Return: 1 if so, 0 if not (also for an empty window).
 */
int mc_rangemap_any(const mc_rangemap *m, uint64_t start, uint64_t end);

/**
 * mc_rangemap_bytes() - how many addresses in [start, end) hold @value
 * Return: the count (0 for an empty window); @value 0 counts the gaps.
 */
uint64_t mc_rangemap_bytes(const mc_rangemap *m, uint64_t start, uint64_t end, uint64_t value);

/** mc_rangemap_count() - number of stored (non-zero) ranges */
size_t mc_rangemap_count(const mc_rangemap *m);

/**
 * mc_rangemap_memory() - heap bytes the map uses, struct included
 *
 * The sizes passed to malloc(), without the allocator's own overhead. Ranges
 * share ~1 KiB nodes that stay at least half full, so this grows in node
 * steps and stays under about 51 bytes per range at scale.
 */
size_t mc_rangemap_memory(const mc_rangemap *m);

/** mc_rangemap_clear() - remove every stored range */
void mc_rangemap_clear(mc_rangemap *m);

/**
 * struct mc_rangemap_range - one stored range, for mc_rangemap_build()
 * @start: first address
 * @end:   one past the last, > @start
 * @value: its value, not 0
 */
struct mc_rangemap_range {
        uint64_t start;
        uint64_t end;
        uint64_t value;
};

/**
 * mc_rangemap_build() - replace every stored range with @n sorted ranges
 * @m: the map
 * @e: the ranges, in increasing address order, borrowed: each non-empty,
 *     non-zero, not overlapping the one before, and not touching it with
 *     the same value (the form the map stores them in)
 * @n: how many
 *
 * The same map as mc_rangemap_clear() and then mc_rangemap_set() for each
 * range, in O(n) instead of O(n log n): the tree is built bottom-up with
 * full nodes (any later update keeps every invariant). All nodes are
 * allocated before the old content is freed.
 *
 * Return: 0; -EINVAL if @m is NULL, @e is NULL with @n > 0, or the ranges
 * are not in that form; -ENOMEM. On failure @m is unchanged.
 */
int mc_rangemap_build(mc_rangemap *m, const struct mc_rangemap_range *e, size_t n);

/* for tests */

/**
 * mc_rangemap_check() - verify every invariant of @m (debug aid, O(n))
 * @m: the map
 *
 * Checks ordering, no overlap, no empty range, coalescing, no stored 0,
 * and the B+tree's own invariants: keys in order within and across nodes,
 * every node but the root at least half full, all leaves at the same
 * depth, every key between the subtrees it separates, and the stored
 * range and node counts.
 *
 * Return: 0 if the map is consistent, -EUCLEAN if not.
 */
int mc_rangemap_check(const mc_rangemap *m);
