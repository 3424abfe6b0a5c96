/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * discard.h - discarding stale backing, off the vCPUs' path.
 *
 * fallocate(PUNCH_HOLE) of 2 MiB costs ~450 us here: far too long for the
 * event loop, which must keep answering vCPUs. A discarder owns a few
 * worker threads and a FIFO of jobs. The loop submits a job; a worker
 * punches; the finished job goes back to the loop through an eventfd, where
 * the completion callback runs. Small jobs (up to 64 KiB, 256 KiB per loop
 * iteration) the loop punches itself at the end of the iteration, which
 * costs less than the hand-off; their callbacks run then too, never from
 * discarder_submit(). Jobs hold a region reference (so the fd
 * stays open while a worker uses it); the callback drops it on the loop.
 * A job whose region is dead (its VMM went away) is skipped: -ECANCELED.
 *
 * A discard that fails leaves stale backing allocated. Retrying it is the
 * owner's business: convert.c keeps a retry timer per VM with a bounded
 * exponential backoff (DISCARD_RETRY_MIN_USEC doubling to
 * DISCARD_RETRY_MAX_USEC), and decides what to punch from the attribute map
 * at the time of the retry, never from the failed job.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

struct conversion;
struct region;

struct discard_job {
        struct discard_job *next;
        struct conversion *conv;  /* not owned; the completion callback's business */
        struct region *region;    /* a reference, dropped by the callback */
        int fd;                   /* borrowed from @region */
        uint64_t gpa;             /* guest address the range starts at */
        uint64_t queued_usec;
        uint64_t offset;
        uint64_t length;
        bool retry;               /* a retry of a discard that failed before */
        int error;                /* result: 0 or negative errno */
        uint64_t start_usec;
        uint64_t end_usec;
};

struct discarder;

typedef void (*discard_done_fn)(struct discard_job *job, void *userdata);

/**
 * discarder_new() - start @threads workers and hook completions into @event
 * @done: called on the loop thread for each finished job; it owns the job
 * Return: 0 or negative errno
 */
int discarder_new(sd_event *event, unsigned threads, discard_done_fn done, void *userdata,
                  struct discarder **ret);

#define DISCARD_RETRY_MIN_USEC (100ULL * 1000ULL)
#define DISCARD_RETRY_MAX_USEC (30ULL * 1000ULL * 1000ULL)

/** discarder_submit() - queue @job (ownership passes until @done gets it back) */
void discarder_submit(struct discarder *dc, struct discard_job *job);

/**
 * discarder_busy() - whether the workers have jobs whose completion has not
 * run yet (called from the loop thread; the loop does not poll meanwhile, as
 * its yields would hand its core to a worker for a whole time slice)
 */
bool discarder_busy(const struct discarder *dc);

/**
 * discarder_free() - finish the jobs already running, cancel the queued ones
 * (their @done runs with -ECANCELED), stop the workers; accepts NULL
 */
struct discarder *discarder_free(struct discarder *dc);
