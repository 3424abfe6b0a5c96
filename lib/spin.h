/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * spin.h - adaptive polling before blocking, as KVM's halt-polling does.
 *
 * A thread that is about to sleep until a descriptor becomes readable can
 * first poll it for a short window. If the peer is running on another CPU
 * and answers within the window, neither side pays for waking a halted CPU
 * (on these machines 10-40 us, several times the work of a conversion).
 * Each poll is followed by sched_yield(), so a peer that shares the CPU
 * runs at once and polling never costs it its turn. A yield that let
 * another thread run (it took MC_SPIN_YIELDED_NS or more) ends the polling
 * after one more look: the CPU is contended, and threads that poll in
 * turn would only delay the one that has the work to do.
 *
 * The window adapts to how long each wait took, polling included (KVM's
 * grow/shrink rule):
 *   - no longer than the window: it stays;
 *   - longer, but within @max_ns: it doubles (from MC_SPIN_START_NS, also
 *     when it was 0), up to @max_ns;
 *   - longer than @max_ns: it drops to 0, so an idle daemon, a slow
 *     answer or a CPU other threads keep busy costs no polling after the
 *     first.
 * A yield that lasted @max_ns or more (a penalty) means a thread with work
 * of its own shares the CPU, not a peer answering: while it runs, a thread
 * that sleeps would be woken, and preempt it, the moment its answer came,
 * but a thread that yielded waits for the other's time slice to end. So a
 * penalty turns polling off for the next 1 wait, then 2, 4, ... up to
 * MC_SPIN_BACKOFF_MAX while penalties recur; a hit without yielding to
 * anyone resets that.
 * With @max_ns 0 nothing ever polls.
 *
 * Not thread-safe: one struct per waiting thread, or under the caller's lock.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define MC_SPIN_START_NS 10000ULL       /* the first window after a short wait */
#define MC_SPIN_BACKOFF_MAX 256U      /* the most waits a penalty skips */
#define MC_SPIN_YIELDED_NS 2000ULL     /* a sched_yield() this long let another thread run */
#define MC_SPIN_MAX_USEC_LIMIT 1000000ULL /* the largest @max_ns a user may set, in us */

struct mc_spin {
        uint64_t max_ns;   /* the largest window; 0: never poll */
        uint64_t cur_ns;   /* the window of the next wait */
        uint32_t skip;     /* waits left that do not poll (after a penalty) */
        uint32_t backoff;  /* the last penalty's @skip; the next one doubles it */
        bool polled;       /* the last mc_spin_poll() polled in vain: mc_spin_waited() counts a miss */
        uint64_t hits;     /* waits that ended while polling */
        uint64_t misses;   /* waits that polled in vain, then blocked */
        uint64_t penalties; /* yields that let another thread run for a whole window */
        uint64_t spin_ns;  /* time spent polling, hits and misses */
};

/** mc_spin_now() - CLOCK_MONOTONIC in ns */
uint64_t mc_spin_now(void);

/** mc_spin_set_max() - change the largest window; the current one is clamped to it */
void mc_spin_set_max(struct mc_spin *s, uint64_t max_ns);

/**
 * mc_spin_poll() - poll @fd for readability for up to the current window
 * @start: mc_spin_now() when the wait began
 *
 * Return: true if @fd became readable, hung up or failed (a hit, counted:
 * the caller's next call on @fd will tell which), false if the window passed,
 * is 0 or is skipped after a penalty (the caller blocks, then calls
 * mc_spin_waited()).
 */
bool mc_spin_poll(struct mc_spin *s, int fd, uint64_t start);

/**
 * mc_spin_poll_ready() - mc_spin_poll(), also ending the polling when
 * @ready(@userdata) returns true (memory another process writes, such as
 * a request ring); @fd may be -1 to poll only @ready, @ready NULL to poll
 * only @fd. @ready is called before each look at @fd; it must be cheap
 * and must not block.
 */
bool mc_spin_poll_ready(struct mc_spin *s, int fd, bool (*ready)(void *userdata), void *userdata,
                        uint64_t start);

/**
 * mc_spin_waited() - a wait that did not end while polling is over
 * @idle_ns: how long the whole wait took, polling included
 *
 * Counts a miss if a window was polled, and grows or shrinks the window.
 */
void mc_spin_waited(struct mc_spin *s, uint64_t idle_ns);

/**
 * mc_spin_next() - the window after a wait of @idle_ns, polling included,
 * with the window @cur_ns and windows up to @max_ns (the rule above, without
 * side effects)
 */
uint64_t mc_spin_next(uint64_t cur_ns, uint64_t max_ns, uint64_t idle_ns);
