/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * spin.c - adaptive polling before blocking (see spin.h).
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <time.h>

#include "spin.h"

uint64_t mc_spin_now(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000000ULL + (uint64_t) ts.tv_nsec;
}

void mc_spin_set_max(struct mc_spin *s, uint64_t max_ns)
{
        s->max_ns = max_ns;
        if (s->cur_ns > max_ns)
                s->cur_ns = max_ns;
}

uint64_t mc_spin_next(uint64_t cur_ns, uint64_t max_ns, uint64_t idle_ns)
{
        if (max_ns == 0 || idle_ns > max_ns)
                return 0;
        if (cur_ns == 0)
                return MC_SPIN_START_NS < max_ns ? MC_SPIN_START_NS : max_ns;
        if (idle_ns <= cur_ns)          /* cannot happen after a full window; keep it */
                return cur_ns;
        return cur_ns >= max_ns / 2 ? max_ns : cur_ns * 2;
}

/* A yield that lasted a whole window: stop polling for the next few waits, more after each. */
static void spin_penalty(struct mc_spin *s)
{
        s->backoff = s->backoff ? (s->backoff >= MC_SPIN_BACKOFF_MAX / 2 ? MC_SPIN_BACKOFF_MAX : s->backoff * 2) : 1;
        s->skip = s->backoff;
        s->cur_ns = 0;
        s->penalties++;
}

/* fd_ready() - > 0 readable (or hung up), < 0 failing, 0 not yet */
static int fd_ready(int fd)
{
        struct pollfd p = { .fd = fd, .events = POLLIN };
        int r = poll(&p, 1, 0);

        return r < 0 && errno == EINTR ? 0 : r;
}

bool mc_spin_poll(struct mc_spin *s, int fd, uint64_t start)
{
        return mc_spin_poll_ready(s, fd, NULL, NULL, start);
}

bool mc_spin_poll_ready(struct mc_spin *s, int fd, bool (*ready)(void *userdata), void *userdata,
                        uint64_t start)
{
        bool gave_way = false, penalty = false;
        uint64_t now = start;

        s->polled = false;
        if (s->cur_ns == 0)
                return false;
        if (s->skip > 0) {
                s->skip--;
                return false;
        }
        s->polled = true;
        for (;;) {
                int r = ready && ready(userdata) ? 1 : fd >= 0 ? fd_ready(fd) : 0;
                uint64_t t;

                now = mc_spin_now();
                if (r != 0) {
                        /* ready, or failing: the caller's next call will tell */
                        s->hits++;
                        s->spin_ns += now - start;
                        s->polled = false;
                        /* a hit that took longer than the largest window (others ran
                         * meanwhile) shrinks it, as a long sleep would */
                        s->cur_ns = mc_spin_next(s->cur_ns, s->max_ns, now - start);
                        if (penalty)
                                spin_penalty(s);
                        else if (!gave_way)
                                s->backoff = 0;
                        return true;
                }
                /*
                 * Other threads wanted this CPU (KVM stops halt-polling when
                 * another task is runnable, too): they had their turn, this
                 * was the look after it; now sleep rather than keep them waiting.
                 */
                if (gave_way || now - start >= s->cur_ns)
                        break;
                (void) sched_yield();   /* a peer on this CPU runs now, not after the window */
                t = mc_spin_now();
                gave_way = t - now >= MC_SPIN_YIELDED_NS;
                /* It ran for a whole window: a thread with work of its own, not a peer
                 * answering. While it has the CPU, a wake-up would have preempted it for
                 * us; a thread that yielded waits for its time slice to end. */
                penalty = t - now >= s->max_ns;
                now = t;
        }
        s->spin_ns += now - start;
        if (penalty)
                spin_penalty(s);
        return false;
}

void mc_spin_waited(struct mc_spin *s, uint64_t idle_ns)
{
        if (s->polled)
                s->misses++;
        s->polled = false;
        s->cur_ns = mc_spin_next(s->cur_ns, s->max_ns, idle_ns);
}
