/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * planner.h - decide what a conversion request really has to change.
 *
 * Pure logic over the daemon's view of one VM: no fds, no I/O, no logging.
 * Given the VM's registered regions, its attribute map and the ranges that
 * have a conversion in flight, mc_plan_conversion() applies the memory-safety
 * rules 1-4 of DESIGN.md section 4:
 *
 *  1. [gpa, gpa+size): both page aligned (4 KiB), size > 0, no overflow;
 *     a to-private request must lie wholly inside registered regions (it may
 *     span adjacent regions). Anything else: an error, nothing planned.
 *  2. Sub-ranges already in the requested state are left out of the plan;
 *     a request with nothing left to change is MC_PLAN_SPURIOUS (the vCPU
 *     just retries: a racing vCPU converted it first).
 *  3. A to-shared request on GPA space no region covers (an MMIO hole) is a
 *     no-op that succeeds; when the request is partly RAM, only the RAM
 *     part is planned. A request that is wholly outside: MC_PLAN_MMIO_NOOP.
 *  4. If any byte of the request overlaps a range in @busy (decided but not
 *     yet applied, or whose discard has not finished) the outcome is
 *     MC_PLAN_WAIT and nothing is planned: the caller re-plans once the busy
 *     range is released, so a late discard can never destroy data the
 *     guest wrote after a newer conversion.
 *
 * Attribute values: MC_ATTR_PRIVATE where private, 0 (MC_ATTR_SHARED)
 * where shared, exactly KVM_MEMORY_ATTRIBUTE_PRIVATE semantics.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "rangemap.h"

#define MC_PAGE_SIZE 4096ULL
#define MC_ATTR_SHARED 0ULL
#define MC_ATTR_PRIVATE (1ULL << 3) /* == KVM_MEMORY_ATTRIBUTE_PRIVATE */

/* One registered region, as far as planning is concerned. */
struct mc_plan_region {
        uint64_t gpa;
        uint64_t size;
};

struct mc_plan_ctx {
        /* Sorted by gpa, non-overlapping, each page aligned, size > 0. */
        const struct mc_plan_region *regions;
        size_t n_regions;
        const mc_rangemap *attrs; /* MC_ATTR_PRIVATE / 0 per address */
        const mc_rangemap *busy;  /* non-zero where a conversion is in flight; may be NULL */
};

enum mc_plan_outcome {
        MC_PLAN_APPLY,      /* ranges[] must change */
        MC_PLAN_SPURIOUS,   /* all RAM in the request is already in the state */
        MC_PLAN_MMIO_NOOP,  /* to-shared, wholly outside RAM: success, nothing to do */
        MC_PLAN_WAIT,       /* overlaps a conversion in flight: re-plan later */
};

/* A range that changes; never crosses a region boundary. */
struct mc_plan_range {
        uint64_t gpa;
        uint64_t size;
        size_t region; /* index into ctx->regions */
};

struct mc_plan {
        enum mc_plan_outcome outcome;
        struct mc_plan_range *ranges; /* owned; sorted; adjacent ones in one region merged */
        size_t n_ranges;
        uint64_t bytes_change;   /* sum of ranges[].size */
        uint64_t bytes_already;  /* RAM bytes already in the requested state */
        uint64_t bytes_mmio;     /* bytes outside every region (to-shared only) */
};

/**
 * mc_plan_conversion() - plan converting [gpa, gpa+size) to @to_private
 * @ctx: the VM's current state (not modified)
 * @gpa: first guest-physical address
 * @size: bytes
 * @to_private: true for private, false for shared
 * @ret: filled on success; release with mc_plan_done(). Untouched on error.
 *
 * Return: 0 with @ret->outcome set;
 *         -EINVAL: @gpa or @size not 4 KiB aligned, @size == 0, or
 *                  gpa + size overflows 64 bits;
 *         -ERANGE: to-private and some byte is outside every region;
 *         -ENOMEM.
 */
int mc_plan_conversion(const struct mc_plan_ctx *ctx, uint64_t gpa, uint64_t size,
                       bool to_private, struct mc_plan *ret);

/** mc_plan_done() - free what a plan owns; accepts a zeroed plan */
void mc_plan_done(struct mc_plan *plan);

/**
 * mc_plan_regions_check() - validate a region set before it is used
 * @regions: candidate array (any order)
 * @n: its length
 *
 * Return: 0 if every region is 4 KiB aligned, non-empty, does not overflow
 * and no two overlap; -EINVAL for a bad region; -EEXIST for an overlap;
 * -ENOMEM (it sorts a copy).
 */
int mc_plan_regions_check(const struct mc_plan_region *regions, size_t n);
