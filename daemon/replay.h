/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * replay.h - the attribute map of a VM being rebuilt from its journal,
 * built once at the end of the file instead of one update per record.
 *
 * Replaying a journal is a sequence of "make [start, end) private (or
 * shared)" operations (snapshot ranges, region records with initial private,
 * committed changes), cut by snapshots, which empty the map. Since every
 * operation overwrites what was there, the map at the end is, for every
 * address, the value of the LAST operation since the last snapshot that
 * covers it, and shared where none does.
 *
 * A replay_map applies operations to the map at once as long as each starts
 * at or above the end of the one before (a snapshot's ranges, the regions of
 * a new VM): that is cheap, and nothing they set is overwritten yet. From the
 * first one that is not, it collects them in journal order, and
 * replay_map_finish() computes what they leave with one sweep over them
 * sorted by start, then changes the map only where that differs from what it
 * holds: O(n log n) over plain arrays instead of n updates of the range map.
 * The map it leaves is the one the updates in order would have left (a range
 * map holds one representation of a given content: coalesced, disjoint
 * ranges).
 *
 * Fallback: should memory for the operations or the sweep run short, the
 * operations collected so far are applied one by one, in order, and later ones
 * go straight to the map until the next snapshot: the same map, only slower.
 * Built with -DMEMCONVD_REPLAY_INCREMENTAL (a test build), every operation goes
 * straight to the map, so tests can compare both ways on the same journals.
 *
 * Error contract: none of these fail; like the replay before them, a range map
 * update that runs out of memory leaves that range as it was. No logging.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rangemap.h"

struct replay_op;

struct replay_map {
        mc_rangemap *map;        /* borrowed: the VM's attribute map */
        struct replay_op *ops;   /* owned: the operations collected, in journal order */
        size_t n_ops, cap_ops;
        uint64_t frontier;       /* in order so far: the end of the last operation */
        bool in_order;           /* every operation so far started at or above the frontier */
        bool unsorted;           /* a collected operation starts below the one before it */
        bool direct;             /* operations go straight to @map (fallback, or incremental build) */
};

/**
 * replay_map_init() - start replaying into @map
 * @rm: the collector (caller's storage)
 * @map: the map to build, borrowed; if it is not empty, operations go
 *       straight to it until replay_map_clear()
 */
void replay_map_init(struct replay_map *rm, mc_rangemap *map);

/**
 * replay_map_set() - [start, end) becomes private (@to_private) or shared,
 * after every earlier operation; ignored when @start >= @end
 */
void replay_map_set(struct replay_map *rm, uint64_t start, uint64_t end, bool to_private);

/** replay_map_clear() - empty the map (a snapshot): earlier operations no longer matter */
void replay_map_clear(struct replay_map *rm);

/**
 * replay_map_finish() - apply every collected operation to the map and free
 * them; later operations (there are none in a replay) would go straight to it
 */
void replay_map_finish(struct replay_map *rm);
